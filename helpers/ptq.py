"""Post-training static quantization support shared by the PyTorch lessons.

Introduced in lesson 06: calibration runs representative data through a prepared model so
its observers see the activation ranges; without it, convert() has nothing to go on.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from helpers import data


def calibrate(prepared: torch.nn.Module, split: data.Split, batches: int = 10,
              batch_size: int = 32) -> int:
    """Run up to ``batches`` batches of a split through a prepared model; returns images seen."""
    if batches < 1:
        raise ValueError(f"calibration needs at least one batch, got batches={batches}")
    if len(split) == 0:
        raise ValueError("the calibration split is empty: pass mnist.calib (or a non-empty take(n))")
    loader = data.torch_loader(split, batch_size=batch_size)
    seen = 0
    prepared.eval()
    with torch.inference_mode():
        for index, (x, _) in enumerate(tqdm(loader, total=min(batches, len(loader)),
                                            desc="calibrating", leave=False)):
            if index >= batches:
                break
            prepared(x)
            seen += len(x)
    return seen
