"""Every quantization method of the course on one task, measured the same way; lesson 13.

The capstone builds each method's model from the shared pretrained models (PyTorch
``small_cnn``, Keras CNN), measures accuracy, size and latency with one thread count, at
batch 1 (one request) and at :data:`BIG_BATCH` (a server that batches requests), and answers
"which method for which situation" from the measured table.
The few ``torch.ao.quantization`` calls are written out here so the capstone does not depend
on the per-lesson helpers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from helpers import data, measure

# What each method needs besides the trained model, whether the result runs integer-only
# (int8 input and output: microcontrollers, Edge TPU, NPUs), and the work it takes (1-3).
METHODS = {
    "pytorch-fp32": ("pytorch", "nothing", False, 0, "the float baseline"),
    "pytorch-dynamic": ("pytorch", "nothing", False, 1, "quantize_dynamic on Linear layers"),
    "pytorch-static-eager": ("pytorch", "calibration", False, 2,
                             "stubs, fusion, prepare, calibrate, convert"),
    "pytorch-static-fx": ("pytorch", "calibration", False, 2,
                          "prepare_fx / convert_fx on a traceable model"),
    "pytorch-qat": ("pytorch", "training", False, 3, "prepare_qat, fine-tune, convert"),
    "tflite-fp32": ("tflite", "nothing", False, 0, "the float baseline"),
    "tflite-dynamic": ("tflite", "nothing", False, 1, "Optimize.DEFAULT only"),
    "tflite-int8": ("tflite", "calibration", True, 2, "representative dataset, int8 ops, uint8 I/O"),
    "tflite-float16": ("tflite", "nothing", False, 1, "float16 weights"),
    "tflite-16x8": ("tflite", "calibration", False, 2, "int16 activations, int8 weights"),
    "keras-qat-int8": ("tflite", "training", True, 3, "tfmot quantize_model, fine-tune, convert"),
}
FLOAT_OF = {"pytorch": "pytorch-fp32", "tflite": "tflite-fp32"}
BIG_BATCH = 64  # images per call for the batched latency, ``latency_ms_batch64``
TFLITE_MODES = {"tflite-fp32": "fp32", "tflite-dynamic": "dynamic", "tflite-int8": "int8",
                "tflite-float16": "float16", "tflite-16x8": "16x8"}


@dataclass
class Built:
    """One method's runnable model: a torch module or TFLite bytes."""

    name: str
    model: object

    @property
    def framework(self) -> str:
        return METHODS[self.name][0]


def build_pytorch(calib: data.Split, train: data.Split, qat_epochs: int = 1,
                  qat_images: int | None = None, engine: str | None = None) -> list[Built]:
    """The five PyTorch methods from ``training.pretrained("small_cnn")``; lesson 13."""
    _refuse_triton_after_tensorflow()
    import torch
    import torch.ao.quantization as tq
    from torch.ao.quantization import quantize_fx

    from helpers import env, models, ptq, training

    engine = env.select_engine(engine)
    float_model = training.pretrained("small_cnn").eval()
    built = [Built("pytorch-fp32", float_model)]
    built.append(Built("pytorch-dynamic", tq.quantize_dynamic(
        copy.deepcopy(float_model), {torch.nn.Linear}, dtype=torch.qint8)))
    # Eager static: fuse conv-bn-relu, observe on calibration data, then convert.
    eager = copy.deepcopy(float_model).eval()
    eager = tq.fuse_modules(eager, eager.fusion_groups())
    eager.qconfig = tq.get_default_qconfig(engine)
    prepared = tq.prepare(eager)
    ptq.calibrate(prepared, calib)
    built.append(Built("pytorch-static-eager", tq.convert(prepared)))
    # FX: the same weights in the stub-free variant, so only the workflow differs.
    traceable = models.SmallCNN(eager=False)
    traceable.load_state_dict(float_model.state_dict())
    example = (data.torch_tensors(calib.take(1))[0],)
    prepared = quantize_fx.prepare_fx(traceable.eval(), tq.get_default_qconfig_mapping(engine),
                                      example)
    ptq.calibrate(prepared, calib)
    built.append(Built("pytorch-static-fx", quantize_fx.convert_fx(prepared)))
    # QAT: fused modules with fake quantization, fine-tuned at a small learning rate.
    qat = copy.deepcopy(float_model).train()
    qat = tq.fuse_modules_qat(qat, qat.fusion_groups())
    qat.qconfig = tq.get_default_qat_qconfig(engine)
    qat = tq.prepare_qat(qat)
    training.train_epochs(qat, train.take(qat_images), epochs=qat_epochs, lr=1e-4,
                          desc="PyTorch QAT")
    built.append(Built("pytorch-qat", tq.convert(qat.eval())))
    return built


