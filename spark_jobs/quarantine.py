"""What both ingest jobs share: checked rows carry a ``reason`` (null when valid); the valid ones
replace the feed's bronze partition and the rest replace the feed's quarantine partition.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from reelrec.catalog import DT, FILE, LINE, QUARANTINE, REASON, RECORD, SOURCE, Table
from reelrec.settings import Settings
from reelrec.spark import write_delta


def transform_quarantine(checked: DataFrame, source: str, date: str) -> DataFrame:
    """Rows of a checked drop that broke the contract, in the bronze.quarantine schema.

    A checked frame carries the quarantine columns under their catalog names: ``file``, ``line``
    (where the row came from), ``record`` (the raw row) and ``reason`` (the rule it broke, or null).
    """
    return checked.where(F.col(REASON).isNotNull()).select(
        F.lit(source).alias(SOURCE),
        F.col(FILE),
        F.col(LINE).cast("long").alias(LINE),
        F.col(REASON),
        F.col(RECORD),
        F.lit(date).alias(DT),
    )


def count_by_reason(checked: DataFrame) -> dict[str, int]:
    """Rows per quarantine reason of a checked drop; valid rows are counted under ``"valid"``."""
    return {(row[REASON] or "valid"): int(row["count"]) for row in checked.groupBy(REASON).count().collect()}


def load(
    accepted: DataFrame, table: Table, quarantine: DataFrame, source: str, settings: Settings, date: str
) -> dict[str, int]:
    """Replace ``dt=date`` of ``table`` and ``(dt=date, source)`` of bronze.quarantine.

    Returns:
        The Delta version of each table after its commit.
    """
    return {
        table.name: write_delta(accepted, table, settings, date),
        QUARANTINE.name: write_delta(
            quarantine, QUARANTINE, settings, date, extra_partition={"source": source}
        ),
    }
