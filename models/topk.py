"""Exact top-k over the full catalog, blocked over users, with per-user exclusions.

Any scorer plugs in as a ``score_block(slice(a, b)) -> (b - a, I)`` callback (a model's user-item dot
products, popularity, co-visitation), so every model and baseline is ranked by the same code: one dense
block of scores in memory at a time, ``block_size * I * 4`` bytes plus a few small arrays for the
selection.

Selection runs near the speed of the matrix multiply that produces the block: each row is cut into
``_GROUPS_PER_K * k`` groups of columns, and the ``k``-th largest group maximum is a score that at least
``k`` distinct items reach, so the exact top ``k`` lies among the few items scoring at least that much.
Only those candidates are sorted (by score descending, then item ascending). Rows where that shortcut
cannot prove its answer (fewer than ``k`` eligible candidates, NaN or infinite scores, heavy ties) take
the exact full-row path, so results never depend on which path a row took.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

ScoreBlock = Callable[[slice], np.ndarray]

DEFAULT_BLOCK_SIZE = 2048
_LOW_BITS = np.int64(0xFFFFFFFF)
_GROUPS_PER_K = 16  # more groups: a tighter threshold (fewer candidates) for a costlier group partition
_ROWS_PER_PASS = 16  # rows selected at a time: their scores (16 * I * 4 bytes) stay in cache across passes
_MAX_CANDIDATES_PER_K = 32  # rows with more candidates (heavy ties) are cheaper on the full-row path


def _rank_keys(scores: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
    """One unique int64 key per entry ordering by score descending, then item index ascending.

    The float32 score is mapped to an int32 that sorts like the float (negative floats have their magnitude
    bits flipped) and put in the high 32 bits; the low 32 bits hold ``0xFFFFFFFF - item``, so of two equal
    scores the lower item gets the larger key. Keys never tie, which makes argpartition deterministic.

    Args:
        scores: ``(B, I)`` float32, no NaN, ``-0.0`` normalised to ``0.0``.
        items: Optional item index of each entry, broadcastable to ``scores``; by default the column.

    Returns:
        ``(B, I)`` int64 keys, larger is better.
    """
    bits = scores.view(np.int32)
    keys = bits.astype(np.int64)  # in-place from here on: blocks are large
    keys[bits < 0] ^= 0x7FFFFFFF
    keys <<= 32
    keys += _LOW_BITS - (np.arange(scores.shape[-1], dtype=np.int64) if items is None else items)
    return keys


def _full_row_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k <= I`` of every row by unique rank keys over the whole row (the reference path).

    Args:
        scores: ``(B, I)`` float32, overwritten: non-finite entries become ``-inf``.
        k: Items per row, ``1 <= k <= I``.

    Returns:
        ``(items (B, k) int64, scores (B, k) float32)``, best first, ineligible slots ``-1`` / ``-inf``.
    """
    n_items = scores.shape[1]
    scores[~np.isfinite(scores)] = -np.inf
    scores += np.float32(0.0)  # -0.0 -> 0.0, so the bit-level keys treat them as equal
    keys = _rank_keys(scores)  # (B, I)
    top = np.argpartition(keys, n_items - k, axis=1)[:, n_items - k :]  # (B, k), unordered
    order = np.argsort(np.take_along_axis(keys, top, axis=1), axis=1)[:, ::-1]  # keys are unique
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(scores, top, axis=1)
    return np.where(top_scores > -np.inf, top, -1), top_scores


def _candidate_threshold(scores: np.ndarray, k: int, reach: int) -> np.ndarray:
    """Per row, a score that at least ``reach`` distinct items reach: the ``reach``-th largest group maximum.

    Args:
        scores: ``(B, I)`` float32 with ``I >= 2 * _GROUPS_PER_K * k``.
        k: Items per row; ``_GROUPS_PER_K * k`` groups.
        reach: ``k <= reach <= _GROUPS_PER_K * k``, more than ``k`` where some candidates will be dropped.

    Returns:
        ``(B,)`` float32 thresholds; ``+inf`` where the row cannot be shortcut (NaN, or fewer than ``k``
        groups holding a score above ``-inf``), so that it selects no eligible candidate.
    """
    n_groups = _GROUPS_PER_K * k
    width = scores.shape[1] // n_groups
    # Group g holds items g, g + G, g + 2G, ...: the max runs as G-wide vector maxima over contiguous rows.
    group_max = scores[:, : n_groups * width].reshape(len(scores), width, n_groups).max(axis=1)  # (B, G)
    threshold = np.partition(group_max, n_groups - reach, axis=1)[:, n_groups - reach]
    threshold[~(threshold > -np.inf)] = np.inf
    return threshold


