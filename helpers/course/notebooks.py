"""Build student lessons from the solution notebooks, and check that they agree.

``solutions/`` is the single source of truth. :func:`build_lesson` turns a solution into a
lesson: every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block becomes
``# YOUR CODE HERE`` / ``raise NotImplementedError()``, exercise and check cells are tagged
``raises-exception`` (so the lesson still runs top to bottom), outputs are cleared, and the
first and last cells get previous / contents / solution / next links.

A built lesson stores a hash of its own content; a lesson whose content no longer matches
its hash (a student ran or edited it) is never overwritten without ``force``, and even then
the old file is copied to ``backups/`` first.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from helpers import paths

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
NAME_PATTERN = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")
NAV_START, NAV_END = "<!-- nav -->", "<!-- /nav -->"
KEEP_METADATA = ("kernelspec", "language_info")


class BuildRefused(RuntimeError):
    """A lesson holds a student's work (outputs or edits) and was not overwritten."""


def solutions_dir() -> Path:
    return paths.repo_root() / "solutions"


def lessons_dir() -> Path:
    return paths.repo_root() / "lessons"


def notebook_names(folder: Path | None = None) -> list[str]:
    """The course notebooks (``NN_name.ipynb``) in a folder, in lesson order."""
    folder = folder or solutions_dir()
    return sorted(p.name for p in folder.glob("*.ipynb") if NAME_PATTERN.match(p.name))


def resolve_names(names: list[str]) -> list[str]:
    """Accept '05', '05_pytorch_dynamic' or '05_pytorch_dynamic.ipynb' for each notebook."""
    known = notebook_names()
    resolved = []
    for name in names:
        matches = [n for n in known if n == name or n.startswith(name.removesuffix(".ipynb"))]
        if len(matches) != 1:
            raise ValueError(f"{name!r} matches {matches or 'no notebook'}; use one of {known}")
        resolved.append(matches[0])
    return resolved


