"""Airflow on this machine, configured from the settings: environment, metadata database, components.

Everything Airflow reads comes from :func:`airflow_env` (no ``airflow.cfg`` edits): the executor and
metadata database of the profile (LocalExecutor on SQLite under ``REELREC_HOME/airflow``, or
CeleryExecutor on Postgres with Redis as broker), the API server on 127.0.0.1, the project's DAGs
folder, task logs under ``AIRFLOW_HOME/logs`` (read by the API server, so the UI shows them) and the
Spark Connect server of the stack for the task processes. :func:`airflow_components` describes the
api-server, scheduler, dag-processor, triggerer (and celery-worker) for :mod:`reelrec.services`.

Every component listens on 127.0.0.1 only: the API server is started with ``--host 127.0.0.1``, the
scheduler, triggerer and celery worker skip their log servers (which bind every interface), and the
scheduler's optional health-check server is pinned to 127.0.0.1. Logins: in the embedded profile every
user is an admin and the UI asks for no password (a one-person laptop stack); in the production profile
the simple auth manager asks for one, and :func:`ensure_login` generates the ``admin`` user's password
at the first start, into ``AIRFLOW_HOME/simple_auth_manager_passwords.json.generated`` (mode 0600).

The inline path (:func:`run_dag`, ``airflow dags test``) stays for debugging one night in one process.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelrec.services.component import Component
from reelrec.settings import Settings

DAG_ID = "reelrec_nightly"
DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"
HOST = "127.0.0.1"
# Two cores: three task processes at once (the three feature jobs; content embeddings beside Feast
# apply); their heavy lifting runs in the shared Spark Connect server.
PARALLELISM = 3
# The production UI's one user, and the file the simple auth manager reads its password from.
ADMIN_USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def airflow_bin() -> str:
    """This venv's ``airflow`` executable."""
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


def api_url(settings: Settings) -> str:
    """Base URL of the API server (and UI) of ``settings``' stack."""
    return f"http://{HOST}:{settings.ui_port}"


def celery_result_backend(settings: Settings) -> str:
    """Celery's result backend: the Airflow metadata database on Postgres (``db+postgresql://...``)."""
    url = settings.airflow_db
    for driver in ("postgresql+psycopg2://", "postgresql+psycopg://", "postgresql://"):
        if url.startswith(driver):
            return "db+postgresql://" + url.removeprefix(driver)
    return "db+" + url


