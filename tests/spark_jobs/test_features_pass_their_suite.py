"""Every feature job's output passes the "features" suite: the jobs and the suite agree on the contract.

The nightly DAG runs the feature jobs and then the "features" gate; a rule the jobs can legally break
would stop the night. So the jobs run here on the synthetic tiny world and on a hand-made week where
a creator gets more engagements than views, and their outputs go through the suite as the gate does.
"""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from reelrec import lake
from reelrec.catalog import CREATOR_FEATURES, CREATORS, EVENTS, FOLLOWS, VIDEOS
from reelrec.settings import Settings
from reelrec.validation import check, suite_tables, validate_table
from spark_jobs import creator_features, ingest_catalogs, ingest_events, user_features, video_features
from tests.spark_jobs.test_creator_features import CREATOR_ROWS, EVENT_ROWS, FOLLOW_ROWS, VIDEO_ROWS
from tests.spark_jobs.tiny import D, write_bronze

synthetic_world = pytest.importorskip("synthetic_world")

pytestmark = [pytest.mark.spark, pytest.mark.gx, pytest.mark.slow]

DAY = "2026-11-01"
FEATURE_JOBS = (user_features, video_features, creator_features)


def test_feature_jobs_on_the_tiny_world_pass_the_features_suite(
    spark: SparkSession, settings: Settings
) -> None:
    synthetic_world.generate(settings, preset="tiny", start=DAY, days=1)
    ingest_events.main(DAY, settings)
    ingest_catalogs.main(DAY, settings)
    for job in FEATURE_JOBS:
        assert job.main(DAY, settings)["rows_written"] > 0, job.__name__

    reports = check("features", DAY, settings)  # raises ValidationError naming table, rule and rows

    assert [r.table for r in reports] == suite_tables("features")
    assert all(r.success and r.evaluated > 0 for r in reports)


def test_an_engagement_rate_above_one_is_a_legal_feature(spark: SparkSession, settings: Settings) -> None:
    for table, rows in (
        (CREATORS, CREATOR_ROWS),
        (VIDEOS, VIDEO_ROWS),
        (FOLLOWS, FOLLOW_ROWS),
        (EVENTS, EVENT_ROWS),
    ):
        write_bronze(settings, table, rows)
    creator_features.main(D, settings)
    rates = {
        row["creator_id"]: row["engagement_rate_7d"]
        for row in lake.read(CREATOR_FEATURES, settings, dates=[D]).to_pylist()
    }
    assert rates["c1"] == 1.5  # a like, a share and a follow over two views

    report = validate_table(CREATOR_FEATURES.name, D, settings)

    assert report.success, report.describe()
