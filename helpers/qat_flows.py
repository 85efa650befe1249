"""The two maintained QAT flows, PT2E and torchao's ``QATConfig``, and what each one stores.

Introduced in lesson 08, beside the deprecated eager flow of :mod:`helpers.qat`:

* **PT2E** (``torchao.quantization.pt2e``): ``torch.export.export(..., strict=True)`` with a
  dynamic batch dimension, ``prepare_qat_pt2e`` with the ``X86InductorQuantizer`` in QAT mode,
  training switched with ``move_exported_model_to_train`` / ``_eval``, then ``convert_pt2e``;
  the result is saved with ``torch.export.save``. :data:`PT2E` is its :class:`~helpers.qat_loop.Flow`.
* **torchao** ``quantize_(model, QATConfig(base_config, step="prepare"))`` ... ``step="convert"``:
  it swaps ``nn.Linear`` (and ``nn.Embedding``) only, with dynamic per-token int8 activations
  and int8 per-channel weights for :func:`int8_linear_config`. :data:`TORCHAO` is its flow.
* :func:`stored_bytes_by_dtype`, :func:`pt2_contents`, :func:`drop_unused_parameters`: what a
  saved file holds, by dtype, and the float weights a converted graph no longer reads.
"""

from __future__ import annotations

import copy
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from helpers.qat_loop import Flow

_BN_TARGETS = ("aten.batch_norm.default", "aten._native_batch_norm_legit.default")
_BN_TRAINING_ARG = 5  # (input, weight, bias, running_mean, running_var, training, ...)
_BN_FROZEN = "_course_bn_frozen"


# --- PT2E -------------------------------------------------------------------------------------

def export_for_qat(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """``torch.export`` a float model (strict, dynamic batch) in train mode; lesson 08.

    ``strict=True`` because the x86 quantizer fails on non-strict graphs of residual networks
    ("Input partition has more than one output node"); the batch dimension is dynamic so the
    exported graph accepts training, evaluation and calibration batches of any size.
    """
    if example.dim() != 4 or example.shape[0] < 2:
        raise ValueError(f"example must be an image batch (N >= 2, C, H, W), got shape "
                         f"{tuple(example.shape)}; a batch of 1 would be specialised to 1")
    batch = torch.export.Dim("batch")
    program = torch.export.export(copy.deepcopy(model).train(), (example,),
                                  dynamic_shapes=({0: batch},), strict=True)
    return program.module()


def x86_qat_quantizer():
    """The ``X86InductorQuantizer`` set for QAT: int8 per-channel weights, uint8 activations."""
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    return X86InductorQuantizer().set_global(
        get_default_x86_inductor_quantization_config(is_qat=True))


def prepare_pt2e_qat(model: nn.Module, example: torch.Tensor,
                     quantizer=None) -> tuple[torch.fx.GraphModule, dict[str, float]]:
    """Export and ``prepare_qat_pt2e`` a float model; also the seconds each step took; lesson 08."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    seconds = {}
    start = time.perf_counter()
    exported = export_for_qat(model, example)
    seconds["export_s"] = time.perf_counter() - start
    start = time.perf_counter()
    prepared = prepare_qat_pt2e(exported, quantizer or x86_qat_quantizer())
    seconds["prepare_s"] = time.perf_counter() - start
    return prepared, seconds


def _set_bn_training(graph_module: torch.fx.GraphModule, training: bool) -> int:
    changed = 0
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and str(node.target) in _BN_TARGETS:
            args = list(node.args)
            args[_BN_TRAINING_ARG] = training
            node.args = tuple(args)
            changed += 1
    graph_module.recompile()
    return changed


def freeze_pt2e_bn(graph_module: torch.fx.GraphModule) -> None:
    """Freeze BN statistics in a PT2E QAT graph (its batch_norm nodes stop training); lesson 08.

    An exported graph has no BN modules to call ``freeze_bn_stats`` on: the ``training`` flag
    is an argument of each ``batch_norm`` node, as in the PT2E QAT tutorial.
    """
    if not _set_bn_training(graph_module, False):
        raise ValueError("no batch_norm node in this graph: nothing to freeze")
    setattr(graph_module, _BN_FROZEN, True)


def pt2e_to_train(graph_module: torch.fx.GraphModule) -> None:
    """``move_exported_model_to_train``, keeping BN frozen once it was frozen; lesson 08."""
    from torchao.quantization.pt2e import move_exported_model_to_train

    move_exported_model_to_train(graph_module)
    # Switching back from eval rewrites every batch_norm node to training=True: refreeze.
    if getattr(graph_module, _BN_FROZEN, False):
        _set_bn_training(graph_module, False)


def pt2e_to_eval(graph_module: torch.fx.GraphModule) -> None:
    """``move_exported_model_to_eval``: BN uses running statistics; lesson 08."""
    from torchao.quantization.pt2e import move_exported_model_to_eval

    move_exported_model_to_eval(graph_module)


def _pt2e_disable_observers(graph_module: torch.fx.GraphModule) -> None:
    from torchao.quantization.pt2e import disable_observer

    graph_module.apply(disable_observer)


PT2E = Flow("pt2e", pt2e_to_train, pt2e_to_eval, _pt2e_disable_observers, freeze_pt2e_bn)


def convert_pt2e_qat(prepared: torch.fx.GraphModule) -> tuple[torch.fx.GraphModule, float]:
    """``convert_pt2e`` a fine-tuned PT2E QAT graph (BN folded, int8 weights); and its seconds."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    pt2e_to_eval(prepared)
    start = time.perf_counter()
    converted = convert_pt2e(prepared)
    seconds = time.perf_counter() - start
    pt2e_to_eval(converted)
    return converted, seconds


def save_pt2(converted: torch.fx.GraphModule, example: torch.Tensor, path: Path) -> int:
    """Export the converted graph again and ``torch.export.save`` it; returns the file's bytes."""
    batch = torch.export.Dim("batch")
    program = torch.export.export(converted, (example,), dynamic_shapes=({0: batch},))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path)
    return path.stat().st_size


