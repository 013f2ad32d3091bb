"""
### reelrec_housekeeping

Keeps a home that runs every night bounded and its answers fresh; runs once after each recorded
night. The same work from the shell: `reelrec housekeep [--dry-run]`; rules in docs/housekeeping.md.

* **Schedule**: the asset `reelrec://runs/manifest`, which the nightly DAG's `record_run` updates
  when a night is recorded (published, held or data-only nights alike); not a clock.
* **wait_for_nights**: a sensor (reschedule mode) until no `reelrec_nightly` run is queued or
  running and no `reelrec run`/`demo` holds the home's run lock: housekeeping never touches what a
  night reads. Each step then takes the run lock itself and re-checks.
* **lake**: compact small files, vacuum what no kept Delta version reads (the last
  `REELREC_KEEP_NIGHTS` nights' manifests and the rollback window stay readable by time travel).
* **models**: remove model versions (with their ANN indexes) and training sets outside the
  serving release, the rollback window and the last `REELREC_KEEP_MODEL_VERSIONS` nights.
* **online**: remove users' lists and embeddings generated more than `REELREC_ONLINE_MAX_AGE_DAYS`
  before the online default list (those users get the default list, flagged).
* **airflow**: `airflow db clean` and task logs older than `REELREC_AIRFLOW_RETENTION_DAYS`.
* **record**: `runs/housekeeping/<time>.json`, what was removed and the bytes and rows reclaimed.

Every step is idempotent: a rerun finds nothing left to remove.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, BaseSensorOperator, dag, task

from reelrec.airflow_tasks import call as _call
from reelrec.airflow_tasks import default_args

# Updated by reelrec_nightly's record_run at the end of every recorded night (dags/reelrec_nightly.py).
RUN_MANIFEST = Asset("reelrec://runs/manifest")
HOUSEKEEPING = Asset("reelrec://runs/housekeeping")

Facts = dict[str, Any]

WAIT_POKE = pendulum.duration(seconds=float(os.environ.get("REELREC_HOUSEKEEPING_POKE_S", "300")))
WAIT_TIMEOUT = pendulum.duration(hours=12)
STEP_TIMEOUT = pendulum.duration(minutes=30)


class NightsDoneSensor(BaseSensorOperator):
    """Until no nightly run is queued or running and the home's run lock is free.

    **Reads** the Airflow metadata (`reelrec_nightly` runs), `$REELREC_HOME/run.lock`. **Writes** nothing."""

    def poke(self, context: Any) -> bool:
        return bool(_call("reelrec.housekeeping:wait_for_nights"))


@task(execution_timeout=STEP_TIMEOUT)
def lake() -> Facts:
    """Compact and vacuum every Delta table.

    **Reads** the run manifests, releases, Delta logs. **Writes** compacted files; deletes unread files."""
    return dict(_call("reelrec.housekeeping:lake_step"))


@task(execution_timeout=STEP_TIMEOUT)
def models() -> Facts:
    """Remove old model versions, their ANN indexes and training sets.

    **Reads** the releases, the serving pointer, `dt=D.json` pointers. **Writes** deletes folders."""
    return dict(_call("reelrec.housekeeping:models_step"))


@task(execution_timeout=STEP_TIMEOUT)
def online() -> Facts:
    """Remove expired users' lists and embeddings from the online store.

    **Reads** `generated_at` of every user's list. **Writes** deletes the expired rows."""
    return dict(_call("reelrec.housekeeping:online_step"))


@task(execution_timeout=STEP_TIMEOUT)
def airflow_metadata() -> Facts:
    """`airflow db clean` and old task logs.

    **Reads** the metadata DB. **Writes** deletes rows and log files past the retention."""
    return dict(_call("reelrec.housekeeping:airflow_step"))


@task(outlets=[HOUSEKEEPING], execution_timeout=STEP_TIMEOUT)
def record(lake: Facts, models: Facts, online: Facts, airflow: Facts) -> str | None:
    """The record of what was removed.

    **Reads** the steps' reports. **Writes** `runs/housekeeping/<time>.json`."""
    steps = {"lake": lake, "models": models, "online": online, "airflow": airflow}
    return _call("reelrec.housekeeping:record_steps", steps)  # type: ignore[no-any-return]


@dag(
    dag_id="reelrec_housekeeping",
    description="After each night: compact/vacuum the lake, prune models, expire old lists, clean Airflow",
    schedule=[RUN_MANIFEST],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["reelrec", "housekeeping"],
    default_args=default_args(),
    doc_md=__doc__,
)
def reelrec_housekeeping() -> None:
    # One step after the other: each holds the home's run lock while it works.
    waited = NightsDoneSensor(
        task_id="wait_for_nights",
        mode="reschedule",
        poke_interval=WAIT_POKE,
        timeout=WAIT_TIMEOUT,
        execution_timeout=STEP_TIMEOUT,
        doc_md=NightsDoneSensor.__doc__,
    )
    lake_facts: Any = lake()
    model_facts: Any = models()
    online_facts: Any = online()
    airflow_facts: Any = airflow_metadata()
    waited >> lake_facts >> model_facts >> online_facts >> airflow_facts
    record(lake_facts, model_facts, online_facts, airflow_facts)


reelrec_housekeeping()
