"""Housekeeping on six tiny nights: what it keeps still reads the same, what it removes is gone and listed.

The nights are written with the real functions, at the smallest size that exercises each rule:
gold tables through ``lake.write_partition`` (night D2 scored twice, so a version's rows live only in
the Delta history), the quarantine written empty twice a night per feed (no commit after the first)
plus one partition left with two small files, a run manifest per night (``runs.record_manifest``),
each night's release published to the online store (Feast materialization, the release registry,
the serving pointer), and model folders in the layout the model packages write. Full Airflow
nights would take minutes each; nothing here depends on how a night was orchestrated.

Retention: the last 3 nights rebuildable, a rollback window of 2 releases besides the serving one,
the last night's model version, lists at most 2 days older than the default list.

One module-scoped home per store goes through: dry run (nothing changes), housekeeping, a second run
(nothing left to reclaim); the tests then check what each step kept and removed, and finally roll back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from feature_repo.materialize import materialize
from feature_repo.registry import apply
from reelrec import catalog, fingerprint, lake, releases, runs
from reelrec.catalog import DEFAULT_LIST_KEY, GOLD_TABLES, QUARANTINE
from reelrec.dates import feature_timestamp
from reelrec.errors import DataError
from reelrec.housekeeping import Retention, housekeep
from reelrec.online_expiry import expired
from reelrec.rollback import rollback
from reelrec.serving import recommend
from reelrec.settings import Settings
from tests.reelrec.test_serving import STORES, online_store

pytestmark = [pytest.mark.slow, pytest.mark.feast]

NIGHTS = [f"2026-11-0{i}" for i in range(1, 7)]
D1, D2, D3, D4, D5, D6 = NIGHTS
RETENTION = Retention(nights=3, rollback_releases=2, model_versions=1, online_max_age_days=2, airflow_days=30)
BROKEN = "reelrec_v1-2026-11-02-broken"  # D2's first scoring, replaced by its rerun
# Users and the nights that score them: U1 every night, U2 only D1 (5 days older than the default
# list of D6: expires), U3 D5 (1 day: kept), U4 D3 (3 days: expires).
SCORED = {"u1": set(NIGHTS), "u2": {D1}, "u3": {D5}, "u4": {D3}}


def version(night: str) -> str:
    return f"reelrec_v1-{night}-0000"


def model(kind: str, night: str) -> str:
    return f"{kind}_v1-{night}-{'a' if kind == 'two_tower' else 'b'}"


def generated(night: str) -> datetime:
    """When night D's lists were generated: D+1 03:00 UTC, as a nightly schedule would."""
    return datetime.fromisoformat(night).replace(hour=3, tzinfo=UTC) + timedelta(days=1)


def write_gold(settings: Settings, night: str, model_version: str) -> None:
    """Night D's three gold tables (replacing D's partitions), the default list included."""
    users = [u for u, nights in sorted(SCORED.items()) if night in nights]
    common = {
        catalog.MODEL_VERSION: model_version,
        catalog.GENERATED_AT: generated(night),
        catalog.EVENT_TIMESTAMP: feature_timestamp(night),
        catalog.DT: night,
    }

    def rows(keys: dict[str, list[Any]]) -> pa.Table:
        n = len(next(iter(keys.values())))
        return pa.table({**keys, **{name: [value] * n for name, value in common.items()}})

    listed = [*users, DEFAULT_LIST_KEY]
    lists = rows(
        {
            catalog.USER_ID: listed,
            catalog.VIDEO_IDS: [[f"v{night[-1]}", "v9"]] * len(listed),
            catalog.SCORES: pa.array([[0.9, 0.1]] * len(listed), pa.list_(pa.float32())),
        }
    )
    lake.write_partition(catalog.CANDIDATES, settings, lists, night)
    embedding = [[1.0, float(night[-1])]] * len(users)
    lake.write_partition(
        catalog.USER_EMBEDDINGS, settings, rows({catalog.USER_ID: users, "embedding": embedding}), night
    )
    videos = [f"v{night[-1]}", "v9"]
    lake.write_partition(
        catalog.VIDEO_EMBEDDINGS,
        settings,
        rows({catalog.VIDEO_ID: videos, "embedding": [[0.5, 0.5]] * 2}),
        night,
    )


