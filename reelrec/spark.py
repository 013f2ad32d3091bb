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


def get_spark(settings: Settings, app_name: str = "reelrec") -> SparkSession:
    """Return the process's SparkSession, creating it for ``settings.spark_master`` if needed.

    Local mode keeps shuffles small (the nightly partitions are one day of data) and the UI off.
    """
    from pyspark.sql import SparkSession

    # Executors must run the same interpreter (and venv) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # pandas-on-Spark asks for it with pyarrow>=2
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", os.environ.get("REELREC_SHUFFLE_PARTITIONS", "8"))
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.warehouse.dir", str(settings.home / "spark-warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={settings.home / 'derby'}")
    )
    return builder.getOrCreate()


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
