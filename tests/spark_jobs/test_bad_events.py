"""Bad event drops (issue 11, "Bad input"): every class lands here with the outcome a data engineer
expects, either each bad line quarantined with its reason, or the job failing at once (a DataError,
which the nightly DAG does not retry) with a message naming the file and the line or folder; and for
every drop that lands, the count law: lines landed == rows in bronze.events + rows quarantined +
duplicates dropped. docs/reliability.md ("Bad input: event drops") lists the classes and tests.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import random
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reelrec import lake
from reelrec.airflow_local import DAGS_FOLDER
from reelrec.catalog import EVENTS, QUARANTINE
from reelrec.errors import DataError
from reelrec.landing import (
    SUCCESS_MARKER,
    CorruptDropFileError,
    EmptyDropError,
    IncompleteDropError,
)
from reelrec.settings import Settings
from spark_jobs import ingest_events
from tests.spark_jobs.test_ingest_events import user_rows, video_rows, write_snapshot_drops
from tests.spark_jobs.tiny import ABSENT, D, event_line, write_event_drop, write_parquet_drop

pytestmark = pytest.mark.spark

FILE = f"events/dt={D}/part-00000.jsonl"
OLD = "2026-01-01T00:00:00"  # signup / upload instant of the long-known user and video
NEW = f"{D}T12:00:00"  # signup / upload instant of the user and video new on D
SNAPSHOT_USERS = [("u000001", OLD), ("u-new", NEW)]
SNAPSHOT_VIDEOS = [("v0000001", OLD), ("v-new", NEW)]
NOT_UTF8 = event_line(event_id="bytes").encode().replace(b"spotlight", b"spot\xfflight\xc3")

# (line bytes, expected reason); None: a valid line kept or dropped as a retry.
LINE_CASES: list[tuple[bytes, str | None]] = [
    (event_line(event_id="ok").encode(), None),
    (NOT_UTF8, "invalid_utf8"),
    (b"\x89PNG\r\x1a\x00\x00\x00\rIHDR", "invalid_utf8"),  # a line of a binary file
    (b"[1, 2]", "not_an_object"),
    (b"42", "not_an_object"),
    (b'"x"', "not_an_object"),
    (b"null", "not_an_object"),
    (b"true", "not_an_object"),
    (b"[1, 2", "malformed_json"),
    (b"\x01\x02 plain garbage \x7f", "malformed_json"),
    (b"", "malformed_json"),
    (event_line(event_id="y2100", event_ts="2100-01-01T00:00:00.000Z").encode(), "event_ts_outside_date"),
    (event_line(event_id="y9999", event_ts="9999-12-31T23:59:59.999Z").encode(), "event_ts_outside_date"),
    (event_line(event_id="y10000", event_ts="+10000-01-01T00:00:00Z").encode(), "unparsable_event_ts"),
    (event_line(event_id="y99999", event_ts="99999-01-01T00:00:00Z").encode(), "unparsable_event_ts"),
    (event_line(event_id="epoch-big", event_ts=1e300).encode(), "unparsable_event_ts"),
    (event_line(event_id="epoch-int", event_ts=2**70).encode(), "unparsable_event_ts"),
    (event_line(event_id="ghost-u", user_id="u-ghost").encode(), "unknown_user"),
    (event_line(event_id="ghost-v", video_id="v-ghost").encode(), "unknown_video"),
    # The first rule a line breaks is its reason: another day's event of an unknown user.
    (
        event_line(event_id="ghost-late", user_id="u-ghost", event_ts="2100-01-01T00:00:00Z").encode(),
        "event_ts_outside_date",
    ),
    (
        event_line(event_id="early-u", user_id="u-new", event_ts=f"{D}T11:59:59.999Z").encode(),
        "event_before_signup",
    ),
    (event_line(event_id="at-signup", user_id="u-new", event_ts=f"{NEW}Z").encode(), None),
    (
        event_line(event_id="early-v", video_id="v-new", event_ts=f"{D}T11:00:00Z").encode(),
        "event_before_upload",
    ),
    # One event_id three times: kept (earliest), a byte-identical retry, a copy that disagrees.
    (event_line(event_id="dup", event_ts=f"{D}T13:00:00Z", watch_ms=900).encode(), None),
    (event_line(event_id="dup", event_ts=f"{D}T13:00:00Z", watch_ms=900).encode(), None),
    (event_line(event_id="dup", event_ts=f"{D}T13:00:00Z", watch_ms=1800).encode(), "conflicting_duplicate"),
    # The same event_id at another instant: the earlier one is kept even when it comes later.
    (
        event_line(event_id="moved", event_type="like", watch_ms=ABSENT, event_ts=f"{D}T15:00:00Z").encode(),
        "conflicting_duplicate",
    ),
    (
        event_line(event_id="moved", event_type="like", watch_ms=ABSENT, event_ts=f"{D}T14:00:00Z").encode(),
        None,
    ),
]


def raw_lines(spark: SparkSession, lines: list[bytes]) -> DataFrame:
    """``(file, line, record)`` with each record holding exactly the given bytes, like extract's."""
    rows = [(FILE, n, base64.b64encode(text).decode()) for n, text in enumerate(lines, start=1)]
    encoded = spark.createDataFrame(rows, "file string, line long, b64 string")
    return encoded.select("file", "line", F.unbase64("b64").cast("string").alias("record"))


