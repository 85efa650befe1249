"""The course report: every notebook's recorded numbers in one Markdown and one HTML file.

``./course report`` reads ``results/*.json`` (written by the notebooks) and writes
``report/report.md``, ``report/report.html`` (self-contained, figures embedded) and the
figures as PNG files. Lessons that have not been run yet are listed as such, so an instructor
sees at a glance what a machine has measured.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime
from pathlib import Path

from helpers import paths, results
from helpers.course import notebooks

CAPSTONE = "13_capstone_comparison"
COLUMNS = ("name", "framework", "model", "accuracy", "size_bytes", "latency_ms", "threads",
           "batch")
HEADERS = {"accuracy": "accuracy", "size_bytes": "size", "latency_ms": "latency (median ± IQR)"}


def format_value(key: str, value, record: dict | None = None) -> str:
    """One table cell: accuracy in %, sizes in B/kB/MB, latency with its spread."""
    if value is None or value == "":
        return ""
    if key == "accuracy" and isinstance(value, (int, float)):
        return f"{value:.2%}"
    if key == "size_bytes" and isinstance(value, (int, float)):
        for unit, factor in (("MB", 1e6), ("kB", 1e3)):
            if value >= factor:
                return f"{value / factor:.2f} {unit}"
        return f"{int(value)} B"
    if key == "latency_ms" and isinstance(value, (int, float)):
        spread = (record or {}).get("latency_spread_ms")
        return f"{value:.3f} ms" + (f" ± {spread:.3f}" if isinstance(spread, (int, float)) else "")
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(format_value("", v) for v in value[:12])
        return f"[{shown}{', …' if len(value) > 12 else ''}]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(k, v)}" for k, v in value.items())
    return str(value)


def record_table(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows for a notebook's records; extra metrics go into a final column."""
    present = [c for c in COLUMNS if any(c in r for r in records)]
    skip = set(COLUMNS) | {"latency_spread_ms"}
    header = [HEADERS.get(c, c) for c in present] + ["other metrics"]
    rows = []
    for record in records:
        extras = "; ".join(f"{k} = {format_value(k, v)}" for k, v in record.items()
                           if k not in skip)
        rows.append([format_value(c, record.get(c), record) for c in present] + [extras])
    return header, rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def clean(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def capstone_figures(records: list[dict]) -> dict[str, bytes]:
    """The capstone's Pareto plots as PNG bytes (accuracy vs latency, accuracy vs size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers import plot

    usable = [r for r in records if r.get("accuracy") is not None]
    figures = {}
    for filename, x_metric in (("capstone_accuracy_vs_latency.png", "latency_ms"),
                               ("capstone_accuracy_vs_size.png", "size_bytes")):
        if not any(r.get(x_metric) is not None for r in usable):
            continue
        fig = plot.pareto(usable, x=x_metric, y="accuracy", log_x=True,
                          title=f"Capstone: accuracy vs {x_metric.split('_')[0]}")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        figures[filename] = buffer.getvalue()
    return figures


def build_report(results_folder: Path | None = None) -> dict:
    """Collect the report's content: one section per course notebook, run or not."""
    found = results.load_all(results_folder)
    names = [n[:-6] for n in notebooks.notebook_names()]
    names += [n for n in found if n not in names]
    sections = []
    for name in names:
        payload = found.get(name)
        if payload is None:
            sections.append({"name": name, "ran": False})
            continue
        header, rows = record_table(payload.get("records", []))
        sections.append({"name": name, "ran": True, "quick": payload.get("quick"),
                         "updated": payload.get("updated"), "header": header, "rows": rows})
    capstone = found.get(CAPSTONE, {}).get("records", [])
    return {"sections": sections, "figures": capstone_figures(capstone) if capstone else {}}


def write_report(results_folder: Path | None = None, out_dir: Path | None = None) -> dict[str, Path]:
    """Write report.md, report.html and the figures; returns their paths."""
    out_dir = out_dir or paths.repo_root() / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    content = build_report(results_folder)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    ran = sum(s["ran"] for s in content["sections"])
    intro = (f"Generated {stamp} from `results/`: {ran} of {len(content['sections'])} notebooks "
             "have recorded numbers on this machine. Latencies are medians with the "
             "interquartile range; sizes are serialized bytes; accuracy is on the test split.")
    md = ["# Quantization course: measured results", "", intro, ""]
    page = [f"<h1>Quantization course: measured results</h1><p>{html.escape(intro)}</p>"]
    for section in content["sections"]:
        title = section["name"]
        md += [f"## {title}", ""]
        page.append(f"<h2 id='{html.escape(title)}'>{html.escape(title)}</h2>")
        if not section["ran"]:
            note = f"Not run yet: `./course run {title[:2]}` records its numbers."
            md += [note, ""]
            page.append(f"<p><em>{html.escape(note)}</em></p>")
            continue
        mode = "quick mode" if section["quick"] else "full mode"
        md += [f"Run in {mode}, {section['updated']}.", "",
               _markdown_table(section["header"], section["rows"]), ""]
        page.append(f"<p>Run in {mode}, {html.escape(str(section['updated']))}.</p>")
        page.append(_html_table(section["header"], section["rows"]))
        if title == CAPSTONE:
            for filename, png in content["figures"].items():
                (out_dir / filename).write_bytes(png)
                md += [f"![{filename}]({filename})", ""]
                encoded = base64.b64encode(png).decode()
                page.append(f"<img alt='{filename}' src='data:image/png;base64,{encoded}'>")
    (out_dir / "report.md").write_text("\n".join(md), encoding="utf-8")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
             "th{background:#f3f3f3}img{max-width:100%}")
    (out_dir / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Quantization course results"
        f"</title><style>{style}</style></head><body>{''.join(page)}</body></html>",
        encoding="utf-8")
    return {"markdown": out_dir / "report.md", "html": out_dir / "report.html"}
