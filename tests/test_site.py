"""helpers.course.site: the static website builds from the executed solutions and its links resolve."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

from helpers import paths
from helpers.course import notebooks, site

HREF = re.compile(r'(?:href|src)="([^"]+)"')


def test_index_rewrites_lesson_and_solution_links():
    text = site._index("[a](lessons/02_affine_quantization.ipynb) [b](solutions/08_pytorch_qat.ipynb) "
                       "[all](solutions/)", ["02_affine_quantization.ipynb"], [])
    assert "](lessons/02_affine_quantization.ipynb)" in text
    assert "](lessons/08_pytorch_qat.ipynb)" in text and "solutions/" not in text
    assert "lessons/02_affine_quantization\n" in text  # in the toctree


def test_site_builds_with_outputs_and_every_internal_link_resolves(tmp_path):
    root = tmp_path / "checkout"
    shutil.copytree(paths.repo_root() / "solutions", root / "solutions")
    for name in ("README.md", "CONTRIBUTING.md"):
        shutil.copy2(paths.repo_root() / name, root / name)
    (root / "report").mkdir()
    (root / "report" / "report.md").write_text("# Course report\n\nNothing run yet.\n")

    html = site.build(tmp_path / "site", root=root)

    names = notebooks.notebook_names(root / "solutions")
    for name in names:
        assert (html / "lessons" / f"{Path(name).stem}.html").exists()
    assert (html / "report.html").exists() and (html / "CONTRIBUTING.html").exists()
    index = (html / "index.html").read_text()
    assert "Errata" in index and 'href="lessons/00_start_here.html"' in index
    assert ".ipynb" not in "".join(HREF.findall(index))
    # the stored outputs and figures are there, not re-executed
    assert list((html / "_images").glob("*.png"))
    assert 'class="cell_output' in (html / "lessons" / names[0].replace(".ipynb", ".html")).read_text()

    broken = []
    for page in html.rglob("*.html"):
        for target in HREF.findall(page.read_text()):
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or target.startswith(("#", "mailto:", "data:")):
                continue
            path = unquote(parts.path)
            if path and not (page.parent / path).resolve().exists():
                broken.append(f"{page.relative_to(html)} -> {target}")
    assert not broken, broken[:20]
