"""Source ``covisit``: videos co-visited with the user's history (item-to-item co-visitation).

``C[i, j]`` counts users with positives on both ``i`` and ``j`` over the ``window_days`` nights ending
at ``as_of`` (:func:`models.baselines.covisitation_matrix`, each user's 50 latest items). A user's
score for ``j`` is ``history @ C`` over their positives of the history window (``night.histories``),
the same scoring as :mod:`models.evaluate`'s covisit baseline, with window popularity as a tie-break
below 1. Unlike the baseline, popularity is no fallback here: only videos co-visited with the user's
history are candidates (``trending`` covers the rest), so users without history get none.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models.baselines import covisitation_matrix, popularity_scores
from models.sources.base import Night, SourceCandidates, top_k_candidates
from models.sources.config import SourcesConfig
from models.sources.night import window_positives
from models.topk import ScoreBlock

NAME = "covisit"
TIE_BREAK = 0.5  # below 1: integer co-visitation counts are never reordered by popularity


def covisit_block(history: sp.csr_matrix, covisit: sp.csr_matrix, popularity: np.ndarray) -> ScoreBlock:
    """``slice -> (B, I)`` scores ``history @ covisit`` (+ popularity tie-break); ``-inf`` where zero.

    Args:
        history: ``(U, I)`` binary CSR of each user's history videos.
        covisit: ``(I, I)`` co-visitation counts.
        popularity: ``(I,)`` window positives per video.
    """
    top = float(np.max(popularity, initial=0.0))
    tie = (
        TIE_BREAK * np.asarray(popularity, np.float64) / top if top > 0 else np.zeros(len(popularity))
    ).astype(np.float32)

    def block(rows: slice) -> np.ndarray:
        scores = np.asarray((history[rows] @ covisit).toarray(), dtype=np.float32)  # (B, I)
        reached = scores > 0
        scores += tie
        scores[~reached] = -np.inf
        return scores

    return block


def retrieve(night: Night, k: int, cfg: SourcesConfig | None = None) -> SourceCandidates:
    """The ``k`` most co-visited videos per user (fitted on the window up to ``as_of``)."""
    cfg = cfg or SourcesConfig()
    n_items = len(night.video_ids)
    window = window_positives(night, cfg.window_days)
    covisit = covisitation_matrix(
        window.user_index, window.item_index, len(window.user_ids), n_items, timestamps=window.timestamps
    )
    popularity = popularity_scores(window.item_index, n_items)
    return top_k_candidates(NAME, covisit_block(night.history_matrix(), covisit, popularity), night, k)
