"""Every lesson runs top to bottom in quick mode; only unfinished exercises may fail.

The solutions are executed separately by nbval (``--nbval-lax`` on ``solutions/``), which also
compares the outputs of cells tagged ``nbval-check-output``.
"""

from __future__ import annotations

import json

import pytest

from helpers import paths
from helpers.course import notebooks

LESSONS = notebooks.notebook_names(notebooks.lessons_dir())


@pytest.mark.notebook
@pytest.mark.parametrize("name", LESSONS)
def test_lesson_runs_in_quick_mode(name: str, lesson_runs) -> None:
    result = lesson_runs[name]
    assert result.ok, f"{name} failed:\n" + "\n".join(result.errors)


@pytest.mark.notebook
@pytest.mark.parametrize("name", LESSONS)
def test_lesson_leaves_every_exercise_to_the_student(name: str, lesson_runs) -> None:
    lesson = notebooks.read(notebooks.lessons_dir() / name)
    exercises = sum(notebooks.is_exercise(c) or "exercise" in notebooks.tags(c)
                    for c in lesson["cells"])
    assert exercises >= 1, f"{name} has no exercise"
    assert lesson_runs[name].unfinished_exercises >= exercises, (
        f"{name}: {exercises} exercise(s) but only {lesson_runs[name].unfinished_exercises} "
        "cell(s) reported 'not written yet'; does a check run without the student's code?")


@pytest.mark.notebook
@pytest.mark.parametrize("name", LESSONS)
def test_lesson_records_results(name: str, lesson_runs) -> None:
    path = paths.results_dir() / name.replace(".ipynb", ".json")
    assert path.exists(), f"{name} wrote no results file"
    payload = json.loads(path.read_text())
    assert payload["quick"] is True
    assert payload["records"], f"{name} recorded nothing"


@pytest.mark.notebook
def test_running_the_lessons_leaves_nothing_behind_in_the_source_folders(lesson_runs) -> None:
    for folder in (notebooks.lessons_dir(), notebooks.solutions_dir()):
        strays = sorted(p.name for p in folder.iterdir()
                        if p.suffix != ".ipynb" and p.name != "README.md")
        assert not strays, f"{folder.name}/ holds files the course did not put there: {strays}"
