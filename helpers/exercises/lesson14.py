"""Checks for the exercises of lesson 14 (advanced post-training quantization).

* Exercise 1 (``equalize_pair``): a linear pair whose second layer has fewer outputs than the
  first (so rescaling the wrong axis of W2 cannot pass by accident), a 1x1-conv pair, and a
  dead channel. The equalized pair must compute the same function through a ReLU, and the two
  ranges of every live channel must be equal (which fixes s uniquely).
* Exercise 2 (``corrected_bias``): conv and linear outputs whose error differs per channel,
  per image and per position, so a mean over the wrong axes, or a reshape that mixes axes,
  gives other numbers.
* Exercise 3 (``soft_rounding``): V far out in both tails (h must clip to exactly 0 and 1),
  near the clip points and at 0; betas of 20, 7.5 and 2, as the annealing passes through them.
* Exercise 4 (``lsq_fake_quant``): values clipped on both sides and inside, signed and
  unsigned grids; forward values, the STE gradient for x and the gradient for the step
  (eq. 3 of the LSQ paper times g = 1 / sqrt(N Qp)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from helpers import adaround, checks, lsq

_call = checks.attempt_reported


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol))


# ------------------------------------------------------------------ Exercise 1: equalize_pair

def equalize_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(what, w1, b1, w2, x): pairs with very different channel ranges, as after BN folding."""
    g = torch.Generator().manual_seed(14)
    spread = torch.logspace(-2, 1, 5)
    w1 = torch.randn(5, 6, generator=g) * spread.reshape(-1, 1)
    b1 = torch.randn(5, generator=g) * spread
    w2 = torch.randn(3, 5, generator=g)
    conv1 = torch.randn(5, 2, 3, 3, generator=g) * spread.flip(0).reshape(-1, 1, 1, 1)
    conv_b = torch.randn(5, generator=g)
    conv2 = torch.randn(5, 5, 1, 1, generator=g) * torch.logspace(0, -1, 5).reshape(1, -1, 1, 1)
    dead = w1.clone()
    dead[2] = 0.0  # a pruned channel: range 0, nothing to balance
    dead_b = b1.clone()
    dead_b[2] = 0.5
    return [
        ("a linear pair 6 -> 5 -> 3", w1, b1, w2, torch.randn(16, 6, generator=g)),
        ("a 3x3 conv then a 1x1 conv (5 channels)", conv1, conv_b, conv2,
         torch.randn(2, 2, 6, 6, generator=g)),
        ("a linear pair whose channel 2 is all zeros in W1", dead, dead_b, w2,
         torch.randn(16, 6, generator=g)),
    ]


def _pair_forward(w1, b1, w2, x):
    if w1.dim() == 4:
        return F.conv2d(F.relu(F.conv2d(x, w1, b1, padding=1)), w2)
    return F.linear(F.relu(F.linear(x, w1, b1)), w2)


def check_equalize_pair(student) -> None:
    """Exercise 1: CLE of one pair: same function, equal ranges per live channel, dead ones untouched."""
    for what, w1, b1, w2, x in equalize_cases():
        got = _call(student, w1.clone(), b1.clone(), w2.clone(),
                    hint="W1 is (C, ...) with output channels on axis 0; W2 is (K, C, ...) "
                    "and reads channel i on axis 1: the scale vector must broadcast along that axis")
        if not (isinstance(got, tuple) and len(got) == 3):
            checks.fail(f"equalize_pair on {what} must return (w1, b1, w2)", "three tensors", got,
                        "return the rescaled weight of layer 1, its bias, and the weight of layer 2")
        n1, nb, n2 = (torch.as_tensor(t).detach() for t in got)
        if (n1.shape, nb.shape, n2.shape) != (w1.shape, b1.shape, w2.shape):
            checks.fail(f"{what}: shapes must not change",
                        (tuple(w1.shape), tuple(b1.shape), tuple(w2.shape)),
                        (tuple(n1.shape), tuple(nb.shape), tuple(n2.shape)),
                        "equalization rescales, it never reshapes")
        if not all(bool(torch.isfinite(t).all()) for t in (n1, nb, n2)):
            checks.fail(f"{what}: the result holds NaN or inf", "finite weights",
                        "NaN or inf", "a channel with range 0 on either side cannot be balanced "
                        "(its ratio is 0/0 or x/0): give it the scale 1 and leave it alone")
        if not _close(_pair_forward(n1, nb, n2, x), _pair_forward(w1, b1, w2, x), 1e-4, 1e-5):
            checks.fail(f"{what}: the pair no longer computes the same function",
                        "W2 relu(W1 x + b1) unchanged", "a different output",
                        "dividing output channel i of layer 1 by s_i (weights and bias) is undone "
                        "by multiplying what layer 2 reads from channel i by s_i, which ReLU lets "
                        "through because relu(y / s) = relu(y) / s for s > 0")
        r1 = n1.abs().flatten(1).amax(dim=1)
        r2 = n2.abs().transpose(0, 1).flatten(1).amax(dim=1)
        live = (w1.abs().flatten(1).amax(dim=1) > 0) & (w2.abs().transpose(0, 1).flatten(1).amax(dim=1) > 0)
        if not _close(r1[live], r2[live], rtol=1e-4):
            checks.fail(f"{what}: after equalization each live channel's two ranges are equal",
                        r2[live], r1[live],
                        "you want r1_i / s_i = r2_i * s_i; solve that for s_i (the two ranges "
                        "end up at their geometric mean)")
        if not (_close(n1[~live], w1[~live]) and _close(nb[~live], b1[~live])):
            checks.fail(f"{what}: a dead channel must stay as it was", w1[~live], n1[~live],
                        "give channels with a zero range the scale 1")
        checks.passed(f"equalize_pair on {what}: same function, ranges balanced.")


