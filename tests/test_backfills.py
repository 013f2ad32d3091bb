"""Backfills and reruns (issue 11 §3): a rerun changes nothing, a backfill never rolls the online
store back, a night that fails its features gate writes nothing online, one run per home at a time.

One tiny world of nine days (``history``), run in this process night by night with the DAG's tasks
in the DAG's order (:func:`run_night`; the scheduler costs 1-2 minutes a tiny night):

1. 2026-11-01..07, the model plane on the 3rd (the first night a tiny world can train) and the 4th
   (so that a later model night exists to backfill under), published with ``force_publish`` as
   tests/test_end_to_end.py does (the gate's own rules are tested there);
2. the same range again, in order: every night of it but the 7th is a backfill under the
   features' watermark (the 7th) and the 3rd also under the outputs' (the 4th);
3. the 8th with bad rows planted in ``silver.user_features`` before its "features" suite (a share
   above 1, as a broken feature job would write): the gate fails the night;
4. the 9th, an ordinary night.

Fingerprints (:mod:`reelrec.fingerprint`): every Delta table's rows and every online view's values
(the wall-clock ``generated_at`` left out) after each step. The Redis side (``services``) replays
the online tasks of the same nights on a copy of that lake (:func:`redis_replay`). The run lock
(:mod:`reelrec.run_lock`) is tested with real processes and ``reelrec run``/``reelrec demo``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reelrec.errors import DataError, NothingToDoError
from reelrec.settings import Settings

DATES = [f"2026-11-0{day}" for day in range(1, 10)]
RANGE, FAILED, NEXT = DATES[:7], DATES[7], DATES[8]
D3, D4, D7 = DATES[2], DATES[3], DATES[6]
MODEL_NIGHTS = (D3, D4)
FEATURES = ("creator_daily_audience", "user_daily_engagement", "video_daily_performance")
OUTPUTS = ("user_daily_candidates", "user_daily_embedding", "video_daily_embedding")

# ---------------------------------------------------------------- nights in process, in DAG order
# (task_id, "module:function", arguments before the settings; "D": the night, "FORCE": force_publish).
DATA_PLANE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("check_landing", "reelrec.landing:check_drops", ("D",)),
    ("ingest_events", "spark_jobs.ingest_events:main", ("D",)),
    ("ingest_catalogs", "spark_jobs.ingest_catalogs:main", ("D",)),
    ("validate_bronze", "reelrec.validation:gate", ("bronze", "D")),
    ("user_features", "spark_jobs.user_features:main", ("D",)),
    ("video_features", "spark_jobs.video_features:main", ("D",)),
    ("creator_features", "spark_jobs.creator_features:main", ("D",)),
    ("validate_features", "reelrec.validation:gate", ("features", "D")),
    ("feast_apply", "feature_repo.registry:apply", ()),
    ("feast_materialize", "feature_repo.materialize:materialize", ("D",)),
    ("content_embeddings", "models.content:main", ("D",)),
    ("publish_content", "models.publish:publish_content", ("D",)),
)
MODEL_PLANE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("training_set", "models.training_set:main", ("D",)),
    ("train", "models.two_tower.train:main", ("D",)),
    ("train_ranker", "models.ranker.train:main", ("D",)),
    ("evaluate", "models.evaluate:main", ("D",)),
    ("gate", "models.promotion:gate", ("D", "FORCE")),
    ("score", "models.score:main", ("D",)),
    ("validate_outputs", "reelrec.validation:gate", ("outputs", "D")),
    ("publish", "models.publish:publish_outputs", ("D",)),
)


@functools.cache
def torch_threads() -> int:
    """torch's thread count in a new process (what each task of an Airflow night starts with)."""
    probe = [sys.executable, "-c", "import torch; print(torch.get_num_threads())"]
    return int(subprocess.run(probe, capture_output=True, text=True, check=True).stdout)


ONLINE_TASKS = ("feast_apply", "feast_materialize", "publish_content", "validate_outputs", "publish")
"""The tasks that write the online store (``validate_outputs``: the report ``publish`` requires)."""


@dataclasses.dataclass
class Night:
    """One in-process night: each task's facts (None: skipped), the failed task and its error."""

    date: str
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    failed: str | None = None
    error: BaseException | None = None


