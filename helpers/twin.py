"""One network in two frameworks: the Keras twin of a PyTorch model, with the same weights; lesson 13.

The capstone trains one depthwise-separable network (:class:`helpers.models.DepthwiseSeparableNet`)
in PyTorch and gives TensorFlow the *same* weights, so every TFLite method and every PyTorch
method quantize one and the same float model. Copying weights across frameworks means
translating layouts:

* a convolution kernel is ``(out, in, kh, kw)`` (OIHW) in PyTorch and ``(kh, kw, in, out)``
  (HWIO) in Keras; a depthwise kernel is ``(channels, 1, kh, kw)`` in PyTorch and
  ``(kh, kw, channels, 1)`` in Keras;
* a dense kernel is ``(out, in)`` in PyTorch and ``(in, out)`` in Keras;
* batch norm keeps gamma, beta, the running mean and variance, and its epsilon (1e-5 in
  PyTorch, 1e-3 by default in Keras: it must be copied too);
* PyTorch pads a stride-2 3x3 convolution by one pixel on every side, Keras' ``"same"`` pads
  only the bottom and right: the twin pads explicitly.

The twin takes raw pixels in [0, 1] and standardizes them itself with a 1x1 convolution
(weight 1/std, bias -mean/std), an affine map every converter and tfmot can quantize; so an
integer-only TFLite file takes the image bytes as they are. :func:`parity` proves the two
networks agree on real images.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers import data, models

# The twin must reproduce the original's logits to this absolute tolerance (float32 rounding).
PARITY_TOLERANCE = 1e-4


def conv_kernel_to_keras(weight: np.ndarray, depthwise: bool = False) -> np.ndarray:
    """A PyTorch conv kernel (OIHW, or C1HW for depthwise) in Keras layout (HWIO or HWC1); lesson 13."""
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"a conv kernel has 4 dimensions (out, in, kh, kw), got shape {weight.shape}")
    if depthwise:
        if weight.shape[1] != 1:
            raise ValueError(f"a depthwise kernel has shape (channels, 1, kh, kw), got {weight.shape}")
        return np.ascontiguousarray(weight.transpose(2, 3, 0, 1))
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0))


def dense_kernel_to_keras(weight: np.ndarray) -> np.ndarray:
    """A PyTorch Linear weight (out, in) as a Keras Dense kernel (in, out); lesson 13."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"a Linear weight has shape (out, in), got {weight.shape}")
    return np.ascontiguousarray(weight.T)


def batch_norm_weights(bn: nn.BatchNorm2d) -> list[np.ndarray]:
    """gamma, beta, running mean, running variance: the order Keras' BatchNormalization stores."""
    return [t.detach().cpu().numpy().copy() for t in
            (bn.weight, bn.bias, bn.running_mean, bn.running_var)]


def _blocks(net: nn.Module) -> list[nn.Sequential]:
    """The conv-BN-ReLU6 blocks of a DepthwiseSeparableNet, checked, in order."""
    if not isinstance(net, models.DepthwiseSeparableNet):
        raise TypeError("keras_twin() translates a helpers.models.DepthwiseSeparableNet, got "
                        f"{type(net).__name__}")
    blocks = [net.stem, *net.features]
    for index, block in enumerate(blocks):
        kinds = [type(m) for m in block]
        if kinds != [nn.Conv2d, nn.BatchNorm2d, nn.ReLU6]:
            raise TypeError(f"block {index} is {[k.__name__ for k in kinds]}; the twin expects "
                            "Conv2d, BatchNorm2d, ReLU6 (fuse nothing before building the twin)")
    return blocks


