"""All five jobs on two days of the synthetic tiny world, checked against the generator's own counts."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
from pyspark.sql import SparkSession

from reelrec import lake
from reelrec.catalog import EVENTS, USER_FEATURES, VIDEO_FEATURES
from reelrec.settings import Settings
from spark_jobs import creator_features, ingest_catalogs, ingest_events, user_features, video_features

synthetic = pytest.importorskip("synthetic_world")

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAYS = ("2026-11-01", "2026-11-02")
# The generator's corruption kinds and the quarantine reasons they must come back as.
REASON_OF_KIND = {
    "malformed_json": "malformed_json",
    "missing_user_id": "missing_field:user_id",
    "unknown_event_type": "unknown_event_type",
    "negative_watch_ms": "invalid_watch_ms",
    "unparsable_event_ts": "unparsable_event_ts",
    "event_ts_other_day": "event_ts_outside_date",
}


def test_jobs_reproduce_the_generators_counts(spark: SparkSession, settings: Settings) -> None:
    world = synthetic.generate(settings, preset="tiny", start=DAYS[0], days=len(DAYS))

    for date in DAYS:
        truth = world["dates"][date]
        events = ingest_events.main(date, settings)
        catalogs = ingest_catalogs.main(date, settings)["feeds"]

        assert events["rows_written"] == truth["events"], date
        assert events["duplicates_dropped"] == truth["duplicates"], date
        assert events["quarantined_by_reason"] == {
            REASON_OF_KIND[kind]: count for kind, count in truth["bad_rows"].items() if count
        }, date
        assert {feed: fact["rows_written"] for feed, fact in catalogs.items()} == {
            feed: truth[feed] for feed in ("videos", "users", "creators", "follows")
        }, date
        assert all(fact["quarantined"] == 0 for fact in catalogs.values()), date

    date, truth = DAYS[-1], world["dates"][DAYS[-1]]
    assert user_features.main(date, settings)["rows_written"] == len(
        pc.unique(lake.read(EVENTS, settings, dates=DAYS, columns=["user_id"]).column("user_id"))
    )
    assert video_features.main(date, settings)["rows_written"] == truth["videos"]
    assert creator_features.main(date, settings)["rows_written"] == truth["creators"]

    users = lake.read(USER_FEATURES, settings, dates=[date])
    videos = lake.read(VIDEO_FEATURES, settings, dates=[date])
    # Every view of D is counted once per user and once per video (all viewed videos are cataloged).
    assert pc.sum(users.column("views_1d")).as_py() == truth["by_type"]["view"]
    assert pc.sum(videos.column("views_1d")).as_py() == truth["by_type"]["view"]
    assert pc.sum(users.column("impressions_7d")).as_py() == sum(
        world["dates"][day]["by_type"]["impression"] for day in DAYS
    )
    for table, rate in (
        (users, "completion_rate_28d"),
        (videos, "completion_rate_7d"),
        (videos, "like_rate_7d"),
    ):
        assert 0.0 <= pc.min(table.column(rate)).as_py() <= pc.max(table.column(rate)).as_py() <= 1.0, rate
    assert max(len(ids) for ids in users.column("recent_video_ids").to_pylist()) <= 50
