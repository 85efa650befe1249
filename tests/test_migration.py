"""Tests for helpers.migration (lesson 07): the table runs both APIs and every check agrees."""

from __future__ import annotations

import pytest
import torch

from helpers import migration, models

pytestmark = pytest.mark.usefixtures("quiet_engine")


def test_table_checks_every_row_that_has_a_successor() -> None:
    torch.manual_seed(0)
    model = models.SmallCNN(width=8, eager=False).eval()
    mlp = models.MLP(hidden=16).eval()
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    rows = migration.table(model, x[:1], x[:32], x[32:], mlp, include_qat=False)
    checked = [r for r in rows if r.ok is not None]
    assert len(checked) >= 7
    assert all(r.ok for r in checked), [(r.old, r.result) for r in checked if not r.ok]
    assert any(r.new == migration.NONE_YET for r in rows)
    assert {"torch.ao.quantization", "torchao / torch.export", "checked by", "result",
            "ok"} == set(rows[0].as_dict())
    skipped = [r for r in rows if "skipped" in r.check]
    assert len(skipped) == 1 and skipped[0].ok is None
