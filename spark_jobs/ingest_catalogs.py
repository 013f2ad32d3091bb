"""Land one day of catalog drops: landing/{videos,users,creators,follows}/dt=D/*.parquet -> bronze.

``videos``, ``users`` and ``creators`` are full snapshots as of the end of D; ``follows`` holds the
follow edges created on D. Each feed has its own pure check (``transform_<feed>``) that types the
drop into the catalog schema and gives every row a ``reason``: null when valid, else the first rule
it broke. Rows with a reason go to ``bronze.quarantine`` with ``source=<feed>``, the file, the
1-based row number and the row as JSON text.

| feed | reason | rule |
|---|---|---|
| all | ``uncastable:<name>`` | a value of a retyped column that does not cast to the catalog type |
| all | ``missing_field:<name>`` | a required field is null or blank |
| all | ``duplicate_key:<key>`` | the key was already taken by an earlier valid row of the drop |
| videos | ``invalid_duration_ms`` | ``duration_ms <= 0`` |
| videos | ``invalid_frame_embedding`` | missing, not FRAME_EMBEDDING_DIM long, or a null/NaN/inf element |
| videos | ``upload_ts_after_date`` | uploaded after the end of D (the snapshot is as of the end of D) |
| videos | ``unknown_creator`` | a valid video whose ``creator_id`` is no valid row of D's creators snapshot |
| users | ``unknown_age_bucket`` | set, but not one of the contract's buckets |
| follows | ``followed_at_outside_date`` | not inside the UTC day D |

Of duplicate keys the first row (by file, row) wins; of a repeated follow edge, the earliest
``followed_at``. A later copy is quarantined whether it repeats the first one or contradicts it;
the facts count the contradicting ones (``conflicting_duplicates``).

Before anything is read, every file's footer is checked (:func:`spark_jobs.snapshots.check_drop_schema`):
a missing (or renamed) column or a type that cannot be cast fails the night at once, naming the
file and the column; extra columns are ignored, logged and listed in the facts (``extra_columns``).
A castable retype (``duration_ms`` as text or float, ``frame_embedding`` as doubles) is cast per
row, and a value that does not cast is quarantined ``uncastable:<column>``.

Captions longer than :data:`reelrec.catalog.CAPTION_MAX_CHARS` are cut to it (the video is kept;
``captions_truncated`` counts them), so no later stage meets an unbounded caption.

Count law, per feed and date: rows landed = rows in bronze + rows quarantined (a snapshot
deduplicates nothing silently: every duplicate is a quarantined row).

Every write replaces the date's partition, so rerunning a date never duplicates rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema

from reelrec import lake
from reelrec.catalog import (
    AGE_BUCKET,
    AGE_BUCKETS,
    CAPTION,
    CAPTION_MAX_CHARS,
    CREATOR_ID,
    CREATORS,
    DT,
    DURATION_MS,
    FILE,
    FOLLOWED_AT,
    FOLLOWS,
    FRAME_EMBEDDING,
    FRAME_EMBEDDING_DIM,
    JOINED_TS,
    LINE,
    REASON,
    RECORD,
    SIGNUP_TS,
    UPLOAD_TS,
    USER_ID,
    USERS,
    VIDEO_ID,
    VIDEOS,
    Table,
)
from reelrec.dates import day_bounds
from reelrec.jobs import run_job
from reelrec.landing import drop_dir, drop_files
from reelrec.settings import Settings
from reelrec.spark import get_spark
from spark_jobs.quarantine import load, transform_quarantine
from spark_jobs.snapshots import check_drop_schema

log = logging.getLogger(__name__)

# Each landing feed is named after the bronze table it lands in.
FEEDS: dict[str, Table] = {table.name: table for table in (VIDEOS, USERS, CREATORS, FOLLOWS)}

Rule = tuple[str, Column]

# Helper flags a checked frame may carry next to ``reason`` (the output transforms select past them).
CONFLICTING = "_conflicting_duplicate"  # a duplicate key whose row differs from the kept one
CAPTION_TRUNCATED = "_caption_truncated"  # the caption was longer than CAPTION_MAX_CHARS


def _feed_columns(table: Table) -> list[str]:
    """The columns a drop must carry: the table's columns except the ``dt`` partition."""
    return [name for name in table.columns if name != DT]


