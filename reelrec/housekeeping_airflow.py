"""Housekeeping of the Airflow stack: metadata rows (Airflow's ``db clean``) and task log files.

- Metadata: ``airflow db clean --clean-before-timestamp <now - days> --skip-archive --yes`` in the
  stack's environment (:func:`reelrec.airflow_local.airflow_env`): Airflow's own purge of DAG runs,
  task instances, XComs, logs, jobs... older than the cutoff (it keeps the latest run of each DAG).
  ``--skip-archive``: without it the rows move to ``_airflow_deleted__*`` tables and nothing is
  reclaimed. Rows reclaimed per table are the counts ``db clean`` prints (the rows it found past
  the cutoff, deleted unless a dry run). A home without a metadata database is skipped.
- Task logs: files under ``$REELREC_HOME/airflow/logs`` last modified before the cutoff are
  deleted, then the folders left empty.

The cutoff is wall-clock time: this is about how long operators keep Airflow's own records, not
about a logical date.
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reelrec.settings import Settings

DB_CLEAN_TIMEOUT_S = 600
# What `airflow db clean` prints per table, dry run or not ("Checking table log\nFound 3 rows meeting ...").
_FOUND = re.compile(r"Checking table (\S+)\s+Found (\d+) rows meeting deletion criteria")


def clean_metadata(settings: Settings, cutoff: datetime, dry_run: bool) -> dict[str, Any]:
    """``airflow db clean`` before ``cutoff``; rows per table it removed (in a dry run: none)."""
    from reelrec.airflow_local import _db_missing, airflow_bin, airflow_env

    if _db_missing(settings):
        return {"skipped": "no Airflow metadata database in this home", "rows": {}}
    command = [
        airflow_bin(),
        "db",
        "clean",
        "--clean-before-timestamp",
        cutoff.isoformat(),
        "--skip-archive",
        "--error-on-cleanup-failure",
        "--yes",
        *(["--dry-run"] if dry_run else []),
    ]
    proc = subprocess.run(
        command,
        env={**os.environ, **airflow_env(settings)},
        capture_output=True,
        text=True,
        timeout=DB_CLEAN_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(command)}` failed with exit status {proc.returncode}: {proc.stderr[-2000:]}"
        )
    found = {table: int(rows) for table, rows in _FOUND.findall(proc.stdout + "\n" + proc.stderr)}
    return {"rows": {table: rows for table, rows in sorted(found.items()) if rows}}


def clean_logs(folder: Path, cutoff: datetime, dry_run: bool) -> dict[str, int]:
    """Delete the files under ``folder`` modified before ``cutoff``, then empty folders; files and bytes."""
    if not folder.is_dir():
        return {"files": 0, "bytes": 0}
    limit = cutoff.timestamp()
    old = [p for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime < limit]
    size = sum(p.stat().st_size for p in old)
    if not dry_run:
        for path in old:
            path.unlink()
        for sub in sorted(
            (p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            if not any(sub.iterdir()):
                sub.rmdir()
    return {"files": len(old), "bytes": size}


def clean_airflow(
    settings: Settings, days: int, dry_run: bool, now: datetime | None = None
) -> dict[str, Any]:
    """Metadata rows and task logs older than ``days`` (see the module docstring)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    logs = clean_logs(settings.airflow_home / "logs", cutoff, dry_run)
    return {
        "cutoff": cutoff.isoformat(),
        "metadata": clean_metadata(settings, cutoff, dry_run),
        "logs": logs,
        "bytes": logs["bytes"],
    }
