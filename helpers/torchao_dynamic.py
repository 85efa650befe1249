"""torchao's ``quantize_``, the maintained successor of ``quantize_dynamic``; lesson 05.

Introduced in lesson 05 (pytorch_dynamic). ``torch.ao.quantization.quantize_dynamic`` swaps
modules; torchao's ``quantize_(model, config)`` keeps every ``nn.Linear`` and replaces its
``weight`` by a tensor subclass whose ``linear`` quantizes the activation at run time. This
module names the three configs the lesson compares, says which CPU kernels this machine can
use, gives the reference of the lesson's per-token exercise, simulates activation granularity
and bit width to find what makes torchao more accurate, picks a method on the validation
split, and compiles models while timing the compilation and listing the kernels it chose.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable

import torch
from torch import nn

from helpers import data, dynamic, measure, stats

CONFIG_NAMES = ("int8-dynamic", "int8-weight-only", "int8-dynamic-intx")
# float32 eps is the smallest scale torchao allows, so an all-zero token quantizes to zeros.
MIN_SCALE = torch.finfo(torch.float32).eps


def make_config(name: str, **options):
    """The torchao config behind each of the lesson's names (options passed on); lesson 05.

    ``int8-dynamic``: int8 weights per output channel, activations int8 per token at run time.
    ``int8-weight-only``: int8 weights per output channel, activations stay float.
    ``int8-dynamic-intx``: the CPU/edge-oriented config, here with int8 weights per channel and
    asymmetric int8 activations per token, in its default (unpacked, export-friendly) format.
    """
    from torchao.quantization import (
        Int8DynamicActivationInt8WeightConfig,
        Int8DynamicActivationIntxWeightConfig,
        Int8WeightOnlyConfig,
    )
    from torchao.quantization.granularity import PerAxis

    if name == "int8-dynamic":
        return Int8DynamicActivationInt8WeightConfig(**options)
    if name == "int8-weight-only":
        return Int8WeightOnlyConfig(**options)
    if name == "int8-dynamic-intx":
        options = {"weight_dtype": torch.int8, "weight_granularity": PerAxis(0), **options}
        return Int8DynamicActivationIntxWeightConfig(**options)
    raise ValueError(f"config name must be one of {CONFIG_NAMES}, got {name!r}")


def quantized_copy(model: nn.Module, config) -> nn.Module:
    """A deep copy of ``model`` with ``quantize_(copy, config)`` applied (a name or a config); lesson 05."""
    from torchao.quantization import quantize_

    if isinstance(config, str):
        config = make_config(config)
    quantized = copy.deepcopy(model).eval()
    quantize_(quantized, config)  # in place, hence the copy
    return quantized


def packed_cpu_kernels() -> str | None:
    """None when torchao's packed CPU kernels are loaded, else the reason they are not; lesson 05."""
    try:
        torch.ops.torchao._pack_8bit_act_4bit_weight  # noqa: B018 (the lookup is the test)
    except (AttributeError, RuntimeError):
        return ("this torchao build has no packed CPU kernel library (torch.ops.torchao has "
                "no _pack_8bit_act_4bit_weight): the PyPI wheel for x86 does not ship it; it is "
                "built from source with USE_CPP=1, mainly for Arm CPUs")
    return None


def int_mm_against_fp32(rows: int = 64, k: int = 512, n: int = 512, threads: int = 1,
                        repeats: int = 10) -> dict[str, measure.Timing]:
    """Time ``torch._int_mm`` (int8 x int8 -> int32) and a float32 matmul of one shape; lesson 05."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(-128, 128, (rows, k), dtype=torch.int8, generator=generator)
    b = torch.randint(-128, 128, (k, n), dtype=torch.int8, generator=generator)
    af, bf = a.float(), b.float()
    return {"int_mm": measure.latency(lambda: torch._int_mm(a, b), threads=threads, warmup=1,
                                      repeats=repeats),
            "fp32_mm": measure.latency(lambda: af @ bf, threads=threads, warmup=1, repeats=repeats)}


def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row (token), torchao's convention: (q int8, scale (rows, 1)); lesson 05."""
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D (tokens, features), got shape {tuple(x.shape)}")
    # [-128, 127] is 255 steps wide: torchao maps the row's largest |x| to half of that, 127.5.
    scale = (x.abs().amax(dim=1, keepdim=True) / 127.5).clamp(min=MIN_SCALE)
    q = torch.clamp(torch.round(x * (1.0 / scale)), -128, 127).to(torch.int8)
    return q, scale


def per_token_int8_linear(x: torch.Tensor, weight_q: torch.Tensor, weight_scale: torch.Tensor,
                          bias: torch.Tensor | None = None) -> torch.Tensor:
    """What torchao's int8-dynamic Linear computes: per-token int8 x, int32 sums, rescale; lesson 05."""
    q, scale = quantize_per_token(x)
    acc = q.to(torch.int32) @ weight_q.to(torch.int32).T  # exact integer sums
    y = acc.to(torch.float32) * scale * weight_scale.reshape(1, -1)
    return y if bias is None else y + bias