def read(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def dumps(notebook: dict) -> str:
    """Serialize the way Jupyter does (indent 1, sorted keys, final newline), so diffs stay small."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def source_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _set_source(cell: dict, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)


def tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _add_tag(cell: dict, tag: str) -> None:
    current = tags(cell)
    if tag not in current:
        cell.setdefault("metadata", {})["tags"] = current + [tag]


def strip_solutions(text: str) -> str:
    """Replace each solution block with the stub, keeping the block's indentation."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError("nested '### BEGIN SOLUTION' without an END")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in STUB)
        elif stripped.startswith(END):
            if not inside:
                raise ValueError("'### END SOLUTION' without a BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("'### BEGIN SOLUTION' without an END")
    return "\n".join(out)


def is_exercise(cell: dict) -> bool:
    return cell["cell_type"] == "code" and BEGIN in source_text(cell)


def _navigation(name: str, names: list[str], for_lesson: bool) -> str:
    index = names.index(name) if name in names else -1
    parts = []
    if index > 0:
        parts.append(f"[← {names[index - 1][:-6]}]({names[index - 1]})")
    parts.append("[Contents](../README.md#course-map)")
    if for_lesson:
        parts.append(f"[Solution](../solutions/{name})")
    if 0 <= index < len(names) - 1:
        parts.append(f"[{names[index + 1][:-6]} →]({names[index + 1]})")
    return f"{NAV_START}\n{' · '.join(parts)}\n{NAV_END}"


def _with_navigation(cell: dict, nav: str, at_top: bool) -> None:
    text = re.sub(rf"\n*{re.escape(NAV_START)}.*?{re.escape(NAV_END)}\n*", "\n",
                  source_text(cell), flags=re.S).strip("\n")
    _set_source(cell, f"{nav}\n\n{text}" if at_top else f"{text}\n\n{nav}")


def content_hash(notebook: dict) -> str:
    """Hash of a notebook without its own build stamp."""
    clone = copy.deepcopy(notebook)
    clone.get("metadata", {}).get("course", {}).pop("build_hash", None)
    return hashlib.sha256(dumps(clone).encode()).hexdigest()[:16]


def build_lesson(solution: dict, name: str, names: list[str]) -> dict:
    """The lesson for one solution notebook (a new dict; the solution is not changed)."""
    lesson = copy.deepcopy(solution)
    lesson["metadata"] = {k: v for k, v in solution.get("metadata", {}).items()
                          if k in KEEP_METADATA}
    lesson["metadata"]["course"] = {"built_from": f"solutions/{name}"}
    for cell in lesson["cells"]:
        cell_meta = cell.get("metadata", {})
        cell["metadata"] = {k: v for k, v in cell_meta.items() if k in ("tags",)}
        if cell["cell_type"] != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        cell["outputs"], cell["execution_count"] = [], None
        if is_exercise(cell):
            _set_source(cell, strip_solutions(source_text(cell)))
            _add_tag(cell, "exercise")
            _add_tag(cell, "raises-exception")
        if "check" in tags(cell):
            _add_tag(cell, "raises-exception")
    markdown = [c for c in lesson["cells"] if c["cell_type"] == "markdown"]
    if markdown:
        _with_navigation(markdown[0], _navigation(name, names, True), at_top=True)
        _with_navigation(markdown[-1], _navigation(name, names, True), at_top=False)
    lesson["nbformat"], lesson["nbformat_minor"] = 4, 5
    lesson["metadata"]["course"]["build_hash"] = content_hash(lesson)
    return lesson


def student_changed(lesson: dict) -> bool:
    """True if a built lesson was run or edited since the builder wrote it."""
    has_outputs = any(c.get("outputs") for c in lesson.get("cells", []) if c["cell_type"] == "code")
    stamp = lesson.get("metadata", {}).get("course", {}).get("build_hash")
    return has_outputs or stamp is None or stamp != content_hash(lesson)


@dataclass
class BuildReport:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    backed_up: list[str] = field(default_factory=list)


def build(names: list[str] | None = None, force: bool = False) -> BuildReport:
    """Write lessons/ from solutions/, refusing to overwrite a student's work unless forced."""
    all_names = notebook_names()
    names = all_names if names is None else resolve_names(names)
    report = BuildReport()
    lessons_dir().mkdir(exist_ok=True)
    for name in names:
        target = lessons_dir() / name
        text = dumps(build_lesson(read(solutions_dir() / name), name, all_names))
        if target.exists():
            current = target.read_text(encoding="utf-8")
            if current == text:
                report.unchanged.append(name)
                continue
            if student_changed(json.loads(current)):
                if not force:
                    report.refused.append(name)
                    continue
                backup = paths.repo_root() / "backups" / (
                    f"{target.stem}-{datetime.now():%Y%m%d-%H%M%S}.ipynb")
                backup.parent.mkdir(exist_ok=True)
                shutil.copy2(target, backup)
                report.backed_up.append(str(backup.relative_to(paths.repo_root())))
        target.write_text(text, encoding="utf-8")
        report.written.append(name)
    return report


def check() -> list[str]:
    """Every problem with the notebooks: drift, outputs in lessons, missing title or parameters."""
    problems: list[str] = []
    solutions, lessons = notebook_names(solutions_dir()), notebook_names(lessons_dir())
    problems += [f"lessons/{n} has no solution" for n in sorted(set(lessons) - set(solutions))]
    problems += [f"solutions/{n} has no lesson: run ./course build"
                 for n in sorted(set(solutions) - set(lessons))]
    for name in solutions:
        solution = read(solutions_dir() / name)
        problems += [f"solutions/{name}: {p}" for p in structure_problems(solution)]
        lesson_path = lessons_dir() / name
        if not lesson_path.exists():
            continue
        lesson_text = lesson_path.read_text(encoding="utf-8")
        if any(c.get("outputs") for c in json.loads(lesson_text)["cells"]
               if c["cell_type"] == "code"):
            problems.append(f"lessons/{name} has outputs (lessons are generated and stripped)")
        if lesson_text != dumps(build_lesson(solution, name, solutions)):
            problems.append(f"lessons/{name} differs from what `./course build` makes from "
                            f"solutions/{name}: rebuild it")
    return problems


def structure_problems(notebook: dict) -> list[str]:
    """The course conventions a solution notebook breaks (title, parameters, checks, summary)."""
    cells = notebook.get("cells", [])
    problems = []
    if not cells or cells[0]["cell_type"] != "markdown" or not source_text(cells[0]).lstrip(
            ).startswith("# "):
        problems.append("the first cell must be a markdown title cell starting with '# '")
    if not any("parameters" in tags(c) for c in cells if c["cell_type"] == "code"):
        problems.append("no code cell is tagged 'parameters' (papermill needs one for QUICK)")
    code = [c for c in cells if c["cell_type"] == "code"]
    for i, cell in enumerate(code):
        if is_exercise(cell):
            following = code[i + 1] if i + 1 < len(code) else None
            if following is None or "check" not in tags(following):
                first_line = source_text(cell).strip().splitlines()[0]
                problems.append(f"exercise cell '{first_line[:50]}' is not followed by a "
                                "code cell tagged 'check'")
    if cells and (cells[-1]["cell_type"] != "markdown"
                  or "summary" not in source_text(cells[-1]).lower()):
        problems.append("the last cell must be a markdown summary ('## Summary and takeaways')")
    return problems
