"""Execute course notebooks headlessly with papermill, never touching the source files.

Used by ``./course run`` (instructors), ``./course refresh-solutions`` (maintainers) and the
notebook tests. Each notebook runs in its own kernel, so a notebook that switches the process
to legacy Keras (lesson 12) cannot leak into another.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from helpers import env, paths
from helpers.course import notebooks

# checks.attempt turns a stub's NotImplementedError into its subclass NotWrittenYet.
ALLOWED_LESSON_ERRORS = ("NotImplementedError", "NotWrittenYet")
LEGACY_KERAS = "TF_USE_LEGACY_KERAS"
# The kernel's own log (not the notebook's output) at warnings level says, for every notebook,
# that it talks over TCP without encryption: true of every local Jupyter kernel, and noise in
# a run's progress lines. Errors of the kernel process itself still show.
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]


def kernel_manager_logging_to(log: Path) -> type:
    """A kernel manager whose kernel writes its native stdout/stderr to ``log``.

    LiteRT and TensorFlow's C++ code writes lines such as "INFO: Created TensorFlow Lite XNNPACK
    delegate for CPU." straight to file descriptors 1 and 2 of the kernel process, which it
    inherits from whoever started it: without this they land between a run's progress lines.
    What the notebook's cells print is unaffected (that travels over the kernel's channels).
    """
    from jupyter_client.manager import AsyncKernelManager

    class LoggingKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            handle = open(log, "ab")  # noqa: SIM115 (the kernel process owns it from here on)
            kw.update(stdout=handle, stderr=handle)
            try:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            finally:
                handle.close()  # the child keeps its own copy of the descriptor

        async def shutdown_kernel(self, now: bool = False, restart: bool = False):
            process = getattr(self.provisioner, "process", None)
            peak = peak_resident_gb(process.pid) if process is not None else None
            if peak is not None:
                peak_file(log).write_text(f"{peak:.3f}\n")
            return await super().shutdown_kernel(now=now, restart=restart)

    return LoggingKernelManager


def peak_resident_gb(pid: int) -> float | None:
    """The high-water mark of a live process's resident memory (Linux ``VmHWM``), in GB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # not Linux, or the process is gone
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e9
    return None


def peak_file(kernel_log: Path) -> Path:
    """Where the runner leaves a kernel's peak memory, beside its native log."""
    return kernel_log.with_suffix(".peak")


@dataclass
class RunResult:
    """How one notebook run went."""

    name: str
    kind: str
    output: Path
    seconds: float
    errors: list[str] = field(default_factory=list)
    unfinished_exercises: int = 0
    peak_gb: float | None = None  # the kernel's peak resident memory, where the OS reports it

    @property
    def ok(self) -> bool:
        return not self.errors


def cell_errors(notebook: dict, allow_unfinished: bool) -> tuple[list[str], int]:
    """Problems in an executed notebook, and how many exercise cells are still unfinished.

    A cell tagged ``raises-exception`` (and not an exercise) demonstrates an error on purpose:
    it must raise, and may. In a lesson, exercise and check cells may raise only
    ``NotImplementedError`` (the student has not written them yet). Any other error counts.
    """
    errors, unfinished = [], 0
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell["cell_type"] != "code":
            continue
        cell_tags = set(notebooks.tags(cell))
        is_exercise_cell = bool({"exercise", "check"} & cell_tags)
        demonstrates_error = "raises-exception" in cell_tags and not is_exercise_cell
        first_line = (notebooks.source_text(cell).strip().splitlines() or [""])[0][:60]
        raised = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if demonstrates_error and not raised and cell.get("execution_count") is not None:
            errors.append(f"cell {index} ({first_line!r}) is tagged raises-exception to show "
                          "an error, but it ran without one")
        for output in raised:
            if demonstrates_error:
                continue
            if (allow_unfinished and is_exercise_cell
                    and output.get("ename") in ALLOWED_LESSON_ERRORS):
                unfinished += 1
                continue
            errors.append(f"cell {index} ({first_line!r}): "
                          f"{output.get('ename')}: {output.get('evalue', '')[:300]}")
    return errors, unfinished


