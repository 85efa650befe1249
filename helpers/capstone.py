"""Every quantization method of the course on one network, in both frameworks, measured alike; lesson 13.

One depthwise-separable network is trained in PyTorch; every PyTorch method starts from it
(:mod:`helpers.capstone_torch`) and every TFLite method from its Keras twin with the same
weights (:mod:`helpers.twin`). :func:`measure` gives each method's row: accuracy on the val and
test splits with paired intervals against the float model, the deployable file's bytes,
whether the file is integer-only (read from it), and the latency at batch 1 and batch 64 on
one thread, inputs prepared before the clock starts. :mod:`helpers.decision` turns the table
into a guide.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from helpers import data, decision, measure, paths, stats
from helpers.training import weights_digest  # noqa: F401  (capstone.weights_digest in lesson 13)

BIG_BATCH = 64  # the batched latency, ``latency_ms_batch64``
EVAL_BATCH = 64


@dataclass(frozen=True)
class Method:
    """What a method is: its runtime, what it needs besides the weights, whether it quantizes."""

    framework: str  # "pytorch" or "tflite" (every LiteRT file)
    label: str
    needs: str  # "nothing", "calibration" or "training"
    quantized: bool


METHODS = {
    "pytorch-fp32": Method("pytorch", "eager float, as trained", "nothing", False),
    "pytorch-fp32-fused": Method("pytorch", "eager float, BN folded", "nothing", False),
    "pytorch-fp32-compiled": Method("pytorch", "float, BN folded, torch.compile", "nothing", False),
    "pytorch-dynamic": Method("pytorch", "quantize_dynamic (Linear)", "nothing", True),
    "pytorch-static-eager": Method("pytorch", "eager static int8", "calibration", True),
    "pytorch-static-fx": Method("pytorch", "FX static int8", "calibration", True),
    "pytorch-pt2e": Method("pytorch", "PT2E + X86InductorQuantizer", "calibration", True),
    "pytorch-qat": Method("pytorch", "eager QAT int8", "training", True),
    "tflite-fp32": Method("tflite", "Keras twin, float", "nothing", False),
    "tflite-dynamic": Method("tflite", "dynamic range", "nothing", True),
    "tflite-int8": Method("tflite", "full integer, uint8 I/O", "calibration", True),
    "tflite-int8-int8io": Method("tflite", "full integer, int8 I/O", "calibration", True),
    "tflite-float16": Method("tflite", "float16 weights", "nothing", True),
    "tflite-16x8": Method("tflite", "int16 activations, int8 weights", "calibration", True),
    "keras-qat-int8": Method("tflite", "tfmot QAT, uint8 I/O", "training", True),
    "litert-torch-fp32": Method("tflite", "PyTorch -> LiteRT, float", "nothing", False),
    "litert-torch-int8": Method("tflite", "PyTorch -> LiteRT, PT2E int8", "calibration", True),
}
TFLITE_MODES = {"tflite-fp32": "fp32", "tflite-dynamic": "dynamic", "tflite-int8": "int8",
                "tflite-int8-int8io": "int8-int8io", "tflite-float16": "float16",
                "tflite-16x8": "16x8"}


@dataclass
class Candidate:
    """One method's model: a torch module (with its deployable file) or LiteRT bytes."""

    name: str
    model: object
    artifact: bytes | None = None  # PyTorch: the deployable file
    artifact_kind: str = "LiteRT file"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise KeyError(f"unknown method {self.name!r}; known: {list(METHODS)}")
        if isinstance(self.model, (bytes, bytearray)):
            self.artifact = bytes(self.model)

    @property
    def method(self) -> Method:
        return METHODS[self.name]


def file_key(net, *settings) -> str:
    """The cache key of a file converted from ``net``: its weights, the settings, the versions."""
    import importlib.metadata

    versions = [importlib.metadata.version(p) for p in
                ("torch", "torchao", "tensorflow", "ai-edge-litert", "litert-torch")]
    return "|".join(map(str, (weights_digest(net), *settings, *versions)))


def cached_file(key: str, build: Callable[[], bytes], reuse: bool = True) -> bytes:
    """Bytes from ``data/cache`` by ``key``, or built (and stored) now; lesson 13.

    ``reuse=False`` always builds, and refreshes the cache: full mode converts every file live,
    quick mode may reuse the files a full run made from the same weights and settings.
    """
    path = paths.cache_dir() / f"capstone-{hashlib.sha256(key.encode()).hexdigest()[:16]}.bin"
    if reuse and path.exists() and path.stat().st_size > 0:
        return path.read_bytes()
    content = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
    return content


def _padded_batches(n: int, batch: int) -> list[tuple[int, int]]:
    return [(start, min(start + batch, n)) for start in range(0, n, batch)]


