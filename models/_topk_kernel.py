"""The compiled selection behind :mod:`models.topk`: exact top-k of each row of a score block.

Order: score descending, then item index ascending; only finite scores are eligible (excluded entries
are set to ``-inf``, and ``+inf``/NaN are never returned). Every entry is compared through a unique int64
key (:func:`_key`), so results never depend on which path below a row took.

Each row takes two passes over its scores (the *group* path):

1. The row is cut into groups of ``_GROUP`` items (interleaved within blocks, :func:`_grouped`) and
   each group's maximum (NaN skipped) is taken, a vectorised loop. The ``k``-th largest group maximum
   ``T`` is a score that at least ``k`` distinct items reach.
2. Only groups whose maximum reaches ``T`` are read again; their items reaching ``T`` are the
   candidates (about ``k`` of them), and the exact top ``k`` lies among them: sorted by key.

Where that cannot prove its answer (a NaN or ``+inf`` among the group maxima, fewer than ``k``
finite candidates, a catalog with fewer than ``2k`` groups of ``_GROUP``, heavy ties) the row takes
the *scan* path: one pass that buffers every item beating the ``k``-th best seen so far, cutting the
buffer back to its best ``k`` whenever it fills.

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
def _kth_largest(values: np.ndarray, n: int, k: int) -> np.float32:
    """The ``k``-th largest of ``values[:n]`` (no NaN, ``1 <= k <= n``), by quickselect in place."""
    lo, hi, target = 0, n - 1, k - 1  # target: the index in descending order
    while lo < hi:
        a, b, c = values[lo], values[(lo + hi) >> 1], values[hi]
        pivot = max(min(a, b), min(max(a, b), c))  # median of three
        i, j = lo, hi
        while i <= j:
            while values[i] > pivot:
                i += 1
            while values[j] < pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            return values[target]
    return values[lo]


@numba.njit(nogil=True, cache=True)
def _group_cut(
    group_max: np.ndarray, k: int, guess: np.float32, scratch: np.ndarray
) -> tuple[np.float32, np.float32]:
    """The ``k``-th largest group maximum, and a guess for the next row's (its ``2k``-th).

    Only the maxima reaching ``guess`` (the previous row's) are selected over, when at least ``k`` do:
    the top ``k`` are all among them, so the answer is exact either way, and rows of one block have
    similar scales, so usually a few hundred values are selected over instead of thousands.
    """
    n_groups = len(group_max)
    n = 0
    for g in range(n_groups):
        if group_max[g] >= guess:
            scratch[n] = group_max[g]
            n += 1
    if n < k:
        scratch[:n_groups] = group_max
        n = n_groups
    cut = _kth_largest(scratch, n, k)
    next_guess = _kth_largest(scratch, n, min(n, 2 * k))  # the first k slots are >= cut, untouched
    return cut, next_guess


@numba.njit(nogil=True, cache=True)
def _lanes(n_items: int, k: int) -> int:
    """Groups per block of ``_GROUP * lanes`` items; 0: too few items for the group path.

    One block of ``I // _GROUP`` lanes (group ``g``: items ``g, g + G, g + 2G, ...``) measured fastest
    at 100k items: the first pass streams the row once; 64-wide blocks measured 20 % slower overall.
    """
    lanes = n_items // _GROUP
    return lanes if lanes >= _MIN_GROUPS_PER_K * k else 0


@numba.njit(nogil=True, cache=True)
def _grouped(
    row: np.ndarray,
    bits: np.ndarray,
    k: int,
    lanes: int,
    group_max: np.ndarray,
    scratch: np.ndarray,
    buf: np.ndarray,
    guess: np.ndarray,
) -> int:
    """The group path: returns the candidates' count in ``buf``, or -1 where the scan path must answer.

    The row is read in blocks of ``_GROUP * lanes`` items; group ``w`` of block ``b`` holds the block's
    items ``w, w + lanes, w + 2 lanes, ...``, so the first pass is an element-wise maximum of ``_GROUP``
    contiguous ``lanes``-wide slices (vectorised, no reduction) and the second reads a group's items
    within one block (a few kB). NaN never passes ``>``, so a group's maximum is over its other entries.
    ``guess[0]`` carries the next row's guess of the cut (:func:`_group_cut`).
    """
    n_items = len(row)
    width = _GROUP * lanes
    n_blocks = n_items // width
    maxima = group_max[: n_blocks * lanes]
    for b in range(n_blocks):
        base = b * width
        out = maxima[b * lanes : (b + 1) * lanes]
        out[:] = -_INF
        for t in range(_GROUP):
            start = base + t * lanes
            for w in range(lanes):
                s = row[start + w]
                out[w] = s if s > out[w] else out[w]
    cut, guess[0] = _group_cut(maxima, k, guess[0], scratch)
    if not (-_INF < cut < _INF):  # under k groups with a finite entry, or +inf among the k best
        guess[0] = -_INF
        return -1
    m = 0
    for g in range(n_blocks * lanes):
        if maxima[g] >= cut:
            first = (g // lanes) * width + g % lanes
            for j in range(first, first + width, lanes):
                s = row[j]
                if s >= cut and s < _INF:  # NaN fails both; -0.0 and 0.0 compare equal
                    if m == len(buf):
                        return -1
                    buf[m] = _key(s, bits[j], j)
                    m += 1
    for j in range(n_blocks * width, n_items):  # the tail, past the last whole block
        s = row[j]
        if s >= cut and s < _INF:
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
    lanes = _lanes(n_items, k) if k > 0 else 0
    buf = np.empty(max(_BUFFER_PER_K * k, _MAX_CANDIDATES if lanes else 1), dtype=np.int64)
    qbuf = np.empty(max(_BUFFER_PER_K * quota, 1), dtype=np.int64)
    group_max = np.empty(max(n_items // _GROUP, 1), dtype=np.float32)
    scratch = np.empty(max(n_items // _GROUP, 1), dtype=np.float32)
    guess = np.full(1, -_INF, dtype=np.float32)
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
        m = _grouped(row, bits, k, lanes, group_max, scratch, buf, guess) if lanes else -1
        if m < 0:
            m = _scan(row, bits, every, k, buf[: _BUFFER_PER_K * k], cast)
        _drain(buf, m, out_items[r], out_scores[r])
