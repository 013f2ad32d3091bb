"""Per-user features as of the end of D -> silver.user_features.

Reads bronze.events (only the partitions ``dt`` D-27..D) and the bronze.videos snapshot of D.

One row per user with at least one event in the 28 days ending at D. Windows hold the ``dt``
partitions ``D-(n-1) .. D`` (see :mod:`spark_jobs.windows`); nothing after the end of D is read.

| feature | definition |
|---|---|
| ``impressions_{1,7,28}d`` | impression events |
| ``views_{1,7,28}d`` | view events (a watch of at least a second; skips are not views) |
| ``watch_ms_{1,7,28}d`` | total watch time: ``watch_ms`` summed over views and skips |
| ``completion_rate_{7,28}d`` | views with ``watch_ms >= 0.9 * duration_ms`` / views (0.0 without views) |
| ``like_rate_28d`` | likes / views (0.0 without views) |
| ``active_days_28d`` | days with at least one event |
| ``recent_video_ids`` | the last 50 distinct videos viewed, newest view first (ties by video_id) |

The duration behind a completion comes from the videos snapshot of D; a view of a video missing
from it never counts as completed (but still counts as a view).

``event_timestamp`` is ``D 23:59:59`` UTC (:func:`reelrec.dates.feature_timestamp`).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from reelrec import lake
from reelrec.catalog import (
    DT,
    DURATION_MS,
    EVENT_TIMESTAMP,
    EVENT_TS,
    EVENT_TYPE,
    EVENTS,
    IMPRESSION,
    LIKE,
    RECENT_HISTORY_LEN,
    RECENT_VIDEO_IDS,
    TIMED_EVENT_TYPES,
    USER_FEATURES,
    USER_ID,
    VIDEO_ID,
    VIDEOS,
    VIEW,
    WATCH_MS,
    WINDOWS,
    windowed_names,
)
from reelrec.dates import date_range, feature_timestamp
from reelrec.jobs import run_job, written_facts
from reelrec.settings import Settings
from reelrec.spark import get_spark, read_delta, write_delta
from spark_jobs.snapshots import require_snapshot
from spark_jobs.windows import (
    LONGEST_WINDOW,
    completed_view,
    count_where,
    in_window,
    rate,
    sum_where,
)


def extract(spark: SparkSession, settings: Settings, date: str) -> tuple[DataFrame, DataFrame]:
    """Read the events of the 28 days ending at ``date`` and the videos snapshot of ``date``.

    Raises:
        FileNotFoundError: when bronze.videos has no snapshot for ``date``.
    """
    require_snapshot(VIDEOS, settings, date)
    events = read_delta(spark, EVENTS, settings, dates=date_range(date, LONGEST_WINDOW))
    videos = read_delta(spark, VIDEOS, settings, dates=[date])
    return events, videos


def transform_user_features(events: DataFrame, videos: DataFrame, date: str) -> DataFrame:
    """Compute USER_FEATURES as of the end of ``date`` (pure; rows outside the 28-day window are ignored).

    Args:
        events: bronze.events rows (any dates; only ``dt`` in ``D-27..D`` count).
        videos: the videos snapshot of ``date`` (``video_id``, ``duration_ms``).
        date: logical date ``D``.
    """
    durations = videos.select(VIDEO_ID, DURATION_MS)
    recent = (
        events.where(in_window(date, LONGEST_WINDOW))
        .join(F.broadcast(durations), on=VIDEO_ID, how="left")
        .withColumn("_view", F.col(EVENT_TYPE) == VIEW)
        .withColumn("_completed", F.col("_view") & completed_view(F.col(WATCH_MS), F.col(DURATION_MS)))
    )
    is_view, is_watch = F.col("_view"), F.col(EVENT_TYPE).isin(*TIMED_EVENT_TYPES)
    aggregates = []
    for days in WINDOWS:
        inside = in_window(date, days)
        aggregates += [
            count_where(inside & (F.col(EVENT_TYPE) == IMPRESSION)).alias(f"impressions_{days}d"),
            count_where(inside & is_view).alias(f"views_{days}d"),
            sum_where(inside & is_watch, F.col(WATCH_MS)).alias(f"watch_ms_{days}d"),
        ]
    activity = recent.groupBy(USER_ID).agg(
        *aggregates,
        count_where(in_window(date, 7) & F.col("_completed")).alias("_completed_7d"),
        count_where(F.col("_completed")).alias("_completed_28d"),
        count_where(F.col(EVENT_TYPE) == LIKE).alias("_likes_28d"),
        F.countDistinct(DT).cast("long").alias("active_days_28d"),
    )
    features = activity.join(_recent_video_ids(recent), on=USER_ID, how="left")
    return features.select(
        F.col(USER_ID),
        *[F.col(name) for name in windowed_names("impressions")],
        *[F.col(name) for name in windowed_names("views")],
        *[F.col(name) for name in windowed_names("watch_ms")],
        rate(F.col("_completed_7d"), F.col("views_7d")).alias("completion_rate_7d"),
        rate(F.col("_completed_28d"), F.col("views_28d")).alias("completion_rate_28d"),
        rate(F.col("_likes_28d"), F.col("views_28d")).alias("like_rate_28d"),
        F.col("active_days_28d"),
        F.coalesce(F.col(RECENT_VIDEO_IDS), F.array().cast("array<string>")).alias(RECENT_VIDEO_IDS),
        F.lit(feature_timestamp(date)).alias(EVENT_TIMESTAMP),
        F.lit(date).alias(DT),
    )


def _recent_video_ids(events: DataFrame) -> DataFrame:
    """``(user_id, recent_video_ids)``: distinct viewed videos, newest last view first, at most 50."""
    newest_first = Window.partitionBy(USER_ID).orderBy(F.col("_last_view").desc(), F.col(VIDEO_ID))
    last_views = (
        events.where(F.col("_view"))
        .groupBy(USER_ID, VIDEO_ID)
        .agg(F.max(EVENT_TS).alias("_last_view"))
        .withColumn("_rank", F.row_number().over(newest_first))
        .where(F.col("_rank") <= RECENT_HISTORY_LEN)
    )
    # collect_list does not keep order: sort the (rank, video) structs, then keep the ids.
    ranked = F.sort_array(F.collect_list(F.struct("_rank", VIDEO_ID)))
    return last_views.groupBy(USER_ID).agg(
        F.transform(ranked, lambda item: item[VIDEO_ID]).alias(RECENT_VIDEO_IDS)
    )


def load(features: DataFrame, settings: Settings, date: str) -> int:
    """Replace ``dt=date`` of silver.user_features; returns the new Delta version."""
    return write_delta(features, USER_FEATURES, settings, date)


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Compute and write the user features of ``date``.

    Returns:
        ``rows_written``, ``versions`` (Delta version written) and ``inputs`` (Delta versions read).
    """
    spark = get_spark(settings, app_name=f"user_features {date}")
    inputs = {table.name: lake.version(table, settings) for table in (EVENTS, VIDEOS)}
    events, videos = extract(spark, settings, date)
    version = load(transform_user_features(events, videos, date), settings, date)
    return written_facts(USER_FEATURES, settings, date, version, inputs)


if __name__ == "__main__":
    raise SystemExit(run_job(main, __doc__ or ""))
