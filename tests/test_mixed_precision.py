"""Tests for helpers.mixed_precision (lesson 14): sizes, the val-only sensitivity scan, the search."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import data, mixed_precision, models, quant_sim

# Tiny layers: one thread is several times faster than many on a shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _folded():
    torch.manual_seed(0)
    return quant_sim.fold_batch_norm(models.build_torch_model("ds_cnn", blocks=1, width=8).eval())


def _split(role: str, n: int = 60) -> data.Split:
    rng = np.random.default_rng(0)
    return data.Split(rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n), role)


def test_weight_bytes_by_hand() -> None:
    folded = _folded()
    layers = quant_sim.weight_layers(folded)
    # stem 8x1x3x3, dw 8x1x3x3, pw 8x8x1x1, fc 10x8: 72 + 72 + 64 + 80 weights
    assert [layer.weight.numel() for layer in layers.values()] == [72, 72, 64, 80]
    biases = 8 + 8 + 8 + 10
    scales = 8 + 8 + 8 + 10
    assert mixed_precision.weight_bytes(folded, 8) == 288 + 4 * (scales + biases)
    bits = {"stem.0": 8, "features.0.0": 4, "features.1.0": 2, "fc": 3}
    expected = 72 + 36 + 16 + 30 + 4 * (scales + biases)
    assert mixed_precision.weight_bytes(folded, bits) == expected
    assert mixed_precision.weight_bytes(folded, 32, per_channel=False) == 4 * 288 + 4 * (4 + biases)


def test_sensitivity_and_search_refuse_the_test_split() -> None:
    folded = _folded()
    x = torch.randn(16, 1, 28, 28)
    with pytest.raises(data.SelectionOnTestError, match="validation"):
        mixed_precision.layer_sensitivity(folded, x, _split("test"))
    with pytest.raises(data.SelectionOnTestError, match="validation"):
        mixed_precision.search(folded, x, _split("test"), [])


def test_sensitivity_moves_and_search() -> None:
    folded = _folded()
    x = torch.randn(32, 1, 28, 28)
    val = _split("val")
    table = mixed_precision.layer_sensitivity(folded, x, val, candidate_bits=(4, 2), progress=False)
    assert set(table) == set(quant_sim.weight_layers(folded))
    assert all(row[2] >= row[4] - 1e-6 for row in table.values())  # fewer bits, more damage
    moves = mixed_precision.greedy_moves(table, folded)
    assert len({(n, b) for n, b in moves}) == len(moves)
    for name in table:  # each layer's bits only ever fall
        sequence = [b for n, b in moves if n == name]
        assert sequence == sorted(sequence, reverse=True)
    result = mixed_precision.search(folded, x, val, moves, budget_points=100.0, uniform_bits=(1,),
                                    progress=False)
    assert result.size_bytes == min(result.sizes)  # any assignment fits a 100-point budget
    assert result.bits == dict.fromkeys(table, 1)  # the uniform 1-bit candidate is the smallest
    assert result.sizes[0] == mixed_precision.weight_bytes(folded, 8)
    assert result.path_length == len(moves) + 1 and set(result.uniform()) == {1}
    assert len(result.val_delta_low) == len(result.sizes)
    budget = 5.0
    judged = mixed_precision.search(folded, x, val, moves, budget_points=budget, uniform_bits=(4, 2),
                                    progress=False)
    lows = judged.val_delta_low
    assert lows[judged.chosen] >= -budget  # the interval's lower end, not the point estimate, fits
    smaller = [i for i, size in enumerate(judged.sizes) if size < judged.size_bytes]
    assert all(lows[i] < -budget for i in smaller)  # nothing smaller fits
    with pytest.raises(ValueError, match="budget_points"):
        mixed_precision.search(folded, x, val, moves, budget_points=-1)
    assert mixed_precision.bits_histogram({"a": 4, "b": 4, "c": 8}) == {4: 2, 8: 1}


def test_search_reads_the_interval_not_the_point_estimate(monkeypatch) -> None:
    folded, x, val = _folded(), torch.randn(8, 1, 28, 28), _split("val", n=400)
    y = torch.from_numpy(val.y)
    float_pred, noisy = y.clone(), y.clone()
    float_pred[40:79] = (y[40:79] + 1) % 10
    noisy[:40] = (y[:40] + 1) % 10  # 40 answers lost, 39 won back: a net -0.25 points on 400
    noisy[40:79] = y[40:79]         # images, but an interval reaching below -0.5
    calls = iter([float_pred, float_pred] + [noisy] * 20)  # float, uniform 8-bit (exact), the rest
    monkeypatch.setattr(mixed_precision.quant_sim, "predict", lambda model, inputs: next(calls))
    moves = [("fc", 4), ("stem.0", 4)]
    result = mixed_precision.search(folded, x, val, moves, budget_points=0.5, progress=False)
    point = (result.val_accuracy[-1] - result.float_val_accuracy) * 100
    assert -0.5 <= point < 0 and result.val_delta_low[-1] < -0.5  # the point estimate alone would pass it
    assert result.chosen == 0  # only uniform 8-bit's interval fits