def run_night(
    date: str,
    settings: Settings,
    models: bool,
    before: Mapping[str, Callable[[str, Settings], None]] | None = None,
    only: tuple[str, ...] | None = None,
) -> Night:
    """Night ``date``'s tasks (the model plane too when ``models``) in the DAG's order, as the DAG
    ends them: bad data (:class:`DataError`, a failed suite) fails the night at that task and
    nothing after it runs (all of it is downstream); :class:`NothingToDoError` skips the rest of
    the model plane. ``before[task]`` runs just before ``task``; ``only`` keeps those tasks.
    ``record_run``'s manifest is left out: it writes neither the lake nor the online store.
    """
    import torch

    night = Night(date)
    skipping = False
    for task_id, entry, args in DATA_PLANE + (MODEL_PLANE if models else ()):
        if only is not None and task_id not in only:
            continue
        if skipping:
            night.facts[task_id] = None
            continue
        if before and task_id in before:
            before[task_id](date, settings)
        # Each Airflow task is a new process: undo the trainers' torch.set_num_threads, or a later
        # task here (content embeddings) computes with another thread count (floats differ ~1e-7).
        torch.set_num_threads(torch_threads())
        module, function = entry.split(":")
        values = [date if a == "D" else True if a == "FORCE" else a for a in args]
        try:
            night.facts[task_id] = getattr(importlib.import_module(module), function)(*values, settings)
        except DataError as err:
            night.failed, night.error = task_id, err
            return night
        except NothingToDoError:
            night.facts[task_id] = None
            skipping = True
    return night


def test_the_in_process_nights_follow_the_dags_order() -> None:
    from tests.dags.test_reelrec_nightly import PIPELINE_EDGES, RECORDED

    order = [task for task, _, _ in DATA_PLANE + MODEL_PLANE]
    assert sorted(order) == sorted(RECORDED)  # every recorded task, once
    wrong = [(a, b) for a, b in PIPELINE_EDGES if {a, b} <= set(order) and order.index(a) > order.index(b)]
    assert not wrong, f"tasks run before their upstream: {wrong}"
    dag = Path(__file__).parent.parent / "dags" / "reelrec_nightly.py"
    for _, entry, _ in DATA_PLANE + MODEL_PLANE:
        assert f'_call("{entry}"' in dag.read_text(), entry  # the DAG's own entry points


# ---------------------------------------------------------------- the world
@dataclasses.dataclass(frozen=True)
class State:
    lake: dict[str, str | None]
    online: dict[str, str]


def state(settings: Settings) -> State:
    from reelrec.fingerprint import lake_fingerprint, online_fingerprint

    return State(lake_fingerprint(settings), online_fingerprint(settings))


def plant_bad_rows(date: str, settings: Settings) -> None:
    """Overwrite ``silver.user_features`` dt=D with a few rows' ``completion_rate_7d`` at 1.5."""
    import pyarrow as pa

    from reelrec import lake
    from reelrec.catalog import USER_FEATURES

    rows = lake.read(USER_FEATURES, settings, dates=[date])
    rates = rows.column("completion_rate_7d").to_pylist()
    rates[:3] = [1.5, 1.5, 1.5]
    at = rows.schema.get_field_index("completion_rate_7d")
    bad = rows.set_column(at, "completion_rate_7d", pa.array(rates, type=pa.float64()))
    lake.write_partition(USER_FEATURES, settings, bad, date)


def watermarks(settings: Settings) -> dict[str, str | None]:
    from feature_repo.materialize import watermark, watermark_date
    from feature_repo.store_config import open_store

    views = open_store(settings).list_feature_views(allow_cache=False)
    return {v.name: (watermark_date(m) if (m := watermark(v)) else None) for v in views}


def online_version(settings: Settings, users: list[str]) -> set[str]:
    from reelrec.serving import recommend

    return {r["model_version"] for r in recommend(settings, users) if r["found"]}


