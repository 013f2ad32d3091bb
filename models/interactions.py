"""User-item interactions as index arrays and sparse matrices, shared by every model and harness.

Ids become contiguous positions (:func:`index_of`), ``(user, video)`` id pairs become a binary
``(U, I)`` matrix (:func:`pairs_matrix`, e.g. watched videos to exclude), and index arrays of
positives become a user-history matrix, optionally only each user's most recent items
(:func:`user_history_matrix`).

Bots: a user whose events on a day exceed ``max(BOT_EVENTS_FACTOR x the median events of that day's
active users, BOT_MIN_EVENTS)`` is flagged for that day (:func:`bot_user_days`) and left out of
every labelled example built from that day (:func:`without_bot_days`): its events stay in bronze,
but no model learns from, is evaluated on, or takes a taste history from a scripted client. The
floor keeps a quiet day (median of a few events) from flagging an ordinary heavy user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from reelrec.catalog import DT, USER_ID

BOT_EVENTS_FACTOR = 100  # events per day above this many times the day's median user ...
BOT_MIN_EVENTS = 1000  # ... and above this many: a human scrolling all day stays under both


def check_index(name: str, index: np.ndarray, size: int, size_name: str) -> np.ndarray:
    """``index`` as a 1-D int64 array, after checking every value lies in ``[0, size)``."""
    index = np.asarray(index)
    if index.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {index.shape}")
    if index.size and not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices, got dtype {index.dtype}")
    index = index.astype(np.int64, copy=False)
    if index.size and (index.min() < 0 or index.max() >= size):
        raise ValueError(
            f"{name} holds values in [{index.min()}, {index.max()}], outside [0, {size_name}={size})"
        )
    return index


def index_of(ids: Sequence[str | None], lookup: Mapping[str, int]) -> np.ndarray:
    """``(N,)`` int64 position of each id in ``lookup``; ``-1`` for ids it does not hold."""
    return np.fromiter((lookup.get(v, -1) if v is not None else -1 for v in ids), np.int64, count=len(ids))


def pairs_matrix(
    user_ids: Sequence[str], video_ids: Sequence[str], users: Mapping[str, int], items: Mapping[str, int]
) -> sp.csr_matrix:
    """Binary ``(len(users), len(items))`` matrix of ``(user, video)`` id pairs, e.g. watched videos.

    Pairs naming a user or video outside ``users`` / ``items`` are dropped; repeated pairs count once.
    """
    rows, cols = index_of(user_ids, users), index_of(video_ids, items)
    keep = (rows >= 0) & (cols >= 0)
    return user_history_matrix(rows[keep], cols[keep], len(users), len(items))


def user_history_matrix(
    user_index: np.ndarray,
    item_index: np.ndarray,
    n_users: int,
    n_items: int,
    timestamps: np.ndarray | None = None,
    max_items_per_user: int | None = None,
) -> sp.csr_matrix:
    """Binary ``(U, I)`` matrix of each user's positives, optionally only the most recent ones.

    Repeated ``(user, item)`` pairs count once. With ``timestamps`` and ``max_items_per_user``, each user
    keeps only the ``max_items_per_user`` distinct items with the latest positives (ties go to the lower
    item index); without ``timestamps`` the inputs carry no order and nothing is dropped.

    Args:
        user_index: ``(N,)`` int user index of each positive.
        item_index: ``(N,)`` int item index of each positive.
        n_users: Number of users ``U``.
        n_items: Catalog size ``I``.
        timestamps: Optional ``(N,)`` sortable time of each positive (e.g. epoch ms).
        max_items_per_user: History cap, used only together with ``timestamps``.

    Returns:
        ``(U, I)`` float32 CSR with ones at each kept ``(user, item)``, sorted indices.

    Raises:
        ValueError: If the indices are out of range or the arrays differ in length.
    """
    user_index = check_index("user_index", user_index, n_users, "n_users")
    item_index = check_index("item_index", item_index, n_items, "n_items")
    if user_index.shape != item_index.shape:
        raise ValueError(f"user_index has {user_index.size} positives but item_index has {item_index.size}")
    if timestamps is not None and max_items_per_user is not None:
        if max_items_per_user < 1:
            raise ValueError(f"max_items_per_user must be >= 1, got {max_items_per_user}")
        timestamps = np.asarray(timestamps)
        if timestamps.shape != user_index.shape:
            raise ValueError(f"timestamps has shape {timestamps.shape} but user_index has {user_index.shape}")
        user_index, item_index = _latest_items(user_index, item_index, timestamps, max_items_per_user)
    else:
        pairs = np.unique(user_index * n_items + item_index)
        user_index, item_index = pairs // n_items, pairs % n_items
    history = sp.csr_matrix(
        (np.ones(user_index.size, dtype=np.float32), (user_index, item_index)), shape=(n_users, n_items)
    )
    history.sort_indices()
    return history


def _latest_items(
    user_index: np.ndarray, item_index: np.ndarray, timestamps: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``(user, item)`` pairs of each user's ``cap`` most recently touched items."""
    # Sort by user, then latest first (item breaks ties), so a pair's first occurrence is its latest.
    order = np.lexsort((item_index, -_as_sort_key(timestamps), user_index))
    users, items = user_index[order], item_index[order]
    pair_keys = users * (int(item_index.max(initial=0)) + 1) + items
    _, first = np.unique(pair_keys, return_index=True)
    first.sort()  # back to (user, latest first) order
    users, items = users[first], items[first]
    # Rank of each pair inside its user's run: position minus the run's start.
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, users.size]))
    keep = np.arange(users.size) - run_start < cap
    return users[keep], items[keep]


