"""Every exercise check passes the reference solution and rejects named wrong answers.

The cases live in ``tests/wrong_answers/lessonNN.py`` (see ``harness.py``): for each exercise in
``solutions/``, the check that its notebook calls (from ``helpers.exercises``), the solution's own
code, and at least two plausible wrong answers named for their mistakes. A wrong answer must
fail with an ``ExerciseError`` that carries a hint. An exercise without a case fails the suite,
unless its lesson module lists it in ``PENDING``, and PENDING may only shrink.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path

import pytest

from helpers import checks

FOLDER = Path(__file__).resolve().parent / "wrong_answers"
sys.path.insert(0, str(FOLDER))
import harness  # noqa: E402  (tests/wrong_answers is not a package on sys.path by default)


def _load_lesson_modules() -> dict[str, object]:
    modules = {}
    for path in sorted(FOLDER.glob("lesson[0-9][0-9].py")):
        spec = importlib.util.spec_from_file_location(f"wrong_answers_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[path.stem[-2:]] = module
    return modules


MODULES = _load_lesson_modules()
PENDING = {(lesson, name) for lesson, module in MODULES.items()
           for name in getattr(module, "PENDING", set())}


def all_exercises() -> set[tuple[str, str]]:
    found = set()
    for notebook in sorted(harness.SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        lesson = notebook.name[:2]
        found |= {(lesson, harness.exercise_name(cell)) for _, cell in harness.exercise_cells(lesson)}
    return found


@cache
def build(key: tuple[str, str]) -> harness.Case:
    return harness.REGISTRY[key]()


def test_every_exercise_has_wrong_answers_or_is_pending():
    missing = all_exercises() - set(harness.REGISTRY) - PENDING
    assert not missing, f"exercises without wrong-answer cases in tests/wrong_answers/: {sorted(missing)}"


def test_pending_only_lists_real_unconverted_exercises():
    assert not PENDING & set(harness.REGISTRY), "converted exercises must leave PENDING"
    assert not PENDING - all_exercises(), f"stale PENDING entries: {sorted(PENDING - all_exercises())}"
    stale = set(harness.REGISTRY) - all_exercises()
    assert not stale, f"cases for exercises that solutions/ no longer has: {sorted(stale)}"


@pytest.mark.parametrize("key", sorted(harness.REGISTRY), ids="-".join)
def test_the_notebook_calls_the_tested_check(key):
    check = build(key).check
    source = harness.check_cell_source(*key)
    assert f"{check.__name__}(" in source, (
        f"the check cell of {key} does not call {check.__module__}.{check.__name__}, so this test "
        "would prove nothing about what the notebook runs")
    assert "\ndef " not in "\n" + source, f"the check cell of {key} defines its check inline"


@pytest.mark.parametrize("key", sorted(harness.REGISTRY), ids="-".join)
def test_the_reference_solution_passes(key):
    case = build(key)
    assert len(case.wrong) >= 2, f"{key} needs at least two wrong answers, has {sorted(case.wrong)}"
    declared = set(harness.REGISTRY[key].mistakes)
    assert set(case.wrong) == declared, f"{key}: built {sorted(case.wrong)}, declared {sorted(declared)}"
    case.check(case.reference, **case.context)


def _wrong_answer_ids() -> list[tuple[str, str, str]]:
    # Names come from the mistakes each factory declares, so collection builds no models.
    ids = []
    for key, factory in sorted(harness.REGISTRY.items()):
        for mistake in getattr(factory, "mistakes", ()):
            ids.append((*key, mistake))
    return ids


@pytest.mark.parametrize("lesson, exercise, mistake", _wrong_answer_ids(),
                         ids=lambda value: value)
def test_a_wrong_answer_fails_with_a_hint(lesson, exercise, mistake):
    case = build((lesson, exercise))
    assert mistake in case.wrong, f"{mistake} declared but not built for {(lesson, exercise)}"
    with pytest.raises(checks.ExerciseError, match="hint"):
        case.check(case.wrong[mistake], **case.context)


def test_every_case_declares_at_least_two_mistakes():
    for key, factory in harness.REGISTRY.items():
        assert len(set(factory.mistakes)) >= 2, f"{key}: declare at least two mistakes"
