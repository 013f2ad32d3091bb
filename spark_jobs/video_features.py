"""Per-video features as of the end of D -> silver.video_features.

Reads bronze.events (only the partitions ``dt`` D-27..D) and the bronze.videos snapshot of D.

Every video of the snapshot of D gets a row, with zeros when nobody saw it. Windows hold the ``dt``
partitions ``D-(n-1) .. D`` (see :mod:`spark_jobs.windows`). Rates without a denominator are 0.0.

| feature | definition |
|---|---|
| ``impressions_{1,7,28}d``, ``views_{1,7,28}d`` | impression / view events of the video |
| ``completion_rate_7d`` | views with ``watch_ms >= 0.9 * duration_ms`` / views |
| ``like_rate_7d``, ``share_rate_7d`` | likes / views, shares / views |
| ``avg_watch_fraction_{1,7}d`` | mean over views of ``min(watch_ms / duration_ms, 1)`` |
| ``age_hours`` | hours from ``upload_ts`` to the end of D (``D+1 00:00`` UTC) |
| ``trending_score`` | ``views_1d / (views_7d / 7 + 1) * ln(1 + views_1d)`` |

``trending_score`` compares today's views with the week's daily average (``views_7d`` includes
today; the ``+1`` keeps never-seen videos finite) and weights that ratio by the log of today's
volume, so a jump from 0 to 3 views does not outrank one from 100 to 3,000. It is 0.0 for a video
without views on D.

``event_timestamp`` is ``D 23:59:59`` UTC (:func:`reelrec.dates.feature_timestamp`).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from reelrec import lake
from reelrec.catalog import (
    AGE_HOURS,
    CREATOR_ID,
    DT,
    DURATION_MS,
    EVENT_TIMESTAMP,
    EVENT_TYPE,
    EVENTS,
    IMPRESSION,
    LIKE,
    SHARE,
    TRENDING_SCORE,
    UPLOAD_TS,
    VIDEO_FEATURES,
    VIDEO_ID,
    VIDEOS,
    VIEW,
    WATCH_MS,
    WINDOWS,
    windowed_names,
)
from reelrec.dates import date_range, day_bounds, feature_timestamp
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
    watch_fraction,
)

_MICROS_PER_HOUR = 3_600 * 1_000_000


def extract(spark: SparkSession, settings: Settings, date: str) -> tuple[DataFrame, DataFrame]:
    """Read the events of the 28 days ending at ``date`` and the videos snapshot of ``date``.

    Raises:
        FileNotFoundError: when bronze.videos has no snapshot for ``date``.
    """
    require_snapshot(VIDEOS, settings, date)
    events = read_delta(spark, EVENTS, settings, dates=date_range(date, LONGEST_WINDOW))
    videos = read_delta(spark, VIDEOS, settings, dates=[date])
    return events, videos


def trending_score(views_1d: Column, views_7d: Column) -> Column:
    """``views_1d / (views_7d / 7 + 1) * ln(1 + views_1d)`` (0.0 for a video not viewed today)."""
    views_today = views_1d.cast("double")
    return views_today / (views_7d.cast("double") / 7.0 + 1.0) * F.log1p(views_today)


def transform_video_features(events: DataFrame, videos: DataFrame, date: str) -> DataFrame:
    """Compute VIDEO_FEATURES as of the end of ``date`` for every video in ``videos`` (pure).

    Args:
        events: bronze.events rows (any dates; only ``dt`` in ``D-27..D`` count).
        videos: the videos snapshot of ``date``; defines the output rows.
        date: logical date ``D``.
    """
    snapshot = videos.select(VIDEO_ID, CREATOR_ID, UPLOAD_TS, DURATION_MS)
    is_view = F.col(EVENT_TYPE) == VIEW
    fraction = watch_fraction(F.col(WATCH_MS), F.col(DURATION_MS))
    aggregates = []
    for days in WINDOWS:
        inside = in_window(date, days)
        aggregates += [
            count_where(inside & (F.col(EVENT_TYPE) == IMPRESSION)).alias(f"impressions_{days}d"),
            count_where(inside & is_view).alias(f"views_{days}d"),
        ]
    week = in_window(date, 7)
    performance = (
        events.where(in_window(date, LONGEST_WINDOW))
        .join(snapshot.select(VIDEO_ID, DURATION_MS), on=VIDEO_ID, how="inner")
        .groupBy(VIDEO_ID)
        .agg(
            *aggregates,
            count_where(week & is_view & completed_view(F.col(WATCH_MS), F.col(DURATION_MS))).alias(
                "_completed_7d"
            ),
            count_where(week & (F.col(EVENT_TYPE) == LIKE)).alias("_likes_7d"),
            count_where(week & (F.col(EVENT_TYPE) == SHARE)).alias("_shares_7d"),
            F.avg(F.when(in_window(date, 1) & is_view, fraction)).alias("_watch_fraction_1d"),
            F.avg(F.when(week & is_view, fraction)).alias("_watch_fraction_7d"),
        )
    )
    counts = [*windowed_names("impressions"), *windowed_names("views")]
    features = snapshot.join(performance, on=VIDEO_ID, how="left").fillna(
        0, subset=[*counts, "_completed_7d", "_likes_7d", "_shares_7d"]
    )
    _, end_of_day = day_bounds(date)
    age_micros = F.unix_micros(F.lit(end_of_day)) - F.unix_micros(F.col(UPLOAD_TS))
    return features.select(
        F.col(VIDEO_ID),
        F.col(CREATOR_ID),
        *[F.col(name).cast("long") for name in counts],
        rate(F.col("_completed_7d"), F.col("views_7d")).alias("completion_rate_7d"),
        rate(F.col("_likes_7d"), F.col("views_7d")).alias("like_rate_7d"),
        rate(F.col("_shares_7d"), F.col("views_7d")).alias("share_rate_7d"),
        F.coalesce(F.col("_watch_fraction_1d"), F.lit(0.0)).alias("avg_watch_fraction_1d"),
        F.coalesce(F.col("_watch_fraction_7d"), F.lit(0.0)).alias("avg_watch_fraction_7d"),
        (age_micros.cast("double") / _MICROS_PER_HOUR).alias(AGE_HOURS),
        trending_score(F.col("views_1d"), F.col("views_7d")).alias(TRENDING_SCORE),
        F.lit(feature_timestamp(date)).alias(EVENT_TIMESTAMP),
        F.lit(date).alias(DT),
    )


def load(features: DataFrame, settings: Settings, date: str) -> int:
    """Replace ``dt=date`` of silver.video_features; returns the new Delta version."""
    return write_delta(features, VIDEO_FEATURES, settings, date)


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Compute and write the video features of ``date``.

    Returns:
        ``rows_written``, ``versions`` (Delta version written) and ``inputs`` (Delta versions read).
    """
    spark = get_spark(settings, app_name=f"video_features {date}")
    inputs = {table.name: lake.version(table, settings) for table in (EVENTS, VIDEOS)}
    events, videos = extract(spark, settings, date)
    version = load(transform_video_features(events, videos, date), settings, date)
    return written_facts(VIDEO_FEATURES, settings, date, version, inputs)


if __name__ == "__main__":
    raise SystemExit(run_job(main, __doc__ or ""))
