"""Checks for the exercises of lesson 08 (quantization-aware training).

Exercise 1 feeds rounding ties (x / scale exactly halfway between two integers), values that
clip on both sides, values exactly at qmin and qmax, and a non-zero zero point, and compares
values *and* gradients with ``torch.fake_quantize_per_tensor_affine``. Exercise 2 trains a tiny
prepared CNN through a loader that records, at the start of every epoch, whether the observers
still observe and whether batch norm still updates its statistics: freezing one epoch early or
late fails, not only forgetting to freeze. Exercise 3 uses a table where the fewest bits is not
the smallest file, where the smallest file breaks the budget, and asks it to refuse test data.
"""

from __future__ import annotations

import numpy as np
import torch

from helpers import checks, data, env, models, qat

# --- Exercise 1: my_fake_quant --------------------------------------------------------------

# scale is a power of two, so x / scale is exact: the ties below really are ties.
_FAKE_QUANT_CASES = (
    # scale, zero_point, qmin, qmax, x
    (0.25, 0, -4, 3, [-3.0, -1.2, -1.125, -1.0, -0.625, -0.125, 0.0, 0.125, 0.375, 0.625,
                      0.75, 0.9, 2.4]),
    (0.125, 3, 0, 15, [-0.6, -0.375, -0.25, -0.0625, 0.0625, 0.1875, 0.7, 1.5, 1.7, 2.0]),
)


def _reference_fake_quant(x: torch.Tensor, scale: float, zero_point: int, qmin: int,
                          qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, qmin, qmax)
    (out * _gradient_weights(len(x))).sum().backward()
    return out.detach(), x.grad


def _gradient_weights(n: int) -> torch.Tensor:
    # A different weight per entry, so a gradient in the wrong place cannot cancel out.
    return torch.arange(1.0, n + 1.0)


def check_my_fake_quant(student) -> None:
    """Values and STE gradients against PyTorch's op, ties and both clamps included; lesson 08."""
    for scale, zero_point, qmin, qmax, values in _FAKE_QUANT_CASES:
        x = torch.tensor(values)
        expected, expected_grad = _reference_fake_quant(x, scale, zero_point, qmin, qmax)
        mine = x.clone().requires_grad_(True)
        out = checks.attempt(student, mine, scale, zero_point, qmin, qmax)
        where = f"scale={scale}, zero_point={zero_point}, range [{qmin}, {qmax}]"
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            checks.fail(f"forward ({where}) must return a tensor shaped like x",
                        f"tensor of shape {tuple(x.shape)}", out,
                        "return the dequantized floats, one per entry of x")
        wrong = ~torch.isclose(out.detach(), expected, atol=1e-7, rtol=0)
        if wrong.any():
            ratio = x / scale
            ties = wrong & (ratio - ratio.floor() == 0.5)
            hint = ("the wrong entries sit exactly halfway between two grid points: "
                    "torch.round rounds ties to the even integer, as the reference does"
                    if ties.any() else
                    "clamp the integer q = round(x / scale) + zero_point, zero point included, "
                    "to [qmin, qmax]; only then subtract the zero point and multiply by scale")
            checks.fail(f"forward ({where}): {int(wrong.sum())} of {len(x)} values differ",
                        expected, out.detach(), hint)
        if not out.requires_grad:
            checks.fail("the output carries no gradient", "requires_grad=True", False,
                        "compute the output from x inside forward; do not .detach() it")
        (out * _gradient_weights(len(x))).sum().backward()
        grad = mine.grad if mine.grad is not None else torch.zeros_like(x)
        if not torch.equal(grad, expected_grad):
            q = torch.round(x / scale) + zero_point
            at_ends = (q == qmin) | (q == qmax)
            if not grad.abs().sum():
                hint = ("the gradient is zero everywhere: that is round's true derivative, the "
                        "problem QAT must get around. The STE passes grad_output straight through "
                        "where the value was inside the range")
            elif (grad != expected_grad)[expected_grad == 0].any():
                hint = ("values that were clipped must get zero gradient: build the mask from q "
                        "before clamping, save it with ctx.save_for_backward, multiply by it")
            elif (grad != expected_grad)[at_ends].any():
                hint = "q == qmin and q == qmax are inside the range: the mask includes both ends"
            else:
                hint = "backward returns grad_output times the inside-the-range mask"
            checks.fail(f"STE gradient ({where})", expected_grad, grad, hint)
    checks.passed("my_fake_quant matches torch.fake_quantize_per_tensor_affine, values and STE "
                  "gradients, ties and clipped entries included.")