def _refuse_triton_after_tensorflow() -> None:
    """FX tracing imports Triton; loaded after TensorFlow, Triton kills the process (segfault)."""
    import importlib.util
    import sys

    if ("tensorflow" in sys.modules and "triton" not in sys.modules
            and importlib.util.find_spec("triton") is not None):
        raise RuntimeError(
            "build the PyTorch models before anything imports tensorflow: prepare_fx loads "
            "Triton, which crashes a process that has already loaded TensorFlow. Restart the "
            "kernel and run the cells in order (or `import triton` before tensorflow)."
        )


def build_tflite(calib_images: np.ndarray, keras_model=None) -> list[Built]:
    """The four TFLite conversions (and fp32) of ``training.keras_pretrained()``; lesson 13."""
    import contextlib
    import io

    from helpers import tflite, training

    keras_model = keras_model or training.keras_pretrained()
    built = []
    for name, mode in TFLITE_MODES.items():
        with contextlib.redirect_stdout(io.StringIO()):  # converter chatter
            built.append(Built(name, tflite.convert_keras(keras_model, mode, calib_images)))
    return built


def measure_one(item: Built, test: data.Split, threads: int = 1, repeats: int = 100,
                max_seconds: float | None = 10.0, big_repeats: int = 20) -> dict:
    """Accuracy, size, and latency at batch 1 and at BIG_BATCH, with ``threads`` threads; lesson 13.

    Inputs are prepared before timing (normalised tensors, quantized arrays), so only the
    model is timed.
    """
    import torch

    from helpers import tflite

    if item.name not in METHODS:
        raise KeyError(f"unknown method {item.name!r}; known: {list(METHODS)}")
    if len(test) < BIG_BATCH:
        raise ValueError(f"the test split has {len(test)} images; the batched latency needs "
                         f"at least BIG_BATCH={BIG_BATCH}")
    framework, needs, integer_only, effort, how = METHODS[item.name]
    if framework == "pytorch":
        accuracy = measure.torch_accuracy(item.model, test)
        size = measure.torch_size_bytes(item.model)
        images = data.torch_tensors(test.take(BIG_BATCH))[0]

        def run(batch: int) -> Callable[[], object]:
            x = images[:batch]

            def call() -> object:
                with torch.inference_mode():
                    return item.model(x)
            return call
    else:
        lite = tflite.LiteModel(item.model, num_threads=threads)
        accuracy = measure.tflite_accuracy(lite, test)
        size = measure.tflite_size_bytes(item.model)
        images = lite.quantize_input(data.keras_arrays(test.take(BIG_BATCH))[0])

        def run(batch: int) -> Callable[[], object]:
            lite.set_batch(batch)  # the interpreter holds one input shape at a time
            x = images[:batch]
            return lambda: lite.invoke(x)
    timing = measure.latency(run(1), threads=threads, repeats=repeats, max_seconds=max_seconds)
    timing_big = measure.latency(run(BIG_BATCH), threads=threads, warmup=2, repeats=big_repeats,
                                 max_seconds=max_seconds)
    return {"name": item.name, "framework": framework, "accuracy": accuracy, "size_bytes": size,
            "latency_ms": timing.median_ms, "latency_spread_ms": timing.spread_ms,
            "latency_ms_batch64": timing_big.median_ms,
            "latency_spread_ms_batch64": timing_big.spread_ms,
            "threads": threads, "batch": 1, "needs": needs, "integer_only": integer_only,
            "effort": effort, "how": how, "timing": timing, "timing_batch64": timing_big}


