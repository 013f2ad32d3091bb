"""Land one day of app events: landing/events/dt=D/*.jsonl[.gz] -> bronze.events (dt=D).

The drop is checked as files first (:func:`reelrec.landing.check_event_file`): a file that is not
``.jsonl`` or ``.jsonl.gz``, a ``.gz`` that is not gzip, a corrupt or truncated gzip member, or a
drop holding no bytes at all fails the job at once with a :class:`reelrec.errors.DataError` naming
the file (and the byte offset and line reached), which the nightly DAG does not retry.

Every line is then parsed against the event contract (all fields read as strings, then typed here,
so a wrong type is a contract violation with a reason instead of a silent null). A line that breaks
the contract goes to ``bronze.quarantine`` (source ``events``) with its file, 1-based line number,
the raw line and the first rule it broke:

| reason | rule |
|---|---|
| ``invalid_utf8`` | the line is not valid UTF-8; its ``record`` holds the line's bytes in base64 |
| ``not_an_object`` | the line is valid JSON but not an object (an array, number, string, bool, null) |
| ``malformed_json`` | the line is not JSON (truncated write, error page, garbage, blank line) |
| ``missing_field:<name>`` | a required field is absent, null or blank |
| ``unknown_event_type`` | ``event_type`` is not one of impression, view, like, share, follow, skip |
| ``unknown_surface`` | ``surface`` is not one of spotlight, discover, stories |
| ``invalid_position`` | ``position`` is not an integer in ``[0, 2**31)`` |
| ``invalid_watch_ms`` | ``watch_ms`` missing, not an integer, or negative on a view or skip |
| ``unparsable_event_ts`` | ``event_ts`` is not an ISO-8601 instant with a 4-digit year and a UTC offset |
| ``event_ts_outside_date`` | ``event_ts`` is not inside the UTC day D (the far future included) |
| ``unknown_user`` | ``user_id`` is not in the users snapshot of D |
| ``unknown_video`` | ``video_id`` is not in the videos snapshot of D |
| ``event_before_signup`` | ``event_ts`` is before the user's ``signup_ts`` |
| ``event_before_upload`` | ``event_ts`` is before the video's ``upload_ts`` |
| ``conflicting_duplicate`` | a valid line repeats a kept ``event_id`` with different content |

The references are checked against D's landed ``users`` and ``videos`` snapshots (every row with
a non-blank id, the earliest ``signup_ts``/``upload_ts`` of an id), read here from the landing zone
so this job needs no ordering after ``ingest_catalogs``.

Valid rows are deduplicated by ``event_id``: the earliest ``event_ts`` wins, then file and line.
A later copy with the same content (all typed fields equal: a client retry) is dropped and
counted in ``duplicates_dropped``; one with different content is quarantined as
``conflicting_duplicate``. So every landed line is counted once:
``rows_in == rows_written + quarantined + duplicates_dropped``. The result replaces partition
``dt=D`` of ``bronze.events``; the quarantine partition ``(dt=D, source=events)`` is replaced too,
so rerunning a date never duplicates rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
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
    SIGNUP_TS,
    SURFACE,
    SURFACES,
    TIMED_EVENT_TYPES,
    UPLOAD_TS,
    USER_ID,
    USERS,
    VIDEO_ID,
    VIDEOS,
    WATCH_MS,
    Table,
)
from reelrec.dates import day_bounds
from reelrec.errors import DataError
from reelrec.jobs import run_job
from reelrec.landing import EmptyDropError, check_event_file, drop_dir, drop_files
from reelrec.settings import Settings
from reelrec.spark import get_spark
from spark_jobs.quarantine import count_by_reason, load, transform_quarantine
from spark_jobs.snapshots import cast_refusal

FEED = EVENTS.name

REQUIRED_FIELDS = (EVENT_ID, EVENT_TYPE, USER_ID, VIDEO_ID, EVENT_TS, SURFACE, POSITION)
# What two lines of one event_id must agree on to be copies of one event (a retry) and not a conflict.
CONTENT_FIELDS = (EVENT_TYPE, USER_ID, VIDEO_ID, EVENT_TS, WATCH_MS, SURFACE, POSITION)
CONFLICTING_DUPLICATE = "conflicting_duplicate"
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
        reelrec.landing.CorruptDropFileError: naming the file (and the byte and line reached) when
            a file has a suffix other than ``.jsonl``/``.jsonl.gz`` or is not whole gzip.
        reelrec.landing.EmptyDropError: naming the folder when its data files hold no bytes.
    """
    files = drop_files(FEED, date, settings)
    if sum(check_event_file(path) for path in files) == 0:
        raise EmptyDropError(
            f"landing drop {FEED} for dt={date}: its {len(files)} data file(s) in "
            f"{drop_dir(FEED, date, settings)} hold no lines ({', '.join(p.name for p in files)}); "
            "a day without a single event is an upstream fault: re-deliver the drop"
        )
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


def extract_snapshots(spark: SparkSession, settings: Settings, date: str) -> tuple[DataFrame, DataFrame]:
    """D's landed user and video snapshots as the references events are checked against.

    Returns:
        ``(user_id, signup_ts)`` and ``(video_id, upload_ts)``: one row per non-blank id of the
        drop, with the earliest instant any of its rows gives (null where none does).

    Raises:
        reelrec.landing.IncompleteDropError: when the users or videos drop of D is not complete.
        DataError: naming the file and column when a snapshot file lacks the id or instant column
            or holds it with another type (``ingest_catalogs`` fails on the same file).
    """
    return (
        _snapshot(spark, settings, date, USERS, USER_ID, SIGNUP_TS),
        _snapshot(spark, settings, date, VIDEOS, VIDEO_ID, UPLOAD_TS),
    )


