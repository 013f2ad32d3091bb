"""Nights through the Airflow scheduler equal the inline path, and show up in Airflow as a data engineer
needs them: queued by the scheduler, logs served by the API server, durations of minutes.

The same tiny world (three days: the third trains and publishes) is generated into separate homes
and run inline (``airflow dags test``), through the embedded stack (LocalExecutor, SQLite, a Spark
Connect server), and, with Postgres and Redis, through the production stack (CeleryExecutor,
Postgres metadata, Spark standalone cluster, Redis online store). Every stack runs on free ports
and is stopped at the end, even on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reelrec.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.spark]

DATES = ["2026-11-01", "2026-11-02", "2026-11-03"]
# The third night is the tiny world's first model night: its two-night models may lose to a baseline, and
# these tests check the machinery (scheduler, executors, stores), not model quality: publish it.
FORCE = {"force_publish": True}
WALL_CLOCK_COLUMNS = {"generated_at"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _world(root: Path) -> Settings:
    from synthetic_world import generate

    settings = Settings.from_env(root)
    generate(settings, "tiny", DATES[0], len(DATES))
    return settings


@contextlib.contextmanager
def _scheduled(settings: Settings) -> Iterator[dict[str, Any]]:
    """Run DATES through the scheduler of ``settings``' stack (free ports); the stack stays up inside."""
    from reelrec import services
    from reelrec.nights import run_scheduled
    from reelrec.spark_cluster import SparkPorts, spark_components

    ports = SparkPorts(master_ui=_free_port(), worker_ui=_free_port(), connect=_free_port())
    stack = services.components(settings, spark=spark_components(settings, ports))
    try:
        code = run_scheduled(DATES, settings, stack=stack, conf=FORCE)
        yield {"code": code, "stack": stack, "spark_ports": ports}
    finally:
        services.down(settings, stack)


def _lake(settings: Settings) -> dict[str, list[str]]:
    """Every Delta table's rows (wall-clock columns dropped, floats rounded), as sorted JSON lines."""
    from reelrec import lake
    from reelrec.catalog import ALL_TABLES

    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 5)
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    tables = {}
    for table in ALL_TABLES:
        if not lake.exists(table, settings):
            continue
        rows = lake.read(table, settings).to_pylist()
        lines = [
            json.dumps({k: clean(v) for k, v in row.items() if k not in WALL_CLOCK_COLUMNS}, default=str)
            for row in rows
        ]
        tables[f"{table.layer}.{table.name}"] = sorted(lines)
    return tables


def _published(settings: Settings) -> list[dict[str, Any]]:
    """What serving answers for the users of the last night's candidates (items and version)."""
    from reelrec import lake
    from reelrec.catalog import CANDIDATES
    from reelrec.serving import recommend

    users = sorted(
        lake.read(CANDIDATES, settings, dates=[DATES[-1]], columns=["user_id"]).column(0).to_pylist()
    )
    assert users, "the third night published no candidates"
    return [
        {
            "user_id": r["user_id"],
            "found": r["found"],
            "model_version": r["model_version"],
            "items": r["items"],
        }
        for r in recommend(settings, users[:5], k=10)
    ]


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from reelrec.cli import run_nights

    settings = _world(tmp_path_factory.mktemp("inline") / "home")
    assert run_nights(DATES, settings, inline=True, conf=FORCE) == 0
    return settings


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from reelrec.airflow_api import AirflowApi, run_id_of
    from reelrec.airflow_local import DAG_ID, dag_runs, task_instances

    with _env(REELREC_PROFILE="embedded", REELREC_UI_PORT=str(_free_port())):
        settings = _world(tmp_path_factory.mktemp("embedded") / "home")
        with _scheduled(settings) as run:
            api = AirflowApi(settings)
            try:
                tasks = {d: task_instances(d, settings) for d in DATES}
                logs = {
                    t["task_id"]: api.task_log(DAG_ID, run_id_of(DATES[-1]), t["task_id"], t["try_number"])
                    for t in tasks[DATES[-1]]
                    if t["state"] == "success"
                }
            finally:
                api.close()
            yield {**run, "settings": settings, "tasks": tasks, "logs": logs, "runs": dag_runs(settings)}


def test_scheduled_nights_succeed(embedded: dict[str, Any]) -> None:
    assert embedded["code"] == 0
    assert [str(r["date"]) for r in embedded["runs"]] == DATES[::-1]
    assert {r["state"] for r in embedded["runs"]} == {"success"}
    last = {t["task_id"]: t["state"] for t in embedded["tasks"][DATES[-1]]}
    assert len(last) == 22 and set(last.values()) == {"success"}, last


