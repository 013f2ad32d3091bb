"""Delta Lake I/O through delta-rs (the ``deltalake`` package).

The JVM Delta jars are not used: Spark reads a table's *current snapshot* through the file list
that the Delta log names (:func:`snapshot_files`), and every write goes through delta-rs here, so a
write is one atomic Delta commit. A plain parquet read of a table folder would also return files
that the log has removed, which is why nothing reads table folders directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from reelrec import faults
from reelrec.catalog import DT, Table
from reelrec.errors import DataError
from reelrec.settings import Settings

log = logging.getLogger(__name__)


class SchemaContractError(DataError, ValueError):
    """Rows handed to a table do not fit the table's catalog schema."""


def conform(table: Table, data: pa.Table) -> pa.Table:
    """Select and cast ``data`` into ``table``'s catalog schema.

    Raises:
        SchemaContractError: naming the table and the missing, null or uncastable field.
    """
    missing = [name for name in table.columns if name not in data.column_names]
    if missing:
        raise SchemaContractError(
            f"table {table.layer}.{table.name}: missing column(s) {missing}; got {data.column_names}"
        )
    columns = []
    for field in table.schema:
        column = data.column(field.name)
        if not field.nullable and column.null_count:
            raise SchemaContractError(
                f"table {table.layer}.{table.name}: column {field.name!r} is non-nullable "
                f"but has {column.null_count} null value(s)"
            )
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise SchemaContractError(
                f"table {table.layer}.{table.name}: column {field.name!r} of type {column.type} "
                f"does not cast to {field.type}: {err}"
            ) from err
    return pa.Table.from_arrays(columns, schema=table.schema)


def _predicate(partition: dict[str, str]) -> str:
    return " AND ".join(f"{key} = '{value}'" for key, value in partition.items())


def _holds_no_rows(path: str, partition: dict[str, str]) -> bool:
    """Whether the Delta table at ``path`` exists and holds no row in ``partition``."""
    try:
        dataset = DeltaTable(path).to_pyarrow_dataset()
    except TableNotFoundError:
        return False  # the first write creates the table, empty or not
    flt = None
    for key, value in partition.items():
        flt = pc.field(key) == value if flt is None else flt & (pc.field(key) == value)
    return dataset.count_rows(filter=flt) == 0


def write_partition(
    table: Table,
    settings: Settings,
    data: pa.Table,
    date: str,
    extra_partition: dict[str, str] | None = None,
) -> int:
    """Replace one date's partition of ``table`` with ``data`` in a single Delta commit.

    Rerunning a date therefore replaces that date's rows and never duplicates them. Every row must
    belong to the partition being replaced. Empty ``data`` over a partition that holds no rows
    changes nothing and makes no commit (an empty Delta commit a night is history to keep for nothing).

    Args:
        table: catalog entry of the target table.
        settings: where the lake lives.
        data: rows for ``date`` (extra columns are dropped, types cast to the catalog schema).
        date: logical date ``YYYY-MM-DD``; the ``dt`` partition that is replaced.
        extra_partition: further partition values pinned by the write (e.g. ``{"source": "events"}``).

    Returns:
        The table's Delta version after the commit.
    """
    partition = {DT: date, **(extra_partition or {})}
    rows = conform(table, data)
    for key, value in partition.items():
        if rows.num_rows and not pc.all(pc.equal(rows.column(key), value)).as_py():
            wrong = pc.unique(pc.filter(rows.column(key), pc.not_equal(rows.column(key), value)))
            raise SchemaContractError(
                f"table {table.layer}.{table.name}: writing partition {key}={value} "
                f"but rows carry {key} in {wrong.to_pylist()[:5]}"
            )
    path = table.path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows.num_rows and _holds_no_rows(str(path), partition):
        # Nothing over nothing: no commit (bronze.quarantine gained one per feed a night without it).
        return DeltaTable(str(path)).version()
    # Crash points (tests/test_crash_points.py): the table as it was, then the new commit in place.
    faults.point("lake.commit", settings, table=table.name, date=date, phase="before")
    write_deltalake(
        str(path),
        rows,
        mode="overwrite",
        partition_by=list(table.partition_by),
        predicate=_predicate(partition),
    )
    version = DeltaTable(str(path)).version()
    faults.point("lake.commit", settings, table=table.name, date=date, phase="after")
    log.info(
        "wrote %d rows to %s.%s partition %s (version %d)",
        rows.num_rows,
        table.layer,
        table.name,
        partition,
        version,
    )
    return version


def exists(table: Table, settings: Settings) -> bool:
    """Whether ``table`` has at least one Delta commit."""
    try:
        DeltaTable(table.uri(settings))
    except TableNotFoundError:
        return False
    return True


def open_table(table: Table, settings: Settings, version: int | None = None) -> DeltaTable:
    """Open ``table`` (optionally as of an older ``version``: time travel).

    Raises:
        FileNotFoundError: naming the table and path when it was never written.
    """
    try:
        return DeltaTable(table.uri(settings), version=version)
    except TableNotFoundError:
        raise FileNotFoundError(
            f"Delta table {table.layer}.{table.name} does not exist at {table.path(settings)}; "
            "run the job that writes it first"
        ) from None


def version(table: Table, settings: Settings) -> int | None:
    """Current Delta version of ``table``, or ``None`` if it was never written."""
    return open_table(table, settings).version() if exists(table, settings) else None


def _date_filters(dates: Iterable[str] | None) -> list[tuple[str, str, Any]] | None:
    if dates is None:
        return None
    return [(DT, "in", sorted(set(dates)))]


def snapshot_files(table: Table, settings: Settings, dates: Iterable[str] | None = None) -> list[str]:
    """Data files of the current snapshot, optionally only the ``dt`` partitions in ``dates``.

    This is how Spark reads Delta without the Delta jars: ``spark.read.parquet(*files)``. Note that
    the partition column ``dt`` is not inside the files (see :func:`reelrec.spark.read_delta`).
    """
    dt = open_table(table, settings)
    return list(dt.file_uris(partition_filters=_date_filters(dates)))


def read(
    table: Table,
    settings: Settings,
    dates: Iterable[str] | None = None,
    columns: Sequence[str] | None = None,
    version: int | None = None,
) -> pa.Table:
    """Read ``table`` (or some ``dt`` partitions of it) into Arrow, in catalog schema order."""
    dataset = open_table(table, settings, version=version).to_pyarrow_dataset()
    flt = None
    if dates is not None:
        flt = pc.field(DT).isin(sorted(set(dates)))
    return dataset.to_table(columns=list(columns) if columns else table.columns, filter=flt)


def partition_dates(table: Table, settings: Settings) -> set[str]:
    """The ``dt`` values of ``table``'s current partitions, read from the Delta log (empty if absent)."""
    if not exists(table, settings):
        return set()
    return {partition[DT] for partition in open_table(table, settings).partitions()}


def partition_row_count(table: Table, settings: Settings, date: str) -> int:
    """Number of rows in one ``dt`` partition (0 when the table or partition is absent)."""
    if not exists(table, settings):
        return 0
    dataset = open_table(table, settings).to_pyarrow_dataset()
    return dataset.count_rows(filter=pc.field(DT) == date)