def _as_sort_key(timestamps: np.ndarray) -> np.ndarray:
    """Timestamps as numbers that negate cleanly (datetime64 -> int64 ticks)."""
    if np.issubdtype(timestamps.dtype, np.datetime64) or np.issubdtype(timestamps.dtype, np.integer):
        return timestamps.astype(np.int64)
    return timestamps.astype(np.float64)


def bot_user_days(events: pa.Table) -> pa.Table:
    """The (user, day) pairs whose event count marks a bot (see the module docstring).

    Args:
        events: bronze.events rows with at least ``user_id`` and ``dt`` (whole days: the median is
            taken over each day's active users).

    Returns:
        ``user_id, dt, events, threshold`` of every flagged pair, sorted by ``dt, user_id``.
    """
    counts = events.select([USER_ID, DT]).group_by([USER_ID, DT]).aggregate([(USER_ID, "count")])
    n = counts.column(f"{USER_ID}_count").to_numpy(zero_copy_only=False)
    days = counts.column(DT).to_numpy(zero_copy_only=False)
    threshold = np.zeros(len(n), np.float64)
    for day in np.unique(days):
        on_day = days == day
        threshold[on_day] = max(BOT_EVENTS_FACTOR * float(np.median(n[on_day])), BOT_MIN_EVENTS)
    flagged = n > threshold
    table = pa.table(
        {
            USER_ID: counts.column(USER_ID).filter(pa.array(flagged)),
            DT: counts.column(DT).filter(pa.array(flagged)),
            "events": pa.array(n[flagged], pa.int64()),
            "threshold": pa.array(threshold[flagged], pa.float64()),
        }
    )
    return table.sort_by([(DT, "ascending"), (USER_ID, "ascending")])


def without_bot_days(events: pa.Table) -> pa.Table:
    """``events`` less the rows of every (user, day) :func:`bot_user_days` flags."""
    bots = bot_user_days(events)
    if not bots.num_rows:
        return events
    keys = pc.binary_join_element_wise(events.column(USER_ID), events.column(DT).cast(pa.string()), "|")
    flagged = pc.binary_join_element_wise(bots.column(USER_ID), bots.column(DT).cast(pa.string()), "|")
    return events.filter(pc.invert(pc.is_in(keys, value_set=flagged)))