def keras_twin(net: models.DepthwiseSeparableNet, keras_module=None,
               conv_layout: Callable[[np.ndarray, bool], np.ndarray] = conv_kernel_to_keras):
    """The Keras model computing what ``net`` computes, on raw pixels, with its weights; lesson 13.

    ``keras_module`` is Keras 3 by default; lesson 12's legacy ``tf_keras`` builds the same
    twin for tfmot. ``conv_layout`` exists so a test can show that a wrong transpose is caught.
    """
    if keras_module is None:
        import keras as keras_module
    layers = keras_module.layers
    blocks = _blocks(net)
    inputs = keras_module.Input(shape=(28, 28), name="image")
    x = layers.Reshape((28, 28, 1), name="add_channel")(inputs)
    standardize = layers.Conv2D(1, 1, name="standardize")
    x = standardize(x)
    copies = []
    for index, (conv, bn, _) in enumerate(blocks):
        name = "stem" if index == 0 else f"block{index}"
        (kh, kw), (stride, _), (pad, _) = conv.kernel_size, conv.stride, conv.padding
        depthwise = conv.groups > 1
        if depthwise and conv.groups != conv.in_channels:
            raise ValueError(f"{name}: grouped convolutions other than depthwise are not supported")
        if stride == 1 and pad == kh // 2:
            padding = "same"  # symmetric padding, as PyTorch does
        else:
            # Keras' "same" pads bottom/right only at stride 2; PyTorch pads every side.
            x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x) if pad else x
            padding = "valid"
        if depthwise:
            layer = layers.DepthwiseConv2D((kh, kw), strides=stride, padding=padding,
                                           use_bias=False, name=f"{name}_dw")
        else:
            layer = layers.Conv2D(conv.out_channels, (kh, kw), strides=stride, padding=padding,
                                  use_bias=False, name=f"{name}_conv")
        norm = layers.BatchNormalization(epsilon=bn.eps, name=f"{name}_bn")
        x = layers.ReLU(max_value=6.0, name=f"{name}_relu6")(norm(layer(x)))
        copies.append((layer, norm, conv, bn, depthwise))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    dense = layers.Dense(net.fc.out_features, name="logits")
    model = keras_module.Model(inputs, dense(x), name="ds_cnn_twin")
    standardize.set_weights([np.full((1, 1, 1, 1), 1 / data.MNIST_STD, np.float32),
                             np.array([-data.MNIST_MEAN / data.MNIST_STD], np.float32)])
    for layer, norm, conv, bn, depthwise in copies:
        layer.set_weights([conv_layout(conv.weight.detach().cpu().numpy(), depthwise)])
        norm.set_weights(batch_norm_weights(bn))
    dense.set_weights([dense_kernel_to_keras(net.fc.weight.detach().cpu().numpy()),
                       net.fc.bias.detach().cpu().numpy()])
    return model


class Deployable(nn.Module):
    """The PyTorch original on raw pixels, as the twin takes them (for PyTorch -> LiteRT); lesson 13.

    The same 1x1 standardizing convolution in front, and the pooled features averaged with
    ``mean`` rather than flattened, so the converted file keeps a dynamic batch dimension.
    """

    def __init__(self, net: models.DepthwiseSeparableNet) -> None:
        super().__init__()
        _blocks(net)
        self.net = copy.deepcopy(net).eval()
        self.standardize = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.standardize.weight.fill_(1 / data.MNIST_STD)
            self.standardize.bias.fill_(-data.MNIST_MEAN / data.MNIST_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.net.features(self.net.stem(self.standardize(x)))
        return self.net.fc(features.mean(dim=(2, 3)))


def raw_images(split: data.Split) -> torch.Tensor:
    """A split's pixels in [0, 1] as (N, 1, 28, 28) float32, the input of :class:`Deployable`."""
    return torch.from_numpy(np.ascontiguousarray(split.x, dtype=np.float32)).unsqueeze(1)


def torch_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Logits of a PyTorch model for a batch of inputs, in eval mode, as NumPy; lesson 13."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def keras_logits(model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Logits of a Keras model for raw images (N, 28, 28), in inference mode; lesson 13."""
    return np.concatenate([np.asarray(model(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])


@dataclass(frozen=True)
class Parity:
    """How far the twin's logits are from the original's on the same images."""

    images: int
    max_abs_logit_diff: float
    prediction_mismatches: int

    def holds(self, tolerance: float = PARITY_TOLERANCE) -> bool:
        """True when every logit is within ``tolerance`` and no prediction differs."""
        return self.max_abs_logit_diff <= tolerance and self.prediction_mismatches == 0

    def __str__(self) -> str:
        return (f"max |logit difference| {self.max_abs_logit_diff:.2e} over {self.images:,} "
                f"images, {self.prediction_mismatches} predictions differ")

    def as_record(self) -> dict:
        return {"images": self.images, "max_abs_logit_diff": self.max_abs_logit_diff,
                "prediction_mismatches": self.prediction_mismatches,
                "tolerance": PARITY_TOLERANCE}


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Parity of two logit arrays (one row per image); lesson 13."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ValueError(f"logit shapes differ: {reference.shape} vs {candidate.shape}")
    return Parity(images=len(reference),
                  max_abs_logit_diff=float(np.abs(reference - candidate).max()),
                  prediction_mismatches=int(np.sum(reference.argmax(1) != candidate.argmax(1))))


def parity(net: nn.Module, keras_model, split: data.Split) -> Parity:
    """The original on standardized tensors against the twin on raw pixels, same images; lesson 13."""
    reference = torch_logits(net, data.torch_tensors(split)[0])
    return compare_logits(reference, keras_logits(keras_model, data.keras_arrays(split)[0]))
