"""helpers.ptq: calibration feeds observers, and refuses empty data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import data, models, ptq


def test_calibrate_counts_images_and_fills_observers():
    model = models.MLP().eval()
    model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    prepared = torch.ao.quantization.prepare(model)
    seen = ptq.calibrate(prepared, data.load_mnist().calib, batches=2, batch_size=16)
    assert seen == 32
    observer = prepared.fc1.activation_post_process
    assert torch.isfinite(observer.min_val) and observer.max_val > observer.min_val


def test_calibrate_rejects_empty_data_and_zero_batches():
    empty = data.Split(np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="calibration split is empty"):
        ptq.calibrate(models.MLP(), empty)
    with pytest.raises(ValueError, match="at least one batch"):
        ptq.calibrate(models.MLP(), data.load_mnist().calib, batches=0)
