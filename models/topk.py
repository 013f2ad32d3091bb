"""Exact top-k over the full catalog, blocked over users, with per-user exclusions.

Any scorer plugs in as a ``score_block(slice(a, b)) -> (b - a, I)`` callback (a model's user-item dot
products, popularity, co-visitation), so every model and baseline is ranked by the same code: one dense
block of scores in memory at a time, ``block_size * I * 4`` bytes plus about twice that for the selection.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

ScoreBlock = Callable[[slice], np.ndarray]

DEFAULT_BLOCK_SIZE = 2048
_LOW_BITS = np.int64(0xFFFFFFFF)


def _rank_keys(scores: np.ndarray) -> np.ndarray:
    """One unique int64 key per entry ordering by score descending, then item index ascending.

    The float32 score is mapped to an int32 that sorts like the float (negative floats have their magnitude
    bits flipped) and put in the high 32 bits; the low 32 bits hold ``0xFFFFFFFF - item``, so of two equal
    scores the lower item gets the larger key. Keys never tie, which makes argpartition deterministic.

    Args:
        scores: ``(B, I)`` float32, no NaN, ``-0.0`` normalised to ``0.0``.

    Returns:
        ``(B, I)`` int64 keys, larger is better.
    """
    bits = scores.view(np.int32)
    keys = bits.astype(np.int64)  # in-place from here on: blocks are large
    keys[bits < 0] ^= 0x7FFFFFFF
    keys <<= 32
    keys += _LOW_BITS - np.arange(scores.shape[1], dtype=np.int64)
    return keys


def blocked_top_k(
    score_block: ScoreBlock,
    n_users: int,
    k: int,
    exclude: sp.csr_matrix | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best-scored items of every user, exactly, scored ``block_size`` users at a time.

    For each block ``slice(a, b)``, ``score_block`` returns dense ``(b - a, I)`` scores. Excluded entries
    (the stored nonzeros of ``exclude[a:b]``, typically the user's training positives) and non-finite
    scores (NaN, +-inf) become ``-inf`` and are never returned. The top k come from ``np.argpartition`` and
    are then sorted by score descending, equal scores by lower item index, so results are deterministic.

    The block returned by ``score_block`` may be overwritten in place (it is copied first only if read-only
    or not float32), so return a fresh array rather than a view of state you keep.

    Args:
        score_block: ``slice(a, b) -> (b - a, I)`` scores for users ``a .. b - 1``.
        n_users: Number of users ``U``; blocks cover ``[0, U)``.
        k: Items per user, ``k >= 1``. If ``k > I`` only ``I`` can be real and the rest is padding.
        exclude: Optional ``(U, I)`` CSR whose stored nonzeros are items not to recommend.
        block_size: Users scored per call of ``score_block``.

    Returns:
        ``(items (U, k) int64, scores (U, k) float32)``, best first. Where a user has fewer than ``k``
        eligible items the row is padded with item ``-1`` and score ``-inf``.

    Raises:
        ValueError: If ``k`` or ``block_size`` is below 1, or a block or ``exclude`` has the wrong shape.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got k={k}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if exclude is not None:
        exclude = sp.csr_matrix(exclude)
        if exclude.shape[0] != n_users:
            raise ValueError(f"exclude has {exclude.shape[0]} rows but n_users={n_users}")
    items_out = np.full((n_users, k), -1, dtype=np.int64)
    scores_out = np.full((n_users, k), -np.inf, dtype=np.float32)
    n_items: int | None = None
    for start in range(0, n_users, block_size):
        stop = min(start + block_size, n_users)
        scores = _writable_float32(score_block(slice(start, stop)))  # (B, I)
        if scores.ndim != 2 or scores.shape[0] != stop - start:
            raise ValueError(f"score_block(slice({start}, {stop})) returned shape {scores.shape}")
        if n_items is None:
            n_items = scores.shape[1]
            if exclude is not None and exclude.shape[1] != n_items:
                raise ValueError(f"exclude has {exclude.shape[1]} items but score_block scores {n_items}")
            if n_items > 0xFFFFFFFF:
                raise ValueError(f"top-k keys hold at most 2**32 - 1 items, score_block scores {n_items}")
        elif scores.shape[1] != n_items:
            raise ValueError(
                f"score_block(slice({start}, {stop})) scores {scores.shape[1]} items, not {n_items}"
            )
        k_eff = min(k, n_items)
        if k_eff == 0:
            continue
        scores[~np.isfinite(scores)] = -np.inf
        if exclude is not None:
            rows, cols = exclude[start:stop].nonzero()
            scores[rows, cols] = -np.inf
        scores += np.float32(0.0)  # -0.0 -> 0.0, so the bit-level keys treat them as equal
        keys = _rank_keys(scores)  # (B, I)
        top = np.argpartition(keys, n_items - k_eff, axis=1)[:, n_items - k_eff :]  # (B, k_eff), unordered
        order = np.argsort(np.take_along_axis(keys, top, axis=1), axis=1)[:, ::-1]  # keys are unique
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(scores, top, axis=1)
        eligible = top_scores > -np.inf
        items_out[start:stop, :k_eff] = np.where(eligible, top, -1)
        scores_out[start:stop, :k_eff] = top_scores
    return items_out, scores_out


def _writable_float32(block: np.ndarray) -> np.ndarray:
    """``block`` as a float32 array this module may overwrite (copied only when it must be)."""
    block = np.asarray(block)
    if block.dtype != np.float32 or not block.flags.writeable or not block.flags.c_contiguous:
        return np.array(block, dtype=np.float32, order="C")
    return block


def popularity_block(popularity: np.ndarray) -> ScoreBlock:
    """A ``score_block`` giving every user the same popularity scores.

    Args:
        popularity: ``(I,)`` item scores, e.g. from :func:`models.baselines.popularity_scores`.

    Returns:
        ``slice(a, b) -> (b - a, I)`` float32, a fresh array per call (``blocked_top_k`` writes into it).
    """
    row = np.asarray(popularity, dtype=np.float32)
    if row.ndim != 1:
        raise ValueError(f"popularity must be 1-D (I,), got shape {row.shape}")

    def score(rows: slice) -> np.ndarray:
        return np.tile(row, (rows.stop - rows.start, 1))

    return score


def top_k_with_quota(
    score_block: ScoreBlock,
    n_users: int,
    k: int,
    quota_items: np.ndarray,
    quota: int,
    exclude: sp.csr_matrix | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` where ``quota`` slots are reserved for the items flagged in ``quota_items``.

    A feed reserves a few slots for fresh uploads: they have no interactions yet, so a scorer fitted
    on past positives (correctly) rates each of them below the established videos and plain top-k
    would never surface them. Here each user gets the best ``k - quota`` unflagged items plus the
    best ``quota`` flagged ones (both exact, via :func:`blocked_top_k`), merged by score descending.
    Where a user has fewer eligible flagged items, the slots go back to unflagged items.

    Args:
        score_block, n_users, exclude, block_size: as :func:`blocked_top_k`.
        k: items per user.
        quota_items: ``(I,)`` bool, the items eligible for the reserved slots.
        quota: reserved slots, ``0 <= quota <= k``.

    Returns:
        ``(items (U, k) int64, scores (U, k) float32)`` as :func:`blocked_top_k`.
    """
    if not 0 <= quota <= k:
        raise ValueError(f"quota must be in [0, k={k}], got {quota}")
    flagged = np.asarray(quota_items, dtype=bool)
    if quota == 0 or not flagged.any():
        return blocked_top_k(score_block, n_users, k, exclude=exclude, block_size=block_size)

    def only(mask: np.ndarray) -> ScoreBlock:
        def block(rows: slice) -> np.ndarray:
            scores = _writable_float32(score_block(rows))
            scores[:, ~mask] = -np.inf
            return scores

        return block

    fresh_items, fresh_scores = blocked_top_k(only(flagged), n_users, quota, exclude, block_size)
    taken = (fresh_items >= 0).sum(axis=1)  # (U,) reserved slots actually filled
    other_items, other_scores = blocked_top_k(only(~flagged), n_users, k, exclude, block_size)
    # Keep the best k - taken[u] unflagged items of each user, then merge by score.
    keep_other = np.arange(k)[None, :] < (k - taken)[:, None]
    items = np.concatenate([np.where(keep_other, other_items, -1), fresh_items], axis=1)  # (U, k + quota)
    scores = np.concatenate([np.where(keep_other, other_scores, -np.inf), fresh_scores], axis=1)
    scores = np.where(items >= 0, scores, -np.inf).astype(np.float32)
    order = np.lexsort((items, -scores.astype(np.float64)), axis=1)[:, :k]
    return np.take_along_axis(items, order, axis=1), np.take_along_axis(scores, order, axis=1)
