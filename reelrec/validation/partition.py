"""The partition a suite validates: why it is absent, or its rows pinned to one Delta version.

Reports record the version each table was read at (see :mod:`reelrec.validation.report`), so rows
are read from an explicit snapshot rather than "whatever is current when the read happens".
"""

from __future__ import annotations

import pyarrow as pa

from reelrec import lake
from reelrec.catalog import Table
from reelrec.settings import Settings


def absence(table: Table, settings: Settings, date: str) -> str | None:
    """Why ``table`` has no rows for ``date`` (``None``: it has some)."""
    if not lake.exists(table, settings):
        return f"Delta table does not exist at {table.path(settings)}"
    if lake.partition_row_count(table, settings, date) == 0:
        return f"partition dt={date} is missing or empty in {table.path(settings)}"
    return None


def read_partition(table: Table, settings: Settings, date: str) -> tuple[pa.Table, int]:
    """The ``dt=date`` rows and the Delta version they were read at.

    The rows have the columns the table really has, not the catalog's: the column check compares
    the two.
    """
    snapshot = lake.open_table(table, settings)
    version = snapshot.version()
    actual_columns = snapshot.to_pyarrow_dataset().schema.names
    rows = lake.read(table, settings, dates=[date], columns=actual_columns, version=version)
    return rows, version
