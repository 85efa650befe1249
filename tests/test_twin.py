"""helpers.twin: layouts, the Keras twin's parity with its PyTorch original, a wrong transpose caught."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import data, models, twin


def random_net(width: int = 8, blocks: int = 3, seed: int = 0) -> models.DepthwiseSeparableNet:
    """An untrained network whose batch-norm statistics are not the trivial 0 and 1."""
    torch.manual_seed(seed)
    net = models.DepthwiseSeparableNet(width=width, blocks=blocks)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.3, 2.0)
    net.fc.weight.data.mul_(20)  # logits of a few units, so a wrong weight shows in them
    return net.eval()


def random_split(n: int = 48, seed: int = 0) -> data.Split:
    rng = np.random.default_rng(seed)
    return data.Split(rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n), "val")


def test_conv_kernel_layouts():
    weight = np.arange(2 * 3 * 3 * 5).reshape(5, 2, 3, 3)  # (out, in, kh, kw)
    keras = twin.conv_kernel_to_keras(weight)
    assert keras.shape == (3, 3, 2, 5)
    assert keras[1, 2, 0, 4] == weight[4, 0, 1, 2]
    depthwise = np.arange(4 * 9).reshape(4, 1, 3, 3)
    assert twin.conv_kernel_to_keras(depthwise, depthwise=True).shape == (3, 3, 4, 1)
    assert twin.conv_kernel_to_keras(depthwise, depthwise=True)[0, 1, 3, 0] == depthwise[3, 0, 0, 1]
    with pytest.raises(ValueError, match="depthwise kernel has shape"):
        twin.conv_kernel_to_keras(weight, depthwise=True)
    with pytest.raises(ValueError, match="4 dimensions"):
        twin.conv_kernel_to_keras(weight[0])


def test_dense_kernel_is_transposed():
    weight = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(twin.dense_kernel_to_keras(weight), weight.T)
    with pytest.raises(ValueError, match="Linear weight"):
        twin.dense_kernel_to_keras(weight[0])


def test_the_twin_computes_what_the_original_computes_on_random_inputs():
    net = random_net()
    keras_model = twin.keras_twin(net)
    parity = twin.parity(net, keras_model, random_split())
    assert parity.holds(), parity
    assert parity.max_abs_logit_diff <= twin.PARITY_TOLERANCE
    assert parity.as_record()["prediction_mismatches"] == 0


def test_a_wrong_transpose_is_caught():
    net = random_net()

    def height_width_swapped(weight, depthwise):
        return twin.conv_kernel_to_keras(weight, depthwise).swapaxes(0, 1)

    wrong = twin.parity(net, twin.keras_twin(net, conv_layout=height_width_swapped), random_split())
    assert not wrong.holds()
    assert wrong.max_abs_logit_diff > 10 * twin.PARITY_TOLERANCE


def test_keras_default_batch_norm_epsilon_would_break_parity():
    net = random_net()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 1e-3  # Keras' default: the twin copies it from here
    keras_model = twin.keras_twin(net)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 1e-5  # PyTorch's default, the one the network was built with
    assert not twin.parity(net, keras_model, random_split()).holds()


def test_deployable_takes_raw_pixels_and_matches_the_original():
    net = random_net()
    split = random_split()
    reference = twin.torch_logits(net, data.torch_tensors(split)[0])
    got = twin.torch_logits(twin.Deployable(net), twin.raw_images(split))
    assert twin.compare_logits(reference, got).holds()


def test_only_depthwise_separable_nets_are_translated():
    with pytest.raises(TypeError, match="DepthwiseSeparableNet"):
        twin.keras_twin(models.SmallCNN())
    net = random_net()
    net.stem[2] = torch.nn.ReLU()
    with pytest.raises(TypeError, match="Conv2d, BatchNorm2d, ReLU6"):
        twin.keras_twin(net)


def test_compare_logits_needs_equal_shapes():
    with pytest.raises(ValueError, match="logit shapes differ"):
        twin.compare_logits(np.zeros((2, 10)), np.zeros((3, 10)))