def unguarded_backfill(settings: Settings, date: str) -> dict[str, str]:
    """The online fingerprint after Feast itself materializes ``date``'s features, no watermark."""
    from feature_repo.store_config import open_store
    from reelrec.dates import day_bounds
    from reelrec.fingerprint import online_fingerprint

    start, end = day_bounds(date)
    open_store(settings).materialize(start_date=start, end_date=end, feature_views=list(FEATURES))
    return online_fingerprint(settings)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from reelrec import lake, releases
    from reelrec.catalog import CANDIDATES, DEFAULT_LIST_KEY
    from synthetic_world import generate
    from tests.reelrec.test_serving import online_store

    began = time.perf_counter()
    with online_store(tmp_path_factory.mktemp("backfills") / "home", "sqlite") as settings:
        generate(settings, "tiny", DATES[0], len(DATES))
        h: dict[str, Any] = {"settings": settings, "during": {}, "serving": {}, "seconds": {}}
        h["first"], h["during_first"] = [], {}
        for date in RANGE:
            h["first"].append(night := run_night(date, settings, models=date in MODEL_NIGHTS))
            assert night.failed is None, (date, night.failed, night.error)
            h["during_first"][date] = state(settings).online
        h["after_first"] = state(settings)
        h["seconds"]["first pass"] = time.perf_counter() - began
        users = lake.read(CANDIDATES, settings, dates=[D4], columns=["user_id"]).column(0).to_pylist()
        h["users"] = [u for u in sorted(users) if u != DEFAULT_LIST_KEY][:5]
        h["second"] = []
        for date in RANGE:
            h["second"].append(night := run_night(date, settings, models=date in MODEL_NIGHTS))
            assert night.failed is None, (date, night.failed, night.error)
            h["during"][date] = state(settings).online
            pointer = releases.serving_pointer(settings) or {}
            h["serving"][date] = (pointer.get("version"), online_version(settings, h["users"]))
        h["after_second"] = state(settings)
        h["watermarks_second"] = watermarks(settings)
        h["seconds"]["second pass"] = time.perf_counter() - began - h["seconds"]["first pass"]
        h["failed"] = run_night(FAILED, settings, models=False, before={"validate_features": plant_bad_rows})
        h["after_failed"] = state(settings)
        h["watermarks_failed"] = watermarks(settings)
        h["next"] = run_night(NEXT, settings, models=False)
        h["after_next"] = state(settings)
        h["watermarks_next"] = watermarks(settings)
        h["seconds"]["total"] = time.perf_counter() - began
        h["unguarded"] = unguarded_backfill(settings, RANGE[0])
        print(f"\nbackfill world: {', '.join(f'{k} {v:.0f} s' for k, v in h['seconds'].items())}")
        yield h


def world(test: Callable[..., None]) -> Callable[..., None]:
    """The marks of a test reading :func:`history` (nights of every component)."""
    for mark in (pytest.mark.slow, pytest.mark.spark, pytest.mark.feast, pytest.mark.gx, pytest.mark.torch):
        test = mark(test)
    return test


@world
def test_every_night_of_both_passes_succeeded(history: dict[str, Any]) -> None:
    for night in history["first"] + history["second"]:
        assert night.failed is None, (night.date, night.failed, night.error)
        trained = night.facts.get("publish") is not None
        assert trained is (night.date in MODEL_NIGHTS), night.date  # the model nights published


@world
def test_rerunning_the_range_gives_identical_tables_and_online_store(history: dict[str, Any]) -> None:
    from reelrec.fingerprint import differences

    first, second = history["after_first"], history["after_second"]
    assert all(first.lake.values()), first.lake  # every table of the catalog was written
    lake, online = differences(first.lake, second.lake), differences(first.online, second.online)
    assert not lake and not online, f"tables {sorted(lake)}, online views {sorted(online)} differ"


# ---------------------------------------------------------------- one run per home: the run lock
HOLD = """
import sys, time
from reelrec import run_lock
from reelrec.settings import Settings
with run_lock.hold(Settings.from_env(sys.argv[1]), "run", sys.argv[2:]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A process holding the run lock of a fresh home for 2026-11-01..07 (killed at the end)."""
    home = tmp_path / "home"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(home), *RANGE], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder, home
    finally:
        holder.kill()
        holder.wait()


