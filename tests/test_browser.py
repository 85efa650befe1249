"""End to end in a real browser: ``./course lab --no-browser`` serves lesson 00 from my_work/,
and running all its cells gives only the friendly "not written yet" errors of its exercises.

Needs Debian's chromium (``apt-get install chromium``) and playwright; skipped otherwise.
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
from helpers.course import cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _start_lab(port: int):
    proc = subprocess.Popen([str(paths.repo_root() / "course"), "lab", "--no-browser",
                             "--port", str(port)], cwd=paths.repo_root(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url, lines = None, []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        found = re.search(r"(http://localhost:\d+/lab/tree/\S+\?token=\w+)", line)
        if found and url is None:
            url = found.group(1)
        if url and "is running at" in line or url and "http://127.0.0.1" in line:
            return proc, url
    os.killpg(proc.pid, signal.SIGTERM)
    pytest.fail("JupyterLab did not start:\n" + "".join(lines[-30:]))


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed "
                    "(apt-get install chromium)")
@pytest.mark.skipif(os.environ.get("COURSE_BROWSER_TEST") != "1",
                    reason="set COURSE_BROWSER_TEST=1 to drive JupyterLab in chromium (about 90 s)")
def test_lesson_00_runs_in_jupyterlab_with_only_friendly_errors():
    playwright = pytest.importorskip("playwright.sync_api")
    proc, url = _start_lab(cli.free_port(8950))
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=90_000, state="attached")
            out = paths.repo_root() / "report" / "browser"
            out.mkdir(parents=True, exist_ok=True)
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            status = ".jp-StatusBar-Widget"
            page.wait_for_function(  # all queued, then the kernel idle again for 3 s
                f"""() => [...document.querySelectorAll('{status}')]
                          .some(w => w.textContent.includes('Busy'))""", timeout=30_000)
            idle_since = None
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                texts = page.locator(status).all_inner_texts()
                if any("Idle" in t for t in texts):
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 3:
                        break
                else:
                    idle_since = None
                time.sleep(0.5)
            else:
                pytest.fail("lesson 00 did not finish running within 180 s")
            page.screenshot(path=str(out / "00_start_here.png"))
            prompts = page.locator(".jp-InputPrompt").all_inner_texts()
            assert any(re.search(r"\[\d+\]", t) for t in prompts), ("no cell ran", prompts[:5],
                                                                       texts)
            errors = page.locator(".jp-OutputArea-output[data-mime-type="
                                  "'application/vnd.jupyter.stderr']").all_inner_texts()
            tracebacks = [e for e in errors if "Traceback" in e or "Error" in e]
            page.screenshot(path=str(out / "00_start_here.png"), full_page=False)
            browser.close()
        unfriendly = [t for t in tracebacks if "not written yet" not in t]
        assert not unfriendly, unfriendly[:3]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
