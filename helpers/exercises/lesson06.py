"""Checks for the exercises of lesson 06 (static quantization, eager mode).

Each check builds its own small, fixed inputs (no MNIST, no trained model), so it runs in
well under a second and a student can rerun it freely:

* ``dequantize_one``: per-channel weights whose channels have different scales and non-zero
  zero points, and a per-tensor weight with a zero point, so ignoring the zero point, adding
  it, or using one channel's scale for every row all fail;
* ``fuse_tiny``: module counts after fusion and the float outputs, so a forgotten group,
  conv-bn pairs without their ReLU, or QAT fusion (which keeps the batch norm) fail;
* ``add_stubs``: a model with two skip connections: the answer must compute the same float
  function, quantize and dequantize at its edges, and give each ``+`` its own
  ``FloatFunctional`` (one shared observer mixes two different ranges);
* ``calibrate``: a prepared model handed over in training mode with unfused batch norms, so
  forgetting ``eval()`` changes the running statistics; batch counting and ``max_batches``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional

from helpers import checks, eager, quant


def _run(what: str, function: Callable, *args, hint: str):
    """Call the student's code; a crash becomes an ExerciseError with a hint (stubs stay friendly)."""
    try:
        return checks.attempt(function, *args)
    except (checks.ExerciseError, checks.NotWrittenYet):
        raise
    except Exception as err:  # noqa: BLE001 - any crash of the student's code is reported
        checks.fail(f"{what} raised {type(err).__name__}", "no error", str(err)[:200], hint)


# ---------------------------------------------------------------- Exercise 1: dequantize_one

def _quantized_linear(weight: torch.Tensor) -> nn.Module:
    layer = torch.ao.nn.quantized.Linear(weight.shape[1], weight.shape[0])
    layer.set_weight_bias(weight, None)
    return layer


def check_dequantize_one(student: Callable) -> None:
    """x_hat = (q - zero_point) * scale with the weight's own row qparams; lesson 06, Exercise 1."""
    base = torch.tensor([[0.5, -1.0, 0.25, 0.9], [2.0, 0.1, -0.3, -2.4], [0.02, 0.7, -0.05, 0.4]])
    weights = {
        "per-channel": torch.quantize_per_channel(
            base, torch.tensor([0.01, 0.02, 0.005]), torch.tensor([0, 3, -7]), axis=0,
            dtype=torch.qint8),
        "per-tensor": torch.quantize_per_tensor(base, 0.0125, 5, torch.qint8),
    }
    for label, weight in weights.items():
        layer = _quantized_linear(weight)
        for row, col in [(0, 1), (1, 0), (1, 3), (2, 2)]:
            got = _run("dequantize_one", student, layer, row, col,
                       hint="read q with int_repr(); for a per-channel weight the channel is the "
                            "row (axis 0), and each channel has its own scale and zero point")
            expected = weight.dequantize()[row, col].item()
            if not isinstance(got, (int, float)) and not (isinstance(got, torch.Tensor)
                                                          and got.numel() == 1):
                checks.fail(f"{label} weight [{row}, {col}]", "a Python float", type(got).__name__,
                            "return one number, e.g. float(...) of your result")
            if abs(float(got) - expected) > 1e-6:
                checks.fail(f"{label} weight [{row}, {col}]", expected, float(got),
                            "use the scale and zero point of the weight's own row for "
                            "per-channel tensors, and subtract the zero point from q before "
                            "multiplying by the scale")
    checks.passed("per-channel and per-tensor weights dequantize exactly as PyTorch does.")


# ---------------------------------------------------------------- Exercise 2: fuse_tiny

def check_fuse_tiny(student: Callable) -> None:
    """Every conv-bn-relu and conv-bn of TinyConvNet fused, float outputs unchanged; lesson 06, Exercise 2."""
    original = eager.tiny_conv_net()
    fused = _run("fuse_tiny", student, eager.tiny_conv_net(),
                 hint="pass the model and a list of groups of attribute names to tq.fuse_modules")
    if not isinstance(fused, nn.Module):
        checks.fail("fuse_tiny's result", "an nn.Module", type(fused).__name__,
                    "return the model that tq.fuse_modules gives back")
    counts = eager.count_modules(fused, ["BatchNorm2d", "ConvReLU2d", "Conv2d", "ReLU"])
    expected = {"BatchNorm2d": 0, "ConvReLU2d": 2, "Conv2d": 3, "ReLU": 2}  # inside ConvReLU2d
    if counts != expected:
        checks.fail("module counts after fusion", expected, counts,
                    "fuse three groups, each named by attribute: two conv-bn-relu triples and "
                    "one conv-bn pair; for inference use the eval-mode fusion, which folds the "
                    "batch norm away (the QAT variant keeps it inside the fused module)")
    x = torch.linspace(-1, 1, 2 * 28 * 28).reshape(2, 1, 28, 28)
    with torch.inference_mode():
        same = torch.allclose(fused(x), original(x), atol=1e-4)
    checks.check_true(same, "the fused model gives the unfused model's outputs (to rounding)",
                      hint="fusion must not change the float result: fuse the model in eval mode")