def drop_unused_parameters(graph_module: torch.fx.GraphModule) -> int:
    """Delete parameters no node reads (the float weights convert_pt2e replaced); bytes freed."""
    read = {node.target for node in graph_module.graph.nodes if node.op == "get_attr"}
    freed = 0
    for name, parameter in list(graph_module.named_parameters()):
        if name not in read:
            owner, _, leaf = name.rpartition(".")
            module = graph_module.get_submodule(owner) if owner else graph_module
            freed += parameter.numel() * parameter.element_size()
            del module._parameters[leaf]
    return freed


def pt2_contents(path: Path) -> dict[str, object]:
    """What a saved ``.pt2`` holds: tensors the graph reads and never reads (by dtype), JSON."""
    path = Path(path)
    program = torch.export.load(path)
    signature = program.graph_signature
    names = {**signature.inputs_to_parameters, **signature.inputs_to_buffers,
             **signature.inputs_to_lifted_tensor_constants}
    read, unread = [], []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            target = names[node.name]
            tensor = program.state_dict.get(target, program.constants.get(target))
            (read if node.users else unread).append(tensor)
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: info.file_size for info in archive.infolist()}
    return {"file_bytes": path.stat().st_size,
            "tensors_read": stored_bytes_by_dtype(read),
            "tensors_never_read": stored_bytes_by_dtype(unread),
            "graph_json_bytes": sum(v for k, v in entries.items() if k.endswith(".json")),
            "example_input_bytes": sum(v for k, v in entries.items() if "sample_inputs" in k)}


# --- torchao QATConfig ------------------------------------------------------------------------

def int8_linear_config():
    """torchao's int8 dynamic-activation, int8 per-channel-weight config (Linear layers)."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, PerAxis

    return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8,
                                                 weight_granularity=PerAxis(0))


def packed_int4_config():
    """torchao's int4 weights packed two per byte for its CPU kernels (needs its native library)."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, PerGroup

    return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                 weight_granularity=PerGroup(32),
                                                 intx_packing_format="opaque_torchao_auto")


def torchao_qat(model: nn.Module, base_config, step: str) -> nn.Module:
    """``quantize_(model, QATConfig(base_config, step=step))`` in place; returns the model."""
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    if step not in ("prepare", "convert"):
        raise ValueError(f"step must be 'prepare' or 'convert', got {step!r}")
    quantize_(model, QATConfig(base_config, step=step))
    return model


def _freeze_plain_bn(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    setattr(model, _BN_FROZEN, True)


def _torchao_to_train(model: nn.Module) -> None:
    model.train()
    if getattr(model, _BN_FROZEN, False):
        _freeze_plain_bn(model)


def _no_observers(model: nn.Module) -> None:
    """torchao's QAT recomputes every range from the current batch: there is nothing to freeze."""


TORCHAO = Flow("torchao", _torchao_to_train, nn.Module.eval, _no_observers, _freeze_plain_bn,
               has_observers=False)


def fake_quantized_layers(model: nn.Module) -> list[str]:
    """Names of the layers torchao's QAT prepare step swapped for fake-quantized ones."""
    return [name for name, module in model.named_modules()
            if type(module).__name__.startswith("FakeQuantized")]


# --- what a file stores -----------------------------------------------------------------------

def _leaves(value) -> Iterable[torch.Tensor]:
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, torch.Tensor):
        if value.is_quantized:
            yield value.int_repr()
            if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                yield value.q_per_channel_scales()
                yield value.q_per_channel_zero_points()
        elif hasattr(value, "__tensor_flatten__") and type(value) is not torch.Tensor \
                and not isinstance(value, nn.Parameter):
            names, _ = value.__tensor_flatten__()
            for name in names:
                yield from _leaves(getattr(value, name))
        else:
            yield value


def stored_bytes_by_dtype(tensors: Iterable) -> dict[str, int]:
    """Bytes of tensor data by dtype, unpacking quantized and torchao tensors; lesson 08."""
    totals: dict[str, int] = {}
    for tensor in _leaves(list(tensors)):
        key = str(tensor.dtype).replace("torch.", "")
        totals[key] = totals.get(key, 0) + tensor.numel() * tensor.element_size()
    return dict(sorted(totals.items(), key=lambda item: -item[1]))
