"""The nightly report: one self-contained HTML page per night, and an index of the nights.

``runs/dt=D/report.html`` is what a person opens after night D: plots (matplotlib, inline SVG, see
:mod:`reelrec.report_plots`) and small tables, with no script, stylesheet or image fetched from
anywhere, so the file can be mailed, attached to a ticket or opened offline. Its sections, each an
element with a stable ``id`` (the tests find them by it):

* ``retrieval``: recall@100 and NDCG@10 of every model and baseline over the nights so far
  (``runs/dt=*/metrics.json``);
* ``task-seconds``: seconds per task and night, stacked (the Airflow metadata database; the
  ``seconds`` the tasks recorded in the manifest when Airflow has no record);
* ``rows`` and ``quarantine``: rows of each table's ``dt`` partition (the manifests) and
  quarantined rows by feed and reason (``bronze.quarantine``) over the nights;
* ``candidates``: score and list-length distributions of D's published lists (``gold.candidates``,
  the default list left out), catalog coverage and the share of fresh uploads (videos uploaded
  on D) in the lists;
* ``validation``: every suite's result of D, linked to its page in GX's Data Docs site
  (:mod:`reelrec.validation.data_docs`), which is linked as a whole too;
* ``lineage``: Delta versions written (the manifest) and read (the tasks' ``inputs`` and the
  validation reports), the model version and its components, the feature services.

Nights so far are the ``runs/dt=*`` folders up to D. A piece that is missing (the first nights
have no model; a held night publishes no lists; a night that did not complete has no manifest)
is said in place of its plot or table. Writing a report also rewrites ``runs/index.html``: one
line per night with its status, linking its report.

:func:`main` is the DAG's last task (``reelrec.report_html:main``); ``reelrec report --date D``
calls :func:`write_report`.
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reelrec import report_plots
from reelrec.report import (
    candidate_facts,
    night_gate,
    night_metrics,
    nights_so_far,
    quarantined,
    recorded_status,
    task_seconds,
)
from reelrec.runs import read_manifest
from reelrec.settings import Settings
from reelrec.validation import read_reports
from reelrec.validation.data_docs import data_docs_index, validation_pages

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
INDEX_FILE = "index.html"
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:1180px;
  color:#1d232a;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}
h2{font-size:1.15rem;border-bottom:1px solid #d7dce1;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{border-bottom:1px solid #e4e7eb;padding:.2rem .6rem;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#fff6d6;border-left:4px solid #e5b700;padding:.4rem .8rem}
.ok{color:#17803d}.bad{color:#b42318;font-weight:600}
figure{margin:.5rem 0}figure svg{max-width:100%;height:auto}
.row{display:flex;flex-wrap:wrap;gap:1rem}.muted{color:#5f6b76}nav a{margin-right:.8rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _figure(plot_id: str, title: str, svg: str | None, missing: str) -> str:
    if svg is None:
        svg, empty = _note(missing), ' data-empty="true"'
    else:
        empty = ""
    return f'<figure id="{plot_id}"{empty}><figcaption>{_e(title)}</figcaption>{svg}</figure>'


def _table(head: Iterable[str], rows: Iterable[Iterable[Any]], numeric_from: int = 1) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = []
    for row in rows:
        tds = []
        for i, value in enumerate(row):
            if isinstance(value, tuple):  # (text, href): a link
                tds.append(f'<td><a href="{_e(value[1])}">{_e(value[0])}</a></td>')
            else:
                tds.append(
                    f'<td class="n">{_e(value)}</td>' if i >= numeric_from else f"<td>{_e(value)}</td>"
                )
        body.append(f"<tr>{''.join(tds)}</tr>")
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(section_id: str, title: str, *parts: str) -> str:
    return f'<section id="{section_id}"><h2>{_e(title)}</h2>{"".join(parts)}</section>'


def _link(target: Path, start: Path) -> str:
    """``target`` relative to folder ``start``, so the runs folder can move as a whole."""
    return Path(os.path.relpath(target, start)).as_posix()


def _header(date: str, settings: Settings, manifest: Mapping[str, Any] | None) -> str:
    metrics, gate = night_metrics(date, settings), night_gate(date, settings)
    status = recorded_status(date, settings)
    facts = [f"status <b>{_e(status)}</b>", f"model {_e(metrics.get('model_version') or '-')}"]
    if gate:
        verdict = "publish" if gate.get("publish") else "hold"
        facts.append(
            f"promotion gate: {_e(verdict)}{' (forced)' if gate.get('forced') else ''}: "
            + _e(gate.get("reason"))
        )
    notes = []
    if manifest is None:
        notes.append(
            _note(f"dt={date} has no run manifest: the night did not complete (or is still running).")
        )
    if not metrics:
        notes.append(
            _note(
                f"No model was evaluated on dt={date}: the first nights have nothing to train on yet, "
                "and a night that stopped before `evaluate` has no evaluation."
            )
        )
    if status == "held":
        notes.append(
            _note("The promotion gate held this night: no lists were published; the serving release stays.")
        )
    links = '<nav><a href="../index.html">all nights</a>'
    links += f'<a href="{_e(_link(data_docs_index(settings), settings.run_dir(date)))}">Data Docs</a></nav>'
    title = f"<h1>reelrec night dt={_e(date)}</h1>"
    return f"<header>{title}{links}<p>{' · '.join(facts)}</p>{''.join(notes)}</header>"


def _retrieval(date: str, nights: list[str], metrics: Mapping[str, Mapping[str, Any]]) -> str:
    retrieval = {n: metrics[n].get("retrieval") or {} for n in nights if metrics.get(n)}
    svg = report_plots.retrieval_over_nights(nights, retrieval)
    parts = [
        _figure("plot-retrieval", "retrieval metrics over the nights", svg, "No night was evaluated yet.")
    ]
    tonight = retrieval.get(date) or {}
    if tonight:
        columns = ["recall@10", "recall@100", "ndcg@10", "ndcg@100", "coverage@100", "fresh_recall@100"]
        rows = [
            [m, *(f"{v[c]:.4f}" if isinstance(v.get(c), float) else "-" for c in columns)]
            for m, v in tonight.items()
        ]
        parts.append(_table(["method", *columns], rows))
    return _section("retrieval", "Retrieval: every model and baseline over the nights", *parts)


def _operations(
    nights: list[str],
    manifests: Mapping[str, Any],
    seconds: Mapping[str, Mapping[str, float]],
    settings: Settings,
) -> str:
    rows = {
        n: {t: s["rows"] for t, s in ((manifests.get(n) or {}).get("tables") or {}).items()} for n in nights
    }
    quarantine = quarantined(nights, settings)
    return "".join(
        [
            _section(
                "task-seconds",
                "Seconds per task and night",
                _figure(
                    "plot-task-seconds",
                    "seconds per task (stacked)",
                    report_plots.stacked_bars(nights, seconds, "seconds", "task seconds per night"),
                    "No task durations recorded (no Airflow record and no seconds in the manifests).",
                ),
            ),
            _section(
                "rows",
                "Rows per table over the nights",
                _figure(
                    "plot-rows",
                    "rows of each table's dt partition",
                    report_plots.rows_over_nights(nights, rows),
                    "No night recorded its tables yet.",
                ),
            ),
            _section(
                "quarantine",
                "Quarantined rows by reason",
                _figure(
                    "plot-quarantine",
                    "quarantined rows per night, by feed and reason",
                    report_plots.stacked_bars(nights, quarantine, "rows", "quarantined rows per night"),
                    "No row was quarantined on these nights.",
                ),
            ),
        ]
    )


def _candidates(date: str, settings: Settings) -> str:
    facts = candidate_facts(date, settings)
    if facts is None:
        why = f"No candidates were published for dt={date} (no model yet, or the gate held the night)."
        empty = [
            _figure("plot-scores", "scores", None, why),
            _figure("plot-list-lengths", "list lengths", None, why),
        ]
        return _section(
            "candidates", "Published candidates", *empty, '<p id="coverage" class="muted">coverage: -</p>'
        )
    scores = report_plots.histogram(facts["scores"], "score", "scores of the listed videos")
    lengths = report_plots.histogram(
        facts["lengths"], "videos in the list", "list length per user", integer=True
    )
    coverage = fresh = "-"
    listed, catalog, slots = facts["distinct_videos"], facts["catalog_videos"], facts["slots"]
    if catalog:
        coverage = f"{listed / catalog:.1%} ({listed:,} of {catalog:,} catalog videos in some list)"
    if facts["fresh_slots"] is not None and slots:
        fresh = f"{facts['fresh_slots'] / slots:.1%} of {slots:,} list slots"
        fresh += f" (catalog videos uploaded on dt={date}: {facts['fresh_videos']:,})"
    table = _table(
        ["fact", "value"],
        [
            ["users with a list", f"{facts['users']:,}"],
            ["catalog coverage", coverage],
            ["fresh uploads in the lists", fresh],
        ],
    )
    return _section(
        "candidates",
        f"Published candidates of dt={date}",
        '<div class="row">',
        _figure("plot-scores", "score distribution", scores, "No scores."),
        _figure("plot-list-lengths", "list-length distribution", lengths, "No lists."),
        "</div>",
        f'<div id="coverage">{table}</div>',
    )


def _validation(date: str, settings: Settings) -> str:
    report_dir = settings.run_dir(date)
    pages = validation_pages(date, settings)
    index = data_docs_index(settings)
    rows = []
    for r in read_reports(date, settings):
        page = pages.get(f"{r.suite}.{r.table}")
        verdict = "passed" if r.success else "FAILED"
        docs: Any = ("Data Docs page", _link(page, report_dir)) if page else "-"
        rows.append([r.suite, r.table, verdict, r.evaluated, len(r.failed), docs])
    if not rows:
        return _section("validation", "Validation", _note(f"No suite was run for dt={date}."))
    href = _e(_link(index, report_dir))
    head = f'<p>Every suite\'s results in GX\'s Data Docs: <a id="data-docs-link" href="{href}">{href}</a>'
    head += "" if index.exists() else " (not built yet)"
    table = _table(["suite", "table", "result", "expectations", "failed", "Data Docs"], rows, numeric_from=3)
    table = table.replace("<td>FAILED</td>", '<td class="bad">FAILED</td>').replace(
        "<td>passed</td>", '<td class="ok">passed</td>'
    )
    return _section("validation", "Validation (Great Expectations)", head + "</p>", table)


def _lineage(date: str, settings: Settings, manifest: Mapping[str, Any] | None) -> str:
    facts = (manifest or {}).get("tasks") or {}
    written = [
        [name, f"v{s['version']}", f"{s['rows']:,}"]
        for name, s in ((manifest or {}).get("tables") or {}).items()
    ]
    read: dict[tuple[str, str], Any] = {}
    for task, fact in facts.items():
        for table, version in ((fact or {}).get("inputs") or {}).items() if isinstance(fact, dict) else ():
            read[(task, str(table))] = version
    for r in read_reports(date, settings):
        for table, version in r.versions.items():
            read[(f"validate {r.suite}.{r.table}", table)] = version
    release_path = settings.run_dir(date) / "release.json"
    release = json.loads(release_path.read_text()) if release_path.exists() else {}
    services = sorted(
        {
            s
            for f in facts.values()
            if isinstance(f, dict)
            for s in ([f["feature_service"]] if f.get("feature_service") else [])
        }
        | {s for f in facts.values() if isinstance(f, dict) for s in (f.get("feature_services") or [])}
    )
    model = release.get("version") or night_metrics(date, settings).get("model_version")
    components = ", ".join(f"{k}={v}" for k, v in (release.get("components") or {}).items())
    parts = [
        _table(
            ["", ""],
            [
                ["model version", model or "- (no model this night)"],
                ["components", components or "-"],
                ["feature services", ", ".join(services) or "-"],
            ],
            numeric_from=9,
        ),
        "<h3>Delta versions written (after the night)</h3>",
        _table(["table", "version", "rows of dt=D"], written)
        if written
        else _note("No manifest: versions unknown."),
        "<h3>Delta versions read</h3>",
        _table(
            ["reader", "table", "version"],
            [[t, tb, "-" if v is None else f"v{v}"] for (t, tb), v in sorted(read.items())],
            numeric_from=2,
        )
        if read
        else _note("No task recorded the versions it read."),
    ]
    return _section("lineage", "Lineage", *parts)


def render(date: str, settings: Settings) -> str:
    """The HTML text of night ``date``'s report."""
    nights = nights_so_far(settings, until=date)
    if date not in nights:
        nights.append(date)
    manifests = {n: read_manifest(n, settings) for n in nights}
    metrics = {n: night_metrics(n, settings) for n in nights}
    seconds = {n: task_seconds(n, settings, manifests[n]) for n in nights}
    body = [
        _header(date, settings, manifests[date]),
        _retrieval(date, nights, metrics),
        _operations(nights, manifests, seconds, settings),
        _candidates(date, settings),
        _validation(date, settings),
        _lineage(date, settings, manifests[date]),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>reelrec dt={_e(date)}</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + f'<footer class="muted"><p>nights shown: {_e(nights[0])} to {_e(nights[-1])}</p></footer>'
        + "</body></html>\n"
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_index(settings: Settings) -> Path:
    """``runs/index.html``: every night, newest first, with its status and a link to its report."""
    rows = []
    for night in reversed(nights_so_far(settings)):
        report = settings.run_dir(night) / REPORT_FILE
        status = recorded_status(night, settings)
        model = night_metrics(night, settings).get("model_version") or "-"
        link = (
            f'<a href="dt={_e(night)}/{REPORT_FILE}">dt={_e(night)}</a>'
            if report.exists()
            else f"dt={_e(night)}"
        )
        rows.append(f"<li>{link} · {_e(status)} · model {_e(model)}</li>")
    docs = (
        f'<p><a href="{_link(data_docs_index(settings), settings.runs)}">Great Expectations Data Docs</a></p>'
    )
    text = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>reelrec nights</title>'
        f"<style>{CSS}</style></head><body><h1>reelrec nights</h1>{docs}"
        f'<ul id="nights">{"".join(rows)}</ul></body></html>\n'
    )
    path = settings.runs / INDEX_FILE
    _write(path, text)
    return path


def write_report(date: str, settings: Settings) -> Path:
    """Write ``runs/dt=D/report.html`` and rewrite ``runs/index.html``; return the report's path."""
    path = settings.run_dir(date) / REPORT_FILE
    _write(path, render(date, settings))
    write_index(settings)
    return path


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Entry point of the DAG's last task: write the report and the index, return where they are."""
    started = time.perf_counter()
    path = write_report(date, settings)
    return {
        "date": date,
        "report": str(path),
        "index": str(settings.runs / INDEX_FILE),
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 2),
    }


if __name__ == "__main__":
    from reelrec.jobs import run_job

    raise SystemExit(
        run_job(main, "Write night D's HTML report (runs/dt=D/report.html) and runs/index.html.")
    )
