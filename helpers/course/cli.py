"""The course command line: ``./course <command>`` or ``python -m helpers <command>``.

Commands: lab, build, check, run, report, site, refresh-solutions, env, download-mnist.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import paths
from helpers.course import lab, notebooks


def work_folder() -> str:
    """The students' folder under the checkout: ``my_work`` (``COURSE_WORK_DIR`` for tests).

    It must sit directly in the checkout, beside lessons/ and solutions/, so that the lessons'
    relative links (``../solutions/...``) work from it.
    """
    name = os.environ.get("COURSE_WORK_DIR", "my_work")
    if not name or "/" in name or name.startswith(".") or name in ("lessons", "solutions"):
        raise ValueError(f"COURSE_WORK_DIR must be a plain folder name beside lessons/, got {name!r}")
    return name


def copy_lessons_to_work(work_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """Copy lessons the student has no copy of into ``my_work/``; never overwrite a copy."""
    work_dir = work_dir or paths.repo_root() / work_folder()
    work_dir.mkdir(exist_ok=True)
    added, kept = [], []
    for name in notebooks.notebook_names(notebooks.lessons_dir()):
        target = work_dir / name
        if target.exists():
            kept.append(name)
        else:
            shutil.copy2(notebooks.lessons_dir() / name, target)
            added.append(name)
    return added, kept


def free_port(start: int = 8888, tries: int = 50) -> int:
    """The first TCP port from ``start`` that nothing listens on (JupyterLab's own default first)."""
    import socket

    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + tries - 1}; pass --port")


