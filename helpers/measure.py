"""Honest measurements: serialized size, latency (median and spread), accuracy.

Introduced in lesson 00 and used by every lesson after it. The rules: size is the bytes of the
serialized file; latency is timed after warm-up over many runs, reported as a median with its
spread, with the thread count set explicitly; accuracy is measured on the held-out test split.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from helpers import data


def torch_size_bytes(model) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what a checkpoint file would take; lesson 00."""
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def packed_weight_bytes(model, bits: int) -> int:
    """Bytes of a state_dict whose weight matrices and kernels take ``bits`` bits each; lesson 00.

    Floating-point tensors with two or more dimensions (Linear weights, conv kernels) are packed
    at ``bits`` bits per value, each tensor rounded up to whole bytes; every other tensor
    (biases, batch-norm scales and statistics, counters) keeps the size of its own dtype.
    """
    if not isinstance(bits, int) or not 1 <= bits <= 32:
        raise ValueError(f"bits must be an integer from 1 to 32, got {bits!r}")
    total = 0
    for tensor in model.state_dict().values():
        if tensor.is_floating_point() and tensor.dim() >= 2:
            total += (tensor.numel() * bits + 7) // 8
        else:
            total += tensor.numel() * tensor.element_size()
    return total


def tflite_size_bytes(model: bytes | str | os.PathLike) -> int:
    """Bytes of a TFLite flatbuffer, given the bytes or a path to the ``.tflite`` file."""
    if isinstance(model, (bytes, bytearray)):
        return len(model)
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"no .tflite file at {path}; write it first with path.write_bytes()")
    return path.stat().st_size


def megabytes(n_bytes: float) -> float:
    """Bytes to megabytes (10**6 bytes, as file managers show them)."""
    return n_bytes / 1e6


@contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """Run a block with PyTorch limited to ``threads`` intra-op threads, then restore."""
    import torch

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Timing:
    """Latency of one call: median and interquartile spread in milliseconds."""

    median_ms: float
    spread_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    threads: int

    def __str__(self) -> str:
        plural = "s" if self.threads > 1 else ""
        return (f"{self.median_ms:.3f} ms median (IQR {self.spread_ms:.3f} ms, "
                f"{self.repeats} runs, {self.threads} thread{plural})")

    def as_dict(self) -> dict:
        return asdict(self)


def latency(fn: Callable[[], object], threads: int = 1, warmup: int = 5, repeats: int = 30,
            max_seconds: float | None = None) -> Timing:
    """Time ``fn()`` after ``warmup`` calls; PyTorch runs with exactly ``threads`` threads.

    ``max_seconds`` caps the timed loop (at least 5 runs are always timed), so a slow model
    in quick mode cannot stall a lesson. TFLite interpreters take their thread count when
    they are created: build them with the same ``threads`` you pass here.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    times: list[float] = []
    with torch_threads(threads):
        for _ in range(warmup):
            fn()
        start = time.perf_counter()
        for i in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            if max_seconds is not None and i >= 4 and time.perf_counter() - start > max_seconds:
                break
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    p10, p90 = np.percentile(times, [10, 90])
    return Timing(
        median_ms=float(statistics.median(times)),
        spread_ms=float(q3 - q1),
        p10_ms=float(p10),
        p90_ms=float(p90),
        repeats=len(times),
        threads=threads,
    )


def peak_memory_gb() -> float:
    """Peak resident memory of this process in GB (Linux ``VmHWM``); lessons 15 and the runner.

    ``VmHWM`` belongs to the process's own address space. ``ru_maxrss`` does not serve: Linux
    carries the parent's resident size at fork into a child's ``ru_maxrss`` when it execs, so a
    fresh worker started from a 4 GB kernel would report 4 GB. Elsewhere ``ru_maxrss`` (KiB on
    Linux, bytes on macOS) is the fallback.
    """
    import resource
    import sys

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    unit = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 1e9


def speedup(baseline: Timing | float, candidate: Timing | float) -> float:
    """How many times faster ``candidate`` is than ``baseline`` (ratio of medians)."""
    base = baseline.median_ms if isinstance(baseline, Timing) else float(baseline)
    cand = candidate.median_ms if isinstance(candidate, Timing) else float(candidate)
    if cand <= 0:
        raise ValueError("candidate latency must be positive")
    return base / cand


def speed_verdict(baseline: Timing, candidate: Timing, baseline_name: str, candidate_name: str) -> str:
    """A sentence: the ratio of medians, both medians with their IQRs, and whether the IQRs overlap.

    Two timings whose interquartile ranges overlap are not called faster or slower: on a
    shared CPU that difference is within the noise of the measurement (lessons 05, 06).
    """
    ratio = speedup(baseline, candidate)
    low = lambda t: t.median_ms - t.spread_ms / 2  # noqa: E731 - the IQR, centred on the median
    high = lambda t: t.median_ms + t.spread_ms / 2  # noqa: E731
    if high(candidate) < low(baseline):
        word = "faster, and the IQRs do not overlap"
    elif high(baseline) < low(candidate):
        word = "slower, and the IQRs do not overlap"
    else:
        word = "the IQRs overlap: not distinguishable from noise"
    return (f"{candidate_name} at {ratio:.2f}x {baseline_name}'s speed ({candidate.median_ms:.3f} ms, "
            f"IQR {candidate.spread_ms:.3f}, vs {baseline.median_ms:.3f} ms, IQR {baseline.spread_ms:.3f}): "
            f"{word}")


def points_below(baseline_accuracy: float, accuracy: float) -> float:
    """Accuracy points lost against a baseline (negative: better), e.g. 0.977 vs 0.967 -> 1.0.

    Rounded to 6 decimals so that a goal such as "within 1 point" compares the way it reads:
    in floating point, (0.977 - 0.967) * 100 is 1.0000000000000009. Introduced in lesson 06.
    """
    return round((baseline_accuracy - accuracy) * 100, 6)


def torch_predictions(model, split: data.Split, batch_size: int = 256) -> np.ndarray:
    """Predicted class of every image of a split (eval mode, no gradients); lesson 00.

    What :func:`helpers.stats.compare_predictions` pairs with another model's predictions.
    """
    import torch

    x, _ = data.torch_tensors(split)
    model.eval()
    with torch.inference_mode():
        chunks = [model(x[start : start + batch_size]).argmax(dim=1)
                  for start in range(0, len(x), batch_size)]
    return torch.cat(chunks).numpy()


def torch_accuracy(model, split: data.Split, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of a PyTorch model on a split, in eval mode; lesson 00."""
    return float(np.mean(torch_predictions(model, split, batch_size) == split.y))


def keras_accuracy(model, split: data.Split, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of a Keras model on a split; lesson 09."""
    x, y = data.keras_arrays(split)
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def tflite_accuracy(lite_model, split: data.Split) -> float:
    """Top-1 accuracy (0..1) of a :class:`helpers.tflite.LiteModel` on a split; lesson 09.

    Inputs are quantized and outputs dequantized with the tensors' own scale and zero
    point, so int8, uint8 and float models are compared on the same footing.
    """
    x, y = data.keras_arrays(split)
    logits = lite_model.predict(x)
    return float(np.mean(np.argmax(logits, axis=1) == y))
