"""Transformer surgery for lesson 15: which Linear layers share an input, calibration statistics,
and swapping weights or forwards for the length of a ``with`` block.

Works on the Llama blocks of SmolLM2 and the BERT blocks of all-MiniLM-L6-v2. Methods that
rescale input channels (SmoothQuant, AWQ) must fold ``1/s`` into the operation that produces
that input, so :class:`InputGroup` records where the fold goes, or ``None`` where it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class InputGroup:
    """Linear layers that read the same input, and the module that could absorb 1/s; lesson 15."""

    name: str
    linears: tuple[str, ...]
    fold_into: str | None  # a norm or a Linear producing the input; None: no exact fold exists


def _llama_groups(model) -> list[InputGroup]:
    config = model.config
    gqa = config.num_key_value_heads != config.num_attention_heads
    groups = []
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        groups += [
            InputGroup(f"{p}.qkv", (f"{p}.self_attn.q_proj", f"{p}.self_attn.k_proj",
                                    f"{p}.self_attn.v_proj"), f"{p}.input_layernorm"),
            # With grouped-query attention, several heads read one v_proj channel, so o_proj's
            # input channels cannot take separate scales through v_proj.
            InputGroup(f"{p}.o", (f"{p}.self_attn.o_proj",), None if gqa else f"{p}.self_attn.v_proj"),
            InputGroup(f"{p}.gate_up", (f"{p}.mlp.gate_proj", f"{p}.mlp.up_proj"),
                       f"{p}.post_attention_layernorm"),
            # down_proj reads act(gate(x)) * up(x): linear in up_proj's rows.
            InputGroup(f"{p}.down", (f"{p}.mlp.down_proj",), f"{p}.mlp.up_proj"),
        ]
    return groups


def _bert_groups(model) -> list[InputGroup]:
    found = [(name, m) for name, m in model.named_modules()
             if hasattr(m, "encoder") and hasattr(m, "embeddings")]
    if not found:
        raise AttributeError("no BERT encoder inside")
    name, bert = found[0]
    base = f"{name}." if name else ""
    groups = []
    for i in range(len(bert.encoder.layer)):
        p = f"{base}encoder.layer.{i}"
        previous_norm = (f"{base}encoder.layer.{i - 1}.output.LayerNorm" if i
                         else f"{base}embeddings.LayerNorm")
        groups += [
            InputGroup(f"{p}.qkv", tuple(f"{p}.attention.self.{n}" for n in ("query", "key", "value")),
                       previous_norm),
            InputGroup(f"{p}.attn_out", (f"{p}.attention.output.dense",), f"{p}.attention.self.value"),
            InputGroup(f"{p}.ffn_in", (f"{p}.intermediate.dense",), f"{p}.attention.output.LayerNorm"),
            InputGroup(f"{p}.ffn_out", (f"{p}.output.dense",), None),  # GELU in between: no fold
        ]
    return groups


def input_groups(model) -> list[InputGroup]:
    """Every block's Linear layers grouped by shared input (Llama or BERT); lesson 15."""
    if hasattr(model, "config") and getattr(model.config, "model_type", "") == "llama":
        return _llama_groups(model)
    try:
        return _bert_groups(model)
    except (AttributeError, TypeError):
        raise TypeError("input_groups() knows Llama causal LMs (SmolLM2) and BERT encoders "
                        f"(MiniLM), not {type(model).__name__}") from None


def linears_of(groups: list[InputGroup]) -> list[str]:
    """The Linear layer names of some groups, in order; lesson 15."""
    return [name for g in groups for name in g.linears]


def modules(model) -> dict[str, nn.Module]:
    """``dict(model.named_modules())``; lesson 15."""
    return dict(model.named_modules())


@contextmanager
def swapped_weights(model, weights: dict[str, torch.Tensor]) -> Iterator[nn.Module]:
    """Run the model with some Linear weights replaced, restoring the originals after; lesson 15."""
    found = modules(model)
    unknown = sorted(set(weights) - set(found))
    if unknown:
        raise KeyError(f"no modules named {unknown[:3]} in the model")
    saved = {}
    try:
        for name, w in weights.items():
            weight = found[name].weight
            if w.shape != weight.shape:
                raise ValueError(f"{name}: new weight has shape {tuple(w.shape)}, "
                                 f"expected {tuple(weight.shape)}")
            saved[name] = weight.data
            weight.data = w.detach().to(weight.dtype)
        yield model
    finally:
        for name, data in saved.items():
            found[name].weight.data = data


