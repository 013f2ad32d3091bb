"""spark_jobs.creator_features: hand-computed features, window edges, idle creators, the job."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from reelrec import lake
from reelrec.catalog import CREATOR_FEATURES, CREATORS, EVENTS, FOLLOWS, VIDEOS
from reelrec.dates import add_days, feature_timestamp
from reelrec.settings import Settings
from spark_jobs import creator_features
from tests.spark_jobs.tiny import D, event, frame, ts, video, write_bronze

pytestmark = pytest.mark.spark

D_2, D_3, D_6, D_7 = (add_days(D, -n) for n in (2, 3, 6, 7))
D_10, D_20, D_40, NEXT = add_days(D, -10), add_days(D, -20), add_days(D, -40), add_days(D, 1)


def creator(creator_id: str) -> dict[str, Any]:
    return {"creator_id": creator_id, "joined_ts": ts("2025-01-01T00:00:00"), "country": "US", "dt": D}


def edge(user_id: str, creator_id: str, dt: str) -> dict[str, Any]:
    return {"user_id": user_id, "creator_id": creator_id, "followed_at": ts(f"{dt}T12:00:00"), "dt": dt}


CREATOR_ROWS = [creator("c1"), creator("c2"), creator("c3")]  # c3 is idle
VIDEO_ROWS = [
    video("vA", "c1", f"{add_days(D, -1)}T00:00:00", 10_000),
    video("vB", "c1", f"{D_20}T00:00:00", 10_000),
    video("vC", "c2", f"{D_6}T00:00:00", 10_000),  # first instant of the 7-day window
    video("vD", "c2", f"{D_7}T23:59:59", 10_000),  # last instant before it: 28d only
    video("vE", "c2", f"{D_40}T00:00:00", 10_000),  # neither
]
FOLLOW_ROWS = [
    edge("u1", "c1", D),
    edge("u2", "c1", D_10),  # an old follower: total only
    edge("u3", "c1", NEXT),  # after D: never counted
    edge("u1", "c2", D_6),
    edge("u1", "c2", D_3),  # the same edge again on a later day counts once
]
EVENT_ROWS = [
    event("e1", "view", "u1", "vA", f"{D}T10:00:00", 5_000),
    event("e2", "view", "u2", "vA", f"{D_6}T10:00:00", 5_000),
    event("e3", "like", "u1", "vA", f"{D}T10:00:10"),
    event("e4", "share", "u2", "vB", f"{D_2}T10:00:10"),
    event("e5", "follow", "u1", "vA", f"{D}T10:00:20"),
    event("e6", "view", "u3", "vB", f"{D_7}T10:00:00", 5_000),  # one day too old for 7d
    event("e7", "view", "u3", "vA", f"{NEXT}T10:00:00", 5_000),  # after D
    event("e8", "view", "u1", "vC", f"{D}T11:00:00", 5_000),
]


def feature_row(creator_id: str, *counts: int, engagement_rate_7d: float) -> dict[str, Any]:
    names = ("followers_total", "new_followers_7d", "uploads_7d", "uploads_28d", "views_7d")
    return {
        "creator_id": creator_id,
        **dict(zip(names, counts, strict=True)),
        "engagement_rate_7d": engagement_rate_7d,
        "event_timestamp": feature_timestamp(D),
        "dt": D,
    }


def test_features_match_hand_computed_values(spark: SparkSession) -> None:
    features = creator_features.transform_creator_features(
        frame(spark, CREATORS, CREATOR_ROWS),
        frame(spark, VIDEOS, VIDEO_ROWS),
        frame(spark, FOLLOWS, FOLLOW_ROWS),
        frame(spark, EVENTS, EVENT_ROWS),
        D,
    )

    expected = frame(
        spark,
        CREATOR_FEATURES,
        [
            # c1: followers u1, u2 (u3 is after D); uploads vA (7d), vB (28d); views e1, e2;
            # engagement like e3 + share e4 + follow e5 over 2 views: 1.5 engagements per view
            # (a ratio, not a share of viewers; the features suite allows it above 1).
            feature_row("c1", 2, 1, 1, 2, 2, engagement_rate_7d=3 / 2),
            # c2: follower u1 (twice); uploads vC (7d), vD (28d); one view, no engagement.
            feature_row("c2", 1, 1, 1, 2, 1, engagement_rate_7d=0.0),
            feature_row("c3", 0, 0, 0, 0, 0, engagement_rate_7d=0.0),
        ],
    )
    assertDataFrameEqual(features, expected)


def test_job_writes_every_catalog_creator_and_a_rerun_replaces(
    spark: SparkSession, settings: Settings
) -> None:
    write_bronze(settings, CREATORS, CREATOR_ROWS)
    write_bronze(settings, VIDEOS, VIDEO_ROWS)
    write_bronze(settings, FOLLOWS, FOLLOW_ROWS)
    write_bronze(settings, EVENTS, EVENT_ROWS)

    facts = creator_features.main(D, settings)
    again = creator_features.main(D, settings)

    assert facts["rows_written"] == again["rows_written"] == 3
    assert lake.partition_row_count(CREATOR_FEATURES, settings, D) == 3
    assert again["versions"]["creator_features"] == facts["versions"]["creator_features"] + 1
    stored = lake.read(CREATOR_FEATURES, settings, dates=[D]).to_pylist()
    assert {row["creator_id"]: row["followers_total"] for row in stored} == {"c1": 2, "c2": 1, "c3": 0}
