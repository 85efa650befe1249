"""Every lesson runs top to bottom in quick mode; only unfinished exercises may fail.

Each lesson is executed once with papermill and its three tests read that run (under
``./course test`` this whole file runs on one xdist worker). The solutions are executed
separately by nbval (``--nbval-lax`` on ``solutions/``), which also compares the outputs of
cells tagged ``nbval-check-output``.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import cache
from pathlib import Path

import pytest

from helpers import paths
from helpers.course import notebooks, report, runner

LESSONS = notebooks.notebook_names(notebooks.lessons_dir())


@cache
def lesson_run(name: str) -> runner.RunResult:
    """Execute lessons/<name> once in this process (quick mode) and remember the result."""
    scratch = Path(os.environ["COURSE_TEST_SCRATCH"])
    return runner.run_one(name, kind="lesson", quick=True, out_dir=scratch / "executed")


def stray_files() -> list[str]:
    # solutions/results/ holds the reference run's records (./course refresh-solutions).
    return sorted(f"{folder.name}/{p.name}"
                  for folder in (notebooks.lessons_dir(), notebooks.solutions_dir())
                  for p in folder.iterdir()
                  if p.suffix != ".ipynb" and p.name != "README.md"
                  and not (folder == notebooks.solutions_dir() and p.name == "results"))


@pytest.mark.notebook
@pytest.mark.parametrize("name", LESSONS)
def test_lesson_runs_in_quick_mode(name: str) -> None:
    result = lesson_run(name)
    assert result.ok, f"{name} failed:\n" + "\n".join(result.errors)
    assert not stray_files(), f"running {name} left files the course did not put there: {stray_files()}"


@pytest.mark.notebook
@pytest.mark.parametrize("name", LESSONS)
def test_lesson_leaves_every_exercise_to_the_student(name: str) -> None:
    lesson = notebooks.read(notebooks.lessons_dir() / name)
    exercises = sum(notebooks.is_exercise(c) or "exercise" in notebooks.tags(c)
                    for c in lesson["cells"])
    assert exercises >= 1, f"{name} has no exercise"
    assert lesson_run(name).unfinished_exercises >= exercises, (
        f"{name}: {exercises} exercise(s) but only {lesson_run(name).unfinished_exercises} "
        "cell(s) reported 'not written yet'; does a check run without the student's code?")


@pytest.mark.notebook
@pytest.mark.parametrize("name", LESSONS)
def test_lesson_records_results_that_the_report_shows(name: str, tmp_path: Path) -> None:
    lesson_run(name)
    path = paths.results_dir() / name.replace(".ipynb", ".json")
    assert path.exists(), f"{name} wrote no results file"
    payload = json.loads(path.read_text())
    assert payload["quick"] is True
    assert payload["records"], f"{name} recorded nothing"
    shutil.copy(path, tmp_path / path.name)
    text = report.write_report(tmp_path, tmp_path / "report")["markdown"].read_text()
    section = text.split(f"## {name[:-6]}")[1].split("\n## ")[0]
    assert "Run in quick mode" in section, f"the report shows no run of {name}:\n{section[:500]}"