def write_quarantine(settings: Settings, night: str) -> None:
    """Two feeds, each written empty twice (a rerun); D3 quarantines one event, then an append adds one."""
    empty = pa.Table.from_pylist([], schema=QUARANTINE.schema)
    for feed in ("events", "videos"):
        for _ in range(2):
            lake.write_partition(QUARANTINE, settings, empty, night, {catalog.SOURCE: feed})
    if night == D3:
        bad = {"file": "events.jsonl", "line": 7, "reason": "bad", "record": "{}", "dt": night}
        lake.write_partition(QUARANTINE, settings, pa.Table.from_pylist([{"source": "events", **bad}]), night)
        # A second small file in the same partition (what an append or a merge leaves): compaction's work.
        extra = lake.conform(QUARANTINE, pa.Table.from_pylist([{"source": "events", **bad, "line": 8}]))
        write_deltalake(str(QUARANTINE.path(settings)), extra, mode="append", partition_by=["dt", "source"])


def write_models(settings: Settings, night: str) -> None:
    """Both models' version folders and pointers (two-tower with its ANN index) and the training set."""
    for kind in ("two_tower", "ranker"):
        folder = settings.models / kind / model(kind, night)
        folder.mkdir(parents=True)
        (folder / "model.pt").write_bytes(bytes(2048))
        (folder / "config.json").write_text("{}")
        if kind == "two_tower":
            (folder / "ann").mkdir()
            (folder / "ann" / f"dt={night}.faiss").write_bytes(bytes(1024))
        pointer = {"date": night, "model_version": folder.name, "path": str(folder)}
        (settings.models / kind / f"dt={night}.json").write_text(json.dumps(pointer))
    examples = settings.models / "training_sets" / f"dt={night}"
    examples.mkdir(parents=True)
    pq.write_table(pa.table({"user_id": ["u1"] * 10}), examples / "examples.parquet")


def publish(settings: Settings, night: str) -> None:
    """The nightly publish: materialize the night, record the release, move the serving pointer."""
    materialize(night, settings, group="outputs")
    components = {"two_tower": model("two_tower", night), "ranker": model("ranker", night)}
    release = releases.Release(
        version(night), night, components, gate={"publish": True}, published_at=releases.now_iso()
    )
    releases.record_release(settings, release)
    releases.set_serving(settings, version(night), "publish")


def build_nights(settings: Settings) -> None:
    for night in NIGHTS:
        write_quarantine(settings, night)
        if night == D2:
            write_gold(settings, night, BROKEN)
        write_gold(settings, night, version(night))
        write_models(settings, night)
        if night == D1:
            apply(settings)
        publish(settings, night)
        runs.record_manifest(night, {"gate": {"publish": True}, "publish": {"views": 3}}, settings)
    # A crashed save (no pointer, an old night) and tomorrow's model being written (a night in flight).
    for name in ("two_tower_v1-2026-11-02-crashed", "two_tower_v1-2026-11-07-c"):
        (settings.models / "two_tower" / name).mkdir()
        (settings.models / "two_tower" / name / "model.pt").write_bytes(bytes(512))


def tree(root: Path) -> dict[str, int]:
    """Every file under ``root`` (lake, models, online store, runs) with its size."""
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and p.name != "run.lock")
    return {str(p.relative_to(root)): p.stat().st_size for p in files}


def versions_fingerprints(settings: Settings) -> dict[str, dict[int, str | None]]:
    """Per table, the content hash of every Delta version (time travel)."""
    out: dict[str, dict[int, str | None]] = {}
    for table in catalog.ALL_TABLES:
        if lake.exists(table, settings):
            current = lake.version(table, settings) or 0
            out[table.name] = {
                v: fingerprint.table_fingerprint(table, settings, version=v) for v in range(current + 1)
            }
    return out


def readable(table: catalog.Table, settings: Settings, at: int) -> str | None:
    try:
        return fingerprint.table_fingerprint(table, settings, version=at)
    except OSError:  # a data file of that version was vacuumed
        return None