def _reelrec(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REELREC_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "reelrec.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("run", "--date", RANGE[0]), id="run"),
        pytest.param(("run", "--date", RANGE[2], "--to", RANGE[4], "--inline"), id="run-inline"),
        pytest.param(("demo", "--preset", "tiny", "--days", "1"), id="demo"),
    ],
)
def test_a_second_run_in_the_home_is_refused_naming_the_holder(
    lock_holder: tuple[subprocess.Popen[str], Path], command: tuple[str, ...]
) -> None:
    from reelrec.run_lock import EXIT_LOCKED, LOCK_FILE

    holder, home = lock_holder
    began = time.perf_counter()
    refused = _reelrec(home, *command)
    assert refused.returncode == EXIT_LOCKED, refused.stderr
    assert time.perf_counter() - began < 20  # refused before anything starts (no stack, no Spark)
    message = refused.stderr
    assert f"pid {holder.pid}" in message and "`reelrec run`" in message, message
    assert f"dt={RANGE[0]}..{RANGE[-1]}" in message, message
    assert str(home / LOCK_FILE) in message, message
    assert not (home / "landing").exists() and not (home / "services").exists()  # nothing started
    assert holder.poll() is None  # the holder runs on


def test_the_lock_is_freed_when_its_holder_is_killed(lock_holder: tuple[subprocess.Popen[str], Path]) -> None:
    from reelrec import run_lock

    holder, home = lock_holder
    settings = Settings.from_env(home)
    refused = pytest.raises(run_lock.RunLockedError, match=f"pid {holder.pid}")
    with refused, run_lock.hold(settings, "run", [NEXT]):
        pass
    os.kill(holder.pid, signal.SIGKILL)  # no cleanup in the holder: the kernel drops its flock
    holder.wait()
    with run_lock.hold(settings, "run", [NEXT]) as path:
        assert path == home / run_lock.LOCK_FILE
        assert f'"pid": {os.getpid()}' in path.read_text()  # the new holder's record


def test_the_lock_is_released_when_the_run_ends_or_raises(tmp_path: Path) -> None:
    from reelrec import run_lock

    settings = Settings.from_env(tmp_path / "home")
    with pytest.raises(RuntimeError, match="night failed"), run_lock.hold(settings, "run", [NEXT]):
        with pytest.raises(run_lock.RunLockedError), run_lock.hold(settings, "demo", [NEXT]):
            pass  # not reentrant: a second holder, even in the same process, is refused
        raise RuntimeError("night failed")
    with run_lock.hold(settings, "run", [NEXT]):
        pass


def _views(report: dict[str, Any] | None) -> dict[str, tuple[str, str | None]]:
    assert report is not None
    return {name: (v["status"], v.get("watermark_date")) for name, v in report["views"].items()}


@world
def test_a_backfill_never_moves_the_online_store_backwards(history: dict[str, Any]) -> None:
    from reelrec.fingerprint import differences

    at_d7 = history["after_first"].online
    # The control: each night of the first pass moved every daily feature view forward.
    first = [history["during_first"][d] for d in RANGE]
    for before, after in zip(first, first[1:], strict=False):
        assert set(FEATURES) <= set(differences(before, after)), "a night did not move the features"
    # Every night of the second pass, the 7th's rerun included, left the online store as it was.
    for date in RANGE:
        assert differences(at_d7, history["during"][date]) == {}, date
    # ... because materialize skipped the views whose watermark is newer, and rewrote the 7th.
    nights = {night.date: night.facts for night in history["second"]}
    for date in RANGE[:-1]:
        assert _views(nights[date]["feast_materialize"]) == dict.fromkeys(FEATURES, ("skipped", D7)), date
    assert _views(nights[D7]["feast_materialize"]) == dict.fromkeys(FEATURES, ("materialized", None))
    assert _views(nights[D3]["publish"]) == dict.fromkeys(OUTPUTS, ("skipped", D4))
    assert _views(nights[D4]["publish"]) == dict.fromkeys(OUTPUTS, ("materialized", None))
    assert history["watermarks_second"] == {
        **dict.fromkeys(FEATURES, D7),
        **dict.fromkeys(OUTPUTS, D4),
        "video_static_content": D7,
    }
    # Without the watermark, SQLite's Feast store overwrites newer values with the 1st's.
    assert set(differences(history["after_next"].online, history["unguarded"])) == set(FEATURES)


