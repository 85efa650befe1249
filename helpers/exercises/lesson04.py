"""Checks for the exercises of lesson 04 (integer-only inference).

Exercises 1 and 4 run the student's kernel on :class:`TracedInts`, integer arrays that record
how they are used: Exercise 1 must not subtract a zero point from a whole input or weight
matrix (the cross-term expansion is the point), Exercise 4 must not touch a float once its
parameters are set. Exercise 3 feeds exact rounding ties for both of gemmlowp's roundings,
unclamped values and values clamped on both sides, so a float or single-rounding answer fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from helpers import checks, intops

# ---------------------------------------------------------------- arrays that record their use

_GEMMS = {np.dot, np.einsum, np.tensordot, np.inner, np.vdot, np.matmul}
# Functions that only move or copy values: the result is still "the raw input matrix".
_LAYOUT = {np.transpose, np.reshape, np.ravel, np.squeeze, np.expand_dims, np.swapaxes,
           np.moveaxis, np.copy, np.atleast_2d, np.asanyarray}


@dataclass
class Trace:
    """What a kernel did with the arrays it was given."""

    zero_point_shifts: list[str] = field(default_factory=list)
    raw_products: int = 0
    float_ops: list[str] = field(default_factory=list)


def _is_float(value) -> bool:
    if isinstance(value, (float, complex, np.floating, np.complexfloating)):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "fc"


def _plain(value):
    if isinstance(value, TracedInts):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _wrap(result, trace: Trace):
    if isinstance(result, tuple):
        return tuple(_wrap(r, trace) for r in result)
    if isinstance(result, np.ndarray) and result.ndim:
        wrapped = result.view(TracedInts)
        wrapped.trace, wrapped.role = trace, None
        return wrapped
    return result


def _roles(values) -> set[str]:
    found = set()
    for value in values:
        if isinstance(value, TracedInts) and value.role:
            found.add(value.role)
        elif isinstance(value, (list, tuple)):
            found |= _roles(value)
    return found


class TracedInts(np.ndarray):
    """An integer array that records zero-point shifts, raw products and float operations.

    ``role`` is "input" or "weight" for the raw matrices a check hands over (kept by
    ``.astype``, ``.T``, ``reshape`` and slicing) and None for anything computed from them.
    """

    trace: Trace | None
    role: str | None

    def __new__(cls, values, trace: Trace, role: str | None = None) -> TracedInts:
        array = np.asarray(values).view(cls)
        array.trace, array.role = trace, role
        return array

    def __array_finalize__(self, obj) -> None:
        self.trace = getattr(obj, "trace", None)
        self.role = getattr(obj, "role", None)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "out" in kwargs:
            kwargs["out"] = tuple(_plain(o) for o in kwargs["out"])
        result = getattr(ufunc, method)(*(_plain(i) for i in inputs), **kwargs)
        roles = _roles(inputs)
        if method == "__call__" and ufunc in (np.subtract, np.add, np.negative) and roles:
            self.trace.zero_point_shifts.append(f"np.{ufunc.__name__} on the {sorted(roles)[0]} matrix")
        if method == "__call__" and ufunc is np.matmul and len(roles) == 2:
            self.trace.raw_products += 1
        outputs = result if isinstance(result, tuple) else (result,)
        if any(_is_float(v) for v in (*inputs, *outputs)):
            self.trace.float_ops.append(f"np.{ufunc.__name__}" + ("" if method == "__call__"
                                                                  else f".{method}"))
        return _wrap(result, self.trace)

    def __array_function__(self, func, types, args, kwargs):
        if func in _GEMMS:
            if len(_roles(args)) == 2:
                self.trace.raw_products += 1
            result = func(*_plain(args), **kwargs)
            if _is_float(result) or any(_is_float(a) for a in args):
                self.trace.float_ops.append(f"np.{func.__name__}")
            return _wrap(result, self.trace)
        result = super().__array_function__(func, types, args, kwargs)
        if isinstance(result, TracedInts) and func not in _LAYOUT and not any(result is a for a in args):
            result = result.view(TracedInts)
            result.trace, result.role = self.trace, None
        if _is_float(result):
            self.trace.float_ops.append(f"np.{func.__name__}")
        return result

    def dot(self, other, out=None):  # the method form of np.dot
        return np.dot(self, other) if out is None else np.dot(self, other, out)


def _call(student, *args, hint: str = ""):
    return checks.attempt_reported(student, *args, hint=hint or (
        "call your function on a small example of your own and read the error; "
        "the check passes the documented arguments"))


def _same(name: str, got, expected, hint: str) -> None:
    """Fail like checks.check_equal when the arrays differ; stay silent when they agree."""
    a, b = np.asarray(got), np.asarray(expected)
    if a.shape != b.shape or not np.array_equal(a, b):
        checks.check_equal(name, a, b, hint)


def _close(name: str, got, expected, hint: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Fail like checks.check_close when values are off; stay silent when they agree."""
    result = checks.compare(got, expected, atol=atol, rtol=rtol)
    if not (result["shape_ok"] and result["approx"]):
        checks.check_close(name, got, expected, atol=atol, rtol=rtol, hint=hint)


