"""GX suite "outputs" on tiny real Delta partitions: clean outputs pass, each broken rule fails by name.

One clean night is built once (bronze events, silver user_features and the three gold tables) and
copied into each test's REELREC_HOME; a test then rewrites one mutated copy of one gold table.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from reelrec import catalog, lake
from reelrec.catalog import Table
from reelrec.dates import add_days, feature_timestamp
from reelrec.settings import Settings
from reelrec.validation import ValidationError, ValidationReport, gate, read_report, report_path, suite_tables

pytestmark = pytest.mark.gx

D = "2026-11-01"
PREV = add_days(D, -1)
NEXT = add_days(D, 1)
VERSION = "two_tower-2026-11-01"
STAMP = feature_timestamp(D)
GENERATED_AT = dt.datetime(2026, 11, 2, 2, 30, tzinfo=dt.UTC)
GOLD = ("candidates", "user_embeddings", "video_embeddings")
Rows = list[dict[str, Any]]

# Views define watched videos: u0 watched v0 the day before, u1 watched v1 on D. A skip (u2, v2) and
# a view after D (u2, v5) are not "watched as of D", so those videos may be in u2's list.
EVENTS: dict[str, list[tuple[str, str, str]]] = {
    PREV: [("view", "u0", "v0")],
    D: [("view", "u1", "v1"), ("skip", "u2", "v2"), ("impression", "u3", "v7")],
    NEXT: [("view", "u2", "v5")],
}
CANDIDATE_LISTS = {
    "u0": ["v3", "v4", "v5"],
    "u1": ["v0", "v2", "v3"],
    "u2": ["v2", "v5", "v6"],
    "u3": ["v7", "v1", "v0"],
}
# The night's default list (models.default_list), served to users without a list: no active user,
# watched by no one; every other rule of a list holds for it.
DEFAULT_LIST = ["v1", "v4", "v6"]


def unit(i: int, dim: int = 4) -> list[float]:
    """A unit vector: (0.6, 0.8) placed at a position that depends on ``i``."""
    vector = [0.0] * dim
    vector[i % dim], vector[(i + 1) % dim] = 0.6, 0.8
    return vector


def clean_night() -> dict[str, Rows]:
    """Valid rows of every table the suite reads, for ``dt=D`` (events: per date, see EVENTS)."""
    gold = dict(model_version=VERSION, generated_at=GENERATED_AT, event_timestamp=STAMP)
    return {
        "user_features": [dict(user_id=u, event_timestamp=STAMP) for u in CANDIDATE_LISTS],
        "candidates": [
            dict(user_id=u, video_ids=list(items), scores=[0.9, 0.5, 0.1], **gold)
            for u, items in {**CANDIDATE_LISTS, catalog.DEFAULT_LIST_KEY: DEFAULT_LIST}.items()
        ],
        "user_embeddings": [
            dict(user_id=u, embedding=unit(i), **gold) for i, u in enumerate(CANDIDATE_LISTS)
        ],
        "video_embeddings": [dict(video_id=f"v{i}", embedding=unit(i), **gold) for i in range(8)],
    }


def write(table: Table, settings: Settings, date: str, rows: Rows) -> None:
    data = pa.Table.from_pylist([{**r, catalog.DT: date} for r in rows], schema=table.schema)
    lake.write_partition(table, settings, data, date)


def events_rows(date: str) -> Rows:
    return [
        dict(
            event_id=f"{date}-e{i}",
            event_type=kind,
            user_id=user,
            video_id=video,
            event_ts=dt.datetime.fromisoformat(f"{date}T12:00:00+00:00") + dt.timedelta(minutes=i),
            watch_ms={"view": 9_000, "skip": 300}.get(kind),
            surface="spotlight",
            position=i,
        )
        for i, (kind, user, video) in enumerate(EVENTS[date])
    ]


@pytest.fixture(scope="module")
def clean_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A REELREC_HOME holding the clean night, written once for the whole module."""
    home = tmp_path_factory.mktemp("outputs-clean")
    settings = Settings.from_env(home)
    for date in EVENTS:
        write(catalog.EVENTS, settings, date, events_rows(date))
    write(
        catalog.USER_FEATURES, settings, PREV, [dict(user_id="u8", event_timestamp=feature_timestamp(PREV))]
    )
    for name, rows in clean_night().items():
        write(catalog.table(name), settings, D, rows)
    return home