def extract(
    spark: SparkSession, settings: Settings, date: str
) -> dict[str, tuple[DataFrame, list[Path], list[str]]]:
    """Read every feed's drop of ``date`` (all drops are checked before any is read).

    Returns:
        Per feed: a frame with the feed's columns plus ``file`` (relative to the landing root),
        ``line`` (1-based row in that file) and ``record`` (the row as JSON text); the files read;
        and the extra columns the drop carried (ignored).

    Raises:
        reelrec.landing.IncompleteDropError: (a FileNotFoundError) naming the folder and date when
            a drop is missing, has no ``_SUCCESS`` marker or holds no data files.
        lake.SchemaContractError: when a file lacks a column of its table or holds one in a type that
            does not cast, naming feed, file and column.
    """
    all_files = {feed: drop_files(feed, date, settings) for feed in FEEDS}
    extras = {
        feed: check_drop_schema(feed, date, all_files[feed], table, settings.landing)
        for feed, table in FEEDS.items()
    }
    drops = {}
    for feed, table in FEEDS.items():
        columns = _feed_columns(table)
        files = all_files[feed]
        if extras[feed]:
            log.warning("landing drop %s for dt=%s: ignoring extra column(s) %s", feed, date, extras[feed])
        raw = spark.read.parquet(*[str(path) for path in files])
        folder = drop_dir(feed, date, settings).relative_to(settings.landing).as_posix() + "/"
        file_name = F.concat(F.lit(folder), F.col("_metadata.file_name"))
        drops[feed] = (
            _with_provenance(raw, file_name, F.col("_metadata.row_index") + 1, columns),
            files,
            extras[feed],
        )
    return drops


def _with_provenance(raw: DataFrame, file_name: Column, line: Column, columns: list[str]) -> DataFrame:
    record = F.to_json(F.struct(*columns), {"ignoreNullFields": "false"})
    return raw.select(*columns, file_name.alias(FILE), line.cast("long").alias(LINE), record.alias(RECORD))


def _blank(column: str) -> Column:
    value = F.col(column)
    return value.isNull() | (F.trim(value.cast("string")) == "")


def _missing(*columns: str) -> list[Rule]:
    return [(f"missing_field:{name}", _blank(name)) for name in columns]


def _cast(raw: DataFrame, name: str, target: T.DataType) -> Column:
    """``raw``'s column ``name`` cast to ``target``; null where a value does not cast.

    A float cast to an integer keeps whole values only (``try_cast`` alone would truncate 1.5 to 1).
    """
    value = F.col(name)
    source = raw.schema[name].dataType
    if isinstance(target, T.IntegralType) and isinstance(source, (T.FloatType, T.DoubleType)):
        return F.when(~F.isnan(value) & (value == F.floor(value)), value.try_cast(target))
    return value.try_cast(target)


def _uncastable_flag(name: str) -> str:
    return f"_uncastable_{name}"


def _check(
    raw: DataFrame, table: Table, rules: list[Rule], key: tuple[str, ...], first: list[Column]
) -> DataFrame:
    """Type ``raw`` into ``table``'s schema and set ``reason`` from ``rules`` then duplicate ``key``s.

    A column landed in another type is cast per row; a value that does not cast gets
    ``uncastable:<column>`` before any other rule. Among the rows that pass, the first of each key by
    ``first`` (then file and line) is kept; later copies get ``duplicate_key:<key>`` (and
    :data:`CONFLICTING` when they differ from the kept row).
    """
    schema = [field for field in from_arrow_schema(table.schema) if field.name != DT]
    retyped = [field for field in schema if raw.schema[field.name].dataType != field.dataType]
    typed = raw.select(
        *[_cast(raw, field.name, field.dataType).alias(field.name) for field in schema],
        *[
            (~_blank(field.name) & _cast(raw, field.name, field.dataType).isNull()).alias(
                _uncastable_flag(field.name)
            )
            for field in retyped
        ],
        FILE,
        LINE,
        RECORD,
    )
    uncastable = [(f"uncastable:{field.name}", F.col(_uncastable_flag(field.name))) for field in retyped]
    passed = typed.withColumn(
        REASON, F.coalesce(*[F.when(broken, F.lit(name)) for name, broken in [*uncastable, *rules]])
    ).drop(*[_uncastable_flag(field.name) for field in retyped])
    # Valid rows and rejected rows are ranked separately, so a bad row never shadows a good one.
    first_copy = Window.partitionBy(*key, F.col(REASON).isNull()).orderBy(*first, FILE, LINE)
    duplicate = F.col(REASON).isNull() & (F.row_number().over(first_copy) > 1)
    kept_record = F.first(RECORD).over(first_copy)
    return passed.withColumn(CONFLICTING, duplicate & (F.col(RECORD) != kept_record)).withColumn(
        REASON, F.when(duplicate, F.lit("duplicate_key:" + ",".join(key))).otherwise(F.col(REASON))
    )


