"""Guards for the daily catalog snapshots: their landed columns (ingest) and their presence (feature jobs)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from reelrec import lake
from reelrec.catalog import DT, Table
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


# ---------------------------------------------------------------- the columns of a landed parquet drop
def _value_type(data_type: pa.DataType) -> pa.DataType:
    """A dictionary-encoded column is read as its values."""
    return data_type.value_type if pa.types.is_dictionary(data_type) else data_type


def _is_text(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    )


def _is_list(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
    )


def cast_refusal(actual: pa.DataType, expected: pa.DataType) -> str | None:
    """Why a landed column of type ``actual`` cannot be cast to the catalog's ``expected``; None if it can.

    The casting rules of a snapshot column (docs/data-contract.md, section 1.7):

    * text (``string``) accepts text only: a numeric id never joins the events' ``v.../u.../c...`` ids;
    * ``int64`` accepts any integer, a float (whole values only) and text (values that parse): per row,
      a value that does not cast is quarantined ``uncastable:<column>``;
    * a timestamp accepts a timestamp of unit s, ms or us (naive ones are read as UTC) and ISO-8601
      text, per row likewise; not a number (its unit is a guess) nor a nanosecond timestamp (Spark
      cannot read ``TIMESTAMP(NANOS)``);
    * a list accepts a list whose elements cast (``list<double>`` -> ``list<float>``).
    """
    actual, expected = _value_type(actual), _value_type(expected)
    if actual.equals(expected):
        return None
    if _is_text(expected):
        return None if _is_text(actual) else "a text column must hold text"
    if pa.types.is_integer(expected):
        numeric = pa.types.is_integer(actual) or pa.types.is_floating(actual)
        return None if numeric or _is_text(actual) else "an integer column takes integers, floats or text"
    if pa.types.is_timestamp(expected):
        if pa.types.is_timestamp(actual):
            return "Spark cannot read nanosecond timestamps; write unit 'us'" if actual.unit == "ns" else None
        return None if _is_text(actual) else "a timestamp column takes timestamps or ISO-8601 text"
    if _is_list(expected):
        if not _is_list(actual):
            return "a list column must hold lists"
        return cast_refusal(actual.value_type, expected.value_type)
    if pa.types.is_floating(expected):
        numeric = pa.types.is_integer(actual) or pa.types.is_floating(actual)
        return None if numeric else "a float takes numbers"
    return "no cast defined"


def check_drop_schema(feed: str, date: str, files: list[Path], table: Table, landing: Path) -> list[str]:
    """Refuse a parquet drop whose columns do not fit ``table``; return the extra columns it carries.

    Every file of the drop is checked from its footer (nothing is read): each must carry every
    column of the table (``dt`` aside) in a type :func:`cast_refusal` accepts, and all files the
    same types. A renamed column is a missing one (the message lists the extra columns next to it).
    Extra columns are ignored (the caller logs them).

    Raises:
        lake.SchemaContractError: (a DataError: the night fails at once) naming the feed, date,
            file, column, its type and the rule.
    """
    expected = {field.name: field.type for field in table.schema if field.name != DT}
    extra: list[str] = []
    first: tuple[Path, pa.Schema] | None = None
    for path in files:
        schema = pq.read_schema(path)
        where = f"landing drop {feed} for dt={date} (file {path.relative_to(landing).as_posix()})"
        found = {field.name: field.type for field in schema}
        missing = [name for name in expected if name not in found]
        unknown = [name for name in found if name not in expected]
        if missing:
            raise lake.SchemaContractError(
                f"{where}: missing column(s) {missing} of {table.layer}.{table.name}"
                f" (rule: every catalog column must be present, nulls allowed where the contract does);"
                f" extra column(s) {unknown} (a renamed column?)"
            )
        for name, data_type in expected.items():
            refusal = cast_refusal(found[name], data_type)
            if refusal:
                raise lake.SchemaContractError(
                    f"{where}: column {name!r} is {found[name]}, expected {data_type} ({refusal})"
                )
        if first is not None:
            other = {field.name: field.type for field in first[1]}
            differs = [name for name in expected if not other[name].equals(found[name])]
            if differs:
                raise lake.SchemaContractError(
                    f"{where}: column(s) {differs} typed differently than in "
                    f"{first[0].relative_to(landing).as_posix()} (rule: one schema per drop)"
                )
        first = first or (path, schema)
        extra += [name for name in unknown if name not in extra]
    return extra