def lab_command(lesson: str | None, port: int, token: str, no_browser: bool) -> tuple[list[str], str]:
    """The ``jupyter lab`` command and the URL (with its token) that opens the lesson in my_work/."""
    name = notebooks.resolve_names([lesson])[0] if lesson else "00_start_here.ipynb"
    start = f"{work_folder()}/{name}"
    command = ["jupyter", "lab", start, f"--ServerApp.root_dir={paths.repo_root()}",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", *lab.server_options()]
    if no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Containers and workshop VMs often run as root, which JupyterLab refuses by default.
        command.append("--allow-root")
    return command, f"http://localhost:{port}/lab/tree/{start}?token={token}"


def cmd_lab(args: argparse.Namespace) -> int:
    import secrets

    command, url = lab_command(args.lesson, args.port or free_port(), secrets.token_hex(24),
                               args.no_browser)
    added, kept = copy_lessons_to_work()
    if added:
        print(f"Copied {len(added)} lesson(s) into {work_folder()}/: {', '.join(added)}")
    if kept:
        print(f"Kept your own copies of {len(kept)} lesson(s) in {work_folder()}/ (never overwritten).")
    print("Starting:", " ".join(c for c in command if not c.startswith("--IdentityProvider")))
    print(f"\n    Open this address in your browser:\n\n    {url}\n", flush=True)
    if args.dry_run:
        return 0
    return subprocess.call(command, cwd=paths.repo_root())


def cmd_build(args: argparse.Namespace) -> int:
    report = notebooks.build(args.names or None, force=args.force)
    for name in report.written:
        print(f"wrote lessons/{name}")
    for backup in report.backed_up:
        print(f"your previous copy was saved to {backup}")
    for name in report.refused:
        print(f"REFUSED lessons/{name}: it has outputs or edits (someone's work). Move it "
              "away, or rebuild with --force (the old file is backed up to backups/).")
    print(f"{len(report.written)} written, {len(report.unchanged)} unchanged, "
          f"{len(report.refused)} refused")
    return 1 if report.refused else 0


def cmd_check(args: argparse.Namespace) -> int:
    problems = notebooks.check()
    for problem in problems:
        print(f"- {problem}")
    print("notebooks OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_run(args: argparse.Namespace) -> int:
    from helpers.course import runner

    results = runner.run(args.names or None, kind=args.kind, quick=args.quick,
                         out_dir=Path(args.out) if args.out else None, jobs=args.jobs,
                         timeout=args.timeout)
    if args.report:
        cmd_report(args)
    return 0 if all(r.ok for r in results) else 1


def cmd_refresh(args: argparse.Namespace) -> int:
    from helpers.course import runner

    results = runner.refresh_solutions(args.names or None, quick=args.quick)
    status = notebooks.build([r.name for r in results if r.ok])
    print(f"lessons rebuilt: {len(status.written)} written, {len(status.refused)} refused")
    return 0 if all(r.ok for r in results) and not status.refused else 1


def cmd_report(args: argparse.Namespace) -> int:
    from helpers.course import report

    out = report.write_report(out_dir=Path(args.report_dir) if args.report_dir else None)
    print(f"report written: {out['markdown']} and {out['html']}")
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    from helpers.course import site

    html = site.build(Path(args.out) if args.out else None)
    print(f"site written: {html / 'index.html'}")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from helpers import env

    result = env.environment_report()
    print(result)
    return 0 if result.ok else 1


def cmd_download(args: argparse.Namespace) -> int:
    from helpers import data

    folder = data.download_mnist()
    print(f"full MNIST verified in {folder}; use it with data.load_mnist('full')")
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="course", description=__doc__)
    sub = main.add_subparsers(dest="command", required=True)

    lab = sub.add_parser("lab", help="copy lessons into my_work/ and open JupyterLab")
    lab.add_argument("lesson", nargs="?",
                     help="lesson to open, e.g. 02 or 02_affine_quantization (default: 00)")
    lab.add_argument("--no-browser", action="store_true",
                     help="do not open a browser; print the address to open instead")
    lab.add_argument("--port", type=int, help="port to serve on (default: first free from 8888)")
    lab.add_argument("--dry-run", action="store_true", help="copy and print, do not start")
    lab.set_defaults(func=cmd_lab)

    build = sub.add_parser("build", help="write lessons/ from solutions/")
    build.add_argument("names", nargs="*")
    build.add_argument("--force", action="store_true",
                       help="overwrite lessons with outputs or edits (backed up first)")
    build.set_defaults(func=cmd_build)

    sub.add_parser("check", help="fail on drift, outputs in lessons, missing cells").set_defaults(
        func=cmd_check)

    run = sub.add_parser("run", help="execute notebooks headlessly into runs/")
    run.add_argument("names", nargs="*", help="e.g. 05 or 05_pytorch_dynamic (default: all)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=True,
                      help="smaller data and fewer epochs (default)")
    mode.add_argument("--full", dest="quick", action="store_false", help="the full lessons")
    run.add_argument("--kind", choices=["lesson", "solution"], default="solution",
                     help="run the solutions (default, every number measured) or the lessons")
    run.add_argument("--jobs", type=int, default=1, help="notebooks at once (noisier timings)")
    run.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    run.add_argument("--out", help="folder for executed copies (default: runs/<time>)")
    run.add_argument("--report", action="store_true", help="write the report afterwards")
    run.add_argument("--report-dir", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    refresh = sub.add_parser("refresh-solutions",
                             help="maintainers: re-execute solutions, keep outputs, rebuild lessons")
    refresh.add_argument("names", nargs="*")
    refresh.add_argument("--quick", action="store_true")
    refresh.set_defaults(func=cmd_refresh)

    report = sub.add_parser("report", help="write report/report.md and report.html from results/")
    report.add_argument("--report-dir", help="output folder (default: report/)")
    report.set_defaults(func=cmd_report)

    site = sub.add_parser("site", help="a static website of the executed solutions (_site/html)")
    site.add_argument("--out", help="build folder (default: _site/)")
    site.set_defaults(func=cmd_site)

    sub.add_parser("env", help="versions, CPU features and quantized engines").set_defaults(
        func=cmd_env)
    sub.add_parser("download-mnist", help="fetch full MNIST into data/mnist (needs internet)"
                   ).set_defaults(func=cmd_download)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
