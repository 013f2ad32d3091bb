"""Source ``trending``: the same rising videos for every user (cold users included), watched removed.

Score of a video (silver.video_features of ``as_of``, the last night known)::

    VIEWS_WEIGHT * log1p(views_1d) / max(log1p(views_1d))
    + (1 - VIEWS_WEIGHT) * trending_score / max(trending_score)

``views_1d`` (what is big right now) leads: alone it recalls far more of the next day's positives
than ``trending_score`` alone (small home, 2026-11-06: recall@100 0.530 vs 0.248, 0.5/0.5 mix 0.506).
``trending_score`` (``views_1d / (views_7d / 7 + 1) * ln(1 + views_1d)``, a rise over the week's
daily average) gets a small weight that lifts rising videos among similarly viewed ones. Each term
is scaled to [0, 1] over the catalog so neither dominates by units. Videos without a feature row
of ``as_of`` (uploaded on D) or without views that night score nothing.
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from models.interactions import index_of
from models.sources.base import Night, SourceCandidates, top_k_candidates
from reelrec import lake
from reelrec.catalog import TRENDING_SCORE, VIDEO_FEATURES, VIDEO_ID

NAME = "trending"
VIEWS_1D = "views_1d"
VIEWS_WEIGHT = 0.9  # tuned on the small home: 0.9 and 1.0 tie, 0.5 loses (module docstring)


def trending_scores(trending: np.ndarray, views_1d: np.ndarray) -> np.ndarray:
    """``(I,)`` float32 combined score (module docstring); ``-inf`` where the video has no views that night.

    Args:
        trending: ``(I,)`` trending_score, NaN where unknown.
        views_1d: ``(I,)`` views of the night, NaN where unknown.
    """
    trending = np.nan_to_num(np.asarray(trending, np.float64), nan=0.0)
    views = np.nan_to_num(np.asarray(views_1d, np.float64), nan=0.0)
    log_views = np.log1p(np.maximum(views, 0.0))
    score = VIEWS_WEIGHT * log_views / max(log_views.max(initial=0.0), 1e-12) + (
        1 - VIEWS_WEIGHT
    ) * trending / max(trending.max(initial=0.0), 1e-12)
    return np.where(views > 0, score, -np.inf).astype(np.float32)


def load_features(night: Night) -> tuple[np.ndarray, np.ndarray]:
    """``(I,)`` trending_score and views_1d of ``as_of`` in catalog order (NaN for videos without a row)."""
    n_items = len(night.video_ids)
    trending = np.full(n_items, np.nan)
    views = np.full(n_items, np.nan)
    if not lake.exists(VIDEO_FEATURES, night.settings):
        return trending, views
    table = lake.read(
        VIDEO_FEATURES, night.settings, dates=[night.as_of], columns=[VIDEO_ID, TRENDING_SCORE, VIEWS_1D]
    )
    cols = index_of(table.column(VIDEO_ID).to_pylist(), night.items)
    ok = cols >= 0
    trending[cols[ok]] = pc.fill_null(table.column(TRENDING_SCORE), np.nan).to_numpy()[ok]
    views[cols[ok]] = pc.fill_null(table.column(VIEWS_1D).cast("float64"), np.nan).to_numpy()[ok]
    return trending, views


def retrieve(night: Night, k: int) -> SourceCandidates:
    """The ``k`` best-trending videos of ``as_of``, minus each user's watched videos."""
    row = trending_scores(*load_features(night))

    def block(rows: slice) -> np.ndarray:
        return np.tile(row, (rows.stop - rows.start, 1))

    return top_k_candidates(NAME, block, night, k)
