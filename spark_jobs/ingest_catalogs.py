"""Land one day of catalog drops: landing/{videos,users,creators,follows}/dt=D/*.parquet -> bronze.

``videos``, ``users`` and ``creators`` are full snapshots as of the end of D; ``follows`` holds the
follow edges created on D. Each feed has its own pure check (``transform_<feed>``) that types the
drop into the catalog schema and gives every row a ``reason``: null when valid, else the first rule
it broke. Rows with a reason go to ``bronze.quarantine`` with ``source=<feed>``, the file, the
1-based row number and the row as JSON text.

| feed | reason | rule |
|---|---|---|
| all | ``missing_field:<name>`` | a required field is null or blank |
| all | ``duplicate_key:<key>`` | the key was already taken by an earlier valid row of the drop |
| videos | ``invalid_duration_ms`` | ``duration_ms <= 0`` |
| videos | ``invalid_frame_embedding`` | missing, not FRAME_EMBEDDING_DIM long, or a null/NaN element |
| videos | ``upload_ts_after_date`` | uploaded after the end of D (the snapshot is as of the end of D) |
| users | ``unknown_age_bucket`` | set, but not one of the contract's buckets |
| follows | ``followed_at_outside_date`` | not inside the UTC day D |

Of duplicate keys the first row (by file, row) wins; of a repeated follow edge, the earliest
``followed_at``.

Every write replaces the date's partition, so rerunning a date never duplicates rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from reelrec import lake
from reelrec.catalog import (
    AGE_BUCKET,
    AGE_BUCKETS,
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
from spark_jobs.quarantine import count_by_reason, load, transform_quarantine

# Each landing feed is named after the bronze table it lands in.
FEEDS: dict[str, Table] = {table.name: table for table in (VIDEOS, USERS, CREATORS, FOLLOWS)}

Rule = tuple[str, Column]


def _feed_columns(table: Table) -> list[str]:
    """The columns a drop must carry: the table's columns except the ``dt`` partition."""
    return [name for name in table.columns if name != DT]


def extract(spark: SparkSession, settings: Settings, date: str) -> dict[str, tuple[DataFrame, list[Path]]]:
    """Read every feed's drop of ``date`` (all drops are checked before any is read).

    Returns:
        Per feed: a frame with the feed's columns plus ``file`` (relative to the landing root),
        ``line`` (1-based row in that file) and ``record`` (the row as JSON text); and the files read.

    Raises:
        reelrec.landing.IncompleteDropError: (a FileNotFoundError) naming the folder and date when
            a drop is missing, has no ``_SUCCESS`` marker or holds no data files.
        lake.SchemaContractError: when a drop lacks a column of its table, naming feed and column.
    """
    all_files = {feed: drop_files(feed, date, settings) for feed in FEEDS}
    drops = {}
    for feed, table in FEEDS.items():
        columns = _feed_columns(table)
        files = all_files[feed]
        raw = spark.read.parquet(*[str(path) for path in files])
        missing = [name for name in columns if name not in raw.columns]
        if missing:
            raise lake.SchemaContractError(
                f"landing drop {feed} for dt={date} ({drop_dir(feed, date, settings)}): "
                f"missing column(s) {missing}; got {raw.columns}"
            )
        folder = drop_dir(feed, date, settings).relative_to(settings.landing).as_posix() + "/"
        file_name = F.concat(F.lit(folder), F.col("_metadata.file_name"))
        drops[feed] = (_with_provenance(raw, file_name, F.col("_metadata.row_index") + 1, columns), files)
    return drops


def _with_provenance(raw: DataFrame, file_name: Column, line: Column, columns: list[str]) -> DataFrame:
    record = F.to_json(F.struct(*columns), {"ignoreNullFields": "false"})
    return raw.select(*columns, file_name.alias(FILE), line.cast("long").alias(LINE), record.alias(RECORD))


def _blank(column: str) -> Column:
    value = F.col(column)
    return value.isNull() | (F.trim(value.cast("string")) == "")


def _missing(*columns: str) -> list[Rule]:
    return [(f"missing_field:{name}", _blank(name)) for name in columns]


def _check(
    raw: DataFrame, table: Table, rules: list[Rule], key: tuple[str, ...], first: list[Column]
) -> DataFrame:
    """Type ``raw`` into ``table``'s schema and set ``reason`` from ``rules`` then duplicate ``key``s.

    Among the rows that pass ``rules``, the first of each key by ``first`` (then file and line) is
    kept; later copies get ``duplicate_key:<key>``.
    """
    schema = from_arrow_schema(table.schema)
    typed = raw.select(
        *[
            F.col(field.name).try_cast(field.dataType).alias(field.name)
            for field in schema
            if field.name != DT
        ],
        FILE,
        LINE,
        RECORD,
    )
    passed = typed.withColumn(REASON, F.coalesce(*[F.when(broken, F.lit(name)) for name, broken in rules]))
    # Valid rows and rejected rows are ranked separately, so a bad row never shadows a good one.
    first_copy = Window.partitionBy(*key, F.col(REASON).isNull()).orderBy(*first, FILE, LINE)
    duplicate = F.col(REASON).isNull() & (F.row_number().over(first_copy) > 1)
    return passed.withColumn(
        REASON, F.when(duplicate, F.lit("duplicate_key:" + ",".join(key))).otherwise(F.col(REASON))
    )


def transform_videos(raw: DataFrame, date: str) -> DataFrame:
    """Check a videos snapshot: catalog columns (no ``dt``), ``file, line, record`` and ``reason``."""
    _, end = day_bounds(date)
    embedding = F.col(FRAME_EMBEDDING)
    bad_embedding = (
        embedding.isNull()
        | (F.size(embedding) != FRAME_EMBEDDING_DIM)
        | F.exists(embedding, lambda x: x.isNull() | F.isnan(x))
    )
    rules = [
        *_missing(VIDEO_ID, CREATOR_ID, UPLOAD_TS, DURATION_MS),
        ("invalid_duration_ms", F.col(DURATION_MS) <= 0),
        ("invalid_frame_embedding", bad_embedding),
        ("upload_ts_after_date", F.col(UPLOAD_TS) >= F.lit(end)),
    ]
    return _check(raw, VIDEOS, rules, key=(VIDEO_ID,), first=[])


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


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Ingest the four catalog drops of ``date`` and return per-feed facts.

    Returns:
        ``{"date": D, "feeds": {feed: {rows_in, rows_written, quarantined, quarantined_by_reason,
        files, versions}}}``.
    """
    spark = get_spark(settings, app_name=f"ingest_catalogs {date}")
    drops = extract(spark, settings, date)
    facts: dict[str, Any] = {}
    for feed, (raw, files) in drops.items():
        checked = FEED_CHECKS[feed](raw, date).persist()
        try:
            by_reason = count_by_reason(checked)
            versions = load(
                transform_accepted(checked, FEEDS[feed], date),
                FEEDS[feed],
                transform_quarantine(checked, feed, date),
                feed,
                settings,
                date,
            )
        finally:
            checked.unpersist()
        valid = by_reason.pop("valid", 0)
        facts[feed] = {
            "files": [path.relative_to(settings.landing).as_posix() for path in files],
            "rows_in": valid + sum(by_reason.values()),
            "rows_written": lake.partition_row_count(FEEDS[feed], settings, date),
            "quarantined": sum(by_reason.values()),
            "quarantined_by_reason": dict(sorted(by_reason.items())),
            "versions": versions,
        }
    return {"date": date, "feeds": facts}


if __name__ == "__main__":
    raise SystemExit(run_job(main, __doc__ or ""))
