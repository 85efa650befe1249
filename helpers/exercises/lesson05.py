"""The exercise checks of lesson 05 (pytorch_dynamic).

Each check compares the student's function with what PyTorch or torchao really does (not only
with the course's reference), on inputs chosen so that the usual mistakes show: a type listed
as a parent, a Linear subclass, a Conv2d; LSTM weights whose names do not end in ``.weight``;
a ``threads`` argument that must be honoured; rows that differ only in length; and tokens of
very different sizes, an all-zero token, exact rounding ties and values that clamp.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from helpers import checks, dynamic, measure
from helpers import torchao_dynamic as tdyn


def _toy_model() -> nn.Module:
    """A convolution, Linear layers at two depths, an LSTM and a MultiheadAttention."""
    torch.manual_seed(0)
    return nn.ModuleDict({
        "conv": nn.Conv2d(1, 4, 3),
        "head": nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2)),
        "rnn": nn.LSTM(8, 8),
        "attn": nn.MultiheadAttention(8, 2),
        "block": nn.Sequential(nn.Sequential(nn.Linear(4, 4)), nn.GRU(4, 4)),
    }).eval()


def _quantize_dynamic(model: nn.Module, types) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation is explained in the lesson
        return torch.ao.quantization.quantize_dynamic(model, set(types), dtype=torch.qint8)


def _replaced(model: nn.Module, types) -> list[str]:
    """What quantize_dynamic really replaces: the ground truth of exercise 1."""
    before = dict(model.named_modules())
    return [name for name, module in _quantize_dynamic(model, types).named_modules()
            if name in before and type(module) is not type(before[name])]


def _type_names(types) -> str:
    return "{" + ", ".join(sorted(t.__name__ for t in types)) + "}"


# Listed leaf types, a Linear subclass, a type with no dynamic version, and parent types whose
# qconfig must propagate down (MultiheadAttention, Sequential, and the root's own type).
TARGET_CASES = ({nn.Linear}, {nn.Linear, nn.LSTM}, {nn.Conv2d}, {nn.MultiheadAttention},
                {nn.Sequential}, {nn.ModuleDict})


def _targets_hint(model: nn.Module, types, truth: list[str], got: list[str]) -> str:
    modules = dict(model.named_modules())
    extra = [n for n in got if n not in truth]
    missing = [n for n in truth if n not in got]
    if "" in got:
        return "skip the root module (its name is ''): quantize_dynamic never replaces the model itself"
    if any(n not in modules for n in extra):
        return "return names exactly as model.named_modules() spells them"
    if any(isinstance(modules[n], nn.Linear) and type(modules[n]) is not nn.Linear for n in extra):
        return ("a subclass of a listed type does not count by itself: compare the exact type, "
                "as quantize_dynamic does")
    if extra:
        return ("only modules whose exact type has a dynamic int8 version (DYNAMIC_SUPPORTED) are "
                "swapped; a listed type without one, and the containers themselves, stay as they are")
    if missing and type(model) in types:
        return ("the root counts as an ancestor of every module: when its type is listed, its "
                "qconfig reaches everything inside it (it is still not replaced itself)")
    if missing:
        return ("a listed type hands its qconfig down to every module inside it: a module is "
                "covered when its own type or the type of any module containing it is listed "
                "(the containers are the prefixes of its dotted name)")
    return "keep the order of model.named_modules()"


def check_dynamic_targets(student) -> None:
    """Exercise 1: the names quantize_dynamic replaces, checked against quantize_dynamic itself."""
    for types in TARGET_CASES:
        model = _toy_model()
        truth = _replaced(model, types)
        got = checks.attempt(student, model, set(types))
        got = list(got) if isinstance(got, (list, tuple)) else got
        if got != truth:
            checks.fail(f"dynamic_targets(toy, {_type_names(types)})", truth, got,
                        _targets_hint(model, types, truth, got if isinstance(got, list) else []))
    checks.passed("dynamic_targets predicts exactly what quantize_dynamic replaces: exact types, "
                  "only types with a dynamic version, and qconfigs handed down from listed parents "
                  "(MultiheadAttention reaches its out_proj, Sequential its Linear layers).")


def check_predict_dynamic_bytes(student) -> None:
    """Exercise 2: tensor bytes after quantize_dynamic, against the reference and the real file."""
    for types in ({nn.Linear}, {nn.Linear, nn.LSTM}, {nn.MultiheadAttention}, {nn.Conv2d}):
        model = _toy_model()
        expected = dynamic.predict_dynamic_bytes(model, types)
        got = checks.attempt(student, model, set(types))
        if got != expected:
            checks.fail(f"predict_dynamic_bytes(toy, {_type_names(types)})", expected, got,
                        "only the weights of the modules dynamic_targets lists shrink to 1 byte per "
                        "element (an LSTM's weights are named weight_ih_l0, weight_hh_l0, ...); "
                        "their biases, convolutions and everything else keep element_size() bytes")
    # The prediction must also be what a file really holds (within the few bytes of scales).
    model = dynamic.linear_mlp(64, 256)
    predicted = checks.attempt(student, model, {nn.Linear})
    measured = measure.torch_size_bytes(_quantize_dynamic(model, {nn.Linear}))
    checks.check_true(1.0 < measured / predicted < 1.1,
                      "the prediction is within 10 % of the measured int8 file",
                      "count tensor bytes, not parameters", got=f"{measured / predicted:.3f}",
                      expected="between 1.0 and 1.1")
    checks.passed("predict_dynamic_bytes counts int8 weights at 1 byte and everything else as is.")


def check_quantize_and_measure(student) -> None:
    """Exercise 3: the quantize-then-measure loop honours types, threads and repeats."""
    torch.manual_seed(1)
    model = dynamic.LSTMLanguageModel(vocab=64, embed=16, hidden=32, layers=1).eval()
    example = torch.randint(0, 64, (2, 6))
    types = {nn.LSTM, nn.Linear}
    expected = dynamic.quantize_and_measure(model, example, types, threads=2, repeats=3)
    got = checks.attempt(student, model, example, types, threads=2, repeats=3)
    if type(model.lstm) is not nn.LSTM or type(model.decoder) is not nn.Linear:
        checks.fail("the original model was changed", "nn.LSTM and nn.Linear",
                    f"{type(model.lstm).__name__} and {type(model.decoder).__name__}",
                    "quantize a copy: quantize_dynamic copies unless you ask it to work in place")
    if not isinstance(got, dict) or set(expected) - set(got):
        checks.fail("quantize_and_measure: keys missing", sorted(expected),
                    sorted(got) if isinstance(got, dict) else got,
                    "return one dict with every key listed in the exercise")
    checks.check_equal("size_fp32", got["size_fp32"], expected["size_fp32"],
                       "measure.torch_size_bytes of the float model")
    checks.check_equal("size_int8", got["size_int8"], expected["size_int8"],
                       "quantize exactly the module types passed in `types` (here the LSTM too), "
                       "then measure.torch_size_bytes of the quantized copy")
    checks.check_close("max_abs_error", got["max_abs_error"], expected["max_abs_error"], atol=1e-6,
                       rtol=0, hint="the largest |fp32 output - int8 output| on the example, "
                       "each model called once on the same input")
    for key in ("timing_fp32", "timing_int8"):
        timing = got[key]
        checks.check_true(isinstance(timing, measure.Timing) and timing.threads == 2
                          and timing.repeats == 3,
                          f"{key} is a measure.Timing with the threads and repeats passed in",
                          "pass the function's threads, repeats and max_seconds on to measure.latency",
                          got=timing, expected="Timing(threads=2, repeats=3)")


def check_cosine_agreement(student) -> None:
    """Exercise 4: row-wise cosine, (mean, min), blind to length."""
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 1.0], [-3.0, -4.0]])
    g = torch.Generator().manual_seed(0)
    a_random, b_random = torch.randn(20, 8, generator=g), 3 * torch.randn(20, 8, generator=g)
    cases = (
        ("3 hand-made rows", a, b, (0.5**0.5 / 3, -1.0),
         "one cosine per row (the dot product divided by both lengths), then the mean and the "
         "minimum: [1, 0] and [2, 0] agree perfectly, and opposite rows score -1"),
        ("random rows", a_random, b_random, dynamic.cosine_agreement(a_random, b_random),
         "compute one cosine per row (along the feature axis), not one over the whole matrix or "
         "per column"),
    )
    for what, x, y, expected, hint in cases:
        got = checks.attempt(student, x, y)
        result = checks.compare(got, expected, atol=1e-5)
        if not result["shape_ok"] or not result["approx"]:
            checks.fail(f"cosine_agreement on {what}: not the expected (mean, min)", expected, got,
                        hint)
    checks.passed("cosine_agreement gives the mean and the minimum of the row-wise cosines, "
                  "blind to the length of each row.")


def _tokens_for_per_token_check() -> torch.Tensor:
    """Tokens of very different sizes, an all-zero token, ties and values that clamp."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 64, generator=g)
    x[1] *= 50.0                       # an outlier token: a per-tensor scale follows it
    x[2] = 0.0                         # padding: an all-zero token
    x[3] = -x[3].abs()                 # the largest magnitude is negative
    x[3, 5] = -9.0
    x[4] = torch.randn(64, generator=g).clamp(-20, 20) / 8   # small, no ties except below
    # Largest |x| 127.5, so the scale is exactly 1.0: exact .5 ties, and +/-127.5 at the edges.
    x[4, :8] = torch.tensor([127.5, 0.5, 1.5, 2.5, -0.5, -2.5, -127.5, 3.5])
    x[5] *= 0.01                       # a quiet token
    return x


