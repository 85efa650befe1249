"""PT2E static quantization for x86 CPUs: export, prepare, calibrate, convert, compile, save, load.

Introduced in lesson 07 (pytorch_static_fx) as the maintained successor of the FX flow:

1. :func:`export`: ``torch.export.export(..., strict=True)`` captures ``forward`` as an ATen
   graph, with a dynamic batch dimension so calibration batches of any size run;
2. :func:`prepare`: ``prepare_pt2e`` with :func:`x86_quantizer` (``X86InductorQuantizer``)
   folds batch norm into the convolutions and inserts observers;
3. :func:`calibrate`: representative data through the observers (never the test split);
4. :func:`convert`: ``convert_pt2e`` replaces observers by quantize/dequantize pairs around
   float ops (the "reference" graph), with the weights already stored as int8;
5. :func:`compile`: ``torch.compile`` with Inductor's ``freezing`` matches those patterns and
   lowers them to fused int8 oneDNN kernels; :func:`kernel_calls` lists the kernels it generated;
6. :func:`save` / :func:`load`: a ``torch.export`` archive (``.pt2``), loaded only if it holds
   no pickled payloads.

:func:`quantize` runs steps 1-4 and times each stage.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from unittest import mock

import torch
from torch import nn

from helpers import data, env, measure

# Export needs a finite upper bound for the batch symbol; 65,536 covers any batch a lesson runs.
MAX_BATCH = 65_536
# A kernel call in Inductor's generated wrapper: torch.ops.<ns>.<op>[.<overload>](,
# extern_kernels.<op>( or a C++ loop Inductor wrote, cpp_fused_<what>_<n>(.
_CALL = re.compile(r"\b(?:torch\.ops\.(\w+\.\w+)(?:\.\w+)?|extern_kernels\.(\w+)"
                   r"|(cpp_fused_\w+?)(?:_\d+)?)\(")


def _inputs(example_inputs) -> tuple[torch.Tensor, ...]:
    """A tuple of example tensors; accept a lone tensor too (a frequent slip)."""
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if (not isinstance(example_inputs, tuple) or not example_inputs
            or not all(isinstance(t, torch.Tensor) and t.ndim >= 1 for t in example_inputs)):
        raise TypeError("example_inputs must be a batched tensor or a non-empty tuple of them, "
                        f"e.g. (torch.randn(1, 1, 28, 28),); got {type(example_inputs).__name__}")
    return example_inputs


def _trace_batch(example_inputs) -> tuple[torch.Tensor, ...]:
    # export specializes a size of exactly 1, so trace with 2; clone, or torch.export.save
    # would store the whole tensor a slice was taken from as the sample input.
    return tuple((torch.cat([t[:1], t[:1]]) if t.shape[0] == 1 else t[:2]).clone()
                 for t in _inputs(example_inputs))


def export(model: nn.Module, example_inputs, dynamic_batch: bool = True
           ) -> torch.export.ExportedProgram:
    """``torch.export.export(strict=True)`` of an eval-mode copy, batch dimension dynamic; lesson 07.

    ``strict=True`` traces with TorchDynamo; in torchao 0.18 the x86 quantizer fails on
    ResNet18 after the default non-strict export ("Input partition has more than one output
    node").
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"export needs an nn.Module, got {type(model).__name__}")
    inputs = _trace_batch(example_inputs)
    shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        shapes = tuple({0: batch} for _ in inputs)
    return torch.export.export(copy.deepcopy(model).eval(), inputs, dynamic_shapes=shapes,
                               strict=True)


def has_vnni(features: dict[str, bool] | None = None) -> bool:
    """True if the CPU has an int8 dot-product instruction (AVX-512 VNNI, AVX-VNNI, AMX); lesson 07."""
    features = env.cpu_features() if features is None else features
    return any(features.get(k, False) for k in ("avx512_vnni", "avx_vnni", "amx_int8"))


def x86_quantizer(reduce_range: bool | None = None, keep_float: Sequence[str] = ()):
    """``X86InductorQuantizer`` with the default static config; lesson 07.

    ``reduce_range=None`` follows torchao's advice for this CPU: 7-bit activations on CPUs
    without VNNI (whose int8 instructions can saturate a 16-bit intermediate), 8-bit with it.
    ``keep_float`` names modules (as in ``model.named_modules()``) to leave unquantized.
    """
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    if reduce_range is None:
        reduce_range = not has_vnni()
    config = xiq.get_default_x86_inductor_quantization_config(reduce_range=bool(reduce_range))
    quantizer = xiq.X86InductorQuantizer().set_global(config)
    for name in [keep_float] if isinstance(keep_float, str) else keep_float:
        quantizer.set_module_name_qconfig(name, None)
    return quantizer


