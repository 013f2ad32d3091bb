"""Source ``fresh_content``: the newest uploads that look like what the user liked (content only).

Fresh uploads have no interactions, so only their content can place them. A video's content vector
is its unit text embedding and unit frame embedding concatenated (each normalised first so the
384-d text and the 32-d frames weigh alike; a missing part is zeros). A user's taste is the mean
content vector of their history videos (``night.histories``, positives up to ``as_of``); the score
is the cosine between taste and each video uploaded within ``fresh_days`` up to D. Users without a
history (or whose history has no content) get no candidate.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models.interactions import user_history_matrix
from models.sources.base import Night, SourceCandidates, empty_candidates, top_k_candidates
from models.sources.config import SourcesConfig
from models.sources.night import recent_uploads
from models.topk import ScoreBlock

NAME = "fresh_content"


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def content_vectors(text: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """``(N, T + F)`` float32: unit text and unit frame embeddings side by side, scaled to unit length."""
    text = _unit_rows(np.asarray(text, np.float32))
    frame = _unit_rows(np.asarray(frame, np.float32))
    return _unit_rows(np.concatenate([text, frame], axis=1))


def taste_vectors(history: sp.csr_matrix, vectors: np.ndarray) -> np.ndarray:
    """``(U, D)`` unit mean of each user's history content vectors; NaN rows for users with none.

    Args:
        history: ``(U, N)`` binary CSR over the rows of ``vectors``.
        vectors: ``(N, D)`` content vectors (zero rows: no content).
    """
    has_content = (np.linalg.norm(vectors, axis=1) > 0).astype(np.float32)
    counts = np.asarray(history @ has_content).ravel()  # (U,)
    taste = _unit_rows(np.asarray(history @ vectors, np.float32))
    taste[counts == 0] = np.nan
    return taste


def fresh_block(taste: np.ndarray, fresh_vectors: np.ndarray) -> ScoreBlock:
    """``slice -> (B, F)`` cosine of taste and fresh videos; ``-inf`` for users or videos without content."""
    no_content = np.linalg.norm(fresh_vectors, axis=1) == 0

    def block(rows: slice) -> np.ndarray:
        scores = np.asarray(taste[rows] @ fresh_vectors.T, np.float32)  # (B, F)
        scores[:, no_content] = -np.inf
        scores[~np.isfinite(scores)] = -np.inf
        return scores

    return block


def retrieve(night: Night, k: int, cfg: SourcesConfig | None = None) -> SourceCandidates:
    """The ``k`` fresh uploads most similar to each user's history."""
    from models.content import load_content
    from models.two_tower.inputs import ContentLookup

    cfg = cfg or SourcesConfig()
    columns = np.flatnonzero(recent_uploads(night, cfg.fresh_days))
    history_ids = sorted({v for u in night.user_ids for v in night.histories.get(u, [])})
    if not len(columns) or not history_ids:
        return empty_candidates(NAME, len(night.user_ids))
    fresh_ids = [night.video_ids[c] for c in columns]
    content = ContentLookup.from_table(
        load_content(night.settings, sorted(set(history_ids) | set(fresh_ids)))
    )
    vectors = content_vectors(content.text, content.frame)  # (N, D), rows in content.index order
    vectors = np.concatenate([vectors, np.zeros((1, vectors.shape[1]), np.float32)])  # last row: no content
    no_content = len(vectors) - 1
    user_rows = [
        (i, content.index.get(v, no_content))
        for i, u in enumerate(night.user_ids)
        for v in night.histories.get(u, [])
    ]
    history = user_history_matrix(
        np.array([i for i, _ in user_rows], np.int64),
        np.array([r for _, r in user_rows], np.int64),
        len(night.user_ids),
        len(vectors),
    )
    fresh_vectors = vectors[content.rows(fresh_ids)]  # -1 picks the zero row
    block = fresh_block(taste_vectors(history, vectors), fresh_vectors)
    return top_k_candidates(NAME, block, night, k, columns=columns)
