"""Non-learned retrieval baselines, scored in the same top-k harness as the trained model.

- Popularity: every user gets the items with the most training positives.
- Item-item co-visitation: a user's score for item ``j`` is the number of (history item, co-visitor)
  pairs that reach ``j``, i.e. ``history @ C`` with ``C[i, j]`` = users with positives on both ``i`` and
  ``j``; popularity breaks ties and covers users without history.

Inputs are parallel index arrays of training positives (``user_index[n]``, ``item_index[n]``) already
mapped to contiguous ids ``[0, U)`` and ``[0, I)`` (see :mod:`models.interactions`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models.interactions import check_index, user_history_matrix

DEFAULT_MAX_ITEMS_PER_USER = 50
POPULARITY_TIE_BREAK = 1e-6


def popularity_scores(item_index: np.ndarray, n_items: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Popularity of each item: its (weighted) count of training positives.

    Args:
        item_index: ``(N,)`` int item index of each training positive.
        n_items: Catalog size ``I``.
        weights: Optional ``(N,)`` weight of each positive (e.g. a recency decay); ``None`` counts 1 each.

    Returns:
        ``(I,)`` float32 scores; items without positives score 0.

    Raises:
        ValueError: If an item index is outside ``[0, n_items)`` or ``weights`` does not match ``item_index``.
    """
    item_index = check_index("item_index", item_index, n_items, "n_items")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != item_index.shape:
            raise ValueError(f"weights has shape {weights.shape} but item_index has {item_index.shape}")
    return np.bincount(item_index, weights=weights, minlength=n_items).astype(np.float32)


def covisitation_matrix(
    user_index: np.ndarray,
    item_index: np.ndarray,
    n_users: int,
    n_items: int,
    timestamps: np.ndarray | None = None,
    max_items_per_user: int = DEFAULT_MAX_ITEMS_PER_USER,
) -> sp.csr_matrix:
    """Item-item co-visitation counts: ``C[i, j]`` = users with positives on both ``i`` and ``j``.

    Built as ``B.T @ B`` over the binary user-item matrix ``B`` (a user's repeated positives on one item
    count once), diagonal zeroed. With ``timestamps``, each user contributes only their
    ``max_items_per_user`` most recent items: a heavy user's ``n`` items add ``n**2`` pairs, and the last
    few items say more about what goes together now. Without ``timestamps`` every positive counts.

    Args:
        user_index: ``(N,)`` int user index of each training positive.
        item_index: ``(N,)`` int item index of each training positive.
        n_users: Number of users ``U``.
        n_items: Catalog size ``I``.
        timestamps: Optional ``(N,)`` sortable time of each positive, enabling the per-user cap.
        max_items_per_user: Per-user history cap applied when ``timestamps`` is given.

    Returns:
        ``(I, I)`` symmetric float32 CSR, zero diagonal, no stored zeros.

    Raises:
        ValueError: If the indices are out of range or the arrays differ in length.
    """
    history = user_history_matrix(
        user_index, item_index, n_users, n_items, timestamps=timestamps, max_items_per_user=max_items_per_user
    )
    covisit = (history.T @ history).tocsr().astype(np.float32)  # (I, I)
    covisit.setdiag(0)
    covisit.eliminate_zeros()
    covisit.sort_indices()
    return covisit


def covisitation_scores(
    history: sp.csr_matrix,
    covisit: sp.csr_matrix,
    popularity: np.ndarray,
    rows: slice | np.ndarray,
    tie_break: float = POPULARITY_TIE_BREAK,
) -> np.ndarray:
    """Co-visitation scores for a block of users, with popularity as tie-break and fallback.

    ``scores = history[rows] @ covisit + tie_break * popularity / popularity.max()``. A user without history
    scores only the popularity term, so their ranking is the popularity ranking; among items with equal
    co-visitation the more popular comes first. The tie-break is below 1 while co-visitation scores are
    integers (binary history, count matrix), so it never reorders distinct co-visitation scores. In float32 it
    resolves popularity only while the co-visitation score is small (its spacing at 16 is ~2e-6), so for
    large scores equal-scored items tie exactly and the top-k harness falls back to the lower item index.

    Args:
        history: ``(U, I)`` binary CSR of each user's recent positives (see :func:`user_history_matrix`).
        covisit: ``(I, I)`` CSR from :func:`covisitation_matrix`.
        popularity: ``(I,)`` scores from :func:`popularity_scores`.
        rows: The users to score: a slice or an int array of row indices, ``B`` users.
        tie_break: Weight of the normalised popularity term.

    Returns:
        ``(B, I)`` dense float32 scores.

    Raises:
        ValueError: If the shapes of ``history``, ``covisit`` and ``popularity`` disagree.
    """
    n_items = covisit.shape[1]
    if covisit.shape[0] != n_items or history.shape[1] != n_items or np.shape(popularity) != (n_items,):
        raise ValueError(
            f"shapes disagree: history {history.shape}, covisit {covisit.shape}, "
            f"popularity {np.shape(popularity)}; expected (U, I), (I, I), (I,)"
        )
    scores = np.asarray((history[rows] @ covisit).toarray(), dtype=np.float32)  # (B, I)
    top = float(np.max(popularity, initial=0.0))
    if top > 0:
        scores += (tie_break * np.asarray(popularity, dtype=np.float64) / top).astype(np.float32)
    return scores
