"""helpers.course.cli: the commands instructors and students type."""

from __future__ import annotations

import pytest

from helpers import paths
from helpers.course import cli, notebooks


def test_lab_copies_lessons_without_overwriting(tmp_path):
    work = tmp_path / "my_work"
    added, kept = cli.copy_lessons_to_work(work)
    assert "00_start_here.ipynb" in added and not kept
    mine = work / "00_start_here.ipynb"
    mine.write_text("my notes")
    added, kept = cli.copy_lessons_to_work(work)
    assert not added and "00_start_here.ipynb" in kept
    assert mine.read_text() == "my notes"


def test_check_command_passes_on_the_repository(capsys):
    assert cli.main(["check"]) == 0
    assert "notebooks OK" in capsys.readouterr().out


def test_build_command_leaves_lessons_unchanged(capsys, tmp_path, monkeypatch):
    import shutil

    # On a copy: a failing run must not rewrite the checkout's lessons behind the tests' back.
    for folder in ("lessons", "solutions"):
        shutil.copytree(paths.repo_root() / folder, tmp_path / folder)
    monkeypatch.setattr(notebooks.paths, "ROOT", tmp_path)
    assert cli.main(["build"]) == 0
    out = capsys.readouterr().out
    assert f"0 written, {len(notebooks.notebook_names())} unchanged" in out


def test_unknown_command_and_notebook_are_refused(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fly"])
    from helpers.course import runner

    with pytest.raises(ValueError, match="matches no notebook"):
        runner.run(["99"], kind="lesson")


def test_env_command_prints_a_verdict(capsys):
    cli.main(["env"])
    assert "Verdict" in capsys.readouterr().out


def test_lab_prints_the_lesson_00_address_with_its_token(capsys, monkeypatch):
    monkeypatch.setattr(cli, "copy_lessons_to_work", lambda: ([], []))  # leave my_work/ alone
    assert cli.main(["lab", "--no-browser", "--dry-run", "--port", "8899"]) == 0
    out = capsys.readouterr().out
    url = next(word for word in out.split() if word.startswith("http://"))
    assert url.startswith("http://localhost:8899/lab/tree/my_work/00_start_here.ipynb?token=")
    assert len(url.split("token=")[1]) >= 32
    assert "Open this address" in out


def test_lab_takes_a_lesson_number_like_run():
    command, url = cli.lab_command("02", 8890, "abc", no_browser=True)
    assert "my_work/02_affine_quantization.ipynb" in command
    assert "--IdentityProvider.token=abc" in command and "--ServerApp.port=8890" in command
    assert url.endswith("/lab/tree/my_work/02_affine_quantization.ipynb?token=abc")
    with pytest.raises(ValueError, match="matches no notebook"):
        cli.lab_command("99", 8890, "abc", no_browser=True)


def test_free_port_skips_a_busy_port():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert cli.free_port(taken, tries=5) != taken


def test_the_student_folder_can_be_moved_for_tests_but_stays_beside_the_lessons(monkeypatch):
    monkeypatch.setenv("COURSE_WORK_DIR", "my_work_browser_test")
    command, url = cli.lab_command("02", 8890, "abc", no_browser=True)
    assert "/lab/tree/my_work_browser_test/02_affine_quantization.ipynb?token=abc" in url
    for bad in ("../elsewhere", ".hidden", "solutions"):
        monkeypatch.setenv("COURSE_WORK_DIR", bad)
        with pytest.raises(ValueError, match="COURSE_WORK_DIR"):
            cli.work_folder()
