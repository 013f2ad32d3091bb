"""Nightly run summaries: rows per table, quarantined rows, validation results, task durations.

The terminal forms are here (:func:`format_night`, :func:`format_status`); so are the facts over
the nights that the HTML report (:mod:`reelrec.report_html`) plots: the nights so far, task
seconds, quarantined rows by reason, and the published lists of a night.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pyarrow.compute as pc

from reelrec import lake
from reelrec.catalog import (
    CANDIDATES,
    DEFAULT_LIST_KEY,
    DT,
    QUARANTINE,
    REASON,
    SCORES,
    SOURCE,
    UPLOAD_TS,
    USER_ID,
    VIDEO_ID,
    VIDEO_IDS,
    VIDEOS,
)
from reelrec.dates import day_bounds
from reelrec.runs import read_manifest, table_state
from reelrec.settings import Settings
from reelrec.validation import read_reports

log = logging.getLogger(__name__)


def quarantine_counts(date: str, settings: Settings) -> dict[str, dict[str, int]]:
    """Quarantined rows of ``date`` by landing feed and reason."""
    if not lake.exists(QUARANTINE, settings):
        return {}
    rows = lake.read(QUARANTINE, settings, dates=[date], columns=["source", "reason"]).to_pylist()
    counts: dict[str, Counter[str]] = {}
    for row in rows:
        # Reasons may carry details after a colon; group by the kind of violation.
        counts.setdefault(row["source"], Counter())[row["reason"].split(":")[0]] += 1
    return {source: dict(reasons) for source, reasons in sorted(counts.items())}


def validation_results(date: str, settings: Settings) -> list[dict[str, Any]]:
    """The Great Expectations reports written for ``date`` (one per suite and table)."""
    return [
        {
            "suite": report.suite,
            "table": report.table,
            "success": report.success,
            "evaluated": report.evaluated,
            "failed": len(report.failed),
        }
        for report in read_reports(date, settings)
    ]


def night_metrics(date: str, settings: Settings) -> dict[str, Any]:
    """The evaluation of night ``date`` (``runs/dt=D/metrics.json``), or ``{}`` when it was not evaluated."""
    path = settings.run_dir(date) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def night_gate(date: str, settings: Settings) -> dict[str, Any]:
    """Night ``date``'s promotion-gate decision (``runs/dt=D/gate.json``); ``{}`` when it did not run."""
    path = settings.run_dir(date) / "gate.json"
    return json.loads(path.read_text()) if path.exists() else {}


