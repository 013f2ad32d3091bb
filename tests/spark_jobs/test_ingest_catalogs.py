"""spark_jobs.ingest_catalogs: per-feed checks, the landed snapshots and edges, reruns, refusals."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from reelrec import lake
from reelrec.catalog import CREATORS, FOLLOWS, QUARANTINE, USERS, VIDEOS, Table
from reelrec.settings import Settings
from spark_jobs import ingest_catalogs
from tests.spark_jobs.tiny import D, frame, ts, video, write_parquet_drop

pytestmark = pytest.mark.spark


def drop_schema(table: Table) -> pa.Schema:
    """The landing schema of a feed: the table's columns without ``dt``, all nullable."""
    return pa.schema([field.with_nullable(True) for field in table.schema if field.name != "dt"])


def raw_drop(spark: SparkSession, table: Table, rows: list[dict[str, Any]]) -> DataFrame:
    """What extract hands a check: the feed's columns plus file, 1-based line and record."""
    schema = drop_schema(table).append(pa.field("file", pa.string())).append(pa.field("line", pa.int64()))
    schema = schema.append(pa.field("record", pa.string()))
    data = [
        {**{k: v for k, v in row.items() if k != "dt"}, "file": "f.parquet", "line": n, "record": f"row {n}"}
        for n, row in enumerate(rows, start=1)
    ]
    return spark.createDataFrame(pa.Table.from_pylist(data, schema=schema))


def reasons(checked: DataFrame) -> list[tuple[int, str | None]]:
    return sorted((row["line"], row["reason"]) for row in checked.select("line", "reason").collect())


def test_videos_check_names_every_broken_rule(spark: SparkSession) -> None:
    rows = [
        video("v1", "c1", f"{D}T08:00:00", 30_000),
        video(None, "c1", "2026-11-01T00:00:00", 30_000),
        video("v3", "", "2026-11-01T00:00:00", 30_000),
        video("v4", "c1", "2026-11-01T00:00:00", 0),
        video("v5", "c1", "2026-11-01T00:00:00", -5),
        video("v6", "c1", "2026-11-01T00:00:00", 30_000, frame_embedding=[0.1] * 31),
        video("v7", "c1", "2026-11-01T00:00:00", 30_000, frame_embedding=[float("nan")] + [0.1] * 31),
        video("v8", "c1", "2026-11-01T00:00:00", 30_000, frame_embedding=None),
        video("v9", "c1", "2026-11-11T00:00:00", 30_000),
        video("v1", "c2", "2026-11-01T00:00:00", 9_000),  # a second v1: the first row wins
        video("v2", "c1", "2026-11-01T00:00:00", 0),  # a broken v2 does not shadow the good one
        video("v2", "c1", "2026-11-01T00:00:00", 12_000),
        {**video("v13", "c1", "2026-11-01T00:00:00", 30_000), "upload_ts": None},
    ]

    checked = ingest_catalogs.transform_videos(raw_drop(spark, VIDEOS, rows), D)

    assert reasons(checked) == [
        (1, None),
        (2, "missing_field:video_id"),
        (3, "missing_field:creator_id"),
        (4, "invalid_duration_ms"),
        (5, "invalid_duration_ms"),
        (6, "invalid_frame_embedding"),
        (7, "invalid_frame_embedding"),
        (8, "invalid_frame_embedding"),
        (9, "upload_ts_after_date"),
        (10, "duplicate_key:video_id"),
        (11, "invalid_duration_ms"),
        (12, None),
        (13, "missing_field:upload_ts"),
    ]
    accepted = ingest_catalogs.transform_accepted(checked, VIDEOS, D)
    assertDataFrameEqual(accepted, frame(spark, VIDEOS, [rows[0], rows[11]]))


def test_follows_check_keeps_the_earliest_copy_of_an_edge(spark: SparkSession) -> None:
    def edge(user: str | None, creator: str | None, at: str) -> dict[str, Any]:
        return {"user_id": user, "creator_id": creator, "followed_at": ts(at)}

    rows = [
        edge("u1", "c1", f"{D}T10:00:00"),
        edge("u1", "c1", f"{D}T09:00:00"),
        edge("u2", "c1", "2026-11-11T00:00:00"),
        edge("u3", None, f"{D}T10:00:00"),
        edge("u2", "c2", f"{D}T12:00:00"),
    ]

    checked = ingest_catalogs.transform_follows(raw_drop(spark, FOLLOWS, rows), D)

    assert reasons(checked) == [
        (1, "duplicate_key:user_id,creator_id"),
        (2, None),
        (3, "followed_at_outside_date"),
        (4, "missing_field:creator_id"),
        (5, None),
    ]


