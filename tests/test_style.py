"""The helpers package and the tests pass the linter configured in pyproject.toml."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from helpers import paths


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed in the course environment: pip install -r requirements.txt")
    result = subprocess.run([ruff, "check", "helpers", "tests"], cwd=paths.repo_root(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _imports_course_machinery(source: str) -> bool:
    return bool(re.search(r"(from|import)\s+helpers\.course\b|from\s+helpers\s+import\s+[^\n]*\bcourse\b",
                          source))


def test_no_lesson_and_no_lesson_module_imports_the_course_machinery():
    """Lessons use the lesson library; helpers.course (builder, runner, report, site, CLI) is apart."""
    root = paths.repo_root()
    offenders = []
    for folder in ("lessons", "solutions"):
        for notebook in sorted((root / folder).glob("*.ipynb")):
            cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
            if any(_imports_course_machinery("".join(c["source"])) for c in cells):
                offenders.append(f"{folder}/{notebook.name}")
    for module in sorted((root / "helpers").rglob("*.py")):
        relative = module.relative_to(root)
        if relative.parts[1] in ("course", "__main__.py"):
            continue
        if _imports_course_machinery(module.read_text(encoding="utf-8")):
            offenders.append(str(relative))
    assert not offenders, f"these import helpers.course, which only ./course may use: {offenders}"


def test_the_detector_sees_both_import_forms():
    assert _imports_course_machinery("from helpers.course import runner")
    assert _imports_course_machinery("from helpers import course")
    assert not _imports_course_machinery("from helpers import checks, data")
