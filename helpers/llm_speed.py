"""Why batch-1 decoding is memory-bound, and how fast it really runs here: lesson 15.

Generating one token reads every weight once and does two FLOPs per weight: far too few
FLOPs per byte to keep a CPU's arithmetic busy, so the memory bandwidth sets the ceiling,
tokens/s <= bandwidth / bytes read per token. Smaller weights raise the ceiling only if a
kernel reads them in their small form.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from helpers import measure


@torch.no_grad()
def read_bandwidth(megabytes: int = 256, threads: int = 1, repeats: int = 7) -> float:
    """Measured read bandwidth in GB/s: median time of summing a ``megabytes`` fp32 tensor; lesson 15."""
    x = torch.ones(megabytes * 2**20 // 4)
    times = []
    with measure.torch_threads(threads):
        x.sum()  # touch every page once before timing
        for _ in range(repeats):
            start = time.perf_counter()
            x.sum()
            times.append(time.perf_counter() - start)
    return x.numel() * 4 / statistics.median(times) / 1e9


def _linears(model) -> list[torch.nn.Module]:
    seen, found = set(), []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) and id(weight) not in seen:
            seen.add(id(weight))  # a tied lm_head shares the embedding's tensor: read it once
            found.append(module)
        elif type(module).__name__ == "Linear" and hasattr(module, "_packed_params"):
            found.append(module)  # torch.ao dynamic int8 Linear
    return found


def weights_read_per_token(model) -> int:
    """Parameters read per decoded token: every Linear weight (tied lm_head included) once; lesson 15."""
    return sum(m.weight.numel() for m in _linears(model))


FORMATS = ("fp32", "bf16", "int8", "int4-g32")


def format_bytes(model, fmt: str) -> int:
    """Bytes of every Linear weight in a format, fp16 scales included (per row or per 32); lesson 15."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    total = 0
    for m in _linears(model):
        rows, cols = m.weight.shape
        n = rows * cols
        total += {"fp32": 4 * n, "bf16": 2 * n, "int8": n + 2 * rows,
                  "int4-g32": (n + 1) // 2 + 2 * rows * -(-cols // 32)}[fmt]
    return total


def _tensor_bytes(t) -> int:
    if hasattr(t, "__tensor_flatten__"):  # torchao's tensor subclasses hold their data inside
        names, _ = t.__tensor_flatten__()
        return sum(_tensor_bytes(getattr(t, n)) for n in names)
    if getattr(t, "is_quantized", False):
        extra = t.q_per_channel_scales().numel() * 12 if t.qscheme() == torch.per_channel_affine else 12
        return t.int_repr().numel() * t.element_size() + extra
    return t.numel() * t.element_size()


def linear_bytes(model) -> int:
    """Measured bytes of the Linear weights as the model holds them (fp32, torchao, torch.ao); lesson 15."""
    total = 0
    for m in _linears(model):
        total += _tensor_bytes(m.weight() if callable(m.weight) else m.weight)
    return total


def ceiling_tokens_per_s(bytes_per_token_: float, bandwidth_gb_s: float) -> float:
    """The memory-bandwidth ceiling on tokens per second at batch 1; lesson 15."""
    return bandwidth_gb_s * 1e9 / bytes_per_token_


@dataclass(frozen=True)
class DecodeSpeed:
    """Tokens per second of greedy decoding at batch 1 (median and spread over repeats); lesson 15."""

    tokens_per_s: float
    spread: float
    new_tokens: int
    repeats: int
    threads: int


@torch.inference_mode()
def decode_speed(model, prompt_ids: torch.Tensor, new_tokens: int = 32, repeats: int = 3,
                 threads: int = 1) -> DecodeSpeed:
    """Greedy decoding speed at batch 1 after a prefill, with a KV cache; lesson 15."""
    from transformers import DynamicCache

    if prompt_ids.dim() != 2 or prompt_ids.shape[0] != 1:
        raise ValueError(f"prompt_ids must be (1, tokens), got {tuple(prompt_ids.shape)}")
    rates = []
    with measure.torch_threads(threads):
        for r in range(repeats + 1):  # the first run (two tokens) is warm-up
            cache = DynamicCache()
            out = model(prompt_ids, past_key_values=cache, use_cache=True)
            token = out.logits[:, -1:].argmax(-1)
            start = time.perf_counter()
            for _ in range(new_tokens if r else min(new_tokens, 2)):
                out = model(token, past_key_values=cache, use_cache=True)
                token = out.logits[:, -1:].argmax(-1)
            if r:
                rates.append(new_tokens / (time.perf_counter() - start))
    q = statistics.quantiles(rates, n=4) if len(rates) > 1 else (rates[0],) * 3
    return DecodeSpeed(statistics.median(rates), q[2] - q[0], new_tokens, repeats, threads)


def torchao_config(name: str):
    """The torchao config of a speed row: 'int4-weight-only' or 'int8-dyn-act-int4-weight'; lesson 15."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup

    if name == "int4-weight-only":
        return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32))
    if name == "int8-dyn-act-int4-weight":
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(32))
    raise ValueError(f"unknown torchao config {name!r}; use 'int4-weight-only' or 'int8-dyn-act-int4-weight'")


def torchao_kernels_available() -> tuple[bool, str]:
    """Whether torchao's packed low-bit CPU kernels load here, and the reason if not; lesson 15."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerGroup
    from torchao.quantization.quantize_.workflows.intx.intx_packing_format import IntxPackingFormat

    probe = torch.nn.Sequential(torch.nn.Linear(64, 64, bias=False))
    try:
        quantize_(probe, Int8DynamicActivationIntxWeightConfig(
            weight_dtype=torch.int4, weight_granularity=PerGroup(32),
            intx_packing_format=IntxPackingFormat.OPAQUE_TORCHAO_AUTO))
        return True, "torchao's packed low-bit CPU kernels are loaded"
    except Exception as err:  # the library raises a plain Exception when its kernels are missing
        return False, str(err).strip().splitlines()[0]


def quantized_copy(model, name: str):
    """A copy of the model for a speed row: torchao config by name, or 'dynamic-int8' (FBGEMM); lesson 15."""
    import copy

    clone = copy.deepcopy(model).eval()
    # Untie lm_head from the embedding, so quantizing one leaves the other alone.
    clone.lm_head.weight = torch.nn.Parameter(clone.lm_head.weight.detach().clone())
    if name == "dynamic-int8":
        return torch.ao.quantization.quantize_dynamic(clone, {torch.nn.Linear}, dtype=torch.qint8)
    from torchao.quantization import quantize_

    quantize_(clone, torchao_config(name))
    return clone


def compile_linear_regions(model) -> int:
    """Regional torch.compile of every MLP block and every other Linear (attention, lm_head); lesson 15.

    Identical blocks share one compiled graph, so this compiles a handful of graphs instead of
    the whole model (whose KV-cache bookkeeping would recompile per layer). Returns how many
    modules were wrapped.
    """
    count = 0
    for name, module in model.named_modules():
        if name.endswith(".mlp") or (isinstance(module, torch.nn.Linear) and ".mlp." not in name):
            module.compile(dynamic=False)
            count += 1
    return count


def _speed_worker(config: str, compiled: bool, new_tokens: int, repeats: int, threads: int, queue) -> None:
    """Child process: load SmolLM2, apply a config, optionally compile, measure decoding."""
    import logging
    import warnings

    for logger in ("torch.utils._pytree", "torch._inductor", "torch._dynamo", "torch.utils.cpp_extension"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    from helpers import llm

    torch.set_num_threads(threads)  # fixed for the whole run: a change would force a recompile
    try:
        import torch._inductor.config as inductor_config

        inductor_config.compile_threads = 1
        model, tokenizer, _ = llm.load_smollm2(verbose=False)
        if config != "fp32":
            model = quantized_copy(model, config)
        prompt = tokenizer("def quantize(x, scale, zero_point):", return_tensors="pt").input_ids
        compile_s = 0.0
        if compiled:
            compile_linear_regions(model)
            start = time.perf_counter()
            decode_speed(model, prompt, new_tokens=4, repeats=1, threads=threads)  # compiles
            compile_s = time.perf_counter() - start
        speed = decode_speed(model, prompt, new_tokens, repeats, threads)
        queue.put({"status": "ok", "speed": speed, "compile_s": compile_s, "bytes": linear_bytes(model),
                   "peak_gb": measure.peak_memory_gb()})
    except Exception as err:  # report any failure to the parent instead of dying silently
        queue.put({"status": "error", "message": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"})


def speed_in_child(config: str = "fp32", compiled: bool = False, new_tokens: int = 32, repeats: int = 3,
                   threads: int = 1, timeout_s: float = 300.0) -> dict:
    """Decode speed of a config measured in a fresh process, killed after ``timeout_s``; lesson 15.

    Returns ``{"status": "ok", "speed": DecodeSpeed, "compile_s", "bytes"}`` (the Linear weight bytes
    read per token) plus ``"peak_gb"`` (the child's own peak resident memory), or ``{"status": "timeout" |
    "error", "message"}``. A fresh process keeps one config's compiled code from another's.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_speed_worker,
                            args=(config, compiled, new_tokens, repeats, threads, queue))
    child.start()
    child.join(timeout_s)
    if child.is_alive():
        child.terminate()
        child.join()
        return {"status": "timeout", "message": f"did not finish in {timeout_s:.0f} s"}
    if queue.empty():
        return {"status": "error", "message": f"the child process exited with code {child.exitcode}"}
    return queue.get()