def test_users_and_creators_checks(spark: SparkSession) -> None:
    def user(
        user_id: str, age_bucket: str | None, signup: str | None = "2026-01-01T00:00:00"
    ) -> dict[str, Any]:
        return {
            "user_id": user_id,
            "signup_ts": signup and ts(signup),
            "country": "SE",
            "age_bucket": age_bucket,
        }

    users = [user("u1", "18-24"), user("u2", None), user("u3", "12-"), user("u4", "45+", signup=None)]
    creators = [
        {"creator_id": "c1", "joined_ts": ts("2025-01-01T00:00:00"), "country": "US"},
        {"creator_id": "c1", "joined_ts": ts("2025-02-01T00:00:00"), "country": "US"},
        {"creator_id": "c3", "joined_ts": None, "country": "US"},
    ]

    checked_users = ingest_catalogs.transform_users(raw_drop(spark, USERS, users), D)
    checked_creators = ingest_catalogs.transform_creators(raw_drop(spark, CREATORS, creators), D)

    assert reasons(checked_users) == [
        (1, None),
        (2, None),
        (3, "unknown_age_bucket"),
        (4, "missing_field:signup_ts"),
    ]
    assert reasons(checked_creators) == [
        (1, None),
        (2, "duplicate_key:creator_id"),
        (3, "missing_field:joined_ts"),
    ]


def write_catalog_drops(settings: Settings, skip_success: str | None = None) -> None:
    videos = [
        video("v0000001", "c00001", "2026-11-01T00:00:00", 30_000),
        video("v0000002", "c00001", f"{D}T03:00:00", 12_000),
        video("v0000003", "c00002", "2026-11-02T00:00:00", 0),  # quarantined
    ]
    users = [
        {
            "user_id": "u000001",
            "signup_ts": ts("2026-01-01T00:00:00"),
            "country": "SE",
            "age_bucket": "18-24",
        },
        {
            "user_id": "u000001",
            "signup_ts": ts("2026-01-01T00:00:00"),
            "country": "SE",
            "age_bucket": "18-24",
        },
    ]
    creators = [
        {"creator_id": "c00001", "joined_ts": ts("2025-01-01T00:00:00"), "country": "US"},
        {"creator_id": "c00002", "joined_ts": ts("2025-03-01T00:00:00"), "country": "BR"},
    ]
    follows = [
        {"user_id": "u000001", "creator_id": "c00001", "followed_at": ts(f"{D}T11:00:00")},
        {"user_id": "u000001", "creator_id": None, "followed_at": ts(f"{D}T11:00:00")},
    ]
    drops = {"videos": (VIDEOS, videos), "users": (USERS, users), "creators": (CREATORS, creators)}
    drops["follows"] = (FOLLOWS, follows)
    for feed, (table, rows) in drops.items():
        data = pa.Table.from_pylist(
            [{k: v for k, v in r.items() if k != "dt"} for r in rows], drop_schema(table)
        )
        write_parquet_drop(settings, feed, D, data, success=feed != skip_success)


def test_main_lands_every_feed_and_a_rerun_replaces_it(spark: SparkSession, settings: Settings) -> None:
    write_catalog_drops(settings)

    facts = ingest_catalogs.main(D, settings)

    summary = {
        feed: (fact["rows_in"], fact["rows_written"], fact["quarantined_by_reason"])
        for feed, fact in facts["feeds"].items()
    }
    assert summary == {
        "videos": (3, 2, {"invalid_duration_ms": 1}),
        "users": (2, 1, {"duplicate_key:user_id": 1}),
        "creators": (2, 2, {}),
        "follows": (2, 1, {"missing_field:creator_id": 1}),
    }
    assert sorted(lake.read(VIDEOS, settings, dates=[D]).column("video_id").to_pylist()) == [
        "v0000001",
        "v0000002",
    ]
    quarantine = lake.read(QUARANTINE, settings, dates=[D]).to_pylist()
    assert sorted((row["source"], row["file"], row["line"], row["reason"]) for row in quarantine) == [
        ("follows", f"follows/dt={D}/follows.parquet", 2, "missing_field:creator_id"),
        ("users", f"users/dt={D}/users.parquet", 2, "duplicate_key:user_id"),
        ("videos", f"videos/dt={D}/videos.parquet", 3, "invalid_duration_ms"),
    ]
    video_record = next(row["record"] for row in quarantine if row["source"] == "videos")
    assert '"video_id":"v0000003"' in video_record and '"duration_ms":0' in video_record

    again = ingest_catalogs.main(D, settings)

    for feed, fact in again["feeds"].items():
        assert fact["rows_written"] == facts["feeds"][feed]["rows_written"], feed
        assert fact["versions"]["quarantine"] > facts["feeds"][feed]["versions"]["quarantine"], feed
    assert lake.partition_row_count(QUARANTINE, settings, D) == 3
    assert lake.partition_row_count(USERS, settings, D) == 1


def test_an_incomplete_feed_stops_the_job_before_any_write(spark: SparkSession, settings: Settings) -> None:
    write_catalog_drops(settings, skip_success="follows")

    with pytest.raises(FileNotFoundError, match=rf"follows for dt={D} is incomplete.*_SUCCESS"):
        ingest_catalogs.main(D, settings)

    assert not lake.exists(VIDEOS, settings)


def test_a_drop_missing_a_column_is_refused(spark: SparkSession, settings: Settings) -> None:
    write_catalog_drops(settings)
    thin = pa.table({"video_id": ["v1"], "creator_id": ["c1"]})
    write_parquet_drop(settings, "videos", D, thin)

    with pytest.raises(
        lake.SchemaContractError, match=rf"videos for dt={D} .*missing column\(s\) \['upload_ts'"
    ):
        ingest_catalogs.main(D, settings)
