"""Popularity and co-visitation baselines on hand-made interaction logs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models.baselines import covisitation_matrix, covisitation_scores, popularity_scores
from models.interactions import user_history_matrix

# Three users, four items. user0: {0, 1, 2} (item 0 twice), user1: {1, 2}, user2: {3}.
USERS = np.array([0, 0, 0, 0, 1, 1, 2])
ITEMS = np.array([0, 1, 2, 0, 1, 2, 3])
N_USERS, N_ITEMS = 3, 4


def test_popularity_counts_and_weights() -> None:
    counts = popularity_scores(ITEMS, N_ITEMS)
    assert counts.dtype == np.float32
    np.testing.assert_array_equal(counts, [2, 2, 2, 1])
    weighted = popularity_scores(ITEMS, N_ITEMS, weights=np.array([1, 0.5, 1, 3, 1, 1, 2]))
    np.testing.assert_allclose(weighted, [4, 1.5, 2, 2])
    np.testing.assert_array_equal(popularity_scores(np.array([1]), 3), [0, 1, 0])


def test_popularity_rejects_out_of_catalog_items() -> None:
    with pytest.raises(ValueError, match="n_items=3"):
        popularity_scores(ITEMS, 3)
    with pytest.raises(ValueError, match="weights"):
        popularity_scores(ITEMS, N_ITEMS, weights=np.ones(3))


def test_covisitation_matrix_by_hand() -> None:
    # Pairs per user, each user once per pair: user0 gives (0,1) (0,2) (1,2), user1 gives (1,2),
    # user2 alone on item 3 gives nothing. Repeated (user0, item0) does not double anything.
    expected = np.array(
        [
            [0, 1, 1, 0],
            [1, 0, 2, 0],
            [1, 2, 0, 0],
            [0, 0, 0, 0],
        ],
        dtype=np.float32,
    )
    covisit = covisitation_matrix(USERS, ITEMS, N_USERS, N_ITEMS)
    assert sp.issparse(covisit) and covisit.format == "csr"
    assert covisit.dtype == np.float32
    np.testing.assert_array_equal(covisit.toarray(), expected)
    assert (covisit.data != 0).all()  # diagonal removed, not stored as zeros


def test_covisitation_caps_each_user_to_latest_items() -> None:
    # user0 touches 0, 1, 2 at t = 1, 2, 3 and item 0 again at t = 4: latest two distinct are {0, 2}.
    times = np.array([1, 2, 3, 4, 1, 2, 1])
    history = user_history_matrix(USERS, ITEMS, N_USERS, N_ITEMS, timestamps=times, max_items_per_user=2)
    np.testing.assert_array_equal(history.toarray(), [[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]])
    covisit = covisitation_matrix(USERS, ITEMS, N_USERS, N_ITEMS, timestamps=times, max_items_per_user=2)
    expected = np.zeros((4, 4), dtype=np.float32)
    expected[0, 2] = expected[2, 0] = 1  # user0
    expected[1, 2] = expected[2, 1] = 1  # user1
    np.testing.assert_array_equal(covisit.toarray(), expected)


def test_covisitation_scores_and_popularity_fallback() -> None:
    covisit = covisitation_matrix(USERS, ITEMS, N_USERS, N_ITEMS)
    popularity = np.array([5, 1, 3, 10], dtype=np.float32)
    # user0 saw {1}; user1 has no history at all.
    history = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    scores = covisitation_scores(history, covisit, popularity, slice(0, 2))
    assert scores.shape == (2, N_ITEMS) and scores.dtype == np.float32
    # user0: covisit row of item 1 = [1, 0, 2, 0] plus the tiny popularity term.
    np.testing.assert_allclose(scores[0], [1, 0, 2, 0], atol=1e-5)
    assert np.argmax(scores[0]) == 2
    # Items 1 and 3 both have co-visitation 0 for user0: the more popular item 3 ranks higher.
    assert scores[0, 3] > scores[0, 1]
    # user1 falls back to exactly the popularity order.
    np.testing.assert_array_equal(np.argsort(-scores[1]), np.argsort(-popularity))
    assert (scores[1] > 0).all() and (scores[1] < 1e-5).all()
    # Row selection by index array matches the slice.
    by_index = covisitation_scores(history, covisit, popularity, np.array([1]))
    np.testing.assert_array_equal(by_index, scores[1:])


def test_covisitation_scores_reject_mismatched_shapes() -> None:
    covisit = covisitation_matrix(USERS, ITEMS, N_USERS, N_ITEMS)
    history = sp.csr_matrix((2, N_ITEMS), dtype=np.float32)
    with pytest.raises(ValueError, match="popularity"):
        covisitation_scores(history, covisit, np.ones(3), slice(0, 2))
