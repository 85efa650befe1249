"""Test session setup: quick mode, results/artifacts kept out of the student's folders, and
safe settings for two notebooks running at once.

It sits at the top of the checkout so that it applies to every run, including
``./course test solutions/04_integer_only_inference.ipynb`` (which collects nothing under tests/).

The environment variables are set before any kernel starts, so the notebooks executed by
papermill (lessons) and nbval (solutions) inherit them. ``./course test`` runs two
pytest-xdist workers with ``--dist loadfile``: a file is the unit of work, so all of a
solution's nbval cells run in one kernel, and ``tests/test_notebooks.py`` (every lesson, one
after the other) runs on one worker while the other takes the solutions and the unit tests.
(``--dist loadgroup`` would be finer, but with pytest 9 it does not keep groups together.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# One scratch folder per test run, shared by the xdist workers (the controller picks it).
SCRATCH = Path(os.environ.setdefault("COURSE_TEST_SCRATCH", tempfile.mkdtemp(prefix="course-tests-")))


def pytest_configure(config: pytest.Config) -> None:
    # Tests that import TensorFlow and tests that use torch.compile or torchao share a process:
    # triton must be loaded before TensorFlow, or the process crashes (helpers.tflite explains).
    from helpers.tflite import load_triton_before_tensorflow

    load_triton_before_tensorflow()
    os.environ["COURSE_QUICK"] = "1"
    os.environ["COURSE_RESULTS_DIR"] = str(SCRATCH / "results")
    os.environ["COURSE_ARTIFACTS_DIR"] = str(SCRATCH / "artifacts")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Two notebooks run at once on a 2-core machine: one OpenMP thread per kernel, and threads
    # that sleep instead of spinning while they wait, so that one kernel's waiting threads do
    # not take the other's core (a CI run with two kernels at a time and default threads hit
    # the 30-minute cell timeout while training a model). Notebooks that time something set
    # their thread count explicitly; quick-mode timings prove nothing anyway.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def quiet_engine():
    """The platform's quantized engine selected and warnings silenced (the PyTorch int8 tests)."""
    import warnings

    from helpers import env

    env.select_engine()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def one_torch_thread():
    """PyTorch on one thread for the test, then back to what it was."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def scratch() -> Path:
    """The session's scratch folder (results, artifacts and executed notebooks)."""
    return SCRATCH