def transform_videos(raw: DataFrame, date: str) -> DataFrame:
    """Check a videos snapshot: catalog columns (no ``dt``), ``file, line, record`` and ``reason``."""
    _, end = day_bounds(date)
    embedding = F.col(FRAME_EMBEDDING)
    bad_embedding = (
        embedding.isNull()
        | (F.size(embedding) != FRAME_EMBEDDING_DIM)
        | F.exists(embedding, lambda x: x.isNull() | F.isnan(x) | (F.abs(x) == F.lit(float("inf"))))
    )
    rules = [
        *_missing(VIDEO_ID, CREATOR_ID, UPLOAD_TS, DURATION_MS),
        ("invalid_duration_ms", F.col(DURATION_MS) <= 0),
        ("invalid_frame_embedding", bad_embedding),
        ("upload_ts_after_date", F.col(UPLOAD_TS) >= F.lit(end)),
    ]
    checked = _check(raw, VIDEOS, rules, key=(VIDEO_ID,), first=[])
    caption = F.col(CAPTION)
    return checked.withColumn(
        CAPTION_TRUNCATED, F.coalesce(F.length(caption) > CAPTION_MAX_CHARS, F.lit(False))
    ).withColumn(CAPTION, F.substring(caption, 1, CAPTION_MAX_CHARS))


def transform_unknown_creators(videos: DataFrame, creators: DataFrame) -> DataFrame:
    """Checked videos where a valid video whose creator is no valid row of ``creators`` gets
    ``unknown_creator``: the night never serves a video it cannot attribute (a deleted creator's
    content, a lagging creators feed), and creator features, follows and diversity rules all need
    the creator.

    Args:
        videos: :func:`transform_videos` rows.
        creators: :func:`transform_creators` rows of the same date.
    """
    known = (
        creators.where(F.col(REASON).isNull()).select(F.col(CREATOR_ID).alias("_known_creator")).distinct()
    )
    joined = videos.join(F.broadcast(known), F.col(CREATOR_ID) == F.col("_known_creator"), how="left")
    unknown = F.col(REASON).isNull() & F.col("_known_creator").isNull()
    return joined.withColumn(REASON, F.when(unknown, F.lit("unknown_creator")).otherwise(F.col(REASON))).drop(
        "_known_creator"
    )


def transform_users(raw: DataFrame, date: str) -> DataFrame:
    """Check a users snapshot: catalog columns (no ``dt``), ``file, line, record`` and ``reason``."""
    age_bucket = F.col(AGE_BUCKET)
    rules = [
        *_missing(USER_ID, SIGNUP_TS),
        ("unknown_age_bucket", age_bucket.isNotNull() & ~age_bucket.isin(*AGE_BUCKETS)),
    ]
    return _check(raw, USERS, rules, key=(USER_ID,), first=[])


def transform_creators(raw: DataFrame, date: str) -> DataFrame:
    """Check a creators snapshot: catalog columns (no ``dt``), ``file, line, record`` and ``reason``."""
    return _check(raw, CREATORS, _missing(CREATOR_ID, JOINED_TS), key=(CREATOR_ID,), first=[])