@contextmanager
def swapped_forwards(model, forwards: dict[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]]
                     ) -> Iterator[nn.Module]:
    """Run the model with ``forward(module, x)`` replacing some modules' forward; lesson 15."""
    found = modules(model)
    patched = []
    try:
        for name, forward in forwards.items():
            module = found[name]
            module.forward = lambda x, m=module, f=forward: f(m, x)
            patched.append(module)
        yield model
    finally:
        for module in patched:
            del module.forward


@dataclass
class GroupStats:
    """Statistics of one group's input over calibration tokens; lesson 15."""

    absmax: torch.Tensor           # max |x_j| per input channel
    abs_sum: torch.Tensor          # sum |x_j| per channel (mean = abs_sum / tokens)
    xtx: torch.Tensor | None       # sum x x^T (GPTQ's Hessian up to 2 / tokens)
    tokens: int = 0
    sample: list[torch.Tensor] = field(default_factory=list)

    @property
    def abs_mean(self) -> torch.Tensor:
        """Mean |x_j| per input channel (AWQ's activation statistic)."""
        return self.abs_sum / max(self.tokens, 1)

    @property
    def hessian(self) -> torch.Tensor:
        """GPTQ's H = 2 X^T X / n of the layer-wise squared error."""
        if self.xtx is None:
            raise ValueError("collected without Hessians: pass hessians=True")
        return 2.0 * self.xtx.double() / max(self.tokens, 1)

    @property
    def x(self) -> torch.Tensor:
        """The kept sample of input rows (tokens, channels)."""
        return torch.cat(self.sample)


@torch.no_grad()
def calibration_stats(model, run: Callable[[], None], groups: list[InputGroup],
                      hessians: bool | Collection[str] = True,
                      sample_every: int = 8) -> dict[str, GroupStats]:
    """One pass of ``run()`` collecting each group's input statistics and a row sample; lesson 15.

    ``hessians``: True for every group, False for none, or the names of the groups that need X^T X.
    """
    if sample_every < 1:
        raise ValueError(f"sample_every must be >= 1, got {sample_every}")
    found = modules(model)
    stats: dict[str, GroupStats] = {}

    def hook(group: InputGroup):
        def record(_module, args):
            x = args[0].reshape(-1, args[0].shape[-1]).float()
            s = stats.get(group.name)
            if s is None:
                d = x.shape[1]
                wanted = hessians if isinstance(hessians, bool) else group.name in hessians
                xtx = torch.zeros(d, d) if wanted else None  # fp32, as GPTQ's reference code
                s = stats[group.name] = GroupStats(torch.zeros(d), torch.zeros(d), xtx)
            s.absmax = torch.maximum(s.absmax, x.abs().amax(0))
            s.abs_sum += x.abs().sum(0)
            if s.xtx is not None:
                s.xtx.addmm_(x.T, x)  # in place: a fresh d x d product per call fragments the heap
            s.tokens += x.shape[0]
            s.sample.append(x[::sample_every].clone())
        return record

    handles = [found[g.linears[0]].register_forward_pre_hook(hook(g)) for g in groups]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    missing = [g.name for g in groups if g.name not in stats]
    if missing:
        raise RuntimeError(f"run() never reached {missing[:3]}: does it call the model?")
    return stats


def layer_output_error(x: torch.Tensor, w: torch.Tensor, w_hat: torch.Tensor) -> float:
    """Relative output error ||X (W - W_hat)^T|| / ||X W^T|| of one Linear layer; lesson 15."""
    x = x.to(w.dtype)
    return float((x @ (w - w_hat).T).norm() / (x @ w.T).norm().clamp_min(1e-30))


def per_layer_errors(model, groups: list[InputGroup], stats: dict[str, GroupStats],
                     weights: dict[str, torch.Tensor]) -> list[float]:
    """:func:`layer_output_error` of each Linear of the groups, on each group's sampled inputs; lesson 15."""
    found = modules(model)
    return [layer_output_error(stats[g.name].x, found[n].weight.detach(), weights[n])
            for g in groups for n in g.linears]