def test_lake_and_published_candidates_equal_the_inline_path(
    embedded: dict[str, Any], inline: Settings
) -> None:
    scheduled, reference = _lake(embedded["settings"]), _lake(inline)
    assert sorted(scheduled) == sorted(reference)
    for name in reference:
        assert scheduled[name] == reference[name], name
    assert _published(embedded["settings"]) == _published(inline)


def test_every_task_was_queued_by_the_scheduler(embedded: dict[str, Any]) -> None:
    for date, tasks in embedded["tasks"].items():
        for task in tasks:
            if task["state"] in ("skipped", "upstream_failed"):  # never queued: the scheduler skipped them
                continue
            assert task["queued_dttm"] is not None and task["queued_by_job_id"] is not None, (date, task)
            assert task["hostname"], (date, task)


def test_task_logs_are_served_by_the_api_server(embedded: dict[str, Any]) -> None:
    logs = embedded["logs"]
    assert set(logs) >= {"ingest_events", "train", "publish"}
    assert "rows to bronze.events" in logs["ingest_events"]
    assert all(logs.values())


def test_run_durations_are_minutes_not_days(embedded: dict[str, Any]) -> None:
    from datetime import datetime

    def instant(value: Any) -> datetime:
        return datetime.fromisoformat(str(value)) if not isinstance(value, datetime) else value

    for run in embedded["runs"]:
        took = (instant(run["end_date"]) - instant(run["start_date"])).total_seconds()
        assert 0 < took < 30 * 60, run


# ------------------------------------------------------------------------------- production profile
@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three tiny nights on Postgres + Celery + Spark standalone + Redis, in databases of their own."""
    from reelrec.airflow_local import dag_runs, task_instances
    from reelrec.services.engines import create_database, drop_database

    suffix = uuid.uuid4().hex[:8]
    airflow_db = f"postgresql+psycopg2://postgres@127.0.0.1:5432/reelrec_airflow_test_{suffix}"
    registry_db = f"postgresql+psycopg://postgres@127.0.0.1:5432/reelrec_registry_test_{suffix}"
    redis_db = 9
    env = {
        "REELREC_PROFILE": "production",
        "REELREC_UI_PORT": str(_free_port()),
        "REELREC_AIRFLOW_DB_URL": airflow_db,
        "REELREC_REGISTRY_URL": registry_db,
        "REELREC_REDIS_URL": f"127.0.0.1:6379,db={redis_db}",
        "REELREC_CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db + 1}",
        "SPARK_MASTER": f"spark://127.0.0.1:{_free_port()}",
    }
    with _env(**env):
        create_database(registry_db)
        try:
            settings = _world(tmp_path_factory.mktemp("production") / "home")
            with _scheduled(settings) as run:
                yield {
                    **run,
                    "settings": settings,
                    "tasks": {d: task_instances(d, settings) for d in DATES},
                    "runs": dag_runs(settings),
                    "published": _published(settings),
                    "master_json": _master_json(run["spark_ports"].master_ui),
                    "worker_log": (settings.services / "logs" / "celery-worker.log").read_text(
                        errors="replace"
                    ),
                }
        finally:
            import redis

            for db in (redis_db, redis_db + 1):
                redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
            drop_database(airflow_db)
            drop_database(registry_db)


def _master_json(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10) as response:
        return dict(json.loads(response.read()))


@pytest.mark.services
def test_production_nights_run_on_celery_postgres_spark_cluster_and_redis(
    production: dict[str, Any], embedded: dict[str, Any]
) -> None:
    assert production["code"] == 0
    # The dag runs are rows in Postgres (dag_runs reads the metadata database of the profile).
    assert production["settings"].airflow_db.startswith("postgresql")
    assert [str(r["date"]) for r in production["runs"]] == DATES[::-1]
    assert {r["state"] for r in production["runs"]} == {"success"}
    # Celery ran the tasks: each task instance carries its Celery task id.
    for tasks in production["tasks"].values():
        assert all(t["external_executor_id"] for t in tasks if t["state"] == "success"), tasks
    assert "celery@" in production["worker_log"]
    # The Spark jobs ran on the standalone master: its JSON status lists the Connect application.
    apps = production["master_json"].get("activeapps", []) + production["master_json"].get(
        "completedapps", []
    )
    assert any(app["name"] == "reelrec-spark-connect" for app in apps), production["master_json"]
    # Candidates read back from Redis, and the lake equals the embedded run's.
    assert all(r["found"] for r in production["published"])
    assert _lake(production["settings"]) == _lake(embedded["settings"])
    assert production["published"] == _published(embedded["settings"])