@pytest.fixture
def night(clean_home: Path, settings: Settings) -> dict[str, Rows]:
    """This test's REELREC_HOME holds the clean night; returns a copy of its rows to mutate."""
    shutil.copytree(clean_home, settings.home, dirs_exist_ok=True)
    return copy.deepcopy(clean_night())


def gate_failure(settings: Settings, table_name: str, rows: Rows) -> tuple[str, list[ValidationReport]]:
    """Rewrite one table's ``dt=D`` partition, run the gate, return its error message and reports."""
    write(catalog.table(table_name), settings, D, rows)
    with pytest.raises(ValidationError) as info:
        gate("outputs", D, settings)
    return str(info.value), info.value.reports


# ---------------------------------------------------------------- clean outputs
def test_suite_tables() -> None:
    assert suite_tables("outputs") == list(GOLD)


def test_clean_outputs_pass_and_reports_are_written(night: dict[str, Rows], settings: Settings) -> None:
    facts = gate("outputs", D, settings)

    assert facts["suite"] == "outputs" and list(facts["tables"]) == list(GOLD)
    assert all(t["success"] for t in facts["tables"].values())
    checked: dict[str, set[str]] = {}
    for name in GOLD:
        body = json.loads(report_path("outputs", name, D, settings).read_text())
        assert body["success"] is True and body["failed"] == [] and body["date"] == D
        assert len(body["expectations"]) == body["evaluated"] == facts["tables"][name]["expectations"]
        assert all(e["success"] for e in body["expectations"])
        checked[name] = {e["kwargs"].get("column") for e in body["expectations"]}
    assert {
        "is_active_user",
        "n_items",
        "n_duplicate_items",
        "n_watched_items",
        "n_nonfinite_scores",
        "scores_sorted",
        "has_candidates",
        "default_list_rows",
        "model_version",
        "event_timestamp",
    } <= checked["candidates"]
    assert {"is_active_user", "embedding_dim", "embedding_norm", "has_embedding"} <= checked[
        "user_embeddings"
    ]
    assert {"n_nonfinite_values", "embedding_norm", "has_embedding"} <= checked["video_embeddings"]


def test_outputs_reports_record_the_versions_of_every_table_they_compared(
    night: dict[str, Rows], settings: Settings
) -> None:
    write(catalog.CANDIDATES, settings, D, night["candidates"])  # a rerun of scoring: a new version
    gate("outputs", D, settings)

    current = {
        name: lake.version(catalog.table(name), settings) for name in (*GOLD, "user_features", "events")
    }
    assert current["candidates"] == 1
    # every gold report read all three gold tables (one model version across them) and its references
    references = {"candidates": ("user_features", "events"), "user_embeddings": ("user_features",)}
    for name in GOLD:
        report = read_report("outputs", name, D, settings)
        assert report is not None and report.success
        expected = {table: current[table] for table in (*GOLD, *references.get(name, ()))}
        assert report.versions == expected, name


# ---------------------------------------------------------------- one broken rule at a time
def drop(rows: Rows, key: str, value: str) -> Rows:
    return [r for r in rows if r[key] != value]


def set_field(rows: Rows, key: str, value: str, **changes: Any) -> Rows:
    return [{**r, **changes} if r[key] == value else r for r in rows]