@dataclass
class Home:
    settings: Settings
    users: list[str]
    before: dict[str, Any] = field(default_factory=dict)
    dry: dict[str, Any] = field(default_factory=dict)
    first: dict[str, Any] = field(default_factory=dict)
    second: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module", params=STORES)
def home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    with online_store(tmp_path_factory.mktemp("housekeeping") / "home", request.param) as settings:
        build_nights(settings)
        state = Home(settings, users=sorted(SCORED))

        def snapshot() -> dict[str, Any]:
            return {
                "files": tree(settings.home),
                "lake": fingerprint.lake_fingerprint(settings),
                "online": fingerprint.online_fingerprint(settings),
                "served": recommend(settings, state.users),
            }

        state.before = {**snapshot(), "versions": versions_fingerprints(settings)}
        state.dry = housekeep(settings, RETENTION, dry_run=True)
        state.after["dry"] = snapshot()
        state.first = housekeep(settings, RETENTION)
        state.after["first"] = snapshot()
        state.second = housekeep(settings, RETENTION)
        state.after["second"] = snapshot()
        yield state


def test_empty_quarantine_writes_make_no_commit(home: Home) -> None:
    # Six nights x two feeds x two empty writes, one row and one append on D3: the first empty write
    # creates the table, the D3 row and the append commit; no other write did.
    history = home.before["versions"]["quarantine"]
    assert len(history) == 3


def test_dry_run_changes_nothing_and_reports_what_the_run_reclaims(home: Home) -> None:
    assert home.after["dry"]["files"] == home.before["files"]
    assert home.after["dry"]["online"] == home.before["online"]
    assert home.dry["record"] is None
    removed = lambda report: [e["path"] for e in report["steps"]["models"]["two_tower"]["removed"]]  # noqa: E731
    assert removed(home.dry) == removed(home.first) and removed(home.first)
    online = lambda report: {v: f["users"] for v, f in report["steps"]["online"]["views"].items()}  # noqa: E731
    assert online(home.dry) == online(home.first) == {"user_daily_candidates": 2, "user_daily_embedding": 2}


def test_every_table_reads_the_same_rows_and_kept_versions_still_time_travel(home: Home) -> None:
    settings, lake_report = home.settings, home.first["steps"]["lake"]
    assert home.after["first"]["lake"] == home.before["lake"]
    assert lake_report["kept_nights"] == [D4, D5, D6]
    assert lake_report["bytes"] > 0 and lake_report["rows"] > 0
    candidates = lake_report["tables"]["gold.candidates"]
    assert candidates["vacuum"]["files"] >= 1 and candidates["vacuum"]["rows"] >= 1
    for table in catalog.ALL_TABLES:
        if table.name not in home.before["versions"]:
            continue
        floor = lake_report["tables"][f"{table.layer}.{table.name}"]["floor"]
        for at, expected in home.before["versions"][table.name].items():
            if at >= floor:
                assert readable(table, settings, at) == expected, (table.name, at)
    # The nights' manifests name versions at or above every floor.
    for night in (D4, D5, D6):
        manifest = runs.read_manifest(night, settings) or {}
        for name, facts in manifest["tables"].items():
            assert facts["version"] >= lake_report["tables"][name]["floor"], (night, name)
    # Below the floor, a version reading a file no kept version reads is gone: D2's first scoring.
    assert candidates["floor"] > 1 and readable(catalog.CANDIDATES, settings, 1) is None
    # Compaction merged the quarantine partition's two files (rows unchanged, checked above).
    assert lake_report["tables"]["bronze.quarantine"]["compact"] == {
        "files_merged": 2,
        "files_written": 1,
        "committed": True,
    }


