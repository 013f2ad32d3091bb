"""The hidden truth of the synthetic world, under ``REELREC_HOME/truth``; nothing in the pipeline reads it.

- ``world.json``: which world this is (version, preset, seed, anchor) and the dates generated so far;
  a later call with the same seed and preset continues it.
- ``days/dt=D.json``: the generator's record of one date (counts, injected bad rows per kind,
  duplicates), read back with :func:`truth_day` so tests can check quarantine and dedup counts exactly.
- ``videos``/``users``/``creators.parquet``: latent topics, quality, popularity, tastes, activity, skill.
- ``follows.parquet``: every follow edge with the date that created it (an edge is created once).
- ``topics.json``: the topics' words and hashtags.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelrec.catalog import (
    CREATOR_ID,
    DT,
    FOLLOWED_AT,
    JOINED_TS,
    SIGNUP_TS,
    TS,
    UPLOAD_TS,
    USER_ID,
    VIDEO_ID,
)
from reelrec.dates import parse_date
from reelrec.settings import Settings
from synthetic_world.landing_writer import entity_ids, timestamps, write_parquet
from synthetic_world.topics import N_TOPICS, TOPICS
from synthetic_world.world import DAY_MS, Preset, World, day_start_ms

log = logging.getLogger(__name__)

WORLD_VERSION = 1
FOLLOW_TRUTH_SCHEMA = pa.schema(
    [(USER_ID, pa.string()), (CREATOR_ID, pa.string()), (FOLLOWED_AT, TS), (DT, pa.string())]
)


def truth_day(settings: Settings, date: str) -> dict[str, Any]:
    """The generator's record of one date: counts, injected bad rows per kind, duplicates.

    Raises:
        FileNotFoundError: naming the file when ``date`` was never generated under this home.
    """
    path = settings.truth / "days" / f"dt={date}.json"
    if not path.exists():
        raise FileNotFoundError(f"synthetic truth for date {date} not found: {path}")
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def write_truth_day(settings: Settings, record: dict[str, Any]) -> None:
    """Write the record of one date (``record["date"]``) to ``truth/days/dt=D.json``."""
    (settings.truth / "days" / f"dt={record['date']}.json").write_text(json.dumps(record, indent=1) + "\n")


def open_world(
    settings: Settings, preset: Preset, seed: int, start: dt.date
) -> tuple[World, dict[str, Any], bool]:
    """Continue the world in ``truth/`` when it matches, else start a new one anchored at ``start``.

    Returns:
        ``(world, meta, new_world)``: the world (not grown yet), the content of ``world.json``, and
        whether a new world was started (``truth/`` is then emptied).
    """
    meta_path = settings.truth / "world.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        anchor = parse_date(meta["anchor"])
        if (meta.get("version"), meta.get("preset"), meta.get("seed")) == (
            WORLD_VERSION,
            preset.name,
            seed,
        ) and anchor <= start:
            return World(preset, seed, anchor), meta, False
        log.warning(
            "synthetic: truth in %s is world (preset=%s, seed=%s, anchor=%s); starting a new world at %s",
            settings.truth,
            meta.get("preset"),
            meta.get("seed"),
            meta.get("anchor"),
            start,
        )
    if settings.truth.exists():
        shutil.rmtree(settings.truth)
    meta = {"version": WORLD_VERSION, "preset": preset.name, "seed": seed, "anchor": str(start), "dates": []}
    return World(preset, seed, start), meta, True


def read_follows(settings: Settings) -> pa.Table | None:
    """Follow edges of earlier calls (:data:`FOLLOW_TRUTH_SCHEMA`), or None when there are none."""
    path = settings.truth / "follows.parquet"
    return pq.read_table(path) if path.exists() else None


def write_truth(settings: Settings, world: World, meta: dict[str, Any], follows: pa.Table) -> None:
    """Write the world's latent state as of the end of its last generated date, and ``world.json``.

    Args:
        settings: where ``truth/`` lives.
        world: the world; grown here through the last date of ``meta["dates"]`` if needed.
        meta: ``world.json`` content, its ``dates`` already including this call's dates.
        follows: every follow edge generated in this world (:data:`FOLLOW_TRUTH_SCHEMA`).
    """
    truth = settings.truth
    truth.mkdir(parents=True, exist_ok=True)
    last = parse_date(max(meta["dates"]))
    world.grow_through((last - world.anchor).days)
    end = day_start_ms(last) + DAY_MS
    n_users, n_creators, n_videos = world.counts_until(end)
    ids = entity_ids(world)
    names = pa.array([t.name for t in TOPICS])
    write_parquet(_videos_truth(world, ids, names, n_videos), truth / "videos.parquet")
    write_parquet(_users_truth(world, ids, names, n_users), truth / "users.parquet")
    write_parquet(_creators_truth(world, ids, names, n_creators), truth / "creators.parquet")
    write_parquet(follows, truth / "follows.parquet")
    topics = [{"name": t.name, "words": list(t.words), "hashtags": list(t.hashtags)} for t in TOPICS]
    (truth / "topics.json").write_text(json.dumps(topics, indent=1) + "\n")
    (truth / "world.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


def _videos_truth(world: World, ids: dict[str, pa.Array], names: pa.Array, n_videos: int) -> pa.Table:
    v = world.videos
    second = v["second_topic"][:n_videos]
    return pa.table(
        {
            VIDEO_ID: ids["video"].slice(0, n_videos),
            CREATOR_ID: pc.take(ids["creator"], pa.array(v["creator"][:n_videos])),
            UPLOAD_TS: timestamps(v["upload_ms"][:n_videos]),
            "topic": pc.take(names, pa.array(v["topic"][:n_videos])),
            "second_topic": pc.take(names, pa.array(second, mask=second < 0)),
            "second_topic_weight": pa.array(v["second_weight"][:n_videos]),
            "quality": pa.array(v["quality"][:n_videos]),
            "popularity": pa.array(v["popularity"][:n_videos]),
        }
    )


def _users_truth(world: World, ids: dict[str, pa.Array], names: pa.Array, n_users: int) -> pa.Table:
    u = world.users
    taste = u["taste"][:n_users]
    return pa.table(
        {
            USER_ID: ids["user"].slice(0, n_users),
            SIGNUP_TS: timestamps(u["signup_ms"][:n_users]),
            "activity": pa.array(u["activity"][:n_users]),
            "top_topic": pc.take(names, pa.array(np.argmax(taste, axis=1))),
            "taste": pa.FixedSizeListArray.from_arrays(pa.array(taste.ravel()), N_TOPICS).cast(
                pa.list_(pa.float32())
            ),
        }
    )


def _creators_truth(world: World, ids: dict[str, pa.Array], names: pa.Array, n_creators: int) -> pa.Table:
    c = world.creators
    return pa.table(
        {
            CREATOR_ID: ids["creator"].slice(0, n_creators),
            JOINED_TS: timestamps(c["joined_ms"][:n_creators]),
            "home_topic": pc.take(names, pa.array(c["home_topic"][:n_creators])),
            "activity": pa.array(c["activity"][:n_creators]),
            "skill": pa.array(c["skill"][:n_creators]),
        }
    )
