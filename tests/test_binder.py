"""binder/: a repo2docker configuration for a workshop image (Docker cannot run in the tests)."""

from __future__ import annotations

import os
import re
import shlex

from helpers import paths
from helpers.course import cli

BINDER = paths.repo_root() / "binder"


def test_binder_files_exist_and_scripts_are_executable():
    for name in ("requirements.txt", "runtime.txt", "postBuild", "start"):
        assert (BINDER / name).is_file(), name
    for name in ("postBuild", "start"):
        assert os.access(BINDER / name, os.X_OK), f"binder/{name} is not executable"
        assert (BINDER / name).read_text().startswith("#!/usr/bin/env bash")
    assert 'exec "$@"' in (BINDER / "start").read_text()


def test_python_311_and_the_pinned_requirements():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    includes = re.findall(r"^-r\s+(\S+)", (BINDER / "requirements.txt").read_text(), re.M)
    assert [(BINDER / i).resolve() for i in includes] == [paths.repo_root() / "requirements.txt"]


def test_postbuild_installs_nodeps_fills_the_cache_and_opens_lesson_00():
    text = (BINDER / "postBuild").read_text()
    commands = [shlex.split(line) for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    pip = next(c for c in commands if c[:4] == ["python", "-m", "pip", "install"])
    assert "--no-deps" in pip and (paths.repo_root() / pip[pip.index("-r") + 1]).is_file()
    helper_calls = [c[3:] for c in commands if c[:3] == ["python", "-m", "helpers"]]
    assert ["run", "--full"] == helper_calls[0][:2]
    for call in helper_calls:  # every helpers command the image runs parses
        cli.parser().parse_args(call)
    assert (paths.repo_root() / "lessons" / "00_start_here.ipynb").exists()
    assert 'default_url = "/lab/tree/my_work/00_start_here.ipynb"' in text
    assert 'contents_manager_class = "helpers.course.lab.CourseContentsManager"' in text
    assert 'app_settings_dir = "$PWD/helpers/course/jupyterlab"' in text