def _ints(got, name: str) -> np.ndarray:
    array = np.asarray(_plain(got))
    if array.dtype.kind not in "iu":
        checks.fail(f"{name} must be integers", "an integer array", f"dtype {array.dtype}",
                    "an integer kernel returns integers: no float may appear on the way")
    return array.astype(np.int64)


# ---------------------------------------------------------------- Exercise 1: integer_matmul

def check_integer_matmul(student) -> None:
    """Exercise 1: exact int32 accumulators, computed with the zero-point cross terms."""
    rng = np.random.default_rng(4)
    cases = [  # narrow types, as a kernel gets them: uint8 input, int8 weights
        (rng.integers(0, 256, (5, 300)).astype(np.uint8), 131,
         rng.integers(-128, 128, (7, 300)).astype(np.int8), -3),
        (rng.integers(-128, 128, (4, 64)).astype(np.int8), -128,
         rng.integers(-127, 128, (3, 64)).astype(np.int8), 0),
    ]
    for q_x, zp_x, q_w, zp_w in cases:
        trace = Trace()
        got = _call(student, TracedInts(q_x, trace, "input"), zp_x,
                    TracedInts(q_w, trace, "weight"), zp_w,
                    hint="the inputs arrive as uint8 and int8, as a kernel gets them, and NumPy "
                         "will not mix them with negative numbers or widen them for you: convert "
                         "them to a wide integer type (.astype) before computing")
        what = f"integer_matmul, {q_x.dtype} input (zp {zp_x}) x {q_w.dtype} weights (zp {zp_w})"
        expected = (q_x.astype(np.int64) - zp_x) @ (q_w.astype(np.int64) - zp_w).T
        _same(what, _ints(got, "the accumulators"), expected,
                           "the four terms are x·w − zw·Σx − zx·Σw + K·zx·zw (mind the signs). "
                           "The inputs arrive as uint8/int8, as a kernel gets them: products "
                           "and sums of those overflow unless you widen the type first")
        if np.asarray(got).dtype != np.int32:
            checks.fail(f"{what}: the accumulators must be int32", "int32",
                        np.asarray(got).dtype, "compute in a wide type, then convert the result "
                        "to int32, the accumulator type of int8 kernels")
        if trace.zero_point_shifts:
            checks.fail(
                f"{what}: a zero point was subtracted element by element", "no such subtraction",
                trace.zero_point_shifts[:3],
            hint="this exercise is the expansion: a kernel multiplies the raw integers and "
                 "corrects with row and column sums, because subtracting a zero point from every "
                 "input value would need wider inputs (uint8 − 131 no longer fits in 8 bits)")
        if not trace.raw_products:
            checks.fail(
                f"{what}: no matrix product of the raw integers seen", "one raw product",
                "none seen",
                "the check hands you arrays that record how they are used; np.asarray or "
                "np.array turns them into plain arrays it cannot follow. Change their type "
                "with .astype(...), and multiply the raw input by the raw weights once")
        checks.passed(f"{what}: exact int32 accumulators, raw product plus cross terms.")


# ---------------------------------------------------------------- Exercise 2: quantize_multiplier

