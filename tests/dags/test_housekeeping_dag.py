"""The housekeeping DAG: it parses cheaply, runs after each recorded night (an asset, not a clock),
waits for running nights, and each task hands off to the housekeeping function of its step.

The steps themselves run on tiny nights in tests/test_housekeeping.py; that every ``_call`` names an
existing function with a fitting signature is checked for all DAG files by test_entry_points.py.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from reelrec import housekeeping
from reelrec.airflow_local import DAGS_FOLDER

pytestmark = pytest.mark.airflow

DAG_FILE = Path(DAGS_FOLDER) / "reelrec_housekeeping.py"
STEPS = {
    "wait_for_nights": "reelrec.housekeeping:wait_for_nights",
    "lake": "reelrec.housekeeping:lake_step",
    "models": "reelrec.housekeeping:models_step",
    "online": "reelrec.housekeeping:online_step",
    "airflow_metadata": "reelrec.housekeeping:airflow_step",
    "record": "reelrec.housekeeping:record_steps",
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_dagbag_imports_the_housekeeping_dag(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert {"reelrec_housekeeping", "reelrec_nightly"} <= set(dagbag.dags)


def test_scheduled_by_the_asset_the_nightly_dag_records_each_night(dagbag) -> None:
    dag = dagbag.dags["reelrec_housekeeping"]
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"  # not a cron
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"
    scheduled = {asset.uri for asset in condition.objects}
    nightly = dagbag.dags["reelrec_nightly"]
    produced = {task.task_id: {a.uri for a in task.outlets} for task in nightly.tasks}
    assert scheduled == {"reelrec://runs/manifest"} == produced["record_run"]
    # record_run runs on every recorded night (first, held and published ones).
    assert nightly.get_task("record_run").trigger_rule == "none_failed"


def test_dag_policy_and_graph(dagbag) -> None:
    dag = dagbag.dags["reelrec_housekeeping"]
    assert dag.catchup is False and dag.max_active_runs == 1
    assert {"reelrec", "housekeeping"} <= set(dag.tags)
    assert dag.doc_md and "reelrec housekeep" in dag.doc_md
    for task in dag.tasks:
        assert task.owner == "reelrec" and task.retries == 3, task.task_id
        assert task.execution_timeout is not None and task.execution_timeout <= timedelta(minutes=30)
        assert "**Reads**" in (task.doc_md or "") and "**Writes**" in (task.doc_md or ""), task.task_id
    sensor = dag.get_task("wait_for_nights")
    assert sensor.mode == "reschedule" and sensor.upstream_task_ids == set()
    edges = {(up, task.task_id) for task in dag.tasks for up in task.upstream_task_ids}
    chain = ["wait_for_nights", "lake", "models", "online", "airflow_metadata"]
    assert set(zip(chain, chain[1:], strict=False)) <= edges
    assert dag.get_task("record").upstream_task_ids == {"lake", "models", "online", "airflow_metadata"}
    assert set(dag.task_ids) == set(STEPS)


def test_each_task_calls_its_housekeeping_function() -> None:
    tree = ast.parse(DAG_FILE.read_text())
    calls: dict[str, str] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.ClassDef) or node.name.startswith("_"):
            continue
        task_id = "wait_for_nights" if node.name == "NightsDoneSensor" else node.name  # the sensor's poke
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "_call":
                first = call.args[0]
                assert isinstance(first, ast.Constant)
                calls[task_id] = str(first.value)
    assert calls == STEPS
    for entry in STEPS.values():
        function = getattr(housekeeping, entry.split(":")[1])
        parameters = list(inspect.signature(function).parameters)
        assert "settings" in parameters, entry


def test_parsing_imports_nothing_heavy() -> None:
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('pyspark', 'pandas', 'torch', 'feast', 'deltalake', 'reelrec.housekeeping')"
        " if m in sys.modules]; print('heavy:' + ','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(DAG_FILE)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "heavy:"
