"""spark_jobs.video_features: hand-computed features, window edges, unseen videos, the job."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from reelrec import lake
from reelrec.catalog import EVENTS, VIDEO_FEATURES, VIDEOS
from reelrec.dates import add_days, feature_timestamp
from reelrec.settings import Settings
from spark_jobs import video_features
from tests.spark_jobs.tiny import D, event, frame, video, write_bronze

pytestmark = pytest.mark.spark

D_1, D_3, D_10 = add_days(D, -1), add_days(D, -3), add_days(D, -10)
D_28, NEXT = add_days(D, -28), add_days(D, 1)

VIDEO_ROWS = [
    video("vA", "c1", f"{D_1}T00:00:00", 10_000),  # 48 h old at the end of D
    video("vB", "c1", f"{D}T12:00:00", 20_000),  # 12 h old
    video("vZ", "c2", "2026-10-01T00:00:00", 5_000),  # 41 days old, never shown
]

EVENT_ROWS = [
    event("a1", "impression", "u1", "vA", f"{D}T09:00:00"),
    event("a2", "impression", "u2", "vA", f"{D}T09:00:00"),
    event("a3", "impression", "u3", "vA", f"{D}T09:00:00"),
    event("a4", "view", "u1", "vA", f"{D}T09:00:01", 9_500),  # fraction 0.95, completed
    event("a5", "view", "u2", "vA", f"{D}T09:00:01", 15_000),  # looped: fraction capped at 1.0
    event("a6", "skip", "u3", "vA", f"{D}T09:00:01", 200),  # not a view
    event("a7", "like", "u1", "vA", f"{D}T09:00:20"),
    event("a8", "share", "u2", "vA", f"{D}T09:00:30"),
    event("a9", "impression", "u4", "vA", f"{D_3}T09:00:00"),
    event("a10", "view", "u4", "vA", f"{D_3}T09:00:01", 5_000),  # fraction 0.5
    event("a11", "impression", "u5", "vA", f"{D_10}T09:00:00"),
    event("a12", "view", "u5", "vA", f"{D_10}T09:00:01", 1_000),
    event("a13", "view", "u6", "vA", f"{D_28}T09:00:01", 10_000),  # outside 28 days
    event("a14", "view", "u7", "vA", f"{NEXT}T00:00:00", 10_000),  # after the end of D
    event("a15", "like", "u7", "vA", f"{NEXT}T00:00:09"),
    event("b1", "impression", "u1", "vB", f"{D}T13:00:00"),
    event("b2", "view", "u1", "vB", f"{D}T13:00:01", 20_000),
    event("x1", "view", "u1", "vX", f"{D}T13:00:01", 20_000),  # not in the snapshot: no row
]


def feature_row(video_id: str, creator_id: str, **values: object) -> dict[str, object]:
    return {
        "video_id": video_id,
        "creator_id": creator_id,
        **values,
        "event_timestamp": feature_timestamp(D),
        "dt": D,
    }


def test_features_match_hand_computed_values(spark: SparkSession) -> None:
    features = video_features.transform_video_features(
        frame(spark, EVENTS, EVENT_ROWS), frame(spark, VIDEOS, VIDEO_ROWS), D
    )

    expected = frame(
        spark,
        VIDEO_FEATURES,
        [
            feature_row(
                "vA", "c1",
                impressions_1d=3, impressions_7d=4, impressions_28d=5,
                views_1d=2, views_7d=3, views_28d=4,
                completion_rate_7d=2 / 3, like_rate_7d=1 / 3, share_rate_7d=1 / 3,
                avg_watch_fraction_1d=(0.95 + 1.0) / 2,
                avg_watch_fraction_7d=(0.95 + 1.0 + 0.5) / 3,
                age_hours=48.0,
                trending_score=2 / (3 / 7 + 1) * math.log1p(2),
            ),
            feature_row(
                "vB", "c1",
                impressions_1d=1, impressions_7d=1, impressions_28d=1,
                views_1d=1, views_7d=1, views_28d=1,
                completion_rate_7d=1.0, like_rate_7d=0.0, share_rate_7d=0.0,
                avg_watch_fraction_1d=1.0, avg_watch_fraction_7d=1.0,
                age_hours=12.0,
                trending_score=1 / (1 / 7 + 1) * math.log1p(1),
            ),
            feature_row(
                "vZ", "c2",
                impressions_1d=0, impressions_7d=0, impressions_28d=0,
                views_1d=0, views_7d=0, views_28d=0,
                completion_rate_7d=0.0, like_rate_7d=0.0, share_rate_7d=0.0,
                avg_watch_fraction_1d=0.0, avg_watch_fraction_7d=0.0,
                age_hours=41 * 24.0,
                trending_score=0.0,
            ),
        ],
    )  # fmt: skip
    assertDataFrameEqual(features, expected)


def test_trending_score_prefers_a_big_spike_over_a_small_one(spark: SparkSession) -> None:
    spikes = spark.createDataFrame([(3, 3), (3000, 3100)], "views_1d long, views_7d long")

    score = video_features.trending_score(F.col("views_1d"), F.col("views_7d"))
    scores = [row[0] for row in spikes.select(score).collect()]

    assert scores[1] > scores[0] > 0


def test_job_writes_every_catalog_video_and_a_rerun_replaces(spark: SparkSession, settings: Settings) -> None:
    write_bronze(settings, VIDEOS, VIDEO_ROWS)
    write_bronze(settings, EVENTS, EVENT_ROWS)

    facts = video_features.main(D, settings)
    again = video_features.main(D, settings)

    assert facts["rows_written"] == again["rows_written"] == 3
    assert lake.partition_row_count(VIDEO_FEATURES, settings, D) == 3
    assert again["versions"]["video_features"] == facts["versions"]["video_features"] + 1
    stored = lake.read(VIDEO_FEATURES, settings, dates=[D]).to_pylist()
    assert {row["video_id"]: row["views_28d"] for row in stored} == {"vA": 4, "vB": 1, "vZ": 0}
