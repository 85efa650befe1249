"""Eager-mode static post-training quantization in PyTorch: qconfig, prepare, calibrate, convert.

Introduced in lesson 06. The eager flow is four calls on a model that already carries
``QuantStub``/``DeQuantStub`` (and ``FloatFunctional`` for tensor arithmetic):
``fuse_modules`` -> set ``qconfig`` -> ``prepare`` (inserts observers) -> run calibration
data -> ``convert`` (observers become scales and zero points, float modules become int8
ones). The helpers here wrap those calls with clear errors, and read the converted model
back into plain tables so a lesson can show what is inside.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.ao import quantization as tq
from torch.ao.quantization import DeQuantStub, QuantStub
from tqdm.auto import tqdm

from helpers import data, env, ptq, quant

# The engines whose default qconfig PyTorch knows, and what that qconfig does to weights.
ENGINES = {"x86": "per_channel", "fbgemm": "per_channel", "onednn": "per_channel",
           "qnnpack": "per_tensor"}


def available_engines() -> list[str]:
    """The quantized engines compiled into this PyTorch build ("none" left out); lesson 06."""
    return [e for e in torch.backends.quantized.supported_engines if e != "none"]


def check_engine(engine: str) -> str:
    """Return ``engine`` if this PyTorch build can run it, else raise a helpful error; lesson 06."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"unknown quantized engine {engine!r}; expected one of {sorted(ENGINES)} "
                         "('x86' on Intel/AMD, 'qnnpack' on Arm and Apple Silicon)")
    available = available_engines()
    if engine not in available:
        raise ValueError(f"this PyTorch build has no {engine!r} engine (it has {available}); "
                         "pick one of those, e.g. env.select_engine() chooses the one for your CPU")
    return engine


def qconfig_for(engine: str) -> tq.QConfig:
    """The default static qconfig for an engine (x86: per-channel weights); lesson 06."""
    return tq.get_default_qconfig(check_engine(engine))


def prepare(model: nn.Module, engine: str, fuse: Sequence[Sequence[str]] | None = None,
            qconfig: tq.QConfig | None = None) -> nn.Module:
    """A fused (optional), observed copy of ``model`` for ``engine`` (original kept); lesson 06."""
    if not any(isinstance(m, QuantStub) for m in model.modules()):
        raise ValueError("the model has no QuantStub: eager mode needs QuantStub()/DeQuantStub() "
                         "around the part to quantize (or wrap it in torch.ao.quantization."
                         "QuantWrapper)")
    env.select_engine(check_engine(engine))
    working = copy.deepcopy(model).eval()
    if fuse:
        working = tq.fuse_modules(working, [list(group) for group in fuse])
    working.qconfig = qconfig or qconfig_for(engine)
    return tq.prepare(working)


def convert(prepared: nn.Module, engine: str | None = None) -> nn.Module:
    """An int8 copy of a prepared model (weights are packed for the engine set now); lesson 06."""
    if not any(hasattr(m, "activation_post_process") for m in prepared.modules()):
        raise ValueError("this model has no observers: call eager.prepare() (or "
                         "torch.ao.quantization.prepare) before convert()")
    if engine is not None:
        env.select_engine(check_engine(engine))
    return tq.convert(copy.deepcopy(prepared).eval())


def calibrate_loader(prepared: nn.Module, batches: Iterable, max_batches: int) -> int:
    """Run up to ``max_batches`` batches (``x`` or ``(x, y)``) through a model; lesson 06."""
    if max_batches < 1:
        raise ValueError(f"max_batches must be >= 1, got {max_batches}")
    prepared.eval()
    seen = 0
    with torch.inference_mode():
        for index, batch in enumerate(batches):
            if index >= max_batches:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            prepared(x)
            seen += len(x)
    if seen == 0:
        raise ValueError("the calibration data gave no batches: pass a non-empty loader")
    return seen


def quantize_static(model: nn.Module, engine: str, calib: data.Split | None, batches: int = 16,
                    batch_size: int = 32, fuse: Sequence[Sequence[str]] | None = None,
                    qconfig: tq.QConfig | None = None) -> nn.Module:
    """prepare -> calibrate -> convert in one call (``calib=None`` skips calibration); lesson 06."""
    prepared = prepare(model, engine, fuse=fuse, qconfig=qconfig)
    if calib is not None:
        ptq.calibrate(prepared, calib, batches=batches, batch_size=batch_size)
    return convert(prepared)


