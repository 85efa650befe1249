"""helpers.course.lab: the course's notebooks are read-only in JupyterLab; widget state is saved."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado import web

from helpers.course import cli, lab


@pytest.fixture
def manager(tmp_path):
    for folder in ("solutions", "lessons", "my_work"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "00_start_here.ipynb").write_text(json.dumps(
            {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return lab.CourseContentsManager(root_dir=str(tmp_path))


def test_course_notebooks_are_read_only_and_the_students_copies_are_not(manager):
    assert not manager.is_writable("solutions/00_start_here.ipynb")
    assert not manager.is_writable("/lessons/00_start_here.ipynb")
    assert manager.is_writable("my_work/00_start_here.ipynb")
    model = asyncio.run(manager.get("solutions/00_start_here.ipynb"))
    assert model["writable"] is False and model["type"] == "notebook"


def test_saving_renaming_or_deleting_a_course_notebook_is_refused_with_the_way_out(manager):
    model = asyncio.run(manager.get("solutions/00_start_here.ipynb"))
    for call in (lambda: manager.save(model, "solutions/00_start_here.ipynb"),
                 lambda: manager.rename_file("solutions/00_start_here.ipynb", "my_work/x.ipynb"),
                 lambda: manager.delete_file("lessons/00_start_here.ipynb")):
        with pytest.raises(web.HTTPError, match="my_work") as raised:
            asyncio.run(call())
        assert raised.value.status_code == 403
    saved = asyncio.run(manager.save(model, "my_work/00_start_here.ipynb"))
    assert saved["writable"] is True


def test_lab_command_installs_the_manager_and_saved_widget_state():
    command, _ = cli.lab_command("02", 8890, "abc", no_browser=True)
    assert "--ServerApp.contents_manager_class=helpers.course.lab.CourseContentsManager" in command
    settings = json.loads((lab.SETTINGS_DIR / "overrides.json").read_text())
    assert settings["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True
    assert f"--LabApp.app_settings_dir={lab.SETTINGS_DIR}" in command


def test_a_solution_opens_with_a_banner_that_is_never_written_to_disk(manager, tmp_path):
    on_disk = (tmp_path / "solutions" / "00_start_here.ipynb").read_text()
    model = asyncio.run(manager.get("solutions/00_start_here.ipynb"))
    first = model["content"].cells[0]
    assert first.cell_type == "markdown" and "Worked solution" in first.source
    assert "my_work/00_start_here.ipynb" in first.source
    assert (tmp_path / "solutions" / "00_start_here.ipynb").read_text() == on_disk
    lesson = asyncio.run(manager.get("lessons/00_start_here.ipynb"))
    assert not any("Worked solution" in c.source for c in lesson["content"].cells)
    listing = asyncio.run(manager.get("solutions/00_start_here.ipynb", content=False))
    assert listing["content"] is None


def test_opening_a_course_notebook_leaves_no_checkpoint_folder(manager, tmp_path):
    checkpoint = asyncio.run(manager.create_checkpoint("solutions/00_start_here.ipynb"))
    assert checkpoint["id"] and not (tmp_path / "solutions" / ".ipynb_checkpoints").exists()
    assert asyncio.run(manager.list_checkpoints("solutions/00_start_here.ipynb")) == []
    asyncio.run(manager.create_checkpoint("my_work/00_start_here.ipynb"))
    assert (tmp_path / "my_work" / ".ipynb_checkpoints").exists()
