"""What a wrong-answer case is, and how to get an exercise's reference code from solutions/.

Each ``tests/wrong_answers/lessonNN.py`` registers its cases with :func:`case`: a function
returning a :class:`Case` for one exercise (built lazily, since some need a model). The
reference is the solution notebook's own code (:func:`solution`), so a check and its solution
cannot drift apart; the wrong answers live in the test module, each named for its mistake.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"
REGISTRY: dict[tuple[str, str], Callable[[], Case]] = {}


@dataclass
class Case:
    """A check, the reference answer, and wrong answers (name of the mistake -> answer)."""

    check: Callable  # a helpers.exercises.lessonNN.check_* function, called as check(answer, **context)
    reference: Callable
    wrong: dict[str, Callable]
    context: dict = field(default_factory=dict)


def case(lesson: str, exercise: str, mistakes: tuple[str, ...]
         ) -> Callable[[Callable[[], Case]], Callable[[], Case]]:
    """Register a factory of the Case for ``exercise`` (its function name) in ``lesson`` ('04').

    ``mistakes`` names the wrong answers the factory builds (the keys of ``Case.wrong``), so
    pytest can list one test per mistake without building any model at collection time.
    """

    def register(factory: Callable[[], Case]) -> Callable[[], Case]:
        key = (lesson, exercise)
        if key in REGISTRY:
            raise ValueError(f"two wrong-answer cases for {key}")
        factory.mistakes = tuple(mistakes)
        REGISTRY[key] = factory
        return factory

    return register


def solution_notebook(lesson: str) -> Path:
    """solutions/<lesson>_*.ipynb for a two-digit lesson number."""
    matches = sorted(SOLUTIONS.glob(f"{lesson}_*.ipynb"))
    if len(matches) != 1:
        raise FileNotFoundError(f"expected one solutions/{lesson}_*.ipynb, found {matches}")
    return matches[0]


def exercise_cells(lesson: str) -> list[tuple[int, dict]]:
    """(index, cell) of every exercise cell (one holding a BEGIN SOLUTION block) of a lesson."""
    cells = json.loads(solution_notebook(lesson).read_text(encoding="utf-8"))["cells"]
    return [(i, c) for i, c in enumerate(cells)
            if c["cell_type"] == "code" and "### BEGIN SOLUTION" in "".join(c["source"])]


def exercise_name(cell: dict) -> str:
    """The exercise's name: the first function the cell defines."""
    names = re.findall(r"^def (\w+)", "".join(cell["source"]), flags=re.M)
    return names[0] if names else f"cell {cell.get('id')}"


def check_cell_source(lesson: str, exercise: str) -> str:
    """The source of the first cell tagged ``check`` after the exercise's cell."""
    cells = json.loads(solution_notebook(lesson).read_text(encoding="utf-8"))["cells"]
    for index, cell in exercise_cells(lesson):
        if exercise_name(cell) == exercise:
            for later in cells[index + 1:]:
                if "check" in later.get("metadata", {}).get("tags", []):
                    return "".join(later["source"])
            raise LookupError(f"lesson {lesson}: no check cell after exercise {exercise}")
    raise LookupError(f"lesson {lesson} has no exercise {exercise}")


def solution(lesson: str, exercise: str, name: str | None = None, **context) -> Callable:
    """The reference function ``name`` (default: ``exercise``) from the lesson's solution.

    The exercise cell is executed in a fresh namespace holding NumPy as ``np``, ``math`` and
    whatever ``context`` gives (the notebook globals the function reads: a model, an earlier
    exercise's function, ``torch``...).
    """
    import math

    import numpy as np

    for _, cell in exercise_cells(lesson):
        if exercise_name(cell) == exercise:
            namespace = {"np": np, "math": math, **context}
            source = "".join(cell["source"])
            exec(compile(source, f"solutions/{lesson}:{exercise}", "exec"), namespace)
            return namespace[name or exercise]
    raise LookupError(f"lesson {lesson} has no exercise {exercise}")