# --- Exercise 2: qat_finetune_loop ------------------------------------------------------------

class _RecordingLoader:
    """A fixed list of batches that notes the model's freezing state whenever an epoch starts."""

    def __init__(self, model: torch.nn.Module, batches: list) -> None:
        self.model, self.batches, self.epochs = model, batches, []
        self.trained_in_eval_mode = False

    def state(self) -> dict:
        fake_quants = [m for m in self.model.modules()
                       if isinstance(m, torch.ao.quantization.FakeQuantizeBase)]
        fused = [m for m in self.model.modules() if hasattr(m, "freeze_bn")]
        return {"observing": all(int(m.observer_enabled) == 1 for m in fake_quants),
                "observers_frozen": all(int(m.observer_enabled) == 0 for m in fake_quants),
                "bn_frozen": all(m.freeze_bn for m in fused),
                "bn_updating": not any(m.freeze_bn for m in fused),
                "fake_quant_on": all(int(m.fake_quant_enabled) == 1 for m in fake_quants)}

    def __iter__(self):
        self.epochs.append(self.state())
        for batch in self.batches:
            yield batch
            # Checked after the student's forward pass on this batch.
            self.trained_in_eval_mode |= not self.model.training

    def __len__(self) -> int:
        return len(self.batches)


def _tiny_prepared_cnn() -> torch.nn.Module:
    env.seed_everything(0)
    return qat.prepare(models.SmallCNN(width=8).eval(), engine=env.select_engine())


def _describe(epochs: list[dict], freeze_after: int) -> tuple[list[str], list[str]]:
    expected = ["observing, BN updating" if e <= freeze_after else "frozen"
                for e in range(1, len(epochs) + 1)]
    got = []
    for state in epochs:
        if state["observing"] and state["bn_updating"]:
            got.append("observing, BN updating")
        elif state["observers_frozen"] and state["bn_frozen"]:
            got.append("frozen")
        else:
            got.append("observers " + ("frozen" if state["observers_frozen"] else "observing")
                       + ", BN " + ("frozen" if state["bn_frozen"] else "updating"))
    return expected, got


def check_qat_finetune_loop(student, epochs: int = 4, freeze_after: int = 2) -> None:
    """Trains a tiny prepared CNN and checks *when* observers and BN freeze; lesson 08."""
    model = _tiny_prepared_cnn()
    split = data.load_mnist().train.take(96)
    x, y = data.torch_tensors(split)
    loader = _RecordingLoader(model, [(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)])
    before = {k: v.clone() for k, v in model.state_dict().items() if k.endswith("weight")}
    losses = checks.attempt(student, model, loader, epochs=epochs, lr=1e-3,
                            freeze_after=freeze_after)
    checks.check_true(len(loader.epochs) == epochs, f"the loader is read once per epoch ({epochs})",
                      "loop `for epoch in range(1, epochs + 1)`, and inside it over the loader",
                      got=f"{len(loader.epochs)} passes")
    checks.check_true(isinstance(losses, list) and len(losses) == epochs
                      and all(np.isfinite(v) for v in losses), "one mean loss per epoch",
                      "append the mean loss of each epoch to a list and return it", got=losses)
    moved = any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    checks.check_true(moved, "the weights were updated",
                      "call loss.backward() and optimizer.step() for every batch")
    checks.check_true(not loader.trained_in_eval_mode, "every batch trained in train mode",
                      "call model.train() at the start of every epoch; freezing BN statistics is "
                      "freeze_bn_stats, not eval()")
    expected, got = _describe(loader.epochs, freeze_after)
    if got != expected:
        checks.fail(f"state at the start of each epoch (freeze_after={freeze_after})", expected,
                    got, "freeze once, right after epoch number freeze_after finishes (counting "
                    "from 1): the epochs up to it still observe and update BN, all later ones "
                    "run frozen; freeze both the observers and the batch-norm statistics")
    checks.passed(f"observers and BN statistics observe for epochs 1-{freeze_after}, frozen from "
                  f"epoch {freeze_after + 1}.")
    end = loader.state()
    checks.check_true(end["observers_frozen"] and end["bn_frozen"] and end["fake_quant_on"],
                      "at the end: ranges and BN frozen, fake quantization still on",
                      "disable the observers, not the fake quantization: disable_observer")
    checks.check_true(not model.training, "the model is left in eval mode", "model.eval()")


