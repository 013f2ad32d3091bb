"""Run the project's DAGs through a real Airflow, locally.

The embedded default keeps Airflow's metadata in SQLite under ``REELREC_HOME/airflow``; set
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` (e.g. to Postgres) to use another database, nothing else
changes. Runs are real DAG runs with real task instances (``airflow dags test``), so they show up in
the Airflow UI started by :func:`start_ui`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelrec.settings import Settings

DAG_ID = "reelrec_nightly"
DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"
UI_PORT = int(os.environ.get("REELREC_UI_PORT", "8080"))


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for Airflow processes: AIRFLOW_HOME, DAGs folder, metadata DB, no examples."""
    env = dict(os.environ)
    home = settings.airflow_home
    env["REELREC_HOME"] = str(settings.home)
    env["AIRFLOW_HOME"] = str(home)
    # `airflow standalone` starts its components as `airflow ...` from PATH: use this venv's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    env.setdefault("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True")
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    env.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    env.setdefault("AIRFLOW__API__PORT", str(UI_PORT))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _airflow_bin() -> str:
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


def ensure_db(settings: Settings) -> None:
    """Create or upgrade the Airflow metadata database (idempotent)."""
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    marker = settings.airflow_home / ".migrated"
    env = airflow_env(settings)
    if marker.exists() and marker.read_text() == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]:
        return
    subprocess.run([_airflow_bin(), "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    marker.write_text(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])


@dataclass(frozen=True)
class DagRunOutcome:
    """How one date's DAG run ended."""

    date: str
    succeeded: bool
    seconds: float
    log_path: Path


def run_dag(date: str, settings: Settings, dag_id: str = DAG_ID) -> DagRunOutcome:
    """Run ``dag_id`` for logical date ``date`` through Airflow; the log goes to runs/dt=D/airflow.log."""
    ensure_db(settings)
    log_path = settings.run_dir(date) / "airflow.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.run(
            [_airflow_bin(), "dags", "test", dag_id, f"{date}T00:00:00+00:00"],
            env=airflow_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return DagRunOutcome(date, proc.returncode == 0, time.perf_counter() - started, log_path)


def task_instances(date: str, settings: Settings, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    """Task instances of the latest run of ``dag_id`` for logical date ``date``, from the metadata DB."""
    from sqlalchemy import create_engine, text

    engine = create_engine(airflow_env(settings)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    query = text(
        """
        SELECT ti.task_id, ti.state, ti.start_date, ti.end_date, ti.duration, ti.try_number
        FROM task_instance ti
        JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id
        WHERE ti.dag_id = :dag_id AND dr.id = (
            SELECT MAX(id) FROM dag_run WHERE dag_id = :dag_id AND date(logical_date) = :date
        )
        ORDER BY ti.start_date
        """
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"dag_id": dag_id, "date": date}).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def dag_runs(settings: Settings, limit: int = 10, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    """The latest run of each logical date of ``dag_id``, newest date first (at most ``limit``).

    An embedded home whose Airflow database was never created has no runs.
    """
    from sqlalchemy import create_engine, text

    url = airflow_env(settings)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return []
    engine = create_engine(url)
    query = text(
        """
        SELECT dr.run_id, date(dr.logical_date) AS date, dr.state, dr.start_date, dr.end_date
        FROM dag_run dr
        WHERE dr.dag_id = :dag_id AND dr.id IN (
            SELECT MAX(id) FROM dag_run WHERE dag_id = :dag_id GROUP BY date(logical_date)
        )
        ORDER BY date(dr.logical_date) DESC
        LIMIT :limit
        """
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"dag_id": dag_id, "limit": limit}).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def start_ui(settings: Settings) -> int:
    """Start Airflow (API server + scheduler + DAG processor) on the project's DAGs; blocks."""
    ensure_db(settings)
    env = airflow_env(settings)
    print(f"Airflow UI: http://localhost:{env['AIRFLOW__API__PORT']}  (local mode: no login needed)")
    print(f"AIRFLOW_HOME={env['AIRFLOW_HOME']}  DAGs: {env['AIRFLOW__CORE__DAGS_FOLDER']}")
    print("Runs made by `reelrec run` are listed under DAG reelrec_nightly. Ctrl-C stops.")
    return subprocess.call([_airflow_bin(), "standalone"], env=env)
