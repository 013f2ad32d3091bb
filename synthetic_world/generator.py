"""Generating the synthetic world: the landing zone of a range of dates, and the hidden truth.

Determinism and continuity: the first call creates a *world* anchored at its ``start`` date
(``truth/world.json``). Users, creators and videos up to any day are a pure function of
(seed, preset, anchor, day); the events of a day also depend on the follow edges of earlier days
(an edge is created once). Later calls with the same seed and preset continue the same world, so a
nightly DAG may generate one date at a time; regenerating a date replaces its landing folders and
gives byte-identical files. Another seed or preset, or a start before the anchor, starts a new
world (``truth/`` is rewritten; landing folders of other dates are left as they are).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec.catalog import CREATOR_ID, DT, EVENT_TYPES, FOLLOWED_AT, USER_ID
from reelrec.dates import parse_date
from reelrec.settings import Settings
from synthetic_world.day import edge_key, simulate_day
from synthetic_world.event_log import event_log, gzip_parts
from synthetic_world.landing_writer import (
    EVENTS_FEED,
    FOLLOWS_FEED,
    entity_ids,
    follows_table,
    replace_drop,
    write_snapshots,
)
from synthetic_world.truth import (
    FOLLOW_TRUTH_SCHEMA,
    open_world,
    read_follows,
    write_truth,
    write_truth_day,
)
from synthetic_world.world import (
    DAY_MS,
    PRESETS,
    STREAM_CORRUPT,
    STREAM_DUPS,
    Preset,
    World,
    day_start_ms,
    rng_for,
)

log = logging.getLogger(__name__)

_TOTALS = ("events", "lines", "duplicates", "bad_rows_total", "uploads", "new_users", "follows")


def generate(
    settings: Settings,
    preset: str,
    start: str,
    days: int,
    seed: int = 7,
    corrupt_rate: float | None = None,
) -> dict[str, Any]:
    """Write the landing zone for dates ``start`` .. ``start + days - 1`` and the hidden truth.

    Each date D gets ``landing/{events,videos,users,creators,follows}/dt=D/`` (replaced whole, with
    ``_SUCCESS`` written last) and ``truth/days/dt=D.json``.

    Args:
        settings: where ``landing/`` and ``truth/`` live.
        preset: a key of :data:`~synthetic_world.world.PRESETS` (``tiny``, ``small``, ``medium``).
        start: first logical date, ``YYYY-MM-DD`` (UTC).
        days: number of consecutive dates, >= 1.
        seed: same seed (and preset) => byte-identical files.
        corrupt_rate: injected bad event lines per good event; ``None`` takes the preset's rate.

    Returns:
        ``{"preset", "seed", "anchor", "new_world", "dates": {D: {...}}, "totals": {...}}`` where each
        date holds ``events`` (good events), ``lines`` (written, with duplicates and bad lines),
        ``by_type``, ``duplicates``, ``bad_rows`` (per kind), ``bad_rows_total``, ``videos``,
        ``uploads``, ``users``, ``new_users``, ``active_users``, ``creators``, ``follows`` and ``seconds``.

    Raises:
        ValueError: naming the argument when the preset, date, days or corrupt_rate is invalid.
    """
    spec, first, rate = _checked_arguments(preset, start, days, corrupt_rate)
    world, meta, new_world = open_world(settings, spec, seed, first)
    old_follows = None if new_world else read_follows(settings)
    dates = [first + dt.timedelta(days=i) for i in range(days)]
    world.grow_through((dates[-1] - world.anchor).days)
    ids = entity_ids(world)
    follows = _FollowHistory(
        old_follows if old_follows is not None else FOLLOW_TRUTH_SCHEMA.empty_table(), ids
    )
    (settings.truth / "days").mkdir(parents=True, exist_ok=True)

    per_date: dict[str, dict[str, Any]] = {}
    for date in dates:
        began = time.perf_counter()
        record = _generate_date(settings, world, seed, rate, ids, date, follows)
        per_date[str(date)] = {**record, "seconds": round(time.perf_counter() - began, 3)}

    meta["dates"] = sorted(set(meta["dates"]) | set(per_date))
    write_truth(settings, world, meta, follows.all_edges())
    return {
        "preset": preset,
        "seed": seed,
        "anchor": str(world.anchor),
        "new_world": new_world,
        "dates": per_date,
        "totals": {key: sum(d[key] for d in per_date.values()) for key in _TOTALS}
        | {"seconds": round(sum(d["seconds"] for d in per_date.values()), 3)},
    }


def _checked_arguments(
    preset: str, start: str, days: int, corrupt_rate: float | None
) -> tuple[Preset, dt.date, float]:
    """The preset, first date and corruption rate of a call, or a ValueError naming the bad argument."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known presets: {sorted(PRESETS)}")
    try:
        first = parse_date(start)
    except ValueError as err:
        raise ValueError(f"start date {start!r} is not YYYY-MM-DD") from err
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    spec = PRESETS[preset]
    rate = spec.corrupt_rate if corrupt_rate is None else corrupt_rate
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"corrupt_rate must be in [0, 1), got {rate}")
    return spec, first, rate