def snapshot(spark: SparkSession, table: pa.Table, columns: list[str]) -> DataFrame:
    return spark.createDataFrame(table.select(columns))


def test_each_bad_line_class_gets_its_reason(spark: SparkSession) -> None:
    lines = raw_lines(spark, [text for text, _ in LINE_CASES])
    users = snapshot(spark, user_rows(SNAPSHOT_USERS), ["user_id", "signup_ts"])
    videos = snapshot(spark, video_rows(SNAPSHOT_VIDEOS), ["video_id", "upload_ts"])

    checked = ingest_events.transform_check(lines, D, users, videos).cache()
    rows = checked.select("line", "reason", "record").collect()
    kept = ingest_events.transform_events(checked, D).select("event_id", "watch_ms", "event_ts").collect()
    checked.unpersist()
    reasons = {row["line"]: row["reason"] for row in rows}
    records = {row["line"]: row["record"] for row in rows}

    expected = {n: reason for n, (_, reason) in enumerate(LINE_CASES, start=1)}
    assert reasons == expected
    # A line that is not UTF-8 is kept whole, as base64 text, so the quarantine is valid UTF-8.
    assert base64.b64decode(records[2]) == NOT_UTF8
    assert base64.b64decode(records[3]) == LINE_CASES[2][0]
    assert records[4] == "[1, 2]"
    assert {(row["event_id"], row["watch_ms"]) for row in kept} == {
        ("ok", 4000),
        ("at-signup", 4000),
        ("dup", 900),  # the retry is dropped, the conflicting copy quarantined
        ("moved", None),
    }
    assert [row["event_ts"].hour for row in kept if row["event_id"] == "moved"] == [14]


def landed_lines(folder: Path) -> int:
    """Lines of a drop as a reader counts them: split at ``\\n``, ``\\r\\n`` or ``\\r``, like Spark."""
    total = 0
    for path in folder.glob("*.jsonl*"):
        data = path.read_bytes()
        total += len((gzip.decompress(data) if path.name.endswith(".gz") else data).splitlines())
    return total