def fake_quantize_activation(x: torch.Tensor, per_token: bool, bits: int) -> torch.Tensor:
    """Asymmetric unsigned quantize-dequantize of x, per token (last dim) or per tensor; lesson 05.

    ``bits=7`` is what ``quantize_dynamic`` uses on x86 (``reduce_range``: 0..127).
    """
    if bits not in (7, 8):
        raise ValueError(f"bits must be 7 (reduce_range) or 8, got {bits}")
    levels = 2**bits - 1
    if per_token:
        lo = x.amin(dim=-1, keepdim=True).clamp(max=0)
        hi = x.amax(dim=-1, keepdim=True).clamp(min=0)
    else:
        lo, hi = x.min().clamp(max=0), x.max().clamp(min=0)
    scale = ((hi - lo) / levels).clamp(min=MIN_SCALE)
    zero_point = torch.round(-lo / scale)
    q = torch.clamp(torch.round(x * (1.0 / scale)) + zero_point, 0, levels)
    return (q - zero_point) * scale


class SimulatedDynamicLinear(nn.Module):
    """A Linear with int8 per-channel weights and fake-quantized activations; lesson 05."""

    def __init__(self, linear: nn.Linear, per_token: bool, bits: int) -> None:
        super().__init__()
        w = linear.weight.detach()
        scale = (w.abs().amax(dim=1, keepdim=True) / 127.5).clamp(min=MIN_SCALE)
        # x * (1 / scale), as torchao computes it: x / scale can round an exact tie differently.
        q = torch.clamp(torch.round(w * (1.0 / scale)), -128, 127)
        self.register_buffer("weight", q * scale)
        self.bias = None if linear.bias is None else linear.bias.detach().clone()
        self.per_token, self.bits = per_token, bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_hat = fake_quantize_activation(x, self.per_token, self.bits)
        return nn.functional.linear(x_hat, self.weight, self.bias)


def simulate_dynamic(model: nn.Module, per_token: bool, bits: int) -> nn.Module:
    """A copy with every nn.Linear simulated as dynamic int8 (granularity, bits); lesson 05."""
    simulated = copy.deepcopy(model).eval()
    for parent in list(simulated.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                setattr(parent, name, SimulatedDynamicLinear(child, per_token, bits))
    return simulated


def choose_method(candidates: dict[str, nn.Module], split: data.Split,
                  timings: dict[str, measure.Timing], baseline: str = "fp32",
                  budget_points: float = 0.3) -> tuple[str, dict[str, stats.PairedComparison]]:
    """The fastest candidate whose accuracy change on ``split`` (val) is not below the budget.

    A candidate qualifies when the low end of the 95 % interval of its accuracy change against
    ``baseline`` is at least ``-budget_points``; the baseline always qualifies. Refuses the test
    split; lesson 05.
    """
    data.require_selection_split(split, "choose_method")
    if baseline not in candidates or set(candidates) - set(timings):
        raise ValueError(f"candidates must include the baseline {baseline!r} and every candidate "
                         f"needs a timing; got candidates {sorted(candidates)}, timings "
                         f"{sorted(timings)}")
    predicted = {name: dynamic.predictions(model, split) for name, model in candidates.items()}
    comparisons = {name: stats.compare_predictions(split.y, predicted[baseline], p)
                   for name, p in predicted.items()}
    eligible = [n for n, c in comparisons.items()
                if n == baseline or c.delta_ci95[0] >= -budget_points]
    return min(eligible, key=lambda n: timings[n].median_ms), comparisons


def compile_in_place(target: nn.Module, run: Callable[[], object],
                     threads: int = 1) -> tuple[float, object, dict[str, int]]:
    """``target.compile()``, then time the first ``run()``, which compiles; lesson 05.

    Returns (seconds, output, matmul kernels the generated code calls, with counts). Inductor
    specialises its code for the thread count, so compile with the ``threads`` you time with.
    Earlier compilations are forgotten first (``torch._dynamo.reset()``), so a lesson that
    compiles a dozen models never hits the recompilation limit and silently runs one eagerly:
    time each model right after compiling it.
    """
    from torch._inductor.utils import run_and_get_code

    torch._dynamo.reset()
    with measure.torch_threads(threads), torch.inference_mode():
        target.compile(dynamic=False)
        start = time.perf_counter()
        output, sources = run_and_get_code(run)
        seconds = time.perf_counter() - start
    return seconds, output, matmul_kernels(sources)


_KERNEL_CALL = re.compile(r"\b(extern_kernels\.\w+|torch\.ops\.[\w.]+)\(")


def matmul_kernels(sources: list[str]) -> dict[str, int]:
    """Matrix-multiply (and RNN) kernels named in Inductor's generated code, with counts; lesson 05."""
    counts: dict[str, int] = {}
    for source in sources:
        for name in _KERNEL_CALL.findall(source):
            short = name.replace("extern_kernels.", "").replace("torch.ops.", "")
            short = short.removesuffix(".default")
            if any(key in short.lower() for key in ("mm", "linear", "matmul", "rnn")):
                counts[short] = counts.get(short, 0) + 1
    return counts


def int8_kernels(kernels: dict[str, int]) -> list[str]:
    """The kernels among ``matmul_kernels(...)`` that multiply in int8; lesson 05."""
    return [name for name in kernels
            if any(key in name.lower() for key in ("_int_mm", "int8", "qlinear", "quantized"))]
