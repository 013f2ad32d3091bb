"""Embed users and the video catalog of one night with a trained two-tower model.

Evaluation of night D embeds with the features of night D-1 (what was known when D's impressions
happened); scoring of night D embeds with the features of D (for serving on D+1). Both read the
silver Delta partitions directly (the same rows Feast serves) and the catalog snapshot of D, so
videos uploaded on D (no feature row for D-1, no id in the vocabulary) are embedded from content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from models.two_tower.artifacts import TrainedModel
from models.two_tower.inputs import (
    REQUEST_AGE,
    ContentLookup,
    user_inputs,
    user_numeric,
    video_inputs,
    video_numeric,
)
from reelrec import lake
from reelrec.catalog import (
    DT,
    RECENT_VIDEO_IDS,
    UPLOAD_TS,
    USER_FEATURES,
    USER_ID,
    VIDEO_FEATURES,
    VIDEO_ID,
    VIDEOS,
)
from reelrec.dates import day_bounds
from reelrec.settings import Settings

EMBED_BATCH = 8192


@dataclass
class Catalog:
    """The videos that may be recommended on a night, with their features."""

    video_ids: list[str]
    upload_ts: pa.Array
    features: pa.Table  # VIDEO_FEATURES columns in video_ids order (null rows for unseen videos)

    def uploaded_on(self, date: str) -> np.ndarray:
        """(I,) bool: the fresh uploads of ``date`` (no interaction before it)."""
        start = pa.scalar(day_bounds(date)[0], self.upload_ts.type)
        return np.asarray(pc.greater_equal(self.upload_ts, start).to_numpy(zero_copy_only=False))


def load_catalog(
    settings: Settings, catalog_date: str, features_date: str | None, requested_at: datetime
) -> Catalog:
    """Videos of the bronze.videos snapshot of ``catalog_date`` joined to their features of ``features_date``.

    ``requested_at`` is when the recommendations are meant to be served: each video's age at that
    moment (``video_age_hours``, at least 0) is its freshness feature.
    """
    videos = lake.read(VIDEOS, settings, dates=[catalog_date], columns=[VIDEO_ID, UPLOAD_TS]).sort_by(
        VIDEO_ID
    )
    age_us = pc.subtract(
        pa.scalar(requested_at, videos.schema.field(UPLOAD_TS).type).cast(pa.int64()),
        videos.column(UPLOAD_TS).cast(pa.int64()),
    )
    videos = videos.append_column(
        REQUEST_AGE, pc.max_element_wise(pc.divide(age_us.cast(pa.float64()), 3.6e9), 0.0)
    )
    if features_date is not None and lake.exists(VIDEO_FEATURES, settings):
        features = lake.read(VIDEO_FEATURES, settings, dates=[features_date])
        joined = videos.join(features.drop_columns([DT]), keys=VIDEO_ID, join_type="left outer").sort_by(
            VIDEO_ID
        )
    else:
        joined = videos
    return Catalog(joined.column(VIDEO_ID).to_pylist(), joined.column(UPLOAD_TS), joined)


def load_users(settings: Settings, features_date: str, user_ids: list[str] | None = None) -> pa.Table:
    """User features of ``features_date``: every user with a row (sorted), or exactly ``user_ids`` in order.

    A user of ``user_ids`` without a row (signed up on the evaluated day) gets nulls.
    """
    features = lake.read(USER_FEATURES, settings, dates=[features_date]).drop_columns([DT])
    if user_ids is None:
        return features.sort_by(USER_ID)
    # Arrow joins cannot carry list columns (recent_video_ids): take rows by position instead.
    position = {u: i for i, u in enumerate(features.column(USER_ID).to_pylist())}
    rows = features.take(pa.array([position.get(u) for u in user_ids], pa.int64()))
    return rows.set_column(rows.schema.get_field_index(USER_ID), USER_ID, pa.array(user_ids, pa.string()))


@torch.no_grad()
def embed_users(
    trained: TrainedModel,
    users: pa.Table,
    content: ContentLookup,
    positives: dict[str, list[str]] | None = None,
) -> np.ndarray:
    """(U, D) float32 unit user embeddings, rows in ``users`` order (D includes the bias coordinate)."""
    out = []
    for start in range(0, users.num_rows, EMBED_BATCH):
        part = users.slice(start, EMBED_BATCH)
        x = user_numeric({c: part.column(c) for c in part.column_names}, part.num_rows)
        inputs = user_inputs(
            x,
            part.column(RECENT_VIDEO_IDS).to_pylist(),
            trained.space,
            content,
            user_ids=part.column(USER_ID).to_pylist(),
            positives=None
            if positives is None
            else [positives.get(u, []) for u in part.column(USER_ID).to_pylist()],
        )
        # Unit length: with an item bias the tower gives [u, 1]; scaling every user alike keeps the ranking.
        out.append(torch.nn.functional.normalize(trained.model.embed_users(inputs), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, trained.cfg.embedding_dim), np.float32)


@torch.no_grad()
def embed_videos(trained: TrainedModel, catalog: Catalog, content: ContentLookup) -> np.ndarray:
    """(I, D) float32 video embeddings (unit direction + bias coordinate), in ``catalog.video_ids`` order."""
    out = []
    table = catalog.features
    for start in range(0, table.num_rows, EMBED_BATCH):
        part = table.slice(start, EMBED_BATCH)
        x = video_numeric({c: part.column(c) for c in part.column_names}, part.num_rows)
        inputs = video_inputs(part.column(VIDEO_ID).to_pylist(), x, trained.space, content, trained.cfg)
        out.append(trained.model.embed_videos(inputs).numpy())
    return np.concatenate(out) if out else np.zeros((0, trained.cfg.embedding_dim), np.float32)