MULTIPLIERS = (0.5, 0.75, 2**-10, 1 / 3, 0.00123456, 0.5 + 2**-32, 1 - 2**-33, 1.5, 2.75, 0.0)


def check_quantize_multiplier(student) -> None:
    """Exercise 2: (M0, shift) exactly as TFLite's QuantizeMultiplier, ties and 2^31 included."""
    for m in MULTIPLIERS:
        got = _call(student, m)
        if not (isinstance(got, tuple) and len(got) == 2):
            checks.fail(f"quantize_multiplier({m!r}) must return (M0, shift)", "a pair of ints",
                        got, "return a tuple: the int32 multiplier, then the shift")
        hint = "frexp splits M into a mantissa in [0.5, 1) and a power of two; scale the mantissa " \
               "by 2^31 and round it to the nearest integer"
        if m == 0.5 + 2**-32:
            hint = ("this M puts the scaled mantissa exactly halfway between two integers: "
                    "TFLite rounds halves away from zero (std::round), not to even as Python's "
                    "round() and np.round do")
        elif m == 1 - 2**-33:
            hint = ("here the scaled mantissa rounds up to 2^31, which no longer fits in int32: "
                    "renormalize by halving M0 and adding one to the shift")
        _same(f"quantize_multiplier({m!r})", np.array(got, dtype=np.int64),
              np.array(intops.quantize_multiplier(m), dtype=np.int64), hint)
    checks.passed(f"quantize_multiplier is exactly TFLite's on {len(MULTIPLIERS)} multipliers, "
                  "an exact half and a mantissa that rounds up to 2^31 among them.")


# ---------------------------------------------------------------- Exercise 3: requantize

def _requantize_cases() -> list[tuple[str, tuple]]:
    """(description, (acc, m0, shift, zp_out, qmin, qmax)) chosen so the usual mistakes show."""
    rng = np.random.default_rng(5)
    halves = np.arange(-40, 41)[:, None] * np.ones((1, 4), dtype=np.int64)
    cases = [
        # M = 0.5, 0.25, 0.125, 0.0625 with M0 = 2^30: exact halves in SRDHM and in RDBPOT.
        ("exact halves, nothing clamped", (halves, np.full(4, 2**30), np.array([0, -1, -2, -3]),
                                           3, -128, 127)),
        ("random accumulators, nothing clamped",
         (rng.integers(-2**15, 2**15, (2000, 4)), rng.integers(2**30, 2**31, 4),
          np.array([-8, -9, -10, -9]), -5, -128, 127)),
        ("a left shift (M > 1) into a wide output type",
         (rng.integers(-300, 300, (200, 3)), np.array([1518500250, 2**30, 1234567890]),
          np.array([1, 2, 1]), 7, -1000, 1000)),
        ("large accumulators, clamped at both ends",
         (rng.integers(-2**24, 2**24, (300, 3)), rng.integers(2**30, 2**31, 3),
          np.array([-14, -15, -13]), -5, -128, 127)),
    ]
    return cases


def _requantize_hint(got: np.ndarray, args: tuple) -> str:
    acc, m0, shift, zp_out, qmin, qmax = args
    acc = np.asarray(acc, dtype=np.int64)
    floating = np.clip(np.round(acc * np.asarray(m0) * 2.0 ** (np.asarray(shift) - 31)) + zp_out,
                       qmin, qmax)
    if np.array_equal(got, floating):
        return ("your result is a float multiply rounded once (half to even); TFLite has no float "
                "here: SRDHM with M0 (ties rounded up), then RDBPOT (ties away from zero)")
    if np.array_equal(got, intops.requantize_single_rounding(acc, m0, shift, zp_out, qmin, qmax)):
        return ("your result rounds once, on the exact product; TFLite rounds twice, first inside "
                "SRDHM, then in RDBPOT, and the two differ near halves")
    unclamped = intops.multiply_by_quantized_multiplier(acc, m0, shift) + zp_out
    if np.array_equal(got, unclamped):
        return "clip the result to [qmin, qmax]"
    if np.array_equal(got, np.clip(intops.multiply_by_quantized_multiplier(acc, m0, shift),
                                   qmin, qmax) + zp_out):
        return "add zp_out before clipping: the bounds are in output integers, zero point included"
    return ("left shift only when shift > 0; SRDHM with m0; RDBPOT by max(-shift, 0), which rounds "
            "halves away from zero (a plain >> rounds down); add zp_out; clip. m0 and shift are "
            "per channel: they broadcast along the last axis")


