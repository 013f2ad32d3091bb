"""Guards for the daily catalog snapshots the feature jobs join against."""

from __future__ import annotations

from reelrec import lake
from reelrec.catalog import Table
from reelrec.errors import DataError
from reelrec.settings import Settings


class MissingSnapshotError(DataError, FileNotFoundError):
    """A feature job's input snapshot for its date is absent or empty (rerunning will not help)."""


def require_snapshot(table: Table, settings: Settings, date: str) -> int:
    """Return the row count of ``table``'s snapshot for ``date``, refusing an absent or empty one.

    A feature job run before ``ingest_catalogs`` for the same date would otherwise silently compute
    features against no catalog at all.

    Raises:
        MissingSnapshotError: (a FileNotFoundError) naming the table, date and the job to run first.
    """
    rows = lake.partition_row_count(table, settings, date)
    if rows == 0:
        raise MissingSnapshotError(
            f"{table.layer}.{table.name} has no snapshot rows for dt={date} (at {table.path(settings)}); "
            f"run `python -m spark_jobs.ingest_catalogs --date {date}` first"
        )
    return rows
