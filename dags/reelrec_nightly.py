"""
### reelrec_nightly

One logical date **D** per run. The graph has three task groups, one per plane:

1. **data_plane**: land D's raw drops into bronze Delta tables, validate them ("bronze" suite),
   compute D's user/video/creator features into silver Delta tables, validate those ("features"
   suite), register the Feast repository and materialize D's features into the online store.
2. **model_plane**: encode the captions of videos first seen on D (all-MiniLM-L6-v2) and publish
   them; build the point-in-time training set of the nights before D through Feast; train the
   two-tower model and the multi-task ranker; evaluate every stage on day D (each candidate
   source, the merged set, the ranker, the final list, and the serving version's final list);
   the **promotion gate** decides whether tonight's release may replace the serving one; score
   every active user (six candidate sources merged, ranked, list rules; the default list for users
   without one; user/video embeddings; ANN index); validate the outputs ("outputs" suite).
3. **publishing**: publish the outputs to the online store, versioned by ``model_version``, and
   make the release the serving one; **record** the run manifest (Delta versions and row counts
   of every table, each task's facts and the metrics); write the night's **report**
   (``runs/dt=D/report.html``).

* **Edges are real dependencies.** Every task reads D from its own run context (``_night``: the
  ``date`` param, else the logical date), so no task feeds D to the others; ``record_run`` pulls
  the facts of every task before it from XCom by task id, so it hangs off ``publish`` alone.
  Since every task is upstream of ``publish``, a failure anywhere still stops the record.
* **First night**: with no earlier night there is nothing to train on; the training-set task is
  *skipped* (not failed) and so are the tasks after it. The data plane is unaffected.
* **Held nights**: when tonight's final list loses to the serving release (NDCG@10 below its
  figure minus the tolerance) or to the best baseline on day D, ``gate`` records the decision
  (``runs/dt=D/gate.json``, the manifest's status ``held``) and ``score``, ``validate_outputs``
  and ``publish`` are *skipped* with the reason in their log: yesterday's lists keep serving.
  The ``force_publish`` param (true) overrides the gate; the manifest records it as forced.
  ``record_run`` and ``report`` still run (trigger rule ``none_failed``).
* **Report**: a plotting problem never fails a recorded night: it *skips* ``report`` (pink in the
  grid), the traceback in its log. A failed night has no manifest and no report.
* **Date**: the run's logical date (``ds``): the schedule is a *data-interval* cron, so the run
  for D starts after D has ended. The ``date`` param pins it (``{"date": "2026-11-01"}``).
* **Triggering a past night from the UI**: *Trigger* -> set ``date`` -> *Trigger* (a night that
  ran already: open its run, *Clear*). The run redoes D (idempotent) and checks D's drops once,
  without waiting. On a paused DAG the form's
  "Unpause on trigger" box is ticked (Airflow 3.3 hard-codes it): that lets this run execute and
  starts **no** schedule: reelrec's scheduler creates no cron runs (``[scheduler]
  use_job_schedule = False``, :mod:`reelrec.airflow_local`); ``reelrec run`` creates the nights.
* **Idempotent**: every task replaces D's partition; rerunning D leaves row counts unchanged.
* **Gates**: a failed Great Expectations suite fails its task, so nothing downstream runs on bad
  data; the message names the table, date, expectation and rows.
* **Waiting for data**: ``check_landing`` is a sensor on D's drops' ``_SUCCESS`` markers
  (reschedule mode: it frees its worker slot between pokes). A scheduled night waits for late
  drops, poking every ``REELREC_LANDING_POKE_S`` seconds (300) for at most
  ``REELREC_LANDING_TIMEOUT_S`` (6 h), then fails naming the missing feeds and folders. A manual
  run, a backfill or a run pinning ``date`` checks once and fails at once naming them; the
  ``wait_for_data`` param (true/false) overrides that choice.
* **Retries**: bad data (``DataError``, a malformed ``date`` param) fails a task at once; anything
  else (Redis or Postgres briefly away, a lost worker, a task past its ``execution_timeout``) is
  retried 3 times after ``REELREC_RETRY_DELAY_S`` seconds (120), doubling each time (at most 15
  min): enough for a Redis restart or a Postgres failover. The variables are read when the file
  is parsed (tests shorten them); nothing else is.
* Each task runs alone from the shell (``python -m spark_jobs.<job> --date D``, ``python -m
  models.<stage> --date D``); its doc (Task -> Details) says what it reads, writes and checks.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pendulum
from airflow.sdk import (
    Asset,
    BaseSensorOperator,
    CronDataIntervalTimetable,
    Param,
    PokeReturnValue,
    TaskGroup,
    dag,
    task,
)

from reelrec.airflow_tasks import call as _call
from reelrec.airflow_tasks import default_args

BRONZE = [
    Asset(f"reelrec://lake/bronze/{name}") for name in ("events", "videos", "users", "creators", "follows")
]
USER_FEATURES = Asset("reelrec://lake/silver/user_features")
VIDEO_FEATURES = Asset("reelrec://lake/silver/video_features")
CREATOR_FEATURES = Asset("reelrec://lake/silver/creator_features")
FEAST_REGISTRY = Asset("reelrec://feast/registry")
ONLINE_FEATURES = Asset("reelrec://feast/online/features")
VIDEO_CONTENT = Asset("reelrec://lake/silver/video_content")
ONLINE_CONTENT = Asset("reelrec://feast/online/video_content")
MODEL = Asset("reelrec://models/two_tower")
RANKER = Asset("reelrec://models/ranker")
GOLD = [
    Asset(f"reelrec://lake/gold/{name}") for name in ("candidates", "user_embeddings", "video_embeddings")
]
ONLINE_OUTPUTS = Asset("reelrec://feast/online/outputs")
RUN_MANIFEST = Asset("reelrec://runs/manifest")
REPORT = Asset("reelrec://runs/report")

Facts = dict[str, Any]

LANDING_POKE = pendulum.duration(seconds=float(os.environ.get("REELREC_LANDING_POKE_S", "300")))
LANDING_TIMEOUT = pendulum.duration(seconds=float(os.environ.get("REELREC_LANDING_TIMEOUT_S", str(6 * 3600))))
# execution_timeout per task, in minutes. Measured on `small` nights (README "Measured": max
# seconds per task over 7 nights, in the comments); the `medium` world has 10x the users, videos
# and events, so about 10x those times, and each limit leaves at least 5x that again (a loaded
# machine, a Spark cluster's start-up). A task past its limit is killed and retried.
TIMEOUT_MIN: dict[str, int] = {
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
    "report": 10,  # plots over every night so far; never fails the night (see the DAG doc)
}


def _limit(task_id: str) -> Any:
    return pendulum.duration(minutes=TIMEOUT_MIN[task_id])


def _night(context: Any = None) -> str:
    """D of the running night from its context (``date`` param, else logical date); bad: fail at once."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from reelrec.runs import resolve_run_date

    context = context or get_current_context()
    try:
        return resolve_run_date(context["params"], context.get("logical_date"))
    except ValueError as err:
        raise AirflowFailException(str(err)) from err


