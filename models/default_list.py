"""The default list of night D: what users without a list of their own are served.

New users (signed up after the last scoring) and users the last nights did not score (inactive
for the 28-day window) have no row of their own in gold.candidates. Rather than an empty answer,
serving gives them this list, published as one more gold.candidates row under the user id
:data:`reelrec.catalog.DEFAULT_LIST_KEY` (``"__default__"``), in the same partition, by the same
Feast materialization, with the same columns as every user's list.

The list is **recent popularity with fresh slots**:

* **popularity** of a video: the distinct users who *viewed* it (a ``view`` event, what
  :mod:`reelrec.history` calls watched) on each of the ``days`` nights ending at D, each night
  weighted ``0.5 ** (age / half_life_nights)`` (age 0 for D itself, 1 for D-1, ...), so
  yesterday's hits outrank last week's. Views rather than completion positives: a fresh upload of
  D has only its first-day views, and one signal puts the whole list on one scale;
* **fresh slots**: ``fresh_slots`` of the ``top_n`` places go to the uploads of D (by their
  first-day views, and by upload time, newest first, among those with equal or no views), as the
  two-tower lists do (:func:`models.topk.top_k_with_quota`): a cold video would otherwise never
  reach anyone without history. Slots the fresh uploads cannot fill go back to the others and
  the other way round;
* the chosen videos are ordered by popularity, best first (ties: newer upload, then catalog
  order), and their popularity is the row's ``scores`` (non-increasing, as every list's).

Only videos of D's catalog snapshot are listed, so the list never points at a removed video.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec import lake
from reelrec.catalog import (
    CANDIDATES,
    DEFAULT_LIST_KEY,
    DT,
    EVENT_TIMESTAMP,
    EVENT_TYPE,
    EVENTS,
    GENERATED_AT,
    MODEL_VERSION,
    SCORES,
    UPLOAD_TS,
    USER_ID,
    VIDEO_ID,
    VIDEO_IDS,
    VIDEOS,
    VIEW,
)
from reelrec.dates import date_range, feature_timestamp
from reelrec.settings import Settings

_NO_UPLOAD = np.iinfo(np.int64).min  # a video without an upload time sorts as the oldest


@dataclass(frozen=True)
class DefaultListConfig:
    """How the default list is made."""

    days: int = 3  # nights of views ending at D that make a video popular
    half_life_nights: float = 1.0  # a night's views count half as much per this many nights of age
    top_n: int = 100  # length of the list (the two-tower lists' length)
    fresh_slots: int = 10  # places of top_n reserved for the uploads of D


def rank_default_list(
    popularity: np.ndarray, upload_us: np.ndarray, fresh: np.ndarray, top_n: int, fresh_slots: int
) -> tuple[np.ndarray, np.ndarray]:
    """The default list from per-video numbers (the pure part of :func:`default_list`).

    Args:
        popularity: ``(I,)`` recency-weighted views.
        upload_us: ``(I,)`` int64 upload time (any monotone unit): the tie-break, newer first.
        fresh: ``(I,)`` bool, the uploads of D: ``fresh_slots`` places are theirs.
        top_n: list length (shorter when the catalog is).
        fresh_slots: ``0 <= fresh_slots <= top_n``.

    Returns:
        ``(items (N,) int64, scores (N,) float32)``: catalog indices best first and their
        popularity, ``N = min(top_n, I)``.

    Raises:
        ValueError: when the shapes differ or ``fresh_slots`` is outside ``[0, top_n]``.
    """
    n = len(popularity)
    if not (len(upload_us) == len(fresh) == n):
        raise ValueError(
            f"popularity, upload_us and fresh differ in length: {n}, {len(upload_us)}, {len(fresh)}"
        )
    if not 0 <= fresh_slots <= top_n:
        raise ValueError(f"fresh_slots must be in [0, top_n={top_n}], got {fresh_slots}")
    pop = np.asarray(popularity, dtype=np.float32)
    flagged = np.asarray(fresh, dtype=bool)
    # best first: popularity, then newer upload, then catalog order (lexsort's last key is primary)
    order = np.lexsort((np.arange(n), -np.asarray(upload_us, dtype=np.float64), -pop.astype(np.float64)))
    fresh_ranked, others = order[flagged[order]], order[~flagged[order]]
    size = min(top_n, n)
    n_fresh = min(fresh_slots, len(fresh_ranked))
    n_fresh = max(n_fresh, size - len(others))  # the others cannot fill their share: more fresh
    chosen = np.concatenate([fresh_ranked[:n_fresh], others[: size - n_fresh]])
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    items = chosen[np.argsort(position[chosen], kind="stable")].astype(np.int64)
    return items, pop[items]


def recent_views(settings: Settings, date: str, video_ids: list[str], cfg: DefaultListConfig) -> np.ndarray:
    """``(I,)`` float32: distinct viewers of each video per night, recency-weighted, ``days`` nights to D."""
    popularity = np.zeros(len(video_ids), dtype=np.float64)
    if not lake.exists(EVENTS, settings):
        return popularity.astype(np.float32)
    nights = date_range(date, cfg.days)
    events = lake.read(EVENTS, settings, dates=nights, columns=[USER_ID, VIDEO_ID, EVENT_TYPE, DT])
    views = events.filter(pc.equal(events.column(EVENT_TYPE), VIEW))
    pairs = (
        views.group_by([USER_ID, VIDEO_ID, DT])
        .aggregate([])
        .group_by([VIDEO_ID, DT])
        .aggregate([(USER_ID, "count")])
    )
    index = {v: i for i, v in enumerate(video_ids)}
    age = {night: len(nights) - 1 - i for i, night in enumerate(nights)}
    for video, night, viewers in zip(
        pairs.column(VIDEO_ID).to_pylist(),
        pairs.column(DT).to_pylist(),
        pairs.column(f"{USER_ID}_count").to_pylist(),
        strict=True,
    ):
        if video in index:  # a video no longer in D's catalog is not listed
            popularity[index[video]] += viewers * 0.5 ** (age[night] / cfg.half_life_nights)
    return popularity.astype(np.float32)


def upload_times(settings: Settings, date: str, video_ids: list[str]) -> np.ndarray:
    """``(I,)`` int64 upload time in microseconds from D's bronze.videos snapshot (oldest if absent)."""
    upload_us = np.full(len(video_ids), _NO_UPLOAD, dtype=np.int64)
    if not lake.exists(VIDEOS, settings):
        return upload_us
    videos = lake.read(VIDEOS, settings, dates=[date], columns=[VIDEO_ID, UPLOAD_TS])
    index = {v: i for i, v in enumerate(video_ids)}
    stamps = pc.fill_null(videos.column(UPLOAD_TS).cast(pa.int64()), int(_NO_UPLOAD)).to_pylist()
    for video, stamp in zip(videos.column(VIDEO_ID).to_pylist(), stamps, strict=True):
        if video in index:
            upload_us[index[video]] = stamp
    return upload_us


