"""The compiled selection behind :mod:`models.topk`: exact top-k of each row of a score block.

Order: score descending, then item index ascending; only finite scores are eligible (excluded entries
are set to ``-inf``, and ``+inf``/NaN are never returned). Every entry is compared through a unique int64
key (:func:`_key`), so results never depend on which path below a row took.

Each row takes two passes over its scores (the *group* path):

1. The row is cut into groups of ``_GROUP`` consecutive items and each group's maximum (NaN skipped)
   is taken, a vectorised loop. The ``k``-th largest group maximum ``T`` is a score that at least ``k``
   distinct items reach.
2. Only groups whose maximum reaches ``T`` are read again; their items reaching ``T`` are the
   candidates (about ``k`` of them), and the exact top ``k`` lies among them: sorted by key.

Where that cannot prove its answer (a NaN or ``+inf`` among the group maxima, fewer than ``k`` finite
candidates, a catalog with fewer than ``2k`` groups, heavy ties) the row takes the *scan* path: one pass
that buffers every item beating the ``k``-th best seen so far, cutting the buffer back to its best
``k`` whenever it fills.

With a quota, the flagged columns (fresh uploads, a few percent of the catalog) are selected first by
the scan path over their indices, then set to ``-inf`` so the main selection never returns them.

Compiled by numba with ``nogil=True``: :mod:`models.topk` runs row ranges on several threads at once.
``cache=True`` keeps the machine code next to this file, so a night's process compiles it once.
"""

from __future__ import annotations

import numba
import numpy as np

_INF = np.float32(np.inf)
_GROUP = 32  # items per group of the first pass
_MIN_GROUPS_PER_K = 2  # fewer groups than this many per k: the scan path
_BUFFER_PER_K = 8  # scan path: a full buffer is cut back to its best k
_MAX_CANDIDATES = 1 << 15  # group path: more candidates than this (heavy ties) fall back to the scan
_LOW_BITS = np.int64(0xFFFFFFFF)
_NEG_INF_BITS = np.int32(np.array([-np.inf], dtype=np.float32).view(np.int32)[0])


@numba.njit(nogil=True, cache=True, inline="always")
def _sortable(bits: np.int32) -> np.int32:
    """A float32's bit pattern as an int32 ordered like the float (NaN above +inf or below -inf)."""
    return bits ^ ((bits >> np.int32(31)) & np.int32(0x7FFFFFFF))


@numba.njit(nogil=True, cache=True, inline="always")
def _key(s: float, bits: np.int32, item: int) -> np.int64:
    """A unique int64 ordering like (score descending, item ascending): larger is better.

    The sortable bit pattern of the score (``-0.0`` read as ``0.0``) in the high 32 bits,
    ``0xFFFFFFFF - item`` in the low 32, so of two equal scores the lower item has the larger key.
    """
    high = np.int64(0) if s == 0 else np.int64(_sortable(bits))
    return (high << 32) + (_LOW_BITS - item)


@numba.njit(nogil=True, cache=True)
def _compact(buf: np.ndarray, m: int, k: int) -> int:
    """Keep the best ``k < m`` of the ``m`` buffered keys (unique) at the front; returns ``k``."""
    kth = np.partition(buf[:m], m - k)[m - k]
    kept = 0
    for pos in range(m):
        if buf[pos] >= kth:
            buf[kept] = buf[pos]
            kept += 1
    return kept


@numba.njit(nogil=True, cache=True)
def _threshold_score(buf: np.ndarray, k: int, cast: np.ndarray) -> np.float32:
    """The score of the worst of the ``k`` buffered keys (``cast``: 1-element int32 scratch)."""
    worst = buf[0]
    for pos in range(1, k):
        worst = min(worst, buf[pos])
    high = np.int32(worst >> 32)
    cast[0] = _sortable(high)  # the map is its own inverse
    return cast.view(np.float32)[0]


@numba.njit(nogil=True, cache=True)
def _drain(buf: np.ndarray, m: int, out_items: np.ndarray, out_scores: np.ndarray) -> None:
    """Write the best ``min(m, width)`` buffered keys best first into ``out_*``, pad with -1 / -inf."""
    width = len(out_items)
    if m > width:
        m = _compact(buf, m, width)
    best = np.sort(buf[:m])
    highs = np.empty(width, dtype=np.int32)
    for pos in range(width):
        if pos < m:
            key = best[m - 1 - pos]
            out_items[pos] = _LOW_BITS - (key & _LOW_BITS)
            highs[pos] = _sortable(np.int32(key >> 32))
        else:
            out_items[pos] = -1
            highs[pos] = _NEG_INF_BITS
    out_scores[:] = highs.view(np.float32)


