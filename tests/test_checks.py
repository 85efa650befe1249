"""helpers.checks: success lines, failures with expected / got / hint, unfinished stubs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import checks


def test_check_close_passes_and_reports(capsys):
    checks.check_close("scale", 0.1 + 1e-9, 0.1)
    assert "✅" in capsys.readouterr().out


def test_check_close_failure_names_expected_got_and_hint():
    with pytest.raises(checks.ExerciseError) as info:
        checks.check_close("scale", 0.2, 0.1, hint="divide by qmax - qmin")
    message = str(info.value)
    assert "expected" in message and "got" in message and "divide by qmax - qmin" in message


def test_check_close_reports_wrong_shape():
    with pytest.raises(checks.ExerciseError, match="shape is wrong"):
        checks.check_close("q", np.zeros(3), np.zeros(4))


def test_check_equal_counts_mismatches_and_reads_quantized_tensors():
    q = torch.quantize_per_tensor(torch.tensor([0.0, 1.0]), 0.1, 0, torch.qint8)
    checks.check_equal("q", q, np.array([0, 10], dtype=np.int8))
    with pytest.raises(checks.ExerciseError, match="1 of 2 values differ"):
        checks.check_equal("q", np.array([0, 9]), np.array([0, 10]))


def test_attempt_turns_a_stub_into_a_clear_message():
    def qparams(x):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError, match="qparams is not written yet"):
        checks.attempt(qparams, 1)
    assert checks.attempt(lambda x: x + 1, 1) == 2


def test_check_choice_and_true():
    checks.check_choice("method", "int8", {"int8", "16x8"}, why="fast enough")
    with pytest.raises(checks.ExerciseError, match="does not meet the constraints"):
        checks.check_choice("method", "fp32", {"int8"}, why="")
    with pytest.raises(checks.ExerciseError, match="not yet"):
        checks.check_true(False, "size below budget", hint="try int8")