def torch_predict(model, x, batch: int = EVAL_BATCH, threads: int = 1) -> np.ndarray:
    """Logits in fixed-size batches (the last one padded: a compiled model compiles once)."""
    import torch

    out = []
    with measure.torch_threads(threads), torch.inference_mode():
        for start, stop in _padded_batches(len(x), batch):
            chunk = x[start:stop]
            if len(chunk) < batch:
                chunk = torch.cat([chunk, chunk.new_zeros((batch - len(chunk), *chunk.shape[1:]))])
            out.append(model(chunk)[: stop - start].float().numpy())
    return np.concatenate(out)


def lite_predict(model: bytes, images: np.ndarray, workers: int = 2,
                 batch: int = EVAL_BATCH) -> np.ndarray:
    """Float logits of a LiteRT file for raw images, in ``workers`` interpreters at once; lesson 13.

    The interpreter releases the GIL while it runs, so two Python threads use two cores.
    """
    from helpers import tflite

    nchw = None
    spans = _padded_batches(len(images), batch)
    parts = np.array_split(np.arange(len(spans)), workers)

    def run(indices: np.ndarray) -> list[np.ndarray]:
        nonlocal nchw
        lite = tflite.LiteModel(model, num_threads=1)
        nchw = tuple(lite.input_detail["shape"][1:]) == (1, 28, 28)
        lite.set_batch(batch)
        results = []
        for i in indices:
            start, stop = spans[i]
            chunk = images[start:stop]
            chunk = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]),
                                                    chunk.dtype)]) if len(chunk) < batch else chunk
            chunk = chunk[:, None] if nchw else chunk
            raw = lite.invoke(lite.quantize_input(chunk))
            results.append(lite.dequantize_output(raw)[: stop - start])
        return results

    with ThreadPoolExecutor(workers) as pool:
        pieces = list(pool.map(run, [p for p in parts if len(p)]))
    return np.concatenate([piece for part in pieces for piece in part])


def logits(candidate: Candidate, split: data.Split, workers: int = 2) -> np.ndarray:
    """A method's logits on a split (standardized tensors for PyTorch, raw pixels for LiteRT).

    PyTorch runs on one thread: two OpenMP threads spin-wait for each other, and on a busy
    2-core machine that made inference 20x slower here. LiteRT interpreters do not spin, so
    ``workers`` of them run side by side.
    """
    if candidate.method.framework == "pytorch":
        return torch_predict(candidate.model, data.torch_tensors(split)[0])
    return lite_predict(candidate.model, data.keras_arrays(split)[0], workers=workers)


def timed_call(candidate: Candidate, split: data.Split, batch: int,
               threads: int = 1) -> Callable[[], object]:
    """A no-argument call running one batch, its input prepared now (outside the clock)."""
    if candidate.method.framework == "pytorch":
        import torch

        x = data.torch_tensors(split.take(batch))[0].clone()

        def call() -> object:
            with torch.inference_mode():
                return candidate.model(x)
        return call
    from helpers import tflite

    lite = tflite.LiteModel(candidate.model, num_threads=threads)
    images = data.keras_arrays(split.take(batch))[0]
    if tuple(lite.input_detail["shape"][1:]) == (1, 28, 28):
        images = images[:, None]
    x = lite.quantize_input(images)
    lite.set_batch(batch)
    return lambda: lite.invoke(x)


def integer_only(candidate: Candidate, example_split: data.Split) -> decision.IntegerOnly:
    """Read from the model: the LiteRT file's tensors, or the PyTorch model's I/O; lesson 13."""
    if candidate.method.framework == "tflite":
        return decision.tflite_integer_only(candidate.model)
    return decision.torch_integer_only(candidate.model, data.torch_tensors(example_split.take(1))[0])


