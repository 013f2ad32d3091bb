"""Tiny hand-written inputs for the Spark job tests: catalog rows, landing drops, expected frames.

Rows are plain dicts turned into Arrow tables in the catalog schema, so one definition feeds both
the pure transforms (``spark.createDataFrame(arrow_table)``) and the lake (``lake.write_partition``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from reelrec import lake
from reelrec.catalog import FRAME_EMBEDDING_DIM, Table
from reelrec.landing import SUCCESS_MARKER, drop_dir
from reelrec.settings import Settings

D = "2026-11-10"  # the logical date most tests run for


def ts(text: str) -> datetime:
    """``"2026-11-10T12:00:00"`` -> an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def event(
    event_id: str,
    event_type: str,
    user_id: str,
    video_id: str,
    at: str,
    watch_ms: int | None = None,
    surface: str = "spotlight",
    position: int = 0,
) -> dict[str, Any]:
    """One bronze.events row; ``dt`` is the UTC date of ``at``."""
    return {
        "event_id": event_id,
        "event_type": event_type,
        "user_id": user_id,
        "video_id": video_id,
        "event_ts": ts(at),
        "watch_ms": watch_ms,
        "surface": surface,
        "position": position,
        "dt": at[:10],
    }


def video(
    video_id: str, creator_id: str, uploaded: str, duration_ms: int, dt: str = D, **extra: Any
) -> dict[str, Any]:
    """One bronze.videos snapshot row with a valid embedding."""
    return {
        "video_id": video_id,
        "creator_id": creator_id,
        "upload_ts": ts(uploaded),
        "duration_ms": duration_ms,
        "caption": f"caption of {video_id}",
        "hashtags": ["#tiny"],
        "frame_embedding": [0.25] * FRAME_EMBEDDING_DIM,
        "dt": dt,
        **extra,
    }


def arrow(table: Table, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows as an Arrow table in ``table``'s catalog schema."""
    return pa.Table.from_pylist(list(rows), schema=table.schema)


def frame(spark: SparkSession, table: Table, rows: Iterable[Mapping[str, Any]]) -> DataFrame:
    """Rows as a Spark DataFrame in ``table``'s catalog schema (also right for expected outputs)."""
    data = arrow(table, rows)
    if data.num_rows == 0:
        return spark.createDataFrame([], from_arrow_schema(table.schema))
    return spark.createDataFrame(data)


def write_bronze(settings: Settings, table: Table, rows: list[dict[str, Any]]) -> None:
    """Write rows into the lake, one partition commit per ``dt`` they carry."""
    for date in sorted({row["dt"] for row in rows}):
        lake.write_partition(table, settings, arrow(table, [r for r in rows if r["dt"] == date]), date)


def write_event_drop(
    settings: Settings, date: str, files: Mapping[str, list[str]], success: bool = True
) -> Path:
    """Write ``landing/events/dt=date/``: file name -> lines (``.gz`` names are gzip-compressed)."""
    folder = drop_dir("events", date, settings)
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        text = "".join(line + "\n" for line in lines)
        if name.endswith(".gz"):
            (folder / name).write_bytes(gzip.compress(text.encode()))
        else:
            (folder / name).write_text(text)
    if success:
        (folder / SUCCESS_MARKER).touch()
    return folder


def write_parquet_drop(
    settings: Settings, feed: str, date: str, data: pa.Table, success: bool = True
) -> Path:
    """Write ``landing/<feed>/dt=date/<feed>.parquet`` (and ``_SUCCESS`` unless told not to)."""
    folder = drop_dir(feed, date, settings)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, folder / f"{feed}.parquet")
    if success:
        (folder / SUCCESS_MARKER).touch()
    return folder


def event_line(**fields: Any) -> str:
    """One landing JSONL line for an event; ``fields`` override a valid view on ``D``."""
    record: dict[str, Any] = {
        "event_id": "e-1",
        "event_type": "view",
        "user_id": "u000001",
        "video_id": "v0000001",
        "event_ts": f"{D}T10:00:00.000Z",
        "watch_ms": 4000,
        "surface": "spotlight",
        "position": 3,
    }
    record.update(fields)
    return json.dumps({key: value for key, value in record.items() if value is not _ABSENT})


_ABSENT = object()
ABSENT: Any = _ABSENT  # pass as a field value to leave the field out of the line
