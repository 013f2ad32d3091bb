"""Id positions, pair matrices and user-history matrices on hand-made interaction logs."""

from __future__ import annotations

import numpy as np
import pytest

from models.interactions import index_of, pairs_matrix, user_history_matrix

# Three users, four items. user0: {0, 1, 2} (item 0 twice), user1: {1, 2}, user2: {3}.
USERS = np.array([0, 0, 0, 0, 1, 1, 2])
ITEMS = np.array([0, 1, 2, 0, 1, 2, 3])
N_USERS, N_ITEMS = 3, 4


def test_history_without_order_keeps_everything_once() -> None:
    history = user_history_matrix(USERS, ITEMS, N_USERS, N_ITEMS, max_items_per_user=1)
    np.testing.assert_array_equal(history.toarray(), [[1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]])


def test_history_keeps_each_users_latest_items() -> None:
    times = np.array([1, 2, 3, 4, 1, 2, 1])
    history = user_history_matrix(USERS, ITEMS, N_USERS, N_ITEMS, timestamps=times, max_items_per_user=2)
    np.testing.assert_array_equal(history.toarray(), [[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]])


def test_history_rejects_out_of_range_indices() -> None:
    with pytest.raises(ValueError, match="item_index"):
        user_history_matrix(USERS, ITEMS, N_USERS, 3)


def test_index_of_marks_unknown_and_missing_ids() -> None:
    lookup = {"a": 0, "b": 1}
    out = index_of(["b", "zz", None, "a"], lookup)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [1, -1, -1, 0])
    assert index_of([], lookup).shape == (0,)


def test_pairs_matrix_drops_unknown_ids_and_repeats() -> None:
    users, items = {"u1": 0, "u2": 1}, {"v1": 0, "v2": 1, "v3": 2}
    matrix = pairs_matrix(
        ["u1", "u1", "u2", "u9", "u2"], ["v2", "v2", "v3", "v1", "v0"], users=users, items=items
    )
    assert matrix.shape == (2, 3)
    np.testing.assert_array_equal(matrix.toarray(), [[0, 1, 0], [0, 0, 1]])
