"""The reference models the lessons share, in PyTorch and Keras.

Introduced in lesson 00; trained and cached by :mod:`helpers.training`.

* :class:`MLP`: the two-layer MLP from "Curious About Faster ML Models? Discover Model
  Quantization With PyTorch!" (784-128-10), with QuantStub/DeQuantStub for eager mode.
* :class:`SmallCNN`: conv-bn-relu blocks and one residual block, written for eager-mode
  quantization (stubs, separate ReLU modules, ``FloatFunctional`` for the skip add).
  ``SmallCNN(eager=False)`` is the same network with a plain ``+``, for FX and PT2E.
* :class:`DepthwiseSeparableNet`: MobileNet-style depthwise-separable blocks with batch norm
  and ReLU6, the classic network whose folded depthwise channels have very different ranges,
  so per-tensor weight quantization loses accuracy that per-channel recovers.
* :func:`build_keras_cnn`: the Keras MNIST CNN of the TensorFlow post-training quantization
  examples (Reshape, Conv2D 12 3x3, MaxPool, Flatten, Dense 10), built with ``keras.Input``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


class MLP(nn.Module):
    """784-128-10 MLP with quant/dequant stubs; lesson 06."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, 10)
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x.reshape(x.shape[0], -1))
        x = self.relu(self.fc1(x))
        return self.dequant(self.fc2(x))


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """A 3x3 conv, batch norm and ReLU as a Sequential whose children fuse as ["0", "1", "2"]."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class SmallCNN(nn.Module):
    """Conv-bn-relu stem, a residual block and a linear head for 28x28 digits; lesson 06.

    With ``eager=True`` the skip connection goes through ``FloatFunctional.add_relu``, which
    eager-mode conversion can replace by a quantized add; with ``eager=False`` it is a plain
    ``torch.relu(a + b)`` that FX and PT2E trace and quantize on their own.
    """

    def __init__(self, width: int = 32, eager: bool = True) -> None:
        super().__init__()
        self.eager = eager
        self.quant = QuantStub() if eager else nn.Identity()
        self.stem = conv_bn_relu(1, width // 2)
        self.pool1 = nn.MaxPool2d(2)
        self.block1 = conv_bn_relu(width // 2, width)
        self.pool2 = nn.MaxPool2d(2)
        self.res_a = conv_bn_relu(width, width)
        self.res_b = nn.Sequential(
            nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )
        self.skip = FloatFunctional() if eager else None
        self.fc = nn.Linear(width * 7 * 7, 10)
        self.dequant = DeQuantStub() if eager else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        x = self.pool1(self.stem(x))
        x = self.pool2(self.block1(x))
        y = self.res_b(self.res_a(x))
        x = self.skip.add_relu(y, x) if self.skip is not None else torch.relu(y + x)
        x = torch.flatten(x, 1)
        return self.dequant(self.fc(x))

    def fusion_groups(self) -> list[list[str]]:
        """The module names ``torch.ao.quantization.fuse_modules`` should merge; lesson 06."""
        groups = [[f"{name}.0", f"{name}.1", f"{name}.2"]
                  for name in ("stem", "block1", "res_a")]
        return groups + [["res_b.0", "res_b.1"]]


def conv_bn_relu6(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1,
                  groups: int = 1) -> nn.Sequential:
    """Conv, batch norm and ReLU6 (MobileNet's activation), children named "0", "1", "2"."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(),
    )


class DepthwiseSeparableNet(nn.Module):
    """A stem and ``blocks`` depthwise-separable blocks (MobileNet v1 style); lesson 03.

    Each block is a 3x3 depthwise conv (one filter per channel) and a 1x1 pointwise conv, both
    followed by batch norm and ReLU6. After batch norm is folded into the depthwise weights,
    each channel carries its own gamma / sigma factor, so channel ranges differ widely: the
    network where the choice between per-tensor and per-channel weights shows in accuracy.
    """

    def __init__(self, width: int = 32, blocks: int = 5) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        self.quant = QuantStub()
        self.stem = conv_bn_relu6(1, width, stride=2)
        layers = []
        for index in range(blocks):
            stride = 2 if index == 1 else 1
            layers.append(conv_bn_relu6(width, width, stride=stride, groups=width))
            layers.append(conv_bn_relu6(width, width, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, 10)
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.stem(self.quant(x)))
        return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))

    def fusion_groups(self) -> list[list[str]]:
        """Conv + BN + ReLU6 groups for ``fuse_modules``: ReLU6 is not fused, so conv + BN."""
        names = ["stem"] + [f"features.{i}" for i in range(len(self.features))]
        return [[f"{name}.0", f"{name}.1"] for name in names]


TORCH_MODELS = {
    "mlp": MLP,
    "small_cnn": SmallCNN,
    "ds_cnn": DepthwiseSeparableNet,
}


def build_torch_model(name: str, **kwargs) -> nn.Module:
    """A fresh, untrained model from :data:`TORCH_MODELS` by name."""
    if name not in TORCH_MODELS:
        raise KeyError(f"unknown model {name!r}; the course models are {sorted(TORCH_MODELS)}")
    return TORCH_MODELS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (weights and biases) of a PyTorch model; lesson 00."""
    return sum(p.numel() for p in model.parameters())


def build_keras_cnn(filters: int = 12, seed: int = 0, keras_module=None,
                    activation: str = "relu", name: str = "keras_cnn"):
    """The Keras MNIST CNN of the TFLite examples, with a ``keras.Input`` (Keras 3); lesson 09.

    Lesson 12 passes ``keras_module=tf_keras`` to build the same network in legacy Keras;
    lesson 10 passes ``activation="elu"`` for an activation without an int8 kernel.
    """
    if keras_module is None:
        import keras as keras_module

    keras_module.utils.set_random_seed(seed)
    layers = keras_module.layers
    return keras_module.Sequential(
        [
            keras_module.Input(shape=(28, 28), name="image"),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(filters, (3, 3), activation=activation),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(10, name="logits"),
        ],
        name=name,
    )