def _quantized_linear() -> tuple[nn.Module, nn.Linear]:
    torch.manual_seed(0)
    linear = nn.Linear(64, 16).eval()
    return tdyn.quantized_copy(linear, "int8-dynamic"), linear


def _usual_mistakes(x, weight_q, weight_scale, bias) -> dict[str, torch.Tensor]:
    """Outputs of the usual mistakes, so a failing answer gets the hint that fits it."""
    w = weight_q.to(torch.float64) * weight_scale.to(torch.float64).reshape(-1, 1)
    x = x.to(torch.float64)
    absmax = x.abs().amax(dim=1, keepdim=True)

    def linear(q, scale):
        return (q * scale) @ w.T + bias

    def per_token(rounding, clamp=True, peak=absmax):
        scale = (peak / 127.5).clamp(min=tdyn.MIN_SCALE)
        q = rounding(x / scale)
        return linear(q.clamp(-128, 127) if clamp else (q + 128) % 256 - 128, scale)

    def half_away(v):
        return torch.sign(v) * torch.floor(v.abs() + 0.5)

    per_tensor_scale = (x.abs().max() / 127.5).clamp(min=tdyn.MIN_SCALE)
    return {
        "each token needs its own scale from its own largest magnitude: with one scale for the "
        "whole tensor, the loud token crushes the quiet ones":
            linear(torch.round(x / per_tensor_scale).clamp(-128, 127), per_tensor_scale),
        "round to the nearest integer; converting to an integer type truncates toward zero":
            per_token(torch.trunc),
        "ties go to the even neighbour (as torch.round does), not away from zero":
            per_token(half_away),
        "clamp to [-128, 127] before converting: the largest value lands on 127.5, rounds to 128, "
        "and int8 wraps it around to -128": per_token(torch.round, clamp=False),
        "the scale comes from the largest magnitude in the token, negative values included":
            per_token(torch.round, peak=x.amax(dim=1, keepdim=True).clamp(min=0)),
        "quantize the activation too: a float activation times the int8 weight is weight-only "
        "quantization, not the dynamic int8 Linear": x @ w.T + bias,
    }


