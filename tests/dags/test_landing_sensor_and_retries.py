"""The DAG's failure rules without a database: bad data fails at once, transient faults are retried,
a scheduled night waits for its drops and a manual run does not (the sensor's decisions, one poke)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from reelrec import faults
from reelrec.airflow_local import DAGS_FOLDER
from reelrec.landing import FEEDS, SUCCESS_MARKER, drop_dir
from reelrec.settings import Settings

pytestmark = pytest.mark.airflow

D = "2026-11-01"


@pytest.fixture(scope="module")
def nightly() -> ModuleType:
    """The DAG file as a module (its ``_call`` and ``LandingSensor``)."""
    spec = importlib.util.spec_from_file_location(
        "reelrec_nightly_dag", Path(DAGS_FOLDER) / "reelrec_nightly.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def land(settings: Settings, *, without_success: tuple[str, ...] = ()) -> None:
    """A complete drop of every feed for D, except ``without_success``'s markers."""
    for feed in FEEDS:
        folder = drop_dir(feed, D, settings)
        folder.mkdir(parents=True)
        (folder / ("part-0.jsonl" if feed == "events" else "part-0.parquet")).write_bytes(b"x")
        if feed not in without_success:
            (folder / SUCCESS_MARKER).touch()


def context(run_type: str, **params: Any) -> dict[str, Any]:
    return {"dag_run": SimpleNamespace(run_type=run_type), "params": {"date": None, **params}}


# ---------------------------------------------------------------- _call: what is retried
def test_call_fails_bad_data_at_once(nightly: ModuleType, settings: Settings) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(
        AirflowFailException, match="IncompleteDropError: landing drop events for dt=2026-11-01"
    ):
        nightly._call("reelrec.landing:check_drops", D)  # DataError: no retry can fix it


def test_call_lets_transient_faults_through_to_the_retries(
    nightly: ModuleType, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(faults.ENV, "test.point:connection:1")
    with pytest.raises(ConnectionError, match="injected connection fault"):  # a plain error: retried
        nightly._call("reelrec.faults:point", "test.point")
    nightly._call("reelrec.faults:point", "test.point")  # the retry runs through


# ---------------------------------------------------------------- check_landing
def sensor(nightly: ModuleType, **kwargs: Any) -> Any:
    return nightly.LandingSensor(task_id="check_landing", date=D, **kwargs)


def test_a_complete_landing_passes_with_the_drops_facts(nightly: ModuleType, settings: Settings) -> None:
    land(settings)
    done = sensor(nightly).poke(context("manual"))
    assert done.is_done and set(done.xcom_value) == set(FEEDS)
    assert done.xcom_value["events"] == {"files": 1, "bytes": 1}


def test_a_scheduled_night_waits_for_a_late_drop(nightly: ModuleType, settings: Settings) -> None:
    land(settings, without_success=("events",))
    assert not sensor(nightly).poke(context("scheduled")).is_done
    assert not sensor(nightly).poke(context("manual", wait_for_data=True)).is_done  # asked to wait
    (drop_dir("events", D, settings) / SUCCESS_MARKER).touch()
    assert sensor(nightly).poke(context("scheduled")).is_done


@pytest.mark.parametrize(
    "ctx",
    [
        context("manual"),
        context("backfill"),
        context("scheduled", date=D),
        context("scheduled", wait_for_data=False),
    ],
    ids=["manual", "backfill", "date-param", "wait_for_data=false"],
)
def test_a_run_of_a_past_date_fails_at_once_naming_the_feed(
    nightly: ModuleType, settings: Settings, ctx: dict[str, Any]
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    land(settings, without_success=("events", "follows"))
    with pytest.raises(AirflowFailException) as failed:
        sensor(nightly).poke(ctx)
    message = str(failed.value)
    assert message.startswith(
        "not waiting (manual run of a past date): 2 of 5 landing drops for dt=2026-11-01"
    )
    assert "(events, follows)" in message
    assert f"{drop_dir('events', D, settings)} has no _SUCCESS marker" in message


def test_the_wait_ends_with_a_message_naming_the_missing_feed(
    nightly: ModuleType, settings: Settings
) -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    land(settings, without_success=("videos",))
    waiting = sensor(nightly, mode="poke", poke_interval=0, timeout=0)
    with pytest.raises(AirflowSensorTimeout) as timed_out:
        waiting.execute(context("scheduled"))
    message = str(timed_out.value)
    assert message.startswith(
        "gave up waiting after 0 s: 1 of 5 landing drops for dt=2026-11-01 not complete (videos)"
    )
    assert str(drop_dir("videos", D, settings)) in message
