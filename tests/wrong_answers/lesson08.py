"""Wrong answers for the exercises of lesson 08; see harness.py."""

from __future__ import annotations

import torch
from harness import Case, case, solution
from torch import nn

from helpers import data, measure
from helpers.exercises import lesson08

# Exercises whose checks still live inline in the notebook. May only shrink.
PENDING: set[str] = set()


def _fake_quant_answer(forward_q, backward_mask):
    """A student's MyFakeQuant built from a forward rule and a gradient-mask rule."""

    class Answer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale, zero_point, qmin, qmax):
            x_hat, mask = forward_q(x, scale, zero_point, qmin, qmax)
            ctx.save_for_backward(mask)
            return x_hat

        @staticmethod
        def backward(ctx, grad_output):
            (mask,) = ctx.saved_tensors
            return backward_mask(grad_output, mask), None, None, None, None

    return lambda x, scale, zero_point, qmin, qmax: Answer.apply(x, scale, zero_point, qmin, qmax)


def _right_forward(x, scale, zero_point, qmin, qmax):
    q = torch.round(x / scale) + zero_point
    return (torch.clamp(q, qmin, qmax) - zero_point) * scale, (q >= qmin) & (q <= qmax)


def _masked(grad_output, mask):
    return grad_output * mask


@case("08", "my_fake_quant", mistakes=("round_half_away_from_zero",
                                       "zero_point_added_after_clamping",
                                       "no_straight_through_gradient",
                                       "gradient_not_masked_where_clipped",
                                       "range_ends_left_out_of_the_mask"))
def _my_fake_quant() -> Case:
    def half_away(x, scale, zero_point, qmin, qmax):
        r = x / scale
        q = torch.sign(r) * torch.floor(r.abs() + 0.5) + zero_point
        return (torch.clamp(q, qmin, qmax) - zero_point) * scale, (q >= qmin) & (q <= qmax)

    def zero_point_late(x, scale, zero_point, qmin, qmax):
        q = torch.round(x / scale)
        inside = (q >= qmin) & (q <= qmax)
        return (torch.clamp(q, qmin, qmax) + zero_point - zero_point) * scale, inside

    def strict_ends(x, scale, zero_point, qmin, qmax):
        x_hat, _ = _right_forward(x, scale, zero_point, qmin, qmax)
        q = torch.round(x / scale) + zero_point
        return x_hat, (q > qmin) & (q < qmax)

    wrong = {
        "round_half_away_from_zero": _fake_quant_answer(half_away, _masked),
        "zero_point_added_after_clamping": _fake_quant_answer(zero_point_late, _masked),
        "no_straight_through_gradient": _fake_quant_answer(
            _right_forward, lambda grad, mask: torch.zeros_like(grad)),
        "gradient_not_masked_where_clipped": _fake_quant_answer(
            _right_forward, lambda grad, mask: grad),
        "range_ends_left_out_of_the_mask": _fake_quant_answer(strict_ends, _masked),
    }
    return Case(check=lesson08.check_my_fake_quant,
                reference=solution("08", "my_fake_quant", torch=torch), wrong=wrong)


def _loop(freeze_at, freeze_bn: bool = True):
    """A training loop that freezes after the epoch ``freeze_at(epoch, freeze_after)`` picks."""

    def qat_finetune_loop(model, loader, epochs, lr, freeze_after):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        history = []
        if freeze_at(0, freeze_after, epochs):
            model.apply(torch.ao.quantization.disable_observer)
            model.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
        for epoch in range(1, epochs + 1):
            model.train()
            losses = []
            for x, y in loader:
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            history.append(sum(losses) / len(losses))
            if freeze_at(epoch, freeze_after, epochs):
                model.apply(torch.ao.quantization.disable_observer)
                if freeze_bn:
                    model.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
        model.eval()
        return history

    return qat_finetune_loop


@case("08", "qat_finetune_loop", mistakes=("freezes_before_the_first_epoch",
                                           "freezes_after_the_last_epoch",
                                           "freezes_one_epoch_late",
                                           "forgets_batch_norm"))
def _qat_finetune_loop() -> Case:
    wrong = {
        "freezes_before_the_first_epoch": _loop(lambda e, k, n: e == 0),
        "freezes_after_the_last_epoch": _loop(lambda e, k, n: e == n),
        "freezes_one_epoch_late": _loop(lambda e, k, n: e == k + 1),
        "forgets_batch_norm": _loop(lambda e, k, n: e == k, freeze_bn=False),
    }
    reference = solution("08", "qat_finetune_loop", torch=torch, nn=nn)
    return Case(check=lesson08.check_qat_finetune_loop, reference=reference, wrong=wrong)


@case("08", "choose_deployment", mistakes=("fewest_bits_instead_of_smallest_file",
                                           "no_budget_filter", "budget_read_as_a_fraction",
                                           "selects_on_the_test_split"))
def _choose_deployment() -> Case:
    def pick(results, keep, key):
        within = [(key(r), name) for name, r in results.items() if keep(r)]
        return min(within)[1] if within else "fp32"

    def order(r):
        return r["size_bytes"], r["method"] != "ptq", -r["accuracy"]

    def fewest_bits_instead_of_smallest_file(results, fp32_accuracy, budget_points, split):
        data.require_selection_split(split, "choose_deployment")
        return pick(results, lambda r: measure.points_below(fp32_accuracy, r["accuracy"])
                    <= budget_points, lambda r: (r["bits"], r["method"] != "ptq"))

    def no_budget_filter(results, fp32_accuracy, budget_points, split):
        data.require_selection_split(split, "choose_deployment")
        return pick(results, lambda r: True, order)

    def budget_read_as_a_fraction(results, fp32_accuracy, budget_points, split):
        data.require_selection_split(split, "choose_deployment")
        return pick(results, lambda r: fp32_accuracy - r["accuracy"] <= budget_points, order)

    def selects_on_the_test_split(results, fp32_accuracy, budget_points, split):
        return pick(results, lambda r: measure.points_below(fp32_accuracy, r["accuracy"])
                    <= budget_points, order)

    wrong = {f.__name__: f for f in (fewest_bits_instead_of_smallest_file, no_budget_filter,
                                     budget_read_as_a_fraction, selects_on_the_test_split)}
    reference = solution("08", "choose_deployment", data=data, measure=measure)
    return Case(check=lesson08.check_choose_deployment, reference=reference, wrong=wrong)
