"""The nightly DAG: it parses cleanly and cheaply, follows house policy, and has the expected graph.

The graph holds only real dependencies (27 edges for 22 tasks; 65 when a ``run_date`` task fed D to
every task and every task fed ``record_run``): each task reads D from its own run context and
``record_run`` pulls the facts of every task before it from XCom.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reelrec.airflow_local import DAGS_FOLDER
from reelrec.runs import resolve_run_date

pytestmark = pytest.mark.airflow

# The order of the night: each task and the tasks that must finish before it.
PIPELINE_EDGES = {
    ("check_landing", "ingest_events"),
    ("check_landing", "ingest_catalogs"),
    ("ingest_events", "validate_bronze"),
    ("ingest_catalogs", "validate_bronze"),
    ("validate_bronze", "user_features"),
    ("validate_bronze", "video_features"),
    ("validate_bronze", "creator_features"),
    ("user_features", "validate_features"),
    ("video_features", "validate_features"),
    ("creator_features", "validate_features"),
    ("validate_features", "feast_apply"),
    ("feast_apply", "feast_materialize"),
    ("validate_features", "content_embeddings"),
    ("content_embeddings", "publish_content"),
    ("feast_materialize", "publish_content"),
    ("feast_materialize", "training_set"),
    ("publish_content", "training_set"),
    ("training_set", "train"),
    ("training_set", "train_ranker"),
    ("train", "evaluate"),
    ("train_ranker", "evaluate"),
    ("evaluate", "gate"),
    ("gate", "score"),
    ("score", "validate_outputs"),
    ("validate_outputs", "publish"),
    ("publish", "record_run"),
    ("record_run", "report"),
}
# Every task whose facts the run manifest records (record_run pulls their XCom results by task id).
RECORDED = (
    "check_landing",
    "ingest_events",
    "ingest_catalogs",
    "validate_bronze",
    "user_features",
    "video_features",
    "creator_features",
    "validate_features",
    "feast_apply",
    "feast_materialize",
    "content_embeddings",
    "publish_content",
    "training_set",
    "train",
    "train_ranker",
    "evaluate",
    "gate",
    "score",
    "validate_outputs",
    "publish",
)
GROUPS = {
    "data_plane": {
        "check_landing",
        "ingest_events",
        "ingest_catalogs",
        "validate_bronze",
        "user_features",
        "video_features",
        "creator_features",
        "validate_features",
        "feast_apply",
        "feast_materialize",
    },
    "model_plane": {
        "content_embeddings",
        "publish_content",
        "training_set",
        "train",
        "train_ranker",
        "evaluate",
        "gate",
        "score",
        "validate_outputs",
    },
    "publishing": {"publish", "record_run", "report"},
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_dagbag_imports_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "reelrec_nightly" in dagbag.dags


def test_dag_policy(dagbag) -> None:
    dag = dagbag.dags["reelrec_nightly"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1  # nights run in order: each trains on the ones before
    assert {"reelrec", "nightly"} <= set(dag.tags)
    assert dag.doc_md and "logical date" in dag.doc_md
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.start_date is not None and dag.start_date.utcoffset() == timedelta(0)
    assert "date" in dag.params  # a manual run may pin D
    assert "wait_for_data" in dag.params  # ... and choose whether it waits for late drops
    for task in dag.tasks:
        assert task.owner == "reelrec", task.task_id
        # Transient faults are retried with a growing delay; bad data is not (see test_call_*).
        assert task.retries == 3, task.task_id
        assert task.retry_delay == timedelta(minutes=2), task.task_id
        assert task.retry_exponential_backoff == 2.0 and task.max_retry_delay == timedelta(minutes=15)
        # Every task is bounded: at least 5 minutes, at most 30 (the medium world fits, see the DAG).
        assert task.execution_timeout is not None, task.task_id
        assert timedelta(minutes=5) <= task.execution_timeout <= timedelta(minutes=30), task.task_id


def test_check_landing_waits_in_reschedule_mode(dagbag) -> None:
    sensor = dagbag.dags["reelrec_nightly"].get_task("check_landing")
    assert sensor.mode == "reschedule"  # frees its worker slot between pokes
    assert sensor.poke_interval == 300 and sensor.timeout == 6 * 3600
    assert sensor.upstream_task_ids == set()  # the first task: D comes from the run's context
    assert sensor.date is None


def test_task_graph(dagbag) -> None:
    dag = dagbag.dags["reelrec_nightly"]
    edges = {(up, task.task_id) for task in dag.tasks for up in task.upstream_task_ids}
    missing, extra = PIPELINE_EDGES - edges, edges - PIPELINE_EDGES
    # catalogs >> events (referential checks of events against the catalogs) is a real dependency too.
    extra -= {("ingest_catalogs", "ingest_events")}
    assert not missing and not extra, f"missing edges: {sorted(missing)}; unexpected edges: {sorted(extra)}"
    assert set(dag.task_ids) == {"record_run", "report", *RECORDED}
    # Nothing reaches the online store without passing both validation gates.
    materialize = dag.get_task("feast_materialize")
    upstream = materialize.get_flat_relative_ids(upstream=True)
    assert {"validate_bronze", "validate_features"} <= upstream
    # Model outputs reach the online store only after all three suites.
    publish = dag.get_task("publish").get_flat_relative_ids(upstream=True)
    assert {"validate_bronze", "validate_features", "validate_outputs", "evaluate"} <= publish
    # The run record (and the report) is written even when the model plane is skipped (first night,
    # held night); every recorded task is upstream of it, so a failure anywhere stops it.
    assert dag.get_task("record_run").trigger_rule == "none_failed"
    assert dag.get_task("report").trigger_rule == "none_failed"
    assert dag.get_task("record_run").get_flat_relative_ids(upstream=True) == set(RECORDED)
    assert dag.get_task("report").upstream_task_ids == {"record_run"}
    assert [task.task_id for task in dag.leaves] == ["report"]  # the run's state is the whole night's


def test_the_dag_reads_in_the_ui(dagbag) -> None:
    """Task groups per plane (task ids unprefixed), a doc on every task, the assets each writes."""
    dag = dagbag.dags["reelrec_nightly"]
    groups = dag.task_group.children
    assert set(groups) == set(GROUPS)
    for group_id, task_ids in GROUPS.items():
        assert set(groups[group_id].children) == task_ids, group_id
    for task in dag.tasks:
        doc = task.doc_md or ""
        assert "**Reads**" in doc and ("**Writes**" in doc or "**Checks**" in doc), task.task_id
    outlets = {task.task_id: {a.uri for a in task.outlets} for task in dag.tasks}
    assert outlets["ingest_events"] == {"reelrec://lake/bronze/events"}
    assert outlets["publish"] == {"reelrec://feast/online/outputs"}
    assert outlets["score"] == {
        f"reelrec://lake/gold/{t}" for t in ("candidates", "user_embeddings", "video_embeddings")
    }
    assert outlets["record_run"] == {"reelrec://runs/manifest"} and outlets["report"] == {
        "reelrec://runs/report"
    }
    assert dag.description and "Triggering a past night from the UI" in (dag.doc_md or "")


def test_parsing_imports_nothing_heavy() -> None:
    """Parsing the DAG file must not import Spark, pandas, torch, Feast or GX (scheduler parse cost)."""
    dag_file = Path(DAGS_FOLDER) / "reelrec_nightly.py"
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('pyspark', 'pandas', 'torch', 'feast', 'great_expectations', 'deltalake',"
        " 'sentence_transformers', 'faiss')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(dag_file)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_run_date_comes_from_the_run_not_the_clock() -> None:
    logical = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)
    assert resolve_run_date({}, logical) == "2026-11-03"
    assert resolve_run_date({"date": "2026-11-01"}, logical) == "2026-11-01"
    assert resolve_run_date(None, datetime(2026, 11, 3, 23, 30)) == "2026-11-03"
    with pytest.raises(ValueError, match="no logical date"):
        resolve_run_date({"date": None}, None)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        resolve_run_date({"date": "03/11/2026"}, logical)


def test_each_task_reads_d_from_its_run_context() -> None:
    """``_night`` (what every task calls): the ``date`` param, else the logical date; a bad param
    fails the task at once instead of being retried."""
    from airflow.sdk.exceptions import AirflowFailException

    spec = importlib.util.spec_from_file_location("nightly_dag", Path(DAGS_FOLDER) / "reelrec_nightly.py")
    assert spec and spec.loader
    nightly = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nightly)
    logical = datetime(2026, 11, 3, tzinfo=UTC)
    assert nightly._night({"params": {"date": None}, "logical_date": logical}) == "2026-11-03"
    assert nightly._night({"params": {"date": "2026-11-01"}, "logical_date": None}) == "2026-11-01"
    with pytest.raises(AirflowFailException, match="param 'date'"):
        nightly._night({"params": {"date": "03/11/2026"}, "logical_date": logical})


def test_local_airflow_env_points_at_this_project(settings) -> None:
    from reelrec.airflow_local import airflow_env

    env = airflow_env(settings)
    assert env["AIRFLOW_HOME"] == str(settings.airflow_home)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(DAGS_FOLDER)
    # `airflow standalone` spawns `airflow ...` from PATH: this venv's must come first.
    first = Path(env["PATH"].split(":")[0])
    assert (first / "airflow").exists()
    # Unpausing the DAG (the UI's trigger form ticks "Unpause on trigger") starts no schedule: the
    # scheduler creates no cron runs, `reelrec run` and the UI's Trigger create the nights.
    assert env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"