def with_baselines(rows: list[dict]) -> list[dict]:
    """Add each row's ratios to its framework's float model (size x, speed-ups x, accuracy points)."""
    by_name = {r["name"]: r for r in rows}
    missing = {FLOAT_OF[r["framework"]] for r in rows} - set(by_name)
    if missing:
        raise ValueError(f"the table needs the float baselines {sorted(missing)} to compare with")
    out = []
    for row in rows:
        base = by_name[FLOAT_OF[row["framework"]]]
        ratios = {"size_x": base["size_bytes"] / row["size_bytes"],
                  "speedup_x": base["latency_ms"] / row["latency_ms"],
                  "accuracy_change_points": -measure.points_below(base["accuracy"],
                                                                  row["accuracy"])}
        if "latency_ms_batch64" in row and "latency_ms_batch64" in base:
            ratios["speedup_batch64_x"] = base["latency_ms_batch64"] / row["latency_ms_batch64"]
        out.append({**row, **ratios})
    return out


def meets(rows: list[dict], max_drop_points: float | None = None,
          max_size_bytes: float | None = None, max_latency_ms: float | None = None,
          framework: str | None = None, needs: set[str] | None = None,
          integer_only: bool | None = None) -> set[str]:
    """Names of the methods that satisfy every given constraint; lesson 13."""
    rows = with_baselines(rows)
    chosen = set()
    for row in rows:
        if max_drop_points is not None and -row["accuracy_change_points"] > max_drop_points:
            continue
        if max_size_bytes is not None and row["size_bytes"] > max_size_bytes:
            continue
        if max_latency_ms is not None and row["latency_ms"] > max_latency_ms:
            continue
        if framework is not None and row["framework"] != framework:
            continue
        if needs is not None and row["needs"] not in needs:
            continue
        if integer_only is not None and row["integer_only"] != integer_only:
            continue
        chosen.add(row["name"])
    return chosen


def best(rows: list[dict], names: set[str], key: str, tolerance: float = 0.0) -> set[str]:
    """Among ``names``, those within ``tolerance`` (a fraction) of the lowest ``key``; lesson 13.

    A tolerance makes latency choices honest: two methods 3 % apart are a tie on a noisy CPU.
    """
    if not names:
        return set()
    values = {r["name"]: r[key] for r in rows if r["name"] in names}
    lowest = min(values.values())
    return {name for name, value in values.items() if value <= lowest * (1 + tolerance)}


def table(rows: list[dict]) -> str:
    """The measured table as aligned text, one line per method; lesson 13."""
    rows = with_baselines(rows)
    batched = all("speedup_batch64_x" in r for r in rows)
    head = (f"{'method':<21}{'accuracy':>9}{'Δ pts':>7}{'size KB':>9}{'smaller':>8}"
            f"{'batch-1 ms':>11}{'speed-up':>9}"
            + (f"{f'batch-{BIG_BATCH} ms':>12}{'speed-up':>9}" if batched else "") + "  needs")
    lines = [head, "-" * len(head)]
    for r in rows:
        big = (f"{r['latency_ms_batch64']:>12.3f}{r['speedup_batch64_x']:>8.2f}x"
               if batched else "")
        lines.append(f"{r['name']:<21}{r['accuracy']:>9.2%}{r['accuracy_change_points']:>+7.2f}"
                     f"{r['size_bytes'] / 1e3:>9.1f}{r['size_x']:>7.2f}x{r['latency_ms']:>11.3f}"
                     f"{r['speedup_x']:>8.2f}x{big}  {r['needs']}")
    return "\n".join(lines)


