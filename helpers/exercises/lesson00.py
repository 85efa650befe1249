"""Exercise checks of lesson 00 (start here)."""

from __future__ import annotations

import torch
from torch import nn

from helpers import checks, measure, models

HINT = ("only the weight matrices and conv kernels (floating-point tensors with two or more "
        "dimensions) shrink to `bits` bits; biases, batch-norm tensors and the buffers in the "
        "state_dict keep the size of their dtype (element_size); pack each tensor on its own and "
        "round it up to whole bytes")


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    # Two weight tensors of 3 values: at 4 or 3 bits each needs its own partly filled byte.
    return {"two tiny Linears and a LayerNorm": nn.Sequential(nn.Linear(3, 1), nn.Linear(1, 3),
                                                              nn.LayerNorm(3)),
            "the course MLP": models.build_torch_model("mlp"),
            "the small CNN (batch norm buffers, an int64 counter)": models.build_torch_model("small_cnn")}


def check_model_bytes(student) -> None:
    """The student's model_bytes(model, bits) against measure.packed_weight_bytes."""
    for name, model in _models().items():
        for bits in (32, 8, 4, 3):
            expected = measure.packed_weight_bytes(model, bits)
            got = checks.attempt(student, model, bits)
            if got != expected:
                checks.fail(f"model_bytes({name}, bits={bits})", expected, got, HINT)
    checks.passed("model_bytes packs the weights, keeps the rest at its dtype and rounds "
                  "each tensor up to whole bytes.")
