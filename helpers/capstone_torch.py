"""The PyTorch side of the capstone: every method from one trained network, and its files; lesson 13.

Each builder repeats a recipe of lessons 05 to 09 on the capstone network, written out here so
the capstone depends on no lesson's helpers: dynamic (05), static eager (06) and FX (07), PT2E
with ``X86InductorQuantizer`` and ``torch.compile`` (07), QAT (08), and PyTorch -> LiteRT
with litert-torch (09).

Order matters in a process that also runs TensorFlow: FX, PT2E, ``torch.compile`` and
litert-torch import Triton, and Triton imported *after* TensorFlow crashes the process
(TensorFlow >= 2.20 loads its library with RTLD_GLOBAL). :func:`refuse_after_tensorflow`
stops with an explanation instead.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import sys
import time
import warnings
from collections.abc import Iterator

import torch
import torch.ao.quantization as tq
from torch import nn

from helpers import data, env, models, training, twin

CALIB_BATCH = 32


def refuse_after_tensorflow(what: str) -> None:
    """Raise a clear error if TensorFlow is loaded and Triton is not yet; lesson 13."""
    import importlib.util

    if ("tensorflow" in sys.modules and "triton" not in sys.modules
            and importlib.util.find_spec("triton") is not None):
        raise RuntimeError(
            f"{what} loads Triton, which crashes a process that has already loaded TensorFlow. "
            "Restart the kernel and run the cells in order: every PyTorch step before the first "
            "TensorFlow import.")


def calibrate(prepared, x: torch.Tensor, batch_size: int = CALIB_BATCH) -> int:
    """Run calibration inputs through observers (no .eval(): exported graphs refuse it); lesson 13."""
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            prepared(x[start:start + batch_size])
    return len(x)


def fused_fp32(net: nn.Module) -> nn.Module:
    """The best eager fp32 to ship: batch norm folded into each convolution; lesson 13."""
    model = copy.deepcopy(net).eval()
    return tq.fuse_modules(model, model.fusion_groups())


def dynamic_int8(net: nn.Module) -> nn.Module:
    """``quantize_dynamic`` of the Linear layers: the only ones it touches (lesson 05)."""
    return tq.quantize_dynamic(copy.deepcopy(net).eval(), {nn.Linear}, dtype=torch.qint8)


def static_eager(net: nn.Module, calib: torch.Tensor, engine: str) -> nn.Module:
    """Fuse conv + BN, per-channel qconfig of the engine, calibrate, convert (lesson 06)."""
    model = fused_fp32(net)
    model.qconfig = tq.get_default_qconfig(engine)
    prepared = tq.prepare(model)
    calibrate(prepared, calib)
    return tq.convert(prepared)


def static_fx(net: nn.Module, calib: torch.Tensor, engine: str) -> nn.Module:
    """``prepare_fx`` / ``convert_fx`` with the engine's default QConfigMapping (lesson 07)."""
    from torch.ao.quantization import quantize_fx

    refuse_after_tensorflow("prepare_fx")
    prepared = quantize_fx.prepare_fx(copy.deepcopy(net).eval(),
                                      tq.get_default_qconfig_mapping(engine), (calib[:1],))
    calibrate(prepared, calib)
    return quantize_fx.convert_fx(prepared)


