"""spark_jobs.ingest_events: contract checks, dedup, line numbers, the landed tables, reruns."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from reelrec import lake
from reelrec.catalog import EVENTS, QUARANTINE, USERS, VIDEOS
from reelrec.settings import Settings
from spark_jobs import ingest_events
from spark_jobs.quarantine import transform_quarantine
from tests.spark_jobs.tiny import (
    ABSENT,
    D,
    arrow,
    event,
    event_line,
    frame,
    ts,
    video,
    write_event_drop,
    write_parquet_drop,
)

pytestmark = pytest.mark.spark

FILE = f"events/dt={D}/part-00000.jsonl"


def lines_frame(spark: SparkSession, lines: list[str]):
    rows = [(FILE, number, text) for number, text in enumerate(lines, start=1)]
    return spark.createDataFrame(rows, ingest_events.LINES_SCHEMA)


def user_rows(users: Iterable[tuple[str, str]]) -> pa.Table:
    """A landed users snapshot: ``(user_id, signup instant)`` pairs, the rest of each row valid."""
    rows = [
        {"user_id": uid, "signup_ts": ts(at), "country": "FR", "age_bucket": "25-34", "dt": D}
        for uid, at in users
    ]
    return arrow(USERS, rows).drop_columns(["dt"])


def video_rows(videos: Iterable[tuple[str, str]]) -> pa.Table:
    """A landed videos snapshot: ``(video_id, upload instant)`` pairs, the rest of each row valid."""
    return arrow(VIDEOS, [video(vid, "c0001", at, 15_000) for vid, at in videos]).drop_columns(["dt"])


def write_snapshot_drops(
    settings: Settings,
    users: Iterable[tuple[str, str]] = (("u000001", "2026-01-01T00:00:00"),),
    videos: Iterable[tuple[str, str]] = (("v0000001", "2026-01-01T00:00:00"),),
) -> None:
    """D's users and videos drops, which ingest_events checks every event's references against."""
    write_parquet_drop(settings, "users", D, user_rows(users))
    write_parquet_drop(settings, "videos", D, video_rows(videos))


# (line, expected reason) for one line per contract rule, plus valid edge cases (reason None).
CASES = [
    (event_line(event_id="ok-view"), None),
    ('{"event_id": "e-2", "event_type": ', "malformed_json"),
    ("", "malformed_json"),
    ("[1, 2]", "not_an_object"),
    (event_line(user_id=ABSENT), "missing_field:user_id"),
    (event_line(video_id="  "), "missing_field:video_id"),
    (event_line(event_id=None), "missing_field:event_id"),
    (event_line(event_type="comment"), "unknown_event_type"),
    (event_line(surface="home"), "unknown_surface"),
    (event_line(position=-1), "invalid_position"),
    (event_line(position="third"), "invalid_position"),
    (event_line(watch_ms=ABSENT), "invalid_watch_ms"),
    (event_line(event_type="skip", watch_ms=-5), "invalid_watch_ms"),
    (event_line(watch_ms="long"), "invalid_watch_ms"),
    (event_line(event_ts=f"{D} 10:00:00"), "unparsable_event_ts"),
    (event_line(event_ts=f"{D}T25:61:00Z"), "unparsable_event_ts"),
    (event_line(event_ts="2026-11-11T00:00:00Z"), "event_ts_outside_date"),
    (event_line(event_ts="2026-11-09T23:59:59.999Z"), "event_ts_outside_date"),
    (event_line(event_id="ok-like", event_type="like", watch_ms=ABSENT), None),
    (event_line(event_id="ok-late", event_ts=f"{D}T23:59:59.999999+00:00"), None),
    (event_line(event_id="ok-skip", event_type="skip", watch_ms=0, position=0), None),
]


def test_each_contract_rule_has_its_reason(spark: SparkSession) -> None:
    checked = ingest_events.transform_parse(lines_frame(spark, [text for text, _ in CASES]), D)

    expected = spark.createDataFrame(
        [(number, reason) for number, (_, reason) in enumerate(CASES, start=1)], "line long, reason string"
    )
    assertDataFrameEqual(checked.select("line", "reason"), expected)


def test_quarantine_rows_keep_file_line_and_raw_record(spark: SparkSession) -> None:
    bad = '{"event_id": "e-2", "event_type": '
    checked = ingest_events.transform_parse(lines_frame(spark, [event_line(), bad]), D)

    quarantine = transform_quarantine(checked, "events", D)

    expected = spark.createDataFrame(
        [("events", FILE, 2, "malformed_json", bad, D)],
        "source string, file string, line long, reason string, record string, dt string",
    )
    assertDataFrameEqual(quarantine, expected)


def test_valid_rows_are_typed_and_deduplicated_by_event_id(spark: SparkSession) -> None:
    lines = [
        event_line(event_id="e-1", event_ts=f"{D}T10:00:00Z", watch_ms=4000),
        event_line(event_id="e-1", event_ts=f"{D}T09:00:00.250Z", watch_ms=1200),  # earlier: wins
        event_line(event_id="e-2", event_type="like", watch_ms=ABSENT, surface="stories", position=7),
        event_line(event_id="e-2", event_type="like", watch_ms=ABSENT, surface="stories", position=7),
    ]
    checked = ingest_events.transform_parse(lines_frame(spark, lines), D)

    events = ingest_events.transform_events(checked, D)

    expected = frame(
        spark,
        EVENTS,
        [
            event("e-1", "view", "u000001", "v0000001", f"{D}T09:00:00.250", 1200, position=3),
            event("e-2", "like", "u000001", "v0000001", f"{D}T10:00:00", None, "stories", 7),
        ],
    )
    assertDataFrameEqual(events, expected)


def test_line_numbers_are_exact_across_splits_and_gzip(
    spark: SparkSession, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = [event_line(event_id=f"plain-{n}") for n in range(1, 61)]
    packed = [event_line(event_id=f"gz-{n}") for n in range(1, 11)]
    folder = write_event_drop(settings, D, {"part-00000.jsonl": plain, "part-00001.jsonl.gz": packed})
    # Tiny splits: the plain file is read by several tasks, so the numbering must stitch them.
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    assert previous is not None
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1024")
    try:
        # Non-empty read partitions (spark_partition_id, not .rdd: this runs on Spark Connect too).
        split = spark.read.text(str(folder / "part-00000.jsonl")).select(F.spark_partition_id())
        assert split.distinct().count() > 1
        lines, files = ingest_events.extract(spark, settings, D)
        rows = lines.collect()
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)

    assert [path.name for path in files] == ["part-00000.jsonl", "part-00001.jsonl.gz"]
    numbered = {(row["file"].rsplit("/", 1)[1], row["line"]): row["record"] for row in rows}
    assert len(numbered) == 70
    for number, text in enumerate(plain, start=1):
        assert numbered[("part-00000.jsonl", number)] == text
    for number, text in enumerate(packed, start=1):
        assert numbered[("part-00001.jsonl.gz", number)] == text


def test_main_lands_the_drop_and_a_rerun_replaces_it(spark: SparkSession, settings: Settings) -> None:
    write_snapshot_drops(settings)
    write_event_drop(
        settings,
        D,
        {
            "part-00000.jsonl": [
                event_line(event_id="e-1", event_ts=f"{D}T08:00:00Z"),
                "<html>502 Bad Gateway</html>",
                event_line(event_id="e-2", user_id=ABSENT),
                event_line(event_id="e-3", event_type="pause"),
                event_line(event_id="e-4", watch_ms=-1),
                event_line(event_id="e-5", event_ts="yesterday"),
                event_line(event_id="e-6", event_ts="2026-11-11T00:00:01Z"),
                event_line(event_id="e-7", event_type="impression", watch_ms=ABSENT),
            ],
            "part-00001.jsonl.gz": [
                event_line(event_id="e-1", event_ts=f"{D}T08:00:00Z"),  # a client retry: same content
                event_line(event_id="e-8", event_type="share", watch_ms=ABSENT),
            ],
        },
    )

    facts = ingest_events.main(D, settings)

    assert facts["rows_in"] == 10
    assert facts["rows_written"] == 3
    assert facts["duplicates_dropped"] == 1
    assert facts["quarantined"] == 6
    assert facts["quarantined_by_reason"] == {
        "event_ts_outside_date": 1,
        "invalid_watch_ms": 1,
        "malformed_json": 1,
        "missing_field:user_id": 1,
        "unknown_event_type": 1,
        "unparsable_event_ts": 1,
    }
    assert facts["files"] == [f"events/dt={D}/part-00000.jsonl", f"events/dt={D}/part-00001.jsonl.gz"]
    events = lake.read(EVENTS, settings, dates=[D]).to_pylist()
    assert sorted((row["event_id"], row["event_ts"].isoformat()) for row in events) == [
        ("e-1", f"{D}T08:00:00+00:00"),
        ("e-7", f"{D}T10:00:00+00:00"),
        ("e-8", f"{D}T10:00:00+00:00"),
    ]
    quarantine = lake.read(QUARANTINE, settings, dates=[D]).to_pylist()
    assert {(row["source"], row["file"], row["line"], row["reason"]) for row in quarantine} == {
        ("events", f"events/dt={D}/part-00000.jsonl", 2, "malformed_json"),
        ("events", f"events/dt={D}/part-00000.jsonl", 3, "missing_field:user_id"),
        ("events", f"events/dt={D}/part-00000.jsonl", 4, "unknown_event_type"),
        ("events", f"events/dt={D}/part-00000.jsonl", 5, "invalid_watch_ms"),
        ("events", f"events/dt={D}/part-00000.jsonl", 6, "unparsable_event_ts"),
        ("events", f"events/dt={D}/part-00000.jsonl", 7, "event_ts_outside_date"),
    }
    assert {row["record"] for row in quarantine if row["line"] == 2} == {"<html>502 Bad Gateway</html>"}

    again = ingest_events.main(D, settings)

    assert {k: v for k, v in again.items() if k != "versions"} == {
        k: v for k, v in facts.items() if k != "versions"
    }
    assert again["versions"]["events"] == facts["versions"]["events"] + 1
    assert lake.partition_row_count(EVENTS, settings, D) == 3
    assert lake.partition_row_count(QUARANTINE, settings, D) == 6


def test_a_drop_without_success_marker_is_refused(spark: SparkSession, settings: Settings) -> None:
    folder = write_event_drop(settings, D, {"part-00000.jsonl": [event_line()]}, success=False)

    with pytest.raises(FileNotFoundError, match=rf"events.*{D}.*_SUCCESS") as err:
        ingest_events.main(D, settings)

    assert str(folder) in str(err.value)
    assert not lake.exists(EVENTS, settings)


def test_a_missing_drop_folder_is_refused(spark: SparkSession, settings: Settings) -> None:
    with pytest.raises(FileNotFoundError, match=rf"events.*{D}.*missing"):
        ingest_events.main(D, settings)


def test_a_marked_drop_without_data_files_is_refused(spark: SparkSession, settings: Settings) -> None:
    write_event_drop(settings, D, {})

    with pytest.raises(FileNotFoundError, match=rf"events for dt={D} has no data files"):
        ingest_events.main(D, settings)