def _train_eval_allowed(graph_module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e import allow_exported_model_train_eval

    # Exported graphs refuse .eval()/.train(); this maps them to the graph rewrites torchao
    # provides, so helpers that call .eval() (measure.torch_accuracy) work.
    allow_exported_model_train_eval(graph_module)
    return graph_module


def prepare(model: nn.Module | torch.export.ExportedProgram, example_inputs=None,
            quantizer=None) -> torch.fx.GraphModule:
    """Export (unless given an ExportedProgram) and ``prepare_pt2e``: observers in; lesson 07."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    if not isinstance(model, torch.export.ExportedProgram):
        if example_inputs is None:
            raise ValueError("pass example_inputs (a batch like the real inputs) to export the model")
        model = export(model, example_inputs)
    return _train_eval_allowed(prepare_pt2e(model.module(), quantizer or x86_quantizer()))


def calibrate(prepared: nn.Module, calib: data.Split | torch.Tensor, batches: int | None = None,
              batch_size: int = 32) -> int:
    """Run calibration images through a prepared model; returns images seen; lesson 07.

    ``calib`` is a split (not the test split: calibration chooses ranges) or a tensor of
    inputs; ``batches=None`` runs all of it.
    """
    if isinstance(calib, data.Split):
        data.require_selection_split(calib, "calibration (it chooses every activation range)")
        calib = data.torch_tensors(calib)[0]
    if not isinstance(calib, torch.Tensor) or calib.ndim == 0 or len(calib) == 0:
        raise ValueError("calibration needs a non-empty data.Split or tensor of inputs")
    if batches is not None and batches < 1:
        raise ValueError(f"batches must be >= 1 (or None for all), got {batches}")
    stop = len(calib) if batches is None else min(len(calib), batches * batch_size)
    with torch.inference_mode():
        for start in range(0, stop, batch_size):
            prepared(calib[start : min(start + batch_size, stop)])
    return stop


def drop_unused_parameters(graph_module: torch.fx.GraphModule) -> int:
    """Delete parameters and buffers the graph no longer reads; returns bytes freed; lesson 07.

    After ``convert_pt2e`` the int8 weights are new constants, while the float weights they
    came from stay attached to the module, unused: they would double the saved file.
    """
    used = {str(n.target) for n in graph_module.graph.nodes if n.op == "get_attr"}
    freed = 0
    for name, tensor in list(graph_module.named_parameters()) + list(graph_module.named_buffers()):
        if name not in used:
            owner_name, _, attr = name.rpartition(".")
            owner = graph_module.get_submodule(owner_name) if owner_name else graph_module
            freed += tensor.numel() * tensor.element_size()
            delattr(owner, attr)
    return freed


def convert(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """``convert_pt2e`` (int8 weights folded), unused float weights dropped; lesson 07."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    if not any("activation_post_process" in name for name, _ in prepared.named_modules()):
        raise ValueError("this model has no observers: run pt2e.prepare() and calibrate first")
    converted = convert_pt2e(prepared)
    drop_unused_parameters(converted)
    return _train_eval_allowed(converted)


@dataclass
class Quantized:
    """A converted PT2E model and the seconds each stage took (export, prepare, ...)."""

    model: torch.fx.GraphModule
    seconds: dict[str, float] = field(default_factory=dict)
    calib_images: int = 0


def quantize(model: nn.Module, example_inputs, calib: data.Split | torch.Tensor,
             batches: int | None = 10, batch_size: int = 32, quantizer=None) -> Quantized:
    """export -> prepare_pt2e -> calibrate -> convert_pt2e, each stage timed; lesson 07."""
    seconds = {}
    start = time.perf_counter()
    exported = export(model, example_inputs)
    seconds["export"] = time.perf_counter() - start
    start = time.perf_counter()
    prepared = prepare(exported, quantizer=quantizer)
    seconds["prepare"] = time.perf_counter() - start
    start = time.perf_counter()
    seen = calibrate(prepared, calib, batches=batches, batch_size=batch_size)
    seconds["calibrate"] = time.perf_counter() - start
    start = time.perf_counter()
    converted = convert(prepared)
    seconds["convert"] = time.perf_counter() - start
    return Quantized(converted, seconds, seen)


def op_counts(graph_module: torch.fx.GraphModule) -> dict[str, int]:
    """How many times each operator is called in a graph ("conv2d", "quantize_per_tensor"); lesson 07."""
    names = [str(n.target).split(".")[-2] if str(n.target).count(".") >= 2 else str(n.target)
             for n in graph_module.graph.nodes if n.op == "call_function"]
    return dict(Counter(names).most_common())


def stored_tensors(graph_module: torch.fx.GraphModule) -> list[dict]:
    """Name, dtype and shape of every tensor the graph reads as a constant (get_attr); lesson 07."""
    rows = []
    for node in graph_module.graph.nodes:
        if node.op == "get_attr":
            value = attrgetter(node.target)(graph_module)
            if isinstance(value, torch.Tensor):
                rows.append({"name": node.target, "dtype": str(value.dtype).replace("torch.", ""),
                             "shape": tuple(value.shape)})
    return rows


def enable_freezing() -> None:
    """Set ``torch._inductor.config.freezing = True`` for this process, as the PT2E tutorials do; lesson 07.

    Freezing treats weights as constants, so Inductor can pre-pack them for oneDNN and fold
    the int8 patterns; torch.compile of a PT2E graph without it keeps the quantize/dequantize
    ops as separate float work. It changes only how later ``torch.compile`` calls optimize.
    """
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True


def compile(model: nn.Module, example: torch.Tensor, threads: int = 1
            ) -> tuple[nn.Module, float, str]:
    """``torch.compile`` (Inductor, freezing, static shapes), first call timed; lesson 07.

    Returns the compiled model, the seconds of its first call (the compilation) and the
    Python source Inductor generated. The first call runs with ``threads`` threads, because
    Inductor writes that thread count into the C++ loops it generates: compile with the
    count you will time with. ``dynamic=False``: each new batch size compiles once more (with
    a dynamic batch, the int8 convolution lowering of torch 2.14 fails a stride check).
    """
    from torch._inductor.graph import GraphLowering

    enable_freezing()
    if hasattr(model, "eval"):
        model.eval()
    compiled = torch.compile(model, dynamic=False)
    code: list[str] = []
    start = time.perf_counter()
    # Collect the generated source as Inductor hands it out (also on a cache hit); unlike
    # torch._inductor.utils.run_and_get_code this keeps every other compiled model's cache.
    with (mock.patch.object(GraphLowering, "save_output_code", code.append),
          measure.torch_threads(threads), torch.inference_mode()):
        compiled(example)
    return compiled, time.perf_counter() - start, "\n".join(code)


def kernel_calls(code: str) -> list[str]:
    """The kernels Inductor's generated code calls, in order (one name per call); lesson 07.

    ``onednn.qconv_pointwise`` is a fused int8 convolution (its post-op, such as ReLU, inside),
    ``onednn.qconv2d_pointwise`` with a binary post-op also adds the residual input,
    ``cpp_fused_*`` are loops Inductor wrote in C++ (a quantize of the input, for example).
    """
    calls = []
    for body in code.split("def call(")[1:]:
        body = re.split(r"\n(?:def |class |if __name__)", body, maxsplit=1)[0]
        for op, extern, fused in _CALL.findall(body):
            calls.append(op or (f"extern_kernels.{extern}" if extern else fused))
    # Inductor names a loop it could not describe "cpp_fused_<n>"; drop the number.
    return [re.sub(r"^(cpp_fused)_\d+$", r"\1", call) for call in calls]


def predict(model, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted classes for ``x`` in fixed-size batches (one compile for a compiled model); lesson 07."""
    if len(x) % batch_size and len(x) > batch_size:
        raise ValueError(f"{len(x)} inputs do not split into batches of {batch_size}; a compiled "
                         "model would compile once more for the last batch: pick a divisor")
    with torch.inference_mode():
        return torch.cat([model(x[i : i + batch_size]).argmax(1)
                          for i in range(0, len(x), batch_size)])


def save(converted: torch.fx.GraphModule, path: str | os.PathLike, example_inputs) -> int:
    """Export the converted graph again and ``torch.export.save`` it (.pt2); returns bytes; lesson 07."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program = export(converted, example_inputs)
    torch.export.save(program, path)
    return path.stat().st_size


def pickled_entries(path: str | os.PathLike) -> list[str]:
    """Entries of a .pt2 archive stored as pickles (which could run code when loaded); lesson 07."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no .pt2 archive at {path}; write it with pt2e.save()")
    risky = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith("_config.json"):
                config = json.loads(archive.read(name)).get("config", {})
                risky += [f"{name}:{key}" for key, meta in config.items() if meta.get("use_pickle")]
            elif name.endswith((".pkl", ".pickle")) or "/custom_objs/" in name:
                risky.append(name)
    return risky


def load(path: str | os.PathLike) -> torch.fx.GraphModule:
    """``torch.export.load`` of a .pt2 archive that holds no pickled payloads, as a module; lesson 07.

    ``torch.export.load`` unpickles tensor subclasses and custom objects with
    ``weights_only=False``; a PT2E int8 graph needs neither (its weights are plain int8
    tensors), so an archive that has them is refused rather than trusted.
    """
    risky = pickled_entries(path)
    if risky:
        raise ValueError(f"{Path(path).name} holds pickled entries {risky[:3]}; loading them can "
                         "run code. Only load it with torch.export.load if you made it yourself.")
    return _train_eval_allowed(torch.export.load(path).module())


@dataclass
class Flow:
    """Batch-1 timings of one model's fp32 and int8 variants, measured in the same run; lesson 07.

    ``timings`` maps "fp32 eager", "fp32 folded", "fp32 compiled" and "int8 compiled" to a
    :class:`helpers.measure.Timing`; ``compile_s`` the compile time of each compiled variant;
    ``kernels`` the kernel calls Inductor generated for it.
    """

    timings: dict[str, measure.Timing] = field(default_factory=dict)
    compile_s: dict[str, float] = field(default_factory=dict)
    kernels: dict[str, list[str]] = field(default_factory=dict)
    compiled: dict[str, nn.Module] = field(default_factory=dict)

    def speedups(self, candidate: str = "int8 compiled") -> dict[str, float]:
        """How many times faster ``candidate`` is than each other variant (ratio of medians)."""
        if candidate not in self.timings:
            raise KeyError(f"no timing for {candidate!r}; measured: {sorted(self.timings)}")
        return {name: measure.speedup(timing, self.timings[candidate])
                for name, timing in self.timings.items() if name != candidate}


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An fp32 copy with every batch norm folded into its convolution (torch.fx); lesson 07."""
    from torch.fx.experimental.optimization import fuse

    return fuse(copy.deepcopy(model).eval())


def time_flow(fp32: nn.Module, int8: torch.fx.GraphModule, example: torch.Tensor,
              threads: int = 1, repeats: int = 30, compile_fp32: bool = True,
              compile_int8: bool = True, max_seconds: float | None = 20.0) -> Flow:
    """Time fp32 eager, folded and compiled, and the compiled int8 graph, at one batch; lesson 07.

    The fair int8 speed-up is against the best fp32 that could ship (compiled with the same
    Inductor settings); the one against plain eager fp32 is reported beside it.
    """
    flow = Flow()
    variants = {"fp32 eager": fp32.eval(), "fp32 folded": fold_batch_norm(fp32)}
    for name, model, wanted in (("fp32 compiled", fp32, compile_fp32),
                                ("int8 compiled", int8, compile_int8)):
        if wanted:
            compiled, seconds, code = compile(model, example, threads=threads)
            variants[name] = flow.compiled[name] = compiled
            flow.compile_s[name], flow.kernels[name] = seconds, kernel_calls(code)
    with torch.inference_mode():
        for name, model in variants.items():
            flow.timings[name] = measure.latency(lambda m=model: m(example), threads=threads,
                                                 warmup=3, repeats=repeats,
                                                 max_seconds=max_seconds)
    return flow


def choose_model(split: data.Split, predict: dict[str, Callable[[data.Split], object]],
                 latency_ms: dict[str, float], budget_points: float = 0.3) -> str:
    """The fastest of fp32 and the candidates whose paired 95 % interval vs ``predict["fp32"]``
    stays above ``-budget_points`` on ``split`` (never the test split); lesson 07.

    The interval, not the point estimate, decides: a candidate that changes many answers can
    show a small net change while its interval reaches far below the budget. fp32 always
    qualifies and races on latency too: an int8 model slower than the best float one is not
    worth shipping.
    """
    from helpers import stats

    data.require_selection_split(split, "choose_model (choosing the model to ship)")
    if "fp32" not in predict or "fp32" not in latency_ms:
        raise KeyError("predict and latency_ms need the float model under the name 'fp32'")
    baseline = predict["fp32"](split)
    accepted = [name for name, fn in predict.items() if name != "fp32"
                and stats.compare_predictions(split.y, baseline, fn(split)).delta_ci95[0]
                >= -budget_points]
    return min(["fp32", *accepted], key=lambda name: latency_ms[name])
