"""
### reelrec_nightly

One logical date **D** per run.

1. **Data plane**: land D's raw drops into bronze Delta tables, validate them ("bronze" suite),
   compute D's user/video/creator features into silver Delta tables, validate those ("features"
   suite), register the Feast repository and materialize D's features into the online store.
2. **Model plane**: encode the captions of videos first seen on D (all-MiniLM-L6-v2) and publish
   them; build the point-in-time training set of the nights before D through Feast; train the
   two-tower model and the multi-task ranker; evaluate every stage on day D (each candidate
   source, the merged set, the ranker, the final list, and the serving version's final list);
   the **promotion gate** decides whether tonight's release may replace the serving one; score
   every active user (six candidate sources merged, ranked, list rules; the default list for users
   without one; user/video embeddings; ANN index); validate the outputs ("outputs" suite); publish
   them to the online store, versioned by ``model_version``, and make the release the serving one.
3. **Record** the run manifest: Delta versions and row counts of every table, each task's facts
   and the metrics.

* **First night**: with no earlier night there is nothing to train on; the training-set task is
  *skipped* (not failed) and so are the tasks after it. The data plane is unaffected.

* **Held nights**: when tonight's final list loses to the serving release (NDCG@10 below its
  figure minus the tolerance) or to the best baseline on day D, ``gate`` records the decision
  (``runs/dt=D/gate.json``, the manifest's status ``held``) and ``score``, ``validate_outputs``
  and ``publish`` are *skipped* with the reason in their log: yesterday's lists keep serving.
  The ``force_publish`` param (true) overrides the gate; the manifest records it as forced.
* **Date**: the run's logical date (``ds``). The schedule is a *data-interval* cron, so the run
  for D starts after D has ended and its logical date is D. A manual run may pin the date with
  the ``date`` param (``{"date": "2026-11-01"}``). Nothing calls ``now()``.
* **Idempotent**: every task replaces D's partition; rerunning D leaves row counts unchanged.
* **Gates**: a failed Great Expectations suite fails its task, so nothing downstream (features,
  models, the online store) runs on bad data. The failure message names the table, date,
  expectation and rows.
* **Waiting for data**: ``check_landing`` is a sensor on D's drops' ``_SUCCESS`` markers
  (reschedule mode: it frees its worker slot between pokes). A scheduled night waits for late
  drops, poking every ``REELREC_LANDING_POKE_S`` seconds (300) for at most
  ``REELREC_LANDING_TIMEOUT_S`` (6 h), then fails naming the missing feeds and folders. A manual
  run, a backfill or a run pinning ``date`` checks once and fails at once naming them; the
  ``wait_for_data`` param (true/false) overrides that choice.
* **Retries**: bad data (``DataError``) fails a task at once; anything else (Redis or Postgres
  briefly away, a lost worker, a task past its ``execution_timeout``) is retried 3 times after
  ``REELREC_RETRY_DELAY_S`` seconds (120), doubling each time (2, 4, 8 min; at most 15 min): long
  enough for a restarted Redis or a Postgres failover, short enough to finish the night. The
  variables are read when the file is parsed (tests shorten them); nothing else is.
* Each task runs alone from the shell: ``python -m spark_jobs.<job> --date D``,
  ``python -m models.<stage> --date D``.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import (
    Asset,
    BaseSensorOperator,
    CronDataIntervalTimetable,
    Param,
    PokeReturnValue,
    dag,
    task,
)

BRONZE = [
    Asset(f"reelrec://lake/bronze/{name}") for name in ("events", "videos", "users", "creators", "follows")
]
USER_FEATURES = Asset("reelrec://lake/silver/user_features")
VIDEO_FEATURES = Asset("reelrec://lake/silver/video_features")
CREATOR_FEATURES = Asset("reelrec://lake/silver/creator_features")
ONLINE_FEATURES = Asset("reelrec://feast/online/features")
VIDEO_CONTENT = Asset("reelrec://lake/silver/video_content")
MODEL = Asset("reelrec://models/two_tower")
RANKER = Asset("reelrec://models/ranker")
GOLD = [
    Asset(f"reelrec://lake/gold/{name}") for name in ("candidates", "user_embeddings", "video_embeddings")
]
ONLINE_OUTPUTS = Asset("reelrec://feast/online/outputs")

Facts = dict[str, Any]

RETRY_DELAY = pendulum.duration(seconds=float(os.environ.get("REELREC_RETRY_DELAY_S", "120")))
LANDING_POKE = pendulum.duration(seconds=float(os.environ.get("REELREC_LANDING_POKE_S", "300")))
LANDING_TIMEOUT = pendulum.duration(seconds=float(os.environ.get("REELREC_LANDING_TIMEOUT_S", str(6 * 3600))))
# execution_timeout per task, in minutes. Measured on `small` nights (README "Measured": max
# seconds per task over 7 nights, in the comments); the `medium` world has 10x the users, videos
# and events, so about 10x those times, and each limit leaves at least 5x that again (a loaded
# machine, a Spark cluster's start-up). A task past its limit is killed and retried.
TIMEOUT_MIN: dict[str, int] = {
    "run_date": 5,
    "check_landing": 5,  # one poke (a few stat calls); the wait itself is bounded by LANDING_TIMEOUT
    "ingest_events": 20,  # 18 s (JVM start included)
    "ingest_catalogs": 20,  # 16 s
    "validate_bronze": 10,  # 3.3 s
    "user_features": 15,  # 2-3 s each feature job
    "video_features": 15,
    "creator_features": 15,
    "validate_features": 10,  # 1.4 s
    "feast_apply": 10,  # 5.6 s, does not grow with the data
    "feast_materialize": 10,  # 2.5 s
    "content_embeddings": 30,  # 22 s on the first night (whole catalog; medium: 40k videos)
    "publish_content": 10,  # ~2 s
    "training_set": 15,  # 5.1 s
    "train": 30,  # 9.9 s
    "train_ranker": 30,
    "evaluate": 20,  # 2.6 s before the sources and the ranker
    "gate": 5,
    "score": 15,  # 2.1 s; benchmarks: 30k users x 40k videos in 65 s
    "validate_outputs": 10,  # 1.0 s
    "publish": 10,  # 2.5 s
    "record_run": 5,
}


def _limit(task_id: str) -> Any:
    return pendulum.duration(minutes=TIMEOUT_MIN[task_id])


def _call(entry: str, *args: Any) -> Any:
    """Import ``module:function`` lazily, call it with ``*args`` and the settings from the environment.

    Bad data (:class:`reelrec.errors.DataError`) fails the task at once: retrying cannot fix it.
    Nothing to do yet (:class:`reelrec.errors.NothingToDoError`) skips it and its downstream tasks.
    """
    import importlib

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from reelrec.errors import DataError, NothingToDoError
    from reelrec.settings import Settings

    module, function = entry.split(":")
    try:
        return getattr(importlib.import_module(module), function)(*args, Settings.from_env())
    except DataError as err:
        raise AirflowFailException(f"{type(err).__name__}: {err}") from err
    except NothingToDoError as err:
        raise AirflowSkipException(f"{type(err).__name__}: {err}") from err


@task(execution_timeout=_limit("run_date"))
def run_date(params: dict[str, Any] | None = None, logical_date: Any = None) -> str:
    """Resolve the logical date D this run processes (param ``date`` wins over the logical date)."""
    from reelrec.runs import resolve_run_date

    return resolve_run_date(params, logical_date)


class LandingSensor(BaseSensorOperator):
    """Wait for (scheduled nights) or check once (manual runs) D's landing drops' ``_SUCCESS``.

    The rules live in :mod:`reelrec.landing` (``missing_drops``, ``waits_for_drops``); this class
    only turns them into Airflow's sensor outcomes. Its XCom is ``check_drops``' facts.
    """

    template_fields = ("date",)

    def __init__(self, *, date: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.date = date

    def poke(self, context: Any) -> PokeReturnValue:
        from airflow.sdk.exceptions import AirflowFailException

        from reelrec.landing import format_missing, waits_for_drops

        missing = _call("reelrec.landing:missing_drops", self.date)
        if not missing:
            return PokeReturnValue(is_done=True, xcom_value=_call("reelrec.landing:check_drops", self.date))
        if not waits_for_drops(context["dag_run"].run_type, context["params"]):
            raise AirflowFailException(
                f"not waiting (manual run of a past date): {format_missing(self.date, missing)}"
            )
        self.log.info("waiting: %s", format_missing(self.date, missing))
        return PokeReturnValue(is_done=False)

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowSensorTimeout

        from reelrec.landing import format_missing

        try:
            return super().execute(context)
        except AirflowSensorTimeout as err:
            missing = _call("reelrec.landing:missing_drops", self.date)
            raise AirflowSensorTimeout(
                f"gave up waiting after {self.timeout:.0f} s: {format_missing(self.date, missing)}"
            ) from err


@task(outlets=BRONZE[:1], execution_timeout=_limit("ingest_events"))
def ingest_events(date: str) -> Facts:
    """Land D's events into bronze ``events``: schema check, dedup by ``event_id``, bad rows quarantined."""
    return _call("spark_jobs.ingest_events:main", date)


