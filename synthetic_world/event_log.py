"""The app's event log of one day, as its clients deliver it: JSON lines with retries and defects.

Good events become one JSON object per line in time order (built column-wise by Arrow). Like a real
client fleet, the log also holds about 0.5 % exact duplicate lines (a retry lands somewhere after its
original) and a few injected bad lines, one count per kind in :data:`CORRUPTION_KINDS`, each breaking
the landing contract (``docs/data-contract.md``) in one way, so tests can check quarantine and dedup
counts exactly.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec.catalog import (
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    EVENT_TYPES,
    POSITION,
    SURFACE,
    SURFACES,
    USER_ID,
    VIDEO_ID,
    WATCH_MS,
)
from synthetic_world.day import DayEvents
from synthetic_world.world import DAY_MS, HOUR_MS

DUPLICATE_RATE = 0.005
GZIP_LEVEL = 3  # fast deflate: half the time of -6 on JSON lines, about 20 % larger

# Kinds of injected bad event lines; every one of them breaks the landing contract.
CORRUPTION_KINDS = (
    "malformed_json",  # not a JSON object (truncated line or garbage)
    "missing_user_id",  # user_id absent or null
    "unknown_event_type",  # event_type outside EVENT_TYPES
    "negative_watch_ms",  # a view/skip with watch_ms < 0
    "unparsable_event_ts",  # event_ts that is not an ISO-8601 instant
    "event_ts_other_day",  # valid event_ts, but on the day before or after the drop's date
)


@dataclass(frozen=True)
class EventLog:
    """The landed event lines of one day and what went into them."""

    lines: pa.Array  # newline-terminated strings, in delivery order
    events: int  # good events (distinct event ids)
    duplicates: int  # extra copies of good lines
    bad_rows: dict[str, int]  # injected bad lines per kind of CORRUPTION_KINDS


def event_log(
    day: DayEvents,
    date: dt.date,
    user_ids: pa.Array,
    video_ids: pa.Array,
    corrupt_rate: float,
    corrupt_rng: np.random.Generator,
    dup_rng: np.random.Generator,
) -> EventLog:
    """Good lines in time order, with duplicates after their originals and bad lines anywhere.

    Args:
        day: the day's good events.
        date: the logical date (event ids are numbered per date).
        user_ids: id string per user index; ``video_ids`` likewise per video.
        video_ids: id string per video index.
        corrupt_rate: injected bad lines per good line.
        corrupt_rng: the day's corruption generator; ``dup_rng`` the day's duplicates generator.
        dup_rng: the day's duplicates generator.
    """
    lines = _event_lines(day, date, user_ids, video_ids)
    n_good = len(lines)
    bad, bad_counts = _bad_lines(
        corrupt_rng, day, date, int(round(corrupt_rate * n_good)), user_ids, video_ids
    )
    n_dup = int(round(DUPLICATE_RATE * n_good))
    dup_of = np.sort(dup_rng.choice(n_good, n_dup, replace=False)) if n_dup else np.zeros(0, np.int64)
    # Sort keys: good lines in time order; a duplicate lands somewhere after its original
    # (a client retry), a bad line anywhere.
    keys = np.concatenate(
        [
            np.arange(n_good, dtype=np.float64),
            dup_of + 0.5 + dup_rng.random(n_dup) * (n_good - dup_of - 0.5),
            corrupt_rng.random(len(bad)) * n_good,
        ]
    )
    all_lines = pa.concat_arrays(
        [
            lines,
            pc.take(lines, pa.array(dup_of, pa.int64())),
            pa.array([line + "\n" for line in bad], pa.string()),
        ]
    )
    ordered = pc.take(all_lines, pa.array(np.argsort(keys, kind="stable")))
    return EventLog(ordered, n_good, n_dup, bad_counts)


def gzip_parts(lines: pa.Array, parts: int) -> dict[str, bytes]:
    """Split newline-terminated lines into ``parts`` gzip files (mtime 0: byte-identical reruns).

    Returns:
        ``{"part-00000.jsonl.gz": bytes, ...}`` in line order.
    """
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    data = memoryview(lines.buffers()[2])  # the lines back to back: a string array's value buffer
    bounds = np.linspace(0, len(lines), parts + 1).round().astype(int)
    with ThreadPoolExecutor(max_workers=min(parts, 4)) as pool:  # zlib releases the GIL
        blobs = pool.map(
            lambda i: gzip.compress(data[offsets[bounds[i]] : offsets[bounds[i + 1]]], GZIP_LEVEL, mtime=0),
            range(parts),
        )
        return {f"part-{i:05d}.jsonl.gz": blob for i, blob in enumerate(blobs)}


def _iso(ms: np.ndarray) -> pa.Array:
    """ISO-8601 UTC strings with milliseconds (``2026-11-01T13:45:12.123Z``) from epoch ms.

    Built as a fixed-width byte matrix: an order of magnitude faster than Arrow's strftime.
    """
    ms = np.asarray(ms, dtype=np.int64)
    n = len(ms)
    days, ms_of_day = np.divmod(ms, DAY_MS)
    unique_days, day_of_row = np.unique(days, return_inverse=True)
    dates = "".join(np.datetime_as_string(unique_days.astype("datetime64[D]"))).encode()
    text = np.empty((n, 24), dtype=np.uint8)
    text[:, :10] = np.frombuffer(dates, dtype=np.uint8).reshape(-1, 10)[day_of_row]
    hours, rest = np.divmod(ms_of_day, HOUR_MS)
    minutes, rest = np.divmod(rest, 60_000)
    seconds, millis = np.divmod(rest, 1_000)
    for col, value, width in ((11, hours, 2), (14, minutes, 2), (17, seconds, 2), (20, millis, 3)):
        for i in range(width):
            text[:, col + i] = value // 10 ** (width - 1 - i) % 10 + ord("0")
    for col, char in ((10, "T"), (13, ":"), (16, ":"), (19, "."), (23, "Z")):
        text[:, col] = ord(char)
    offsets = np.arange(0, 24 * (n + 1), 24, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def _event_lines(day: DayEvents, date: dt.date, user_ids: pa.Array, video_ids: pa.Array) -> pa.Array:
    """One JSON object per good event, each ending in a newline (built column-wise by Arrow)."""
    n = len(day.ts_ms)
    event_ids = pc.binary_join_element_wise(
        f"e{date:%Y%m%d}-", pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), 8, "0"), ""
    )
    has_watch = pa.array(day.watch_ms >= 0)
    watch = pc.if_else(
        has_watch,
        pc.binary_join_element_wise(
            f',"{WATCH_MS}":', pc.cast(pa.array(np.maximum(day.watch_ms, 0)), pa.string()), ""
        ),
        "",
    )
    return pc.binary_join_element_wise(
        f'{{"{EVENT_ID}":"',
        event_ids,
        f'","{EVENT_TYPE}":"',
        pc.take(pa.array(EVENT_TYPES), pa.array(day.event_type)),
        f'","{USER_ID}":"',
        pc.take(user_ids, pa.array(day.user)),
        f'","{VIDEO_ID}":"',
        pc.take(video_ids, pa.array(day.video)),
        f'","{EVENT_TS}":"',
        _iso(day.ts_ms),
        '"',
        watch,
        f',"{SURFACE}":"',
        pc.take(pa.array(SURFACES), pa.array(day.surface)),
        f'","{POSITION}":',
        pc.cast(pa.array(day.position), pa.string()),
        "}\n",
        "",
    )


def _event_dict(
    day: DayEvents, i: int, event_id: str, user_ids: pa.Array, video_ids: pa.Array
) -> dict[str, Any]:
    record: dict[str, Any] = {
        EVENT_ID: event_id,
        EVENT_TYPE: EVENT_TYPES[day.event_type[i]],
        USER_ID: user_ids[int(day.user[i])].as_py(),
        VIDEO_ID: video_ids[int(day.video[i])].as_py(),
        EVENT_TS: _iso(day.ts_ms[i : i + 1])[0].as_py(),
    }
    if day.watch_ms[i] >= 0:
        record[WATCH_MS] = int(day.watch_ms[i])
    record[SURFACE] = SURFACES[day.surface[i]]
    record[POSITION] = int(day.position[i])
    return record


def _bad_lines(
    rng: np.random.Generator,
    day: DayEvents,
    date: dt.date,
    n_bad: int,
    user_ids: pa.Array,
    video_ids: pa.Array,
) -> tuple[list[str], dict[str, int]]:
    """``n_bad`` contract-breaking lines, spread evenly over CORRUPTION_KINDS.

    Each has a fresh event id (numbered after the day's good events), so dedup never hides one.
    """
    kinds = rng.permutation(np.arange(n_bad) % len(CORRUPTION_KINDS))
    n = len(day.ts_ms)
    with_watch = np.flatnonzero(day.watch_ms >= 0)
    lines: list[str] = []
    counts = dict.fromkeys(CORRUPTION_KINDS, 0)
    for j, k in enumerate(kinds):
        kind = CORRUPTION_KINDS[k]
        counts[kind] += 1
        template = int(rng.choice(with_watch)) if kind == "negative_watch_ms" else int(rng.integers(0, n))
        record = _event_dict(day, template, f"e{date:%Y%m%d}-{n + j:08d}", user_ids, video_ids)
        if kind == "malformed_json":
            lines.append(_malformed(rng, record))
            continue
        _corrupt(rng, kind, record, date, int(day.ts_ms[template]))
        lines.append(json.dumps(record, separators=(",", ":")))
    return lines, counts


def _malformed(rng: np.random.Generator, record: dict[str, Any]) -> str:
    """A line that is not a JSON object: a truncated write, or an error page instead of the event."""
    text = json.dumps(record, separators=(",", ":"))
    if rng.random() < 0.7:
        return text[: int(rng.integers(5, len(text) - 2))]  # truncated write
    return "<html><body>502 Bad Gateway</body></html>"


def _corrupt(rng: np.random.Generator, kind: str, record: dict[str, Any], date: dt.date, ts_ms: int) -> None:
    """Break ``record`` (an event taken at ``ts_ms``) in place the way ``kind`` says."""
    if kind == "missing_user_id":
        if rng.random() < 0.5:
            del record[USER_ID]
        else:
            record[USER_ID] = None
    elif kind == "unknown_event_type":
        record[EVENT_TYPE] = str(rng.choice(["comment", "pause", "unknown", "duet"]))
    elif kind == "negative_watch_ms":
        record[WATCH_MS] = -int(rng.integers(1, 5_000))
    elif kind == "unparsable_event_ts":
        record[EVENT_TS] = str(
            rng.choice(["not-a-timestamp", f"{date}T25:61:00.000Z", f"{date}T12:3x:00.000Z"])
        )
    elif kind == "event_ts_other_day":
        shift = DAY_MS if rng.random() < 0.5 else -DAY_MS
        record[EVENT_TS] = _iso(np.array([ts_ms + shift]))[0].as_py()
