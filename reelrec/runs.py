"""Run bookkeeping: which date a run processes, and the run manifest it leaves behind.

The manifest (``runs/dt=D/manifest.json``) records the Delta version and D's row count of every
table after the run, the facts each task returned (rows written, rows quarantined, validation
results, materialization) so that any night can be inspected and rebuilt exactly (Delta time
travel to the recorded versions).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reelrec import lake
from reelrec.catalog import ALL_TABLES
from reelrec.dates import iso_date
from reelrec.settings import Settings

MANIFEST = "manifest.json"


def resolve_run_date(params: dict[str, Any] | None, logical_date: datetime | None) -> str:
    """The logical date D a DAG run processes, as ``YYYY-MM-DD``.

    A ``date`` param (manual runs) wins; otherwise the run's logical date in UTC. The nightly DAG
    uses a data-interval cron timetable, so a scheduled run's logical date is the day it covers.

    Raises:
        ValueError: when neither is set (a manual run without a logical date or ``date`` param),
            or the param is not ``YYYY-MM-DD``.
    """
    override = (params or {}).get("date")
    if override:
        try:
            return iso_date(override)
        except ValueError as err:
            raise ValueError(f"param 'date': {err}") from None
    if logical_date is None:
        raise ValueError(
            "this run has no logical date; trigger it with a logical date or the 'date' param (YYYY-MM-DD)"
        )
    if logical_date.tzinfo is None:  # naive datetimes are UTC throughout reelrec
        logical_date = logical_date.replace(tzinfo=UTC)
    return logical_date.astimezone(UTC).strftime("%Y-%m-%d")


def table_state(date: str, settings: Settings) -> dict[str, dict[str, Any]]:
    """Delta version and ``dt=date`` row count of every catalog table (absent tables are skipped)."""
    state: dict[str, dict[str, Any]] = {}
    for table in ALL_TABLES:
        if not lake.exists(table, settings):
            continue
        state[f"{table.layer}.{table.name}"] = {
            "version": lake.version(table, settings),
            "rows": lake.partition_row_count(table, settings, date),
        }
    return state


def night_status(facts: dict[str, Any]) -> str:
    """``published`` (tonight's release serves), ``held`` (the promotion gate kept the serving one,
    ``forced`` noted), ``data-only`` (no model night: the first nights) from the tasks' facts."""
    decision = facts.get("gate") or {}
    if decision and not decision.get("publish"):
        return "held"
    if facts.get("publish"):
        return "published (forced)" if decision.get("forced") else "published"
    return "data-only"


def record_manifest(date: str, facts: dict[str, Any], settings: Settings) -> Path:
    """Write ``runs/dt=D/manifest.json`` with table versions, row counts and task facts."""
    path = settings.run_dir(date) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "date": date,
        "status": night_status(facts),
        "tables": table_state(date, settings),
        "tasks": facts,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    tmp.replace(path)
    return path


def read_manifest(date: str, settings: Settings) -> dict[str, Any] | None:
    """The manifest of ``date``'s run, or ``None`` if that date never completed a run."""
    path = settings.run_dir(date) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None
