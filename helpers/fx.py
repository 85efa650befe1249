"""FX graph-mode post-training static quantization (deprecated, kept for existing code).

Introduced in lesson 07 (pytorch_static_fx). FX traces a model's ``forward`` into a graph, so
it can insert observers, fuse conv-bn-relu and quantize a functional ``+`` on its own: no
QuantStub or FloatFunctional edits as in eager mode (lesson 06). The pieces here:

* :func:`qconfig_mapping` / :func:`skip_layers`: which layers get which qconfig;
* :func:`quantize` and :func:`calibrate_tensors`: prepare, calibrate, convert on a copy;
* :func:`save_int8` / :func:`load_int8`: the safe way to store an int8 model (state_dict,
  then prepare+convert a fresh float model and ``load_state_dict``);
* :func:`sqnr_db`, :func:`layer_sensitivity`: which layer loses most when quantized;
* :func:`state_dict_breakdown`: where the bytes of a quantized checkpoint go.

This flow is deprecated (``torch.ao.quantization`` is being removed); its successor, PT2E,
is in :mod:`helpers.pt2e`, and :mod:`helpers.migration` maps each call to its replacement.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.ao.quantization import (
    HistogramObserver,
    MinMaxObserver,
    QConfig,
    QConfigMapping,
    get_default_qconfig,
)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from tqdm.auto import tqdm

from helpers import data, ptq, quant

# The modules whose weights FX replaces by int8 kernels: the candidates for mixed precision.
WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
ACTIVATION_OBSERVERS = {"histogram": HistogramObserver, "minmax": MinMaxObserver}


def _as_tuple(example_inputs) -> tuple:
    """FX wants a tuple of example inputs; accept a lone tensor too (a frequent slip)."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, tuple) and example_inputs:
        return example_inputs
    raise TypeError("example_inputs must be a tensor or a non-empty tuple of tensors, e.g. "
                    f"(torch.randn(1, 1, 28, 28),); got {type(example_inputs).__name__}")


def qconfig_mapping(engine: str = "x86", activation: str | None = None) -> QConfigMapping:
    """The article's ``QConfigMapping().set_global(get_default_qconfig(engine))``; lesson 07.

    ``activation="minmax"`` or ``"histogram"`` swaps only the activation observer (same
    quint8 range, same per-channel weights), so two mappings differ in one thing.
    """
    qconfig = get_default_qconfig(engine)
    if activation is not None:
        if activation not in ACTIVATION_OBSERVERS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATION_OBSERVERS)}, "
                             f"got {activation!r}")
        # Keep the default's dtype and reduce_range, change only how the range is chosen.
        kwargs = dict(qconfig.activation.p.keywords)
        qconfig = QConfig(activation=ACTIVATION_OBSERVERS[activation].with_args(**kwargs),
                          weight=qconfig.weight)
    return QConfigMapping().set_global(qconfig)


def weighted_layers(model: nn.Module) -> list[str]:
    """Names of the conv and linear modules, in definition order; lesson 07."""
    return [name for name, module in model.named_modules() if isinstance(module, WEIGHTED)]


def _check_names(model: nn.Module, names: Sequence[str]) -> None:
    known = dict(model.named_modules())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"no module named {unknown} in {type(model).__name__}; use names "
                         f"from model.named_modules(), e.g. {weighted_layers(model)}")


def skip_layers(model: nn.Module, names: Sequence[str], engine: str = "x86",
                mapping: QConfigMapping | None = None) -> QConfigMapping:
    """A mapping that quantizes everything except the named modules (kept fp32); lesson 07."""
    if isinstance(names, str):
        names = [names]
    _check_names(model, names)
    mapping = copy.deepcopy(mapping) if mapping is not None else qconfig_mapping(engine)
    for name in names:
        mapping.set_module_name(name, None)  # None = "leave this module in float"
    return mapping


def only_layer(model: nn.Module, name: str, engine: str = "x86") -> QConfigMapping:
    """A mapping that quantizes the one named module and nothing else; lesson 07."""
    _check_names(model, [name])
    return QConfigMapping().set_module_name(name, get_default_qconfig(engine))


def calibrate_tensors(prepared: nn.Module, x: torch.Tensor, batch_size: int = 32) -> int:
    """Run a tensor of inputs through a prepared model in batches; returns images seen; lesson 07."""
    if x.ndim == 0 or len(x) == 0:
        raise ValueError("calibration needs at least one input; got an empty tensor")
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            prepared(x[start : start + batch_size])
    return len(x)


def prepare(model: nn.Module, mapping: QConfigMapping, example_inputs) -> nn.Module:
    """``prepare_fx`` on an eval-mode deep copy (the caller's float model stays untouched); lesson 07."""
    return prepare_fx(copy.deepcopy(model).eval(), mapping, _as_tuple(example_inputs))


def quantize(model: nn.Module, mapping: QConfigMapping, example_inputs,
             calib: data.Split | torch.Tensor | None, batches: int = 10,
             batch_size: int = 32) -> nn.Module:
    """Prepare a copy, calibrate it on ``calib`` (a Split or a tensor), convert; lesson 07.

    ``calib=None`` skips calibration on purpose: that is how :func:`load_int8` rebuilds the
    graph before loading saved scales; for real use it gives meaningless activation ranges.
    """
    prepared = prepare(model, mapping, example_inputs)
    if isinstance(calib, data.Split):
        ptq.calibrate(prepared, calib, batches=batches, batch_size=batch_size)
    elif isinstance(calib, torch.Tensor):
        calibrate_tensors(prepared, calib, batch_size=batch_size)
    elif calib is not None:
        raise TypeError(f"calib must be a data.Split, a tensor or None, got {type(calib).__name__}")
    return convert_fx(prepared)


