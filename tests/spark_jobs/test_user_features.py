"""spark_jobs.user_features: hand-computed features, window edges, recent history, the job."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from reelrec import lake
from reelrec.catalog import EVENTS, USER_FEATURES, VIDEOS
from reelrec.dates import add_days, feature_timestamp
from reelrec.settings import Settings
from spark_jobs import user_features
from spark_jobs.snapshots import MissingSnapshotError
from tests.spark_jobs.tiny import D, event, frame, video, write_bronze

pytestmark = pytest.mark.spark

D_1, D_3, D_10 = add_days(D, -1), add_days(D, -3), add_days(D, -10)
D_27, D_28, NEXT = add_days(D, -27), add_days(D, -28), add_days(D, 1)

VIDEO_ROWS = [
    video("vA", "c1", "2026-10-01T00:00:00", 10_000),
    video("vB", "c1", "2026-10-01T00:00:00", 20_000),
    # vC is not in the snapshot of D: its views count, but never as completed.
]

EVENT_ROWS = [
    # u1: the user whose every feature is worked out by hand below.
    event("u1-1", "impression", "u1", "vA", f"{D}T10:00:00"),
    event("u1-2", "view", "u1", "vA", f"{D}T10:00:01", 9_500),  # 95% of 10 s: completed
    event("u1-3", "like", "u1", "vA", f"{D}T10:00:30"),
    event("u1-4", "impression", "u1", "vB", f"{D}T11:00:00"),
    event("u1-5", "skip", "u1", "vB", f"{D}T11:00:01", 500),  # watch time, but not a view
    event("u1-6", "impression", "u1", "vB", f"{D_3}T12:00:00"),
    event("u1-7", "view", "u1", "vB", f"{D_3}T12:00:01", 10_000),  # half of 20 s
    event("u1-8", "impression", "u1", "vC", f"{D_10}T08:00:00"),
    event("u1-9", "view", "u1", "vC", f"{D_10}T08:00:01", 3_000),
    event("u1-10", "impression", "u1", "vA", f"{D_27}T00:00:00"),  # first day of the 28d window
    event("u1-11", "view", "u1", "vA", f"{D_27}T00:00:01", 5_000),
    event("u1-12", "impression", "u1", "vB", f"{D_28}T23:59:59"),  # one day too old
    event("u1-13", "view", "u1", "vB", f"{D_28}T23:59:59", 20_000),
    event("u1-14", "view", "u1", "vB", f"{NEXT}T00:00:00", 20_000),  # after the end of D
    event("u1-15", "like", "u1", "vB", f"{NEXT}T00:00:05"),
    # u2 is only active outside the window: no row. u3 only liked: a row of zeros.
    event("u2-1", "view", "u2", "vA", f"{D_28}T12:00:00", 10_000),
    event("u2-2", "view", "u2", "vA", f"{NEXT}T12:00:00", 10_000),
    event("u3-1", "like", "u3", "vB", f"{D_1}T18:00:00"),
]


def feature_row(user_id: str, **values: object) -> dict[str, object]:
    return {"user_id": user_id, **values, "event_timestamp": feature_timestamp(D), "dt": D}


def test_features_match_hand_computed_values(spark: SparkSession) -> None:
    features = user_features.transform_user_features(
        frame(spark, EVENTS, EVENT_ROWS), frame(spark, VIDEOS, VIDEO_ROWS), D
    )

    expected = frame(
        spark,
        USER_FEATURES,
        [
            feature_row(
                "u1",
                impressions_1d=2, impressions_7d=3, impressions_28d=5,
                views_1d=1, views_7d=2, views_28d=4,
                watch_ms_1d=9_500 + 500, watch_ms_7d=20_000, watch_ms_28d=28_000,
                completion_rate_7d=1 / 2,  # vA today yes, vB on D-3 no
                completion_rate_28d=1 / 4,  # + vC (unknown duration) no, vA on D-27 no
                like_rate_28d=1 / 4,
                active_days_28d=4,
                recent_video_ids=["vA", "vB", "vC"],  # last view of each, newest first
            ),
            feature_row(
                "u3",
                impressions_1d=0, impressions_7d=0, impressions_28d=0,
                views_1d=0, views_7d=0, views_28d=0,
                watch_ms_1d=0, watch_ms_7d=0, watch_ms_28d=0,
                completion_rate_7d=0.0, completion_rate_28d=0.0, like_rate_28d=0.0,
                active_days_28d=1,
                recent_video_ids=[],
            ),
        ],
    )  # fmt: skip
    assertDataFrameEqual(features, expected)


def test_recent_video_ids_are_the_last_50_distinct_newest_first(spark: SparkSession) -> None:
    views = [
        event(f"e{n}", "view", "u9", f"v{n:03d}", f"{D}T{n // 60:02d}:{n % 60:02d}:00", 2_000)
        for n in range(60)
    ]
    views.append(event("again", "view", "u9", "v005", f"{D}T23:00:00", 2_000))  # re-watch: newest now

    features = user_features.transform_user_features(frame(spark, EVENTS, views), frame(spark, VIDEOS, []), D)

    (row,) = features.select("recent_video_ids", "views_1d").collect()
    assert row["views_1d"] == 61
    assert row["recent_video_ids"] == ["v005"] + [f"v{n:03d}" for n in range(59, 10, -1)]


def test_job_reads_the_window_writes_and_a_rerun_replaces(spark: SparkSession, settings: Settings) -> None:
    write_bronze(settings, VIDEOS, VIDEO_ROWS)
    write_bronze(settings, EVENTS, EVENT_ROWS)

    events, _ = user_features.extract(spark, settings, D)
    facts = user_features.main(D, settings)
    again = user_features.main(D, settings)

    assert {row["dt"] for row in events.select("dt").distinct().collect()} == {D, D_1, D_3, D_10, D_27}
    assert facts["rows_written"] == again["rows_written"] == 2
    assert lake.partition_row_count(USER_FEATURES, settings, D) == 2
    assert again["versions"]["user_features"] == facts["versions"]["user_features"] + 1
    assert facts["inputs"] == {"events": lake.version(EVENTS, settings), "videos": 0}
    stored = lake.read(USER_FEATURES, settings, dates=[D]).to_pylist()
    assert {row["user_id"]: row["views_28d"] for row in stored} == {"u1": 4, "u3": 0}


def test_job_refuses_a_date_without_a_videos_snapshot(spark: SparkSession, settings: Settings) -> None:
    write_bronze(settings, EVENTS, EVENT_ROWS)

    with pytest.raises(MissingSnapshotError, match=rf"bronze\.videos has no snapshot rows for dt={D}"):
        user_features.main(D, settings)
