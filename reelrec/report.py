"""Nightly run summaries: rows per table, quarantined rows, validation results, task durations."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from reelrec import lake
from reelrec.catalog import QUARANTINE
from reelrec.runs import read_manifest, table_state
from reelrec.settings import Settings


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
    folder = settings.run_dir(date) / "validation"
    results = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        report = json.loads(path.read_text())
        results.append(
            {
                "suite": report.get("suite"),
                "table": report.get("table"),
                "success": bool(report.get("success")),
                "evaluated": report.get("evaluated"),
                "failed": len(report.get("failed") or []),
            }
        )
    return results


def night_summary(date: str, settings: Settings, tasks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything a data engineer checks after a night: tables, quarantine, validation, task times."""
    manifest = read_manifest(date, settings)
    return {
        "date": date,
        "completed": manifest is not None,
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
