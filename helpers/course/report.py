"""The course report: every lesson's headline numbers, readable, beside the reference run.

``./course report`` reads ``results/*.json`` (written by the notebooks on this machine) and
``solutions/results/*.json`` (the records of the run whose outputs are committed in
``solutions/``, written by ``./course refresh-solutions``), and writes ``report/report.md``,
a self-contained ``report/report.html`` and the figures as PNG files. Each lesson gets one
table: accuracy with the paired 95 % interval of its change against float and a verdict
computed from that interval, prediction agreement, size, latency with its spread, thread count
and batch, speed-ups, and the same numbers from the reference run. Lessons not run yet are
listed as such, so an instructor sees at a glance what a machine has measured.
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
# Fields shown in their own columns (or folded into one); everything else goes to "details".
SHOWN = {"name", "framework", "model", "method", "accuracy", "delta_points", "delta_ci95",
         "agreement", "size_bytes", "latency_ms", "latency_spread_ms", "threads", "batch",
         "perplexity", "ppl_ci95", "mcnemar_p", "test_images"}
REFERENCE_FIELDS = ("accuracy", "delta_points", "perplexity", "size_bytes", "latency_ms")


def reference_dir() -> Path:
    """Where ``./course refresh-solutions`` keeps the records of the committed solutions."""
    return notebooks.solutions_dir() / "results"


def verdict(ci95) -> str:
    """'worse', 'better' or 'not distinguishable', read from a 95 % interval of a change."""
    low, high = ci95
    if high < 0:
        return "worse"
    if low > 0:
        return "better"
    return "not distinguishable"


def _signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def format_value(key: str, value, record: dict | None = None) -> str:
    """One table cell with its unit: %, points, B/kB/MB, ms ± spread, ×."""
    record = record or {}
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in ("accuracy", "agreement") and isinstance(value, (int, float)):
        return f"{value:.2%}"
    if key == "delta_points" and isinstance(value, (int, float)):
        ci = record.get("delta_ci95")
        if isinstance(ci, list) and len(ci) == 2:
            return f"{_signed(value)} [{_signed(ci[0])}, {_signed(ci[1])}] {verdict(ci)}"
        return f"{_signed(value)} points"
    if key == "perplexity" and isinstance(value, (int, float)):
        ci = record.get("ppl_ci95")
        return f"{value:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if isinstance(ci, list) else "")
    if key == "size_bytes" and isinstance(value, (int, float)):
        for unit, factor in (("MB", 1e6), ("kB", 1e3)):
            if value >= factor:
                return f"{value / factor:.2f} {unit}"
        return f"{int(value)} B"
    if key == "latency_ms" and isinstance(value, (int, float)):
        spread = record.get("latency_spread_ms")
        return f"{value:.3f} ms" + (f" ± {spread:.3f}" if isinstance(spread, (int, float)) else "")
    if key.startswith("speedup") and isinstance(value, (int, float)):
        return f"{value:.2f}×"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if len(value) > 8 or any(isinstance(v, (list, dict)) for v in value):
            return f"{len(value)} values"
        return "[" + ", ".join(format_value("", v) for v in value) + "]"
    if isinstance(value, dict):
        return f"{len(value)} entries"
    return str(value)


def _what(record: dict) -> str:
    parts = [str(record[k]) for k in ("framework", "model", "method") if record.get(k)]
    return " · ".join(parts)


def _run_setup(record: dict) -> str:
    threads, batch = record.get("threads"), record.get("batch")
    parts = ([f"{threads} thread{'s' if threads != 1 else ''}"] if threads is not None else [])
    parts += [f"batch {batch}"] if batch is not None else []
    return ", ".join(parts)


def _speedups(record: dict) -> str:
    return ", ".join(f"{format_value(k, v)} vs {k.removeprefix('speedup_vs_').replace('_', ' ')}"
                     for k, v in record.items()
                     if k.startswith("speedup") and isinstance(v, (int, float)))


def _details(record: dict) -> str:
    return "; ".join(f"{k.replace('_', ' ')} = {format_value(k, v, record)}"
                     for k, v in record.items()
                     if k not in SHOWN and not k.startswith("speedup") and v not in (None, ""))


def _reference(record: dict, reference: dict | None) -> str:
    if reference is None:
        return ""
    shown = []
    for key in REFERENCE_FIELDS:
        value = reference.get(key)
        if isinstance(value, (int, float)):
            shown.append(_signed(value) if key == "delta_points" else
                         format_value(key, value, reference))
    return ", ".join(shown) if shown else "recorded"


COLUMNS = (  # (header, cell, shown when any record has one of these fields)
    ("record", lambda r, ref: r.get("name", ""), ("name",)),
    ("what", lambda r, ref: _what(r), ("framework", "model", "method")),
    ("accuracy", lambda r, ref: format_value("accuracy", r.get("accuracy"), r), ("accuracy",)),
    ("change vs float, points [95 % CI]",
     lambda r, ref: format_value("delta_points", r.get("delta_points"), r), ("delta_points",)),
    ("agreement", lambda r, ref: format_value("agreement", r.get("agreement"), r), ("agreement",)),
    ("perplexity [95 % CI]", lambda r, ref: format_value("perplexity", r.get("perplexity"), r),
     ("perplexity",)),
    ("size", lambda r, ref: format_value("size_bytes", r.get("size_bytes"), r), ("size_bytes",)),
    ("latency (median ± IQR)", lambda r, ref: format_value("latency_ms", r.get("latency_ms"), r),
     ("latency_ms",)),
    ("threads, batch", lambda r, ref: _run_setup(r), ("threads", "batch")),
    ("speed-up", lambda r, ref: _speedups(r), ()),
    ("reference run", lambda r, ref: _reference(r, ref), ()),
    ("details", lambda r, ref: _details(r), ()),
)


def record_table(records: list[dict], reference: list[dict] | None = None
                 ) -> tuple[list[str], list[list[str]]]:
    """Header and rows for one notebook's records, with the reference run's numbers beside."""
    by_name = {r.get("name"): r for r in reference or []}
    rows_by_column = []
    for header, cell, fields in COLUMNS:
        cells = [cell(r, by_name.get(r.get("name"))) for r in records]
        if (any(f in r for r in records for f in fields) if fields else any(cells)):
            rows_by_column.append((header, cells))
    header = [h for h, _ in rows_by_column]
    rows = [[cells[i] for _, cells in rows_by_column] for i in range(len(records))]
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


def machine_lines() -> list[str]:
    """What this machine is and the course's verdict on it (``./course env``)."""
    from helpers import env

    report = env.environment_report()
    return [line for line in str(report).splitlines() if line.strip()]