def _export(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """Strict export with a dynamic batch (traced at 2: a batch of 1 specializes to 1)."""
    batch = torch.export.Dim("batch", min=1, max=65_536)
    return torch.export.export(model, (example[:2].clone(),), dynamic_shapes=({0: batch},),
                               strict=True)


def pt2e_x86(net: nn.Module, calib: torch.Tensor) -> torch.fx.GraphModule:
    """PT2E with ``X86InductorQuantizer``: export, prepare, calibrate, convert (lesson 07).

    Without VNNI, torchao advises 7-bit activations (``reduce_range``), as FBGEMM does.
    """
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    refuse_after_tensorflow("PT2E export")
    # torchao registers an Enum with torch's pytree at import, and torch logs a deprecation
    # about it: torchao's business, not the lesson's.
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    features = env.cpu_features()
    vnni = any(features.get(k) for k in ("avx512_vnni", "avx_vnni", "amx_int8"))
    quantizer = xiq.X86InductorQuantizer().set_global(
        xiq.get_default_x86_inductor_quantization_config(reduce_range=not vnni))
    prepared = prepare_pt2e(_export(copy.deepcopy(net).eval(), calib).module(), quantizer)
    calibrate(prepared, calib)
    converted = convert_pt2e(prepared)
    drop_unused_weights(converted)
    allow_exported_model_train_eval(converted)
    return converted


def drop_unused_weights(graph_module: torch.fx.GraphModule) -> None:
    """Delete the float weights ``convert_pt2e`` leaves attached though the graph reads int8 copies.

    Kept, they would double the saved file (lesson 07 shows it).
    """
    used = {str(n.target) for n in graph_module.graph.nodes if n.op == "get_attr"}
    for name, _ in list(graph_module.named_parameters()) + list(graph_module.named_buffers()):
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(graph_module.get_submodule(owner) if owner else graph_module, attr)


def compile_frozen(model: nn.Module, batches: tuple[torch.Tensor, ...]) -> tuple[nn.Module, float]:
    """``torch.compile`` with Inductor freezing, compiled for each batch shape; (model, seconds).

    Static shapes (a dynamic batch fails the int8 convolution lowering of torch 2.14), so each
    batch size used later (1, 64) compiles once here, and the seconds are reported (lesson 07).
    """
    import torch._inductor.config as inductor_config

    refuse_after_tensorflow("torch.compile")
    inductor_config.freezing = True
    compiled = torch.compile(model, dynamic=False)
    start = time.perf_counter()
    with torch.inference_mode():
        for x in batches:
            compiled(x)
    return compiled, time.perf_counter() - start


def qat_int8(net: nn.Module, train: data.Split, engine: str, epochs: int = 1,
             lr: float = 1e-4) -> nn.Module:
    """Eager QAT: fuse for QAT, fake-quantize, fine-tune at a small rate, convert (lesson 08)."""
    model = copy.deepcopy(net).train()
    model = tq.fuse_modules_qat(model, model.fusion_groups())
    model.qconfig = tq.get_default_qat_qconfig(engine)
    prepared = tq.prepare_qat(model)
    training.train_epochs(prepared, train, epochs=epochs, lr=lr, desc="PyTorch QAT")
    return tq.convert(prepared.eval())


def float_control(net: nn.Module, train: data.Split, epochs: int = 1, lr: float = 1e-4) -> nn.Module:
    """The float control of :func:`qat_int8`: the same fine-tuning without fake quantization (lesson 13).

    Fused for QAT like the QAT model (batch norm kept and trained), the same images, epochs,
    learning rate and seed, so the paired difference QAT minus control is the quantization's share.
    """
    model = copy.deepcopy(net).train()
    model = tq.fuse_modules_qat(model, model.fusion_groups())
    training.train_epochs(model, train, epochs=epochs, lr=lr, desc="float control")
    return model.eval()


def artifact(model: nn.Module, example: torch.Tensor) -> tuple[bytes, str]:
    """The deployable file: ``torch.export.save`` if the model exports, else TorchScript.

    Eager and FX int8 modules hold packed weights (``Conv2dPackedParamsBase``) that
    ``torch.export`` cannot serialize; TorchScript (deprecated, still PyTorch's way to ship
    them) can. The label says which; lesson 13.
    """
    refuse_after_tensorflow("torch.export")
    buffer = io.BytesIO()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            program = _export(model, example)
        torch.export.save(program, buffer)
        return buffer.getvalue(), "torch.export"
    except Exception:  # noqa: BLE001 - any export failure means: ship it as TorchScript
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit is deprecated": said above
            torch.jit.save(torch.jit.trace(model, example[:1]), buffer)
        return buffer.getvalue(), "TorchScript"


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``; lesson 13."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@contextlib.contextmanager
def _quiet_litert_torch() -> Iterator[object]:
    from helpers import tflite

    refuse_after_tensorflow("litert-torch")
    with tflite.quiet():
        import litert_torch

        before = litert_torch.config.show_progress
        litert_torch.config.show_progress = False
        try:
            yield litert_torch
        finally:
            litert_torch.config.show_progress = before


def litert_fp32(net: models.DepthwiseSeparableNet, example: torch.Tensor) -> bytes:
    """PyTorch -> LiteRT directly (litert-torch), float, on raw pixels, dynamic batch; lesson 13."""
    model = twin.Deployable(net).eval()
    batch = torch.export.Dim("batch", min=1, max=65_536)
    with _quiet_litert_torch() as litert_torch:
        return bytes(litert_torch.convert(model, (example[:2].clone(),),
                                          dynamic_shapes=({0: batch},)).model_content())


def litert_int8(net: models.DepthwiseSeparableNet, calib: torch.Tensor) -> bytes:
    """litert-torch's own PT2E quantizer (int8 per-channel weights, int8 I/O), converted; lesson 13."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = twin.Deployable(net).eval()
    batch = torch.export.Dim("batch", min=1, max=65_536)
    with _quiet_litert_torch() as litert_torch:
        from litert_torch.quantize import pt2e_quantizer as lq
        from litert_torch.quantize.quant_config import QuantConfig

        quantizer = lq.PT2EQuantizer().set_global(
            lq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        exported = torch.export.export(model, (calib[:2].clone(),), dynamic_shapes=({0: batch},))
        prepared = prepare_pt2e(exported.module(), quantizer)
        calibrate(prepared, calib)
        converted = convert_pt2e(prepared, fold_quantize=False)
        return bytes(litert_torch.convert(converted, (calib[:2].clone(),),
                                          dynamic_shapes=({0: batch},),
                                          quant_config=QuantConfig(pt2e_quantizer=quantizer)
                                          ).model_content())
