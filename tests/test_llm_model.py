"""Tests for helpers.llm_model (lesson 15): input groups, swaps that restore, calibration statistics."""

from __future__ import annotations

import pytest
import torch
from llm_tiny import tiny_llama as make_tiny_llama

from helpers import gptq, llm_model


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_llama()


def test_llama_groups(tiny):
    model, _ = tiny
    groups = llm_model.input_groups(model)
    assert len(groups) == 2 * 4
    names = llm_model.linears_of(groups)
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n]
    assert sorted(names) == sorted(linears)
    fold = {g.name.rsplit(".", 1)[1]: g.fold_into for g in groups[:4]}
    assert fold == {"qkv": "model.layers.0.input_layernorm", "o": None,
                    "gate_up": "model.layers.0.post_attention_layernorm",
                    "down": "model.layers.0.mlp.up_proj"}
    with pytest.raises(TypeError, match="Llama"):
        llm_model.input_groups(torch.nn.Linear(2, 2))


def test_swaps_restore_the_model(tiny):
    model, _ = tiny
    x = torch.randint(0, 96, (1, 12))
    with torch.no_grad():
        before = model(x).logits
        name = "model.layers.0.mlp.down_proj"
        with llm_model.swapped_weights(model, {name: torch.zeros(64, 128)}):
            changed = model(x).logits
        with llm_model.swapped_forwards(model, {name: lambda m, h: torch.zeros(*h.shape[:-1], 64)}):
            patched = model(x).logits
        after = model(x).logits
    assert not torch.equal(before, changed) and torch.equal(changed, patched) and torch.equal(before, after)
    with pytest.raises(ValueError, match="shape"):
        with llm_model.swapped_weights(model, {name: torch.zeros(3, 3)}):
            pass
    assert torch.equal(model(x).logits, before)
    with pytest.raises(KeyError):
        with llm_model.swapped_weights(model, {"nope": torch.zeros(1)}):
            pass


def test_calibration_stats_match_direct_computation(tiny):
    model, run = tiny
    groups = llm_model.input_groups(model)[:2]
    inputs = []
    handle = dict(model.named_modules())[groups[0].linears[0]].register_forward_pre_hook(
        lambda _m, args: inputs.append(args[0].reshape(-1, 64)))
    run()
    handle.remove()
    x = torch.cat(inputs)
    stats = llm_model.calibration_stats(model, run, groups, sample_every=2)
    s = stats[groups[0].name]
    assert s.tokens == x.shape[0] == 72
    assert torch.allclose(s.absmax, x.abs().amax(0)) and torch.allclose(s.abs_mean, x.abs().mean(0))
    assert torch.allclose(s.hessian, gptq.hessian(x), rtol=1e-5, atol=1e-6)
    assert torch.equal(s.x, torch.cat([t[::2] for t in inputs]))
    with pytest.raises(RuntimeError, match="never reached"):
        llm_model.calibration_stats(model, lambda: None, groups)
    with pytest.raises(ValueError, match="hessians=True"):
        llm_model.calibration_stats(model, run, groups, hessians=False)[groups[0].name].hessian  # noqa: B018


def test_layer_output_error():
    x, w = torch.randn(10, 4), torch.randn(3, 4)
    assert llm_model.layer_output_error(x, w, w) == 0.0
    assert llm_model.layer_output_error(x, w, torch.zeros_like(w)) == pytest.approx(1.0)


def test_per_layer_errors(tiny):
    model, run = tiny
    groups = llm_model.input_groups(model)[:2]
    stats = llm_model.calibration_stats(model, run, groups, hessians=False)
    mods = dict(model.named_modules())
    same = {n: mods[n].weight.detach() for g in groups for n in g.linears}
    assert llm_model.per_layer_errors(model, groups, stats, same) == [0.0] * 4