class LandingSensor(BaseSensorOperator):
    """Wait for (scheduled nights) or check once (manual runs) D's landing drops' ``_SUCCESS``.

    The rules live in :mod:`reelrec.landing` (``missing_drops``, ``waits_for_drops``); this class
    only turns them into Airflow's sensor outcomes. Its XCom is ``check_drops``' facts; D is
    :func:`_night`'s unless ``date`` pins it."""

    template_fields = ("date",)

    def __init__(self, *, date: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.date = date

    def poke(self, context: Any) -> PokeReturnValue:
        from airflow.sdk.exceptions import AirflowFailException

        from reelrec.landing import format_missing, waits_for_drops

        date = self.date or _night(context)
        missing = _call("reelrec.landing:missing_drops", date)
        if not missing:
            return PokeReturnValue(is_done=True, xcom_value=_call("reelrec.landing:check_drops", date))
        if not waits_for_drops(context["dag_run"].run_type, context["params"]):
            raise AirflowFailException(
                f"not waiting (manual run of a past date): {format_missing(date, missing)}"
            )
        self.log.info("waiting: %s", format_missing(date, missing))
        return PokeReturnValue(is_done=False)

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowSensorTimeout

        from reelrec.landing import format_missing

        try:
            return super().execute(context)
        except AirflowSensorTimeout as err:
            date = self.date or _night(context)
            missing = _call("reelrec.landing:missing_drops", date)
            raise AirflowSensorTimeout(
                f"gave up waiting after {self.timeout:.0f} s: {format_missing(date, missing)}"
            ) from err


# A task's docstring is its doc in the UI (Task -> Details): what it reads, writes and checks.
@task(outlets=BRONZE[:1], execution_timeout=_limit("ingest_events"))
def ingest_events() -> Facts:
    """Land D's app events into bronze.

    **Reads** `landing/events/dt=D/*.jsonl[.gz]`. **Writes** `bronze.events` (dt=D); rows that
    break the event contract go to `bronze.quarantine` with their reason. **Checks** files (gzip,
    extension, empty drop), the event contract, dedup by `event_id`."""
    return _call("spark_jobs.ingest_events:main", _night())


@task(outlets=BRONZE[1:], execution_timeout=_limit("ingest_catalogs"))
def ingest_catalogs() -> Facts:
    """Land D's catalog snapshots and new follows into bronze.

    **Reads** `landing/{videos,users,creators,follows}/dt=D/*.parquet`. **Writes** `bronze.videos`,
    `users`, `creators`, `follows` (dt=D); bad rows to `bronze.quarantine`. **Checks** each feed's
    rules (casts, required fields, keys). Shell: `python -m spark_jobs.ingest_catalogs --date D`."""
    return _call("spark_jobs.ingest_catalogs:main", _night())


@task(execution_timeout=_limit("validate_bronze"))
def validate_bronze() -> Facts:
    """Great Expectations suite "bronze" on D's bronze partitions: a violation fails the night here.

    **Reads** bronze dt=D (and dt=D-1 for volume). **Writes** `runs/dt=D/validation/bronze.*.json`.
    **Checks** columns, keys, value rules, volume against the day before."""
    return _call("reelrec.validation:gate", "bronze", _night())


@task(outlets=[USER_FEATURES], execution_timeout=_limit("user_features"))
def user_features() -> Facts:
    """Per-user activity as of the end of D (1/7/28-day windows).

    **Reads** `bronze.events` dt D-27..D, `bronze.videos` of D. **Writes** `silver.user_features`
    (dt=D). Shell: `python -m spark_jobs.user_features --date D`."""
    return _call("spark_jobs.user_features:main", _night())


@task(outlets=[VIDEO_FEATURES], execution_timeout=_limit("video_features"))
def video_features() -> Facts:
    """Per-video performance as of the end of D.

    **Reads** `bronze.events` dt D-27..D, `bronze.videos` of D. **Writes** `silver.video_features`
    (dt=D). Shell: `python -m spark_jobs.video_features --date D`."""
    return _call("spark_jobs.video_features:main", _night())


@task(outlets=[CREATOR_FEATURES], execution_timeout=_limit("creator_features"))
def creator_features() -> Facts:
    """Per-creator audience and output as of the end of D.

    **Reads** `bronze.creators`, `videos` (D), `follows` (dt <= D), `events` (D-6..D). **Writes**
    `silver.creator_features` (dt=D). Shell: `python -m spark_jobs.creator_features --date D`."""
    return _call("spark_jobs.creator_features:main", _night())


@task(execution_timeout=_limit("validate_features"))
def validate_features() -> Facts:
    """Great Expectations suite "features" on D's silver partitions.

    **Reads** silver dt=D. **Writes** `runs/dt=D/validation/features.*.json`. **Checks** columns,
    keys, ranges, windows that never shrink, volume against the day before."""
    return _call("reelrec.validation:gate", "features", _night())


@task(outlets=[FEAST_REGISTRY], execution_timeout=_limit("feast_apply"))
def feast_apply() -> Facts:
    """Register the Feast repository (entities, sources, feature views, services); no date.

    **Reads** `feature_repo/`. **Writes** the Feast registry (`feast/`, or SQL in production).
    Shell: `python -m feature_repo.registry`."""
    return _call("feature_repo.registry:apply")


@task(outlets=[ONLINE_FEATURES], execution_timeout=_limit("feast_materialize"))
def feast_materialize() -> Facts:
    """Materialize D's validated features into the online store (never rolls it back).

    **Reads** `silver.*_features` dt=D. **Writes** the Feast online store (SQLite or Redis).
    Shell: `python -m feature_repo.materialize --date D`."""
    return _call("feature_repo.materialize:materialize", _night())


@task(outlets=[VIDEO_CONTENT], execution_timeout=_limit("content_embeddings"))
def content_embeddings() -> Facts:
    """Encode caption + hashtags of the videos first seen on D with all-MiniLM-L6-v2.

    **Reads** `bronze.videos` of D, ids in `silver.video_content`. **Writes** `silver.video_content`
    (dt=D). Shell: `python -m models.content --date D`."""
    return _call("models.content:main", _night())


@task(outlets=[ONLINE_CONTENT], execution_timeout=_limit("publish_content"))
def publish_content() -> Facts:
    """Materialize the content embeddings written on D into the online store.

    **Reads** `silver.video_content` dt=D. **Writes** the Feast online store (content view)."""
    return _call("models.publish:publish_content", _night())


@task(execution_timeout=_limit("training_set"))
def training_set() -> Facts:
    """Label the impressions of the nights before D; join features point-in-time through Feast.

    **Reads** `bronze.events` before D, the Feast offline store. **Writes** the training set under
    `models/`. Skipped (with the model plane) when no night before D exists."""
    return _call("models.training_set:main", _night())


@task(outlets=[MODEL], execution_timeout=_limit("train"))
def train() -> Facts:
    """Train the two-tower retrieval model on the nights before D.

    **Reads** the training set. **Writes** a versioned model folder with `training.json` (losses,
    input Delta versions). Shell: `python -m models.two_tower.train --date D`."""
    return _call("models.two_tower.train:main", _night())


@task(outlets=[RANKER], execution_timeout=_limit("train_ranker"))
def train_ranker() -> Facts:
    """Train the multi-task ranker (completion, like, share, skip) on the impressions before D.

    **Reads** impressions and features before D. **Writes** a versioned ranker folder with
    `training.json`. Shell: `python -m models.ranker.train --date D`."""
    return _call("models.ranker.train:main", _night())


@task(execution_timeout=_limit("evaluate"))
def evaluate() -> Facts:
    """Every stage on held-out day D: each source, merged, ranker, final list; the serving release.

    **Reads** D's impressions, tonight's models, the serving release. **Writes**
    `runs/dt=D/metrics.json` (and next to the model). Shell: `python -m models.evaluate --date D`."""
    return _call("models.evaluate:main", _night())


@task(execution_timeout=_limit("gate"))
def gate(params: dict[str, Any] | None = None) -> Facts:
    """Promotion gate: publish tonight's release, or hold it and keep the serving one.

    **Reads** `runs/dt=D/metrics.json`. **Writes** `runs/dt=D/gate.json`. **Checks** NDCG@10 of
    tonight's final list against the serving release and the best baseline; the `force_publish`
    param overrides a hold."""
    return _call("models.promotion:gate", _night(), bool((params or {}).get("force_publish")))


@task(outlets=GOLD, execution_timeout=_limit("score"))
def score() -> Facts:
    """Candidates, user/video embeddings and the ANN index of every active user, as of D.

    **Reads** tonight's models, D's features and catalog. **Writes** `gold.candidates`,
    `user_embeddings`, `video_embeddings` (dt=D), the faiss index. Skipped on a held night."""
    return _call("models.score:main", _night())


@task(execution_timeout=_limit("validate_outputs"))
def validate_outputs() -> Facts:
    """Great Expectations suite "outputs" on D's gold partitions.

    **Reads** gold dt=D. **Writes** `runs/dt=D/validation/outputs.*.json`. **Checks** columns,
    keys, list lengths, scores, model_version."""
    return _call("reelrec.validation:gate", "outputs", _night())


@task(outlets=[ONLINE_OUTPUTS], execution_timeout=_limit("publish"))
def publish() -> Facts:
    """Materialize D's validated candidates and embeddings; make the release the serving one.

    **Reads** gold dt=D and the "outputs" reports. **Writes** the Feast online store, the release
    registry. **Checks** the suite passed on exactly the rows in gold now."""
    return _call("models.publish:publish_outputs", _night())


@task(trigger_rule="none_failed", outlets=[RUN_MANIFEST], execution_timeout=_limit("record_run"))
def record_run(ti: Any = None) -> str:
    """Write the run manifest; runs on first and held nights too (trigger rule `none_failed`).

    **Reads** every earlier task's facts from XCom by task id (None: skipped), each table's Delta
    version and dt=D rows. **Writes** `runs/dt=D/manifest.json`."""
    before = sorted(ti.task.get_flat_relative_ids(upstream=True))
    facts = {task_id: ti.xcom_pull(task_ids=task_id) for task_id in before}
    return str(_call("reelrec.runs:record_manifest", _night(), facts))


@task(trigger_rule="none_failed", outlets=[REPORT], execution_timeout=_limit("report"))
def report() -> Facts:
    """The night's HTML report; a plotting problem skips it, never fails the night.

    **Reads** the manifests, metrics and validation results of the nights so far. **Writes**
    `runs/dt=D/report.html`, `runs/index.html`."""
    from airflow.sdk.exceptions import AirflowSkipException

    try:
        return dict(_call("reelrec.report_html:main", _night()))
    except Exception as err:  # noqa: BLE001 -- the night's outputs stand; the report is a view of them
        logging.getLogger(__name__).exception("the report was not built")
        raise AirflowSkipException(f"report not built ({type(err).__name__}: {err}); see the log") from err


@dag(
    dag_id="reelrec_nightly",
    description="One logical date D: raw drops -> features -> models -> candidates in the online store",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["reelrec", "nightly", "data-plane", "model-plane"],
    default_args=default_args(),
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
    # Groups keep the task ids as they are (prefix_group_id=False): logs, manifests and the CLI name
    # tasks by id. Edges are the real order of the night; D comes from each task's context.
    with TaskGroup("data_plane", prefix_group_id=False, tooltip="raw drops -> bronze -> features -> Feast"):
        landing = LandingSensor(
            task_id="check_landing",
            mode="reschedule",
            poke_interval=LANDING_POKE,
            timeout=LANDING_TIMEOUT,
            execution_timeout=_limit("check_landing"),
            doc_md="Wait for D's landing drops. **Reads** `landing/<feed>/dt=D/_SUCCESS` of the five "
            "feeds. **Checks** each drop is complete; names the missing feed and folder. A scheduled "
            "night waits (reschedule mode); a manual run checks once.",
        )
        events, catalogs = ingest_events(), ingest_catalogs()
        landing >> [events, catalogs]
        bronze_ok = validate_bronze()
        [events, catalogs] >> bronze_ok
        users, videos, creators = user_features(), video_features(), creator_features()
        bronze_ok >> [users, videos, creators]
        features_ok = validate_features()
        [users, videos, creators] >> features_ok
        applied = feast_apply()
        features_ok >> applied
        online = feast_materialize()
        applied >> online
    with TaskGroup("model_plane", prefix_group_id=False, tooltip="embeddings, training, evaluation, gate"):
        content = content_embeddings()
        features_ok >> content
        content_online = publish_content()
        # Feast's file registry is rewritten whole by every materialize: its two writers (the features
        # and the content view) take turns, or one may read the other's half-written file.
        [online, content] >> content_online
        examples = training_set()
        [online, content_online] >> examples
        model, ranker = train(), train_ranker()
        examples >> [model, ranker]
        metrics = evaluate()
        [model, ranker] >> metrics
        decision = gate()
        metrics >> decision
        outputs = score()
        decision >> outputs
        outputs_ok = validate_outputs()
        outputs >> outputs_ok
    with TaskGroup("publishing", prefix_group_id=False, tooltip="online store, run manifest, report"):
        # Every task above is upstream of publish, so a failure anywhere reaches the record.
        outputs_ok >> publish() >> record_run() >> report()


reelrec_nightly()
