"""Offline retrieval metrics over a full-catalog ranking (recall@K, NDCG@K, catalog coverage@K).

Protocol shared by every function here:

- ``ranked`` is a ``(U, L)`` int array, ``L >= K``: for each evaluated user, item indices ranked over the
  *whole* catalog (not a sampled candidate set), best first, already excluding the user's training items.
  Rows are right-padded with ``-1`` where fewer than ``L`` items were ranked; ``-1`` never counts as a hit
  nor as a covered item.
- ``relevant[u]`` holds the item indices that count as relevant for user ``u`` (the held-out positives of
  the evaluation window), binary relevance, duplicates counted once.
- Per-user recall and NDCG are averaged over users with at least one relevant item; users with none are
  skipped (they carry no signal), and a metric is ``0.0`` when no user has a relevant item.

Everything is vectorised over ``(user, item)`` keys, so U = 30k users at K = 100 is a few array passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_KS: tuple[int, ...] = (10, 50, 100)


def _check_ranked(ranked: np.ndarray, k: int) -> np.ndarray:
    """``ranked`` as a 2-D int64 array, after checking it against the cutoff ``k``."""
    ranked = np.asarray(ranked)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be a 2-D (users, ranks) array, got shape {ranked.shape}")
    if ranked.size and not np.issubdtype(ranked.dtype, np.integer):
        raise ValueError(f"ranked must hold integer item indices, got dtype {ranked.dtype}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got k={k}")
    if k > ranked.shape[1]:
        raise ValueError(f"k={k} is larger than the {ranked.shape[1]} ranked items per user in ranked")
    ranked = ranked.astype(np.int64, copy=False)
    if ranked.size and ranked.min() < -1:
        raise ValueError(f"ranked holds item index {ranked.min()}; only -1 may pad a row")
    return ranked


def _relevant_keys(relevant: Sequence[np.ndarray], n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ``relevant`` into ``(user, item)`` pairs, duplicates dropped.

    Returns:
        ``(users (P,), items (P,))`` int64, sorted by user then item.
    """
    if len(relevant) != n_users:
        raise ValueError(f"relevant has {len(relevant)} users but ranked has {n_users} rows")
    parts = [np.asarray(items).ravel() for items in relevant]
    lengths = np.fromiter((p.size for p in parts), dtype=np.int64, count=n_users)
    nonempty = [p for p in parts if p.size]
    if not nonempty:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    bad_dtype = next((p.dtype for p in nonempty if not np.issubdtype(p.dtype, np.integer)), None)
    if bad_dtype is not None:
        raise ValueError(f"relevant must hold integer item indices, got dtype {bad_dtype}")
    items = np.concatenate(nonempty).astype(np.int64, copy=False)
    if items.min() < 0:
        raise ValueError(f"relevant holds negative item index {items.min()}")
    users = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    # One int64 key per pair; np.unique both dedupes and sorts by (user, item).
    n_keys = int(items.max()) + 1
    keys = np.unique(users * n_keys + items)
    return keys // n_keys, keys % n_keys