def night_summary(date: str, settings: Settings, tasks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything a data engineer checks after a night: tables, quarantine, validation, task times,
    model metrics."""
    manifest = read_manifest(date, settings)
    return {
        "date": date,
        "completed": manifest is not None,
        "metrics": night_metrics(date, settings),
        "gate": night_gate(date, settings),
        "tables": (manifest or {}).get("tables") or table_state(date, settings),
        "quarantined": quarantine_counts(date, settings),
        "validation": validation_results(date, settings),
        "tasks": [
            {
                "task_id": t["task_id"],
                "state": t["state"],
                "seconds": round(float(t["duration"]), 2) if t.get("duration") is not None else None,
            }
            for t in (tasks or [])
        ],
    }


def format_night(summary: dict[str, Any]) -> str:
    """Human-readable form of :func:`night_summary`."""
    lines = [f"== dt={summary['date']}  {'completed' if summary['completed'] else 'NOT completed'}"]
    lines.append("  rows (this date's partition)   delta version")
    for name, state in summary["tables"].items():
        lines.append(f"    {name:<28} {state['rows']:>9,}   v{state['version']}")
    quarantined = summary["quarantined"]
    total = sum(sum(reasons.values()) for reasons in quarantined.values())
    lines.append(f"  quarantined rows: {total:,}")
    for source, reasons in quarantined.items():
        detail = ", ".join(f"{reason}={count}" for reason, count in sorted(reasons.items()))
        lines.append(f"    {source:<10} {detail}")
    ok = sum(r["success"] for r in summary["validation"])
    lines.append(f"  validation: {ok}/{len(summary['validation'])} suites/tables passed")
    for result in summary["validation"]:
        if not result["success"]:
            lines.append(f"    FAILED {result['suite']}.{result['table']}: {result['failed']} expectation(s)")
    lines.extend(format_metrics(summary.get("metrics") or {}))
    gate = summary.get("gate") or {}
    if gate:
        verdict = "PUBLISH" if gate.get("publish") else "HOLD"
        lines.append(
            f"  promotion gate: {verdict}{' (forced)' if gate.get('forced') else ''}: {gate.get('reason')}"
        )
    if summary["tasks"]:
        lines.append("  task durations (Airflow task instances)")
        for task in summary["tasks"]:
            seconds = "-" if task["seconds"] is None else f"{task['seconds']:.1f}s"
            lines.append(f"    {task['task_id']:<22} {task['state'] or '-':<10} {seconds:>8}")
    return "\n".join(lines)


def format_task_totals(summaries: list[dict[str, Any]]) -> str:
    """Per task: mean, max and total seconds over several nights (the stage times of a backfill)."""
    seconds: dict[str, list[float]] = {}
    for summary in summaries:
        for task in summary["tasks"]:
            if task["seconds"] is not None:
                seconds.setdefault(task["task_id"], []).append(task["seconds"])
    lines = [f"task durations over {len(summaries)} night(s)    mean      max    total"]
    for task_id, values in seconds.items():
        lines.append(
            f"    {task_id:<22} {sum(values) / len(values):>8.1f}s {max(values):>7.1f}s {sum(values):>7.1f}s"
        )
    return "\n".join(lines)


def format_metrics(metrics: dict[str, Any], indent: str = "  ") -> list[str]:
    """Lines of a metrics table (one row per retrieval method), empty when there are no metrics."""
    retrieval = metrics.get("retrieval") or {}
    if not retrieval:
        return []
    columns = (
        "recall@10",
        "recall@50",
        "recall@100",
        "ndcg@10",
        "ndcg@100",
        "coverage@100",
        "fresh_recall@100",
        "creator_diversity@10",
    )
    lines = [
        f"{indent}retrieval on dt={metrics.get('date')} ({metrics.get('users')} users, "
        f"{metrics.get('catalog_videos')} videos; model {metrics.get('model_version')})",
        f"{indent}  {'method':<26}" + "".join(f"{c:>17}" for c in columns),
    ]
    for method, values in retrieval.items():
        cells = "".join(
            f"{values[c]:>17.4f}" if isinstance(values.get(c), float) else f"{'-':>17}" for c in columns
        )
        lines.append(f"{indent}  {method:<26}{cells}")
    serving = metrics.get("serving") or {}
    serving_final = (serving.get("retrieval") or {}).get("final")
    if serving_final:
        cells = "".join(
            f"{serving_final[c]:>17.4f}" if isinstance(serving_final.get(c), float) else f"{'-':>17}"
            for c in columns
        )
        lines.append(f"{indent}  {'serving final (' + str(serving.get('night')) + ')':<26}{cells}")
    heads = metrics.get("heads") or {}
    if heads:
        lines.append(
            f"{indent}ranker heads on dt={metrics.get('date')}'s impressions: "
            + ", ".join(f"{h} AUC {v.get('auc')} logloss {v.get('log_loss')}" for h, v in heads.items())
        )
    return lines


def status(settings: Settings, limit: int = 7) -> list[dict[str, Any]]:
    """Recent nightly runs, newest first: state, per-task seconds, row counts and metrics.

    Each run is ``{"date", "run_id", "state", "seconds", "tasks": {task_id: {"state", "seconds"}},
    "rows": {table: rows of dt=D}, "model_version", "metrics": {"retrieval": {model: {"recall@K",
    "ndcg@K", ...}}}}``, so ``metrics.retrieval.two_tower.recall@100`` is a JSON path.
    """
    from reelrec.airflow_local import dag_runs, task_instances

    runs = []
    for run in dag_runs(settings, limit=limit):
        date = str(run["date"])
        manifest = read_manifest(date, settings) or {}
        metrics = night_metrics(date, settings)
        tasks = task_instances(date, settings)
        runs.append(
            {
                "date": date,
                "run_id": run["run_id"],
                "state": run["state"],
                "seconds": _span(tasks),
                "tasks": {
                    t["task_id"]: {
                        "state": t["state"],
                        "seconds": round(float(t["duration"]), 2) if t.get("duration") is not None else None,
                    }
                    for t in tasks
                },
                "rows": {name: table["rows"] for name, table in (manifest.get("tables") or {}).items()},
                "model_version": metrics.get("model_version"),
                "night": manifest.get("status"),
                "gate": (manifest.get("tasks") or {}).get("gate"),
                "metrics": {
                    key: metrics[key]
                    for key in ("users", "catalog_videos", "fresh_videos", "cold_users", "retrieval", "heads")
                    if key in metrics
                },
            }
        )
    return runs


def _span(tasks: list[dict[str, Any]]) -> float | None:
    """Seconds from the first task's start to the last task's end (a manual run's own start_date is
    its logical date, so the DAG run's timestamps cannot be used)."""
    from datetime import datetime

    def instant(value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    starts = [instant(t["start_date"]) for t in tasks if t.get("start_date")]
    ends = [instant(t["end_date"]) for t in tasks if t.get("end_date")]
    if not starts or not ends:
        return None
    return round((max(e for e in ends if e) - min(s for s in starts if s)).total_seconds(), 1)


def format_status(runs: list[dict[str, Any]]) -> str:
    """Human-readable form of :func:`status`."""
    if not runs:
        return "no runs of reelrec_nightly yet; start one with `reelrec run --date YYYY-MM-DD`"
    lines = []
    for run in runs:
        seconds = "-" if run["seconds"] is None else f"{run['seconds']:.0f}s"
        night = f"  {run['night']}" if run.get("night") else ""
        lines.append(
            f"== dt={run['date']}  {run['state']}{night}  {seconds}  model {run['model_version'] or '-'}"
        )
        if run.get("gate"):
            lines.append(f"  gate: {run['gate'].get('reason')}")
        tasks = run["tasks"]
        if tasks:
            cells = []
            for task, info in tasks.items():
                state = "" if info["state"] == "success" else f"{info['state']} "
                took = "" if info["seconds"] is None else f"{info['seconds']:.0f}s"
                cells.append(f"{task}={state}{took}")
            lines.append("  tasks: " + ", ".join(cells))
        if run["rows"]:
            shown = ("bronze.events", "silver.user_features", "silver.video_content", "gold.candidates")
            lines.append("  rows: " + ", ".join(f"{t}={run['rows'][t]:,}" for t in shown if t in run["rows"]))
        if run["metrics"]:
            lines.extend(
                format_metrics({"date": run["date"], **run["metrics"], "model_version": run["model_version"]})
            )
    return "\n".join(lines)


# ------------------------------------------------ facts over the nights (the HTML report's plots)
def nights_so_far(settings: Settings, until: str | None = None) -> list[str]:
    """Nights with a run folder (``runs/dt=*``), oldest first, up to ``until`` (inclusive)."""
    if not settings.runs.exists():
        return []
    dates = sorted(p.name.removeprefix("dt=") for p in settings.runs.glob("dt=*") if p.is_dir())
    return [d for d in dates if until is None or d <= until]


def recorded_status(date: str, settings: Settings) -> str:
    """The manifest's status (published, held, data-only), or ``incomplete`` without a manifest."""
    manifest = read_manifest(date, settings)
    return str(manifest.get("status") or "recorded") if manifest else "incomplete"


def task_seconds(date: str, settings: Settings, manifest: Mapping[str, Any] | None) -> dict[str, float]:
    """Seconds of each task of night ``date``: Airflow's task instances, else the tasks' own facts."""
    try:
        from reelrec.airflow_local import task_instances

        instances = task_instances(date, settings)
    except Exception as err:  # a metadata database that cannot be read: fall back to the facts
        log.warning("task durations of dt=%s not read from Airflow: %s", date, err)
        instances = []
    seconds = {t["task_id"]: float(t["duration"]) for t in instances if t.get("duration") is not None}
    if seconds:
        return seconds
    facts = (manifest or {}).get("tasks") or {}
    return {
        task: float(fact["seconds"])
        for task, fact in facts.items()
        if isinstance(fact, dict) and isinstance(fact.get("seconds"), int | float)
    }


def quarantined(nights: list[str], settings: Settings) -> dict[str, dict[str, int]]:
    """Quarantined rows per night by ``feed: reason`` (reasons cut at their first colon)."""
    if not nights or not lake.exists(QUARANTINE, settings):
        return {}
    rows = lake.read(QUARANTINE, settings, dates=nights, columns=[DT, SOURCE, REASON]).to_pylist()
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        key = f"{row[SOURCE]}: {row[REASON].split(':')[0]}"
        night = counts.setdefault(row[DT], {})
        night[key] = night.get(key, 0) + 1
    return counts


def candidate_facts(date: str, settings: Settings) -> dict[str, Any] | None:
    """Scores, list lengths, catalog coverage and fresh share of D's published lists (``None``: none)."""
    if not lake.exists(CANDIDATES, settings):
        return None
    lists = lake.read(CANDIDATES, settings, dates=[date], columns=[USER_ID, VIDEO_IDS, SCORES])
    if lists.num_rows == 0:
        return None
    users = lists.filter(pc.not_equal(lists.column(USER_ID), DEFAULT_LIST_KEY))
    items = pc.list_flatten(lists.column(VIDEO_IDS))
    facts: dict[str, Any] = {
        "users": users.num_rows,
        "scores": pc.list_flatten(users.column(SCORES)).to_numpy(zero_copy_only=False),
        "lengths": pc.list_value_length(users.column(VIDEO_IDS)).to_numpy(zero_copy_only=False),
        "slots": len(items),
        "distinct_videos": len(pc.unique(items)),
        "catalog_videos": None,
        "fresh_slots": None,
    }
    if lake.exists(VIDEOS, settings):
        videos = lake.read(VIDEOS, settings, dates=[date], columns=[VIDEO_ID, UPLOAD_TS])
        start = day_bounds(date)[0]
        fresh = videos.filter(pc.greater_equal(videos.column(UPLOAD_TS), start)).column(VIDEO_ID)
        facts["catalog_videos"] = videos.num_rows
        facts["fresh_videos"] = len(fresh)
        facts["fresh_slots"] = int(pc.sum(pc.is_in(items, value_set=fresh)).as_py() or 0)
    return facts