def _select_top_k(
    scores: np.ndarray, k: int, banned: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k <= I`` of every row, best first, ties to the lower item index.

    Args:
        scores: ``(B, I)`` float32 with excluded entries already ``-inf``; may be overwritten.
        k: Items per row, ``1 <= k <= I``.
        banned: Optional ``(I,)`` bool, columns ineligible for every row (cheaper than writing ``-inf``
            into them: only candidates and full-path rows are checked).

    Returns:
        ``(items (B, k) int64, scores (B, k) float32)``, ineligible slots ``-1`` / ``-inf``.
    """
    n_rows, n_items = scores.shape
    if n_items < 2 * _GROUPS_PER_K * k:
        if banned is not None:
            scores[:, banned] = -np.inf
        return _full_row_top_k(scores, k)
    # Banned columns hold about their share of the candidates: reach past them so k usually remain.
    reach = k if banned is None else min(_GROUPS_PER_K * k, k + int(2 * k * banned.mean()) + 4)
    threshold = _candidate_threshold(scores, k, reach)  # (B,)
    flat = np.nonzero((scores >= threshold[:, None]).reshape(-1))[0]  # row-major: rows, then items ascend
    rows, cols = np.divmod(flat, n_items)
    values = scores.reshape(-1)[flat] + np.float32(0.0)  # -0.0 -> 0.0
    eligible = values < np.inf  # NaN is never >= a threshold; -inf only passes an inf threshold
    if banned is not None:
        eligible &= ~banned[cols]
    counts = np.bincount(rows[eligible], minlength=n_rows)
    # With k eligible candidates, the k-th best eligible score is >= threshold: the top k are among them.
    fast = (counts >= k) & (counts <= _MAX_CANDIDATES_PER_K * k)  # (B,)
    keep = eligible & fast[rows]
    items = np.empty((n_rows, k), dtype=np.int64)
    top_scores = np.empty((n_rows, k), dtype=np.float32)
    if fast.any():
        items[fast], top_scores[fast] = _top_candidates(rows[keep], cols[keep], values[keep], fast, k)
    if not fast.all():
        slow = np.flatnonzero(~fast)
        slow_scores = scores[slow]
        if banned is not None:
            slow_scores[:, banned] = -np.inf
        items[slow], top_scores[slow] = _full_row_top_k(slow_scores, k)
    return items, top_scores


def _top_candidates(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, fast: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` candidates of each ``fast`` row, by unique rank keys in a small padded array.

    Args:
        rows, cols, values: ``(N,)`` candidates, rows ascending, finite values, each fast row >= k of them.
        fast: ``(B,)`` bool, the rows the candidates belong to.
        k: Items per row.

    Returns:
        ``(items (F, k) int64, scores (F, k) float32)`` for the ``F`` fast rows, best first.
    """
    slot = np.cumsum(fast) - 1  # (B,) row -> its index among the fast rows
    counts = np.bincount(rows, minlength=len(fast))
    starts = np.cumsum(counts) - counts
    padded = np.full((int(fast.sum()), int(counts.max())), np.iinfo(np.int64).min)  # (F, max count)
    padded[slot[rows], np.arange(len(rows)) - starts[rows]] = _rank_keys(values, cols)
    best = np.sort(padded, axis=1)[:, ::-1][:, :k]  # keys are unique, padding sorts last
    high = (best >> 32).astype(np.int32)
    high ^= (high >> 31) & 0x7FFFFFFF  # undo the sign flip of _rank_keys
    return _LOW_BITS - (best & _LOW_BITS), high.view(np.float32)


def _checked_block(
    score_block: ScoreBlock, rows: slice, n_items: int | None, exclude: sp.csr_matrix | None
) -> np.ndarray:
    """Scores of users ``rows`` as writable float32 ``(B, I)``, shape checked, exclusions set to ``-inf``.

    ``n_items`` is the width every block must have, once known (``None`` for the first block).
    """
    scores = _writable_float32(score_block(rows))  # (B, I)
    start, stop = rows.start, rows.stop
    if scores.ndim != 2 or scores.shape[0] != stop - start:
        raise ValueError(f"score_block(slice({start}, {stop})) returned shape {scores.shape}")
    if n_items is not None and scores.shape[1] != n_items:
        raise ValueError(f"score_block(slice({start}, {stop})) scores {scores.shape[1]} items, not {n_items}")
    if exclude is not None and exclude.shape[1] != scores.shape[1]:
        raise ValueError(f"exclude has {exclude.shape[1]} items but score_block scores {scores.shape[1]}")
    if scores.shape[1] > 0xFFFFFFFF:
        raise ValueError(f"top-k keys hold at most 2**32 - 1 items, score_block scores {scores.shape[1]}")
    if exclude is not None:
        excluded_rows, excluded_cols = exclude[start:stop].nonzero()
        scores[excluded_rows, excluded_cols] = -np.inf
    return scores


def _checked_arguments(
    n_users: int, k: int, exclude: sp.csr_matrix | None, block_size: int
) -> sp.csr_matrix | None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got k={k}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if exclude is not None:
        exclude = sp.csr_matrix(exclude)
        if exclude.shape[0] != n_users:
            raise ValueError(f"exclude has {exclude.shape[0]} rows but n_users={n_users}")
    return exclude


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
    scores (NaN, +-inf) become ``-inf`` and are never returned. The top k are sorted by score descending,
    equal scores by lower item index (``-0.0`` equals ``0.0`` and is returned as ``0.0``), so results are
    deterministic and do not depend on ``block_size``.

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
    exclude = _checked_arguments(n_users, k, exclude, block_size)
    items_out = np.full((n_users, k), -1, dtype=np.int64)
    scores_out = np.full((n_users, k), -np.inf, dtype=np.float32)
    n_items: int | None = None
    for start in range(0, n_users, block_size):
        stop = min(start + block_size, n_users)
        scores = _checked_block(score_block, slice(start, stop), n_items, exclude)  # (B, I)
        n_items = scores.shape[1]
        k_eff = min(k, n_items)
        for sub in range(0, (stop - start) if k_eff > 0 else 0, _ROWS_PER_PASS):
            rows = slice(start + sub, min(start + sub + _ROWS_PER_PASS, stop))
            local = scores[sub : sub + _ROWS_PER_PASS]  # a contiguous view, small enough to stay in cache
            items_out[rows, :k_eff], scores_out[rows, :k_eff] = _select_top_k(local, k_eff)
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
    best ``quota`` flagged ones (both exact, as :func:`blocked_top_k` ranks them), merged by score
    descending, equal scores by lower item index. Where a user has fewer eligible flagged items, the
    slots go back to unflagged items. Each block is scored once and split into its flagged columns and
    the rest.

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
    exclude = _checked_arguments(n_users, k, exclude, block_size)
    flagged_cols = np.flatnonzero(flagged)  # ascending, so ties keep the lower item first
    fresh_items = np.full((n_users, quota), -1, dtype=np.int64)
    fresh_scores = np.full((n_users, quota), -np.inf, dtype=np.float32)
    other_items = np.full((n_users, k), -1, dtype=np.int64)
    other_scores = np.full((n_users, k), -np.inf, dtype=np.float32)
    quota_eff, k_eff = min(quota, len(flagged_cols)), min(k, len(flagged))
    for start in range(0, n_users, block_size):
        stop = min(start + block_size, n_users)
        scores = _checked_block(score_block, slice(start, stop), len(flagged), exclude)  # (B, I)
        for sub in range(0, stop - start, _ROWS_PER_PASS):
            rows = slice(start + sub, min(start + sub + _ROWS_PER_PASS, stop))
            local = scores[sub : sub + _ROWS_PER_PASS]  # a contiguous view, small enough to stay in cache
            top, fresh_scores[rows, :quota_eff] = _select_top_k(local[:, flagged_cols], quota_eff)
            fresh_items[rows, :quota_eff] = np.where(top >= 0, flagged_cols[top], -1)
            # Flagged columns are banned from the others' selection, not overwritten: a pass saved.
            other_items[rows, :k_eff], other_scores[rows, :k_eff] = _select_top_k(local, k_eff, flagged)
    return _merge_quota(fresh_items, fresh_scores, other_items, other_scores, k)


def _merge_quota(
    fresh_items: np.ndarray,
    fresh_scores: np.ndarray,
    other_items: np.ndarray,
    other_scores: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's fresh ``(U, quota)`` picks plus the best ``k - taken`` others, merged into ``(U, k)``."""
    taken = (fresh_items >= 0).sum(axis=1)  # (U,) reserved slots actually filled
    keep_other = np.arange(k)[None, :] < (k - taken)[:, None]
    items = np.concatenate([np.where(keep_other, other_items, -1), fresh_items], axis=1)  # (U, k + quota)
    scores = np.concatenate([np.where(keep_other, other_scores, -np.inf), fresh_scores], axis=1)
    scores = np.where(items >= 0, scores, -np.inf).astype(np.float32)
    order = np.lexsort((items, -scores.astype(np.float64)), axis=1)[:, :k]
    return np.take_along_axis(items, order, axis=1), np.take_along_axis(scores, order, axis=1)
