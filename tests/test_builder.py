"""helpers.course.notebooks: lessons are exactly what the builder makes from the solutions."""

from __future__ import annotations

import json

import pytest

from helpers.course import notebooks


def _cell(kind: str, text: str, tags: list[str] | None = None) -> dict:
    cell = {"cell_type": kind, "metadata": {"tags": tags or []}, "source": text}
    if kind == "code":
        cell.update(outputs=[{"output_type": "stream", "name": "stdout", "text": "hi"}],
                    execution_count=3)
    return cell


def _solution() -> dict:
    return {
        "cells": [
            _cell("markdown", "# 99 · Test\n\nWhat you will learn"),
            _cell("code", "QUICK = False", ["parameters"]),
            _cell("code", "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION"),
            _cell("code", "check(f)", ["check"]),
            _cell("markdown", "## Summary and takeaways\n\n- done"),
        ],
        "metadata": {"kernelspec": {"name": "python3"}, "papermill": {"x": 1}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_lessons_match_the_solutions():
    problems = notebooks.check()
    assert not problems, "\n".join(problems)


def test_every_solution_has_outputs():
    for name in notebooks.notebook_names():
        solution = notebooks.read(notebooks.solutions_dir() / name)
        assert any(c.get("outputs") for c in solution["cells"] if c["cell_type"] == "code"), (
            f"solutions/{name} is committed without outputs: run ./course refresh-solutions")


def test_strip_solutions_keeps_indentation_and_rejects_unbalanced_markers():
    text = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\nprint(2)"
    assert notebooks.strip_solutions(text) == (
        "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()\nprint(2)")
    with pytest.raises(ValueError, match="without an END"):
        notebooks.strip_solutions("### BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="without a BEGIN"):
        notebooks.strip_solutions("x = 1\n### END SOLUTION")


def test_build_lesson_stubs_exercises_clears_outputs_and_adds_navigation():
    lesson = notebooks.build_lesson(_solution(), "99_test.ipynb", ["98_a.ipynb", "99_test.ipynb"])
    sources = [notebooks.source_text(c) for c in lesson["cells"]]
    assert "raise NotImplementedError()" in sources[2] and "x + 1" not in sources[2]
    assert all(c["outputs"] == [] for c in lesson["cells"] if c["cell_type"] == "code")
    assert {"exercise", "raises-exception"} <= set(notebooks.tags(lesson["cells"][2]))
    assert "raises-exception" in notebooks.tags(lesson["cells"][3])
    assert "[← 98_a](98_a.ipynb)" in sources[0] and "Solution" in sources[-1]
    assert "papermill" not in lesson["metadata"]
    assert not notebooks.student_changed(lesson)


def test_student_edits_are_detected():
    lesson = notebooks.build_lesson(_solution(), "99_test.ipynb", ["99_test.ipynb"])
    lesson["cells"][2]["source"] = "def f(x):\n    return x + 1"
    assert notebooks.student_changed(lesson)


def test_structure_problems_are_named():
    broken = _solution()
    broken["cells"][0] = _cell("markdown", "no title")
    broken["cells"][1]["metadata"]["tags"] = []
    broken["cells"][3]["metadata"]["tags"] = []
    broken["cells"].pop()
    problems = " ".join(notebooks.structure_problems(broken))
    for phrase in ("title cell", "parameters", "tagged 'check'", "summary"):
        assert phrase in problems


def test_build_refuses_to_overwrite_a_students_lesson(tmp_path, monkeypatch):
    monkeypatch.setattr(notebooks.paths, "ROOT", tmp_path)
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "99_test.ipynb").write_text(json.dumps(_solution()))
    assert notebooks.build().written == ["99_test.ipynb"]
    lesson_path = tmp_path / "lessons" / "99_test.ipynb"
    worked = json.loads(lesson_path.read_text())
    worked["cells"][2]["source"] = ["def f(x):\n", "    return x + 1  # my answer"]
    lesson_path.write_text(json.dumps(worked))
    solution = _solution()
    solution["cells"][0]["source"] = "# 99 · Test, revised"
    (tmp_path / "solutions" / "99_test.ipynb").write_text(json.dumps(solution))
    report = notebooks.build()
    assert report.refused == ["99_test.ipynb"] and "my answer" in lesson_path.read_text()
    forced = notebooks.build(force=True)
    assert forced.written == ["99_test.ipynb"] and len(forced.backed_up) == 1
    assert "my answer" in (tmp_path / forced.backed_up[0]).read_text()


# Where each checks function takes its hint when it is passed by position.
HINT_POSITION = {"check_equal": 3, "check_close": 5, "check_true": 2, "fail": 3, "check_choice": 4}


def _checks_calls_without_hint(source: str) -> list[str]:
    import ast

    missing = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "checks"
                and node.func.attr in HINT_POSITION):
            by_keyword = any(k.arg == "hint" for k in node.keywords)
            if not by_keyword and len(node.args) <= HINT_POSITION[node.func.attr]:
                missing.append(ast.get_source_segment(source, node).splitlines()[0])
    return missing


def test_every_exercise_check_gives_a_hint():
    missing = []
    for name in notebooks.notebook_names():
        for cell in notebooks.read(notebooks.solutions_dir() / name)["cells"]:
            if cell["cell_type"] == "code" and "checks." in notebooks.source_text(cell):
                missing += [f"{name}: {call}" for call in
                            _checks_calls_without_hint(notebooks.source_text(cell))]
    assert not missing, "checks that fail without a hint:\n" + "\n".join(missing)


def test_the_hint_scan_finds_a_missing_hint():
    assert _checks_calls_without_hint("checks.check_equal('n', 1, 2)") == [
        "checks.check_equal('n', 1, 2)"]
    assert _checks_calls_without_hint("checks.check_equal('n', 1, 2, 'say why')") == []


def test_notebooks_are_named_by_number_or_name():
    assert notebooks.resolve_names(["05", "06_pytorch_static_eager", "07_pytorch_static_fx.ipynb"]) == [
        "05_pytorch_dynamic.ipynb", "06_pytorch_static_eager.ipynb", "07_pytorch_static_fx.ipynb"]
    with pytest.raises(ValueError, match="'0' matches"):
        notebooks.resolve_names(["0"])
    with pytest.raises(ValueError, match="matches no notebook"):
        notebooks.resolve_names(["99"])