def run_one(name: str, kind: str, quick: bool, out_dir: Path, timeout: int = 1800) -> RunResult:
    """Execute ``lessons/<name>`` or ``solutions/<name>`` into ``out_dir``; never raises on errors."""
    import papermill

    source_dir = notebooks.lessons_dir() if kind == "lesson" else notebooks.solutions_dir()
    source = source_dir / name
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist; known: {notebooks.notebook_names()}")
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{kind}-{name}"
    kernel_log = output.with_suffix(".kernel.log")
    kernel_log.unlink(missing_ok=True)
    peak_file(kernel_log).unlink(missing_ok=True)
    started = time.perf_counter()
    # Each kernel inherits this process's environment: set quick mode for it, and make sure a
    # legacy-Keras switch (importing tensorflow-model-optimization sets TF_USE_LEGACY_KERAS=1
    # for its whole process) never reaches another notebook.
    saved = {var: os.environ.get(var) for var in (env.QUICK_ENV, LEGACY_KERAS)}
    os.environ[env.QUICK_ENV] = "1" if quick else "0"
    os.environ.pop(LEGACY_KERAS, None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    failure: Exception | None = None
    try:
        papermill.execute_notebook(
            str(source), str(output), parameters={"QUICK": quick}, kernel_name="python3",
            cwd=str(source_dir), progress_bar=False, log_output=False,
            execution_timeout=timeout, extra_arguments=QUIET_KERNEL,
            kernel_manager_class=kernel_manager_logging_to(kernel_log),
        )
    except Exception as err:  # a cell error or a dead kernel; judged from the cells below
        failure = err
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
    seconds = time.perf_counter() - started
    peak = float(peak_file(kernel_log).read_text()) if peak_file(kernel_log).exists() else None
    if not output.exists():
        return RunResult(name, kind, output, seconds, [f"{type(failure).__name__}: {failure}"], peak_gb=peak)
    executed = json.loads(output.read_text(encoding="utf-8"))
    errors, unfinished = cell_errors(executed, allow_unfinished=kind == "lesson")
    never_ran = [i for i, c in enumerate(executed["cells"]) if c["cell_type"] == "code"
                 and notebooks.source_text(c).strip() and c.get("execution_count") is None]
    if never_ran:
        errors.append(f"{len(never_ran)} code cell(s) never ran (first: cell {never_ran[0]}); "
                      f"did the kernel die? Its own log is {kernel_log}")
    # papermill also raises for errors a cell is allowed to show (tagged raises-exception);
    # cell_errors has judged those. Anything else it raised (a dead kernel, a timeout) counts.
    if failure is not None and not errors and type(failure).__name__ != "PapermillExecutionError":
        errors.append(f"{type(failure).__name__}: {str(failure)[:500]}")
    if not errors and _drop_error_banners(executed):
        # Every error was one the notebook is allowed to show: papermill's red "An Exception
        # was encountered" banners would only mislead whoever opens the executed copy.
        output.write_text(notebooks.dumps(executed), encoding="utf-8")
    return RunResult(name, kind, output, seconds, errors, unfinished, peak)


def _drop_error_banners(notebook: dict) -> bool:
    """Remove the cells papermill adds to mark an exception; True if there were any."""
    from papermill.execute import ERROR_MARKER_TAG

    kept = [c for c in notebook["cells"] if ERROR_MARKER_TAG not in notebooks.tags(c)]
    dropped = len(kept) != len(notebook["cells"])
    notebook["cells"] = kept
    return dropped


def run(names: list[str] | None = None, kind: str = "lesson", quick: bool = True,
        out_dir: Path | None = None, jobs: int = 1, timeout: int = 1800,
        echo=print) -> list[RunResult]:
    """Execute notebooks with a progress line each; ``jobs`` > 1 runs several at once."""
    if kind not in {"lesson", "solution"}:
        raise ValueError(f"kind must be 'lesson' or 'solution', got {kind!r}")
    names = notebooks.resolve_names(names) if names else notebooks.notebook_names()
    out_dir = out_dir or paths.repo_root() / "runs" / time.strftime("%Y%m%d-%H%M%S")
    mode = "quick" if quick else "full"
    echo(f"Running {len(names)} {kind}(s) in {mode} mode into {out_dir}")
    if jobs > 1:
        echo(f"note: {jobs} notebooks at once share the CPU, so latency numbers are noisier")

    def one(index_name: tuple[int, str]) -> RunResult:
        index, name = index_name
        result = run_one(name, kind, quick, out_dir, timeout)
        status = "ok" if result.ok else f"FAILED ({len(result.errors)} error(s))"
        extra = (f", {result.unfinished_exercises} exercise cell(s) left for the student"
                 if result.unfinished_exercises else "")
        memory = f", peak memory {result.peak_gb:.1f} GB" if result.peak_gb is not None else ""
        echo(f"[{index}/{len(names)}] {name}: {status} in {result.seconds:.0f} s{memory}{extra}")
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, enumerate(names, start=1)))
    failed = [r for r in results if not r.ok]
    total = sum(r.seconds for r in results)
    echo(f"{len(results) - len(failed)} passed, {len(failed)} failed ({total:.0f} s of notebook time)")
    for result in failed:
        echo(f"\n{result.name} ({result.kind}) failed; executed copy: {result.output}")
        for error in result.errors:
            echo(f"  - {error}")
    return results


def refresh_solutions(names: list[str] | None = None, quick: bool = False,
                      timeout: int = 3600, echo=print) -> list[RunResult]:
    """Re-execute solutions and write their outputs back (maintainers; full mode by default)."""
    names = notebooks.resolve_names(names) if names else notebooks.notebook_names()
    scratch = paths.repo_root() / "runs" / "refresh"
    results = run(names, kind="solution", quick=quick, out_dir=scratch, timeout=timeout,
                  echo=echo)
    for result in results:
        if not result.ok:
            echo(f"kept solutions/{result.name} unchanged because its run failed")
            continue
        executed = json.loads(result.output.read_text(encoding="utf-8"))
        executed["metadata"].pop("papermill", None)
        for cell in executed["cells"]:
            cell.get("metadata", {}).pop("papermill", None)
            cell.get("metadata", {}).pop("execution", None)
            if "injected-parameters" in notebooks.tags(cell):
                cell["metadata"]["_drop"] = True
        executed["cells"] = [c for c in executed["cells"] if not c["metadata"].get("_drop")]
        (notebooks.solutions_dir() / result.name).write_text(notebooks.dumps(executed),
                                                              encoding="utf-8")
        keep_reference_records(result.name)
    return results


def keep_reference_records(name: str) -> Path | None:
    """Copy a refreshed solution's records to ``solutions/results/`` (the report's reference run)."""
    recorded = paths.results_dir() / name.replace(".ipynb", ".json")
    if not recorded.exists():
        return None
    target = notebooks.solutions_dir() / "results" / recorded.name
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(recorded, target)
    return target
