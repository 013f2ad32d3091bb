"""Shared fixtures: a throwaway REELREC_HOME per test and one local SparkSession per test session."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("REELREC_SHUFFLE_PARTITIONS", "2")
# Airflow reads its config on import: keep it (and its SQLite DB) out of ~/airflow during tests.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="reelrec-tests-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}")

from reelrec.settings import Settings  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings rooted in a fresh, empty REELREC_HOME for this test."""
    home = tmp_path / "reelrec-home"
    monkeypatch.setenv("REELREC_HOME", str(home))
    return Settings.from_env()


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One SparkSession for the whole test session (2 shuffle partitions, UI off).

    In process by default. With ``REELREC_TEST_SPARK_REMOTE`` set, a Spark Connect session instead:
    on the server at that ``sc://`` URL, or (any other value, e.g. ``1``) on a Connect server this
    fixture starts on a free port and stops at the end. ``REELREC_SPARK_REMOTE`` then points every
    ``Settings.from_env()`` of the session, so the jobs' own ``get_spark`` connects there too.
    """
    from reelrec.spark import get_spark

    home = tmp_path_factory.mktemp("spark-home")
    remote = os.environ.get("REELREC_TEST_SPARK_REMOTE", "")
    with contextlib.ExitStack() as stack:
        if remote:
            url = remote if remote.startswith("sc://") else stack.enter_context(_connect_server(home))
            stack.enter_context(_env("REELREC_SPARK_REMOTE", url))
        session = get_spark(Settings.from_env(home), app_name="reelrec-tests")
        yield session
        # py4j logs while closing sockets at interpreter exit, after pytest closed its streams.
        logging.getLogger("py4j").setLevel(logging.CRITICAL)
        session.stop()


@contextlib.contextmanager
def _connect_server(home: Path) -> Iterator[str]:
    """A Spark Connect server (embedded profile) on a free port; yields its ``sc://`` URL."""
    from reelrec.spark_cluster import SparkPorts, connect_url, spark_components
    from tests.spark_server import free_port, running

    ports = SparkPorts(connect=free_port())
    with running(spark_components(Settings.from_env(home), ports), home / "services"):
        yield connect_url(ports)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