def _snapshot(
    spark: SparkSession, settings: Settings, date: str, table: Table, key: str, since: str
) -> DataFrame:
    files = drop_files(table.name, date, settings)
    for path in files:
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"landing file {path}: not a readable parquet file ({err})") from None
        for name in (key, since):
            found = schema.field(name).type if name in schema.names else None
            # ingest_catalogs' casting rules: an id or instant it would land is accepted here too.
            expected = table.schema.field(name).type
            refusal = "every snapshot file carries it" if found is None else cast_refusal(found, expected)
            if refusal:
                raise DataError(
                    f"landing file {path}: column {name!r} is {found or 'absent'} ({refusal}); the events "
                    f"of dt={date} are checked against the {table.name} snapshot's {key!r} and {since!r}"
                )
    rows = spark.read.parquet(*[str(path) for path in files]).select(
        F.col(key).cast("string").alias(key), F.col(since).try_cast("timestamp").alias(since)
    )
    return rows.where(~_blank(F.col(key))).groupBy(key).agg(F.min(since).alias(since))


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
    utf8 = F.is_valid_utf8(RECORD)
    not_one_object = F.col("_json").isNull() | raw[_CORRUPT].isNotNull()
    # Only for lines that did not parse as one object: JSON of another kind (array, scalar, null),
    # or null when the line is not JSON at all.
    json_kind = F.when(not_one_object, F.schema_of_variant(F.try_parse_json(RECORD)))
    position = F.trim(raw[POSITION]).try_cast("long")
    watch_ms = F.trim(raw[WATCH_MS]).try_cast("long")
    event_ts_text = F.trim(raw[EVENT_TS])
    event_ts = F.when(event_ts_text.rlike(_ISO_INSTANT), event_ts_text.try_cast("timestamp"))

    is_watch_event = raw[EVENT_TYPE].isin(*TIMED_EVENT_TYPES)  # the event types that carry watch_ms
    # The rules in the order they are reported: the first rule a line breaks is its reason.
    rules: list[tuple[str, Column]] = [
        ("invalid_utf8", ~utf8),
        ("not_an_object", json_kind.isNotNull() & ~json_kind.startswith("OBJECT")),
        ("malformed_json", not_one_object),
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
        # Stored as valid UTF-8 whatever landed, so bronze.quarantine stays readable everywhere.
        F.when(utf8, F.col(RECORD)).otherwise(F.base64(F.col(RECORD).cast("binary"))).alias(RECORD),
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


def transform_references(checked: DataFrame, users: DataFrame, videos: DataFrame) -> DataFrame:
    """Give valid rows naming a user or video absent from D's snapshots, or acting before the
    user's signup or the video's upload, their reason; rows and columns stay as they are.

    Args:
        checked: as returned by :func:`transform_parse`.
        users: ``(user_id, signup_ts)``, and ``videos`` ``(video_id, upload_ts)``, as returned by
            :func:`extract_snapshots`.
    """
    known_user, known_video = "_known_user", "_known_video"
    joined = checked.join(users.withColumn(known_user, F.lit(True)), on=USER_ID, how="left").join(
        videos.withColumn(known_video, F.lit(True)), on=VIDEO_ID, how="left"
    )
    rules: list[tuple[str, Column]] = [
        ("unknown_user", F.col(known_user).isNull()),
        ("unknown_video", F.col(known_video).isNull()),
        ("event_before_signup", F.col(EVENT_TS) < F.col(SIGNUP_TS)),
        ("event_before_upload", F.col(EVENT_TS) < F.col(UPLOAD_TS)),
    ]
    reason = F.coalesce(F.col(REASON), *[F.when(broken, F.lit(name)) for name, broken in rules])
    return joined.select(
        *[reason.alias(REASON) if name == REASON else F.col(name) for name in checked.columns]
    )


def transform_duplicates(checked: DataFrame) -> DataFrame:
    """Quarantine valid copies of an ``event_id`` whose content differs from the kept one.

    The kept row is the valid one with the earliest ``event_ts`` (then file, line). A later copy
    equal to it in every field of :data:`CONTENT_FIELDS` is a client retry and stays valid
    (:func:`transform_events` drops it); any other gets ``conflicting_duplicate``.
    """
    valid = F.col(REASON).isNull()
    copies = Window.partitionBy(EVENT_ID, valid).orderBy(EVENT_TS, FILE, LINE)
    content = F.struct(*CONTENT_FIELDS)
    conflicting = valid & ~content.eqNullSafe(F.first(content).over(copies))
    return checked.withColumn(
        REASON, F.when(conflicting, F.lit(CONFLICTING_DUPLICATE)).otherwise(F.col(REASON))
    )


def transform_check(lines: DataFrame, date: str, users: DataFrame, videos: DataFrame) -> DataFrame:
    """Every rule of the contract on the day's lines: parse, references, conflicting duplicates."""
    return transform_duplicates(transform_references(transform_parse(lines, date), users, videos))


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
    users, videos = extract_snapshots(spark, settings, date)
    checked = transform_check(lines, date, users, videos).persist()
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