def decision_guide(rows: list[dict], budget_points: float = 1.0,
                   latency_tolerance: float = 0.10) -> list[tuple[str, str, str]]:
    """(situation, method, evidence) lines, every choice computed from the table; lesson 13."""
    full = {r["name"]: r for r in with_baselines(rows)}
    ok = meets(rows, max_drop_points=budget_points)

    def evidence(name: str) -> str:
        r = full[name]
        batched = (f", {r['speedup_batch64_x']:.2f}x at batch {BIG_BATCH}"
                   if "speedup_batch64_x" in r else "")
        return (f"{r['accuracy']:.2%} ({r['accuracy_change_points']:+.2f} pts vs float), "
                f"{r['size_x']:.2f}x smaller, {r['speedup_x']:.2f}x the float speed at batch 1"
                f"{batched}")

    def pick(names: set[str], key: str, tol: float = 0.0) -> str | None:
        winners = best(rows, names, key, tol)
        # Among near-ties, prefer the least effort, then the smaller file.
        return min(winners, key=lambda n: (full[n]["effort"], full[n]["size_bytes"])) if winners else None

    situations: list[tuple[str, Callable[[], str | None]]] = [
        ("no data at all, just the trained model (smallest file)",
         lambda: pick(ok & meets(rows, needs={"nothing"}) - set(FLOAT_OF.values()), "size_bytes")),
        ("PyTorch on an x86/Arm CPU, one request at a time, fastest within the budget",
         lambda: pick(ok & meets(rows, framework="pytorch"), "latency_ms", latency_tolerance)),
        ("phone CPU with TFLite, fastest within the budget",
         lambda: pick(ok & meets(rows, framework="tflite"), "latency_ms", latency_tolerance)),
        ("microcontroller / Edge TPU / NPU: integer-only, smallest file",
         lambda: pick(ok & meets(rows, integer_only=True), "size_bytes")),
        ("mobile GPU delegate (computes in float16), smallest float model",
         lambda: "tflite-float16" if "tflite-float16" in ok else None),
        ("smallest file of all within the budget",
         lambda: pick(ok - set(FLOAT_OF.values()), "size_bytes")),
    ]
    if all("latency_ms_batch64" in r for r in rows):
        situations.insert(2, (
            f"PyTorch server batching {BIG_BATCH} requests per call, fastest within the budget",
            lambda: pick(ok & meets(rows, framework="pytorch"), "latency_ms_batch64",
                         latency_tolerance)))
    guide = []
    for situation, choose in situations:
        name = choose()
        guide.append((situation, name or "none within the budget",
                      evidence(name) if name else f"no method kept accuracy within {budget_points} pts"))
    return guide


def qat_gain_points(rows: list[dict]) -> dict[str, float]:
    """Accuracy of QAT minus static PTQ, per framework, in points; lesson 13."""
    acc = {r["name"]: r["accuracy"] for r in rows}
    pairs = {"pytorch": ("pytorch-qat", "pytorch-static-fx"),
             "tflite": ("keras-qat-int8", "tflite-int8")}
    # points_below(qat, ptq) is how far PTQ falls below QAT: the gain of QAT.
    return {fw: measure.points_below(acc[q], acc[p]) for fw, (q, p) in pairs.items()
            if q in acc and p in acc}


def what_if(rows: list[dict], name: str, **changes) -> list[dict]:
    """A copy of the table with one method's numbers changed, to test a decision; lesson 13."""
    if name not in {r["name"] for r in rows}:
        raise KeyError(f"no method {name!r} in the table; it has {[r['name'] for r in rows]}")
    changed = [{**r, **changes} if r["name"] == name else dict(r) for r in rows]
    return with_baselines([{k: v for k, v in r.items() if k not in DERIVED} for r in changed])


DERIVED = ("size_x", "speedup_x", "speedup_batch64_x", "accuracy_change_points")
