"""Tests for helpers.qat_flows (lesson 08): PT2E QAT, torchao QATConfig, what a file stores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers import data, models, qat_flows, qat_loop

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


class NoBatchNorm(nn.Module):
    """Conv, ReLU and a linear head: PT2E converts it without the conv-BN pattern search."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3, stride=2), nn.Linear(4 * 13 * 13, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


@pytest.fixture(scope="module")
def split():
    return data.load_mnist().train.take(32)


@pytest.fixture()
def prepared_cnn(split):
    torch.manual_seed(0)
    model = models.SmallCNN(width=8, eager=False)
    example = data.torch_tensors(split.take(4))[0]
    prepared, seconds = qat_flows.prepare_pt2e_qat(model, example)
    return prepared, seconds


def _bn_flags(graph_module) -> list[bool]:
    return [n.args[5] for n in graph_module.graph.nodes
            if n.op == "call_function" and str(n.target) in qat_flows._BN_TARGETS]


def test_export_needs_a_real_batch() -> None:
    with pytest.raises(ValueError, match="N >= 2"):
        qat_flows.export_for_qat(NoBatchNorm(), torch.zeros(1, 1, 28, 28))


def test_pt2e_prepare_train_freeze_and_the_eval_train_round_trip(prepared_cnn, split) -> None:
    prepared, seconds = prepared_cnn
    assert set(seconds) == {"export_s", "prepare_s"}
    assert len(qat_loop.observing_modules(prepared)) >= 5
    with pytest.raises(NotImplementedError, match="move_exported_model_to"):
        prepared.eval()
    qat_flows.pt2e_to_train(prepared)
    assert _bn_flags(prepared) and all(_bn_flags(prepared))
    history = qat_loop.finetune(prepared, split, epochs=2, freeze_observers_after=1,
                                freeze_bn_after=1, batch_size=16, flow=qat_flows.PT2E)
    assert history.events == {1: "observers frozen, BN statistics frozen"}
    assert all(int(m.observer_enabled) == 0 for m in qat_loop.observing_modules(prepared))
    qat_flows.pt2e_to_train(prepared)  # eval -> train rewrites BN: the freeze must come back
    assert not any(_bn_flags(prepared))


def test_pt2e_convert_save_and_drop_unused_weights(split, tmp_path) -> None:
    torch.manual_seed(0)
    example = data.torch_tensors(split.take(4))[0]
    prepared, _ = qat_flows.prepare_pt2e_qat(NoBatchNorm(), example)
    qat_loop.finetune(prepared, split, epochs=1, freeze_observers_after=1, batch_size=16,
                      flow=qat_flows.PT2E)
    converted, seconds = qat_flows.convert_pt2e_qat(prepared)
    assert seconds >= 0
    before = qat_loop.predict(converted, split, qat_flows.PT2E)
    qat_flows.save_pt2(converted, example[:2], tmp_path / "a.pt2")
    default = qat_flows.pt2_contents(tmp_path / "a.pt2")
    weights = 4 * 9 + 10 * 4 * 13 * 13
    assert default["tensors_read"]["int8"] == weights
    assert default["tensors_never_read"] == {"float32": 4 * weights}
    assert qat_flows.drop_unused_parameters(converted) == 4 * weights
    size = qat_flows.save_pt2(converted, example[:2], tmp_path / "b.pt2")
    lean = qat_flows.pt2_contents(tmp_path / "b.pt2")
    assert lean["file_bytes"] == size < default["file_bytes"]
    assert not lean["tensors_never_read"] and lean["graph_json_bytes"] > 0
    assert np.array_equal(qat_loop.predict(converted, split, qat_flows.PT2E), before)


def test_freeze_pt2e_bn_needs_batch_norm(split) -> None:
    example = data.torch_tensors(split.take(4))[0]
    with pytest.raises(ValueError, match="no batch_norm"):
        qat_flows.freeze_pt2e_bn(qat_flows.export_for_qat(NoBatchNorm(), example))


def test_torchao_qat_swaps_linear_only_and_stores_int8(split) -> None:
    torch.manual_seed(0)
    model = models.SmallCNN(width=8).eval()
    config = qat_flows.int8_linear_config()
    qat_flows.torchao_qat(model, config, "prepare")
    assert qat_flows.fake_quantized_layers(model) == ["fc"]
    qat_loop.finetune(model, split, epochs=2, freeze_bn_after=1, batch_size=16,
                      flow=qat_flows.TORCHAO)
    qat_flows.TORCHAO.to_train(model)
    assert model.training and not model.stem[1].training  # BN stays frozen in train mode
    qat_flows.torchao_qat(model, config, "convert")
    stored = qat_flows.stored_bytes_by_dtype(model.state_dict().values())
    assert stored["int8"] >= 10 * 8 * 7 * 7  # the head's weights, one byte each
    assert qat_loop.predict(model, split, qat_flows.TORCHAO).shape == (32,)
    with pytest.raises(ValueError, match="step must be"):
        qat_flows.torchao_qat(model, config, "train")


def test_stored_bytes_by_dtype_unpacks_quantized_tensors() -> None:
    per_channel = torch.quantize_per_channel(torch.randn(3, 4), torch.tensor([0.1, 0.2, 0.3]),
                                             torch.zeros(3, dtype=torch.long), 0, torch.qint8)
    per_tensor = torch.quantize_per_tensor(torch.randn(5), 0.1, 0, torch.quint8)
    stored = qat_flows.stored_bytes_by_dtype([per_channel, (per_tensor, torch.zeros(2))])
    assert stored == {"int8": 12, "float64": 24, "int64": 24, "uint8": 5, "float32": 8}
