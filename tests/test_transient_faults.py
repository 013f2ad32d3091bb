"""Nights that meet the world's small accidents and still end green: a late drop, a flaky online store.

Three tiny nights through Airflow's in-process runner (``airflow dags test``, i.e. ``dag.test()``),
which honours both mechanisms under test: in Airflow 3.3 its loop asks the dag run for schedulable
task instances (``DagRun.update_state``), and those include tasks ``up_for_retry`` once their retry
delay has passed and sensors ``up_for_reschedule`` once their reschedule date has passed; it sleeps
a second while nothing is ready. The delays are shortened through the variables the DAG reads at
parse time (``REELREC_RETRY_DELAY_S``, ``REELREC_LANDING_POKE_S``).

- Night 1's ``events`` drop has no ``_SUCCESS`` when the night starts; a thread writes it a few
  seconds after the sensor has logged that it waits for it. The run asks to wait
  (``wait_for_data``: a manual run would otherwise check once) and completes.
- Night 3 publishes (the first night with a model); the online store "drops the connection" once,
  right after the outputs were written (``REELREC_FAULTS="publish.outputs:connection:1"``). The
  task is retried, the night is green, and nothing is duplicated: one gold row per user and one
  online value per user and feature.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reelrec import faults
from reelrec.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.spark]

D1, D2, D3 = "2026-11-01", "2026-11-02", "2026-11-03"
FAULT = "publish.outputs:connection:1"
LATE_S = 3.0  # the late drop's _SUCCESS is written this long after the sensor first waited
NIGHT_TIMEOUT_S = 600


def run_night(settings: Settings, date: str, env: dict[str, str], conf: dict[str, Any] | None = None) -> int:
    """``airflow dags test reelrec_nightly D`` with fast retries and pokes; its log in runs/dt=D/."""
    from reelrec.airflow_local import DAG_ID, airflow_bin, airflow_env, ensure_db

    ensure_db(settings)
    log = settings.run_dir(date) / "airflow.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [airflow_bin(), "dags", "test", DAG_ID, f"{date}T00:00:00+00:00"]
    if conf:
        command += ["--conf", json.dumps(conf)]
    fast = {"REELREC_RETRY_DELAY_S": "1", "REELREC_LANDING_POKE_S": "1", "REELREC_LANDING_TIMEOUT_S": "120"}
    with log.open("w") as sink:
        done = subprocess.run(
            command,
            env={**airflow_env(settings), **fast, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=NIGHT_TIMEOUT_S,
        )
    return done.returncode


def _finish_drop_when_the_night_waits(log: Path, marker: Path, written_at: list[float]) -> threading.Thread:
    """Write ``marker`` once the night's log shows the sensor waiting for it (at most 5 min from now)."""

    def write() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if log.exists() and "waiting: 1 of 5 landing drops" in log.read_text(errors="replace"):
                time.sleep(LATE_S)  # a few more pokes find it still incomplete
                marker.touch()
                written_at.append(time.time())
                return
            time.sleep(0.5)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _reschedules(settings: Settings, task_id: str) -> int:
    """How often ``task_id`` was rescheduled (a sensor that did not find its data), all runs."""
    from sqlalchemy import create_engine, text

    from reelrec.airflow_local import airflow_env

    engine = create_engine(airflow_env(settings)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    query = text(
        "SELECT count(*) FROM task_reschedule r JOIN task_instance ti ON ti.id = r.ti_id "
        "WHERE ti.task_id = :task_id"
    )
    with engine.connect() as conn:
        count = int(conn.execute(query, {"task_id": task_id}).scalar_one())
    engine.dispose()
    return count


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from reelrec.airflow_local import task_instances
    from reelrec.landing import SUCCESS_MARKER, drop_dir
    from synthetic_world import generate

    settings = Settings.from_env(tmp_path_factory.mktemp("transient") / "home")
    generate(settings, "tiny", D1, 3)
    facts: dict[str, Any] = {"settings": settings}

    marker = drop_dir("events", D1, settings) / SUCCESS_MARKER
    marker.unlink()  # the upstream system has not finished the drop yet
    written_at: list[float] = []
    facts["d1_started"] = time.time()
    log = settings.run_dir(D1) / "airflow.log"
    writer = _finish_drop_when_the_night_waits(log, marker, written_at)
    facts["d1_rc"] = run_night(settings, D1, {}, conf={"wait_for_data": True})
    writer.join(timeout=30)
    facts["d1_marker_at"] = written_at[0] if written_at else None
    facts["d1_tasks"] = task_instances(D1, settings)
    facts["d1_reschedules"] = _reschedules(settings, "check_landing")

    facts["d2_rc"] = run_night(settings, D2, {})
    # force_publish: the tiny world's first model night may lose to a baseline; publish is what is tested
    facts["d3_rc"] = run_night(settings, D3, {faults.ENV: FAULT}, conf={"force_publish": True})
    facts["d3_tasks"] = task_instances(D3, settings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(faults.ENV, FAULT)
        facts["fired"] = faults.fired(settings)
    return facts


def _epoch(stamp: datetime | str) -> float:
    """Seconds since the epoch of a task instance's date (SQLite hands back naive UTC strings)."""
    value = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _states(tasks: list[dict[str, Any]]) -> dict[str, str]:
    return {t["task_id"]: t["state"] for t in tasks}


def test_a_drop_finished_after_the_night_started_is_waited_for(nights: dict[str, Any]) -> None:
    assert nights["d1_rc"] == 0, (nights["settings"].run_dir(D1) / "airflow.log").read_text()[-3000:]
    assert nights["d1_marker_at"] is not None
    assert nights["d1_marker_at"] - nights["d1_started"] >= LATE_S
    assert nights["d1_reschedules"] >= 1  # the sensor found the drop incomplete and came back
    tasks = {t["task_id"]: t for t in nights["d1_tasks"]}
    assert tasks["check_landing"]["state"] == "success"
    assert _epoch(tasks["check_landing"]["end_date"]) >= nights["d1_marker_at"]
    assert tasks["ingest_events"]["state"] == tasks["record_run"]["state"] == "success"
    manifest = json.loads((nights["settings"].run_dir(D1) / "manifest.json").read_text())
    assert manifest["tasks"]["check_landing"]["events"]["files"] >= 1
    assert manifest["tables"]["bronze.events"]["rows"] > 0


def test_a_connection_lost_while_publishing_is_retried_and_nothing_is_duplicated(
    nights: dict[str, Any],
) -> None:
    from reelrec import lake
    from reelrec.catalog import CANDIDATES, DEFAULT_LIST_KEY, USER_FEATURES
    from reelrec.serving import recommend

    settings = nights["settings"]
    assert nights["d2_rc"] == 0
    assert nights["d3_rc"] == 0, (settings.run_dir(D3) / "airflow.log").read_text()[-3000:]
    assert nights["fired"] == {FAULT: 1}  # the fault did hit the first try
    states = _states(nights["d3_tasks"])
    assert set(states.values()) == {"success"}, states
    publish = next(t for t in nights["d3_tasks"] if t["task_id"] == "publish")
    assert publish["try_number"] == 2  # failed once, retried once

    candidates = lake.read(CANDIDATES, settings, dates=[D3]).to_pylist()
    users = [row["user_id"] for row in candidates]
    assert len(users) == len(set(users)) > 0  # gold: one list per user, and the default list
    active = set(lake.read(USER_FEATURES, settings, dates=[D3], columns=["user_id"]).column(0).to_pylist())
    assert set(users) == active | {DEFAULT_LIST_KEY}

    with sqlite3.connect(settings.feast / "online_store.db") as conn:
        table = next(
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name.endswith("_user_daily_candidates")
        )
        per_key = conn.execute(
            f"SELECT entity_key, feature_name, count(*) FROM {table} GROUP BY entity_key, feature_name"
        ).fetchall()
        keys = conn.execute(f"SELECT count(DISTINCT entity_key) FROM {table}").fetchone()
    assert {count for _, _, count in per_key} == {1}  # one online value per user and feature
    assert keys == (len(users),)
    served = recommend(settings, sorted(active))
    version = candidates[0]["model_version"]
    assert all(r["found"] and r["model_version"] == version for r in served)
