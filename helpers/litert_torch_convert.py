"""PyTorch models to LiteRT ``.tflite`` files with litert-torch (formerly AI Edge Torch).

Introduced in lesson 09. ``litert_torch.convert(model, sample_args)`` exports the model with
``torch.export``, lowers it to the TFLite dialect and writes a flatbuffer that the LiteRT
interpreter runs like any converted Keras model. For int8, the model is first quantized with
PT2E (``torchao.quantization.pt2e``: export, ``prepare_pt2e`` with litert-torch's own
``PT2EQuantizer``, calibration, ``convert_pt2e``) and the quantizer is handed to the converter.

One trap: TensorFlow 2.20 and later load their native library with ``RTLD_GLOBAL``, and
importing ``triton`` (which ``torch._dynamo``, and so litert-torch, import) *after* TensorFlow
then crashes the Python process (tensorflow/tensorflow#124205). :func:`import_litert_torch`
must therefore run before TensorFlow is imported; it refuses with an explanation otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np

from helpers import paths, tflite
from helpers.training import weights_digest


def import_litert_torch():
    """Import litert_torch (and torch's compiler stack) quietly, before TensorFlow; lesson 09."""
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        raise ImportError(
            "TensorFlow is already imported, and importing litert_torch (which imports triton) "
            "after it crashes the Python process (TensorFlow >= 2.20 loads its library with "
            "RTLD_GLOBAL; tensorflow/tensorflow#124205). Restart the kernel and call "
            "litert_torch_convert.import_litert_torch() before tflite.import_tensorflow().")
    with tflite.quiet():
        import litert_torch
        import torch._dynamo  # noqa: F401  (loads triton now, while it is still safe)
    return litert_torch


@contextlib.contextmanager
def _silent_conversion() -> Iterator[None]:
    """No progress lines and no logs: litert-torch prints a line per conversion stage."""
    import litert_torch

    before = litert_torch.config.show_progress
    litert_torch.config.show_progress = False
    try:
        with tflite.quiet():
            yield
    finally:
        litert_torch.config.show_progress = before


def convert_fp32(model, sample) -> bytes:
    """The float ``.tflite`` bytes of a PyTorch model in eval mode, traced on ``sample``."""
    litert_torch = import_litert_torch()
    with _silent_conversion():
        return bytes(litert_torch.convert(model.eval(), (sample,)).model_content())


def quantize_pt2e(model, calib, sample):
    """PT2E int8 with litert-torch's quantizer: (quantized GraphModule, quantizer); lesson 09.

    Symmetric per-channel int8 weights and per-tensor int8 activations, calibrated on the
    ``calib`` batch. The export marks the batch dimension dynamic, so calibration and
    evaluation batches may differ in size from ``sample``.
    """
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    import_litert_torch()
    if calib.shape[1:] != sample.shape[1:]:
        raise ValueError(f"calibration images {tuple(calib.shape)} and the sample "
                         f"{tuple(sample.shape)} differ in shape")
    quantizer = PT2EQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    batch = torch.export.Dim("batch", min=1, max=4096)
    # Export with two examples: a batch of one would be specialized to the constant 1.
    example = sample.repeat(2, *([1] * (sample.dim() - 1)))[:2]
    with tflite.quiet():
        exported = torch.export.export(model.eval(), (example,),
                                       dynamic_shapes=({0: batch},)).module()
        prepared = prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for start in range(0, len(calib), 256):
                prepared(calib[start : start + 256])
        converted = convert_pt2e(prepared, fold_quantize=False)
    return converted, quantizer


def convert_int8(quantized, quantizer, sample) -> bytes:
    """The int8 ``.tflite`` bytes of a PT2E-quantized GraphModule; lesson 09."""
    from litert_torch.quantize.quant_config import QuantConfig

    litert_torch = import_litert_torch()
    with _silent_conversion():
        return bytes(litert_torch.convert(quantized, (sample,),
                                          quant_config=QuantConfig(pt2e_quantizer=quantizer))
                     .model_content())


def cached(model, mode: str, build: Callable[[], bytes],
           refresh: bool = False) -> tuple[bytes, float | None]:
    """``build()``'s bytes from ``data/cache`` by weights, mode and versions, or built now.

    Returns the bytes and the seconds the build took (None when they came from the cache).
    ``refresh=True`` builds again and replaces the cached file.
    """
    from importlib.metadata import version

    key = (f"{mode}|{weights_digest(model)}|litert-torch {version('litert-torch')}"
           f"|torch {version('torch')}")
    path = paths.cache_dir() / f"litert-torch-{hashlib.sha256(key.encode()).hexdigest()[:12]}.tflite"
    if path.exists() and path.stat().st_size > 0 and not refresh:
        return path.read_bytes(), None
    start = time.perf_counter()
    content = build()
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)  # atomic: another notebook never reads half a file
    return content, seconds


def predict_nchw(lite: tflite.LiteModel, x: np.ndarray) -> np.ndarray:
    """Float logits of a batch-1 LiteRT model converted from PyTorch, one image at a time.

    litert-torch keeps PyTorch's NCHW input layout and the sample's fixed batch of 1 (a
    dynamic batch does not lower through ``flatten`` in litert-torch 0.10). The inputs are
    quantized once, each image runs through ``invoke``, the outputs are dequantized once.
    """
    x = np.asarray(x, dtype=np.float32)
    if tuple(x.shape[1:]) != tuple(lite.input_detail["shape"][1:]):
        raise ValueError(f"images of shape {tuple(x.shape[1:])} do not match the model's input "
                         f"{tuple(lite.input_detail['shape'][1:])} (NCHW, as in PyTorch)")
    quantized = lite.quantize_input(x)
    lite.set_batch(1)
    interpreter = lite.interpreter
    source, target = lite.input_detail["index"], lite.output_detail["index"]
    raw = []
    for i in range(len(x)):  # the raw interpreter calls: LiteModel.invoke's checks cost more
        interpreter.set_tensor(source, quantized[i : i + 1])
        interpreter.invoke()
        raw.append(interpreter.get_tensor(target).copy())
    return lite.dequantize_output(np.concatenate(raw))


def torch_logits(model, x, batch_size: int = 1000) -> np.ndarray:
    """A PyTorch model's logits as NumPy, in batches (a PT2E export allows at most 4,096)."""
    import torch

    with torch.inference_mode():
        return np.concatenate([model(x[start : start + batch_size]).numpy()
                               for start in range(0, len(x), batch_size)])