@world
def test_a_night_failing_its_features_gate_writes_nothing_online(history: dict[str, Any]) -> None:
    from reelrec.fingerprint import differences
    from reelrec.validation import ValidationError

    failed = history["failed"]
    assert failed.failed == "validate_features", failed.facts
    assert isinstance(failed.error, ValidationError)
    message = str(failed.error)
    assert "user_features" in message and FAILED in message and "completion_rate_7d" in message, message
    assert differences(history["after_second"].online, history["after_failed"].online) == {}
    assert history["watermarks_failed"] == history["watermarks_second"]
    # In the lake only the night's own bronze and silver partitions were written; nothing gold.
    changed = differences(history["after_second"].lake, history["after_failed"].lake)
    assert changed and all(name.split(".")[0] in ("bronze", "silver") for name in changed), changed


@world
def test_the_night_after_a_failed_one_runs_normally(history: dict[str, Any]) -> None:
    from reelrec.fingerprint import differences

    nxt = history["next"]
    assert nxt.failed is None, (nxt.failed, nxt.error)
    assert _views(nxt.facts["feast_materialize"]) == dict.fromkeys(FEATURES, ("materialized", None))
    assert set(differences(history["after_failed"].online, history["after_next"].online)) >= set(FEATURES)
    assert {v: history["watermarks_next"][v] for v in FEATURES} == dict.fromkeys(FEATURES, NEXT)


@world
def test_a_backfilled_publish_leaves_the_serving_pointer_on_what_is_online(history: dict[str, Any]) -> None:
    for date in RANGE:
        pointer, online = history["serving"][date]
        assert online == {pointer}, (date, pointer, online)


# ---------------------------------------------------------------- the same backfills on Redis
@pytest.fixture(scope="module")
def redis_replay(
    history: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The online tasks of nights 1-4, a backfill of the 3rd and a rerun of the 4th, on Redis (+ the
    PostgreSQL registry), over a copy of ``history``'s lake, runs and models (the Spark jobs' and
    models' outputs are the store's inputs, not its concern: the nights above wrote them)."""
    from tests.reelrec.test_serving import online_store

    source: Settings = history["settings"]
    with online_store(tmp_path_factory.mktemp("backfills-redis") / "home", "redis") as settings:
        for folder in ("lake", "runs", "models"):
            shutil.copytree(source.home / folder, settings.home / folder)
        r: dict[str, Any] = {"settings": settings, "nights": {}}
        for date in RANGE[:4]:
            r["nights"][date] = run_night(date, settings, date in MODEL_NIGHTS, only=ONLINE_TASKS)
        r["at_d4"] = state(settings).online
        r["backfill_d3"] = run_night(D3, settings, models=True, only=ONLINE_TASKS)
        r["after_backfill"] = state(settings).online
        r["rerun_d4"] = run_night(D4, settings, models=True, only=ONLINE_TASKS)
        r["after_rerun"] = state(settings).online
        r["unguarded"] = unguarded_backfill(settings, RANGE[0])
        yield r


def _on_redis(test: Callable[..., None]) -> Callable[..., None]:
    return pytest.mark.services(world(test))


@_on_redis
def test_on_redis_a_backfill_never_moves_the_online_store_backwards(redis_replay: dict[str, Any]) -> None:
    from reelrec.fingerprint import differences

    for night in [*redis_replay["nights"].values(), redis_replay["backfill_d3"], redis_replay["rerun_d4"]]:
        assert night.failed is None, (night.date, night.failed, night.error)
    at_d4 = redis_replay["at_d4"]
    assert all(not value.startswith("0:") for value in at_d4.values()), at_d4  # every view holds values
    backfill, rerun = redis_replay["backfill_d3"].facts, redis_replay["rerun_d4"].facts
    assert _views(backfill["feast_materialize"]) == dict.fromkeys(FEATURES, ("skipped", D4))
    assert _views(backfill["publish"]) == dict.fromkeys(OUTPUTS, ("skipped", D4))
    assert differences(at_d4, redis_replay["after_backfill"]) == {}
    # The watermark's own night is rewritten (Redis keeps equal event times: the same values stay).
    assert _views(rerun["feast_materialize"]) == dict.fromkeys(FEATURES, ("materialized", None))
    assert _views(rerun["publish"]) == dict.fromkeys(OUTPUTS, ("materialized", None))
    assert differences(at_d4, redis_replay["after_rerun"]) == {}
    # Without the watermark Redis still keeps the newer values: Feast's event-time rule.
    assert differences(at_d4, redis_replay["unguarded"]) == {}
