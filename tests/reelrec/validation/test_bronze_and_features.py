"""GX suites on tiny real Delta partitions: valid data passes, each broken rule fails by name."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

from reelrec import catalog, lake
from reelrec.catalog import Table
from reelrec.dates import day_bounds, feature_timestamp
from reelrec.settings import Settings
from reelrec.validation import (
    ValidationError,
    check,
    expectations,
    read_report,
    report_path,
    suite_tables,
    validate_table,
)

pytestmark = pytest.mark.gx

D = "2026-11-01"
PREV = "2026-10-31"
UTC = dt.UTC


def at(date: str, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.strptime(date, "%Y-%m-%d").replace(hour=hour, minute=minute, tzinfo=UTC)


# ---------------------------------------------------------------- tiny valid partitions
def events_rows(date: str, n_pairs: int = 4) -> list[dict[str, Any]]:
    rows = []
    for i in range(n_pairs):
        user, video, ts = f"u{i:06d}", f"v{i:07d}", at(date, 8) + dt.timedelta(minutes=i)
        rows.append(
            dict(
                event_id=f"{date}-e{2 * i}",
                event_type="impression",
                user_id=user,
                video_id=video,
                event_ts=ts,
                watch_ms=None,
                surface="spotlight",
                position=i,
            )
        )
        watched = i % 2 == 0
        rows.append(
            dict(
                event_id=f"{date}-e{2 * i + 1}",
                event_type="view" if watched else "skip",
                user_id=user,
                video_id=video,
                event_ts=ts + dt.timedelta(seconds=5),
                watch_ms=12_000 if watched else 400,
                surface="discover",
                position=i,
            )
        )
    return rows


def videos_rows(date: str) -> list[dict[str, Any]]:
    return [
        dict(
            video_id=f"v{i:07d}",
            creator_id=f"c{i % 2:05d}",
            upload_ts=at("2026-10-01", i),
            duration_ms=15_000 + i,
            caption=f"clip {i}",
            hashtags=["fyp"],
            frame_embedding=[0.1] * catalog.FRAME_EMBEDDING_DIM,
        )
        for i in range(4)
    ]


def users_rows(date: str) -> list[dict[str, Any]]:
    return [
        dict(user_id=f"u{i:06d}", signup_ts=at("2026-09-01", i), country="US", age_bucket="18-24")
        for i in range(4)
    ]


def creators_rows(date: str) -> list[dict[str, Any]]:
    return [dict(creator_id=f"c{i:05d}", joined_ts=at("2026-08-01", i), country="FR") for i in range(2)]


def follows_rows(date: str) -> list[dict[str, Any]]:
    return [dict(user_id=f"u{i:06d}", creator_id="c00000", followed_at=at(date, 10 + i)) for i in range(2)]


def user_features_rows(date: str) -> list[dict[str, Any]]:
    return [
        dict(
            user_id=f"u{i:06d}",
            impressions_1d=2,
            impressions_7d=5,
            impressions_28d=9,
            views_1d=1,
            views_7d=3,
            views_28d=6,
            watch_ms_1d=1_000,
            watch_ms_7d=4_000,
            watch_ms_28d=9_000,
            completion_rate_7d=0.5,
            completion_rate_28d=0.4,
            like_rate_28d=None,
            active_days_28d=3,
            recent_video_ids=["v0000001"],
            event_timestamp=feature_timestamp(date),
        )
        for i in range(3)
    ]


def video_features_rows(date: str) -> list[dict[str, Any]]:
    return [
        dict(
            video_id=f"v{i:07d}",
            creator_id="c00000",
            impressions_1d=1,
            impressions_7d=4,
            impressions_28d=4,
            views_1d=0,
            views_7d=2,
            views_28d=2,
            completion_rate_7d=1.0,
            like_rate_7d=0.0,
            share_rate_7d=0.25,
            avg_watch_fraction_1d=None,
            avg_watch_fraction_7d=1.2,
            age_hours=30.5,
            trending_score=-0.3,
            event_timestamp=feature_timestamp(date),
        )
        for i in range(3)
    ]


def creator_features_rows(date: str) -> list[dict[str, Any]]:
    return [
        dict(
            creator_id=f"c{i:05d}",
            followers_total=10,
            new_followers_7d=2,
            uploads_7d=1,
            uploads_28d=3,
            views_7d=40,
            engagement_rate_7d=0.1,
            event_timestamp=feature_timestamp(date),
        )
        for i in range(2)
    ]


VALID: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    "events": events_rows,
    "videos": videos_rows,
    "users": users_rows,
    "creators": creators_rows,
    "follows": follows_rows,
    "user_features": user_features_rows,
    "video_features": video_features_rows,
    "creator_features": creator_features_rows,
}


def write(table: Table, settings: Settings, date: str, rows: list[dict[str, Any]]) -> None:
    data = pa.Table.from_pylist([{**r, catalog.DT: date} for r in rows], schema=table.schema)
    lake.write_partition(table, settings, data, date)


def write_suite(suite: str, settings: Settings, date: str = D, **overrides: list[dict[str, Any]]) -> None:
    for name in suite_tables(suite):
        write(catalog.table(name), settings, date, overrides.get(name, VALID[name](date)))


# ---------------------------------------------------------------- valid data
def test_suite_tables() -> None:
    assert suite_tables("bronze") == ["events", "videos", "users", "creators", "follows"]
    assert suite_tables("features") == ["user_features", "video_features", "creator_features"]
    assert suite_tables("outputs") == ["candidates", "user_embeddings", "video_embeddings"]
    with pytest.raises(KeyError, match="unknown validation suite 'gold'"):
        suite_tables("gold")


@pytest.mark.parametrize("suite", ["bronze", "features"])
def test_valid_partitions_pass_and_reports_are_written(suite: str, settings: Settings) -> None:
    write_suite(suite, settings, PREV)
    write_suite(suite, settings, D)
    started = time.perf_counter()
    reports = check(suite, D, settings)
    elapsed = time.perf_counter() - started
    print(f"\n{suite}: validated {len(reports)} tiny partitions in {elapsed:.2f}s")

    assert [r.table for r in reports] == suite_tables(suite)
    for report in reports:
        assert report.success, report.describe()
        assert report.evaluated >= 4
        path = settings.run_dir(D) / "validation" / f"{suite}.{report.table}.json"
        assert report.path == path
        body = json.loads(path.read_text())
        assert body["success"] is True and body["table"] == report.table and body["date"] == D
        assert len(body["expectations"]) == report.evaluated
        assert all(e["success"] for e in body["expectations"])


def test_validate_one_tiny_partition_timing(settings: Settings) -> None:
    write(catalog.EVENTS, settings, D, events_rows(D))
    validate_table("events", D, settings)  # warm: GX import
    started = time.perf_counter()
    report = validate_table("events", D, settings)
    elapsed = time.perf_counter() - started
    print(f"\nvalidate_table(events, 8 rows): {elapsed:.2f}s, {report.evaluated} expectations")
    assert report.success, report.describe()
    # columns, row count, 8 non-null columns, unique event_id, event_ts in day, watch_ms and
    # position >= 0, event_type and surface in their sets, watch_ms present for view/skip
    assert report.evaluated == 17


# ---------------------------------------------------------------- broken rules
def broken(table_name: str, settings: Settings, rows: list[dict[str, Any]]) -> str:
    """Write one table's corrupted ``dt=D`` partition, validate it, return the failure text.

    The text is what :func:`check` puts into its ``ValidationError`` for that table.
    """
    write(catalog.table(table_name), settings, D, rows)
    report = validate_table(table_name, D, settings)
    assert not report.success
    return report.describe()


def test_check_raises_naming_only_the_broken_table(settings: Settings) -> None:
    events = events_rows(D)
    events[3]["event_id"] = events[2]["event_id"]
    write_suite("bronze", settings, events=events)
    with pytest.raises(ValidationError) as info:
        check("bronze", D, settings)
    message = str(info.value)
    assert message.startswith(f"validation suite 'bronze' failed for dt={D}: 1 of 5 table(s) failed (events)")
    assert f"table events, dt={D}" in message
    assert "expect_column_values_to_be_unique on column 'event_id'" in message
    assert f'"event_id": "{events[2]["event_id"]}"' in message
    assert "table videos" not in message
    assert [r.success for r in info.value.reports] == [False, True, True, True, True]


def test_negative_watch_ms_fails(settings: Settings) -> None:
    events = events_rows(D)
    events[1]["watch_ms"] = -250
    message = broken("events", settings, events)
    assert "table events" in message and f"dt={D}" in message
    assert "expect_column_values_to_be_between on column 'watch_ms'" in message
    assert '"watch_ms": -250' in message and events[1]["event_id"] in message


def test_event_on_next_day_fails(settings: Settings) -> None:
    events = events_rows(D)
    events[0]["event_ts"] = day_bounds(D)[1] + dt.timedelta(minutes=1)
    message = broken("events", settings, events)
    assert "expect_column_values_to_be_between on column 'event_ts'" in message
    assert "2026-11-02T00:01:00+00:00" in message and events[0]["event_id"] in message


def test_unknown_event_type_and_view_without_watch_ms_fail(settings: Settings) -> None:
    events = events_rows(D)
    events[0]["event_type"] = "purchase"
    events[1]["watch_ms"] = None  # a view must say how long it was watched
    message = broken("events", settings, events)
    assert "expect_column_values_to_be_in_set on column 'event_type'" in message and "purchase" in message
    assert "expect_column_values_to_not_be_null on column 'watch_ms'" in message
    assert f'"event_id": "{events[1]["event_id"]}", "watch_ms": null' in message


def test_follow_outside_day_and_future_upload_fail(settings: Settings) -> None:
    follows = follows_rows(D)
    follows[0]["followed_at"] = at(PREV, 23)
    message = broken("follows", settings, follows)
    assert "table follows" in message and "'followed_at'" in message and "2026-10-31T23:00:00" in message
    videos = videos_rows(D)
    videos[2]["upload_ts"] = at("2026-11-05", 0)
    message = broken("videos", settings, videos)
    assert "table videos" in message and "'upload_ts'" in message and "2026-11-05T00:00:00" in message


def test_duplicate_compound_key_fails(settings: Settings) -> None:
    follows = follows_rows(D)
    follows[1]["user_id"] = follows[0]["user_id"]  # same (user_id, creator_id) edge twice
    message = broken("follows", settings, follows)
    assert "expect_compound_columns_to_be_unique on column 'user_id, creator_id'" in message
    duplicate = json.dumps({"user_id": follows[0]["user_id"], "creator_id": "c00000"})
    assert message.count(f"offending row: {duplicate}") == 2


def test_rate_above_one_fails(settings: Settings) -> None:
    rows = video_features_rows(D)
    rows[1]["like_rate_7d"] = 1.5
    message = broken("video_features", settings, rows)
    assert "table video_features" in message and f"dt={D}" in message
    assert "expect_column_values_to_be_between on column 'like_rate_7d'" in message
    assert '"like_rate_7d": 1.5' in message and rows[1]["video_id"] in message


def test_engagement_rate_above_one_passes_and_a_negative_one_fails(settings: Settings) -> None:
    # engagements per view (likes + shares + follows over views) is a ratio, not a share: a view
    # followed by a like and a share is two engagements
    rows = creator_features_rows(D)
    rows[0]["engagement_rate_7d"] = 1.5
    write(catalog.CREATOR_FEATURES, settings, D, rows)
    report = validate_table("creator_features", D, settings)
    assert report.success, report.describe()

    rows[1]["engagement_rate_7d"] = -0.5
    message = broken("creator_features", settings, rows)
    assert "expect_column_values_to_be_between on column 'engagement_rate_7d'" in message
    assert '"engagement_rate_7d": -0.5' in message and rows[1]["creator_id"] in message


def test_windowed_counts_must_not_shrink(settings: Settings) -> None:
    rows = user_features_rows(D)
    rows[2]["views_1d"] = 7  # more views yesterday than in the last 7 days
    message = broken("user_features", settings, rows)
    assert "table user_features" in message
    assert "expect_column_pair_values_a_to_be_greater_than_b on column 'views_1d <= views_7d'" in message
    assert '"views_1d": 7' in message and rows[2]["user_id"] in message


def test_feature_timestamp_must_be_end_of_day(settings: Settings) -> None:
    rows = creator_features_rows(D)
    rows[0]["event_timestamp"] = at(D, 12)
    message = broken("creator_features", settings, rows)
    assert "table creator_features" in message and "'event_timestamp'" in message
    assert "2026-11-01T12:00:00+00:00" in message


def test_volume_drop_against_previous_day_fails(settings: Settings) -> None:
    write(catalog.EVENTS, settings, PREV, events_rows(PREV, n_pairs=100))  # 200 rows
    message = broken("events", settings, events_rows(D, n_pairs=10))  # 20 rows: 10x fewer
    assert "table events" in message and "expect_table_row_count_to_be_between" in message
    assert f"dt={PREV} (200 rows)" in message and "observed 20" in message
    # a looser factor accepts the same drop
    assert validate_table("events", D, settings, volume_factor=10).success


def test_volume_is_not_compared_against_a_tiny_previous_day(settings: Settings) -> None:
    write(catalog.EVENTS, settings, PREV, events_rows(PREV, n_pairs=10))  # 20 rows: below the floor
    write(catalog.EVENTS, settings, D, events_rows(D, n_pairs=1))
    assert validate_table("events", D, settings).success


def test_a_day_without_new_follows_passes(settings: Settings) -> None:
    write(catalog.FOLLOWS, settings, PREV, follows_rows(PREV))
    write(catalog.FOLLOWS, settings, D, [])
    report = validate_table("follows", D, settings)
    assert report.success and report.evaluated == 0


def test_missing_partition_fails_clearly(settings: Settings) -> None:
    write(catalog.EVENTS, settings, PREV, events_rows(PREV))
    with pytest.raises(ValidationError) as info:
        check("bronze", D, settings)
    message = str(info.value)
    assert "5 of 5 table(s) failed" in message
    assert f"table events, dt={D}" in message and f"partition dt={D} is missing or empty" in message
    assert "table follows" in message and "Delta table does not exist" in message

    report = validate_table("user_features", D, settings)  # table never written
    assert not report.success and report.failed[0]["expectation"] == "partition_present"
    body = json.loads(report_path("features", "user_features", D, settings).read_text())
    assert body["success"] is False and "does not exist" in body["failed"][0]["observed"]


def test_reports_record_the_delta_version_they_validated(settings: Settings) -> None:
    write(catalog.EVENTS, settings, D, events_rows(D))
    write(catalog.EVENTS, settings, D, events_rows(D))  # a rerun: version 1
    report = validate_table("events", D, settings)
    assert report.success and report.versions == {"events": 1} == {
        "events": lake.version(catalog.EVENTS, settings)
    }
    assert json.loads(report.path.read_text())["versions"] == {"events": 1}  # type: ignore[union-attr]
    assert read_report("bronze", "events", D, settings) == report
    assert read_report("bronze", "videos", D, settings) is None

    missing = validate_table("user_features", D, settings)  # never written: no version
    assert missing.versions == {"user_features": None}


def test_one_expectations_builder_for_every_suite() -> None:
    def row_count_rule(table: Table) -> dict[str, Any]:
        rule = next(e for e in expectations(table, D, previous_rows=200) if "row_count" in e.expectation_type)
        return {"min": rule.min_value, "max": rule.max_value}

    # bronze and silver compare the volume with D-1's; the gold outputs only ask for rows
    assert row_count_rule(catalog.EVENTS) == {"min": 100, "max": 400}
    assert row_count_rule(catalog.USER_FEATURES) == {"min": 100, "max": 400}
    assert row_count_rule(catalog.CANDIDATES) == {"min": 1, "max": None}


def test_failed_report_json_names_rule_and_rows(settings: Settings) -> None:
    events = events_rows(D)
    events[5]["position"] = -1
    write(catalog.EVENTS, settings, D, events)
    report = validate_table("events", D, settings)
    assert not report.success
    body = json.loads(report.path.read_text())  # type: ignore[union-attr]
    (failure,) = body["failed"]
    assert failure["expectation"] == "expect_column_values_to_be_between"
    assert failure["column"] == "position" and failure["rule"] == "min_value=0.0"
    assert failure["observed"]["unexpected_values"] == [-1]
    assert failure["sample_rows"] == [{"event_id": events[5]["event_id"], "position": -1}]
