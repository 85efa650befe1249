"""helpers.env: quick mode, seeding, CPU features and quantized engines."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from helpers import env


def test_quick_default_reads_the_environment(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert env.quick_default() is True
    monkeypatch.setenv("COURSE_QUICK", "0")
    assert env.quick_default() is False
    monkeypatch.setenv("COURSE_QUICK", "sometimes")
    with pytest.raises(ValueError, match="COURSE_QUICK must be 0 or 1"):
        env.quick_default()


def test_seed_everything_repeats_random_streams():
    env.seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    env.seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_default_engine_per_architecture():
    assert env.default_engine("x86_64") == "x86"
    assert env.default_engine("arm64") == "qnnpack"
    assert env.default_engine("aarch64") == "qnnpack"
    with pytest.raises(RuntimeError, match="no quantized engine is known"):
        env.default_engine("riscv64")


def test_select_engine_sets_and_rejects_unknown():
    before = torch.backends.quantized.engine
    try:
        chosen = env.select_engine()
        assert torch.backends.quantized.engine == chosen
        with pytest.raises(ValueError, match="not available in this PyTorch build"):
            env.select_engine("tpu-int8")
    finally:
        torch.backends.quantized.engine = before


def test_environment_report_has_a_verdict():
    report = env.environment_report()
    assert report.packages["torch"] is not None
    assert set(report.cpu) >= {"avx2", "avx512_vnni", "avx_vnni", "arm_neon", "arm_dotprod"}
    assert report.verdict()
    assert "Verdict" in str(report)
    assert report.as_dict()["engine"] == report.engine


def test_importing_helpers_changes_no_global_state():
    import subprocess
    import sys

    code = ("import torch, warnings; t = torch.get_num_threads(); f = list(warnings.filters);"
            "import helpers, helpers.env, helpers.measure, helpers.plot;"
            "import matplotlib; assert torch.get_num_threads() == t;"
            "assert list(warnings.filters) == f; print('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "clean", out.stderr


@pytest.mark.parametrize("feature", ["avx512_vnni", "avx_vnni", "amx_int8", "arm_dotprod"])
def test_any_int8_dot_product_instruction_counts_for_the_verdict(feature):
    report = env.environment_report()
    cpu = {key: False for key in report.cpu} | {feature: True}
    verdict = dataclasses.replace(report, cpu=cpu, problems=[]).verdict()
    assert "dot-product instructions" in verdict and "may not" in verdict
