"""Checks of lesson 13 (capstone): pickers that turn deployment constraints into a method.

Each picker gets the measured table (one dict per method) and an accuracy budget in points,
and returns a method's name or ``None``. A check runs it on the measured table and on
"what if" tables built so that dropping any one constraint, judging the budget on the point
estimate or on the test split, or optimizing the wrong number changes the answer; files or
timings within :data:`helpers.decision.TIE_TOLERANCE` of the best count as equally good.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from helpers import checks, decision

OBJECTIVES = ("size_bytes", "latency_ms", "latency_ms_batch64")


@dataclass(frozen=True)
class Task:
    """What a picker must respect: required field values, and the number to minimize."""

    situation: str
    required: dict  # field -> the value a row must have
    objective: str
    violating: dict  # field -> a value that breaks the requirement


MICROCONTROLLER = Task("microcontroller", {"integer_only": True}, "size_bytes",
                       {"integer_only": False})
SERVER = Task("PyTorch server batching 64 requests", {"framework": "pytorch"},
              "latency_ms_batch64", {"framework": "tflite"})
WITHOUT_DATA = Task("no data", {"needs": "nothing", "quantized": True}, "size_bytes",
                    {"needs": "calibration", "quantized": False})


def allowed(rows: list[dict], budget_points: float, task: Task) -> set:
    """The defensible answers: the qualifying rows tied for the best objective, or {None}."""
    ok = [r for r in rows if decision.fits_budget(r, budget_points)
          and all(r[k] == v for k, v in task.required.items())]
    return {r["name"] for r in decision.ties(ok, task.objective)} or {None}


def _fit(row: dict) -> dict:
    """A row well within any budget, on val and on test."""
    return {**row, "val_delta_points": 0.0, "val_delta_ci95": [-0.1, 0.1],
            "delta_points": 0.0, "delta_ci95": [-0.1, 0.1]}


def _smallest(rows: list[dict], key: str) -> float:
    return min(r[key] for r in rows)


def scenarios(rows: list[dict], budget_points: float, task: Task) -> list[tuple[str, list[dict], str]]:
    """(label, table, hint) for the measured table and each what-if; lesson 13."""
    b = budget_points
    best = _smallest(rows, task.objective) / 4
    qualifying = {**task.required}
    target = rows[0]["name"]  # the row each what-if turns into the tempting wrong answer

    def table(**changes) -> list[dict]:
        return decision.what_if(rows, target, **changes)

    out = [("the measured table", rows, f"compare with the rule for a {task.situation}")]
    outside = {"val_delta_points": -(b + 0.6), "val_delta_ci95": [-(b + 1.0), -(b + 0.2)],
               "delta_points": -(b + 0.6), "delta_ci95": [-(b + 1.0), -(b + 0.2)]}
    out.append((f"what if {target} lost {b + 0.6:.1f} points but had the best {task.objective}",
                table(**qualifying, **outside, **{task.objective: best}),
                "keep only the rows within the accuracy budget"))
    out.append((f"what if {target}'s val change were {-b / 4:+.2f} points with an interval "
                f"reaching {-(b + 0.5):+.2f}",
                table(**qualifying, val_delta_points=-b / 4, val_delta_ci95=[-(b + 0.5), 0.1],
                      **{task.objective: best}),
                "judge the budget on the interval: its lower end must not fall below -budget"))
    out.append((f"what if {target} failed the budget on val but not on test",
                table(**qualifying, val_delta_points=-(b + 0.6), val_delta_ci95=[-(b + 1.0), -(b + 0.2)],
                      delta_points=0.0, delta_ci95=[-0.1, 0.1], **{task.objective: best}),
                "choose on the val split (val_delta_ci95); the test split gives final numbers only"))
    for field, bad in task.violating.items():
        changed = [_fit({**r, **qualifying, field: bad, task.objective: best})
                   if r["name"] == target else r for r in rows]
        out.append((f"what if {target}, with {field}={bad!r}, had the best {task.objective}", changed,
                    f"keep only the rows with {field} == {task.required[field]!r}"))
    first, second = rows[0]["name"], rows[1]["name"]
    tiny = {k: _smallest(rows, k) / 40 for k in OBJECTIVES if k != task.objective}
    objective_table = [
        _fit({**r, **qualifying, task.objective: best}) if r["name"] == first
        else _fit({**r, **qualifying, **tiny, task.objective: 3 * best}) if r["name"] == second
        else r for r in rows]
    out.append((f"what if {first} had the best {task.objective} and {second} every other best",
                objective_table, f"among the rows that qualify, take the lowest {task.objective}"))
    nothing = [{**r, "val_delta_points": -(b + 2), "val_delta_ci95": [-(b + 3), -(b + 1)]}
               for r in rows]
    out.append(("what if every method lost too much", nothing,
                "return None when no row meets every constraint"))
    return out


def _check(student: Callable, rows: list[dict], budget_points: float, task: Task) -> None:
    if len(rows) < 2:
        raise ValueError("the check needs the measured table (at least two rows)")
    for label, table, hint in scenarios(rows, budget_points, task):
        try:
            got = checks.attempt(student, [dict(r) for r in table], budget_points)
        except NotImplementedError:
            raise
        except Exception as err:  # noqa: BLE001 - a crash becomes a hint, not a traceback
            checks.fail(f"{task.situation} ({label}): your function raised "
                        f"{type(err).__name__}: {err}", "a method name or None", None, hint)
        if got is not None and not isinstance(got, str):
            checks.fail(f"{task.situation} ({label}): return the method's name", "a str or None",
                        type(got).__name__, "return row['name'] of the chosen row, or None")
        answers = allowed(table, budget_points, task)
        checks.check_choice(f"{task.situation} ({label})", got, answers,
                            f"{'nothing qualifies' if got is None else 'it meets every constraint'}",
                            hint=hint)


def check_pick_for_microcontroller(student: Callable, rows: list[dict],
                                   budget_points: float) -> None:
    """Integer-only, within the budget (interval, val), smallest file."""
    _check(student, rows, budget_points, MICROCONTROLLER)


def check_pick_for_server(student: Callable, rows: list[dict], budget_points: float) -> None:
    """PyTorch, within the budget (interval, val), fastest at batch 64."""
    _check(student, rows, budget_points, SERVER)


def check_pick_without_data(student: Callable, rows: list[dict], budget_points: float) -> None:
    """Needs nothing, quantized, within the budget (interval, val), smallest file."""
    _check(student, rows, budget_points, WITHOUT_DATA)
