"""The Spark session and Delta snapshot reads/writes for Spark jobs.

Spark reads a Delta snapshot through the file list in the Delta log (delta-rs), never a plain
folder read; it writes by handing Arrow batches to delta-rs (:func:`reelrec.lake.write_partition`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from reelrec import lake
from reelrec.catalog import Table
from reelrec.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def session_conf(settings: Settings) -> dict[str, str]:
    """SQL settings every reelrec session runs with, in process or on a Connect server.

    The jobs' results depend on them (UTC day bounds, shuffle partitions), so the Connect server
    starts with them as defaults and :func:`get_spark` sets them on each session.
    """
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": os.environ.get("REELREC_SHUFFLE_PARTITIONS", "8"),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


def driver_conf(settings: Settings) -> dict[str, str]:
    """Settings of a reelrec Spark driver (in process or a Connect server): UI off, state under home.

    The driver listens on 127.0.0.1 only (executors of the local standalone cluster reach it there).
    """
    return {
        **session_conf(settings),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.warehouse.dir": str(settings.home / "spark-warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={settings.home / 'derby'}",
    }


def get_spark(settings: Settings, app_name: str = "reelrec") -> SparkSession:
    """Return the process's SparkSession for ``settings``, creating it if needed.

    With ``settings.spark_remote`` (``sc://host:port``) a Spark Connect session on that server: no JVM
    in this process, and the server's Spark (local, or an application on a cluster) runs the work.
    Otherwise an in-process session for ``settings.spark_master``. Both run with the same SQL
    settings (:func:`session_conf`: UTC, small shuffles), so a job's results do not depend on where
    it runs. A process holds one kind of session: classic and Connect sessions cannot share a
    Python process (pyspark routes every column function by the mode).

    Local mode keeps shuffles small (the nightly partitions are one day of data) and the UI off.
    """
    # Executors must run the same interpreter (and venv) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # pandas-on-Spark asks for it with pyarrow>=2
    if settings.spark_remote:
        return _connect(settings)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name).master(settings.spark_master)
    for key, value in driver_conf(settings).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# Connect sessions by server URL: a job reuses its session without a round trip to the server.
_CONNECT_SESSIONS: dict[str, SparkSession] = {}


def _connect(settings: Settings) -> SparkSession:
    """The process's Spark Connect session on ``settings.spark_remote`` (created with the session conf)."""
    from pyspark.sql import SparkSession

    session = _CONNECT_SESSIONS.get(settings.spark_remote)
    if session is not None and not session.is_stopped:  # type: ignore[attr-defined]
        return session
    builder = SparkSession.builder.remote(settings.spark_remote).config(map=dict(session_conf(settings)))
    session = builder.getOrCreate()
    _CONNECT_SESSIONS[settings.spark_remote] = session
    return session


def read_delta(
    spark: SparkSession, table: Table, settings: Settings, dates: Iterable[str] | None = None
) -> DataFrame:
    """Read the current Delta snapshot of ``table`` (only ``dates`` partitions when given).

    Returns a DataFrame in the catalog schema, including the ``dt`` partition column; an empty one
    (with that schema) when the table or the asked partitions hold no files.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    spark_schema = from_arrow_schema(table.schema)
    if not lake.exists(table, settings):
        return spark.createDataFrame([], spark_schema)
    files = lake.snapshot_files(table, settings, dates)
    if not files:
        return spark.createDataFrame([], spark_schema)
    df = spark.read.option("basePath", table.uri(settings)).parquet(*files)
    return df.select(*[F.col(f.name).cast(f.dataType) for f in spark_schema.fields])


def write_delta(
    df: DataFrame,
    table: Table,
    settings: Settings,
    date: str,
    extra_partition: dict[str, str] | None = None,
) -> int:
    """Replace ``date``'s partition of ``table`` with ``df`` (one Delta commit via delta-rs).

    Returns the table's new Delta version.
    """
    data = df.select(*table.columns).toArrow()
    return lake.write_partition(table, settings, data, date, extra_partition=extra_partition)
