"""The helpers package and the tests pass the linter configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from helpers import paths


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed in the course environment: pip install -r requirements.txt")
    result = subprocess.run([ruff, "check", "helpers", "tests"], cwd=paths.repo_root(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
