"""The Spark jobs on a Spark Connect server write exactly what they write with Spark in process."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelrec.settings import Settings
from reelrec.spark_cluster import SparkPorts, connect_url, spark_components
from tests.spark_server import free_port, lake_rows, run_night, running

synthetic = pytest.importorskip("synthetic_world")

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAYS = ("2026-11-01", "2026-11-02")


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An embedded-profile Spark Connect server on a free port; yields its ``sc://`` URL."""
    home = tmp_path_factory.mktemp("connect-home")
    ports = SparkPorts(connect=free_port())
    with running(spark_components(Settings.from_env(home), ports), home / "services"):
        yield connect_url(ports)


def twin_homes(root: Path, days: tuple[str, ...]) -> tuple[Settings, Settings]:
    """Two REELREC_HOMEs holding the same tiny world's landing drops (and nothing else)."""
    local, remote = Settings.from_env(root / "local"), Settings.from_env(root / "remote")
    synthetic.generate(local, preset="tiny", start=days[0], days=len(days))
    shutil.copytree(local.landing, remote.landing)
    return local, remote


def test_a_night_on_connect_equals_the_in_process_night(connect_server: str, tmp_path: Path) -> None:
    local, remote = twin_homes(tmp_path, DAYS)

    in_process = run_night(local.home, DAYS)
    on_connect = run_night(remote.home, DAYS, remote=connect_server)

    # Same facts (rows in/written, quarantine reasons, Delta versions) and the same tables, row for row.
    assert on_connect == in_process
    tables = lake_rows(local)
    assert {"events", "quarantine", "user_features", "video_features", "creator_features"} <= set(tables)
    assert all(tables[name] for name in ("events", "user_features", "video_features", "creator_features"))
    assert lake_rows(remote) == tables