# --- Exercise 3: choose_deployment ------------------------------------------------------------

_FP32 = 0.9850
# Val accuracies. The three 8-bit-container models share one file size: fewer bits is not
# a smaller file. The one really smaller file loses 0.6 points.
_CANDIDATES = {
    "ptq-int8": {"method": "ptq", "bits": 8, "size_bytes": 52_029, "accuracy": 0.9846},
    "qat-int8": {"method": "qat", "bits": 8, "size_bytes": 52_029, "accuracy": 0.9851},
    "qat-4bit": {"method": "qat", "bits": 4, "size_bytes": 52_029, "accuracy": 0.9840},
    "qat-4bit-packed": {"method": "qat", "bits": 4, "size_bytes": 31_421, "accuracy": 0.9790},
    "ptq-3bit": {"method": "ptq", "bits": 3, "size_bytes": 52_029, "accuracy": 0.9310},
    "torchao-int8": {"method": "qat", "bits": 8, "size_bytes": 119_503, "accuracy": 0.9855},
}
_DEPLOYMENT_CASES = (
    (0.3, "ptq-int8", "three files of 52,029 bytes fit; PTQ wins the tie"),
    (1.0, "qat-4bit-packed", "the only really smaller file now fits"),
    (0.0, "qat-int8", "only candidates at least as good as float fit"),
    (10.0, "qat-4bit-packed", "a loose budget still ships the smallest file"),
)


def _split(role: str) -> data.Split:
    return data.Split(np.zeros((1, 28, 28), np.float32), np.zeros(1, np.int64), role)


def check_choose_deployment(student) -> None:
    """Smallest file within the budget on val, PTQ on ties, "fp32" if none; refuses test; lesson 08."""
    val = _split("val")
    for budget, expected, why in _DEPLOYMENT_CASES:
        got = checks.attempt(student, dict(_CANDIDATES), _FP32, budget, val)
        if got != expected:
            checks.fail(f"budget {budget} points ({why})", expected, got,
                        "keep the candidates that lose at most budget_points accuracy *points* "
                        "(1 point = 0.01 accuracy) against fp32, then take the smallest "
                        "size_bytes; on equal bytes prefer method 'ptq'")
    hopeless = {k: {**v, "accuracy": 0.90} for k, v in _CANDIDATES.items()}
    got = checks.attempt(student, hopeless, _FP32, 1.0, val)
    checks.check_equal("the answer when nothing fits the budget", got, "fp32",
                       "return 'fp32' when no candidate is within the budget")
    try:
        got = student(dict(_CANDIDATES), _FP32, 0.3, _split("test"))
    except ValueError:
        pass
    else:
        checks.fail("accuracies measured on the test split were accepted",
                    "data.SelectionOnTestError", got,
                    "a choice is made on val; refuse split.role == 'test' with "
                    "data.require_selection_split(split, ...)")
    checks.passed("choose_deployment picks the smallest file within the budget, on val only.")