def test_models_keep_serving_window_and_last_versions_and_list_what_went(home: Home) -> None:
    models_dir, report = home.settings.models, home.first["steps"]["models"]
    # Serving D6, rollback window D4 and D5, the last night D6, the night still being written (D7).
    assert sorted(p.name for p in (models_dir / "two_tower").iterdir() if p.is_dir()) == [
        model("two_tower", D4),
        model("two_tower", D5),
        model("two_tower", D6),
        "two_tower_v1-2026-11-07-c",
    ]
    assert sorted(p.name for p in (models_dir / "ranker").iterdir() if p.is_dir()) == [
        model("ranker", n) for n in (D4, D5, D6)
    ]
    assert sorted(p.name for p in (models_dir / "two_tower").glob("dt=*.json")) == [
        f"dt={n}.json" for n in (D4, D5, D6)
    ]
    assert sorted(p.name for p in (models_dir / "training_sets").iterdir()) == [
        f"dt={n}" for n in (D4, D5, D6)
    ]
    removed = [e["path"] for e in report["two_tower"]["removed"]]
    assert removed == sorted(
        [*(model("two_tower", n) for n in (D1, D2, D3)), "two_tower_v1-2026-11-02-crashed"]
    )
    assert report["two_tower"]["pointers_removed"] == [f"dt={n}.json" for n in (D1, D2, D3)]
    assert report["training_sets"]["rows"] == 30
    # Each removed two-tower version went with its ANN index: 3 files a version (1 for the crashed one).
    assert sum(e["files"] for e in report["two_tower"]["removed"]) == 3 * 3 + 1
    # The record lists what was removed.
    record = json.loads(Path(home.first["record"]).read_text())
    assert [e["path"] for e in record["steps"]["models"]["two_tower"]["removed"]] == removed
    assert releases.releases(home.settings) and len(releases.releases(home.settings)) == 6  # history kept


def test_stale_lists_are_removed_and_the_default_list_answers_them(home: Home) -> None:
    served = {r["user_id"]: r for r in home.before["served"]}
    assert served["u2"]["found"] and served["u2"]["model_version"] == version(D1)  # stale, served
    after = {r["user_id"]: r for r in home.after["first"]["served"]}
    for user in ("u2", "u4"):
        assert after[user]["found"] is False and after[user]["fallback"] is True, user
        assert after[user]["model_version"] == version(D6)  # the default list's
    assert after["u1"] == served["u1"] and after["u3"] == served["u3"]
    views = home.first["steps"]["online"]["views"]
    assert views["user_daily_candidates"]["values"] > 0 and views["user_daily_candidates"]["bytes"] > 0
    assert expired(generated(D1), generated(D6), timedelta(days=2))
    assert not expired(generated(D4), generated(D6), timedelta(days=2))  # exactly the age: kept


def test_a_second_run_reclaims_nothing(home: Home) -> None:
    second = home.second
    assert second["bytes"] == 0 and second["record"] is None
    assert all(not t["compact"]["committed"] for t in second["steps"]["lake"]["tables"].values())
    assert all(t["vacuum"]["files"] == 0 for t in second["steps"]["lake"]["tables"].values())
    assert home.after["second"]["files"] == home.after["first"]["files"]  # no commit, no file
    assert home.after["second"]["online"] == home.after["first"]["online"]


def test_rollback_to_a_kept_release_works_and_to_a_vacuumed_version_names_it(home: Home) -> None:
    settings = home.settings
    with pytest.raises(DataError, match="vacuumed|no gold rows"):
        rollback(settings, BROKEN)  # only in D2's first Delta versions, which a kept night no longer needs
    facts = rollback(settings, version(D5))
    assert facts["night"] == D5
    answers = {r["user_id"]: r for r in recommend(settings, home.users)}
    assert answers["u1"]["found"] and answers["u1"]["model_version"] == version(D5)
    assert all(facts["tables"][t.name]["rows"] for t in GOLD_TABLES)


