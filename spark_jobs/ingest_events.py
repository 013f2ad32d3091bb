"""Land one day of app events: landing/events/dt=D/*.jsonl[.gz] -> bronze.events (dt=D).

Every line is parsed against the event contract (all fields read as strings, then typed here, so a
wrong type is a contract violation with a reason instead of a silent null). A line that breaks the
contract goes to ``bronze.quarantine`` (source ``events``) with its file, 1-based line number, the
raw line and the first rule it broke:

| reason | rule |
|---|---|
| ``malformed_json`` | the line is not one JSON object (blank lines included) |
| ``missing_field:<name>`` | a required field is absent, null or blank |
| ``unknown_event_type`` | ``event_type`` is not one of impression, view, like, share, follow, skip |
| ``unknown_surface`` | ``surface`` is not one of spotlight, discover, stories |
| ``invalid_position`` | ``position`` is not an integer in ``[0, 2**31)`` |
| ``invalid_watch_ms`` | ``watch_ms`` missing, not an integer, or negative on a view or skip |
| ``unparsable_event_ts`` | ``event_ts`` is not an ISO-8601 instant with a UTC offset |
| ``event_ts_outside_date`` | ``event_ts`` is not inside the UTC day D |

Valid rows are deduplicated by ``event_id`` (the earliest ``event_ts`` wins, then file and line) and
replace partition ``dt=D`` of ``bronze.events``; the quarantine partition ``(dt=D, source=events)``
is replaced too, so rerunning a date never duplicates rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reelrec import lake
from reelrec.catalog import (
    DT,
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    EVENT_TYPES,
    EVENTS,
    FILE,
    LINE,
    POSITION,
    REASON,
    RECORD,
    SURFACE,
    SURFACES,
    TIMED_EVENT_TYPES,
    USER_ID,
    VIDEO_ID,
    WATCH_MS,
)
from reelrec.dates import day_bounds
from reelrec.jobs import run_job
from reelrec.landing import drop_dir, drop_files
from reelrec.settings import Settings
from reelrec.spark import get_spark
from spark_jobs.quarantine import count_by_reason, load, transform_quarantine

FEED = EVENTS.name

REQUIRED_FIELDS = (EVENT_ID, EVENT_TYPE, USER_ID, VIDEO_ID, EVENT_TS, SURFACE, POSITION)
_CORRUPT = "_corrupt_record"
_MAX_INT32 = 2**31 - 1
# ISO-8601 instant with an explicit UTC offset, e.g. 2026-11-01T13:45:12.123Z or ...+00:00.
_ISO_INSTANT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"

# Every field is read as a string: JSON numbers come back as their text, so typing (and rejecting)
# happens in transform_parse with a reason rather than inside the JSON reader.
RAW_EVENT_SCHEMA = T.StructType(
    [
        T.StructField(name, T.StringType())
        for name in (EVENT_ID, EVENT_TYPE, USER_ID, VIDEO_ID, EVENT_TS, WATCH_MS, SURFACE, POSITION)
    ]
    + [T.StructField(_CORRUPT, T.StringType())]
)

LINES_SCHEMA = T.StructType(
    [
        T.StructField(FILE, T.StringType(), False),
        T.StructField(LINE, T.LongType(), False),
        T.StructField(RECORD, T.StringType()),
    ]
)


def extract(spark: SparkSession, settings: Settings, date: str) -> tuple[DataFrame, list[Path]]:
    """Read the day's event drop as raw lines.

    Returns:
        A frame ``(file, line, record)``: the file relative to the landing root (so quarantine rows
        stay meaningful when ``REELREC_HOME`` moves), the 1-based line number within that file and
        the raw line; and the data files read.

    Raises:
        reelrec.landing.IncompleteDropError: (a FileNotFoundError) naming the folder and date when
            the drop is missing, has no ``_SUCCESS`` marker or holds no data files.
    """
    files = drop_files(FEED, date, settings)
    folder = drop_dir(FEED, date, settings).relative_to(settings.landing).as_posix() + "/"
    raw = spark.read.text([str(path) for path in files]).select(
        F.concat(F.lit(folder), F.col("_metadata.file_name")).alias(FILE),
        F.col("_metadata.file_block_start").alias("_block_start"),
        # Increasing within a task; a task reads a split's lines in file order.
        F.monotonically_increasing_id().alias("_read_order"),
        F.col("value").alias(RECORD),
    )
    # Splits of one file end on line boundaries, so (split start, read order) is file order.
    in_file_order = Window.partitionBy(FILE).orderBy("_block_start", "_read_order")
    lines = raw.select(FILE, F.row_number().over(in_file_order).cast("long").alias(LINE), RECORD)
    return lines, files


def _blank(column: Column) -> Column:
    return column.isNull() | (F.trim(column) == "")


def transform_parse(lines: DataFrame, date: str) -> DataFrame:
    """Parse and check raw event lines against the contract; no row is dropped.

    Args:
        lines: ``(file, line, record)`` as returned by :func:`extract`.
        date: logical date ``D``; ``event_ts`` must fall inside it.

    Returns:
        One row per line: ``file, line, record``, the typed event columns (null where they do not
        parse) and ``reason``: null for a valid row, else the first contract rule it broke.
    """
    start, end = day_bounds(date)
    parsed = lines.withColumn(
        "_json",
        F.from_json(RECORD, RAW_EVENT_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}),
    )
    raw = {name: F.col(f"_json.{name}") for name in RAW_EVENT_SCHEMA.fieldNames()}
    position = F.trim(raw[POSITION]).try_cast("long")
    watch_ms = F.trim(raw[WATCH_MS]).try_cast("long")
    event_ts_text = F.trim(raw[EVENT_TS])
    event_ts = F.when(event_ts_text.rlike(_ISO_INSTANT), event_ts_text.try_cast("timestamp"))

    is_watch_event = raw[EVENT_TYPE].isin(*TIMED_EVENT_TYPES)  # the event types that carry watch_ms
    # The rules in the order they are reported: the first rule a line breaks is its reason.
    rules: list[tuple[str, Column]] = [
        ("malformed_json", F.col("_json").isNull() | raw[_CORRUPT].isNotNull()),
        *[(f"missing_field:{name}", _blank(raw[name])) for name in REQUIRED_FIELDS],
        ("unknown_event_type", ~raw[EVENT_TYPE].isin(*EVENT_TYPES)),
        ("unknown_surface", ~raw[SURFACE].isin(*SURFACES)),
        ("invalid_position", position.isNull() | (position < 0) | (position > _MAX_INT32)),
        ("invalid_watch_ms", is_watch_event & (watch_ms.isNull() | (watch_ms < 0))),
        ("unparsable_event_ts", event_ts.isNull()),
        ("event_ts_outside_date", (event_ts < F.lit(start)) | (event_ts >= F.lit(end))),
    ]
    reason = F.coalesce(*[F.when(broken, F.lit(name)) for name, broken in rules])
    return parsed.select(
        FILE,
        LINE,
        RECORD,
        raw[EVENT_ID].alias(EVENT_ID),
        raw[EVENT_TYPE].alias(EVENT_TYPE),
        raw[USER_ID].alias(USER_ID),
        raw[VIDEO_ID].alias(VIDEO_ID),
        event_ts.alias(EVENT_TS),
        # Kept only where it is an integer; a non-watch event's stray text does not reach bronze.
        watch_ms.alias(WATCH_MS),
        raw[SURFACE].alias(SURFACE),
        F.when(position.between(0, _MAX_INT32), position).cast("int").alias(POSITION),
        reason.alias(REASON),
    )


def transform_events(checked: DataFrame, date: str) -> DataFrame:
    """Valid rows, one per ``event_id`` (the earliest ``event_ts`` wins), in the bronze.events schema."""
    first_by_event_ts = Window.partitionBy(EVENT_ID).orderBy(EVENT_TS, FILE, LINE)
    return (
        checked.where(F.col(REASON).isNull())
        .withColumn("_copy", F.row_number().over(first_by_event_ts))
        .where(F.col("_copy") == 1)
        .select(
            F.col(EVENT_ID),
            F.col(EVENT_TYPE),
            F.col(USER_ID),
            F.col(VIDEO_ID),
            F.col(EVENT_TS),
            F.col(WATCH_MS).cast("long"),
            F.col(SURFACE),
            F.col(POSITION).cast("int"),
            F.lit(date).alias(DT),
        )
    )


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Ingest the events drop of ``date`` and return the run's facts.

    Returns:
        ``rows_in`` (lines read), ``rows_written``, ``duplicates_dropped``, ``quarantined`` (total),
        ``quarantined_by_reason``, ``files`` (landed files read) and ``versions`` (Delta versions
        written).
    """
    spark = get_spark(settings, app_name=f"ingest_events {date}")
    lines, files = extract(spark, settings, date)
    checked = transform_parse(lines, date).persist()
    try:
        by_reason = count_by_reason(checked)
        versions = load(
            transform_events(checked, date),
            EVENTS,
            transform_quarantine(checked, FEED, date),
            FEED,
            settings,
            date,
        )
    finally:
        checked.unpersist()
    valid = by_reason.pop("valid", 0)
    rows_written = lake.partition_row_count(EVENTS, settings, date)
    return {
        "date": date,
        "files": [path.relative_to(settings.landing).as_posix() for path in files],
        "rows_in": valid + sum(by_reason.values()),
        "rows_written": rows_written,
        "duplicates_dropped": valid - rows_written,
        "quarantined": sum(by_reason.values()),
        "quarantined_by_reason": dict(sorted(by_reason.items())),
        "versions": versions,
    }


if __name__ == "__main__":
    raise SystemExit(run_job(main, __doc__ or ""))