# ------------------------------------------------------------------ Exercise 2: corrected_bias

def bias_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(what, bias, float_out, quant_out) with an error that varies by channel, image and position."""
    g = torch.Generator().manual_seed(4)
    conv_float = torch.randn(6, 3, 4, 5, generator=g)
    shift = torch.tensor([0.3, -0.2, 0.05]).reshape(1, 3, 1, 1)
    position = torch.linspace(-0.1, 0.4, 20).reshape(1, 1, 4, 5)
    per_image = torch.linspace(-0.2, 0.2, 6).reshape(6, 1, 1, 1)
    conv_quant = conv_float + shift + position * torch.tensor([1.0, -2.0, 0.5]).reshape(1, 3, 1, 1) \
        + per_image + 0.05 * torch.randn(6, 3, 4, 5, generator=g)
    lin_float = torch.randn(8, 4, generator=g)
    lin_quant = lin_float + torch.tensor([-0.4, 0.1, 0.25, 0.0]) + 0.02 * torch.randn(8, 4, generator=g)
    return [("a conv output (N=6, C=3, H=4, W=5)", torch.tensor([0.1, -0.5, 1.0]), conv_float, conv_quant),
            ("a linear output (N=8, C=4)", torch.tensor([0.0, 0.2, -0.3, 0.7]), lin_float, lin_quant)]


def check_corrected_bias(student) -> None:
    """Exercise 2: bias minus the mean output error per channel (axis 1), over images and positions."""
    for what, bias, float_out, quant_out in bias_cases():
        got = _call(student, bias.clone(), float_out.clone(), quant_out.clone(),
                    hint="outputs are (N, C) or (N, C, H, W): channels are axis 1")
        got = torch.as_tensor(got).detach()
        expected = bias - (quant_out - float_out).transpose(0, 1).flatten(1).mean(dim=1)
        if got.shape != expected.shape:
            checks.fail(f"{what}: one bias per output channel", f"shape {tuple(expected.shape)}",
                        f"shape {tuple(got.shape)}", "average the error over every axis except "
                        "the channel axis (1): images, and for a conv every position too")
        if not _close(got, expected, rtol=1e-5, atol=1e-6):
            corrected_error = quant_out - float_out + (got - bias).reshape(
                (1, -1) + (1,) * (quant_out.dim() - 2))
            mean_after = corrected_error.transpose(0, 1).flatten(1).mean(dim=1)
            checks.fail(f"{what}: the corrected layer's mean output error per channel must be 0",
                        torch.zeros_like(mean_after), mean_after,
                        "the quantized layer outputs (quant - float) too much on average, so "
                        "remove that average from its bias; take it channel by channel without "
                        "mixing axes (reshaping (N, C, ...) straight to (C, -1) does mix them)")
        checks.passed(f"corrected_bias on {what}: the mean error per channel is gone.")


# ------------------------------------------------------------------ Exercise 3: soft_rounding

SOFT_V = torch.tensor([-12.0, -3.0, -2.4, -0.7, 0.0, 0.5, 2.4, 3.0, 12.0])


def check_soft_rounding(student) -> None:
    """Exercise 3: AdaRound's rectified sigmoid h(V) and its regularizer at several betas."""
    h_ref = adaround.rectified_sigmoid(SOFT_V)
    for beta in (20.0, 7.5, 2.0):
        got = _call(student, SOFT_V.clone(), beta,
                    hint="return a pair: h (same shape as v) and the regularizer (one number)")
        if not (isinstance(got, tuple) and len(got) == 2):
            checks.fail("soft_rounding must return (h, regularizer)", "a pair", got,
                        "return h first, then the regularizer summed over all weights")
        h, reg = (torch.as_tensor(t).detach() for t in got)
        if not _close(h, h_ref, atol=1e-6):
            checks.fail(f"h(V) at beta={beta}", h_ref, h,
                        "stretch sigmoid(V) from [0, 1] to [gamma, zeta] = [-0.1, 1.1], then clip "
                        "to [0, 1], so that the far tails give exactly 0 and 1")
        expected = adaround.rounding_regularizer(h_ref, beta)
        if reg.numel() != 1 or not bool(torch.isfinite(reg).all()) or not _close(
                reg.reshape(()), expected, atol=1e-5):
            checks.fail(f"the regularizer at beta={beta}", float(expected),
                        reg.tolist() if reg.numel() > 1 else float(reg.reshape(())),
                        "one number: over all weights, add 1 minus |2h - 1| to the power beta; "
                        "the absolute value matters because beta takes every value between 20 "
                        "and 2 as it is annealed")
    checks.passed("soft_rounding: h clips to exactly 0 and 1, the regularizer matches at every beta.")