# ------------------------------------------------------------------------------ the DAG, in Airflow
@pytest.mark.airflow
@pytest.mark.parametrize("store", STORES)
def test_the_dag_runs_every_step_in_airflow_as_the_shell_command_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    """``reelrec_housekeeping`` run by Airflow (``airflow dags test``): each task hands off to its step,
    with the retention of the environment, and together they do what ``housekeep`` does above."""
    from reelrec.airflow_local import run_dag, task_instances

    retention = {
        "REELREC_KEEP_NIGHTS": "3",
        "REELREC_KEEP_RELEASES": "2",
        "REELREC_KEEP_MODEL_VERSIONS": "1",
        "REELREC_ONLINE_MAX_AGE_DAYS": "2",
        "REELREC_HOUSEKEEPING_POKE_S": "1",
    }
    for name, value in retention.items():
        monkeypatch.setenv(name, value)
    with online_store(tmp_path / "home", store) as settings:
        monkeypatch.setenv("REELREC_FEAST_ENV", settings.feast_env)
        build_nights(settings)
        lake_before = fingerprint.lake_fingerprint(settings)

        outcome = run_dag(D6, settings, dag_id="reelrec_housekeeping")

        log = outcome.log_path.read_text(errors="replace")
        assert outcome.succeeded, log[-4000:]
        states = {t["task_id"]: t["state"] for t in task_instances(D6, settings, "reelrec_housekeeping")}
        assert states == dict.fromkeys(
            ["wait_for_nights", "lake", "models", "online", "airflow_metadata", "record"], "success"
        ), states
        [path] = sorted((settings.runs / "housekeeping").glob("*.json"))
        record = json.loads(path.read_text())
        assert record["retention"]["nights"] == 3 and record["retention"]["model_versions"] == 1
        removed = [e["path"] for e in record["steps"]["models"]["two_tower"]["removed"]]
        assert removed == sorted(
            [*(model("two_tower", n) for n in (D1, D2, D3)), "two_tower_v1-2026-11-02-crashed"]
        )
        assert not (settings.models / "two_tower" / model("two_tower", D3)).exists()
        views = record["steps"]["online"]["views"]
        assert {v: f["users"] for v, f in views.items()} == {
            "user_daily_candidates": 2,
            "user_daily_embedding": 2,
        }
        assert fingerprint.lake_fingerprint(settings) == lake_before  # every table reads the same rows
        assert readable(catalog.CANDIDATES, settings, 1) is None  # D2's first scoring was vacuumed
        answers = {r["user_id"]: r for r in recommend(settings, sorted(SCORED))}
        assert answers["u2"]["fallback"] is True and answers["u1"]["model_version"] == version(D6)