def check_requantize(student) -> None:
    """Exercise 3: TFLite's fixed-point requantization, bit for bit, on ties and clamped values."""
    for what, args in _requantize_cases():
        got = _ints(_call(student, *args), "requantize's output")
        expected = intops.requantize(*args)
        if got.shape != expected.shape or not np.array_equal(got, expected):
            checks.check_equal(f"requantize, {what}", got, expected,
                               _requantize_hint(got, args) if got.shape == expected.shape else
                               "the output has one value per accumulator, the same shape as acc")
        else:
            checks.passed(f"requantize, {what}: exactly right.")


# ---------------------------------------------------------------- Exercise 4: int8_linear

def tie_layer() -> tuple[intops.LinearParams, np.ndarray]:
    """A small layer whose accumulators take every value near 0, so rounding ties abound."""
    q_w = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, -1, 1, 0],
                    [0, 2, 0, -1]], dtype=np.int8)
    layer = intops.LinearParams(
        q_w=q_w, q_bias=np.array([-7, 4, 0, 1, -2, 3], dtype=np.int32),
        m0=np.array([2**30, 2**30, 2**30, 1518500250, 2**30, 1234567890]),
        shift=np.array([0, -1, -2, 0, 2, -1]), zp_x=3, zp_out=-20, relu=True)
    rng = np.random.default_rng(9)
    q_x = np.stack([rng.permutation(np.arange(-128, 128)) for _ in range(4)], axis=1)
    return layer, q_x.astype(np.int8)


def _traced_layer(layer: intops.LinearParams, trace: Trace) -> intops.LinearParams:
    return replace(layer, **{name: TracedInts(np.asarray(getattr(layer, name)), trace)
                             for name in ("q_w", "q_bias", "m0", "shift")})


def _pytorch_note(diff: dict, features: dict) -> str:
    if diff["max_lsb"] <= 1:
        return "within 1 LSB (FBGEMM rounds a float32 product half to even)"
    if features.get("avx2") and not features.get("avx512_vnni"):
        return ("more than 1 LSB: this CPU has no AVX-512 VNNI, and FBGEMM's AVX2 kernel adds "
                "pairs of uint8 x int8 products into a saturating int16, which full 8-bit "
                "inputs overflow")
    return "more than 1 LSB, beyond rounding: see the comparison of kernels further down"


def check_int8_linear(student, layer: intops.LinearParams, q_x: np.ndarray,
                      litert_builtin: np.ndarray, pytorch: np.ndarray | None = None,
                      cpu: dict | None = None) -> None:
    """Exercise 4: 0 LSB against LiteRT's built-in FULLY_CONNECTED, integers only."""
    got = _ints(_call(student, q_x, layer), "int8_linear's output")
    _same("output shape", got.shape, np.shape(litert_builtin),
          "one row per input, one column per output channel")
    if pytorch is not None:
        from helpers import env

        diff = intops.lsb_difference(got, pytorch)
        print(f"vs PyTorch quantized Linear (informative only): {diff['mismatch_fraction']:.3%} "
              f"of outputs differ, max {diff['max_lsb']} LSB: "
              f"{_pytorch_note(diff, cpu if cpu is not None else env.cpu_features())}")
    diff = intops.lsb_difference(got, litert_builtin)
    print(f"vs LiteRT built-in FULLY_CONNECTED: {diff['mismatch_fraction']:.4%} of "
          f"{diff['n_outputs']:,} outputs differ, max {diff['max_lsb']} LSB")
    if diff["max_lsb"]:
        checks.fail("not bit-exact with LiteRT's built-in kernel", "max_lsb 0", diff,
                    "off by one LSB in a few places means a rounding rule: TFLite rounds twice "
                    "(SRDHM, then RDBPOT away from zero), never truncates and never multiplies "
                    "by a float" if diff["max_lsb"] == 1 else
                    "a large difference means a wrong sign in the cross terms, a forgotten int32 "
                    "bias, or the clamp bounds (ReLU raises the lower bound to zp_out)")
    ties, q_ties = tie_layer()
    trace = Trace()
    got_ties = _ints(_call(student, TracedInts(q_ties, trace), _traced_layer(ties, trace)),
                     "int8_linear's output")
    _same("a layer full of rounding ties, with a ReLU clamp above qmin", got_ties, ties(q_ties),
          "the layer object carries everything: use its zp_x, q_w, q_bias, m0, shift, zp_out, "
          "qmin and qmax, put the ReLU into the lower clamp bound, and round as requantize "
          "does (exact halves matter here)")
    if trace.float_ops:
        checks.fail("a float appeared inside the integer layer", "integer operations only",
                    sorted(set(trace.float_ops)),
                    "M0 and the shift replace the float multiplier: an integer-only chip has "
                    "no float unit, and a float product rounds differently near halves")
    checks.passed("int8_linear is bit-exact with LiteRT's built-in kernel, exact on rounding "
                  "ties, and uses integers only.")