@task(outlets=BRONZE[1:], execution_timeout=_limit("ingest_catalogs"))
def ingest_catalogs(date: str) -> Facts:
    """Land D's video, user and creator snapshots and new follows into bronze."""
    return _call("spark_jobs.ingest_catalogs:main", date)


@task(execution_timeout=_limit("validate_bronze"))
def validate_bronze(date: str) -> Facts:
    """Run the "bronze" suite on D's partitions; a violation fails the night here."""
    return _call("reelrec.validation:gate", "bronze", date)


@task(outlets=[USER_FEATURES], execution_timeout=_limit("user_features"))
def user_features(date: str) -> Facts:
    """Per-user activity as of the end of D (1/7/28-day windows) into silver ``user_features``."""
    return _call("spark_jobs.user_features:main", date)


@task(outlets=[VIDEO_FEATURES], execution_timeout=_limit("video_features"))
def video_features(date: str) -> Facts:
    """Per-video performance as of the end of D into silver ``video_features``."""
    return _call("spark_jobs.video_features:main", date)


@task(outlets=[CREATOR_FEATURES], execution_timeout=_limit("creator_features"))
def creator_features(date: str) -> Facts:
    """Per-creator audience and output as of the end of D into silver ``creator_features``."""
    return _call("spark_jobs.creator_features:main", date)


