"""Build the :class:`~models.sources.base.Night` every candidate source reads, from the lake.

Point in time: the catalog is D's ``bronze.videos`` snapshot (what may be recommended on D, fresh
uploads of D included); everything learned about users and videos (watched videos, histories,
features, positives of the fitting window) comes from nights up to ``as_of`` only. Evaluation of D
uses ``as_of = D - 1``; scoring night D for serving on D+1 uses ``as_of = D``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from models import training_set
from models.interactions import index_of, pairs_matrix
from models.sources.base import Night
from models.training_set import TrainingSetConfig
from models.two_tower.artifacts import TrainedModel
from reelrec import lake
from reelrec.catalog import EVENT_TIMESTAMP, EVENTS, UPLOAD_TS, USER_FEATURES, USER_ID, VIDEO_ID, VIDEOS
from reelrec.dates import add_days, date_range, day_bounds
from reelrec.history import watched
from reelrec.settings import Settings


def build_night(
    settings: Settings,
    date: str,
    as_of: str,
    user_ids: list[str] | None = None,
    trained: TrainedModel | None = None,
) -> Night:
    """The night's catalog, users, exclusions, histories and (with ``trained``) two-tower vectors.

    Args:
        settings: Where the lake and models live.
        date: Catalog night D.
        as_of: Last night whose events and features are used (D - 1 or D).
        user_ids: Users to build lists for, in this row order; ``None``: every row of
            silver.user_features of ``as_of`` (sorted).
        trained: A two-tower model; users and videos are embedded with the features of ``as_of``
            exactly as :mod:`models.evaluate` does. ``None``: no vectors (source two_tower is empty).

    Returns:
        The :class:`Night`.
    """
    from models.two_tower import embed  # torch: only imported by whoever builds a night

    if as_of > date:
        raise ValueError(f"as_of {as_of} is after the catalog night {date}: lists would see the future")
    requested_at = day_bounds(add_days(as_of, 1))[0]  # lists start being served the night after as_of
    catalog = embed.load_catalog(settings, date, as_of, requested_at=requested_at)
    items = {v: i for i, v in enumerate(catalog.video_ids)}
    if user_ids is None:
        user_ids = sorted(
            lake.read(USER_FEATURES, settings, dates=[as_of], columns=[USER_ID]).column(USER_ID).to_pylist()
        )
    users = {u: i for i, u in enumerate(user_ids)}
    seen = watched(settings, until=as_of)
    exclude = pairs_matrix(seen.column(USER_ID).to_pylist(), seen.column(VIDEO_ID).to_pylist(), users, items)
    ts_cfg = trained.cfg.training_set if trained is not None else TrainingSetConfig()
    histories = training_set.positive_histories(settings, as_of, ts_cfg)
    night = Night(
        settings,
        date,
        as_of,
        list(user_ids),
        catalog.video_ids,
        catalog.uploaded_on(date),
        exclude,
        histories,
    )
    if trained is not None:
        from models.two_tower.inputs import ContentLookup

        content = ContentLookup.from_lake(settings)
        night.user_vectors = embed.embed_users(
            trained, embed.load_users(settings, as_of, night.user_ids), content, histories
        )
        night.video_vectors = embed.embed_videos(trained, catalog, content)
    return night


@dataclass
class WindowPositives:
    """Positives of the fitting window as index arrays (catalog videos only)."""

    user_index: np.ndarray  # (N,) int64 into user_ids
    item_index: np.ndarray  # (N,) int64 catalog column
    timestamps: np.ndarray  # (N,) int64 first impression, epoch microseconds
    user_ids: list[str]  # every user with a positive in the window, sorted


def window_positives(night: Night, days: int, cfg: TrainingSetConfig | None = None) -> WindowPositives:
    """Positives (:func:`models.training_set.labels` with label 1) of the ``days`` nights ending at as_of.

    Only catalog videos of D are kept (the others cannot be recommended); nights after ``as_of`` are
    never read. Computed once per night and arguments (``night.memo``): covisit and EASE share it.
    """
    key = ("window_positives", days, cfg)
    if key not in night.memo:
        night.memo[key] = _window_positives(night, days, cfg)
    return night.memo[key]  # type: ignore[return-value]


def _window_positives(night: Night, days: int, cfg: TrainingSetConfig | None) -> WindowPositives:
    available = lake.partition_dates(EVENTS, night.settings)
    dates = [d for d in date_range(night.as_of, days) if d in available]
    table = training_set.labels(night.settings, dates, cfg or TrainingSetConfig()) if dates else None
    if table is None or not table.num_rows:
        empty = np.zeros(0, np.int64)
        return WindowPositives(empty, empty, empty, [])
    table = table.filter(pc.equal(table.column(training_set.LABEL), 1))
    item_index = index_of(table.column(VIDEO_ID).to_pylist(), night.items)
    user_ids = sorted(set(table.column(USER_ID).to_pylist()))
    user_index = index_of(table.column(USER_ID).to_pylist(), {u: i for i, u in enumerate(user_ids)})
    stamps = table.column(EVENT_TIMESTAMP).cast(pa.int64()).to_numpy(zero_copy_only=False)
    keep = item_index >= 0
    return WindowPositives(user_index[keep], item_index[keep], stamps[keep], user_ids)


def recent_uploads(night: Night, days: int) -> np.ndarray:
    """``(I,)`` bool: catalog videos of D uploaded within the ``days`` days ending with D."""
    videos = lake.read(VIDEOS, night.settings, dates=[night.date], columns=[VIDEO_ID, UPLOAD_TS])
    cols = index_of(videos.column(VIDEO_ID).to_pylist(), night.items)
    start = pa.scalar(day_bounds(add_days(night.date, 1 - days))[0], videos.schema.field(UPLOAD_TS).type)
    recent = pc.greater_equal(videos.column(UPLOAD_TS), start).to_numpy(zero_copy_only=False)
    out = np.zeros(len(night.video_ids), bool)
    out[cols[(cols >= 0) & recent]] = True
    return out
