"""Wrong answers for the exercises of lesson 14; see harness.py."""

import torch
from harness import Case, case, solution

from helpers.exercises import lesson14

# Every exercise of lesson 14 has its case below.
PENDING: set[str] = set()


def _ranges(w1, w2):
    return w1.abs().flatten(1).amax(dim=1), w2.abs().transpose(0, 1).flatten(1).amax(dim=1)


def _apply(w1, b1, w2, s):
    return (w1 / s.reshape((-1,) + (1,) * (w1.dim() - 1)), b1 / s,
            w2 * s.reshape((1, -1) + (1,) * (w2.dim() - 2)))


@case("14", "equalize_pair", mistakes=("ratio_inverted", "no_square_root", "scales_rows_of_w2",
                                       "forgets_the_bias", "no_guard_for_dead_channels"))
def _equalize_pair() -> Case:
    reference = solution("14", "equalize_pair", torch=torch)

    def ratio_inverted(w1, b1, w2):
        r1, r2 = _ranges(w1, w2)
        return _apply(w1, b1, w2, torch.where((r1 > 0) & (r2 > 0), torch.sqrt(r2 / r1), 1.0))

    def no_square_root(w1, b1, w2):
        r1, r2 = _ranges(w1, w2)
        return _apply(w1, b1, w2, torch.where((r1 > 0) & (r2 > 0), r1 / r2.clamp(min=1e-12), 1.0))

    def scales_rows_of_w2(w1, b1, w2):
        # layer 2's output channels instead of the input channels it reads from layer 1
        r1, r2 = _ranges(w1, w2)
        s = torch.where((r1 > 0) & (r2 > 0), torch.sqrt(r1 / r2.clamp(min=1e-12)), 1.0)
        new_w1, new_b1, _ = _apply(w1, b1, w2, s)
        return new_w1, new_b1, w2 * s.reshape((-1,) + (1,) * (w2.dim() - 1))

    def forgets_the_bias(w1, b1, w2):
        r1, r2 = _ranges(w1, w2)
        new_w1, _, new_w2 = _apply(w1, b1, w2, torch.where((r1 > 0) & (r2 > 0),
                                                            torch.sqrt(r1 / r2.clamp(min=1e-12)), 1.0))
        return new_w1, b1, new_w2

    def no_guard_for_dead_channels(w1, b1, w2):
        r1, r2 = _ranges(w1, w2)
        return _apply(w1, b1, w2, torch.sqrt(r1 / r2))

    return Case(check=lesson14.check_equalize_pair, reference=reference,
                wrong={"ratio_inverted": ratio_inverted, "no_square_root": no_square_root,
                       "scales_rows_of_w2": scales_rows_of_w2, "forgets_the_bias": forgets_the_bias,
                       "no_guard_for_dead_channels": no_guard_for_dead_channels})


@case("14", "corrected_bias", mistakes=("wrong_sign", "mean_over_images_only",
                                        "reshape_mixes_axes", "mean_absolute_error"))
def _corrected_bias() -> Case:
    reference = solution("14", "corrected_bias", torch=torch)

    def wrong_sign(bias, float_out, quant_out):
        return bias + (quant_out - float_out).transpose(0, 1).flatten(1).mean(dim=1)

    def mean_over_images_only(bias, float_out, quant_out):
        return bias - (quant_out - float_out).mean(dim=0)

    def reshape_mixes_axes(bias, float_out, quant_out):
        error = quant_out - float_out
        return bias - error.reshape(error.shape[1], -1).mean(dim=1)

    def mean_absolute_error(bias, float_out, quant_out):
        return bias - (quant_out - float_out).abs().transpose(0, 1).flatten(1).mean(dim=1)

    return Case(check=lesson14.check_corrected_bias, reference=reference,
                wrong={"wrong_sign": wrong_sign, "mean_over_images_only": mean_over_images_only,
                       "reshape_mixes_axes": reshape_mixes_axes,
                       "mean_absolute_error": mean_absolute_error})


ZETA, GAMMA = 1.1, -0.1


@case("14", "soft_rounding", mistakes=("no_clipping", "plain_sigmoid", "regularizer_without_abs",
                                       "regularizer_without_one_minus", "regularizer_mean_not_sum"))
def _soft_rounding() -> Case:
    reference = solution("14", "soft_rounding", torch=torch)

    def h_of(v):
        return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)

    def no_clipping(v, beta):
        h = torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA
        return h, (1 - (2 * h - 1).abs().pow(beta)).sum()

    def plain_sigmoid(v, beta):
        h = torch.sigmoid(v)
        return h, (1 - (2 * h - 1).abs().pow(beta)).sum()

    def regularizer_without_abs(v, beta):
        h = h_of(v)
        return h, (1 - (2 * h - 1).pow(beta)).sum()

    def regularizer_without_one_minus(v, beta):
        h = h_of(v)
        return h, (2 * h - 1).abs().pow(beta).sum()

    def regularizer_mean_not_sum(v, beta):
        h = h_of(v)
        return h, (1 - (2 * h - 1).abs().pow(beta)).mean()

    return Case(check=lesson14.check_soft_rounding, reference=reference,
                wrong={"no_clipping": no_clipping, "plain_sigmoid": plain_sigmoid,
                       "regularizer_without_abs": regularizer_without_abs,
                       "regularizer_without_one_minus": regularizer_without_one_minus,
                       "regularizer_mean_not_sum": regularizer_mean_not_sum})


def _lsq(x, step, bits, signed, g_of, ste=True, qp_of=None):
    qn = 2 ** (bits - 1) if signed else 0
    qp = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    g = g_of(x, step, qp if qp_of is None else qp_of(qn, qp))
    s = (step - step * g).detach() + step * g
    v = torch.clamp(x / s, -qn, qp)
    rounded = ((torch.round(v) - v).detach() + v) if ste else torch.round(v)
    return rounded * s


@case("14", "lsq_fake_quant", mistakes=("missing_square_root", "n_of_the_step_tensor",
                                        "no_gradient_scale", "round_without_ste",
                                        "qp_from_the_negative_side"))
def _lsq_fake_quant() -> Case:
    reference = solution("14", "lsq_fake_quant", torch=torch)

    def missing_square_root(x, step, bits, signed):
        return _lsq(x, step, bits, signed, lambda x, s, qp: 1.0 / (x.numel() * qp))

    def n_of_the_step_tensor(x, step, bits, signed):
        return _lsq(x, step, bits, signed, lambda x, s, qp: 1.0 / (s.numel() * qp) ** 0.5)

    def no_gradient_scale(x, step, bits, signed):
        return _lsq(x, step, bits, signed, lambda x, s, qp: 1.0)

    def round_without_ste(x, step, bits, signed):
        return _lsq(x, step, bits, signed, lambda x, s, qp: 1.0 / (x.numel() * qp) ** 0.5, ste=False)

    def qp_from_the_negative_side(x, step, bits, signed):
        return _lsq(x, step, bits, signed, lambda x, s, qp: 1.0 / (x.numel() * qp) ** 0.5,
                    qp_of=lambda qn, qp: max(qn, 1) if signed else qp + 1)

    return Case(check=lesson14.check_lsq_fake_quant, reference=reference,
                wrong={"missing_square_root": missing_square_root,
                       "n_of_the_step_tensor": n_of_the_step_tensor,
                       "no_gradient_scale": no_gradient_scale, "round_without_ste": round_without_ste,
                       "qp_from_the_negative_side": qp_from_the_negative_side})
