"""Housekeeping of the Delta lake: compact small files, vacuum what no kept version reads.

Which versions are kept. Per table, every Delta version from a *floor* on, up to the current one:

- **rebuild**: the floor is at most the version that the run manifest of each of the last ``nights``
  nights recorded for the table (``runs/dt=D/manifest.json``, :mod:`reelrec.runs`): time travel to
  the state any of those nights left behind keeps working;
- **rollback**: for the gold tables, at most the newest version that still holds the rows of each
  release a rollback may return to (:func:`reelrec.rollback.find_rows`, the version
  :func:`reelrec.rollback.rollback` itself reads);
- a table that no kept manifest names keeps every version (nothing is known to be unneeded).

Kept versions form one contiguous range: a rollback scans versions from the newest down to the one
holding its rows, and every version on the way must still read.

Vacuum is delta-rs' ``vacuum(retention_hours=0, enforce_retention_duration=False, full=True,
keep_versions=[floor..current])``: the age of a file is not what decides, the versions are. ``full``
also removes files no commit names (a writer killed between writing its files and committing them),
which is why housekeeping never runs alongside a night (:mod:`reelrec.housekeeping`). delta-rs lists
a file it already deleted again on the next vacuum (its tombstone stays in the log): only files that
still exist count, and the vacuum commits (``VACUUM START``/``END``) are made only when one does.

Compaction is delta-rs' ``optimize.compact()``, run only where a partition holds more than one file
(so a table with nothing to merge gets no commit). The files it replaces stay on disk while a kept
version still reads them: compaction speeds up reads at once and reclaims space once the floor
passes it. Log files are not touched: delta-rs expires them after ``delta.logRetentionDuration``
(30 days), so ``nights`` must stay below 30.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reelrec import lake, releases, rollback, runs
from reelrec.catalog import ALL_TABLES, GOLD_TABLES, Table
from reelrec.errors import DataError
from reelrec.settings import Settings


def table_key(table: Table) -> str:
    """``layer.name``, as run manifests and reports name a table."""
    return f"{table.layer}.{table.name}"


def kept_nights(settings: Settings, nights: int) -> list[str]:
    """The dates of the last ``nights`` run manifests (``runs/dt=D/manifest.json``), oldest first."""
    found = sorted(p.parent.name.removeprefix("dt=") for p in settings.runs.glob(f"dt=*/{runs.MANIFEST}"))
    return found[-nights:] if nights > 0 else []


def floors(settings: Settings, nights: list[str], kept: list[releases.Release]) -> dict[str, dict[str, Any]]:
    """Per existing table: the oldest Delta version to keep (``floor``) and why (``needed_by``).

    Args:
        settings: which lake and runs folder.
        nights: the nights that must stay rebuildable (their manifests' versions are kept).
        kept: the releases a rollback may return to (their gold rows' versions are kept).
    """
    out: dict[str, dict[str, Any]] = {}
    manifests = {date: runs.read_manifest(date, settings) or {} for date in nights}
    for table in ALL_TABLES:
        if not lake.exists(table, settings):
            continue
        key = table_key(table)
        needs: dict[str, int] = {}
        for date, manifest in manifests.items():
            recorded = (manifest.get("tables") or {}).get(key)
            if recorded and recorded.get("version") is not None:
                needs[f"night {date}"] = int(recorded["version"])
        if table in GOLD_TABLES:
            for release in kept:
                try:
                    found = rollback.find_rows(table, settings, release.version, release.night)
                except DataError:  # its rows were vacuumed before it entered the window: no rollback
                    found = None
                if found is not None:
                    needs[f"rollback {release.version}"] = found[0]
        current = int(lake.open_table(table, settings).version())
        if not needs:
            out[key] = {"floor": 0, "current": current, "needed_by": "no kept night names it: all kept"}
            continue
        floor = min(needs.values())
        out[key] = {
            "floor": floor,
            "current": current,
            "needed_by": sorted(name for name, version in needs.items() if version == floor),
        }
    return out


def parquet_rows(path: Path) -> int:
    """Rows of a parquet file from its footer; 0 for a file that is not readable parquet."""
    try:
        return int(pq.read_metadata(path).num_rows)
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return 0


def _file_facts(paths: list[Path]) -> tuple[int, int]:
    """Bytes and parquet rows of the files in ``paths`` that exist (a file that is no parquet: 0 rows)."""
    size = rows = 0
    for path in paths:
        if not path.is_file():
            continue
        size += path.stat().st_size
        rows += parquet_rows(path)
    return size, rows


def _compactable(table: Table, settings: Settings) -> int:
    """Files in partitions of ``table``'s current snapshot that hold more than one file."""
    actions = pa.table(lake.open_table(table, settings).get_add_actions(flatten=True)).to_pydict()
    partitions = Counter(
        tuple(str(actions[f"partition.{key}"][i]) for key in table.partition_by)
        for i in range(len(actions["path"]))
    )
    return sum(count for count in partitions.values() if count > 1)


def compact(table: Table, settings: Settings, dry_run: bool) -> dict[str, Any]:
    """Merge the small files of ``table``'s partitions (``optimize.compact``); no commit if none merge."""
    candidates = _compactable(table, settings)
    if not candidates or dry_run:
        return {"files_merged": candidates, "files_written": 0, "committed": False}
    metrics = lake.open_table(table, settings).optimize.compact()
    return {
        "files_merged": int(metrics["numFilesRemoved"]),
        "files_written": int(metrics["numFilesAdded"]),
        "committed": bool(metrics["numFilesAdded"] or metrics["numFilesRemoved"]),
    }


def vacuum(table: Table, settings: Settings, floor: int, dry_run: bool) -> dict[str, Any]:
    """Delete the files no Delta version from ``floor`` on reads; bytes and rows reclaimed."""
    dt = lake.open_table(table, settings)
    root = table.path(settings)
    keep = list(range(floor, int(dt.version()) + 1))
    options: dict[str, Any] = {
        "retention_hours": 0,
        "enforce_retention_duration": False,
        "full": True,
        "keep_versions": keep,
    }
    listed = [root / name for name in dt.vacuum(dry_run=True, **options)]
    present = [path for path in listed if path.is_file()]
    size, rows = _file_facts(present)
    if present and not dry_run:
        dt.vacuum(dry_run=False, **options)
    return {"files": len(present), "bytes": size, "rows": rows}


def housekeep_lake(
    settings: Settings, nights: list[str], kept: list[releases.Release], dry_run: bool
) -> dict[str, Any]:
    """Compact, then vacuum, every existing catalog table under the retention (see the module docstring).

    Returns:
        ``{"tables": {layer.name: {"floor", "current", "needed_by", "compact", "vacuum", "seconds"}},
        "bytes", "rows"}``; in a dry run, what would be merged and reclaimed (before compaction).
    """
    plan = floors(settings, nights, kept)
    tables: dict[str, dict[str, Any]] = {}
    for table in ALL_TABLES:
        key = table_key(table)
        if key not in plan:
            continue
        started = time.perf_counter()
        facts = dict(plan[key])
        facts["compact"] = compact(table, settings, dry_run)
        facts["vacuum"] = vacuum(table, settings, facts["floor"], dry_run)
        facts["seconds"] = round(time.perf_counter() - started, 3)
        tables[key] = facts
    return {
        "tables": tables,
        "bytes": sum(t["vacuum"]["bytes"] for t in tables.values()),
        "rows": sum(t["vacuum"]["rows"] for t in tables.values()),
    }