def test_a_bad_drop_lands_every_line_once_and_its_quarantine_reads_into_pandas(
    spark: SparkSession, settings: Settings
) -> None:
    write_snapshot_drops(settings, users=SNAPSHOT_USERS, videos=SNAPSHOT_VIDEOS)
    folder = write_event_drop(
        settings,
        D,
        {
            "part-00000.jsonl": [
                event_line(event_id="e-1"),
                "[1, 2]",
                "null",
                event_line(event_id="e-2", user_id="u-ghost"),
                event_line(event_id="e-3", user_id="u-new", event_ts=f"{D}T08:00:00Z"),
                event_line(event_id="e-4", event_ts="2100-01-01T00:00:00Z"),
                event_line(event_id="e-5", watch_ms=1000),
                event_line(event_id="e-5", watch_ms=2000),  # the same event, other content
            ],
            "part-00001.jsonl.gz": [event_line(event_id="e-1"), event_line(event_id="e-6")],  # a retry
            "part-00003.jsonl": ["", ""],  # blank lines are lines, not an empty drop
        },
    )
    (folder / "part-00002.jsonl").write_bytes(b"\n".join([NOT_UTF8, random.Random(11).randbytes(4000)]))

    facts = ingest_events.main(D, settings)

    landed = landed_lines(folder)
    assert facts["rows_in"] == landed
    assert landed == facts["rows_written"] + facts["quarantined"] + facts["duplicates_dropped"]
    assert (facts["rows_written"], facts["duplicates_dropped"]) == (3, 1)
    by_reason = facts["quarantined_by_reason"]
    garbage = {
        reason: by_reason[reason] for reason in by_reason if reason in ("invalid_utf8", "malformed_json")
    }
    assert {reason: n for reason, n in by_reason.items() if reason not in garbage} == {
        "not_an_object": 2,
        "unknown_user": 1,
        "event_before_signup": 1,
        "event_ts_outside_date": 1,
        "conflicting_duplicate": 1,
    }
    assert sum(garbage.values()) == landed - 3 - 1 - 6  # every line of the binary file, blank ones too
    assert sorted(lake.read(EVENTS, settings, dates=[D]).column("event_id").to_pylist()) == [
        "e-1",
        "e-5",
        "e-6",
    ]

    quarantine = lake.read(QUARANTINE, settings, dates=[D]).to_pandas()  # raised ArrowException before
    assert len(quarantine) == facts["quarantined"]
    not_utf8 = quarantine[quarantine["reason"] == "invalid_utf8"]
    first = not_utf8[not_utf8["line"] == 1]
    assert first["file"].tolist() == [f"events/dt={D}/part-00002.jsonl"]
    assert base64.b64decode(first["record"].iloc[0]) == NOT_UTF8


