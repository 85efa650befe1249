"""Which method for which situation, computed from a measured table by rules stated once; lesson 13.

The rules, the same for every line of the guide:

1. **Accuracy budget, judged on the interval.** A method fits a budget of B points when the
   lower end of the paired 95 % interval of its accuracy change against the float model,
   measured on the **val** split, is at least -B. A point estimate inside the budget with an
   interval reaching beyond it does not fit. (Choices are made on val; test gives final numbers.)
2. **One tie tolerance for size and latency** (:data:`TIE_TOLERANCE`): a value within that
   fraction of the best one is a tie; a timing 5 % apart on a shared CPU is noise, and so is a
   file 5 % larger.
3. **Among ties**, prefer what needs less (nothing < calibration < training data), then the
   smaller file, then the faster batch-1 latency.
4. **Integer-only is read from the model**, never declared: a LiteRT file is integer-only when
   its input and output are integers and no tensor computed at run time is a float
   (:func:`tflite_integer_only`).
5. **The phone line never picks a method this table measures as slower than its float model**,
   and says what this x86 machine cannot measure instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

TIE_TOLERANCE = 0.10
NEEDS_ORDER = {"nothing": 0, "calibration": 1, "training": 2}
INTEGER_KINDS = "iu"  # NumPy dtype kinds of signed and unsigned integers


@dataclass(frozen=True)
class IntegerOnly:
    """Whether a model runs on integers only, and every reason it does not; lesson 13."""

    integer_only: bool
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.integer_only

    def __str__(self) -> str:
        return "integer-only" if self.integer_only else "not integer-only: " + "; ".join(self.reasons)


def tflite_integer_only(model: bytes) -> IntegerOnly:
    """Read a LiteRT flatbuffer: integer I/O and no float tensor computed at run time; lesson 13.

    Float weights that a DEQUANTIZE op turns into float32 at run time (float16 files), float
    activations around an op without an integer kernel (float fallback) and float I/O each
    make a file unfit for integer-only hardware.
    """
    from helpers import tflite

    lite = tflite.LiteModel(model, xnnpack=False)  # the file's own graph, no delegate nodes
    reasons = []
    for side, dtype in (("input", lite.input_dtype), ("output", lite.output_dtype)):
        if dtype.kind not in INTEGER_KINDS:
            reasons.append(f"{side} is {dtype.name}")
    produced = {}
    for op in lite.interpreter._get_ops_details():
        for index in op["outputs"]:
            produced[index] = op["op_name"]
    floats = [t for t in lite.tensors() if not t["is_constant"]
              and np.dtype(t["dtype"]).kind == "f"]
    ops = sorted({produced[t["index"]] for t in floats if t["index"] in produced})
    if floats:
        reasons.append(f"{len(floats)} float tensors computed at run time"
                       + (f" (by {', '.join(ops)})" if ops else ""))
    return IntegerOnly(not reasons, tuple(reasons))


def torch_integer_only(model, example) -> IntegerOnly:
    """Read a PyTorch model's I/O by running it: float in or float out is not integer-only; lesson 13.

    The course's PyTorch int8 models take float32 tensors and quantize them inside (QuantStub,
    or a quantize op in the graph), and return float32 logits.
    """
    import torch

    with torch.inference_mode():
        out = model(example)
    reasons = [f"{side} is {str(t.dtype).replace('torch.', '')}"
               for side, t in (("input", example), ("output", out))
               if t.dtype.is_floating_point or t.is_quantized]
    return IntegerOnly(not reasons, tuple(reasons))


def fits_budget(row: dict, budget_points: float) -> bool:
    """Rule 1: the val interval's lower end is at least -budget_points; lesson 13."""
    if "val_delta_ci95" not in row:
        raise KeyError(f"row {row.get('name')!r} has no val_delta_ci95: the guide chooses on the "
                       "val split; measure val accuracy first")
    return row["val_delta_ci95"][0] >= -budget_points


def ties(rows: Iterable[dict], key: str, tolerance: float = TIE_TOLERANCE) -> list[dict]:
    """Rule 2: the rows whose ``key`` is within ``tolerance`` of the lowest; lesson 13."""
    rows = [r for r in rows if r.get(key) is not None]
    if not rows:
        return []
    best = min(r[key] for r in rows)
    return [r for r in rows if r[key] <= best * (1 + tolerance)]


def preferred(rows: Iterable[dict]) -> dict:
    """Rule 3: among tied rows, the one needing least, then the smaller file, then the faster."""
    return min(rows, key=lambda r: (NEEDS_ORDER[r["needs"]], r["size_bytes"], r["latency_ms"],
                                    r["name"]))


def choose(rows: Iterable[dict], key: str,
           tolerance: float = TIE_TOLERANCE) -> tuple[dict | None, list[dict]]:
    """The preferred row among the ties for the lowest ``key``, and the ties; lesson 13."""
    tied = ties(rows, key, tolerance)
    return (preferred(tied) if tied else None), tied


@dataclass(frozen=True)
class GuideLine:
    """One situation of the guide: the method chosen and the numbers that decided it."""

    situation: str
    method: str | None
    evidence: str

    def as_record(self) -> dict:
        return {"situation": self.situation, "method": self.method, "evidence": self.evidence}


