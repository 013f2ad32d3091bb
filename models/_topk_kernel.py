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

The *fused* path (:func:`fold_tile`, for :class:`models.topk.DotScores`) folds cache-sized tiles of
scores into running per-user buffers (the scan path, resumed tile after tile); flagged columns are
moved to the catalog's end, so a tile splits into at most two runs, one per buffer. Compiled by numba
with ``nogil=True`` (threads run row ranges at once) and ``cache=True`` (compiled once per machine).
"""

from __future__ import annotations

import numba
import numpy as np

_INF = np.float32(np.inf)
_GROUP = 32  # items per group of the first pass
_MIN_GROUPS_PER_K = 2  # fewer groups than this many per k: the scan path
_BUFFER_PER_K = 8  # scan path: a full buffer is cut back to its best k
_CHUNK = 64  # fused path: scores compared against the cut at once before any is read one by one
_REFRESH_PER_K = 1.25  # fused path: a tile that leaves this many times k keys buffered cuts them back
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


@numba.njit(nogil=True, cache=True)
def _fold(
    row: np.ndarray,
    bits: np.ndarray,
    lo: int,
    hi: int,
    first_col: int,
    item_of: np.ndarray,
    buf: np.ndarray,
    m: int,
    cut: np.float32,
    k: int,
    cast: np.ndarray,
) -> tuple[int, np.float32]:
    """The scan path over ``row[lo:hi]`` (column ``first_col + j`` is item ``item_of[first_col + j]``),
    continuing a running state: ``m`` buffered keys, ``cut`` the ``k``-th best at the last cut back.

    Items arrive in ascending item order across calls, so an item scoring exactly ``cut`` is worse than
    all ``k`` kept (strict ``>``). Each chunk of ``_CHUNK`` scores is first compared with ``cut`` at once;
    after the first tiles most chunks hold no score above it and are not read again.
    """
    for chunk in range(lo, hi, _CHUNK):
        end = min(chunk + _CHUNK, hi)  # a bound known only at run time keeps the loop below vectorised
        hit = False
        for j in range(chunk, end):  # an OR of compares, no branch per score
            hit |= row[j] > cut
        if not hit:
            continue
        for j in range(chunk, end):
            s = row[j]
            if s > cut and s < _INF:
                buf[m] = _key(s, bits[j], item_of[first_col + j])
                m += 1
                if m == len(buf):
                    m, cut = _cut_back(buf, m, k, cast)
    return m, cut


@numba.njit(nogil=True, cache=True)
def _cut_back(buf: np.ndarray, m: int, k: int, cast: np.ndarray) -> tuple[int, np.float32]:
    """Keep the best ``k < m`` of ``m`` buffered keys (unique) in place: returns ``k`` and their cut.

    Quickselect in place (no allocation, unlike :func:`_compact`): the fused path cuts back after
    most tiles.
    """
    kth = np.int64(_kth_largest(buf, m, k))
    kept = 0
    for pos in range(m):
        if buf[pos] >= kth:
            buf[kept] = buf[pos]
            kept += 1
    cast[0] = _sortable(np.int32(kth >> 32))  # the map is its own inverse
    return kept, cast.view(np.float32)[0]


@numba.njit(nogil=True, cache=True)
def _fold_tile_row(
    row: np.ndarray,
    lo: int,
    hi: int,
    first_col: int,
    item_of: np.ndarray,
    buf: np.ndarray,
    m: int,
    cut: np.float32,
    k: int,
    cast: np.ndarray,
) -> tuple[int, np.float32]:
    """:func:`_fold` over ``row[lo:hi]``, then a cut back if the tile left ``_REFRESH_PER_K * k`` keys.

    The cut only rises when the buffer is cut back, and every 64-score chunk holding a score above it
    is read one by one: refreshed only when the buffer fills, it stays loose for most of the catalog.
    """
    m, cut = _fold(row, row.view(np.int32), lo, hi, first_col, item_of, buf, m, cut, k, cast)
    if m >= _REFRESH_PER_K * k:
        m, cut = _cut_back(buf, m, k, cast)
    return m, cut


@numba.njit(nogil=True, cache=True)
def fold_tile(
    tile: np.ndarray,
    width: int,
    first_col: int,
    n_main: int,
    item_of: np.ndarray,
    exclude_next: np.ndarray,
    exclude_end: np.ndarray,
    exclude_cols: np.ndarray,
    keys: np.ndarray,
    counts: np.ndarray,
    cuts: np.ndarray,
    quota_keys: np.ndarray,
    quota_counts: np.ndarray,
    quota_cuts: np.ndarray,
) -> None:
    """Fold one tile of scores into its users' running top ``k`` (and top ``q`` of the quota columns).

    The fused path of :mod:`models.topk`: columns are a permutation of the items in which the unflagged
    ones come first, each part in ascending item order; tiles arrive in ascending column order.

    Args:
        tile: ``(>= B, >= width)`` float32, C-contiguous: row ``r``'s first ``width`` entries score
            columns ``first_col ..`` for user ``r`` (overwritten: excluded entries -> ``-inf``), the rest is
            padding, never read.
        width: the tile's columns.
        n_main: columns below this are unflagged (the ``k`` selection), the rest flagged (the quota).
        item_of: ``(I,)`` the item of each column.
        exclude_next, exclude_end: per row, the range of ``exclude_cols`` not yet applied; advanced here.
        exclude_cols: excluded columns, ascending within each row's range.
        keys, counts, cuts: per row, the running buffer (``(B, 8k)``), its fill and its cut score.
        quota_keys, quota_counts, quota_cuts: the same for the quota (``(B, 8q)``; unused if ``q == 0``).
    """
    n_rows = len(counts)
    k = keys.shape[1] // _BUFFER_PER_K
    quota = quota_keys.shape[1] // _BUFFER_PER_K
    split = min(max(n_main - first_col, 0), width)  # tile columns below it are unflagged
    stop = first_col + width
    cast = np.empty(1, dtype=np.int32)
    for r in range(n_rows):
        row = tile[r]
        p = exclude_next[r]
        while p < exclude_end[r] and exclude_cols[p] < stop:
            row[exclude_cols[p] - first_col] = -_INF
            p += 1
        exclude_next[r] = p
        if split > 0:
            counts[r], cuts[r] = _fold_tile_row(
                row, 0, split, first_col, item_of, keys[r], counts[r], cuts[r], k, cast
            )
        if split < width and quota > 0:
            quota_counts[r], quota_cuts[r] = _fold_tile_row(
                row,
                split,
                width,
                first_col,
                item_of,
                quota_keys[r],
                quota_counts[r],
                quota_cuts[r],
                quota,
                cast,
            )


@numba.njit(nogil=True, cache=True)
def drain_rows(keys: np.ndarray, counts: np.ndarray, out_items: np.ndarray, out_scores: np.ndarray) -> None:
    """Write each row's best buffered keys best first into ``out_*`` (``(B, width)``), padded -1 / -inf."""
    for r in range(len(counts)):
        _drain(keys[r], counts[r], out_items[r], out_scores[r])


