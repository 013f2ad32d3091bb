"""Reading a generated world back the way an ingest job would: straight from the landed files.

Shared by the synthetic world's tests; a line's defect is judged by the landing contract
(``docs/data-contract.md``), independently of how the generator made it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reelrec.catalog import EVENT_TYPES
from reelrec.settings import Settings

START = "2026-11-01"
DAYS = 3
DATES = [str(dt.date(2026, 11, 1) + dt.timedelta(days=i)) for i in range(DAYS)]
TS_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

World = tuple[Settings, dict[str, Any]]  # a generated home and generate()'s summary
CheckedLines = dict[str, list[tuple[str, str | None]]]  # date -> every landed line with its defect
Events = dict[str, list[dict[str, Any]]]  # date -> good events, deduplicated, in time order


def home(tmp_path_factory: pytest.TempPathFactory, name: str) -> Settings:
    return Settings.from_env(tmp_path_factory.mktemp(name) / "home")


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def raw_lines(settings: Settings, date: str) -> list[str]:
    folder = settings.landing / "events" / f"dt={date}"
    lines: list[str] = []
    for part in sorted(folder.glob("*.jsonl.gz")):
        lines.extend(gzip.decompress(part.read_bytes()).decode().splitlines())
    return lines


def parse_ts(value: Any) -> dt.datetime:
    if not isinstance(value, str) or not TS_FORMAT.match(value):
        raise ValueError(value)
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def defect(line: str, date: str) -> str | None:
    """The contract breach of one landed event line (a kind of CORRUPTION_KINDS), or None."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return "malformed_json"
    if not isinstance(record, dict):
        return "malformed_json"
    if not isinstance(record.get("user_id"), str):
        return "missing_user_id"
    if record.get("event_type") not in EVENT_TYPES:
        return "unknown_event_type"
    try:
        ts = parse_ts(record.get("event_ts"))
    except ValueError:
        return "unparsable_event_ts"
    if str(ts.date()) != date:
        return "event_ts_other_day"
    watch = record.get("watch_ms")
    if watch is not None and watch < 0:
        return "negative_watch_ms"
    return None


def checked_lines(settings: Settings, date: str) -> list[tuple[str, str | None]]:
    """Every landed event line of a date with its defect (None for a good line)."""
    return [(line, defect(line, date)) for line in raw_lines(settings, date)]


def good_events(settings: Settings, date: str) -> list[dict[str, Any]]:
    """Contract-conforming events of a date, deduplicated by event_id, in time order."""
    seen: dict[str, dict[str, Any]] = {}
    for line, line_defect in checked_lines(settings, date):
        if line_defect is None:
            record = json.loads(line)
            seen.setdefault(record["event_id"], record)
    return sorted(seen.values(), key=lambda r: (r["event_ts"], EVENT_TYPES.index(r["event_type"])))


def snapshot(settings: Settings, feed: str, date: str) -> pa.Table:
    return pq.read_table(settings.landing / feed / f"dt={date}" / f"{feed}.parquet")
