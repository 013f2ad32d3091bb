"""Fault-injection points: quiet unless named, firing as often as asked, counted across processes."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys

import pytest

from reelrec import faults
from reelrec.settings import Settings


def test_a_point_does_nothing_without_the_variable(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.point("publish.outputs", settings, date="2026-11-01")
    monkeypatch.setenv(faults.ENV, "")
    faults.point("publish.outputs", settings)
    assert not (settings.home / faults.FOLDER).exists()  # nothing written either


def test_connection_fault_fires_once_then_the_point_is_quiet(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(faults.ENV, "publish.outputs:connection:1")
    faults.point("other.point", settings)  # not named: nothing
    with pytest.raises(ConnectionError, match=r"injected connection fault at publish.outputs\(date=D\)"):
        faults.point("publish.outputs", settings, date="D")
    faults.point("publish.outputs", settings, date="D")  # spent: a retry runs through
    assert faults.fired(settings) == {"publish.outputs:connection:1": 1}
    faults.reset(settings)
    with pytest.raises(ConnectionError, match="firing 1 of 1"):
        faults.point("publish.outputs", settings)


def test_times_kinds_and_context_conditions(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    spec_a = "materialize.view@view=user_daily_embedding:timeout:2"
    spec_b = "ingest.events:connection"
    monkeypatch.setenv(faults.ENV, f"{spec_a}, {spec_b}")
    faults.point("materialize.view", settings, view="user_daily_candidates")  # condition not met
    for number in (1, 2):
        with pytest.raises(TimeoutError, match=f"firing {number} of 2"):
            faults.point("materialize.view", settings, view="user_daily_embedding")
    faults.point("materialize.view", settings, view="user_daily_embedding")
    with pytest.raises(ConnectionError):  # TIMES defaults to 1
        faults.point("ingest.events", settings)
    faults.point("ingest.events", settings)
    assert faults.fired(settings) == {spec_a: 2, spec_b: 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("publish.outputs", "is not POINT"),
        ("publish.outputs:explode", "is not POINT"),
        (":connection", "is not POINT"),
        ("publish.outputs:connection:0", "TIMES must be a positive integer"),
        ("publish.outputs:connection:x", "TIMES must be a positive integer"),
        ("publish.outputs@view:connection", "condition 'view' is not KEY=VALUE"),
    ],
)
def test_malformed_specs_are_refused_naming_the_spec(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        faults.parse(text)


def _fire_once(home: str, spec: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import os

    os.environ[faults.ENV] = spec
    try:
        faults.point("publish.outputs", Settings.from_env(home))
        queue.put("quiet")
    except ConnectionError:
        queue.put("fired")


def test_the_count_is_shared_by_processes(settings: Settings) -> None:
    # Eight processes race through the point; the fault fires exactly twice in all.
    spec = "publish.outputs:connection:2"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_fire_once, args=(str(settings.home), spec, queue)) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    outcomes = sorted(queue.get(timeout=10) for _ in workers)
    assert outcomes == ["fired"] * 2 + ["quiet"] * 6


def test_kill_fault_kills_the_process_once(settings: Settings) -> None:
    code = (
        "import sys; from reelrec import faults; from reelrec.settings import Settings;"
        "faults.point('train.epoch', Settings.from_env(sys.argv[1]), epoch=3); print('survived')"
    )
    env = {faults.ENV: "train.epoch@epoch=3:kill"}
    run = [sys.executable, "-c", code, str(settings.home)]
    first = subprocess.run(run, env={**_base_env(), **env}, capture_output=True, text=True, timeout=60)
    assert first.returncode == -signal.SIGKILL and "survived" not in first.stdout
    second = subprocess.run(run, env={**_base_env(), **env}, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and second.stdout.strip() == "survived"


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != faults.ENV}


def test_a_corrupt_fault_raises_nothing_and_tells_the_caller_to_corrupt(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(faults.ENV, "train.labels@date=2026-11-05:corrupt:2")
    assert faults.point("train.labels", settings, date="2026-11-04") is False  # another night
    assert faults.point("train.labels", settings, date="2026-11-05", model="two_tower") is True
    assert faults.point("train.labels", settings, date="2026-11-05", model="ranker") is True
    assert faults.point("train.labels", settings, date="2026-11-05", model="ranker") is False  # spent


_WRITE = """
import sys
import pyarrow as pa
from reelrec import lake
from reelrec.catalog import Table
from reelrec.settings import Settings
schema = pa.schema([("x", pa.int64()), ("dt", pa.string())])
table = Table(name="t", layer="bronze", schema=schema, key=("x",))
rows = pa.table({"x": [int(sys.argv[2])], "dt": ["2026-11-01"]})
print(lake.write_partition(table, Settings.from_env(sys.argv[1]), rows, "2026-11-01"))
"""


@pytest.mark.parametrize("phase", ["before", "after"])
def test_a_kill_at_the_delta_commit_leaves_the_old_or_the_new_partition(
    settings: Settings, phase: str
) -> None:
    import pyarrow as pa

    from reelrec import lake
    from reelrec.catalog import Table

    table = Table(
        name="t", layer="bronze", schema=pa.schema([("x", pa.int64()), ("dt", pa.string())]), key=("x",)
    )

    def write(value: int, fault: str | None) -> subprocess.CompletedProcess[str]:
        env = {**_base_env(), **({faults.ENV: fault} if fault else {})}
        run = [sys.executable, "-c", _WRITE, str(settings.home), str(value)]
        return subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)

    assert write(1, None).stdout.strip() == "0"
    killed = write(2, f"lake.commit@table=t@phase={phase}:kill")
    assert killed.returncode == -signal.SIGKILL and killed.stdout == ""
    # before: the old partition, untouched; after: the new one, committed (the job died before it said so)
    assert lake.read(table, settings, columns=["x"]).column(0).to_pylist() == [1 if phase == "before" else 2]
    assert lake.version(table, settings) == (0 if phase == "before" else 1)
    assert write(2, f"lake.commit@table=t@phase={phase}:kill").returncode == 0  # the rerun: fault spent
    assert lake.read(table, settings, columns=["x"]).column(0).to_pylist() == [2]