# ---------------------------------------------------------------- Exercise 3: add_stubs

def _observer_calls(prepared: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """How often each FloatFunctional's observer runs in one forward pass."""
    calls: dict[str, int] = {}
    handles = []
    for name, module in prepared.named_modules():
        if isinstance(module, FloatFunctional):
            calls[name] = 0

            def count(*_, name=name):
                calls[name] += 1

            handles.append(module.activation_post_process.register_forward_hook(count))
    try:
        with torch.inference_mode():
            prepared(x)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def check_add_stubs(student: Callable, engine: str = "x86") -> None:
    """SkipNet made eager-quantizable: stubs at the edges, a FloatFunctional per add; lesson 06, Ex. 3."""
    net = eager.skip_net()
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    wrapped = _run("add_stubs", student, copy.deepcopy(net),
                   hint="return a new nn.Module whose forward reuses the model's layers")
    if not isinstance(wrapped, nn.Module):
        checks.fail("add_stubs' result", "an nn.Module", type(wrapped).__name__,
                    "define a small nn.Module class that holds the model's layers and the stubs")
    wrapped.eval()
    with torch.inference_mode():
        got = _run("the wrapped model in float", wrapped, x,
                   hint="call the original blocks in the original order in forward")
        checks.check_close("float outputs (before quantization)", got, net(x), atol=1e-5,
                           hint="the wrapped model must compute the same function: stem, block_a "
                                "with its skip and ReLU, block_b likewise, pool, flatten, fc")
    kinds = [type(m).__name__ for m in wrapped.modules()]
    checks.check_true("QuantStub" in kinds and "DeQuantStub" in kinds,
                      "the model has a QuantStub and a DeQuantStub", got=sorted(set(kinds)),
                      hint="quantize the input first and dequantize the logits last")
    prepared = _run("eager.prepare", eager.prepare, wrapped, engine,
                    hint="the QuantStub must be a submodule of the returned model")
    calls = _observer_calls(prepared, x)
    used = {name: n for name, n in calls.items() if n}
    checks.check_true(sum(used.values()) == 2 and all(n == 1 for n in used.values()),
                      "each of the two additions has its own FloatFunctional",
                      got=used or "no FloatFunctional used",
                      expected="two FloatFunctionals, each called once",
                      hint="replace each `+` by a FloatFunctional method; one instance per "
                           "addition, because each instance observes the range of its own sum")
    with torch.inference_mode():
        for start in range(0, len(x), 8):
            prepared(x[start : start + 8])
    int8 = eager.convert(prepared)
    try:
        with torch.inference_mode():
            out = int8(x)
    except NotImplementedError as err:  # a float op on quantized tensors, not an unfinished stub
        checks.fail("the int8 model raised NotImplementedError", "int8 logits", str(err)[:120],
                    "every `+` on quantized tensors must go through a FloatFunctional")
    checks.check_true(not out.is_quantized, "the int8 model returns float logits",
                      got=str(out.dtype), hint="end forward with the DeQuantStub")
    sqnr = quant.sqnr_db(net(x).detach(), out)
    checks.check_true(sqnr > 15, f"the int8 logits follow the float ones (SQNR {sqnr:.1f} dB)",
                      got=f"{sqnr:.1f} dB", expected="> 15 dB",
                      hint="quantize once at the input, keep the layers in their order")


# ---------------------------------------------------------------- Exercise 4: calibrate

def _training_mode_prepared(engine: str) -> nn.Module:
    # Unfused batch norms, handed over in training mode: calibrating without eval() would
    # normalize with batch statistics and overwrite the running ones.
    return eager.prepare(eager.tiny_conv_net(), engine).train()


def check_calibrate(student: Callable, engine: str = "x86") -> None:
    """At most max_batches batches, eval mode, images counted; lesson 06, Exercise 4."""
    images = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 3 - 0.5
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, torch.zeros(40, dtype=torch.long)), batch_size=8)
    mine, reference = _training_mode_prepared(engine), _training_mode_prepared(engine)
    stats_before = mine.bn1.running_mean.clone()
    seen = _run("calibrate", student, mine, loader, 3,
                hint="loop over the loader's (x, y) batches and feed x to the model")
    expected = eager.calibrate_loader(reference, loader, 3)
    checks.check_equal("images seen", seen, expected,
                       hint="count len(x) of every batch you ran, and stop after max_batches")
    checks.check_true(not mine.training, "the model is in eval mode",
                      hint="calibration must use the running batch-norm statistics")
    checks.check_close("batch-norm running mean after calibration", mine.bn1.running_mean,
                       stats_before, hint="in training mode batch norm updates its running "
                       "statistics from every batch: switch the model to eval mode first")
    got, want = eager.observer_ranges(mine), eager.observer_ranges(reference)
    checks.check_close("observer ranges", [got[k] for k in sorted(want)],
                       [want[k] for k in sorted(want)],
                       hint="run exactly max_batches batches of images through the model, once each")