def _per_token_hint(got, expected, x, weight_q, weight_scale, bias) -> str:
    got, miss = got.to(torch.float64), float((got - expected).abs().max())
    for hint, output in _usual_mistakes(x, weight_q, weight_scale, bias).items():
        # This mistake explains the answer when the answer is far closer to it than to the truth.
        if float((got - output).abs().max()) < 0.1 * miss:
            return hint
    return ("quantize each token on its own grid (its largest |x| maps to 127.5), round ties to "
            "even, clamp to [-128, 127], sum the integer products in int32, then multiply by the "
            "token's scale and the channel's weight scale and add the bias")


def check_per_token_int8_linear(student) -> None:
    """Exercise 5: the student's per-token int8 Linear equals torchao's int8-dynamic layer."""
    layer, linear = _quantized_linear()
    x = _tokens_for_per_token_check()
    weight_q, weight_scale = layer.weight.qdata, layer.weight.scale.flatten()
    bias = linear.bias.detach()
    with torch.inference_mode():
        expected = layer(x)
        got = checks.attempt(student, x.clone(), weight_q, weight_scale, bias)
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        checks.fail("per_token_int8_linear: the output shape is wrong", tuple(expected.shape),
                    tuple(got.shape) if isinstance(got, torch.Tensor) else got,
                    "one row per token, one column per output channel of the weight")
    got = got.detach().float()
    if not torch.isfinite(got).all():
        checks.fail("per_token_int8_linear: the output has NaN or inf", "finite values",
                    got, "an all-zero token (padding) has a largest |x| of 0: give its scale a "
                    "small floor (float32 eps) so it quantizes to zeros instead of dividing by 0")
    row_error = (got - expected).abs().amax(dim=1)
    tolerance = 1e-5 * (1 + expected.abs().amax(dim=1))
    bad = [int(i) for i in torch.nonzero(row_error > tolerance).flatten()]
    if bad:
        checks.fail(f"per_token_int8_linear differs from torchao's int8-dynamic Linear on tokens "
                    f"{bad} of {len(x)}", expected, got,
                    _per_token_hint(got, expected, x, weight_q, weight_scale, bias))
    checks.passed("per_token_int8_linear reproduces torchao's Int8DynamicActivationInt8WeightConfig "
                  f"Linear on all {len(x)} tokens, including the loud, quiet, all-zero and tie "
                  "tokens.")