def save_int8(quantized: nn.Module, path: str | os.PathLike) -> int:
    """Save only the state_dict of a converted model (tensors, no code); returns bytes; lesson 07."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(quantized.state_dict(), path)
    return path.stat().st_size


def load_int8(float_model: nn.Module, path: str | os.PathLike, mapping: QConfigMapping,
              example_inputs) -> nn.Module:
    """Rebuild the int8 graph from a float model (no calibration), then load the saved state; lesson 07.

    The mapping and example inputs must be the ones used when the model was saved, or the
    graph has different modules and ``load_state_dict`` reports missing or unexpected keys.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved int8 state_dict at {path}; write it with save_int8()")
    skeleton = quantize(float_model, mapping, example_inputs, calib=None)
    state = torch.load(path, weights_only=True)
    try:
        skeleton.load_state_dict(state)
    except (RuntimeError, KeyError) as err:  # quantized Linear raises KeyError on a missing key
        raise RuntimeError(f"{path.name} does not fit the graph built from this float model and "
                           "mapping: rebuild with the same QConfigMapping (and skipped layers) "
                           f"used before saving.\n{err}") from err
    return skeleton


# The same SQNR as lesson 02's, on model outputs (tensors are accepted).
sqnr_db = quant.sqnr_db


def layer_sensitivity(model: nn.Module, calib: torch.Tensor, evaluation: data.Split,
                      layers: Sequence[str] | None = None, engine: str = "x86") -> list[dict]:
    """Quantize one layer at a time; the output SQNR (dB) of each against fp32; lesson 07.

    A low SQNR means that layer alone adds much noise to the logits: the first candidate to
    keep in float. Scoring layers is a choice, so ``evaluation`` must be the validation split
    (or part of it); the test split is refused.
    """
    data.require_selection_split(evaluation, "layer_sensitivity (choosing layers to keep in float)")
    x_eval = data.torch_tensors(evaluation)[0]
    layers = list(layers) if layers is not None else weighted_layers(model)
    if not layers:
        raise ValueError("no layers to test: the model has no conv or linear modules")
    with torch.no_grad():
        reference = model.eval()(x_eval)
    rows = []
    for name in tqdm(layers, desc="one layer at a time", leave=False):
        quantized = quantize(model, only_layer(model, name, engine), x_eval[:1], calib)
        with torch.no_grad():
            out = quantized(x_eval)
        agree = float((out.argmax(1) == reference.argmax(1)).float().mean())
        rows.append({"layer": name, "sqnr_db": sqnr_db(reference, out), "top1_agreement": agree,
                     "selected_on": evaluation.role})
    return rows


def compare_observers(model: nn.Module, example_inputs, calib: data.Split, evaluation: data.Split,
                      observers: Sequence[str] = ("minmax", "histogram"), batches: int = 10
                      ) -> list[dict]:
    """Quantize with each activation observer; logit SQNR and accuracy on ``evaluation``; lesson 07.

    Choosing the observer is a choice, so ``evaluation`` must be the validation split (the
    test split is refused). Rows are sorted best first (highest SQNR).
    """
    data.require_selection_split(evaluation, "compare_observers (choosing an observer)")
    x_eval, y_eval = data.torch_tensors(evaluation)
    with torch.no_grad():
        reference = model.eval()(x_eval)
    rows = []
    for observer in observers:
        quantized = quantize(model, qconfig_mapping(activation=observer), example_inputs, calib,
                             batches=batches)
        with torch.no_grad():
            out = quantized(x_eval)
        rows.append({"observer": observer, "sqnr_db": sqnr_db(reference, out),
                     "accuracy": float((out.argmax(1) == y_eval).float().mean()),
                     "selected_on": evaluation.role, "model": quantized})
    return sorted(rows, key=lambda r: -r["sqnr_db"])


def most_sensitive(rows: Sequence[dict]) -> str:
    """The layer whose quantization alone gives the lowest output SQNR; lesson 07."""
    if not rows:
        raise ValueError("no sensitivity rows: run layer_sensitivity() first")
    return min(rows, key=lambda r: r["sqnr_db"])["layer"]


def state_dict_breakdown(state: dict) -> dict[str, int]:
    """Bytes of a state_dict's tensors by kind (int8 weights, fp32, per-channel qparams); lesson 07.

    Counts tensor payloads only; the file is a little larger (names, pickle framing).
    """
    kinds = {"int8 values": 0, "per-channel scales and zero points": 0, "float values": 0,
             "other": 0}
    def tensors(value):
        # Quantized Linear keeps (weight, bias) as a tuple under "_packed_params".
        if isinstance(value, (tuple, list)):
            for item in value:
                yield from tensors(item)
        elif isinstance(value, torch.Tensor):
            yield value

    for value in (t for v in state.values() for t in tensors(v)):
        if value.is_quantized:
            kinds["int8 values"] += value.numel() * value.element_size()
            if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                # Saved as float64 scales and int64 zero points, 16 bytes per output channel.
                kinds["per-channel scales and zero points"] += 16 * value.q_per_channel_scales().numel()
        elif value.is_floating_point():
            kinds["float values"] += value.numel() * value.element_size()
        else:
            kinds["other"] += value.numel() * value.element_size()
    return kinds
