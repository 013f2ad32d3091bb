"""Rollback on a tiny lake: Delta time travel back to a replaced night, then the online store, on both stores.

Night D1 is scored by version A; night D2 first by B, then rerun by a broken C (the same partition
written twice, so B's rows live only in the Delta history). D1 and D2 (C) are published. Rolling back
to B must serve exactly B's lists again (time travel), rolling back to A exactly A's (users A did not
score are cleared), and the next night's publish must still win over a rollback (Redis keeps the
newest event time: see :mod:`reelrec.rollback`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from feature_repo.materialize import materialize
from feature_repo.registry import apply
from reelrec import catalog, cli, lake, releases
from reelrec.dates import feature_timestamp
from reelrec.errors import DataError
from reelrec.rollback import UnknownVersionError, rollback
from reelrec.serving import not_found, recommend
from reelrec.settings import Settings
from tests.reelrec.test_serving import STORES, online_store

D1, D2, D3 = "2026-11-01", "2026-11-02", "2026-11-03"
U1, U2, U3, U4 = "u000001", "u000002", "u000003", "u000004"
USERS = [U1, U2, U3, U4]
A, B, C, E = "two_tower_v1-a", "two_tower_v1-b", "two_tower_v1-c-broken", "two_tower_v1-e"
NIGHT = {A: D1, B: D2, C: D2, E: D3}
GENERATED = {
    A: datetime(2026, 11, 2, 3, 0, 1, tzinfo=UTC),
    B: datetime(2026, 11, 3, 3, 0, 2, tzinfo=UTC),
    C: datetime(2026, 11, 3, 4, 0, 3, tzinfo=UTC),
    E: datetime(2026, 11, 4, 3, 0, 4, tzinfo=UTC),
}
# Each version's lists, best first. A does not score U4; C (broken) scores U4 too and repeats one video.
LISTS: dict[str, dict[str, list[tuple[str, float]]]] = {
    A: {U1: [("v1", 0.9), ("v2", 0.5)], U2: [("v3", 0.8)], U3: [("v2", 0.7), ("v4", 0.25)]},
    B: {U1: [("v4", 0.6), ("v1", 0.4)], U2: [("v2", 0.95), ("v3", 0.1)], U3: [("v1", 0.3)]},
    C: {U1: [("v9", 0.1)], U2: [("v9", 0.1)], U3: [("v9", 0.1)], U4: [("v9", 0.1)]},
    E: {U1: [("v5", 0.5)], U2: [("v5", 0.5)], U3: [("v5", 0.5)], U4: [("v5", 0.5)]},
}
VIDEOS = {A: ["v1", "v2", "v3", "v4"], B: ["v1", "v2", "v3", "v4"], C: ["v1", "v9"], E: ["v5"]}


def write_version(settings: Settings, version: str) -> None:
    """Write ``version``'s night of the three gold tables (replacing that night's partition)."""
    date, users = NIGHT[version], list(LISTS[version])
    night = {
        catalog.MODEL_VERSION: version,
        catalog.GENERATED_AT: GENERATED[version],
        catalog.EVENT_TIMESTAMP: feature_timestamp(date),
        catalog.DT: date,
    }

    def rows(keys: dict[str, list[Any]]) -> pa.Table:
        n = len(next(iter(keys.values())))
        return pa.table({**keys, **{name: [value] * n for name, value in night.items()}})

    lists = LISTS[version]
    candidates = rows(
        {
            catalog.USER_ID: users,
            "video_ids": [[v for v, _ in lists[u]] for u in users],
            "scores": pa.array([[s for _, s in lists[u]] for u in users], pa.list_(pa.float32())),
        }
    )
    embedding = [1.0, 0.0] if version != C else [0.0, 1.0]
    videos = VIDEOS[version]
    lake.write_partition(catalog.CANDIDATES, settings, candidates, date)
    lake.write_partition(
        catalog.USER_EMBEDDINGS,
        settings,
        rows({catalog.USER_ID: users, "embedding": [embedding] * len(users)}),
        date,
    )
    lake.write_partition(
        catalog.VIDEO_EMBEDDINGS,
        settings,
        rows({catalog.VIDEO_ID: videos, "embedding": [embedding] * len(videos)}),
        date,
    )


FIELDS = ("user_id", "model_version", "generated_at", "items", "found")


def online(settings: Settings) -> list[dict[str, Any]]:
    """What ``recommend`` answers for every user, in the fields a rollback decides."""
    return [{name: rec[name] for name in FIELDS} for rec in recommend(settings, USERS)]


def served(version: str, user_id: str) -> dict[str, Any]:
    """``online``'s entry for ``user_id`` when ``version``'s list is online (absent: not found)."""
    if user_id not in LISTS[version]:
        return {name: not_found(user_id)[name] for name in FIELDS}
    return {
        "user_id": user_id,
        "model_version": version,
        "generated_at": GENERATED[version].isoformat(),
        "items": [{"video_id": v, "score": s} for v, s in LISTS[version][user_id]],
        "found": True,
    }


def publish(settings: Settings, version: str) -> None:
    """What the nightly publish does: materialize the night, record the release, move the pointer."""
    materialize(NIGHT[version], settings, group="outputs")
    release = releases.Release(
        version=version,
        night=NIGHT[version],
        components={"two_tower": version},
        metrics={"ndcg@10": 0.1},
        gate={"publish": True, "reason": "test"},
        published_at=releases.now_iso(),
    )
    releases.record_release(settings, release)
    releases.set_serving(settings, version, "publish")


@pytest.fixture(params=STORES)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """D1 (A) and D2 (B, then rerun as C) in the lake; A and C published, in that order."""
    with online_store(tmp_path / "reelrec-home", request.param) as settings:
        for version in (A, B, C):
            write_version(settings, version)
        releases.record_release(settings, releases.Release(version=B, night=D2, gate={"publish": False}))
        apply(settings)
        publish(settings, A)
        publish(settings, C)
        assert online(settings) == [served(C, u) for u in USERS]
        yield settings


@pytest.mark.feast
def test_rollback_restores_a_replaced_night_by_time_travel_and_the_next_night_still_wins(
    world: Settings,
) -> None:
    settings = world
    facts = rollback(settings, B)
    assert online(settings) == [served(B, u) for u in USERS]  # U4 (only C scored it): cleared
    assert facts["night"] == D2 and facts["previous"] == C
    assert facts["tables"]["candidates"]["time_travel"] is True
    assert facts["tables"]["candidates"]["rows"] == 3 and facts["tables"]["candidates"]["cleared"] == 1
    assert facts["tables"]["video_embeddings"]["cleared"] == 1  # v9: only C embedded it
    assert releases.serving(settings) == releases.get_release(settings, B)
    pointer = releases.serving_pointer(settings)
    assert pointer is not None and [m["reason"] for m in pointer["history"]] == [
        "publish",
        "publish",
        "rollback",
    ]

    write_version(settings, E)  # the next night publishes normally over the rollback
    publish(settings, E)
    assert online(settings) == [served(E, u) for u in USERS]


@pytest.mark.feast
def test_rollback_twice_without_a_night_between_wins_both_times(world: Settings) -> None:
    settings = world
    first = rollback(settings, B)
    second = rollback(settings, A)
    assert second["online_timestamp"] > first["online_timestamp"]
    assert second["tables"]["candidates"]["time_travel"] is False  # A's rows are the current D1 partition
    # A never scored U4, and D2 (at or after A's night) did: cleared, as if never scored.
    assert online(settings) == [served(A, u) for u in USERS]
    assert releases.serving(settings) is not None
    assert releases.serving(settings).version == A  # type: ignore[union-attr]


@pytest.mark.feast
def test_rollback_to_an_unknown_version_names_it_and_the_known_ones(world: Settings) -> None:
    with pytest.raises(
        UnknownVersionError, match=r"'two_tower_v1-zzz'.*known versions: \[.*two_tower_v1-a"
    ) as err:
        rollback(world, "two_tower_v1-zzz")
    assert isinstance(err.value, DataError)
    assert online(world) == [served(C, u) for u in USERS]  # nothing written


@pytest.mark.feast
def test_cli_lists_versions_rolls_back_and_recommend_names_the_serving_version(
    world: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(world.home)]
    assert cli.main([*home, "models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["serving"]) for r in rows] == [(A, False), (B, False), (C, True)]
    assert cli.main([*home, "models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["version", "night", "components"]
    assert [line.split()[:2] for line in lines if line.startswith("*")] == [["*", C]]
    assert "held" in next(line for line in lines if B in line)

    assert cli.main([*home, "rollback", "--to", B, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tables"]["candidates"]["time_travel"] is True
    assert cli.main([*home, "recommend", "--user", U2]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"serving: {B} (night {D2}, held by the gate that night); rollback at ")
    assert cli.main([*home, "recommend", "--user", U2, "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert (rec["model_version"], rec["serving_version"]) == (B, B)

    with pytest.raises(SystemExit, match="no release and no gold.candidates rows of model version 'nope'"):
        cli.main([*home, "rollback", "--to", "nope"])