@numba.njit(nogil=True, cache=True)
def sorted_columns(indptr: np.ndarray, indices: np.ndarray, column_of: np.ndarray) -> np.ndarray:
    """The CSR ``indices`` mapped through ``column_of`` (item -> column), sorted within each row."""
    cols = np.empty(len(indices), dtype=np.int64)
    for r in range(len(indptr) - 1):
        a, b = indptr[r], indptr[r + 1]
        for p in range(a, b):
            cols[p] = column_of[indices[p]]
        cols[a:b] = np.sort(cols[a:b])
    return cols


@numba.njit(nogil=True, cache=True)
def merge_quota_rows(
    fresh_items: np.ndarray,
    fresh_scores: np.ndarray,
    other_items: np.ndarray,
    other_scores: np.ndarray,
    out_items: np.ndarray,
    out_scores: np.ndarray,
) -> None:
    """Per row: the filled quota picks plus the best ``k - taken`` others, merged into ``(U, k)``.

    Both inputs are best first by (score descending, item ascending), ``-0.0`` already read as ``0.0``,
    padded with -1 / -inf, and disjoint (flagged vs unflagged items): one merge pass per row.
    """
    k = out_items.shape[1]
    for r in range(out_items.shape[0]):
        n_fresh = 0
        while n_fresh < fresh_items.shape[1] and fresh_items[r, n_fresh] >= 0:
            n_fresh += 1
        n_other = 0
        while n_other < k - n_fresh and other_items[r, n_other] >= 0:
            n_other += 1
        a, b = 0, 0
        for pos in range(k):
            if a < n_other and (
                b == n_fresh
                or other_scores[r, a] > fresh_scores[r, b]
                or (other_scores[r, a] == fresh_scores[r, b] and other_items[r, a] < fresh_items[r, b])
            ):
                out_items[r, pos], out_scores[r, pos] = other_items[r, a], other_scores[r, a]
                a += 1
            elif b < n_fresh:
                out_items[r, pos], out_scores[r, pos] = fresh_items[r, b], fresh_scores[r, b]
                b += 1
            else:
                out_items[r, pos], out_scores[r, pos] = -1, -_INF
