"""From ``torch.ao.quantization`` to torchao: each call the course uses, its successor, checked.

Introduced in lesson 07. ``torch.ao.quantization`` (eager mode, FX graph mode) is deprecated;
its successors live in torchao (``quantize_`` for eager-style weight/dynamic quantization,
``torchao.quantization.pt2e`` for graph-mode static quantization and QAT). :func:`table`
builds the migration table row by row, and where both calls exist it runs both on the same
model and data and reports what it measured, so the table cannot drift from the installed
versions. A row whose successor does not exist says "none yet" and why.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

import torch
from torch import nn

from helpers import pt2e, quant

NONE_YET = "none yet"


@dataclass(frozen=True)
class Row:
    """One call of the old API, its successor, what was run to compare them, and the outcome."""

    old: str
    new: str
    check: str
    result: str
    ok: bool | None  # None: nothing to run (no successor, or skipped)

    def as_dict(self) -> dict:
        return {"torch.ao.quantization": self.old, "torchao / torch.export": self.new,
                "checked by": self.check, "result": self.result,
                "ok": "-" if self.ok is None else ("yes" if self.ok else "NO")}


def _sqnr(reference: torch.Tensor, out: torch.Tensor) -> float:
    return quant.sqnr_db(reference, out)


def _dynamic_row(mlp: nn.Module, x: torch.Tensor) -> Row:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    old = torch.ao.quantization.quantize_dynamic(copy.deepcopy(mlp).eval(), {nn.Linear},
                                                 torch.qint8)
    new = copy.deepcopy(mlp).eval()
    quantize_(new, Int8DynamicActivationInt8WeightConfig())
    with torch.inference_mode():
        ref, a, b = mlp.eval()(x), old(x), new(x)
    agree = float((a.argmax(1) == b.argmax(1)).float().mean())
    sqnr_old, sqnr_new = _sqnr(ref, a), _sqnr(ref, b)
    return Row("quantize_dynamic(model, {nn.Linear}, torch.qint8)",
               "quantize_(model, Int8DynamicActivationInt8WeightConfig())",
               "both on the MLP: logit SQNR vs fp32, top-1 agreement",
               f"SQNR {sqnr_old:.1f} dB vs {sqnr_new:.1f} dB, agreement {agree:.1%}",
               min(sqnr_old, sqnr_new) > 20 and agree > 0.95)


def _qconfig_row() -> Row:
    from torch.ao.quantization import get_default_qconfig

    old = get_default_qconfig("x86")
    spec = pt2e.x86_quantizer(reduce_range=False).global_config
    old_w = old.weight.p.keywords
    same_weights = (old_w["dtype"] == torch.qint8 and spec.weight.dtype == torch.int8
                    and old_w["qscheme"] == spec.weight.qscheme == torch.per_channel_symmetric)
    old_obs = old.activation.p.func.__name__
    new_obs = spec.input_activation.observer_or_fake_quant_ctr.p.func.__name__
    return Row('QConfigMapping().set_global(get_default_qconfig("x86"))',
               "X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())",
               "compare the two specs",
               f"weights int8 per-channel symmetric in both: {same_weights}; activation "
               f"observers {old_obs} / {new_obs}; 7-bit activations: old always, new only "
               "with reduce_range=True",
               same_weights and old_obs == new_obs)


def _prepare_convert_rows(model: nn.Module, example: torch.Tensor, calib_x: torch.Tensor,
                          eval_x: torch.Tensor, exported) -> list[Row]:
    from torch.ao.quantization import QConfigMapping, get_default_qconfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    mapping = QConfigMapping().set_global(get_default_qconfig("x86"))
    fx_prepared = prepare_fx(copy.deepcopy(model).eval(), mapping, (example,))
    pt_prepared = pt2e.prepare(copy.deepcopy(exported), quantizer=pt2e.x86_quantizer())
    count = lambda gm: sum("activation_post_process" in n for n, _ in gm.named_modules())  # noqa: E731
    rows = [Row("prepare_fx(model, mapping, example_inputs)",
                "prepare_pt2e(torch.export.export(model, example_inputs, strict=True).module(), "
                "quantizer)", "observers inserted in each",
                f"{count(fx_prepared)} / {count(pt_prepared)} observers",
                count(fx_prepared) > 0 and count(pt_prepared) > 0)]
    batch_norms = pt2e.op_counts(pt_prepared).get("batch_norm", 0) + pt2e.op_counts(
        pt_prepared).get("_native_batch_norm_legit_no_training", 0)
    kinds = [type(m).__name__ for m in fx_prepared.modules()]
    rows.append(Row("fuse_modules(model, [[conv, bn, relu], ...]) (eager mode)",
                    "none needed: prepare_pt2e folds batch norm, Inductor fuses conv + ReLU",
                    "batch-norm ops left after prepare_pt2e (and modules after prepare_fx)",
                    f"PT2E: {batch_norms} batch norms left; FX: {kinds.count('BatchNorm2d')} "
                    f"left, {kinds.count('ConvReLU2d')} ConvReLU2d",
                    batch_norms == 0 and kinds.count("BatchNorm2d") == 0))
    with torch.inference_mode():
        for prepared in (fx_prepared, pt_prepared):
            for start in range(0, len(calib_x), 32):
                prepared(calib_x[start : start + 32])
    fx_int8, pt_int8 = convert_fx(fx_prepared), pt2e.convert(pt_prepared)
    with torch.inference_mode():
        ref, a, b = model.eval()(eval_x), fx_int8(eval_x), pt_int8(eval_x)
    agree = float((a.argmax(1) == b.argmax(1)).float().mean())
    rows.append(Row("convert_fx(prepared)", "convert_pt2e(prepared), then torch.compile",
                    "both calibrated on the same images: logit SQNR vs fp32, top-1 agreement",
                    f"SQNR {_sqnr(ref, a):.1f} dB vs {_sqnr(ref, b):.1f} dB, agreement {agree:.1%}",
                    min(_sqnr(ref, a), _sqnr(ref, b)) > 20 and agree > 0.95))
    quantize_ops = pt2e.op_counts(pt_int8).get("quantize_per_tensor", 0)
    rows.append(Row("QuantStub() / DeQuantStub() / FloatFunctional() (eager mode)",
                    "none needed: torch.export sees every op, the `+` of a skip connection too",
                    "quantize ops placed by the quantizer in the converted graph",
                    f"{quantize_ops} quantize_per_tensor ops, none written by hand",
                    quantize_ops > 0))
    weights = [attrgetter(n.target)(pt_int8) for n in pt_int8.graph.nodes if n.op == "get_attr"]
    int8_weights = sum(isinstance(w, torch.Tensor) and w.dtype == torch.int8 for w in weights)
    rows.append(Row("quantized tensors: torch.qint8 / quint8, qlinear.weight().int_repr()",
                    "plain torch.int8 tensors with explicit scale / zero-point constants",
                    "dtype of the weights stored in the converted graph",
                    f"{int8_weights} weight tensors of dtype torch.int8, no quantized dtype",
                    int8_weights > 0 and not any(getattr(w, "is_quantized", False)
                                                 for w in weights)))
    return rows


def _keep_float_row(model: nn.Module, example: torch.Tensor, exported, name: str) -> Row:
    from torch.ao.quantization import QConfigMapping, get_default_qconfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    mapping = QConfigMapping().set_global(get_default_qconfig("x86")).set_module_name(name, None)
    fx_int8 = convert_fx(prepare_fx(copy.deepcopy(model).eval(), mapping, (example,)))
    fx_float = type(fx_int8.get_submodule(name)).__module__.startswith("torch.nn.modules")
    prepared = pt2e.prepare(copy.deepcopy(exported), quantizer=pt2e.x86_quantizer(keep_float=[name]))
    pt2e.calibrate(prepared, example)
    converted = pt2e.convert(prepared)
    # In the converted graph a quantized layer reads its weight through dequantize_per_channel;
    # a float one reads its own float parameter directly.
    float_weights = [str(n.args[1].target) for n in converted.graph.nodes
                     if n.op == "call_function" and str(n.target).split(".")[-2] in
                     ("linear", "conv2d") and getattr(n.args[1], "op", "") == "get_attr"]
    pt_float = f"{name}.weight" in float_weights
    return Row(f'mapping.set_module_name("{name}", None)',
               f'quantizer.set_module_name_qconfig("{name}", None)',
               f"keep {name} in float in both",
               f"FX leaves {name} a float module: {fx_float}; PT2E feeds it its float weight: "
               f"{pt_float}", fx_float and pt_float)


def _qat_row(model: nn.Module, example: torch.Tensor) -> Row:
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    train = copy.deepcopy(model).train()
    fx_qat = prepare_qat_fx(train, get_default_qat_qconfig_mapping("x86"), (example,))
    batch = torch.export.Dim("batch", min=1, max=pt2e.MAX_BATCH)
    exported = torch.export.export(copy.deepcopy(model).train(), (torch.cat([example] * 2),),
                                   dynamic_shapes=({0: batch},), strict=True)
    quantizer = xiq.X86InductorQuantizer().set_global(
        xiq.get_default_x86_inductor_quantization_config(is_qat=True))
    pt_qat = prepare_qat_pt2e(exported.module(), quantizer)
    count = lambda m: sum("FakeQuantize" in type(x).__name__ for x in m.modules())  # noqa: E731
    return Row("prepare_qat_fx(model, get_default_qat_qconfig_mapping('x86'), example_inputs)",
               "prepare_qat_pt2e(exported_train_model, quantizer(is_qat=True)) (lesson 08)",
               "fake-quantize modules inserted in each",
               f"{count(fx_qat)} / {count(pt_qat)} fake-quantize modules",
               count(fx_qat) > 0 and count(pt_qat) > 0)


def table(model: nn.Module, example: torch.Tensor, calib_x: torch.Tensor, eval_x: torch.Tensor,
          mlp: nn.Module, keep_float: str = "fc", include_qat: bool = True,
          progress: Callable[[str], None] | None = None) -> list[Row]:
    """The migration table for the calls lessons 05-08 use, each checked where both exist; lesson 07.

    ``model`` is an FX-traceable float model (no stubs), ``example`` one input batch,
    ``calib_x`` / ``eval_x`` calibration and evaluation inputs (not test images: nothing is
    chosen here, but nothing needs them either), ``mlp`` a model with Linear layers for the
    dynamic row. ``include_qat=False`` skips the QAT row's second export (quick mode).
    """
    say = progress or (lambda _: None)
    exported = pt2e.export(model, example)
    rows = [_dynamic_row(mlp, eval_x), _qconfig_row()]
    say("prepare / convert")
    rows += _prepare_convert_rows(model, example, calib_x, eval_x, exported)
    rows.append(_keep_float_row(model, example, exported, keep_float))
    say("QAT")
    if include_qat:
        rows.append(_qat_row(model, example))
    else:
        rows.append(Row("prepare_qat_fx(...) / prepare_qat(...)",
                        "prepare_qat_pt2e(...) (lesson 08)", "skipped in quick mode",
                        "run the full lesson (or lesson 08) to run both", None))
    rows += [
        Row("torch.save(int8.state_dict()); rebuild the graph; load_state_dict",
            "torch.export.save(torch.export.export(converted, ...)); torch.export.load",
            "section 3 of this lesson", "reloaded outputs identical (asserted there)", None),
        Row('torch.backends.quantized.engine = "x86" / "qnnpack"', NONE_YET,
            "-", "the quantizer names the backend: X86InductorQuantizer here; the Arm "
            "(XNNPACK) quantizer lives in ExecuTorch, not in torchao", None),
        Row("convert(...) in eager mode, then read qlinear.weight() / .scale", NONE_YET,
            "-", "a PT2E graph has no quantized modules to inspect; read its int8 weight "
            "constants and the scale arguments of its quantize/dequantize nodes", None),
    ]
    return rows
