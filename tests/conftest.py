"""Shared fixtures: a throwaway REELREC_HOME per test and one local SparkSession per test session."""

from __future__ import annotations

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
    """One local SparkSession for the whole test session (2 shuffle partitions, UI off)."""
    from reelrec.spark import get_spark

    home = tmp_path_factory.mktemp("spark-home")
    session = get_spark(Settings.from_env(home), app_name="reelrec-tests")
    yield session
    # py4j logs while closing sockets at interpreter exit, after pytest closed its streams.
    logging.getLogger("py4j").setLevel(logging.CRITICAL)
    session.stop()
