"""Issue 11, bad input in the catalog snapshots and abuse: each class lands where docs/reliability.md says.

Snapshot drops (videos, users, creators) with drifted columns, duplicate keys, a vanished creator,
broken frame embeddings and a 1 MB caption; and a bot user with 100x the normal events. Every
class ends either quarantined with a reason naming the field, or failing the night at once with a
``DataError`` naming the file and column; and the count law holds: rows landed = rows in bronze +
rows quarantined (a snapshot deduplicates nothing silently).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession

from models.content import MAX_TEXT_CHARS, video_text
from models.interactions import BOT_MIN_EVENTS, bot_user_days
from models.training_set import TrainingSetConfig, impression_outcomes, labels
from reelrec import lake
from reelrec.catalog import (
    CAPTION_MAX_CHARS,
    CREATORS,
    EVENTS,
    FOLLOWS,
    FRAME_EMBEDDING_DIM,
    QUARANTINE,
    USERS,
    VIDEOS,
    Table,
)
from reelrec.errors import DataError
from reelrec.settings import Settings
from spark_jobs import ingest_catalogs
from spark_jobs.snapshots import check_drop_schema
from tests.spark_jobs.test_ingest_catalogs import drop_schema, raw_drop, reasons
from tests.spark_jobs.tiny import D, event, ts, video, write_bronze, write_parquet_drop

CREATOR = {"creator_id": "c00001", "joined_ts": ts("2025-01-01T00:00:00"), "country": "US"}
USER = {"user_id": "u000001", "signup_ts": ts("2026-01-01T00:00:00"), "country": "SE", "age_bucket": "18-24"}


def _video_landing(**types: pa.DataType) -> pa.Schema:
    """The videos landing schema with some columns retyped."""
    return pa.schema([pa.field(f.name, types.get(f.name, f.type)) for f in drop_schema(VIDEOS)])


def _raw(spark: SparkSession, schema: pa.Schema, rows: list[dict[str, Any]]) -> DataFrame:
    """What extract hands a check for a drop landed in ``schema``: file, 1-based line and the row as
    JSON text (equal rows, equal records, as in extract)."""
    schema = schema.append(pa.field("file", pa.string())).append(pa.field("line", pa.int64()))
    schema = schema.append(pa.field("record", pa.string()))
    data = [
        {**{k: v for k, v in row.items() if k != "dt"}, "file": "f.parquet", "line": n, "record": _json(row)}
        for n, row in enumerate(rows, start=1)
    ]
    return spark.createDataFrame(pa.Table.from_pylist(data, schema=schema))


def _json(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if k != "dt"}, default=str)


# ---------------------------------------------------------------- 1. drifted columns
def _write(folder: Path, name: str, data: pa.Table) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, folder / name)
    return folder / name


def _videos_file(tmp_path: Path, columns: dict[str, pa.Array | None], name: str = "videos.parquet") -> Path:
    """A one-row videos file; ``columns`` replace (or, when new, add) columns; a None value drops one."""
    base = pa.Table.from_pylist(
        [{k: v for k, v in video("v1", "c1", f"{D}T01:00:00", 9).items() if k != "dt"}]
    )
    data = base.cast(drop_schema(VIDEOS))
    for name_, array in columns.items():
        if name_ in data.column_names:
            data = data.drop_columns([name_])
        if array is not None:
            data = data.append_column(name_, array)
    return _write(tmp_path / "landing" / "videos" / f"dt={D}", name, data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"duration_ms": None}, r"missing column\(s\) \['duration_ms'\]"),
        (
            {"duration_ms": None, "duration": pa.array([9])},
            r"\['duration_ms'\].*extra column\(s\) \['duration'\]",
        ),
        ({"video_id": pa.array([1])}, r"column 'video_id' is int64, expected string \(a text column"),
        ({"upload_ts": pa.array([1_762_000_000])}, r"column 'upload_ts' is int64, expected timestamp"),
        (
            {"upload_ts": pa.array([ts(f"{D}T01:00:00")], pa.timestamp("ns", tz="UTC"))},
            r"upload_ts' is timestamp\[ns, tz=UTC\].*nanosecond",
        ),
        ({"frame_embedding": pa.array(["[0.1, 0.2]"])}, r"'frame_embedding' is string.*must hold lists"),
        ({"hashtags": pa.array(["#a #b"])}, r"'hashtags' is string, expected list<item: string>"),
    ],
    ids=["missing", "renamed", "int-id", "epoch-ts", "ns-ts", "text-embedding", "text-hashtags"],
)
def test_a_drifted_column_fails_the_night_naming_file_and_column(
    tmp_path: Path, change: dict[str, pa.Array | None], message: str
) -> None:
    path = _videos_file(tmp_path, change)

    with pytest.raises(
        DataError, match=rf"videos for dt={D} \(file videos/dt={D}/videos.parquet\).*{message}"
    ):
        check_drop_schema("videos", D, [path], VIDEOS, tmp_path / "landing")


def test_castable_retypes_and_extra_columns_pass_the_footer_check(tmp_path: Path) -> None:
    path = _videos_file(
        tmp_path,
        {
            "duration_ms": pa.array(["9000"]),
            "upload_ts": pa.array([ts(f"{D}T01:00:00")], pa.timestamp("ms")),
            "frame_embedding": pa.array([[0.5] * FRAME_EMBEDDING_DIM], pa.list_(pa.float64())),
            "caption": pa.array(["x"], pa.large_string()),
            "view_count": pa.array([12]),
        },
    )
    other = _videos_file(tmp_path, {"duration_ms": pa.array([9.0])}, "part-2.parquet")

    assert check_drop_schema("videos", D, [path], VIDEOS, tmp_path / "landing") == ["view_count"]
    with pytest.raises(
        DataError,
        match=r"part-2.parquet\): column\(s\) \['upload_ts', 'duration_ms'.*typed differently.*one schema",
    ):
        check_drop_schema("videos", D, [path, other], VIDEOS, tmp_path / "landing")


@pytest.mark.spark
def test_a_retyped_column_is_cast_per_row_and_values_that_do_not_cast_are_quarantined(
    spark: SparkSession,
) -> None:
    schema = _video_landing(
        duration_ms=pa.string(), upload_ts=pa.string(), frame_embedding=pa.list_(pa.float64())
    )
    up = f"{D}T01:00:00Z"

    def row(video_id: str, duration: Any, uploaded: Any = up, **extra: Any) -> dict[str, Any]:
        return {
            **video(video_id, "c1", f"{D}T01:00:00", 0),
            "duration_ms": duration,
            "upload_ts": uploaded,
            **extra,
        }

    rows = [
        row("v1", "30000"),
        row("v2", "thirty seconds"),
        row("v3", ""),
        row("v4", None),
        row("v5", "9000", uploaded="yesterday"),
        row("v6", "9000", frame_embedding=[1e300] * FRAME_EMBEDDING_DIM),  # inf as float32
    ]

    checked = ingest_catalogs.transform_videos(_raw(spark, schema, rows), D)

    assert reasons(checked) == [
        (1, None),
        (2, "uncastable:duration_ms"),
        (3, "missing_field:duration_ms"),
        (4, "missing_field:duration_ms"),
        (5, "uncastable:upload_ts"),
        (6, "invalid_frame_embedding"),
    ]
    accepted = ingest_catalogs.transform_accepted(checked, VIDEOS, D).collect()
    uploaded = ts(f"{D}T01:00:00").replace(tzinfo=None)  # Spark collects session-time (UTC) values
    assert [(r["duration_ms"], r["upload_ts"]) for r in accepted] == [(30_000, uploaded)]

    floats = _video_landing(duration_ms=pa.float64())
    at = ts(f"{D}T01:00:00")
    as_floats = [row("v1", 30_000.0, at), row("v2", 1.5, at), row("v3", float("nan"), at)]
    checked = ingest_catalogs.transform_videos(_raw(spark, floats, as_floats), D)
    assert reasons(checked) == [(1, None), (2, "uncastable:duration_ms"), (3, "uncastable:duration_ms")]


# ---------------------------------------------------------------- 2-5. rows of a snapshot
@pytest.mark.spark
def test_duplicate_keys_keep_the_first_row_and_count_contradicting_copies(spark: SparkSession) -> None:
    first = video("v1", "c1", f"{D}T01:00:00", 9_000)
    rows = [first, dict(first), {**first, "duration_ms": 12_000}, video("v2", "c1", f"{D}T01:00:00", 5_000)]

    checked = ingest_catalogs.transform_videos(_raw(spark, drop_schema(VIDEOS), rows), D)

    assert reasons(checked) == [
        (1, None),
        (2, "duplicate_key:video_id"),
        (3, "duplicate_key:video_id"),
        (4, None),
    ]
    conflicting = {r["line"]: r[ingest_catalogs.CONFLICTING] for r in checked.collect()}
    assert conflicting == {1: False, 2: False, 3: True, 4: False}
    accepted = ingest_catalogs.transform_accepted(checked, VIDEOS, D).collect()
    assert sorted((r["video_id"], r["duration_ms"]) for r in accepted) == [("v1", 9_000), ("v2", 5_000)]


@pytest.mark.spark
def test_a_video_whose_creator_left_the_snapshot_is_quarantined(spark: SparkSession) -> None:
    creators: list[dict[str, Any]] = [
        {"creator_id": "c1", "joined_ts": ts("2025-01-01T00:00:00"), "country": "US"},
        {"creator_id": "c2", "joined_ts": None, "country": "US"},  # quarantined: not a known creator
    ]
    videos = [
        video("v1", "c1", f"{D}T01:00:00", 9_000),
        video("v2", "c9", f"{D}T01:00:00", 9_000),
        video("v3", "c2", f"{D}T01:00:00", 9_000),
        video("v4", "c9", f"{D}T01:00:00", 0),  # already invalid: keeps its first reason
    ]
    checked_creators = ingest_catalogs.transform_creators(raw_drop(spark, CREATORS, creators), D)
    checked_videos = ingest_catalogs.transform_videos(raw_drop(spark, VIDEOS, videos), D)

    checked = ingest_catalogs.transform_unknown_creators(checked_videos, checked_creators)

    assert reasons(checked) == [
        (1, None),
        (2, "unknown_creator"),
        (3, "unknown_creator"),
        (4, "invalid_duration_ms"),
    ]


@pytest.mark.spark
def test_nan_inf_or_wrong_length_frame_embeddings_are_quarantined_naming_the_field(
    spark: SparkSession,
) -> None:
    good = [0.1] * FRAME_EMBEDDING_DIM
    embeddings = [
        good,
        [float("inf")] + good[1:],
        good[:-1] + [float("-inf")],
        good[:-1] + [float("nan")],
        good[:-1] + [None],
        good + [0.1],
        good[:-1],
        [],
    ]
    rows = [video(f"v{n}", "c1", f"{D}T01:00:00", 9_000, frame_embedding=e) for n, e in enumerate(embeddings)]

    checked = ingest_catalogs.transform_videos(raw_drop(spark, VIDEOS, rows), D)

    assert reasons(checked) == [(1, None)] + [(n, "invalid_frame_embedding") for n in range(2, 9)]


@pytest.mark.spark
def test_a_1mb_caption_is_cut_to_the_contract_limit_and_flagged(spark: SparkSession) -> None:
    huge = "word " * 200_000  # 1 MB
    rows = [
        video("v1", "c1", f"{D}T01:00:00", 9_000, caption=huge),
        video("v2", "c1", f"{D}T01:00:00", 9_000, caption="x" * CAPTION_MAX_CHARS),
    ]

    checked = ingest_catalogs.transform_videos(raw_drop(spark, VIDEOS, rows), D)

    accepted = ingest_catalogs.transform_accepted(checked, VIDEOS, D).collect()
    assert sorted((r["video_id"], len(r["caption"])) for r in accepted) == [
        ("v1", CAPTION_MAX_CHARS),
        ("v2", CAPTION_MAX_CHARS),
    ]
    assert sorted(r[ingest_catalogs.CAPTION_TRUNCATED] for r in checked.collect()) == [False, True]


def test_the_caption_encoder_never_sees_an_unbounded_text() -> None:
    text = video_text("word " * 200_000, ["#tag"] * 10_000)

    assert len(text) <= MAX_TEXT_CHARS < 10_000
    assert text.startswith("word word") and video_text("a cat", ["#pets"]) == "a cat #pets"


# ---------------------------------------------------------------- the whole dirty night
def _land(
    settings: Settings,
    feed: str,
    table: Table,
    rows: list[dict[str, Any]],
    without: str = "",
    **types: pa.DataType,
) -> int:
    """Write ``rows`` as the feed's drop of D (retyped per ``types``, less the column ``without``,
    plus any extra int64 columns the rows carry); returns the rows landed."""
    schema = pa.schema(
        [pa.field(f.name, types.get(f.name, f.type)) for f in drop_schema(table) if f.name != without]
    )
    extra = sorted({k for row in rows for k in row} - set(schema.names) - {"dt", without})
    schema = pa.schema([*schema, *[pa.field(name, pa.int64()) for name in extra]])
    data = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "dt"} for r in rows], schema)
    write_parquet_drop(settings, feed, D, data)
    return data.num_rows


@pytest.mark.spark
def test_a_dirty_snapshot_night_lands_every_row_in_bronze_or_quarantine(
    spark: SparkSession, settings: Settings
) -> None:
    good = video("v1", "c00001", f"{D}T01:00:00", 9_000, view_count=5)
    videos = [
        {**good, "duration_ms": "9000"},
        {**good, "duration_ms": "9000"},  # an identical copy
        {**good, "video_id": "v2", "duration_ms": "nine"},
        {**good, "video_id": "v3", "duration_ms": "9000"},
        {**good, "video_id": "v3", "duration_ms": "7000"},  # a contradicting copy
        {**good, "video_id": "v4", "creator_id": "c00002", "duration_ms": "9000"},  # creator gone
        {**good, "video_id": "v5", "duration_ms": "9000", "frame_embedding": [float("inf")] * 32},
        {**good, "video_id": "v6", "duration_ms": "9000", "caption": "x" * 1_000_000},
    ]
    landed = {
        "videos": _land(settings, "videos", VIDEOS, videos, duration_ms=pa.string()),
        "users": _land(settings, "users", USERS, [USER, USER]),
        "creators": _land(settings, "creators", CREATORS, [CREATOR]),
        "follows": _land(settings, "follows", FOLLOWS, []),
    }

    facts = ingest_catalogs.main(D, settings)["feeds"]

    assert facts["videos"]["quarantined_by_reason"] == {
        "duplicate_key:video_id": 2,
        "invalid_frame_embedding": 1,
        "uncastable:duration_ms": 1,
        "unknown_creator": 1,
    }
    videos_facts = {
        k: facts["videos"][k] for k in ("conflicting_duplicates", "captions_truncated", "extra_columns")
    }
    assert videos_facts == {
        "conflicting_duplicates": 1,
        "captions_truncated": 1,
        "extra_columns": ["view_count"],
    }
    bronze = {r["video_id"]: r for r in lake.read(VIDEOS, settings, dates=[D]).to_pylist()}
    assert sorted(bronze) == ["v1", "v3", "v6"]
    assert bronze["v3"]["duration_ms"] == 9_000 and len(bronze["v6"]["caption"]) == CAPTION_MAX_CHARS
    quarantine = lake.read(QUARANTINE, settings, dates=[D]).to_pandas()  # readable, records included
    where = sorted(zip(quarantine["file"], quarantine["line"], quarantine["reason"], strict=True))
    assert where[0] == (f"users/dt={D}/users.parquet", 2, "duplicate_key:user_id")
    assert (f"videos/dt={D}/videos.parquet", 6, "unknown_creator") in where
    record = quarantine.loc[quarantine["reason"] == "uncastable:duration_ms", "record"].item()
    assert '"duration_ms":"nine"' in record
    for feed, table in (("videos", VIDEOS), ("users", USERS), ("creators", CREATORS), ("follows", FOLLOWS)):
        in_quarantine = int((quarantine["source"] == feed).sum())
        assert landed[feed] == lake.partition_row_count(table, settings, D) + in_quarantine, feed
        assert facts[feed]["rows_in"] == landed[feed], feed


@pytest.mark.spark
def test_a_renamed_snapshot_column_fails_at_once_before_any_write(
    spark: SparkSession, settings: Settings
) -> None:
    renamed = [{**video("v1", "c00001", f"{D}T01:00:00", 9_000), "duration": 9_000}]
    _land(settings, "videos", VIDEOS, renamed, without="duration_ms")
    for feed, table, rows in (
        ("users", USERS, [USER]),
        ("creators", CREATORS, [CREATOR]),
        ("follows", FOLLOWS, []),
    ):
        _land(settings, feed, table, rows)

    with pytest.raises(
        DataError, match=rf"file videos/dt={D}/videos.parquet\): missing column\(s\) \['duration_ms'\]"
    ):
        ingest_catalogs.main(D, settings)

    assert not any(lake.exists(table, settings) for table in (VIDEOS, USERS, CREATORS, FOLLOWS, QUARANTINE))


# ---------------------------------------------------------------- 6. a bot
def test_the_bot_rule_is_relative_to_the_day_with_a_floor() -> None:
    def day(dt: str, counts: dict[str, int]) -> list[dict[str, str]]:
        return [{"user_id": user, "dt": dt} for user, n in counts.items() for _ in range(n)]

    quiet = {f"u{n}": 3 for n in range(9)} | {"heavy": 900, "bot": BOT_MIN_EVENTS + 1}
    busy = {f"u{n}": 20 for n in range(9)} | {"heavy": 1_900, "bot": 2_001}
    events = pa.Table.from_pylist(day("2026-11-08", quiet) + day("2026-11-09", busy))

    flagged = bot_user_days(events).to_pylist()

    assert flagged == [
        {"user_id": "bot", "dt": "2026-11-08", "events": 1_001, "threshold": 1_000.0},
        {"user_id": "bot", "dt": "2026-11-09", "events": 2_001, "threshold": 2_000.0},
    ]


@pytest.mark.torch
def test_a_bots_events_stay_in_bronze_but_it_never_becomes_a_training_example(settings: Settings) -> None:
    from models.ranker.config import RankerConfig
    from models.ranker.examples import impressions_of

    at = f"{D}T"
    write_bronze(settings, VIDEOS, [video(f"v{n}", "c1", "2026-11-01T00:00:00", 10_000) for n in range(5)])
    rows = []
    for n in range(10):  # ten people: an impression and a completed view each
        rows += [
            event(f"e{n}a", "impression", f"u{n}", "v1", at + "10:00:00"),
            event(f"e{n}b", "view", f"u{n}", "v1", at + "10:00:01", watch_ms=10_000),
        ]
    for n in range(600):  # a bot: 1,200 events, 120x the median of 2
        rows += [
            event(f"b{n}a", "impression", "bot", f"v{n % 5}", at + "11:00:00", position=n),
            event(f"b{n}b", "view", "bot", f"v{n % 5}", at + "11:00:01", watch_ms=10_000),
        ]
    write_bronze(settings, EVENTS, rows)

    bronze_users = lake.read(EVENTS, settings, dates=[D]).column("user_id").to_pylist()
    two_tower = labels(settings, [D], TrainingSetConfig())
    outcomes = impression_outcomes(settings, [D], TrainingSetConfig())
    ranker, shown = impressions_of(settings, [D], RankerConfig(), cap=True)

    assert bronze_users.count("bot") == 1_200
    humans = {f"u{n}" for n in range(10)}
    for table in (two_tower, outcomes, ranker, shown):
        assert set(table.column("user_id").to_pylist()) == humans
