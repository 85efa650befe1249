"""helpers.course.runner: which errors in an executed notebook count as failures."""

from __future__ import annotations

from helpers.course import runner


def _code(tags, ename=None, ran=True):
    outputs = [{"output_type": "error", "ename": ename, "evalue": "boom"}] if ename else []
    return {"cell_type": "code", "metadata": {"tags": tags}, "source": "x = 1",
            "outputs": outputs, "execution_count": 1 if ran else None}


def test_unfinished_exercises_are_allowed_in_lessons_only():
    notebook = {"cells": [_code(["exercise", "raises-exception"], "NotImplementedError"),
                          _code(["check", "raises-exception"], "NotImplementedError")]}
    assert runner.cell_errors(notebook, allow_unfinished=True) == ([], 2)
    errors, _ = runner.cell_errors(notebook, allow_unfinished=False)
    assert len(errors) == 2


def test_other_errors_in_exercise_cells_fail():
    notebook = {"cells": [_code(["check", "raises-exception"], "NameError")]}
    errors, unfinished = runner.cell_errors(notebook, allow_unfinished=True)
    assert unfinished == 0 and "NameError" in errors[0]


def test_demonstration_cells_must_raise():
    assert runner.cell_errors({"cells": [_code(["raises-exception"], "TypeError")]}, False) == ([], 0)
    errors, _ = runner.cell_errors({"cells": [_code(["raises-exception"])]}, False)
    assert "ran without one" in errors[0]


def test_untagged_errors_fail():
    errors, _ = runner.cell_errors({"cells": [_code([], "ValueError")]}, True)
    assert "ValueError" in errors[0]


def _solution_with(tmp_path, monkeypatch, name: str, *sources: str) -> None:
    """A one-off solutions/<name> under tmp_path, with a parameters cell and the given cells."""
    import json

    from helpers.course import notebooks

    solutions = tmp_path / "solutions"
    solutions.mkdir()
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "QUICK = False",
              "outputs": [], "execution_count": None, "id": "p"}]
    cells += [{"cell_type": "code", "metadata": {}, "source": source, "outputs": [],
               "execution_count": None, "id": f"c{i}"} for i, source in enumerate(sources)]
    notebook = {"cells": cells, "metadata": {"kernelspec": {"name": "python3",
                "display_name": "Python 3", "language": "python"}}, "nbformat": 4,
                "nbformat_minor": 5}
    (solutions / name).write_text(json.dumps(notebook))
    monkeypatch.setattr(notebooks.paths, "ROOT", tmp_path)


def test_a_notebook_whose_kernel_dies_is_a_failure(tmp_path, monkeypatch):
    _solution_with(tmp_path, monkeypatch, "99_dies.ipynb", "import os; os._exit(1)", "print('after')")
    result = runner.run_one("99_dies.ipynb", "solution", quick=True, out_dir=tmp_path / "out")
    assert not result.ok
    assert any("kernel.log" in error for error in result.errors)


def test_native_log_lines_go_to_the_kernel_log_not_the_terminal(tmp_path, monkeypatch, capfd):
    import json

    _solution_with(tmp_path, monkeypatch, "99_noisy.ipynb",
                   "import os; os.write(2, b'INFO: native noise\\n'); os.write(1, b'native out\\n')",
                   "print('cell output')")
    result = runner.run_one("99_noisy.ipynb", "solution", quick=True, out_dir=tmp_path / "out")
    assert result.ok, result.errors
    printed = capfd.readouterr()
    assert "native noise" not in printed.err + printed.out
    log = (tmp_path / "out" / "solution-99_noisy.kernel.log").read_text()
    assert "INFO: native noise" in log and "native out" in log
    executed = json.loads((tmp_path / "out" / "solution-99_noisy.ipynb").read_text())
    outputs = json.dumps([cell["outputs"] for cell in executed["cells"]])
    assert "cell output" in outputs and "native noise" not in outputs


def test_a_run_reports_the_kernels_peak_memory(tmp_path, monkeypatch):
    _solution_with(tmp_path, monkeypatch, "99_big.ipynb",
                   "block = bytearray(300_000_000)\nblock[::4096] = b'x' * len(block[::4096])\ndel block")
    result = runner.run_one("99_big.ipynb", "solution", quick=True, out_dir=tmp_path / "out")
    assert result.ok, result.errors
    assert result.peak_gb is not None and result.peak_gb >= 0.3  # the freed 300 MB still counts
    lines = []
    monkeypatch.setattr(runner, "run_one", lambda *args, **kw: result)
    runner.run(["99_big.ipynb"], kind="solution", out_dir=tmp_path / "out", echo=lines.append)
    assert any("peak memory" in line and "GB" in line for line in lines)


def test_error_banners_are_dropped_from_a_clean_run():
    banner = {"cell_type": "markdown", "metadata": {"tags": ["papermill-error-cell-tag"]},
              "source": "An Exception was encountered"}
    notebook = {"cells": [banner, _code(["raises-exception"], "TypeError")]}
    assert runner._drop_error_banners(notebook)
    assert [c["cell_type"] for c in notebook["cells"]] == ["code"]
    assert not runner._drop_error_banners(notebook)


def test_a_refreshed_solution_keeps_its_records_as_the_reference_run(tmp_path, monkeypatch):
    from helpers import results
    from helpers.course import notebooks

    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(notebooks.paths, "ROOT", tmp_path)
    (tmp_path / "solutions").mkdir()
    assert runner.keep_reference_records("07_x.ipynb") is None
    results.Recorder("07_x", quick=False).record("int8", accuracy=0.9)
    target = runner.keep_reference_records("07_x.ipynb")
    assert target == tmp_path / "solutions" / "results" / "07_x.json"
    assert results.load_all(target.parent)["07_x"]["records"][0]["accuracy"] == 0.9