def truncated(blob: bytes) -> bytes:
    return blob[: len(blob) * 2 // 3]


BAD_FILES = {
    "truncated": (
        "part-00001.jsonl.gz",
        truncated,
        r"truncated gzip member 1: .* line \d+ was being decoded",
    ),
    "png": ("part-00001.jsonl.gz", lambda _: b"\x89PNG\r\n\x1a\n" + bytes(64), r"not gzip \(starts with"),
    "random": ("part-00001.jsonl.gz", lambda _: random.Random(3).randbytes(2048), "not gzip"),
    "trailing": (
        "part-00001.jsonl.gz",
        lambda blob: blob + b"<html>",
        r"gzip member 2 is corrupt: .* line 201 was",
    ),
    "bz2": ("part-00001.jsonl.bz2", lambda blob: blob, "unsupported suffix"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_file_that_is_not_whole_gzip_fails_at_once_naming_it(
    spark: SparkSession, settings: Settings, kind: str
) -> None:
    name, damage, problem = BAD_FILES[kind]
    write_snapshot_drops(settings)
    folder = write_event_drop(settings, D, {"part-00000.jsonl": [event_line()]})
    lines = "".join(event_line(event_id=f"gz-{n}") + "\n" for n in range(200))
    (folder / name).write_bytes(damage(gzip.compress(lines.encode())))

    with pytest.raises(CorruptDropFileError, match=problem) as failed:
        ingest_events.main(D, settings)

    assert isinstance(failed.value, DataError)  # bad data: the nightly DAG does not retry it
    assert str(failed.value).startswith(f"landing file {folder / name}: ")
    assert not lake.exists(EVENTS, settings)  # nothing half-landed


@pytest.mark.parametrize(
    "files", [{"part-00000.jsonl": []}, {"part-00000.jsonl.gz": [], "part-00001.jsonl": []}]
)
def test_a_drop_without_a_single_line_fails_at_once_naming_the_folder(
    spark: SparkSession, settings: Settings, files: dict[str, list[str]]
) -> None:
    write_snapshot_drops(settings)
    folder = write_event_drop(settings, D, files)

    with pytest.raises(
        EmptyDropError, match=rf"events for dt={D}: its {len(files)} data file\(s\) in "
    ) as failed:
        ingest_events.main(D, settings)

    assert f"{folder} hold no lines" in str(failed.value)
    assert not lake.exists(EVENTS, settings)


def test_a_marker_beside_only_temporary_files_is_not_a_drop(spark: SparkSession, settings: Settings) -> None:
    folder = write_event_drop(settings, D, {"_tmp-part-0.jsonl": [event_line()], ".part-0.jsonl.crc": ["x"]})

    with pytest.raises(IncompleteDropError, match=rf"events for dt={D} has no data files matching"):
        ingest_events.main(D, settings)
    assert (folder / SUCCESS_MARKER).exists()


RENAMED = ["userId", "signup_ts", "country", "age_bucket"]
RETYPED = {  # a users snapshot changed how, and what the error says its column is
    "renamed": (lambda users: users.rename_columns(RENAMED), "absent"),
    "epoch": (lambda users: users.set_column(1, "signup_ts", pa.array([0, 1], pa.int64())), "int64"),
}


@pytest.mark.parametrize("change", list(RETYPED))
def test_a_snapshot_without_the_reference_columns_fails_naming_the_file(
    spark: SparkSession, settings: Settings, change: str
) -> None:
    retype, found = RETYPED[change]
    write_event_drop(settings, D, {"part-00000.jsonl": [event_line()]})
    write_parquet_drop(settings, "videos", D, video_rows(SNAPSHOT_VIDEOS))
    users = write_parquet_drop(settings, "users", D, retype(user_rows(SNAPSHOT_USERS)))
    column = "user_id" if change == "renamed" else "signup_ts"

    with pytest.raises(DataError, match=rf"landing file {users}/users.parquet: column '{column}' is {found}"):
        ingest_events.main(D, settings)


def test_a_snapshot_instant_landed_as_iso_text_is_read_like_ingest_catalogs_reads_it(
    spark: SparkSession, settings: Settings
) -> None:
    users = user_rows(SNAPSHOT_USERS)
    as_text = pa.array([f"{OLD}Z", None], pa.string())  # text is cast per row; a null stays null
    write_parquet_drop(settings, "users", D, users.set_column(1, "signup_ts", as_text))
    write_parquet_drop(settings, "videos", D, video_rows(SNAPSHOT_VIDEOS))

    known_users, _ = ingest_events.extract_snapshots(spark, settings, D)

    assert sorted((row["user_id"], str(row["signup_ts"])) for row in known_users.collect()) == [
        ("u-new", "None"),
        ("u000001", "2026-01-01 00:00:00"),
    ]


@pytest.fixture(scope="module")
def nightly() -> ModuleType:
    """The DAG file as a module, for its ``_call`` (the retry decision)."""
    spec = importlib.util.spec_from_file_location(
        "reelrec_nightly_dag", Path(DAGS_FOLDER) / "reelrec_nightly.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.airflow
@pytest.mark.parametrize("drop", ["truncated-gzip", "no-lines", "only-success"])
def test_the_nightly_dag_fails_bad_drops_without_retrying(
    spark: SparkSession, settings: Settings, nightly: ModuleType, drop: str
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    write_snapshot_drops(settings)
    files = {"part-00000.jsonl.gz": [event_line()] * 50} if drop == "truncated-gzip" else {}
    files |= {"part-00001.jsonl": []} if drop == "no-lines" else {}
    folder = write_event_drop(settings, D, files)
    if drop == "truncated-gzip":
        (folder / "part-00000.jsonl.gz").write_bytes(truncated((folder / "part-00000.jsonl.gz").read_bytes()))

    # AirflowFailException fails the task instance at once: its retries are not used.
    with pytest.raises(AirflowFailException) as failed:
        nightly._call("spark_jobs.ingest_events:main", D)

    expected = {
        "truncated-gzip": f"CorruptDropFileError: landing file {folder}/part-00000.jsonl.gz",
        "no-lines": f"EmptyDropError: landing drop events for dt={D}",
        "only-success": f"IncompleteDropError: landing drop events for dt={D} has no data files",
    }
    assert str(failed.value).startswith(expected[drop])