Mutation = Callable[[dict[str, Rows]], Rows]
# id: (table rewritten, mutation of the clean rows, failing column, rule text, offending row text)
BROKEN: dict[str, tuple[str, Mutation, str, str, str]] = {
    "feature_timestamp_not_end_of_day": (
        "candidates",
        lambda n: set_field(n["candidates"], "user_id", "u1", event_timestamp=STAMP - dt.timedelta(hours=12)),
        "event_timestamp",
        f"min_value={STAMP.isoformat()}, max_value={STAMP.isoformat()}",
        '{"user_id": "u1", "event_timestamp": "2026-11-01T11:59:59+00:00"}',
    ),
    "duplicate_user_embedding": (
        "user_embeddings",
        lambda n: [*n["user_embeddings"], n["user_embeddings"][1]],
        "user_id",
        "",  # the unique-key expectation has no arguments to show
        '{"user_id": "u1"}',
    ),
    "missing_active_user": (
        "candidates",
        lambda n: drop(n["candidates"], "user_id", "u3"),
        "has_candidates",
        f"every active user of dt={D} (silver.user_features) has a row in gold.candidates",
        '{"user_id": "u3", "has_candidates": false}',
    ),
    "unknown_user": (
        "candidates",
        lambda n: [*n["candidates"], {**n["candidates"][0], "user_id": "u9"}],
        "is_active_user",
        f"user_id is an active user of dt={D}",
        '{"user_id": "u9", "is_active_user": false}',
    ),
    "missing_default_list": (
        "candidates",
        lambda n: drop(n["candidates"], "user_id", catalog.DEFAULT_LIST_KEY),
        "default_list_rows",
        f"gold.candidates dt={D} holds the default list (user_id '__default__') exactly once",
        '{"default_list_rows": 0}',
    ),
    "empty_default_list": (
        "candidates",
        lambda n: set_field(n["candidates"], "user_id", catalog.DEFAULT_LIST_KEY, video_ids=[], scores=[]),
        "n_items",
        "every list is non-empty",
        '{"user_id": "__default__", "n_items": 0}',
    ),
    "duplicate_item_in_default_list": (
        "candidates",
        lambda n: set_field(
            n["candidates"], "user_id", catalog.DEFAULT_LIST_KEY, video_ids=["v1", "v4", "v1"]
        ),
        "n_duplicate_items",
        "no duplicate video id within a list",
        '{"user_id": "__default__", "n_duplicate_items": 1, "duplicate_items": ["v1"]}',
    ),
    "empty_list": (
        "candidates",
        lambda n: set_field(n["candidates"], "user_id", "u1", video_ids=[], scores=[]),
        "n_items",
        "every list is non-empty",
        '{"user_id": "u1", "n_items": 0}',
    ),
    "scores_shorter_than_list": (
        "candidates",
        lambda n: set_field(n["candidates"], "user_id", "u2", scores=[0.9, 0.5]),
        "n_items == n_scores",
        "one score per video: len(video_ids) == len(scores)",
        '{"user_id": "u2", "n_items": 3, "n_scores": 2}',
    ),
    "duplicate_item": (
        "candidates",
        lambda n: set_field(n["candidates"], "user_id", "u1", video_ids=["v0", "v2", "v0"]),
        "n_duplicate_items",
        "no duplicate video id within a list",
        '{"user_id": "u1", "n_duplicate_items": 1, "duplicate_items": ["v0"]}',
    ),
    "watched_item": (  # u0 viewed v0 on the day before D
        "candidates",
        lambda n: set_field(n["candidates"], "user_id", "u0", video_ids=["v3", "v0", "v5"]),
        "n_watched_items",
        f"no video the user already watched (a view event up to dt={D})",
        '{"user_id": "u0", "n_watched_items": 1, "watched_items": ["v0"]}',
    ),
    "nan_score": (
        "candidates",
        lambda n: set_field(n["candidates"], "user_id", "u2", scores=[0.9, float("nan"), 0.1]),
        "n_nonfinite_scores",
        "every score is finite",
        '{"user_id": "u2", "n_nonfinite_scores": 1}',
    ),
    "unsorted_scores": (
        "candidates",
        lambda n: set_field(n["candidates"], "user_id", "u1", scores=[0.5, 0.9, 0.1]),
        "scores_sorted",
        "scores sorted best first (non-increasing)",
        '{"user_id": "u1", "scores_sorted": false}',
    ),
    "user_without_embedding": (
        "user_embeddings",
        lambda n: drop(n["user_embeddings"], "user_id", "u2"),
        "has_embedding",
        f"every active user of dt={D} (silver.user_features) has a row in gold.user_embeddings",
        '{"user_id": "u2", "has_embedding": false}',
    ),
    "non_unit_user_embedding": (
        "user_embeddings",
        lambda n: set_field(n["user_embeddings"], "user_id", "u2", embedding=[0.0, 0.0, 1.2, 1.6]),
        "embedding_norm",
        "unit vector: L2 norm within [0.99, 1.01]",
        '{"user_id": "u2", "embedding_norm": 2.0',
    ),
    "unbounded_video_embedding": (
        "video_embeddings",
        lambda n: set_field(n["video_embeddings"], "video_id", "v6", embedding=[3.0, 4.0, 0.0, 0.0]),
        "embedding_norm",
        "bounded vector: L2 norm within [0.99, 4]",
        '{"video_id": "v6", "embedding_norm": 5.0',
    ),
    "infinite_video_embedding_value": (
        "video_embeddings",
        lambda n: set_field(n["video_embeddings"], "video_id", "v6", embedding=[0.6, 0.8, 0.0, float("inf")]),
        "n_nonfinite_values",
        "every embedding value is finite",
        '{"video_id": "v6", "n_nonfinite_values": 1}',
    ),
    "video_embedding_of_other_dimension": (
        "video_embeddings",
        lambda n: set_field(n["video_embeddings"], "video_id", "v4", embedding=[0.6, 0.8, 0.0]),
        "embedding_dim",
        "one embedding dimension, 4",
        '{"video_id": "v4", "embedding_dim": 3}',
    ),
    "candidate_video_without_embedding": (
        "video_embeddings",
        lambda n: drop(n["video_embeddings"], "video_id", "v6"),
        "has_embedding",
        f"every video listed in a gold.candidates list of dt={D} has a row in gold.video_embeddings",
        '{"video_id": "v6", "has_embedding": false}',
    ),
    "second_model_version": (
        "video_embeddings",
        lambda n: [{**r, "model_version": "two_tower-2026-10-31"} for r in n["video_embeddings"]],
        "model_version",
        f"one model_version across the gold outputs of dt={D}: '{VERSION}'",
        '{"video_id": "v0", "model_version": "two_tower-2026-10-31"}',
    ),
    "two_model_versions_in_candidates": (
        "candidates",
        lambda n: set_field(n["candidates"], "user_id", "u3", model_version="two_tower-2026-10-31"),
        "model_version",
        "one model_version across the gold outputs",
        '{"user_id": "u3", "model_version": "two_tower-2026-10-31"}',
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_rule_fails_the_gate_by_name(case: str, night: dict[str, Rows], settings: Settings) -> None:
    table_name, mutate, column, rule, offending = BROKEN[case]
    message, reports = gate_failure(settings, table_name, mutate(night))

    assert message.startswith(
        f"validation suite 'outputs' failed for dt={D}: 1 of 3 table(s) failed ({table_name})"
    )
    assert f"suite 'outputs', table {table_name}, dt={D}: 1 of " in message
    assert (
        f"on column '{column}' [{rule}" in message if rule else f"on column '{column}': observed" in message
    )
    assert f"offending row: {offending}" in message
    # exactly the broken rule failed, and nothing of the broken table was reported as passing
    assert [r.success for r in reports] == [name != table_name for name in GOLD]
    (report,) = [r for r in reports if r.table == table_name]
    assert [f["column"] for f in report.failed] == [column]
    body = json.loads(report.path.read_text())  # type: ignore[union-attr]
    assert body["success"] is False and body["failed"][0]["column"] == column


# ---------------------------------------------------------------- missing data
def test_missing_gold_tables_fail_clearly(settings: Settings) -> None:
    write(catalog.EVENTS, settings, D, events_rows(D))
    write(catalog.USER_FEATURES, settings, D, clean_night()["user_features"])
    write(catalog.CANDIDATES, settings, PREV, clean_night()["candidates"])  # only yesterday's
    with pytest.raises(ValidationError) as info:
        gate("outputs", D, settings)
    message = str(info.value)
    assert "3 of 3 table(s) failed (candidates, user_embeddings, video_embeddings)" in message
    assert f"table candidates, dt={D}" in message and f"partition dt={D} is missing or empty" in message
    assert f"table user_embeddings, dt={D}" in message and "Delta table does not exist" in message
    assert "table gold.video_embeddings has rows in partition" in message


def test_missing_references_fail_clearly(night: dict[str, Rows], settings: Settings) -> None:
    shutil.rmtree(catalog.USER_FEATURES.path(settings))
    shutil.rmtree(catalog.EVENTS.path(settings))
    with pytest.raises(ValidationError) as info:
        gate("outputs", D, settings)
    message = str(info.value)
    assert "2 of 3 table(s) failed (candidates, user_embeddings)" in message
    assert message.count(f"table silver.user_features has rows in partition dt={D}") == 2
    assert message.count("table bronze.events exists") == 1
    assert message.count("reference_present") == 3
    assert f"Delta table does not exist at {catalog.EVENTS.path(settings)}" in message
