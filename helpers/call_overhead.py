"""The fixed cost of one call through a runtime, measured with a model that does almost nothing; lesson 13.

A batch-1 latency is the network's arithmetic plus what every call costs whatever the model:
Python dispatch, the runtime's bookkeeping, quantizing the input and dequantizing the output.
A trivial model (flatten and one 784 x 10 dense layer, 7,840 multiply-adds) through the same
path measures that fixed part, so a lesson can say which share of a call it is.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.ao.quantization as tq
from torch import nn

from helpers import data, measure


class TrivialNet(nn.Module):
    """Flatten and one Linear(784, 10), with quant stubs for eager int8; lesson 13."""

    def __init__(self) -> None:
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.fc(torch.flatten(self.quant(x), 1)))


def trivial_torch(calib: torch.Tensor, engine: str) -> dict[str, nn.Module]:
    """The trivial net in float and as eager static int8 (calibrated on ``calib``); lesson 13."""
    torch.manual_seed(0)
    fp32 = TrivialNet().eval()
    prepared = tq.prepare(_with_qconfig(TrivialNet(), fp32, engine))
    with torch.inference_mode():
        prepared(calib)
    return {"pytorch fp32": fp32, "pytorch int8": tq.convert(prepared)}


def _with_qconfig(model: nn.Module, source: nn.Module, engine: str) -> nn.Module:
    model.load_state_dict(source.state_dict())
    model.eval().qconfig = tq.get_default_qconfig(engine)
    return model


def trivial_lite(calib_images: np.ndarray | None = None,
                 modes: tuple[str, ...] = ("fp32", "int8")) -> dict[str, bytes]:
    """The trivial net in Keras 3, converted to float and to int8 with uint8 I/O; lessons 09, 13.

    ``calib_images`` are needed for int8 only.
    """
    import keras

    from helpers import tflite

    if "int8" in modes and calib_images is None:
        raise ValueError("the int8 conversion needs calib_images (a few hundred (28, 28) images)")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    return {f"LiteRT {mode}": tflite.convert_keras(model, mode, calib_images) for mode in modes}


def fixed_costs(split: data.Split, calib: data.Split, engine: str, threads: int = 1,
                repeats: int = 200) -> dict[str, measure.Timing]:
    """Batch-1 latency of the trivial net through each path the capstone times; lesson 13."""
    from helpers import tflite

    timings = {}
    x = data.torch_tensors(split.take(1))[0]
    for name, model in trivial_torch(data.torch_tensors(calib.take(256))[0], engine).items():
        def call(model=model):
            with torch.inference_mode():
                return model(x)
        timings[name] = measure.latency(call, threads=threads, repeats=repeats)
    images = data.keras_arrays(split.take(1))[0]
    for name, content in trivial_lite(data.keras_arrays(calib.take(256))[0]).items():
        lite = tflite.LiteModel(content, num_threads=threads)
        q = lite.quantize_input(images)
        timings[name] = measure.latency(lambda lite=lite, q=q: lite.invoke(q), threads=threads,
                                        repeats=repeats)
    return timings