def build_report(results_folder: Path | None = None, reference_folder: Path | None = None
                 ) -> dict:
    """Collect the report's content: one section per course notebook, run or not."""
    found = results.load_all(results_folder)
    reference_folder = reference_folder or reference_dir()
    reference = results.load_all(reference_folder) if reference_folder.exists() else {}
    names = [n[:-6] for n in notebooks.notebook_names()]
    names += [n for n in found if n not in names]
    sections = []
    for name in names:
        payload = found.get(name)
        if payload is None:
            sections.append({"name": name, "ran": False})
            continue
        ref_payload = reference.get(name, {})
        header, rows = record_table(payload.get("records", []), ref_payload.get("records"))
        figures = {p.name: p.read_bytes()
                   for p in results.figure_paths(name, results_folder)}
        sections.append({"name": name, "ran": True, "quick": payload.get("quick"),
                         "updated": payload.get("updated"), "header": header, "rows": rows,
                         "reference_quick": ref_payload.get("quick"),
                         "reference_updated": ref_payload.get("updated"), "figures": figures})
    capstone = found.get(CAPSTONE, {}).get("records", [])
    if capstone:
        section = next(s for s in sections if s["name"] == CAPSTONE)
        section["figures"] = {**capstone_figures(capstone), **section["figures"]}
    return {"sections": sections}


def _mode(quick) -> str:
    return "quick mode" if quick else "full mode"


def write_report(results_folder: Path | None = None, out_dir: Path | None = None,
                 reference_folder: Path | None = None) -> dict[str, Path]:
    """Write report.md, report.html and the figures; returns their paths."""
    out_dir = out_dir or paths.repo_root() / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    content = build_report(results_folder, reference_folder)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    ran = sum(s["ran"] for s in content["sections"])
    intro = (f"Generated {stamp}: {ran} of {len(content['sections'])} notebooks have recorded "
             "numbers on this machine. Accuracy is on the 10,000-image MNIST test split; a change "
             "against float is in points with its paired 95 % bootstrap interval, and the verdict "
             "is read from that interval. Latencies are medians ± the interquartile range; sizes "
             "are the bytes of the saved file. 'Reference run' is the run whose outputs are "
             "committed in solutions/.")
    machine = machine_lines()
    md = ["# Quantization course: measured results", "", intro, "", "## This machine", "",
          *[f"- {line}" for line in machine], ""]
    page = [f"<h1>Quantization course: measured results</h1><p>{html.escape(intro)}</p>",
            "<h2>This machine</h2><ul>"
            + "".join(f"<li>{html.escape(line)}</li>" for line in machine) + "</ul>"]
    for section in content["sections"]:
        title = section["name"]
        md += [f"## {title}", ""]
        page.append(f"<h2 id='{html.escape(title)}'>{html.escape(title)}</h2>")
        if not section["ran"]:
            note = f"Not run yet: `./course run {title[:2]}` records its numbers."
            md += [note, ""]
            page.append(f"<p><em>{html.escape(note)}</em></p>")
            continue
        line = f"Run in {_mode(section['quick'])}, {section['updated']}."
        if section["reference_updated"]:
            line += (f" Reference run: {_mode(section['reference_quick'])}, "
                     f"{section['reference_updated']}.")
        md += [line, "", _markdown_table(section["header"], section["rows"]), ""]
        page.append(f"<p>{html.escape(line)}</p>")
        page.append(_html_table(section["header"], section["rows"]))
        for filename, png in section["figures"].items():
            stored = f"{title}-{filename}"
            (out_dir / stored).write_bytes(png)
            md += [f"![{filename}]({stored})", ""]
            encoded = base64.b64encode(png).decode()
            page.append(f"<figure><img alt='{html.escape(filename)}' "
                        f"src='data:image/png;base64,{encoded}'></figure>")
    (out_dir / "report.md").write_text("\n".join(md), encoding="utf-8")
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.85em}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
             "th{background:#f3f3f3}img{max-width:100%}figure{margin:1em 0}")
    (out_dir / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Quantization course results"
        f"</title><style>{style}</style></head><body>{''.join(page)}</body></html>",
        encoding="utf-8")
    return {"markdown": out_dir / "report.md", "html": out_dir / "report.html"}