def _async_postgres_url(url: str) -> str:
    """``url`` with the psycopg (3) driver, which SQLAlchemy runs in async mode too."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}"


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by this user only (0600) from its first byte.

    The text goes to a temporary file created with mode 0600 in the same folder, which is then
    renamed over ``path``: no reader ever sees a partial file or one with the umask's permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _secret(settings: Settings, name: str) -> str:
    """A random secret kept in ``AIRFLOW_HOME/<name>`` (made once, mode 0600): every component signs
    and checks the same JWTs."""
    path = settings.airflow_home / name
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def passwords_file(settings: Settings) -> Path:
    """The simple auth manager's passwords file of ``settings``' stack (``{"admin": "<password>"}``)."""
    return settings.airflow_home / PASSWORDS_FILE


def read_passwords(settings: Settings) -> dict[str, str]:
    """The users and passwords of :func:`passwords_file` (empty when it does not exist yet).

    Raises:
        ValueError: naming the file when it is not a JSON object of user -> password.
    """
    path = passwords_file(settings)
    if not path.exists():
        return {}
    try:
        passwords = json.loads(path.read_text() or "{}")
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON object of user -> password ({err})") from None
    if not isinstance(passwords, dict):
        raise ValueError(f"{path}: not a JSON object of user -> password")
    return {str(user): str(password) for user, password in passwords.items()}


def ensure_login(settings: Settings) -> str | None:
    """Make sure the production UI's ``admin`` user has a password, generated at the first start.

    The password is random (``secrets``, 24 URL-safe characters) and kept in :func:`passwords_file`
    with mode 0600, the file Airflow's simple auth manager reads (``[core]
    simple_auth_manager_passwords_file``); later starts reuse it. A file Airflow wrote itself (with
    the umask's permissions) is narrowed to 0600. The embedded profile has no login (every user is
    an admin), so nothing is generated there.

    Returns:
        The password when it was generated by this call (the caller prints it, once), else ``None``.

    Raises:
        ValueError: naming the file when it exists but is not a JSON object.
    """
    if settings.profile == "embedded":
        return None
    path = passwords_file(settings)
    passwords = read_passwords(settings)
    if passwords.get(ADMIN_USER):
        path.chmod(0o600)
        return None
    password = secrets.token_urlsafe(18)
    write_private(path, json.dumps({**passwords, ADMIN_USER: password}) + "\n")
    return password


def airflow_env(settings: Settings, spark_remote: str = "") -> dict[str, str]:
    """Environment of every Airflow process of ``settings``' stack.

    Args:
        settings: profile, metadata database, executor, broker, UI port.
        spark_remote: ``sc://`` URL of the stack's Spark Connect server, set as ``REELREC_SPARK_REMOTE``
            for the task processes ("" keeps the caller's value, if any).
    """
    env = dict(os.environ)
    home = settings.airflow_home
    port = str(settings.ui_port)
    env |= {
        "REELREC_HOME": str(settings.home),
        "REELREC_PROFILE": settings.profile,
        "AIRFLOW_HOME": str(home),
        # Airflow starts some children as `airflow ...` from PATH: this venv's.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.airflow_db,
        "AIRFLOW__CORE__EXECUTOR": settings.airflow_executor,
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(PARALLELISM),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": port,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": api_url(settings),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url(settings)}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(settings, "jwt_secret"),
        "AIRFLOW__API__SECRET_KEY": _secret(settings, "api_secret_key"),
        # Task logs stay on this machine's disk, where the API server reads them for the UI.
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__CELERY__BROKER_URL": settings.celery_broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": celery_result_backend(settings),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(PARALLELISM),
        # Off by default; should someone turn it on, it listens on loopback, not 0.0.0.0.
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": HOST,
        "PYTHONUNBUFFERED": "1",
    }
    if settings.airflow_db.startswith("postgresql"):
        # Airflow's async engine would default to asyncpg; psycopg 3 (installed for Feast) is async too.
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = _async_postgres_url(settings.airflow_db)
    if settings.profile == "embedded":
        # A one-person laptop stack on 127.0.0.1: every user is an admin, no login.
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
    else:
        # One user, `admin` with the admin role; its password comes from ensure_login's file.
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "False"
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = f"{ADMIN_USER}:admin"
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(passwords_file(settings))
    # The nights are created by `reelrec run` (and the UI's Trigger); set True to let the cron create
    # them too. This is also what makes triggering one past night from the UI safe: the trigger form
    # of a paused DAG ticks "Unpause on trigger" (hard-coded in Airflow 3.3, no setting), and an
    # unpaused DAG then runs that night only, no daily schedule (tests/test_ui_browser.py checks it).
    env.setdefault("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", "False")
    if spark_remote:
        env["REELREC_SPARK_REMOTE"] = spark_remote
    return env


def airflow_components(settings: Settings, spark_remote: str = "") -> list[Component]:
    """The Airflow processes of ``settings``' profile: api-server, scheduler, dag-processor, triggerer,
    and a celery-worker with the CeleryExecutor.

    Logs are read from the shared disk, so no component serves them on a port of its own
    (``--skip-serve-logs``: that server would listen on every interface).
    """
    env = airflow_env(settings, spark_remote)
    airflow = airflow_bin()
    port = str(settings.ui_port)
    stack = [
        Component(
            name="airflow-api-server",
            argv=(airflow, "api-server", "--host", HOST, "--port", port, "--workers", "1"),
            env=env,
            ports=(settings.ui_port,),
            ready_url=f"{api_url(settings)}/api/v2/monitor/health",
            start_timeout_s=180.0,
        ),
        Component(name="airflow-scheduler", argv=(airflow, "scheduler", "--skip-serve-logs"), env=env),
        Component(name="airflow-dag-processor", argv=(airflow, "dag-processor"), env=env),
        Component(name="airflow-triggerer", argv=(airflow, "triggerer", "--skip-serve-logs"), env=env),
    ]
    if settings.airflow_executor == "CeleryExecutor":
        argv = (airflow, "celery", "worker", "--concurrency", str(PARALLELISM), "--skip-serve-logs")
        stack.append(Component(name="celery-worker", argv=argv, env=env))
    return stack


def ensure_db(settings: Settings) -> None:
    """Create (Postgres) and migrate the Airflow metadata database, once per URL (idempotent)."""
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    marker = settings.airflow_home / ".migrated"
    url = settings.airflow_db
    if marker.exists() and marker.read_text() == url:
        return
    if url.startswith("postgresql"):
        from reelrec.services.engines import create_database

        create_database(url)
    subprocess.run(
        [airflow_bin(), "db", "migrate"], env=airflow_env(settings), check=True, capture_output=True
    )
    marker.write_text(url)


@dataclass(frozen=True)
class DagRunOutcome:
    """How one date's DAG run ended."""

    date: str
    succeeded: bool
    seconds: float
    log_path: Path


def run_dag(
    date: str, settings: Settings, dag_id: str = DAG_ID, conf: dict[str, Any] | None = None
) -> DagRunOutcome:
    """Run ``dag_id`` for logical date ``date`` in this one process (``airflow dags test``, the inline
    debugging path), with the params ``conf``; the log goes to runs/dt=D/airflow.log."""
    ensure_db(settings)
    log_path = settings.run_dir(date) / "airflow.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.run(
            [airflow_bin(), "dags", "test", dag_id, f"{date}T00:00:00+00:00"]
            + (["--conf", json.dumps(conf)] if conf else []),
            env=airflow_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return DagRunOutcome(date, proc.returncode == 0, time.perf_counter() - started, log_path)


def _engine(settings: Settings) -> Any:
    from sqlalchemy import create_engine

    url = settings.airflow_db
    if url.startswith("postgresql"):
        return create_engine(url, connect_args={"options": "-c timezone=utc"})
    return create_engine(url)


def _db_missing(settings: Settings) -> bool:
    url = settings.airflow_db
    return url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists()


def task_instances(date: str, settings: Settings, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    """Task instances of the latest run of ``dag_id`` for logical date ``date``, from the metadata DB.

    Each row: task_id, state, start_date, end_date, duration, try_number, queued_dttm,
    queued_by_job_id (the scheduler's job), hostname, executor, external_executor_id (the Celery task
    id under the CeleryExecutor), run_id.
    """
    from sqlalchemy import text

    if _db_missing(settings):
        return []
    query = text(
        """
        SELECT ti.task_id, ti.state, ti.start_date, ti.end_date, ti.duration, ti.try_number,
               ti.queued_dttm, ti.queued_by_job_id, ti.hostname, ti.executor, ti.external_executor_id,
               ti.run_id
        FROM task_instance ti
        JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id
        WHERE ti.dag_id = :dag_id AND dr.id = (
            SELECT MAX(id) FROM dag_run WHERE dag_id = :dag_id AND date(logical_date) = date(:date)
        )
        ORDER BY ti.start_date
        """
    )
    engine = _engine(settings)
    with engine.connect() as conn:
        rows = conn.execute(query, {"dag_id": dag_id, "date": date}).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def dag_runs(settings: Settings, limit: int = 10, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    """The latest run of each logical date of ``dag_id``, newest date first (at most ``limit``).

    A home whose Airflow database was never created has no runs.
    """
    from sqlalchemy import text

    if _db_missing(settings):
        return []
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
    engine = _engine(settings)
    with engine.connect() as conn:
        rows = conn.execute(query, {"dag_id": dag_id, "limit": limit}).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]
