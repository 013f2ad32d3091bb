"""Source ``ease``: EASE, the closed-form item-item linear autoencoder (Steck, WWW 2019).

Fitted on the binary user-item matrix ``X`` of the positives of the ``window_days`` nights ending at
``as_of``, restricted to the ``ease_items`` most-watched items of that window::

    P = (X^T X + lambda * I)^-1,   B = I - P / diag(P)  (column j divided by P_jj),   diag(B) = 0

so ``B[i, j] = -P[i, j] / P[j, j]`` off the diagonal. A user's scores are ``history @ B`` over their
positives of the history window (``night.histories``); items outside the modelled set score nothing,
and users without a modelled history video get no candidate.

Memory: the Gram matrix, its inverse and ``B`` are ``n x n`` float64, ~``3 * n**2 * 8`` bytes at peak
(216 MB for n = 3000), plus ``B`` as float32 for scoring; scoring blocks are ``(block, n)`` float32.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from models.baselines import popularity_scores
from models.interactions import user_history_matrix
from models.sources.base import Night, SourceCandidates, empty_candidates, top_k_candidates
from models.sources.config import SourcesConfig
from models.sources.night import window_positives
from models.topk import ScoreBlock

NAME = "ease"


def ease_weights(x: sp.spmatrix | np.ndarray, lam: float) -> np.ndarray:
    """``(n, n)`` float64 EASE weights ``B`` of a binary ``(users, n)`` matrix, zero diagonal.

    Raises:
        ValueError: if ``lam`` is not positive (the Gram matrix may then be singular).
    """
    if lam <= 0:
        raise ValueError(f"ease_lambda must be > 0, got {lam}")
    gram = x.T @ x
    gram = np.asarray(gram.toarray() if sp.issparse(gram) else gram, dtype=np.float64)  # (n, n)
    gram[np.diag_indices_from(gram)] += lam
    # Symmetric positive definite (lambda > 0): invert through its Cholesky factor.
    factor = scipy.linalg.cho_factor(gram, overwrite_a=True, check_finite=False)
    p = scipy.linalg.cho_solve(factor, np.eye(len(gram)), overwrite_b=True, check_finite=False)
    weights = p / (-np.diag(p))[None, :]  # B_ij = -P_ij / P_jj
    np.fill_diagonal(weights, 0.0)
    return weights


def most_watched(item_index: np.ndarray, n_items: int, n: int) -> np.ndarray:
    """The catalog columns of the ``n`` items with most window positives (ties: lower index), sorted."""
    counts = popularity_scores(item_index, n_items)
    ranked = np.lexsort((np.arange(n_items), -counts))
    return np.sort(ranked[: min(n, int(np.count_nonzero(counts)))])


def ease_block(history: sp.csr_matrix, weights: np.ndarray) -> ScoreBlock:
    """``slice -> (B, n)`` scores ``history @ weights``; rows of users without history are ``-inf``.

    Args:
        history: ``(U, n)`` binary CSR over the modelled items.
        weights: ``(n, n)`` EASE weights.
    """
    weights32 = np.asarray(weights, np.float32)
    has_history = np.diff(history.indptr) > 0

    def block(rows: slice) -> np.ndarray:
        scores = np.asarray(history[rows] @ weights32, np.float32)  # (B, n)
        scores[~has_history[rows]] = -np.inf
        return scores

    return block


def retrieve(night: Night, k: int, cfg: SourcesConfig | None = None) -> SourceCandidates:
    """The ``k`` best EASE scores per user over the window's most-watched items."""
    cfg = cfg or SourcesConfig()
    n_items = len(night.video_ids)
    window = window_positives(night, cfg.window_days)
    modelled = most_watched(window.item_index, n_items, cfg.ease_items)  # (n,) catalog columns
    if not len(modelled):
        return empty_candidates(NAME, len(night.user_ids))
    position = np.full(n_items, -1, np.int64)
    position[modelled] = np.arange(len(modelled))
    keep = position[window.item_index] >= 0
    x = user_history_matrix(
        window.user_index[keep], position[window.item_index[keep]], len(window.user_ids), len(modelled)
    )
    weights = ease_weights(x, cfg.ease_lambda)
    history = night.history_matrix()[:, modelled].tocsr()
    return top_k_candidates(NAME, ease_block(history, weights), night, k, columns=modelled)
