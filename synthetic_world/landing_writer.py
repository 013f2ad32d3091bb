"""Writing the world's daily drops into the landing zone, through the core's landing layout.

Drop folders and the ``_SUCCESS`` marker come from :mod:`reelrec.landing` (whose ``drop_dir`` refuses
a feed the layout does not know); the snapshot schemas from :mod:`reelrec.catalog` (a drop carries the
bronze columns without ``dt``, which the folder name holds). A drop is written into a temporary sibling
folder and renamed into place with ``_SUCCESS`` already in it, so a reader never sees half a drop and a
regenerated date is replaced whole.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelrec.catalog import (
    AGE_BUCKETS,
    CREATORS,
    DT,
    DURATION_MS,
    FOLLOWS,
    FRAME_EMBEDDING_DIM,
    TS,
    USERS,
    VIDEOS,
)
from reelrec.landing import SUCCESS_MARKER, check_file_name, drop_dir
from reelrec.settings import Settings
from synthetic_world.day import DayEvents
from synthetic_world.world import COUNTRIES, World

# The feeds of reelrec.landing this writer fills (drop_dir refuses a name the layout does not know).
EVENTS_FEED, FOLLOWS_FEED = "events", "follows"
VIDEOS_FEED, USERS_FEED, CREATORS_FEED = "videos", "users", "creators"
SNAPSHOT_FEEDS = (VIDEOS_FEED, USERS_FEED, CREATORS_FEED)  # daily catalog snapshots, one parquet file each


def entity_ids(world: World) -> dict[str, pa.Array]:
    """Id strings of every user (``u000042``), creator (``c00042``) and video (``v0000042``) by index."""
    return {
        "user": _ids("u", 6, len(world.users["signup_ms"])),
        "creator": _ids("c", 5, len(world.creators["joined_ms"])),
        "video": _ids("v", 7, len(world.videos["upload_ms"])),
    }


def timestamps(ms: np.ndarray) -> pa.Array:
    """Epoch milliseconds as the catalog's UTC microsecond timestamps."""
    return pa.array(ms * 1000, TS)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write one parquet file the way every drop and truth file is written (zstd)."""
    pq.write_table(table, path, compression="zstd")


def replace_drop(settings: Settings, feed: str, date: dt.date, files: dict[str, bytes | pa.Table]) -> None:
    """Write ``feed``'s drop for ``date`` atomically; ``_SUCCESS`` is the last file written.

    Args:
        settings: where the landing zone lives.
        feed: a feed of :data:`reelrec.landing.FEEDS` (``KeyError`` for any other).
        date: the logical date of the drop.
        files: file name -> raw bytes, or a table written as parquet; a name with a folder part or
            ``..`` is refused (:func:`reelrec.landing.check_file_name`, a ``DataError``).
    """
    final = drop_dir(feed, str(date), settings)
    for name in files:
        check_file_name(feed, name)  # before anything is written
    tmp = final.parent / f"_tmp-{final.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, content in files.items():
        if isinstance(content, pa.Table):
            write_parquet(content, tmp / name)
        else:
            (tmp / name).write_bytes(content)
    (tmp / SUCCESS_MARKER).write_bytes(b"")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def write_snapshots(
    settings: Settings, world: World, date: dt.date, end_ms: int, ids: dict[str, pa.Array]
) -> None:
    """Write the videos, users and creators drops of ``date``: everything that exists before ``end_ms``."""
    snapshots = _snapshots(world, end_ms, ids)
    for feed in SNAPSHOT_FEEDS:
        replace_drop(settings, feed, date, {f"{feed}.parquet": snapshots[feed]})


def follows_table(day: DayEvents, ids: dict[str, pa.Array]) -> pa.Table:
    """The day's new follow edges in the follows drop's schema (the catalog's, without ``dt``)."""
    return pa.Table.from_arrays(
        [
            pc.take(ids["user"], pa.array(day.follow_user)),
            pc.take(ids["creator"], pa.array(day.follow_creator)),
            timestamps(day.follow_ms),
        ],
        schema=_without_dt(FOLLOWS.schema),
    )


def _ids(prefix: str, width: int, n: int) -> pa.Array:
    return pc.binary_join_element_wise(
        prefix, pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), width, "0"), ""
    )


def _without_dt(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f for f in schema if f.name != DT])


def _snapshots(world: World, end_ms: int, ids: dict[str, pa.Array]) -> dict[str, pa.Table]:
    n_users, n_creators, n_videos = world.counts_until(end_ms)
    u, c, v = world.users, world.creators, world.videos
    embedding = pa.FixedSizeListArray.from_arrays(
        pa.array(v["embedding"][:n_videos].ravel()), FRAME_EMBEDDING_DIM
    )
    return {
        VIDEOS_FEED: pa.Table.from_arrays(
            [
                ids["video"].slice(0, n_videos),
                pc.take(ids["creator"], pa.array(v["creator"][:n_videos])),
                timestamps(v["upload_ms"][:n_videos]),
                pa.array(v[DURATION_MS][:n_videos]),
                pa.array(v["caption"][:n_videos], pa.string()),
                pa.array(list(v["hashtags"][:n_videos]), pa.list_(pa.string())),
                embedding.cast(pa.list_(pa.float32())),
            ],
            schema=_without_dt(VIDEOS.schema),
        ),
        USERS_FEED: pa.Table.from_arrays(
            [
                ids["user"].slice(0, n_users),
                timestamps(u["signup_ms"][:n_users]),
                pc.take(pa.array(COUNTRIES), pa.array(u["country"][:n_users])),
                pc.take(pa.array(AGE_BUCKETS), pa.array(u["age"][:n_users])),
            ],
            schema=_without_dt(USERS.schema),
        ),
        CREATORS_FEED: pa.Table.from_arrays(
            [
                ids["creator"].slice(0, n_creators),
                timestamps(c["joined_ms"][:n_creators]),
                pc.take(pa.array(COUNTRIES), pa.array(c["country"][:n_creators])),
            ],
            schema=_without_dt(CREATORS.schema),
        ),
    }