def default_list(
    settings: Settings,
    date: str,
    video_ids: list[str],
    fresh: np.ndarray,
    cfg: DefaultListConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Night D's default list over D's catalog (see the module docstring).

    Args:
        settings: where the lake is.
        date: night D (its catalog snapshot and the last night of views).
        video_ids: D's catalog, the column order of the returned indices.
        fresh: ``(I,)`` bool, the uploads of D.
        cfg: list length, fresh slots, window and recency weight.

    Returns:
        ``(items (N,) int64, scores (N,) float32)``: catalog indices best first and their
        recency-weighted views, ``N = min(top_n, I)``.
    """
    cfg = cfg or DefaultListConfig()
    popularity = recent_views(settings, date, video_ids, cfg)
    upload_us = upload_times(settings, date, video_ids)
    return rank_default_list(popularity, upload_us, fresh, cfg.top_n, cfg.fresh_slots)


def default_row(
    settings: Settings,
    date: str,
    video_ids: list[str],
    fresh: np.ndarray,
    model_version: str,
    generated_at: datetime,
    cfg: DefaultListConfig | None = None,
) -> pa.Table:
    """The one gold.candidates row of night D keyed :data:`~reelrec.catalog.DEFAULT_LIST_KEY`.

    ``model_version`` and ``generated_at`` are the night's (the same as every other gold row of
    D: the outputs suite wants one model version per night); append the row to the users' rows
    before writing the partition.
    """
    items, scores = default_list(settings, date, video_ids, fresh, cfg)
    ids = np.asarray(video_ids, dtype=object)[items].tolist()
    return pa.table(
        {
            USER_ID: [DEFAULT_LIST_KEY],
            VIDEO_IDS: [ids],
            SCORES: pa.array([scores.tolist()], pa.list_(pa.float32())),
            MODEL_VERSION: [model_version],
            GENERATED_AT: [generated_at],
            EVENT_TIMESTAMP: [feature_timestamp(date)],
            DT: [date],
        },
        schema=CANDIDATES.schema,
    )