# ---------------------------------------------------------------- Exercise 5: fold_bn

def _synthetic_conv_bn(seed: int, bias: bool):
    import torch

    generator = torch.Generator().manual_seed(seed)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.3)
        if bias:
            conv.bias.copy_(torch.randn(4, generator=generator))
    bn = torch.nn.BatchNorm2d(4, eps=1e-3).eval()
    with torch.no_grad():  # small variances, so eps matters; a mean far from 0, so the bias does
        bn.running_var.copy_(torch.tensor([1e-4, 2e-3, 0.5, 4.0]))
        bn.running_mean.copy_(torch.randn(4, generator=generator) * 2)
        bn.weight.copy_(torch.rand(4, generator=generator) + 0.5)
        bn.bias.copy_(torch.randn(4, generator=generator))
    images = torch.randn(3, 4, 8, 8, generator=generator)
    return conv, bn, images


def check_fold_bn(student, conv=None, bn=None, images=None) -> None:
    """Exercise 5: batch norm folded into the conv before it, with and without a conv bias."""
    import torch

    layers = [_synthetic_conv_bn(1, bias=False), _synthetic_conv_bn(2, bias=True)]
    if conv is not None:
        layers.append((conv, bn, images))
    for conv_i, bn_i, images_i in layers:
        stats = [t.detach().numpy() for t in (bn_i.weight, bn_i.bias, bn_i.running_mean,
                                              bn_i.running_var)]
        bias = None if conv_i.bias is None else conv_i.bias.detach().numpy()
        label = f"{tuple(conv_i.weight.shape)} conv {'with' if bias is not None else 'without'} " \
                f"bias, eps {bn_i.eps:g}"
        got = _call(student, conv_i.weight.detach().numpy(), bias, *stats, bn_i.eps)
        ref_w, ref_b = torch.nn.utils.fusion.fuse_conv_bn_weights(
            conv_i.weight, conv_i.bias, bn_i.running_mean, bn_i.running_var, bn_i.eps,
            bn_i.weight, bn_i.bias)
        w_f, b_f = (np.asarray(v, dtype=np.float32) for v in got)
        _close(f"folded weights ({label})", w_f, ref_w.detach().numpy(),
               hint="each output channel c is scaled by γ_c / sqrt(var_c + eps): the output "
                    "channel is the first axis of a conv weight, and eps is part of the "
                    "denominator")
        _close(f"folded bias ({label})", b_f, ref_b.detach().numpy(),
               hint="write BN(conv(x)) with the conv's bias b and collect what is not multiplied "
                    "by x: the running mean is subtracted from b before scaling, β added after")
        with torch.inference_mode():
            folded = torch.nn.functional.conv2d(images_i, torch.from_numpy(w_f),
                                                torch.from_numpy(b_f), padding=conv_i.padding)
            _close(f"folded conv vs conv + BN ({label})", folded, bn_i(conv_i(images_i)),
                   atol=1e-4, hint="return (w', b') with w' shaped like the conv weight and b' "
                   "one value per output channel")
        checks.passed(f"fold_bn on a {label}: the folded conv computes conv + BN.")