@task(execution_timeout=_limit("validate_features"))
def validate_features(date: str) -> Facts:
    """Run the "features" suite on D's silver partitions."""
    return _call("reelrec.validation:gate", "features", date)


@task(execution_timeout=_limit("feast_apply"))
def feast_apply() -> Facts:
    """Register the Feast repository's entities, sources, feature views and services."""
    return _call("feature_repo.registry:apply")


@task(outlets=[ONLINE_FEATURES], execution_timeout=_limit("feast_materialize"))
def feast_materialize(date: str) -> Facts:
    """Materialize D's validated features into the online store."""
    return _call("feature_repo.materialize:materialize", date)


@task(outlets=[VIDEO_CONTENT], execution_timeout=_limit("content_embeddings"))
def content_embeddings(date: str) -> Facts:
    """Encode caption + hashtags of the videos first seen on D with all-MiniLM-L6-v2."""
    return _call("models.content:main", date)


@task(execution_timeout=_limit("publish_content"))
def publish_content(date: str) -> Facts:
    """Materialize the content embeddings written on D into the online store."""
    return _call("models.publish:publish_content", date)


@task(execution_timeout=_limit("training_set"))
def training_set(date: str) -> Facts:
    """Label the impressions of the nights before D; join features point-in-time through Feast."""
    return _call("models.training_set:main", date)


@task(outlets=[MODEL], execution_timeout=_limit("train"))
def train(date: str) -> Facts:
    """Train the two-tower retrieval model on the nights before D."""
    return _call("models.two_tower.train:main", date)


@task(outlets=[RANKER], execution_timeout=_limit("train_ranker"))
def train_ranker(date: str) -> Facts:
    """Train the multi-task ranker (completion, like, share, skip) on the impressions before D."""
    return _call("models.ranker.train:main", date)