def measure_one(candidate: Candidate, val: data.Split, test: data.Split,
                reference: dict[str, np.ndarray], repeats: int = 100, big_repeats: int = 20,
                max_seconds: float = 10.0, threads: int = 1) -> dict:
    """One row of the table; ``reference`` holds the float model's val and test predictions."""
    data.require_selection_split(val, "the decision guide's accuracy budget")
    row = {"name": candidate.name, "framework": candidate.method.framework,
           "method": candidate.method.label, "needs": candidate.method.needs,
           "quantized": candidate.method.quantized, **candidate.extra}
    for prefix, split in (("val_", val), ("", test)):
        predictions = logits(candidate, split).argmax(1)
        paired = stats.compare_predictions(split.y, reference[split.role], predictions)
        record = paired.as_record()
        if prefix:
            record = {k: record[k] for k in ("accuracy", "delta_points", "delta_ci95")}
        row.update({prefix + k: v for k, v in record.items()})
        row[prefix + "verdict"] = paired.verdict(candidate.name)
        row[prefix + "predictions"] = predictions
    found = integer_only(candidate, test)
    row.update(integer_only=found.integer_only, integer_only_reasons=list(found.reasons))
    row.update(size_bytes=len(candidate.artifact), size_kind=candidate.artifact_kind)
    if candidate.method.framework == "pytorch":
        from helpers import capstone_torch

        row["state_dict_bytes"] = capstone_torch.state_dict_bytes(candidate.model)
    one = measure.latency(timed_call(candidate, test, 1, threads), threads=threads,
                          repeats=repeats, max_seconds=max_seconds)
    big = measure.latency(timed_call(candidate, test, BIG_BATCH, threads), threads=threads,
                          warmup=2, repeats=big_repeats, max_seconds=max_seconds)
    row.update(latency_ms=one.median_ms, latency_spread_ms=one.spread_ms,
               latency_p10_ms=one.p10_ms, latency_p90_ms=one.p90_ms,
               latency_ms_batch64=big.median_ms, latency_spread_ms_batch64=big.spread_ms,
               threads=threads, timing=one, timing_batch64=big)
    return row


def with_speedups(rows: list[dict]) -> list[dict]:
    """Speed-ups against the plain float and the best float of the same runtime; lesson 13.

    PyTorch's plain float is the eager model as trained; its best is the fastest of the
    float rows (BN folded, compiled where compiled). LiteRT's is the fastest float file.
    ``baseline`` names the best float at batch 1, the row the phone rule compares against.
    """
    plain = {"pytorch": "pytorch-fp32", "tflite": "tflite-fp32"}
    by_name = {r["name"]: r for r in rows}
    missing = set(plain.values()) - set(by_name)
    if missing:
        raise ValueError(f"the table needs the float rows {sorted(missing)} to compare with")
    out = []
    for row in rows:
        floats = [r for r in rows if r["framework"] == row["framework"] and not r["quantized"]]
        best1 = min(floats, key=lambda r: r["latency_ms"])
        best64 = min(floats, key=lambda r: r["latency_ms_batch64"])
        base = by_name[plain[row["framework"]]]
        out.append({**row, "baseline": best1["name"], "baseline_batch64": best64["name"],
                    "speedup_vs_plain": base["latency_ms"] / row["latency_ms"],
                    "speedup_vs_best": best1["latency_ms"] / row["latency_ms"],
                    "speedup64_vs_plain": base["latency_ms_batch64"] / row["latency_ms_batch64"],
                    "speedup64_vs_best": best64["latency_ms_batch64"] / row["latency_ms_batch64"]})
    return out


def table(rows: list[dict]) -> str:
    """The measured table as aligned text (test accuracy, files, latencies); lesson 13."""
    head = (f"{'method':<22}{'test acc':>9}{'Δ pts [95% CI]':>22}{'file KB':>9}  {'file':<13}"
            f"{'b1 ms':>8}{'vs best':>8}{'b64 ms':>9}{'vs best':>8}  int-only  needs")
    lines = [head, "-" * len(head)]
    for r in rows:
        low, high = r["delta_ci95"]
        lines.append(
            f"{r['name']:<22}{r['accuracy']:>9.2%}"
            f"{r['delta_points']:>+8.2f} [{low:+.2f}, {high:+.2f}]"
            f"{r['size_bytes'] / 1e3:>9.1f}  {r['size_kind']:<13}"
            f"{r['latency_ms']:>8.3f}{r['speedup_vs_best']:>7.2f}x"
            f"{r['latency_ms_batch64']:>9.2f}{r['speedup64_vs_best']:>7.2f}x"
            f"  {'yes' if r['integer_only'] else 'no':<8}  {r['needs']}")
    return "\n".join(lines)


RECORD_FIELDS = ("framework", "method", "model", "accuracy", "delta_points", "delta_ci95",
                 "size_bytes", "latency_ms", "latency_ms_batch64", "integer_only",
                 "test_images", "agreement", "mcnemar_p", "val_accuracy", "val_delta_points",
                 "val_delta_ci95", "size_kind", "state_dict_bytes", "needs", "quantized",
                 "latency_spread_ms", "latency_spread_ms_batch64", "threads",
                 "speedup_vs_plain", "speedup_vs_best", "speedup64_vs_plain",
                 "speedup64_vs_best", "baseline", "integer_only_reasons", "compile_s",
                 "compiled")


def as_record(row: dict) -> dict:
    """The JSON fields of a row (no arrays, no Timing objects), with ``selected_on``; lesson 13."""
    return {**{k: row[k] for k in RECORD_FIELDS if k in row}, "batch": 1, "selected_on": "val"}
