"""End to end in a real browser, the way a student meets the course.

``./course lab --no-browser`` serves the lessons from my_work/; Debian's chromium, driven by
playwright, then: runs all of lesson 00 and finds only the friendly "not written yet" errors of
its exercises; follows the navigation link to lesson 01; opens the solution from the lesson's
link and finds it read-only; runs lesson 02, moves the explorer's bit-width slider and sees the
figure change; saves, reloads and finds no "model not found" widget error. Screenshots go to
report/browser/ (CI artefacts, not committed). The kernels run in quick mode, and the student
folder is a throwaway ``my_work_browser_test/``, so a developer's own my_work/ is never touched.

Needs Debian's chromium (``apt-get install chromium``, which .ci/run does) and playwright;
skipped without chromium.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from helpers import paths
from helpers.course import cli, notebooks

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
STATUS = ".jp-StatusBar-Widget"
SHOTS = paths.repo_root() / "report" / "browser"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="chromium is not installed (apt-get install chromium)")


WORK = "my_work_browser_test"


@pytest.fixture(scope="module")
def lab_url():
    """A running ``./course lab --no-browser`` (quick-mode kernels) and its lesson-00 address."""
    port = cli.free_port(8950)
    shutil.rmtree(paths.repo_root() / WORK, ignore_errors=True)
    # The test session's MPLBACKEND=Agg would give the kernels text instead of inline figures.
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    proc = subprocess.Popen([str(paths.repo_root() / "course"), "lab", "--no-browser",
                             "--port", str(port)], cwd=paths.repo_root(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**env, "COURSE_QUICK": "1", "COURSE_WORK_DIR": WORK})
    url, lines = None, []
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            found = re.search(r"(http://localhost:\d+/lab/tree/\S+\?token=\w+)", line)
            url = url or (found.group(1) if found else None)
            if url and ("is running at" in line or "http://127.0.0.1" in line):
                yield url
                return
        pytest.fail("JupyterLab did not start:\n" + "".join(lines[-30:]))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(paths.repo_root() / WORK, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def open_notebook(browser, lab_url: str, path: str):
    """A fresh page (and a fresh JupyterLab workspace) showing ``path`` with its kernel idle."""
    base, token = lab_url.split("/lab/tree/")[0], lab_url.split("token=")[1]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{base}/lab/tree/{path}?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_function(f"() => [...document.querySelectorAll('{STATUS}')]"
                           ".some(w => w.textContent.includes('Idle'))", timeout=120_000)
    return page


def run_all(page, seconds: float = 300) -> None:
    """Run All Cells from the menu, then wait until the kernel has been idle for 3 s."""
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    page.wait_for_function(f"() => [...document.querySelectorAll('{STATUS}')]"
                           ".some(w => w.textContent.includes('Busy'))", timeout=60_000)
    idle_since, deadline = None, time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any("Idle" in t for t in page.locator(STATUS).all_inner_texts()):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 3:
                return
        else:
            idle_since = None
        time.sleep(0.5)
    pytest.fail(f"the notebook did not finish running within {seconds:.0f} s")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_lesson_00_runs_with_only_friendly_errors_and_links_to_lesson_01(browser, lab_url):
    page = open_notebook(browser, lab_url, f"{WORK}/00_start_here.ipynb")
    run_all(page)
    shot(page, "00_start_here")
    # textContent, not innerText: JupyterLab skips rendering the cells out of view.
    prompts = page.locator(".jp-InputPrompt").all_text_contents()
    assert sum(bool(re.search(r"\[\d+\]", t)) for t in prompts) > 10, prompts[:5]
    cells = page.locator(".jp-Notebook .jp-Cell")
    lesson = notebooks.read(notebooks.lessons_dir() / "00_start_here.ipynb")["cells"]
    assert cells.count() == len(lesson)
    unexpected, friendly = [], 0
    for index, cell in enumerate(lesson):
        errors = cells.nth(index).locator(".jp-OutputArea-output[data-mime-type="
                                          "'application/vnd.jupyter.stderr']").all_text_contents()
        errors = [e for e in errors if "Traceback" in e or "Error" in e or "not written yet" in e]
        friendly += sum("not written yet" in e for e in errors)
        if errors and "raises-exception" not in notebooks.tags(cell):
            unexpected.append((index, errors[0][-300:]))
        elif any("Traceback" in e for e in errors) and {"exercise", "check"} & set(notebooks.tags(cell)):
            unexpected.append((index, "an unfinished exercise showed a traceback: " + errors[0][-300:]))
    assert not unexpected, unexpected
    assert friendly >= 1, "the unfinished exercise did not say 'not written yet'"
    page.get_by_role("link", name="01_number_formats →").last.click()
    page.wait_for_selector(".lm-TabBar-tab.lm-mod-current:has-text('01_number_formats')",
                           timeout=60_000)
    shot(page, "00_to_01_link")
    page.close()


def test_the_solution_opens_read_only(browser, lab_url):
    page = open_notebook(browser, lab_url, f"{WORK}/00_start_here.ipynb")
    page.get_by_role("link", name="Solution").first.click()
    page.wait_for_selector("text=notebook is read-only", timeout=60_000)
    page.locator(".jp-RenderedMarkdown strong", has_text="Worked solution").first.wait_for(
        timeout=30_000)
    page.keyboard.press("Control+s")
    page.wait_for_selector("text=is read-only. Use", timeout=30_000)
    shot(page, "solution_read_only")
    page.close()


def test_lesson_02_explorer_responds_and_widgets_survive_a_reload(browser, lab_url):
    page = open_notebook(browser, lab_url, f"{WORK}/02_affine_quantization.ipynb")
    run_all(page)
    figure = page.locator(".widget-output img").first
    figure.scroll_into_view_if_needed()
    before = figure.get_attribute("src")
    page.locator(".widget-slider .noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    deadline = time.monotonic() + 60
    while figure.get_attribute("src") == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert figure.get_attribute("src") != before, "moving the bits slider did not redraw the figure"
    assert page.locator(".widget-readout").first.inner_text().strip() == "5"
    shot(page, "02_explorer")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.lm-mod-current')"
                           ".classList.contains('jp-mod-dirty')", timeout=30_000)
    # Reopen without the kernel, as a student does the next day: the widgets can only come
    # back from the state saved in the notebook.
    page.get_by_role("menuitem", name="Kernel", exact=True).click()
    page.get_by_text("Shut Down Kernel", exact=True).click()
    page.wait_for_function(f"() => [...document.querySelectorAll('{STATUS}')]"
                           ".some(w => w.textContent.includes('No Kernel'))", timeout=60_000)
    page.reload()
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    explorer_cell = page.locator(".jp-CodeCell:has-text('explorer.explorer(acts.ravel()')")
    explorer_cell.scroll_into_view_if_needed()
    time.sleep(5)
    shot(page, "02_after_reload")
    figure = page.locator(".widget-output img").first
    figure.wait_for(state="attached", timeout=60_000)
    text = page.locator(".jp-Notebook").text_content()
    assert "model not found" not in text, "a saved widget did not come back after the reload"
    shot(page, "02_after_reload")
    page.close()