def transform_follows(raw: DataFrame, date: str) -> DataFrame:
    """Check the day's new follow edges; a repeated edge keeps its earliest ``followed_at``."""
    start, end = day_bounds(date)
    followed_at = F.col(FOLLOWED_AT)
    rules = [
        *_missing(USER_ID, CREATOR_ID, FOLLOWED_AT),
        ("followed_at_outside_date", (followed_at < F.lit(start)) | (followed_at >= F.lit(end))),
    ]
    return _check(raw, FOLLOWS, rules, key=(USER_ID, CREATOR_ID), first=[followed_at])


FEED_CHECKS: dict[str, Callable[[DataFrame, str], DataFrame]] = {
    VIDEOS.name: transform_videos,
    USERS.name: transform_users,
    CREATORS.name: transform_creators,
    FOLLOWS.name: transform_follows,
}


def transform_accepted(checked: DataFrame, table: Table, date: str) -> DataFrame:
    """Valid rows of a checked drop, selected into ``table``'s catalog schema with ``dt=date``."""
    schema = from_arrow_schema(table.schema)
    return checked.where(F.col(REASON).isNull()).select(
        *[
            (F.lit(date) if field.name == DT else F.col(field.name)).cast(field.dataType).alias(field.name)
            for field in schema
        ]
    )


def check_all(drops: dict[str, DataFrame], date: str) -> dict[str, DataFrame]:
    """Every feed's checked drop, persisted; videos also checked against the creators snapshot."""
    checked = {feed: FEED_CHECKS[feed](raw, date) for feed, raw in drops.items()}
    checked[VIDEOS.name] = transform_unknown_creators(checked[VIDEOS.name], checked[CREATORS.name])
    return {feed: frame.persist() for feed, frame in checked.items()}


def _counts(checked: DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per reason (valid rows under ``"valid"``) and the flag counts of a checked drop, in one pass:
    ``conflicting_duplicates`` and, for videos, valid rows with a truncated caption."""
    flags = {"conflicting_duplicates": F.col(CONFLICTING)}
    if CAPTION_TRUNCATED in checked.columns:
        flags["captions_truncated"] = F.col(REASON).isNull() & F.col(CAPTION_TRUNCATED)
    rows = (
        checked.groupBy(REASON)
        .agg(F.count(F.lit(1)).alias("rows"), *[F.count(F.when(f, 1)).alias(n) for n, f in flags.items()])
        .collect()
    )
    by_reason = {(row[REASON] or "valid"): int(row["rows"]) for row in rows}
    return by_reason, {name: sum(int(row[name]) for row in rows) for name in flags}


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Ingest the four catalog drops of ``date`` and return per-feed facts.

    Returns:
        ``{"date": D, "feeds": {feed: {rows_in, rows_written, quarantined, quarantined_by_reason,
        conflicting_duplicates, [captions_truncated,] extra_columns, files, versions}}}``.
    """
    spark = get_spark(settings, app_name=f"ingest_catalogs {date}")
    drops = extract(spark, settings, date)
    checked = check_all({feed: raw for feed, (raw, _, _) in drops.items()}, date)
    facts: dict[str, Any] = {}
    try:
        for feed, (_, files, extra) in drops.items():
            by_reason, flags = _counts(checked[feed])
            versions = load(
                transform_accepted(checked[feed], FEEDS[feed], date),
                FEEDS[feed],
                transform_quarantine(checked[feed], feed, date),
                feed,
                settings,
                date,
            )
            valid = by_reason.pop("valid", 0)
            facts[feed] = {
                "files": [path.relative_to(settings.landing).as_posix() for path in files],
                "rows_in": valid + sum(by_reason.values()),
                "rows_written": lake.partition_row_count(FEEDS[feed], settings, date),
                "quarantined": sum(by_reason.values()),
                "quarantined_by_reason": dict(sorted(by_reason.items())),
                **flags,
                "extra_columns": extra,
                "versions": versions,
            }
    finally:
        for frame in checked.values():
            frame.unpersist()
    return {"date": date, "feeds": facts}


if __name__ == "__main__":
    raise SystemExit(run_job(main, __doc__ or ""))