def describe(row: dict) -> str:
    """The numbers of one row that a guide line cites; lesson 13."""
    low, high = row["val_delta_ci95"]
    batch64 = row.get("latency_ms_batch64")
    return (f"{row['name']}: val Δ {row['val_delta_points']:+.2f} pts [{low:+.2f}, {high:+.2f}], "
            f"{row['size_bytes']:,} B, {row['latency_ms']:.3f} ms at batch 1"
            + (f", {batch64:.2f} ms at batch 64" if batch64 is not None else "")
            + f"; test accuracy {row['accuracy']:.2%}")


def _value(key: str, value: float) -> str:
    return f"{value:,} B" if key == "size_bytes" else f"{value:.3f} ms"


def _line(situation: str, candidates: list[dict], key: str, tolerance: float) -> GuideLine:
    pick, tied = choose(candidates, key, tolerance)
    if pick is None:
        return GuideLine(situation, None, "no method meets the constraints within the budget")
    evidence = describe(pick)
    if len(tied) > 1:
        evidence += (f". Tied within {tolerance:.0%}: "
                     + ", ".join(f"{r['name']} ({_value(key, r[key])})" for r in tied if r is not pick)
                     + "; rule 3 chose")
    others = sorted((r for r in candidates if r not in tied), key=lambda r: r[key])
    if others:
        evidence += f". Next: {others[0]['name']} ({_value(key, others[0][key])})"
    return GuideLine(situation, pick["name"], evidence)


def phone_line(rows: list[dict], budget_points: float, cpu: dict[str, bool],
               tolerance: float = TIE_TOLERANCE) -> GuideLine:
    """Rule 5: an Arm phone with LiteRT; never a method measured slower than float; lesson 13."""
    situation = "Arm phone CPU, LiteRT with XNNPACK"
    lite = [r for r in rows if r["framework"] == "tflite" and fits_budget(r, budget_points)]
    by_name = {r["name"]: r for r in rows}
    not_slower = [r for r in lite if r["latency_ms"] <= by_name[r["baseline"]]["latency_ms"]]
    slower = [r["name"] for r in lite if r not in not_slower]
    pick, _ = choose(not_slower, "size_bytes", tolerance)
    if pick is None:
        return GuideLine(situation, None, "no LiteRT method within the budget is as fast as float here")
    machine = "an Arm CPU" if cpu.get("arm_neon") else "this x86 machine"
    evidence = (f"{describe(pick)}; the smallest file among the LiteRT methods this table does "
                f"not measure as slower than their float model at batch 1"
                + (f" (measured slower, so excluded: {', '.join(slower)})" if slower else ""))
    if not cpu.get("arm_neon"):
        fp16 = by_name.get("tflite-float16")
        evidence += (f". What {machine} cannot measure: on ARMv8.2-A cores with FP16 arithmetic, "
                     "XNNPACK runs a float16 file's reduced-precision math natively")
        if fp16 is not None:
            evidence += (f" (tflite-float16, {fp16['size_bytes']:,} B, runs here as fp32 after "
                         f"dequantizing its weights: {fp16['latency_ms']:.3f} ms)")
        evidence += (", and int8 runs on NEON dot-product instructions: benchmark "
                     f"{pick['name']} and tflite-float16 on the phone before shipping")
    return GuideLine(situation, pick["name"], evidence)


def decision_guide(rows: list[dict], budget_points: float, cpu: dict[str, bool],
                   tolerance: float = TIE_TOLERANCE) -> list[GuideLine]:
    """Every line of the guide, each computed from ``rows`` by the module's rules; lesson 13."""
    ok = [r for r in rows if fits_budget(r, budget_points)]

    def where(test: Callable[[dict], bool]) -> list[dict]:
        return [r for r in ok if test(r)]

    return [
        _line("integer-only hardware (microcontroller, Edge TPU, NPU): smallest file",
              where(lambda r: r["integer_only"]), "size_bytes", tolerance),
        _line("no data at all, only the trained weights: smallest quantized file",
              where(lambda r: r["needs"] == "nothing" and r["quantized"]), "size_bytes", tolerance),
        _line("PyTorch on this CPU, one request at a time: fastest",
              where(lambda r: r["framework"] == "pytorch"), "latency_ms", tolerance),
        _line("PyTorch server batching 64 requests per call: fastest",
              where(lambda r: r["framework"] == "pytorch"), "latency_ms_batch64", tolerance),
        _line("LiteRT on this CPU, one request at a time: fastest",
              where(lambda r: r["framework"] == "tflite"), "latency_ms", tolerance),
        phone_line(rows, budget_points, cpu, tolerance),
        _line("smallest file of all", ok, "size_bytes", tolerance),
    ]


def what_if(rows: list[dict], name: str, **changes) -> list[dict]:
    """A copy of the table with one method's numbers changed, to test a decision; lesson 13."""
    if name not in {r["name"] for r in rows}:
        raise KeyError(f"no method {name!r} in the table; it has {[r['name'] for r in rows]}")
    return [{**r, **changes} if r["name"] == name else dict(r) for r in rows]
