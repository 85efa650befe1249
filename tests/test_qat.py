"""Tests for helpers.qat (lesson 08): the STE, low-bit qconfigs, PTQ baselines, evidence, decisions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

from helpers import data, models, qat, qat_loop
from helpers.plot import qat as plot_qat

# Lesson 08 shows and explains these once; in the tests they are noise.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:Please use quant_min:UserWarning"),
              pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")]


# --- fake quantization and the STE -----------------------------------------------------------

def test_fake_quantize_ste_forward_matches_expected_values() -> None:
    x = torch.tensor([-3.0, -1.3, -0.2, 0.0, 0.26, 0.9, 1.55, 2.4])
    x_hat = qat.fake_quantize_ste(x, 0.25, 0, -4, 3)
    # -3.0 and -1.3 clip to qmin * scale; 0.9 and above clip to qmax * scale.
    expected = torch.tensor([-1.0, -1.0, -0.25, 0.0, 0.25, 0.75, 0.75, 0.75])
    assert torch.equal(x_hat, expected)


def test_fake_quantize_ste_matches_torch_op_and_its_gradient() -> None:
    torch.manual_seed(0)
    x = torch.randn(200) * 2
    for scale, zero_point, qmin, qmax in [(0.25, 0, -4, 3), (0.125, 3, 0, 15), (0.5, -2, -8, 7)]:
        mine = x.clone().requires_grad_(True)
        ref_x = x.clone().requires_grad_(True)
        out = qat.fake_quantize_ste(mine, scale, zero_point, qmin, qmax)
        ref = torch.fake_quantize_per_tensor_affine(ref_x, scale, zero_point, qmin, qmax)
        assert torch.equal(out, ref)
        weights = torch.linspace(-1, 1, 200)
        (out * weights).sum().backward()
        (ref * weights).sum().backward()
        assert torch.equal(mine.grad, ref_x.grad)


def test_ste_gradient_is_one_inside_zero_outside() -> None:
    x = torch.tensor([-2.0, -1.0, -0.1, 0.4, 0.74, 0.9, 2.0])
    _, grad = qat.ste_curves(x, 0.25, 0, -4, 3)
    assert grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_plain_round_has_zero_gradient_but_ste_does_not() -> None:
    x = torch.tensor([0.3, 1.7], requires_grad=True)
    torch.round(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]
    y = torch.tensor([0.3, 1.7], requires_grad=True)
    qat.fake_quantize_ste(y, 0.5, 0, -8, 7).sum().backward()
    assert y.grad.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.ones(2), 0.0, 0, -4, 3), ValueError, "scale must be positive"),
        ((torch.ones(2), 0.1, 0, 3, 3), ValueError, "qmin < qmax"),
        ((torch.ones(2), 0.1, 9, 0, 7), ValueError, "zero_point 9"),
        ((torch.ones(2, dtype=torch.int64), 0.1, 0, 0, 7), TypeError, "floating-point"),
        (([1.0, 2.0], 0.1, 0, 0, 7), TypeError, "torch.Tensor"),
    ],
)
def test_fake_quantize_ste_bad_input(args, error, match) -> None:
    with pytest.raises(error, match=match):
        qat.fake_quantize_ste(*args)


# --- qconfigs -------------------------------------------------------------------------------

@pytest.mark.parametrize(("bits", "act", "weight"), [(8, (0, 255), (-127, 127)),
                                                     (4, (0, 15), (-7, 7)),
                                                     (3, (0, 7), (-3, 3)),
                                                     (2, (0, 3), (-1, 1))])
def test_low_bit_qconfig_ranges(bits, act, weight) -> None:
    qconfig = qat.low_bit_qconfig(bits)
    w, a = qconfig.weight(), qconfig.activation()
    assert (a.quant_min, a.quant_max) == act
    assert (w.quant_min, w.quant_max) == weight
    assert w.qscheme == torch.per_channel_symmetric and w.ch_axis == 0
    assert a.qscheme == torch.per_tensor_affine


def test_low_bit_qconfig_per_tensor_weights() -> None:
    assert qat.low_bit_qconfig(4, per_channel_weights=False).weight().qscheme == \
        torch.per_tensor_symmetric


@pytest.mark.parametrize("bits", [1, 9, 4.0, "4"])
def test_low_bit_qconfig_bad_bits(bits) -> None:
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 8"):
        qat.low_bit_qconfig(bits)


def test_low_bit_qconfig_bad_averaging_constant() -> None:
    with pytest.raises(ValueError, match="averaging_constant"):
        qat.low_bit_qconfig(4, averaging_constant=0)


# --- prepare, finetune, PTQ, convert on a small untrained CNN -------------------------------

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = models.SmallCNN(width=8).eval()
    split = data.load_mnist().train.take(64)
    return model, split


def test_prepare_fuses_and_inserts_fake_quant(tiny) -> None:
    model, _ = tiny
    prepared = qat.prepare(model, qat.low_bit_qconfig(4), engine="x86")
    assert prepared.training
    assert type(prepared.stem[0]).__name__ == "ConvBnReLU2d"
    assert prepared.stem[0].weight_fake_quant.quant_max == 7
    assert not any(isinstance(m, tq.FakeQuantizeBase) for m in model.modules())  # a copy


def test_prepare_rejects_model_without_fusion_groups() -> None:
    with pytest.raises(TypeError, match="fusion_groups"):
        qat.prepare(models.MLP())


def test_simulated_ptq_matches_real_int8_closely(tiny) -> None:
    model, split = tiny
    simulated = qat.simulated_ptq(model, split, qat.low_bit_qconfig(8), batches=2, engine="x86")
    fake_quants = [m for m in simulated.modules() if isinstance(m, tq.FakeQuantizeBase)]
    assert all(int(m.fake_quant_enabled) == 1 and int(m.observer_enabled) == 0
               for m in fake_quants)
    x, _ = data.torch_tensors(split)
    with torch.inference_mode():
        reference = model(x)
        error = (simulated(x) - reference).abs().max() / reference.abs().max()
    assert error < 0.1


def test_convert_gives_int8_modules_even_at_4_bits(tiny) -> None:
    model, split = tiny
    prepared = qat.simulated_ptq(model, split, qat.low_bit_qconfig(4), batches=1, engine="x86")
    converted = qat.convert(prepared)
    weight = converted.stem[0].weight()
    assert weight.dtype == torch.qint8
    assert int(weight.int_repr().abs().max()) <= 7
    x, _ = data.torch_tensors(split)
    assert converted(x).shape == (64, 10)


def test_int8_ptq_runs(tiny) -> None:
    model, split = tiny
    quantized = qat.int8_ptq(model, split, batches=1, engine="x86")
    assert type(quantized.fc).__name__ == "Linear" and quantized.fc.weight().is_quantized


def test_simulated_ptq_refuses_the_test_split(tiny) -> None:
    model, _ = tiny
    with pytest.raises(data.SelectionOnTestError, match="calib"):
        qat.simulated_ptq(model, data.load_mnist().test.take(64), qat.low_bit_qconfig(4))


def test_subset_is_seeded_sorted_and_keeps_the_role() -> None:
    split = data.load_mnist().calib
    a, b, c = qat.subset(split, 50, 0), qat.subset(split, 50, 0), qat.subset(split, 50, 1)
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.y, c.y)
    assert a.role == "calib" and len(a) == 50
    with pytest.raises(ValueError, match="n must be from 1"):
        qat.subset(split, 0, 0)


# --- evidence over seeds --------------------------------------------------------------------

def test_spread_and_its_bad_input() -> None:
    result = qat.spread([1.0, 2.0, 3.0])
    assert (result.mean, result.low, result.high, result.n) == (2.0, 1.0, 3.0, 3)
    assert result.std == pytest.approx(1.0)
    assert "3 seeds" in str(result)
    with pytest.raises(ValueError, match="at least 2"):
        qat.spread([1.0])


@pytest.mark.parametrize(("intervals", "expected"), [([(-0.31, 0.1), (-0.12, 0.2)], 0.31),
                                                     ([(0.05, 0.4), (0.1, 0.3)], 0.0),
                                                     ([(-1.234, -0.5)], 1.24)])
def test_worst_loss_points(intervals, expected) -> None:
    assert qat.worst_loss_points(intervals) == pytest.approx(expected)


def test_worst_loss_points_needs_intervals() -> None:
    with pytest.raises(ValueError, match="at least one interval"):
        qat.worst_loss_points([])


# --- deciding what to ship -----------------------------------------------------------------

VAL = data.Split(np.zeros((1, 28, 28), np.float32), np.zeros(1, np.int64), "val")
TABLE = {"ptq-int8": {"method": "ptq", "bits": 8, "size_bytes": 52_029, "accuracy": 0.979},
         "qat-int8": {"method": "qat", "bits": 8, "size_bytes": 52_029, "accuracy": 0.981},
         "qat-4bit": {"method": "qat", "bits": 4, "size_bytes": 52_029, "accuracy": 0.978},
         "packed": {"method": "qat", "bits": 4, "size_bytes": 30_000, "accuracy": 0.972}}


@pytest.mark.parametrize(("budget", "expected"), [(0.3, "ptq-int8"), (1.0, "packed"),
                                                  (0.0, "qat-int8"), (0.05, "qat-int8")])
def test_choose_deployment(budget, expected) -> None:
    assert qat.choose_deployment(TABLE, 0.980, budget, VAL) == expected


def test_choose_deployment_falls_back_to_fp32() -> None:
    assert qat.choose_deployment(TABLE, 0.999, 0.5, VAL) == "fp32"


def test_choose_deployment_bad_input() -> None:
    with pytest.raises(data.SelectionOnTestError, match="val"):
        qat.choose_deployment(TABLE, 0.98, 1, data.Split(VAL.x, VAL.y, "test"))
    with pytest.raises(ValueError, match="budget_points must be >= 0"):
        qat.choose_deployment(TABLE, 0.98, -1, VAL)
    with pytest.raises(KeyError, match="lacks"):
        qat.choose_deployment({"x": {"bits": 4}}, 0.98, 1, VAL)


# --- figures -------------------------------------------------------------------------------

def test_figures_draw_and_reject_bad_input() -> None:
    x = torch.linspace(-1, 1, 21)
    x_hat, grad = qat.ste_curves(x, 0.25, 0, -4, 3)
    assert plot_qat.ste(x, x_hat, grad) is not None
    history = qat_loop.History(loss=[0.2, 0.1], accuracy=[0.9, 0.95], events={1: "frozen"})
    assert plot_qat.training_curves({"4-bit": history}, float_accuracy=0.96) is not None
    assert plot_qat.accuracy_vs_bits({"PTQ": {8: 0.97, 2: 0.1}}, 0.97, y_min=80,
                                     ylabel="val accuracy (%)") is not None
    evidence = {"PTQ": {4: [(-0.5, -0.7, -0.3)] * 3, 3: [(-5.0, -5.5, -4.5)] * 3},
                "QAT": {4: [(-0.1, -0.3, 0.1)] * 3, 3: [(-1.0, -1.3, -0.7)] * 3}}
    assert plot_qat.low_bit_evidence(evidence, images=10_000) is not None
    with pytest.raises(ValueError, match="same length"):
        plot_qat.ste(x, x_hat[:3], grad)
    with pytest.raises(ValueError, match="at least one history"):
        plot_qat.training_curves({})
    with pytest.raises(ValueError, match="needs results"):
        plot_qat.accuracy_vs_bits({}, 0.9)
    with pytest.raises(ValueError, match="low_bit_evidence"):
        plot_qat.low_bit_evidence({}, images=10)