def _hits(ranked: np.ndarray, relevant: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of each user's top ``k`` ranked items are relevant.

    Returns:
        ``hits (U, k)`` bool and ``n_relevant (U,)`` int64 (distinct relevant items per user).
    """
    ranked = _check_ranked(ranked, k)
    n_users = ranked.shape[0]
    rel_users, rel_items = _relevant_keys(relevant, n_users)
    n_relevant = np.bincount(rel_users, minlength=n_users).astype(np.int64)
    top = ranked[:, :k]  # (U, k)
    _check_no_repeats(top)
    n_keys = max(int(rel_items.max(initial=-1)), int(top.max(initial=-1))) + 1
    users = np.arange(n_users, dtype=np.int64)[:, None]
    # Padding (-1) gets a key no relevant pair can have.
    top_keys = np.where(top >= 0, users * n_keys + top, -1)  # (U, k)
    # Relevant keys come sorted and unique: a binary search beats np.isin, which re-sorts all U * k keys.
    rel_keys = rel_users * n_keys + rel_items  # (P,)
    if rel_keys.size == 0:
        return np.zeros(top.shape, dtype=bool), n_relevant
    pos = np.minimum(np.searchsorted(rel_keys, top_keys), rel_keys.size - 1)
    hits = rel_keys[pos] == top_keys  # (U, k)
    return hits, n_relevant


def _check_no_repeats(top: np.ndarray) -> None:
    """Reject a ranking listing the same item twice in a row's top k (recall could exceed 1)."""
    if top.shape[1] < 2:
        return
    ordered = np.sort(top, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if repeated.any():
        user = int(np.flatnonzero(repeated.any(axis=1))[0])
        raise ValueError(f"ranked row {user} lists an item more than once in its top {top.shape[1]}")


def _recall(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    scored = n_relevant > 0
    if not scored.any():
        return 0.0
    return float(np.mean(hits[scored].sum(axis=1) / n_relevant[scored]))


def _ndcg(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    scored = n_relevant > 0
    if not scored.any():
        return 0.0
    k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)  # (k,) gain of a hit at rank r
    dcg = hits[scored] @ discounts
    # The ideal list puts min(|relevant|, k) hits at ranks 0.. .
    idcg = np.cumsum(discounts)[np.minimum(n_relevant[scored], k) - 1]
    return float(np.mean(dcg / idcg))


def recall_at_k(ranked: np.ndarray, relevant: Sequence[np.ndarray], k: int) -> float:
    """Mean recall@K over a full-catalog ranking, binary relevance.

    Per user: ``|top K of ranked[u] ∩ relevant[u]| / |relevant[u]|`` (so a user with more than K relevant
    items cannot reach 1). Averaged over users with at least one relevant item; users with none are skipped.
    ``-1`` padding never counts as a hit.

    Args:
        ranked: ``(U, L)`` int item indices, best first, ``L >= k``, right-padded with ``-1``.
        relevant: ``U`` int arrays; ``relevant[u]`` are the relevant item indices of user ``u``.
        k: Cutoff, ``1 <= k <= L``.

    Returns:
        Mean recall@k in [0, 1]; ``0.0`` if no user has a relevant item.

    Raises:
        ValueError: If ``len(relevant) != U``, ``k`` is out of range, or a row repeats an item in its top k.
    """
    hits, n_relevant = _hits(ranked, relevant, k)
    return _recall(hits, n_relevant)


def ndcg_at_k(ranked: np.ndarray, relevant: Sequence[np.ndarray], k: int) -> float:
    """Mean NDCG@K over a full-catalog ranking, binary relevance.

    Per user: ``DCG = sum over hit ranks r (0-based, r < K) of 1 / log2(r + 2)``, divided by the ideal DCG
    of ``min(|relevant[u]|, K)`` hits at ranks ``0, 1, ...``. Averaged over users with at least one relevant
    item; users with none are skipped. ``-1`` padding never counts as a hit.

    Args:
        ranked: ``(U, L)`` int item indices, best first, ``L >= k``, right-padded with ``-1``.
        relevant: ``U`` int arrays; ``relevant[u]`` are the relevant item indices of user ``u``.
        k: Cutoff, ``1 <= k <= L``.

    Returns:
        Mean NDCG@k in [0, 1]; ``0.0`` if no user has a relevant item.

    Raises:
        ValueError: If ``len(relevant) != U``, ``k`` is out of range, or a row repeats an item in its top k.
    """
    hits, n_relevant = _hits(ranked, relevant, k)
    return _ndcg(hits, n_relevant)


def catalog_coverage(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Catalog coverage@K: the share of the catalog recommended to at least one user.

    Counts the distinct item indices in any user's top K (``-1`` padding ignored), over all rows of
    ``ranked`` whether or not the user has relevant items.

    Args:
        ranked: ``(U, L)`` int item indices, best first, ``L >= k``, right-padded with ``-1``.
        n_items: Catalog size ``I``; item indices must lie in ``[0, I)``.
        k: Cutoff, ``1 <= k <= L``.

    Returns:
        ``distinct items in the top k / n_items``, in [0, 1].

    Raises:
        ValueError: If ``k`` is out of range, ``n_items < 1`` or an item index is ``>= n_items``.
    """
    ranked = _check_ranked(ranked, k)
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    top = ranked[:, :k]
    items = top[top >= 0]
    if items.size and items.max() >= n_items:
        raise ValueError(f"ranked holds item index {items.max()} but the catalog has n_items={n_items}")
    return float(np.count_nonzero(np.bincount(items, minlength=n_items)) / n_items)


def retrieval_metrics(
    ranked: np.ndarray,
    relevant: Sequence[np.ndarray],
    n_items: int,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Recall@K and NDCG@K for every K in ``ks``, plus coverage at the largest K.

    Same protocol as :func:`recall_at_k`, :func:`ndcg_at_k` and :func:`catalog_coverage`; relevance is
    matched once at the largest K and sliced for the smaller ones.

    Args:
        ranked: ``(U, L)`` int item indices, best first, ``L >= max(ks)``, right-padded with ``-1``.
        relevant: ``U`` int arrays; ``relevant[u]`` are the relevant item indices of user ``u``.
        n_items: Catalog size ``I``.
        ks: Cutoffs, each in ``[1, L]``.

    Returns:
        ``{"recall@K": ..., "ndcg@K": ... for each K, "coverage@<max K>": ..., "users": n}``, where ``users``
        is the number of users with at least one relevant item (as a float, like every value).

    Raises:
        ValueError: If ``ks`` is empty, a K is out of range, or ``len(relevant) != U``.
    """
    if len(ks) == 0:
        raise ValueError("ks must name at least one cutoff")
    ranked = np.asarray(ranked)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be a 2-D (users, ranks) array, got shape {ranked.shape}")
    bad = [k for k in ks if k < 1 or k > ranked.shape[1]]
    if bad:
        raise ValueError(f"ks {bad} are outside [1, {ranked.shape[1]}] (the ranked items per user)")
    k_max = max(ks)
    hits, n_relevant = _hits(ranked, relevant, k_max)
    metrics: dict[str, float] = {}
    for k in sorted(set(ks)):
        metrics[f"recall@{k}"] = _recall(hits[:, :k], n_relevant)
        metrics[f"ndcg@{k}"] = _ndcg(hits[:, :k], n_relevant)
    metrics[f"coverage@{k_max}"] = catalog_coverage(ranked, n_items, k_max)
    metrics["users"] = float(np.count_nonzero(n_relevant))
    return metrics
