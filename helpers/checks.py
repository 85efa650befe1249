"""Exercise checks: one encouraging line on success, a specific hint on failure.

Introduced in lesson 00. Every exercise in the course is a function the student completes,
followed by a check cell calling one of these. A check:

* runs the student's function through :func:`attempt`, so an untouched exercise reports
  "not done yet" (``NotImplementedError``) rather than a confusing traceback;
* compares with a reference on small fixed inputs and says exactly / approximately / how far
  off (the habit of nn-zero-to-hero's ``cmp``);
* raises :class:`ExerciseError` with what was expected, what came out and a hint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class ExerciseError(AssertionError):
    """An exercise answer is not right yet; the message says why and how to fix it."""


def passed(message: str) -> None:
    """Print the success line of a check."""
    print(f"✅ Correct: {message}")


def fail(what: str, expected: Any, got: Any, hint: str = "") -> None:
    """Raise an ExerciseError saying what was expected, what came out, and a hint."""
    lines = [f"❌ {what}", f"   expected: {_short(expected)}", f"   got:      {_short(got)}"]
    if hint:
        lines.append(f"   hint: {hint}")
    raise ExerciseError("\n".join(lines))


class NotWrittenYet(NotImplementedError):
    """An exercise stub still raises ``NotImplementedError``: a short, friendly message.

    IPython calls ``_render_traceback_`` instead of printing the traceback, so the cell shows
    these few lines only; it is still an exception, so papermill sees the cell as failing.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"✋ {self}"]


def attempt(function: Callable, *args, **kwargs) -> Any:
    """Call the student's function; an unfinished stub becomes a clear "not written yet"."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        pass
    raise NotWrittenYet(
        f"{getattr(function, '__name__', 'this exercise')} is not written yet: replace "
        "`raise NotImplementedError()` in the exercise cell above with your code, run that "
        "cell, then run this check again."
    ) from None


def attempt_reported(function: Callable, *args, hint: str = "") -> Any:
    """:func:`attempt`, and a crash of the student's code becomes an ExerciseError saying where to look."""
    try:
        return attempt(function, *args)
    except (NotImplementedError, ExerciseError):
        raise
    except Exception as error:  # noqa: BLE001 (any crash of the student's code is reported)
        fail(f"{getattr(function, '__name__', 'your function')} raised {type(error).__name__}",
             "a result", f"{type(error).__name__}: {error}",
             hint or "call your function on a small example of your own and read the error")


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if getattr(value, "is_quantized", False):
            value = value.int_repr()
        value = value.numpy()
    return np.asarray(value)


def _short(value: Any) -> str:
    if isinstance(value, (np.ndarray, list, tuple)) or hasattr(value, "detach"):
        array = _as_array(value)
        return np.array2string(array, threshold=8, precision=6, separator=", ") + (
            f" (shape {array.shape}, dtype {array.dtype})" if array.ndim else ""
        )
    return repr(value)


def compare(got: Any, expected: Any, atol: float = 0.0, rtol: float = 0.0) -> dict:
    """Exact / approximate / max-difference comparison of two arrays or numbers."""
    a, b = _as_array(got), _as_array(expected)
    if a.shape != b.shape:
        return {"exact": False, "approx": False, "max_diff": float("inf"), "shape_ok": False}
    if a.size == 0:
        return {"exact": True, "approx": True, "max_diff": 0.0, "shape_ok": True}
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return {
        "exact": bool(np.array_equal(a, b)),
        "approx": bool(np.allclose(a.astype(np.float64), b.astype(np.float64),
                                   atol=atol, rtol=rtol)),
        "max_diff": float(diff.max()),
        "shape_ok": True,
    }


def check_close(name: str, got: Any, expected: Any, atol: float = 1e-6, rtol: float = 1e-5,
                hint: str = "") -> None:
    """Pass if ``got`` matches ``expected`` within tolerance; report exact / approx / max diff."""
    result = compare(got, expected, atol=atol, rtol=rtol)
    if not result["shape_ok"]:
        fail(f"{name}: the shape is wrong", f"shape {_as_array(expected).shape}",
             f"shape {_as_array(got).shape}", hint or "check reshapes and which axis you reduce")
    if not result["approx"]:
        fail(f"{name}: values differ (max difference {result['max_diff']:.3g})", expected, got,
             hint)
    kind = "exactly" if result["exact"] else f"within {result['max_diff']:.2g}"
    passed(f"{name} matches the reference {kind}.")


def check_equal(name: str, got: Any, expected: Any, hint: str = "") -> None:
    """Pass if ``got`` equals ``expected`` exactly (arrays element-wise, dtypes included)."""
    a, b = _as_array(got), _as_array(expected)
    if a.shape != b.shape or not np.array_equal(a, b):
        mismatches = int(np.sum(a != b)) if a.shape == b.shape else None
        what = f"{name}: {mismatches} of {b.size} values differ" if mismatches else f"{name} is wrong"
        fail(what, expected, got, hint)
    passed(f"{name} is exactly right.")


def check_true(condition: bool, name: str, hint: str = "", got: Any = None,
               expected: Any = "True") -> None:
    """Pass if ``condition`` holds; otherwise fail with the hint."""
    if not condition:
        fail(f"{name}: not yet", expected, got, hint)
    passed(name)


def check_choice(name: str, got: Any, allowed: set | list | tuple, why: str,
                 hint: str = "") -> None:
    """Pass if a decision (a method, a bit width) is one of the defensible answers."""
    if got not in allowed:
        fail(f"{name}: {got!r} does not meet the constraints", f"one of {sorted(map(str, allowed))}",
             got, hint)
    passed(f"{name}: {got!r}. {why}")
