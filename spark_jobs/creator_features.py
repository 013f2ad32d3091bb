"""Per-creator features as of the end of D -> silver.creator_features.

Reads bronze.creators and bronze.videos (snapshots of D), bronze.follows (every ``dt <= D``) and
bronze.events (dt D-6..D). Every creator of the snapshot of D gets a row (zeros when idle).

| feature | definition |
|---|---|
| ``followers_total`` | distinct users with a follow edge to the creator, ``dt <= D`` |
| ``new_followers_7d`` | distinct users with a follow edge created in ``D-6..D`` |
| ``uploads_7d``, ``uploads_28d`` | snapshot videos with ``upload_ts`` in the 7 / 28 UTC days ending at D |
| ``views_7d`` | view events on the creator's videos in ``D-6..D`` |
| ``engagement_rate_7d`` | engagements per view: (like + share + follow events) / ``views_7d`` |

``engagement_rate_7d`` is a ratio of event counts, not a share of viewers: it is ``>= 0`` with no
upper bound, and passes 1 when viewers engage more than once per view (a view followed by a like
and a share counts two engagements) or engage in the week with a video they viewed before it. It
is 0.0 for a creator without views in the week.

Events are attributed to creators through the videos snapshot of D; follow *events* (a tap on a
video) feed the engagement rate, follow *edges* (bronze.follows) the follower counts.
``event_timestamp`` is ``D 23:59:59`` UTC (:func:`reelrec.dates.feature_timestamp`).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from reelrec import lake
from reelrec.catalog import (
    CREATOR_FEATURES,
    CREATOR_ID,
    CREATORS,
    DT,
    EVENT_TIMESTAMP,
    EVENT_TYPE,
    EVENTS,
    FOLLOW,
    FOLLOWERS_TOTAL,
    FOLLOWS,
    LIKE,
    SHARE,
    UPLOAD_TS,
    USER_ID,
    VIDEO_ID,
    VIDEOS,
    VIEW,
)
from reelrec.dates import add_days, date_range, day_bounds, feature_timestamp
from reelrec.jobs import run_job, written_facts
from reelrec.settings import Settings
from reelrec.spark import get_spark, read_delta, write_delta
from spark_jobs.snapshots import require_snapshot
from spark_jobs.windows import count_where, in_window, rate

ENGAGEMENT_EVENT_TYPES = (LIKE, SHARE, FOLLOW)


def extract(
    spark: SparkSession, settings: Settings, date: str
) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """Read the creators and videos snapshots of ``date``, all follow edges and the week's events.

    Returns:
        ``(creators, videos, follows, events)``.

    Raises:
        FileNotFoundError: when bronze.creators or bronze.videos has no snapshot for ``date``.
    """
    require_snapshot(CREATORS, settings, date)
    require_snapshot(VIDEOS, settings, date)
    creators = read_delta(spark, CREATORS, settings, dates=[date])
    videos = read_delta(spark, VIDEOS, settings, dates=[date])
    # Edges after D are dropped by the transform (partition pruning on dt keeps the read small).
    follows = read_delta(spark, FOLLOWS, settings)
    events = read_delta(spark, EVENTS, settings, dates=date_range(date, 7))
    return creators, videos, follows, events


def _uploaded_within(date: str, days: int) -> Column:
    start, _ = day_bounds(add_days(date, -(days - 1)))
    _, end = day_bounds(date)
    return (F.col(UPLOAD_TS) >= F.lit(start)) & (F.col(UPLOAD_TS) < F.lit(end))


def transform_creator_features(
    creators: DataFrame, videos: DataFrame, follows: DataFrame, events: DataFrame, date: str
) -> DataFrame:
    """Compute CREATOR_FEATURES as of the end of ``date`` for every creator in ``creators`` (pure).

    Args:
        creators: the creators snapshot of ``date``; defines the output rows.
        videos: the videos snapshot of ``date`` (attributes videos and uploads to creators).
        follows: bronze.follows edges (any dates; only ``dt <= date`` count).
        events: bronze.events rows (any dates; only ``dt`` in ``D-6..D`` count).
        date: logical date ``D``.
    """
    audience = (
        follows.where(F.col(DT) <= date)
        .groupBy(CREATOR_ID)
        .agg(
            F.countDistinct(USER_ID).cast("long").alias(FOLLOWERS_TOTAL),
            F.countDistinct(F.when(in_window(date, 7), F.col(USER_ID)))
            .cast("long")
            .alias("new_followers_7d"),
        )
    )
    uploads = videos.groupBy(CREATOR_ID).agg(
        count_where(_uploaded_within(date, 7)).alias("uploads_7d"),
        count_where(_uploaded_within(date, 28)).alias("uploads_28d"),
    )
    engagement = (
        events.where(in_window(date, 7))
        .join(videos.select(VIDEO_ID, CREATOR_ID), on=VIDEO_ID, how="inner")
        .groupBy(CREATOR_ID)
        .agg(
            count_where(F.col(EVENT_TYPE) == VIEW).alias("views_7d"),
            count_where(F.col(EVENT_TYPE).isin(*ENGAGEMENT_EVENT_TYPES)).alias("_engagements_7d"),
        )
    )
    counts = [
        FOLLOWERS_TOTAL,
        "new_followers_7d",
        "uploads_7d",
        "uploads_28d",
        "views_7d",
        "_engagements_7d",
    ]
    features = (
        creators.select(CREATOR_ID)
        .join(audience, on=CREATOR_ID, how="left")
        .join(uploads, on=CREATOR_ID, how="left")
        .join(engagement, on=CREATOR_ID, how="left")
        .fillna(0, subset=counts)
    )
    return features.select(
        F.col(CREATOR_ID),
        *[F.col(name).cast("long") for name in counts if not name.startswith("_")],
        rate(F.col("_engagements_7d"), F.col("views_7d")).alias("engagement_rate_7d"),
        F.lit(feature_timestamp(date)).alias(EVENT_TIMESTAMP),
        F.lit(date).alias(DT),
    )


def load(features: DataFrame, settings: Settings, date: str) -> int:
    """Replace ``dt=date`` of silver.creator_features; returns the new Delta version."""
    return write_delta(features, CREATOR_FEATURES, settings, date)


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Compute and write the creator features of ``date``.

    Returns:
        ``rows_written``, ``versions`` (Delta version written) and ``inputs`` (Delta versions read).
    """
    spark = get_spark(settings, app_name=f"creator_features {date}")
    inputs = {table.name: lake.version(table, settings) for table in (CREATORS, VIDEOS, FOLLOWS, EVENTS)}
    creators, videos, follows, events = extract(spark, settings, date)
    version = load(transform_creator_features(creators, videos, follows, events, date), settings, date)
    return written_facts(CREATOR_FEATURES, settings, date, version, inputs)


if __name__ == "__main__":
    raise SystemExit(run_job(main, __doc__ or ""))
