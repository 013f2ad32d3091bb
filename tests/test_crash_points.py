"""Crash at every write boundary (issue 11 §1): SIGKILL the task process at a named point, rerun.

The harness: :mod:`reelrec.faults` points with the ``kill`` kind (``os.kill(getpid(), SIGKILL)``:
no ``finally``, no ``except``, like the OOM killer). The night's tasks run in a child process, the
job entry points the DAG calls in DAG order (:data:`TASKS`, the runner at the bottom of this file,
``python -m tests.test_crash_points``); the Spark jobs talk to one Spark Connect server started by
the module's fixture, so a child starts no JVM.

One tiny world (3 days). Clean: nights 1 and 2, a copy of ``REELREC_HOME`` (the state before night
3), then night 3, the first that trains and publishes (``force_publish``), recording a fingerprint
of the lake, the online store and the models after each task that holds a crash point
(:data:`CHECKED`). Crashed: night 3 again on the copy with every point of :data:`POINTS` armed
(each fires once, counted under ``$REELREC_HOME/faults``, as an Airflow retry would find it). The
night dies at the first point (returncode -9); it is rerun from the task that died, which dies at
the next point, and so on until the night ends: a crash at every boundary, each followed by the
rerun the scheduler would do, and each rerun's state compared with the clean run's at the same
task boundary and at the end of the night.

Fingerprints (:mod:`reelrec.fingerprint`) hash rows, not counts: every Delta table's snapshot,
every feature view's online values (``generated_at`` left out: a wall clock), every model file
and pointer, and the serving release.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reelrec import faults
from reelrec.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.feast, pytest.mark.torch]

D1, D2, D3 = "2026-11-01", "2026-11-02", "2026-11-03"
NIGHT_TIMEOUT_S = 600

# The nightly DAG's tasks, in an order its dependencies allow, each as (task, entry, leading args,
# upstream tasks): what ``dags/reelrec_nightly.py``'s ``_call`` runs, minus ``record_run``.
D = object()  # stands for the night's date in the arguments below
TASKS: list[tuple[str, str, tuple[Any, ...], tuple[str, ...]]] = [
    ("ingest_events", "spark_jobs.ingest_events:main", (D,), ()),
    ("ingest_catalogs", "spark_jobs.ingest_catalogs:main", (D,), ()),
    ("validate_bronze", "reelrec.validation:gate", ("bronze", D), ("ingest_events", "ingest_catalogs")),
    ("user_features", "spark_jobs.user_features:main", (D,), ("validate_bronze",)),
    ("video_features", "spark_jobs.video_features:main", (D,), ("validate_bronze",)),
    ("creator_features", "spark_jobs.creator_features:main", (D,), ("validate_bronze",)),
    (
        "validate_features",
        "reelrec.validation:gate",
        ("features", D),
        ("user_features", "video_features", "creator_features"),
    ),
    ("feast_apply", "feature_repo.registry:apply", (), ("validate_features",)),
    ("feast_materialize", "feature_repo.materialize:materialize", (D,), ("feast_apply",)),
    ("content_embeddings", "models.content:main", (D,), ("validate_features",)),
    ("publish_content", "models.publish:publish_content", (D,), ("feast_materialize", "content_embeddings")),
    ("training_set", "models.training_set:main", (D,), ("feast_materialize", "publish_content")),
    ("train", "models.two_tower.train:main", (D,), ("training_set",)),
    ("train_ranker", "models.ranker.train:main", (D,), ("training_set",)),
    ("evaluate", "models.evaluate:main", (D,), ("train", "train_ranker")),
    ("gate", "models.promotion:gate", (D, True), ("evaluate",)),
    ("score", "models.score:main", (D,), ("gate",)),
    ("validate_outputs", "reelrec.validation:gate", ("outputs", D), ("score",)),
    ("publish", "models.publish:publish_outputs", (D,), ("validate_outputs",)),
]
TASK_NAMES = [name for name, *_ in TASKS]


# (id, fault spec without its kind, the task it kills): in the order night 3 meets them.
POINTS: list[tuple[str, str, str]] = [
    ("ingest_before_commit", f"lake.commit@table=events@date={D3}@phase=before", "ingest_events"),
    ("ingest_after_commit", f"lake.commit@table=events@date={D3}@phase=after", "ingest_events"),
    ("feature_write", f"lake.commit@table=user_features@date={D3}@phase=after", "user_features"),
    ("feast_materialize", f"materialize.view@date={D3}@view=user_daily_engagement", "feast_materialize"),
    ("two_tower_save", f"model.save@model=two_tower@date={D3}", "train"),
    ("ranker_save", f"model.save@model=ranker@date={D3}", "train_ranker"),
    ("scoring_write", f"lake.commit@table=user_embeddings@date={D3}@phase=before", "score"),
    ("publish_between_views", f"materialize.view@date={D3}@view=user_daily_embedding", "publish"),
]
CHECKED = sorted({task for _, _, task in POINTS}, key=TASK_NAMES.index)
ARMED = ",".join(f"{spec}:kill" for _, spec, _ in POINTS)
# Files under models/ that record how a job ran (seconds, absolute paths, the Delta versions it
# read: a crashed table has more commits), not what it computed.
RECORD_FILES = frozenset({"training.json", "metrics.json", "facts.json"})
RELEASES = frozenset({"releases", "serving.json"})  # reelrec.releases' records under models/


def state(settings: Settings) -> dict[str, Any]:
    """Fingerprints of everything a night leaves that a later task or a serving read uses."""
    from reelrec import releases
    from reelrec.fingerprint import lake_fingerprint, models_fingerprint, online_fingerprint

    serving = releases.serving(settings)
    models = models_fingerprint(settings, skip=RECORD_FILES)
    return {
        "lake": lake_fingerprint(settings),
        "online": online_fingerprint(settings),
        # Release records carry their publishing time: the serving release is compared without it.
        "models": {key: value for key, value in models.items() if key.split("/")[0] not in RELEASES},
        "serving": serving and [serving.version, serving.components, serving.metrics, serving.forced],
    }


def run_tasks(
    date: str, first: str, settings: Settings, states: Path | None = None, fingerprint: bool = False
) -> None:
    """Run the night's tasks from ``first`` on (DAG order) in this process, like the DAG's ``_call``.

    A task raising :class:`~reelrec.errors.NothingToDoError` is skipped, and so is every task
    downstream of it. ``states``: a folder; ``<task>.started`` is written before each task runs
    and ``<task>.done`` after it (a ``.started`` without ``.done``: the task that died); with
    ``fingerprint``, ``<task>.json`` too, :func:`state` after each task of :data:`CHECKED`.
    """
    from reelrec.errors import NothingToDoError

    skipped: set[str] = set()
    for name, entry, lead, upstream in TASKS[TASK_NAMES.index(first) :]:
        if skipped & set(upstream):
            skipped.add(name)
            continue
        if states is not None:
            (states / f"{name}.started").touch()
        module, function = entry.split(":")
        began = time.perf_counter()
        try:
            getattr(importlib.import_module(module), function)(
                *(date if a is D else a for a in lead), settings
            )
        except NothingToDoError:
            skipped.add(name)
        print(f"[night {date}] {name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
        if states is not None:
            if fingerprint and name in CHECKED and name not in skipped:
                (states / f"{name}.json").write_text(json.dumps(state(settings), indent=1, sort_keys=True))
            (states / f"{name}.done").touch()


def night(
    home: Path,
    date: str,
    first: str = TASK_NAMES[0],
    env: dict[str, str] | None = None,
    fingerprint: bool = False,
) -> int:
    """Run :func:`run_tasks` in a child process on ``home``; its returncode (-9: SIGKILL)."""
    states = home / "crash-states" / date
    states.mkdir(parents=True, exist_ok=True)
    for marker in [*states.glob("*.started"), *states.glob("*.done")]:
        marker.unlink()
    command = [sys.executable, "-m", "tests.test_crash_points", "--date", date, "--first", first]
    command += ["--states", str(states), *(["--fingerprint"] if fingerprint else [])]
    log = home / "crash-states" / f"{date}.log"
    with log.open("a") as sink:
        sink.write(f"--- {' '.join(command[2:])} {env or ''}\n")
        sink.flush()
        done = subprocess.run(
            command,
            env={**_quiet(os.environ), "REELREC_HOME": str(home), **(env or {})},
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=NIGHT_TIMEOUT_S,
            check=False,
        )
    return done.returncode


def _quiet(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without ``REELREC_FAULTS``: only the faults a run arms itself fire."""
    return {key: value for key, value in environ.items() if key != faults.ENV}


