"""Tests for helpers.llm_outliers (lesson 15): summaries, vector-wise int8, LLM.int8()."""

from __future__ import annotations

import pytest
import torch

from helpers import llm_outliers as lo


def test_summary():
    absmax = torch.ones(100)
    absmax[42] = 80.0
    s = lo.summarize("x", absmax)
    assert (s.top_channel, s.top_over_median, s.above_6, s.above_20x_median) == (42, 80.0, 1, 1)


def test_llm_int8_equals_vectorwise_without_outliers_and_helps_with_them():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(32, 64, generator=g), torch.randn(16, 64, generator=g) * 0.1
    assert torch.equal(lo.llm_int8(x, w), lo.int8_vectorwise(x, w))
    x[:, 3] *= 60
    ref = x @ w.T
    assert lo.outlier_columns(x).tolist().count(True) == 1
    assert (lo.llm_int8(x, w) - ref).norm() < 0.3 * (lo.int8_vectorwise(x, w) - ref).norm()


def test_int8_forwards_count_columns():
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    counter = {}
    forwards = lo.int8_forwards(model, ["0"], 6.0, counter)
    x = torch.randn(5, 8)
    x[0, 2] = 50.0
    y = forwards["0"](model[0], x)
    assert counter == {"outlier_columns": 1, "columns": 8}
    assert torch.allclose(y, model(x), atol=0.05 * float(model(x).abs().max()))
    with pytest.raises(KeyError):
        lo.int8_forwards(model, ["1"])
