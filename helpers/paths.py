"""Where the course keeps its files: data, caches, results, artifacts.

Every location can be moved with an environment variable, which the tests use to keep a
student's own results and caches untouched.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    path = Path(value).expanduser() if value else default
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path:
    """The course checkout (the folder holding lessons/, solutions/ and helpers/)."""
    return ROOT


def data_dir() -> Path:
    """Downloaded data sets (``COURSE_DATA_DIR``, default ``data/``)."""
    return _from_env("COURSE_DATA_DIR", ROOT / "data")


def cache_dir() -> Path:
    """Trained-model cache keyed by recipe (``COURSE_CACHE_DIR``, default ``data/cache``)."""
    return _from_env("COURSE_CACHE_DIR", data_dir() / "cache")


def results_dir() -> Path:
    """Where notebooks record their measurements (``COURSE_RESULTS_DIR``, default ``results/``)."""
    return _from_env("COURSE_RESULTS_DIR", ROOT / "results")


def artifacts_dir(notebook: str) -> Path:
    """Files a notebook writes, such as .tflite and .pt (``COURSE_ARTIFACTS_DIR``, default ``artifacts/``)."""
    folder = _from_env("COURSE_ARTIFACTS_DIR", ROOT / "artifacts") / notebook
    folder.mkdir(parents=True, exist_ok=True)
    return folder