# ------------------------------------------------------------------ Exercise 4: lsq_fake_quant

def lsq_cases() -> list[tuple[str, torch.Tensor, float, int, bool]]:
    """(what, x, step, bits, signed): values inside the grid and clipped on both sides."""
    g = torch.Generator().manual_seed(8)
    weights = torch.randn(6, 20, generator=g) * 0.6
    weights[0, :3] = torch.tensor([3.0, -3.0, 0.01])
    acts = torch.relu(torch.randn(4, 30, generator=g)) * 1.5
    acts[1, :2] = torch.tensor([9.0, 5.0])
    return [("4-bit signed weights (120 values, some clipped at both ends)", weights, 0.21, 4, True),
            ("3-bit unsigned activations (120 values)", acts, 0.33, 3, False)]


def _paper_gradients(x, step, bits, signed, upstream):
    qn = 2 ** (bits - 1) if signed else 0
    qp = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    s = torch.tensor(step, dtype=x.dtype, requires_grad=True)
    xx = x.clone().requires_grad_(True)
    out = lsq.LsqFunction.apply(xx, s, qn, qp, lsq.lsq_grad_scale(x.numel(), qp))
    out.backward(upstream)
    return out.detach(), xx.grad, s.grad


def check_lsq_fake_quant(student) -> None:
    """Exercise 4: LSQ forward, STE gradient for x, and the gradient-scaled gradient for the step."""
    for what, x, step, bits, signed in lsq_cases():
        upstream = torch.linspace(-1.0, 1.5, x.numel()).reshape(x.shape)
        ref_out, ref_gx, ref_gs = _paper_gradients(x, step, bits, signed, upstream)
        xx = x.clone().requires_grad_(True)
        s = torch.tensor([step], requires_grad=True)
        out = _call(student, xx, s, bits, signed,
                    hint="x is a tensor, step a one-element tensor that requires grad")
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            checks.fail(f"{what}: the output", f"a tensor of shape {tuple(x.shape)}",
                        getattr(out, "shape", out), "return the fake-quantized x, same shape")
        if not _close(out.detach(), ref_out, atol=1e-6):
            checks.fail(f"{what}: forward values", ref_out, out.detach(),
                        "divide by the step, clamp to [-Qn, Qp] (signed: -2^(b-1) .. 2^(b-1) - 1; "
                        "unsigned: 0 .. 2^b - 1), round, multiply by the step")
        if not out.requires_grad:
            checks.fail(f"{what}: no gradient flows", "an output that requires grad", "none",
                        "do not detach the whole result: only the rounding step is bypassed")
        out.backward(upstream)
        if xx.grad is None or not _close(xx.grad, ref_gx, atol=1e-6):
            checks.fail(f"{what}: the gradient for x (straight-through estimator)", ref_gx, xx.grad,
                        "round has no useful gradient: pass the gradient straight through it "
                        "(a value that equals round(v) forward and v backward), and keep the clamp "
                        "so clipped values get 0")
        got_gs = None if s.grad is None else float(s.grad.sum())
        if got_gs is None or not math.isclose(got_gs, float(ref_gs), rel_tol=1e-4, abs_tol=1e-7):
            checks.fail(f"{what}: the gradient for the step", float(ref_gs), got_gs,
                        "the step's gradient is scaled by g = 1 / sqrt(N * Qp), where N counts "
                        "the values of x that share this step and Qp is the top of the grid; use a "
                        "step that is unchanged forward but whose gradient is g times smaller")
        checks.passed(f"lsq_fake_quant on {what}: forward and both gradients match the paper.")