@task(execution_timeout=_limit("evaluate"))
def evaluate(date: str) -> Facts:
    """Every stage on day D: each source, merged, ranker, final list; the serving release's final list."""
    return _call("models.evaluate:main", date)


@task(execution_timeout=_limit("gate"))
def gate(date: str, params: dict[str, Any] | None = None) -> Facts:
    """Promotion gate: publish tonight's release, or hold it and keep the serving one (``force_publish``)."""
    return _call("models.promotion:gate", date, bool((params or {}).get("force_publish")))


@task(outlets=GOLD, execution_timeout=_limit("score"))
def score(date: str) -> Facts:
    """Candidates, user/video embeddings and the ANN index of every active user, as of D."""
    return _call("models.score:main", date)


@task(execution_timeout=_limit("validate_outputs"))
def validate_outputs(date: str) -> Facts:
    """Run the "outputs" suite on D's gold partitions."""
    return _call("reelrec.validation:gate", "outputs", date)


@task(outlets=[ONLINE_OUTPUTS], execution_timeout=_limit("publish"))
def publish(date: str) -> Facts:
    """Materialize D's validated candidates and embeddings into the online store."""
    return _call("models.publish:publish_outputs", date)


@task(trigger_rule="none_failed", execution_timeout=_limit("record_run"))
def record_run(date: str, facts: dict[str, Facts | None]) -> str:
    """Write the run manifest: Delta versions read/written, row counts, task facts (None: skipped)."""
    return str(_call("reelrec.runs:record_manifest", date, facts))


@dag(
    dag_id="reelrec_nightly",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["reelrec", "nightly", "data-plane", "model-plane"],
    default_args={
        "owner": "reelrec",
        "retries": 3,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": pendulum.duration(minutes=15),
    },
    params={
        "date": Param(None, type=["null", "string"], format="date", description="override D (YYYY-MM-DD)"),
        "force_publish": Param(
            False, type="boolean", description="publish even when the promotion gate would hold the night"
        ),
        "wait_for_data": Param(
            None,
            type=["null", "boolean"],
            description="wait for late landing drops (default: scheduled nights wait, manual runs do not)",
        ),
    },
    doc_md=__doc__,
)
def reelrec_nightly() -> None:
    # Calling a task returns an XComArg that stands for its value at run time (D here, facts below);
    # mypy cannot see through the decorator, hence the ``Any`` annotations.
    date: Any = run_date()
    landing = LandingSensor(
        task_id="check_landing",
        date=date,
        mode="reschedule",
        poke_interval=LANDING_POKE,
        timeout=LANDING_TIMEOUT,
        execution_timeout=_limit("check_landing"),
        doc_md="Wait for D's landing drops (`_SUCCESS` written); name the missing feed and folder.",
    )
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
    content = content_embeddings(date)
    features_ok >> content
    content_online = publish_content(date)
    # Feast's file registry is rewritten whole by every materialize: its two writers (the features and
    # the content view) take turns, or one may read the other's half-written file.
    [online, content] >> content_online
    examples = training_set(date)
    [online, content_online] >> examples
    model = train(date)
    examples >> model
    ranker = train_ranker(date)
    examples >> ranker
    metrics = evaluate(date)
    [model, ranker] >> metrics
    decision = gate(date)
    metrics >> decision
    outputs = score(date)
    decision >> outputs
    outputs_ok = validate_outputs(date)
    outputs >> outputs_ok
    published = publish(date)
    outputs_ok >> published
    facts: dict[str, Any] = {
        "check_landing": landing.output,  # the sensor's XCom: check_drops' facts
        "ingest_events": events,
        "ingest_catalogs": catalogs,
        "validate_bronze": bronze_ok,
        "user_features": users,
        "video_features": videos,
        "creator_features": creators,
        "validate_features": features_ok,
        "feast_apply": applied,
        "feast_materialize": online,
        "content_embeddings": content,
        "publish_content": content_online,
        "training_set": examples,
        "train": model,
        "train_ranker": ranker,
        "evaluate": metrics,
        "gate": decision,
        "score": outputs,
        "validate_outputs": outputs_ok,
        "publish": published,
    }
    record_run(date, facts)


reelrec_nightly()