# ------------------------------------------------------------------ the shell command and exclusion
def test_cli_dry_run_and_refusal_while_the_home_is_locked(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from reelrec import cli, run_lock

    home = tmp_path / "home"
    assert cli.main(["--home", str(home), "housekeep", "--dry-run"]) == 0
    assert "would reclaim 0.00 MB" in capsys.readouterr().out
    with run_lock.hold(Settings.from_env(home), "run", [D1]):
        assert cli.main(["--home", str(home), "housekeep"]) == run_lock.EXIT_LOCKED
    assert "another run holds the run lock" in capsys.readouterr().err


def test_refuses_while_airflow_shows_a_running_night(tmp_path: Path) -> None:
    import sqlite3

    from reelrec.housekeeping import NightRunningError, lake_step, wait_for_nights

    settings = Settings.from_env(tmp_path / "home")
    db = Path(settings.airflow_db.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:  # the columns of Airflow's dag_run that reelrec reads
        conn.execute(
            "CREATE TABLE dag_run (id INTEGER PRIMARY KEY, dag_id TEXT, run_id TEXT, logical_date TEXT, "
            "state TEXT, start_date TEXT, end_date TEXT)"
        )
        conn.execute(
            "INSERT INTO dag_run VALUES (1, 'reelrec_nightly', 'nightly__2026-11-06', '2026-11-06', "
            "'running', NULL, NULL)"
        )
    assert wait_for_nights(settings) is False
    with pytest.raises(NightRunningError, match="nightly__2026-11-06"):
        lake_step(settings, RETENTION)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE dag_run SET state = 'success'")
    assert wait_for_nights(settings) is True
    assert lake_step(settings, RETENTION)["tables"] == {}


@contextlib.contextmanager
def _airflow_metadata(kind: str, home: Path) -> Iterator[Settings]:
    """A real, migrated Airflow metadata database of ``kind``: the embedded SQLite file, or (production
    profile) a Postgres database of its own, dropped afterwards."""
    from reelrec.airflow_local import ensure_db

    if kind == "sqlite":
        settings = Settings.from_env(home)
        ensure_db(settings)
        yield settings
        return
    from reelrec.services.engines import create_database, drop_database

    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/reelrec_hk_airflow_{uuid.uuid4().hex[:8]}"
    create_database(url)
    try:
        settings = dataclasses.replace(Settings.from_env(home), airflow_db_url=url)
        ensure_db(settings)
        yield settings
    finally:
        drop_database(url)


def _sql(
    settings: Settings, statement: str, params: dict[str, Any] | list[dict[str, Any]] | None = None
) -> list[Any]:
    import sqlalchemy

    from reelrec.airflow_local import _engine

    engine = _engine(settings)  # the engine reelrec reads the metadata with (UTC on Postgres)
    try:
        with engine.begin() as conn:
            result = conn.execute(sqlalchemy.text(statement), params or {})
            return list(result.fetchall()) if result.returns_rows else []
    finally:
        engine.dispose()


@pytest.mark.airflow
@pytest.mark.parametrize("metadata", ["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def test_airflow_metadata_and_task_logs_past_the_retention_are_removed(tmp_path: Path, metadata: str) -> None:
    import os

    from reelrec.housekeeping_airflow import clean_airflow

    with _airflow_metadata(metadata, tmp_path / "home") as settings:
        _sql(  # two old audit rows
            settings,
            "INSERT INTO log (dttm, event, owner) VALUES (:dttm, 'trigger', 'reelrec')",
            [{"dttm": datetime(2026, 1, 1, tzinfo=UTC)}, {"dttm": datetime(2026, 1, 2, tzinfo=UTC)}],
        )
        logs = settings.airflow_home / "logs" / "dag_id=reelrec_nightly"
        old, new = logs / "run_id=old" / "attempt=1.log", logs / "run_id=new" / "attempt=1.log"
        for path in (old, new):
            path.parent.mkdir(parents=True)
            path.write_text("log line\n")
        month_ago = (datetime.now(UTC) - timedelta(days=31)).timestamp()
        os.utime(old, (month_ago, month_ago))

        dry = clean_airflow(settings, 30, dry_run=True)
        assert dry["logs"] == {"files": 1, "bytes": 9} and dry["metadata"]["rows"] == {"log": 2}
        assert old.exists()
        report = clean_airflow(settings, 30, dry_run=False)
        assert report["logs"] == {"files": 1, "bytes": 9} and report["metadata"]["rows"] == {"log": 2}
        assert not old.parent.exists() and new.exists()
        cutoff = {"cutoff": datetime(2026, 2, 1, tzinfo=UTC)}
        assert _sql(settings, "SELECT COUNT(*) FROM log WHERE dttm < :cutoff", cutoff) == [(0,)]
        archives = (
            "SELECT name FROM sqlite_master WHERE name LIKE '_airflow_deleted%'"
            if metadata == "sqlite"
            else "SELECT tablename FROM pg_tables WHERE tablename LIKE '_airflow_deleted%'"
        )
        assert _sql(settings, archives) == []  # --skip-archive: the rows are gone, not moved
        again = clean_airflow(settings, 30, dry_run=False)
        assert again["logs"] == {"files": 0, "bytes": 0} and again["metadata"]["rows"] == {}


def test_an_empty_write_commits_only_when_it_empties_a_partition(tmp_path: Path) -> None:
    settings = Settings.from_env(tmp_path / "home")
    empty = pa.Table.from_pylist([], schema=QUARANTINE.schema)
    row = {"source": "events", "file": "f", "line": 1, "reason": "r", "record": "{}", "dt": D1}
    assert lake.write_partition(QUARANTINE, settings, empty, D1) == 0  # creates the table
    assert lake.write_partition(QUARANTINE, settings, empty, D1) == 0  # nothing over nothing
    assert lake.write_partition(QUARANTINE, settings, pa.Table.from_pylist([row]), D1) == 1
    assert lake.write_partition(QUARANTINE, settings, empty, D2) == 1  # another empty partition
    assert lake.write_partition(QUARANTINE, settings, empty, D1) == 2  # empties D1: a real change
    assert lake.partition_row_count(QUARANTINE, settings, D1) == 0
    assert lake.write_partition(QUARANTINE, settings, empty, D1) == 2