class _FollowHistory:
    """Follow edges of every generated date of the world, those kept from earlier calls included."""

    def __init__(self, kept: pa.Table, ids: dict[str, pa.Array]) -> None:
        self._tables = [kept]
        self._creator_index = {cid: i for i, cid in enumerate(ids["creator"].to_pylist())}
        self._user_index = {uid: i for i, uid in enumerate(ids["user"].to_pylist())}

    def keys_before(self, date: dt.date) -> np.ndarray:
        """:func:`~synthetic_world.day.edge_key` of every edge created before ``date``."""
        prior = pa.concat_tables(self._tables)
        prior = prior.filter(pc.less(prior[DT], str(date)))
        return edge_key(
            np.array([self._user_index[u] for u in prior[USER_ID].to_pylist()], dtype=np.int64),
            np.array([self._creator_index[c] for c in prior[CREATOR_ID].to_pylist()], dtype=np.int64),
        )

    def replace(self, date: dt.date, follows: pa.Table) -> None:
        """Make ``follows`` (the follows drop of ``date``) the edges of ``date``."""
        self._tables = [t.filter(pc.not_equal(t[DT], str(date))) for t in self._tables]
        self._tables.append(
            follows.append_column(DT, pa.array([str(date)] * follows.num_rows, pa.string())).cast(
                FOLLOW_TRUTH_SCHEMA
            )
        )

    def all_edges(self) -> pa.Table:
        """Every edge, by date and follow time."""
        edges = pa.concat_tables(self._tables)
        return edges.take(pc.sort_indices(edges, [(DT, "ascending"), (FOLLOWED_AT, "ascending")]))


def _generate_date(
    settings: Settings,
    world: World,
    seed: int,
    rate: float,
    ids: dict[str, pa.Array],
    date: dt.date,
    follows: _FollowHistory,
) -> dict[str, Any]:
    """Write every landing drop of ``date`` and its truth record; return the record."""
    spec = world.preset
    day = (date - world.anchor).days
    start_ms = day_start_ms(date)
    events = simulate_day(world, day, follows.keys_before(date))
    log_of_day = event_log(
        events,
        date,
        ids["user"],
        ids["video"],
        rate,
        corrupt_rng=rng_for(seed, spec, STREAM_CORRUPT, day),
        dup_rng=rng_for(seed, spec, STREAM_DUPS, day),
    )
    replace_drop(settings, EVENTS_FEED, date, gzip_parts(log_of_day.lines, spec.event_files))
    end_ms = start_ms + DAY_MS
    write_snapshots(settings, world, date, end_ms, ids)
    new_follows = follows_table(events, ids)
    replace_drop(settings, FOLLOWS_FEED, date, {f"{FOLLOWS_FEED}.parquet": new_follows})
    follows.replace(date, new_follows)

    n_users, n_creators, n_videos = world.counts_until(end_ms)
    prev_users, _, prev_videos = world.counts_until(start_ms)
    record = {
        "date": str(date),
        "events": log_of_day.events,
        "lines": len(log_of_day.lines),
        "by_type": {t: int(np.sum(events.event_type == i)) for i, t in enumerate(EVENT_TYPES)},
        "duplicates": log_of_day.duplicates,
        "bad_rows": log_of_day.bad_rows,
        "bad_rows_total": sum(log_of_day.bad_rows.values()),
        "videos": n_videos,
        "uploads": n_videos - prev_videos,
        "users": n_users,
        "new_users": n_users - prev_users,
        "active_users": events.active_users,
        "creators": n_creators,
        "follows": new_follows.num_rows,
        "event_files": spec.event_files,
    }
    write_truth_day(settings, record)
    log.info(
        "synthetic: %s %s: %d events, %d bad, %d duplicate lines",
        spec.name,
        date,
        log_of_day.events,
        record["bad_rows_total"],
        log_of_day.duplicates,
    )
    return record
