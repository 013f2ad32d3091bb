"""
### reelrec_nightly

One logical date **D** per run: land D's raw drops into bronze Delta tables, validate them,
compute D's user/video/creator features into silver Delta tables, validate those, then register
the Feast repository and materialize D into the online store, and record the run manifest.

* **Date**: the run's logical date (``ds``). The schedule is a *data-interval* cron, so the run
  for D starts after D has ended and its logical date is D. A manual run may pin the date with
  the ``date`` param (``{"date": "2026-11-01"}``). Nothing calls ``now()``.
* **Idempotent**: every task replaces D's partition; rerunning D leaves row counts unchanged.
* **Gates**: a failed Great Expectations suite fails its task, so nothing downstream (features,
  Feast) runs on bad data. The failure message names the table, date, expectation and rows.
* Each task runs alone from the shell: ``python -m spark_jobs.<job> --date D``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

BRONZE = [
    Asset(f"reelrec://lake/bronze/{name}") for name in ("events", "videos", "users", "creators", "follows")
]
USER_FEATURES = Asset("reelrec://lake/silver/user_features")
VIDEO_FEATURES = Asset("reelrec://lake/silver/video_features")
CREATOR_FEATURES = Asset("reelrec://lake/silver/creator_features")
ONLINE_FEATURES = Asset("reelrec://feast/online/features")

Facts = dict[str, Any]


def _call(entry: str, *args: Any) -> Any:
    """Import ``module:function`` lazily, call it with ``*args`` and the settings from the environment.

    Bad data (:class:`reelrec.errors.DataError`) fails the task at once: retrying cannot fix it.
    """
    import importlib

    from airflow.sdk.exceptions import AirflowFailException

    from reelrec.errors import DataError
    from reelrec.settings import Settings

    module, function = entry.split(":")
    try:
        return getattr(importlib.import_module(module), function)(*args, Settings.from_env())
    except DataError as err:
        raise AirflowFailException(f"{type(err).__name__}: {err}") from err


@task
def run_date(params: dict[str, Any] | None = None, logical_date: Any = None) -> str:
    """Resolve the logical date D this run processes (param ``date`` wins over the logical date)."""
    from reelrec.runs import resolve_run_date

    return resolve_run_date(params, logical_date)


@task
def check_landing(date: str) -> Facts:
    """Fail early, naming the folder, if any of D's landing drops is missing or incomplete."""
    return _call("reelrec.landing:check_drops", date)


@task(outlets=BRONZE[:1])
def ingest_events(date: str) -> Facts:
    return _call("spark_jobs.ingest_events:main", date)


@task(outlets=BRONZE[1:])
def ingest_catalogs(date: str) -> Facts:
    return _call("spark_jobs.ingest_catalogs:main", date)


@task
def validate_bronze(date: str) -> Facts:
    return _call("reelrec.validation:gate", "bronze", date)


@task(outlets=[USER_FEATURES])
def user_features(date: str) -> Facts:
    return _call("spark_jobs.user_features:main", date)


@task(outlets=[VIDEO_FEATURES])
def video_features(date: str) -> Facts:
    return _call("spark_jobs.video_features:main", date)


@task(outlets=[CREATOR_FEATURES])
def creator_features(date: str) -> Facts:
    return _call("spark_jobs.creator_features:main", date)


@task
def validate_features(date: str) -> Facts:
    return _call("reelrec.validation:gate", "features", date)


@task
def feast_apply() -> Facts:
    return _call("reelrec.feast_store:apply")


@task(outlets=[ONLINE_FEATURES])
def feast_materialize(date: str) -> Facts:
    return _call("reelrec.feast_store:materialize", date)


@task
def record_run(date: str, facts: dict[str, Facts]) -> str:
    """Write the run manifest: Delta versions read/written, row counts, task facts."""
    return str(_call("reelrec.runs:record_manifest", date, facts))


@dag(
    dag_id="reelrec_nightly",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["reelrec", "nightly", "data-plane"],
    default_args={"owner": "reelrec", "retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    params={
        "date": Param(None, type=["null", "string"], format="date", description="override D (YYYY-MM-DD)")
    },
    doc_md=__doc__,
)
def reelrec_nightly() -> None:
    date = run_date()
    landing = check_landing(date)
    events = ingest_events(date)
    catalogs = ingest_catalogs(date)
    landing >> [events, catalogs]
    bronze_ok = validate_bronze(date)
    [events, catalogs] >> bronze_ok
    users, videos, creators = user_features(date), video_features(date), creator_features(date)
    bronze_ok >> [users, videos, creators]
    features_ok = validate_features(date)
    [users, videos, creators] >> features_ok
    applied = feast_apply()
    features_ok >> applied
    online = feast_materialize(date)
    applied >> online
    record_run(
        date,
        {
            "check_landing": landing,
            "ingest_events": events,
            "ingest_catalogs": catalogs,
            "validate_bronze": bronze_ok,
            "user_features": users,
            "video_features": videos,
            "creator_features": creators,
            "validate_features": features_ok,
            "feast_apply": applied,
            "feast_materialize": online,
        },
    )


reelrec_nightly()