def _died_in(states: Path) -> str | None:
    """The task that started last and never recorded its end (None: every started task ended)."""
    open_tasks = [
        name
        for name in TASK_NAMES
        if (states / f"{name}.started").exists() and not (states / f"{name}.done").exists()
    ]
    return open_tasks[-1] if open_tasks else None


@contextlib.contextmanager
def _spark_connect(root: Path) -> Iterator[str]:
    """One Spark Connect server for every child process of the module; yields its ``sc://`` URL."""
    from reelrec.spark_cluster import SparkPorts, connect_url, spark_components
    from tests.spark_server import free_port, running

    ports = SparkPorts(connect=free_port())
    with running(spark_components(Settings.from_env(root / "spark-home"), ports), root / "services"):
        yield connect_url(ports)


def _fired(home: Path) -> dict[str, int]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(faults.ENV, ARMED)
        return faults.fired(Settings.from_env(home))


def _plant_uncommitted_file(settings: Settings) -> Path:
    """What a writer killed between writing its data files and committing leaves: a parquet file in
    night 3's ``events`` partition folder that no Delta commit names (here night 2's rows, so a
    reader that lists folders would return them as night 3's)."""
    from reelrec import lake
    from reelrec.catalog import EVENTS

    source = Path(lake.snapshot_files(EVENTS, settings, [D2])[0].removeprefix("file://"))
    target = EVENTS.path(settings) / f"dt={D3}" / f"part-00000-{'0' * 8}-killed-writer-c000.snappy.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


