"""Record each notebook's headline measurements in ``results/<notebook>.json``.

Introduced in lesson 00. A notebook creates one :class:`Recorder` near its top, which starts
that notebook's file afresh (re-running a notebook replaces its own records and never
touches another notebook's), then calls :meth:`Recorder.record` for every number worth
keeping. The course report (``./course report``) reads these files.

File format::

    {"notebook": "05_pytorch_dynamic", "quick": false, "updated": "2026-...",
     "records": [{"name": "mlp-fp32", "framework": "pytorch", "model": "mlp",
                  "size_bytes": 411000, "latency_ms": 0.21, "latency_spread_ms": 0.01,
                  "threads": 1, "batch": 1, "accuracy": 0.97, ...}]}
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from helpers import paths

STANDARD_FIELDS = ("framework", "model", "size_bytes", "latency_ms", "latency_spread_ms",
                   "threads", "batch", "accuracy")


def _plain(value):
    """Turn NumPy and torch scalars and arrays into JSON values; refuse NaN and infinity."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot record a non-finite number ({value}); check the measurement")
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


class Recorder:
    """Collects one notebook's records and keeps ``results/<notebook>.json`` up to date."""

    def __init__(self, notebook: str, quick: bool, folder: Path | None = None) -> None:
        if not notebook or "/" in notebook or notebook.endswith(".ipynb"):
            raise ValueError(f"notebook must be a bare name like '05_pytorch_dynamic', got {notebook!r}")
        self.notebook = notebook
        self.quick = bool(quick)
        self.path = (folder or paths.results_dir()) / f"{notebook}.json"
        self.figures_dir = self.path.parent / "figures" / notebook
        self.records: list[dict] = []
        shutil.rmtree(self.figures_dir, ignore_errors=True)
        self._write()

    def figure(self, name: str, fig) -> None:
        """Keep a key figure for the course report (``results/figures/<notebook>/<name>.png``).

        The notebook still shows the figure as usual; returns None so the cell prints nothing.
        """
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name or ""):
            raise ValueError(f"a figure name is lower-case letters, digits, '-' and '_', got {name!r}")
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.figures_dir / f"{name}.png", dpi=100, bbox_inches="tight")

    def record(self, name: str, **metrics) -> None:
        """Add or replace the record called ``name``; extra metrics are kept as given.

        Returns None, so a cell that ends with a ``record(...)`` call prints nothing; the
        entry is ``self.records[-1]``.
        """
        if not name:
            raise ValueError("a record needs a name, e.g. 'mlp-int8'")
        if "timing" in metrics:
            timing = metrics.pop("timing")
            metrics.setdefault("latency_ms", timing.median_ms)
            metrics.setdefault("latency_spread_ms", timing.spread_ms)
            metrics.setdefault("threads", timing.threads)
        entry = {"name": name, **_plain(metrics)}
        self.records = [r for r in self.records if r["name"] != name] + [entry]
        self._write()

    def _write(self) -> None:
        payload = {
            "notebook": self.notebook,
            "quick": self.quick,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "records": self.records,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(payload, out, indent=2)
        os.replace(tmp, self.path)


def load_all(folder: Path | None = None) -> dict[str, dict]:
    """Every results file in the folder, by notebook name, sorted by lesson number."""
    folder = folder or paths.results_dir()
    found = {}
    for path in sorted(folder.glob("*.json")):
        try:
            payload = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); delete it and re-run its notebook") from err
        found[payload.get("notebook", path.stem)] = payload
    return found


def figure_paths(notebook: str, folder: Path | None = None) -> list[Path]:
    """The key figures a notebook kept with :meth:`Recorder.figure`, by name."""
    return sorted(((folder or paths.results_dir()) / "figures" / notebook).glob("*.png"))


def find(notebook: str, name: str, folder: Path | None = None) -> dict:
    """One record from an earlier notebook's results, with a clear error if it is missing."""
    path = (folder or paths.results_dir()) / f"{notebook}.json"
    if not path.exists():
        raise FileNotFoundError(f"no results for {notebook} yet: run that notebook first ({path})")
    for entry in json.loads(path.read_text())["records"]:
        if entry["name"] == name:
            return entry
    raise KeyError(f"{notebook} recorded no {name!r}; re-run it to record it")
