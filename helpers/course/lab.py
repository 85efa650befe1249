"""What ``./course lab`` (and the workshop image) gives JupyterLab: read-only course notebooks
and saved widget state.

* :class:`CourseContentsManager` serves ``solutions/`` and ``lessons/`` as read-only: JupyterLab
  opens them marked read-only and refuses to save, rename or delete them, so a student who
  follows a "Solution" link cannot overwrite the course's source by accident; their own copies
  in ``my_work/`` behave normally. A solution opens with a banner cell above its title, so its
  tab (which carries the same file name as the student's copy) is visibly the worked solution;
  the banner exists only in what the server sends, never on disk.
* ``jupyterlab/overrides.json`` turns on "save widget state", so progress bars and the lesson 02
  explorer in a saved notebook show their last state when it is reopened, instead of "Error
  displaying widget: model not found".
"""

from __future__ import annotations

from pathlib import Path

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web

READ_ONLY_FOLDERS = ("solutions", "lessons")
SETTINGS_DIR = Path(__file__).resolve().parent / "jupyterlab"
MESSAGE = ("{path} is part of the course and read-only here: your own copies of the lessons "
           "are in my_work/ (./course lab copies them there and never overwrites them)")


BANNER_TAG = "course-solution-banner"


def solution_banner(path: str) -> dict:
    """The markdown cell shown above a solution notebook's first cell in JupyterLab."""
    name = path.strip("/").split("/")[-1]
    return {"cell_type": "markdown", "id": BANNER_TAG, "metadata": {"tags": [BANNER_TAG]},
            "source": (f"> **Worked solution: `solutions/{name}`** (read-only). This is the course's "
                       f"answer key, with the outputs of the reference run. Your own copy is "
                       f"`my_work/{name}`: try the exercises there first.")}


def is_course_notebook(path: str) -> bool:
    """True for an API path inside solutions/ or lessons/ (the folders themselves included)."""
    return path.strip("/").split("/")[0] in READ_ONLY_FOLDERS


class CourseContentsManager(AsyncLargeFileManager):
    """The default contents manager, with solutions/ and lessons/ read-only."""

    def is_writable(self, path: str) -> bool:
        return not is_course_notebook(path) and super().is_writable(path)

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        is_solution = path.strip("/").split("/")[0] == "solutions" and path.endswith(".ipynb")
        if is_solution and content and model.get("type") == "notebook":
            from nbformat import from_dict

            model["content"].cells.insert(0, from_dict(solution_banner(path)))
        return model

    async def save(self, model, path=""):
        if is_course_notebook(path):
            raise web.HTTPError(403, MESSAGE.format(path=path))
        return await super().save(model, path)

    async def create_checkpoint(self, path):
        # JupyterLab asks for a checkpoint when it opens a notebook; for a read-only course
        # notebook that would leave solutions/.ipynb_checkpoints/ behind. The file itself is
        # its own checkpoint: it cannot change.
        if is_course_notebook(path):
            model = await super().get(path, content=False)
            return {"id": "checkpoint", "last_modified": model["last_modified"]}
        return await super().create_checkpoint(path)

    async def list_checkpoints(self, path):
        if is_course_notebook(path):
            return []
        return await super().list_checkpoints(path)

    async def restore_checkpoint(self, checkpoint_id, path):
        if is_course_notebook(path):
            raise web.HTTPError(403, MESSAGE.format(path=path))
        return await super().restore_checkpoint(checkpoint_id, path)

    async def rename_file(self, old_path, new_path):
        if is_course_notebook(old_path) or is_course_notebook(new_path):
            raise web.HTTPError(403, MESSAGE.format(path=old_path))
        return await super().rename_file(old_path, new_path)

    async def delete_file(self, path):
        if is_course_notebook(path):
            raise web.HTTPError(403, MESSAGE.format(path=path))
        return await super().delete_file(path)


def server_options() -> list[str]:
    """The ``jupyter lab`` options that install the contents manager and the settings overrides."""
    return [f"--ServerApp.contents_manager_class={__name__}.CourseContentsManager",
            f"--LabApp.app_settings_dir={SETTINGS_DIR}"]