@pytest.fixture(scope="module")
def crashes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The clean night 3 and the crashed one (every point of :data:`POINTS`, one after the other)."""
    from feature_repo.store_config import render_config
    from synthetic_world import generate

    root = tmp_path_factory.mktemp("crash")
    clean, crashed = root / "clean", root / "crashed"
    generate(Settings.from_env(clean), "tiny", D1, 3)
    facts: dict[str, Any] = {"clean": clean, "crashed": crashed, "runs": [], "at_crash": {}}
    with _spark_connect(root) as url:
        env = {"REELREC_SPARK_REMOTE": url}
        assert night(clean, D1, env=env) == night(clean, D2, env=env) == 0
        # The state before night 3, for the crashed run.
        shutil.copytree(clean, crashed, ignore=shutil.ignore_patterns("crash-states"))
        render_config(Settings.from_env(crashed))  # the copied config names the clean home's files
        began = time.perf_counter()
        assert night(clean, D3, env=env, fingerprint=True) == 0, (
            clean / "crash-states" / f"{D3}.log"
        ).read_text()[-3000:]
        facts["clean_night_s"] = time.perf_counter() - began
        states, first = crashed / "crash-states" / D3, TASK_NAMES[0]
        began = time.perf_counter()
        for _ in range(len(POINTS) + 1):
            code = night(crashed, D3, first, env={**env, faults.ENV: ARMED}, fingerprint=True)
            died_in = _died_in(states)
            facts["runs"].append(
                {"first": first, "returncode": code, "died_in": died_in, "fired": _fired(crashed)}
            )
            if code == 0:
                break
            point = POINTS[len(facts["runs"]) - 1][0]
            facts["at_crash"][point] = state(Settings.from_env(crashed))
            if point == "ingest_before_commit":
                facts["planted"] = _plant_uncommitted_file(Settings.from_env(crashed))
            first = died_in or first
        facts["crashed_night_s"] = time.perf_counter() - began
        facts["spark_reads"] = {home.name: _spark_event_ids(home, url) for home in (clean, crashed)}
    return facts


def _clean_state(facts: dict[str, Any], task: str) -> dict[str, Any]:
    return json.loads((facts["clean"] / "crash-states" / D3 / f"{task}.json").read_text())


def _crashed_state(facts: dict[str, Any], task: str) -> dict[str, Any]:
    return json.loads((facts["crashed"] / "crash-states" / D3 / f"{task}.json").read_text())


def _ids_digest(ids: list[str]) -> str:
    return f"{len(ids)}:{hashlib.sha256(chr(10).join(sorted(ids)).encode()).hexdigest()}"


_SPARK_READ = """
import hashlib, sys
from reelrec.catalog import EVENT_ID, EVENTS
from reelrec.settings import Settings
from reelrec.spark import get_spark, read_delta
settings = Settings.from_env()
frame = read_delta(get_spark(settings), EVENTS, settings, [sys.argv[1]])
ids = [row[0] for row in frame.select(EVENT_ID).collect()]
print(f"{len(ids)}:{hashlib.sha256(chr(10).join(sorted(ids)).encode()).hexdigest()}")
"""


def _spark_event_ids(home: Path, url: str) -> str:
    """Digest of night 3's ``events`` ids as the Spark jobs read them (``reelrec.spark.read_delta``)."""
    env = {**_quiet(os.environ), "REELREC_HOME": str(home), "REELREC_SPARK_REMOTE": url}
    done = subprocess.run(
        [sys.executable, "-c", _SPARK_READ, D3], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def _duckdb_event_ids(home: Path) -> str:
    """Digest of night 3's ``events`` ids as Feast's DuckDB offline store reads Delta (``delta_scan``)."""
    import duckdb

    from reelrec.catalog import EVENT_ID, EVENTS

    with duckdb.connect() as con:
        con.execute("LOAD delta")
        rows = con.execute(
            f"SELECT {EVENT_ID} FROM delta_scan(?) WHERE dt = ?", [EVENTS.uri(Settings.from_env(home)), D3]
        ).fetchall()
    return _ids_digest([row[0] for row in rows])


POINT_IDS = [point for point, _, _ in POINTS]
OUTPUT_VIEWS = ("user_daily_candidates", "user_daily_embedding", "video_daily_embedding")


@pytest.mark.parametrize("index", range(len(POINTS)), ids=POINT_IDS)
def test_each_point_kills_its_task_with_sigkill(crashes: dict[str, Any], index: int) -> None:
    point, spec, task = POINTS[index]
    run = crashes["runs"][index]
    assert run["returncode"] == -9, run  # SIGKILL: no exception, no cleanup
    assert run["died_in"] == task, run
    # This point fired now, the earlier ones before, none of the later ones yet.
    assert run["fired"] == {f"{s}:kill": int(i <= index) for i, (_, s, _) in enumerate(POINTS)}, run
    if index:  # the night was rerun from the task the previous crash killed
        assert run["first"] == POINTS[index - 1][2]


def test_the_night_ends_after_the_last_crash(crashes: dict[str, Any]) -> None:
    last = crashes["runs"][-1]
    assert len(crashes["runs"]) == len(POINTS) + 1
    assert last["returncode"] == 0 and last["died_in"] is None, last
    assert set(last["fired"].values()) == {1}


def _at(state_: dict[str, Any], path: str) -> Any:
    part, _, key = path.partition("/")
    return state_[part].get(key)


# What each crash leaves (compared with the clean run's state once its task ended): the parts that
# are already as the clean run has them, and the parts that are not (yet).
LEFT: dict[str, tuple[list[str], list[str]]] = {
    "ingest_before_commit": ([], ["lake/bronze.events"]),
    "ingest_after_commit": (["lake/bronze.events"], []),
    "feature_write": (["lake/silver.user_features"], []),
    "feast_materialize": (
        ["online/creator_daily_audience"],
        ["online/user_daily_engagement", "online/video_daily_performance"],
    ),
    "two_tower_save": ([], [f"models/two_tower/dt={D3}.json"]),
    "ranker_save": ([], [f"models/ranker/dt={D3}.json"]),
    "scoring_write": (["lake/gold.candidates"], ["lake/gold.user_embeddings"]),
    # The three output views are written together, in one SQLite transaction (one MULTI/EXEC per
    # batch of users on Redis): a kill at the second view's turn leaves none of them written.
    "publish_between_views": ([], [f"online/{view}" for view in OUTPUT_VIEWS]),
}


@pytest.mark.parametrize("index", range(len(POINTS)), ids=POINT_IDS)
def test_each_crash_leaves_a_partial_night(crashes: dict[str, Any], index: int) -> None:
    point, _, task = POINTS[index]
    at_crash, clean = crashes["at_crash"][point], _clean_state(crashes, task)
    done, not_yet = LEFT[point]
    for path in done:
        assert _at(at_crash, path) == _at(clean, path), path
    for path in not_yet:
        assert _at(at_crash, path) != _at(clean, path), path
    if task == "publish":  # nothing online yet, so no release was recorded or made the serving one
        assert at_crash["serving"] is None and clean["serving"] is not None
    if task in ("train", "train_ranker"):  # weights written, the rest of the folder and the pointer not
        model = "two_tower" if task == "train" else "ranker"
        version = _at(clean, f"models/{model}/dt={D3}.json")
        weights = f"models/{model}/{version}/model.pt"
        assert _at(at_crash, weights) == _at(clean, weights)
        assert _at(at_crash, f"models/{model}/{version}/config.json") is None


@pytest.mark.parametrize("index", range(len(POINTS)), ids=POINT_IDS)
def test_rerun_of_the_killed_task_equals_the_clean_run(crashes: dict[str, Any], index: int) -> None:
    from reelrec.fingerprint import differences

    task = POINTS[index][2]
    crashed, clean = _crashed_state(crashes, task), _clean_state(crashes, task)
    for part in ("lake", "online", "models"):
        assert differences(crashed[part], clean[part]) == {}, (task, part)
    assert crashed["serving"] == clean["serving"]


def test_the_crashed_night_ends_equal_to_the_clean_night(crashes: dict[str, Any]) -> None:
    from reelrec.fingerprint import differences

    crashed, clean = state(Settings.from_env(crashes["crashed"])), state(Settings.from_env(crashes["clean"]))
    assert clean["serving"] is not None and clean["serving"][0].startswith(f"reelrec_v1-{D3}-")
    assert any(key.startswith("two_tower/two_tower_v1-") for key in clean["models"])
    for part in ("lake", "online", "models"):
        assert differences(crashed[part], clean[part]) == {}, part
    assert crashed["serving"] == clean["serving"]


def test_files_no_commit_names_are_never_read(crashes: dict[str, Any]) -> None:
    from reelrec import lake
    from reelrec.catalog import EVENT_ID, EVENTS

    settings = Settings.from_env(crashes["crashed"])
    on_disk = {str(p) for p in (EVENTS.path(settings) / f"dt={D3}").glob("*.parquet")}
    named = {uri.removeprefix("file://") for uri in lake.snapshot_files(EVENTS, settings, [D3])}
    orphans = on_disk - named
    # The planted file of a killed writer, and the first commit's files the rerun replaced.
    assert str(crashes["planted"]) in orphans and len(orphans) >= 2, orphans
    expected = _ids_digest(
        lake.read(EVENTS, Settings.from_env(crashes["clean"]), [D3], [EVENT_ID]).column(0).to_pylist()
    )
    assert _ids_digest(lake.read(EVENTS, settings, [D3], [EVENT_ID]).column(0).to_pylist()) == expected
    assert _duckdb_event_ids(crashes["crashed"]) == expected
    assert crashes["spark_reads"] == {"clean": expected, "crashed": expected}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run a night's tasks in DAG order (crash tests).")
    parser.add_argument("--date", required=True)
    parser.add_argument("--first", default=TASK_NAMES[0], choices=TASK_NAMES)
    parser.add_argument("--states", type=Path, default=None)
    parser.add_argument("--fingerprint", action="store_true")
    ns = parser.parse_args()
    run_tasks(ns.date, ns.first, Settings.from_env(), ns.states, ns.fingerprint)