@numba.njit(nogil=True, cache=True)
def _scan(
    row: np.ndarray, bits: np.ndarray, cols: np.ndarray, k: int, buf: np.ndarray, cast: np.ndarray
) -> int:
    """The scan path over ``cols`` (ascending; empty: all): buffers the candidates, returns their count.

    An item enters the buffer only if its score beats the ``k``-th best kept at the last cut; columns are
    read in ascending order, so an item scoring exactly that much is worse than all ``k`` (strict ``>``).
    """
    n = len(cols) if len(cols) > 0 else len(row)
    m = 0
    thr = -_INF
    for pos in range(n):
        j = cols[pos] if len(cols) > 0 else pos
        s = row[j]
        if s > thr and s < _INF:
            buf[m] = _key(s, bits[j], j)
            m += 1
            if m == len(buf):
                m = _compact(buf, m, k)
                thr = _threshold_score(buf, k, cast)
    return m


@numba.njit(nogil=True, cache=True)
def _grouped(row: np.ndarray, bits: np.ndarray, k: int, group_max: np.ndarray, buf: np.ndarray) -> int:
    """The group path: returns the candidates' count in ``buf``, or -1 where the scan path must answer."""
    n_items = len(row)
    n_groups = n_items // _GROUP
    for g in range(n_groups):
        best = -_INF  # NaN never passes ">": a group's maximum is over its other entries
        for j in range(g * _GROUP, (g + 1) * _GROUP):
            s = row[j]
            best = s if s > best else best
        group_max[g] = best
    cut = np.partition(group_max[:n_groups], n_groups - k)[n_groups - k]
    if not (-_INF < cut < _INF):  # under k groups with a finite entry, or +inf among the k best
        return -1
    m = 0
    for g in range(n_groups + 1):
        if g < n_groups and group_max[g] < cut:
            continue
        for j in range(g * _GROUP, min((g + 1) * _GROUP, n_items)):
            s = row[j]
            if s >= cut and s < _INF:  # NaN fails both; -0.0 and 0.0 compare equal
                if m == len(buf):
                    return -1
                buf[m] = _key(s, bits[j], j)
                m += 1
    return m if m >= k else -1


@numba.njit(nogil=True, cache=True)
def select_rows(
    scores: np.ndarray,
    rows_from: int,
    rows_to: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    flagged_cols: np.ndarray,
    out_items: np.ndarray,
    out_scores: np.ndarray,
    quota_items: np.ndarray,
    quota_scores: np.ndarray,
) -> None:
    """Top ``k`` (and, with a quota, top ``q`` of the flagged columns) of rows ``rows_from .. rows_to - 1``.

    Args:
        scores: ``(B, I)`` float32, C-contiguous; overwritten (excluded and flagged entries -> ``-inf``).
        rows_from, rows_to: the rows of this call (threads take disjoint ranges).
        indptr, indices: CSR of the block's exclusions (``indptr`` has ``B + 1`` entries).
        flagged_cols: ascending column indices reserved for the quota (empty for no quota); they are
            never among the ``k``.
        out_items, out_scores: ``(B, k)`` results, best first, padded with -1 / -inf.
        quota_items, quota_scores: ``(B, q)`` results over ``flagged_cols``; ``q == 0`` for no quota.
    """
    n_items = scores.shape[1]
    k = out_items.shape[1]
    quota = quota_items.shape[1]
    grouped = k > 0 and n_items // _GROUP >= _MIN_GROUPS_PER_K * k
    buf = np.empty(max(_BUFFER_PER_K * k, _MAX_CANDIDATES if grouped else 1), dtype=np.int64)
    qbuf = np.empty(max(_BUFFER_PER_K * quota, 1), dtype=np.int64)
    group_max = np.empty(max(n_items // _GROUP, 1), dtype=np.float32)
    cast = np.empty(1, dtype=np.int32)
    every = np.empty(0, dtype=np.int64)
    for r in range(rows_from, rows_to):
        row = scores[r]
        bits = row.view(np.int32)
        for p in range(indptr[r], indptr[r + 1]):
            row[indices[p]] = -_INF
        if quota > 0 and len(flagged_cols) > 0:
            mq = _scan(row, bits, flagged_cols, quota, qbuf, cast)
            _drain(qbuf, mq, quota_items[r], quota_scores[r])
            for j in flagged_cols:
                row[j] = -_INF
        elif quota > 0:
            _drain(qbuf, 0, quota_items[r], quota_scores[r])
        if k == 0:
            continue
        m = _grouped(row, bits, k, group_max, buf) if grouped else -1
        if m < 0:
            m = _scan(row, bits, every, k, buf[: _BUFFER_PER_K * k], cast)
        _drain(buf, m, out_items[r], out_scores[r])
