"""Test session setup: quick mode, and results/artifacts kept out of the student's folders.

The environment variables are set before any kernel starts, so the notebooks executed by
papermill (lessons) and nbval (solutions) inherit them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

SCRATCH = Path(tempfile.mkdtemp(prefix="course-tests-"))
LESSONS_KEY = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    os.environ["COURSE_QUICK"] = "1"
    os.environ["COURSE_RESULTS_DIR"] = str(SCRATCH / "results")
    os.environ["COURSE_ARTIFACTS_DIR"] = str(SCRATCH / "artifacts")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def scratch() -> Path:
    """The session's scratch folder (results, artifacts and executed notebooks)."""
    return SCRATCH


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Remember which lessons the selected tests need (after -k and -m deselection)."""
    names = set()
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and "lesson_runs" in getattr(item, "fixturenames", ()):
            names.add(callspec.params["name"])
    config.stash[LESSONS_KEY] = sorted(names)




@pytest.fixture(scope="session")
def lesson_runs(request: pytest.FixtureRequest, scratch: Path):
    """The selected lessons executed once with papermill in quick mode, two at a time."""
    from helpers.course import runner

    names = request.config.stash[LESSONS_KEY]
    jobs = int(os.environ.get("COURSE_TEST_JOBS", "2"))
    results = runner.run(names, kind="lesson", quick=True, out_dir=scratch / "executed",
                         jobs=jobs)
    return {r.name: r for r in results}