def calibration_curve(prepared: nn.Module, calib: data.Split, checkpoints: Sequence[int],
                      evaluate: Callable[[nn.Module], float | dict],
                      batch_size: int = 32) -> list[dict]:
    """Metrics after N calibration batches, for each N in ``checkpoints`` (one pass); lesson 06.

    Calibration is cumulative, so the prepared model sees each batch once; at every checkpoint
    a *copy* is converted and evaluated, and calibration goes on from where it was.
    ``evaluate`` returns the accuracy, or a dict of metrics merged into each point.
    """
    points = sorted(set(int(n) for n in checkpoints))
    if not points or points[0] < 1:
        raise ValueError(f"checkpoints must be batch counts >= 1, got {list(checkpoints)}")
    if len(calib) == 0:
        raise ValueError("the calibration split is empty: pass mnist.calib (or a non-empty take(n))")
    available = -(-len(calib) // batch_size)
    if points[-1] > available:
        raise ValueError(f"the calibration split has only {available} batches of {batch_size}, "
                         f"but a checkpoint asks for {points[-1]}; lower it or the batch size")
    curve, seen = [], 0
    loader = data.torch_loader(calib, batch_size=batch_size)
    prepared.eval()
    with torch.inference_mode(), tqdm(total=points[-1], desc="calibration curve", leave=False) as bar:
        for index, (x, _) in enumerate(loader, start=1):
            prepared(x)
            seen += len(x)
            bar.update()
            if index in points:
                metrics = evaluate(tq.convert(copy.deepcopy(prepared).eval()))
                metrics = metrics if isinstance(metrics, dict) else {"accuracy": metrics}
                curve.append({"batches": index, "images": seen, **metrics})
            if index == points[-1]:
                break
    return curve


def observer_ranges(prepared: nn.Module) -> dict[str, tuple[float, float]]:
    """(min, max) each activation observer has seen so far, by module name; lesson 06."""
    ranges = {}
    for name, module in prepared.named_modules():
        observer = getattr(module, "activation_post_process", None)
        if observer is not None and hasattr(observer, "min_val"):
            ranges[name or "(model)"] = (float(observer.min_val), float(observer.max_val))
    return ranges


def _weight(module: nn.Module) -> torch.Tensor | None:
    weight = getattr(module, "weight", None)
    if callable(weight):  # quantized Linear/Conv keep a packed weight behind a method
        weight = weight()
    return weight if isinstance(weight, torch.Tensor) and weight.is_quantized else None


def weight_qparams(weight: torch.Tensor) -> dict:
    """dtype, qscheme, scale(s), zero point(s) and axis of a quantized tensor; lesson 06."""
    if not isinstance(weight, torch.Tensor) or not weight.is_quantized:
        raise TypeError("expected a quantized tensor, e.g. qmodel.fc1.weight() (note the call)")
    info = {"dtype": str(weight.dtype).replace("torch.", ""),
            "qscheme": str(weight.qscheme()).replace("torch.", ""),
            "element_size": weight.element_size()}
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        scales = weight.q_per_channel_scales()
        zero_points = weight.q_per_channel_zero_points()
        info.update(axis=weight.q_per_channel_axis(), scale=scales.tolist(),
                    zero_point=zero_points.tolist())
    else:
        info.update(axis=None, scale=weight.q_scale(), zero_point=weight.q_zero_point())
    return info


def quantized_layers(model: nn.Module) -> list[dict]:
    """One row per quantized module: weight and output (activation) qparams; lesson 06."""
    rows = []
    for name, module in model.named_modules():
        out_scale = getattr(module, "scale", None)
        weight = _weight(module)
        if weight is None and out_scale is None:
            continue
        row = {"module": name, "type": type(module).__name__}
        if weight is not None:
            info = weight_qparams(weight)
            scales = info["scale"] if isinstance(info["scale"], list) else [info["scale"]]
            zps = info["zero_point"] if isinstance(info["zero_point"], list) else [info["zero_point"]]
            row.update(weight_dtype=info["dtype"], qscheme=info["qscheme"], axis=info["axis"],
                       n_scales=len(scales), scale_min=min(scales), scale_max=max(scales),
                       weight_zero_points=sorted(set(zps)), element_size=info["element_size"])
        row.update(out_scale=float(out_scale) if out_scale is not None else None,
                   out_zero_point=int(getattr(module, "zero_point", 0)))
        rows.append(row)
    return rows


def dequantize_at(weight: torch.Tensor, index: tuple[int, ...]) -> float:
    """(q - zero_point) * scale for one element, with its channel's qparams; lesson 06."""
    q = int(weight.int_repr()[index])
    info = weight_qparams(weight)
    if info["axis"] is None:
        return (q - info["zero_point"]) * info["scale"]
    channel = index[info["axis"]]
    return (q - info["zero_point"][channel]) * info["scale"][channel]


def bias_paths(qlinear: nn.Module, x_q: torch.Tensor) -> dict[str, int]:
    """Which bias arithmetic reproduces a quantized Linear's int8 outputs; lesson 06.

    Rebuilds the layer's outputs from its integer accumulators two ways: adding the float
    bias to the dequantized accumulator before requantizing (what the x86/FBGEMM kernels do),
    or adding the bias rounded to int32 at scale ``s_x * s_w`` (what QNNPACK and TFLite do),
    and counts the outputs where each differs from the kernel's.
    """
    if not x_q.is_quantized or x_q.ndim != 2:
        raise TypeError("x_q must be a quantized 2-D input, e.g. qmodel.quant(x.reshape(n, -1))")
    weight, bias = qlinear.weight(), qlinear.bias()
    if bias is None:
        raise ValueError("this layer has no bias: both paths are the same")
    with torch.inference_mode():
        kernel = qlinear(x_q).int_repr().long()
    scale_x, zero_x = x_q.q_scale(), x_q.q_zero_point()
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        scale_w = weight.q_per_channel_scales().float()
    else:
        scale_w = torch.full((weight.shape[0],), weight.q_scale())
    acc = (x_q.int_repr().long() - zero_x) @ weight.int_repr().long().T
    out_scale, out_zero = qlinear.scale, qlinear.zero_point

    def requantize(y: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.round(y / out_scale) + out_zero, 0, 255).long()

    multiplier = scale_x * scale_w
    float_bias = requantize(acc.float() * multiplier + bias.float())
    bias_int32 = torch.round(bias.double() / multiplier.double()).long()
    int32_bias = requantize((acc + bias_int32).float() * multiplier)
    return {"outputs": kernel.numel(),
            "float_bias_mismatches": int((float_bias != kernel).sum()),
            "int32_bias_mismatches": int((int32_bias != kernel).sum())}


# The same SQNR as lesson 02's, on model outputs (tensors are accepted).
sqnr_db = quant.sqnr_db


def module_kind(module: nn.Module) -> str:
    """Class name, "quantized." prefixed for int8 modules (names repeat the float ones); lesson 06."""
    prefix = "quantized." if ".quantized." in type(module).__module__ else ""
    return prefix + type(module).__name__


def count_modules(model: nn.Module, kinds: Sequence[str]) -> dict[str, int]:
    """How many modules of each kind ("BatchNorm2d", "quantized.ConvReLU2d", ...); lesson 06."""
    names = [module_kind(m) for m in model.modules()]
    return {kind: names.count(kind) for kind in kinds}


class TinyConvNet(nn.Module):
    """A small conv net with stubs but unfused conv-bn-relu pairs, for the fusion exercise."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.conv3, self.bn3 = nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 14 * 14, 10)
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu1(self.bn1(self.conv1(self.quant(x)))))
        x = self.bn3(self.conv3(self.relu2(self.bn2(self.conv2(x)))))
        return self.dequant(self.fc(torch.flatten(x, 1)))


def tiny_conv_net(seed: int = 0) -> TinyConvNet:
    """A TinyConvNet with fixed weights and non-trivial batch-norm statistics, eval mode; lesson 06."""
    torch.manual_seed(seed)
    net = TinyConvNet()
    for bn in (net.bn1, net.bn2, net.bn3):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


class SkipNet(nn.Module):
    """A float conv net with two residual blocks written with a plain ``+`` (no stubs); lesson 06.

    Eager mode cannot quantize it as it is: it has no QuantStub, and ``+`` on two quantized
    tensors has no int8 kernel. Exercise 3 makes it quantizable.
    """

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.MaxPool2d(2))
        self.block_a = self._block(width)
        self.block_b = self._block(width)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(width * 7 * 7, 10)

    @staticmethod
    def _block(width: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width),
                             nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                             nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(self.block_a(x) + x)
        x = torch.relu(self.block_b(x) + x)
        return self.fc(torch.flatten(self.pool(x), 1))


def skip_net(seed: int = 0) -> SkipNet:
    """A SkipNet with fixed weights and non-trivial batch-norm statistics, eval mode; lesson 06."""
    torch.manual_seed(seed)
    net = SkipNet()
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def benchmark(model: nn.Module, test: data.Split, threads: int = 1, repeats: int = 30,
              big_batch: int = 64, big_repeats: int = 10, max_seconds: float = 20.0) -> dict:
    """Accuracy (and the test predictions), state_dict bytes, latency at batch 1 and ``big_batch``; lesson 06.

    Run it with the engine the model was converted for selected (env.select_engine).
    """
    from helpers import measure

    if len(test) < big_batch:
        raise ValueError(f"the test split has {len(test)} images, fewer than big_batch={big_batch}")
    x_all = data.torch_tensors(test.take(big_batch))[0]
    one, big = x_all[:1], x_all
    model.eval()
    x_test, y_test = data.torch_tensors(test)
    with torch.inference_mode():
        timing = measure.latency(lambda: model(one), threads=threads, repeats=repeats,
                                 max_seconds=max_seconds)
        timing_big = measure.latency(lambda: model(big), threads=threads, repeats=big_repeats,
                                     max_seconds=max_seconds)
        pred = torch.cat([model(x_test[i : i + 1000]).argmax(1) for i in range(0, len(x_test), 1000)])
    return {"accuracy": float((pred == y_test).float().mean()), "pred": pred,
            "size_bytes": measure.torch_size_bytes(model),
            "timing": timing, "timing_big": timing_big, "big_batch": big_batch}
