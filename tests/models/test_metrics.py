"""Retrieval metrics: hand-computed cases, the protocol's edge rules, and properties under hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from models.metrics import catalog_coverage, ndcg_at_k, recall_at_k, retrieval_metrics

LOG2_3 = math.log2(3)
LOG2_4 = 2.0


def _rel(*users: list[int]) -> list[np.ndarray]:
    return [np.array(items, dtype=np.int64) for items in users]


# user0 ranks [3, 1, 2] with relevant {1, 4}: item 1 is a hit at rank 1.
# user1 ranks [0, 5, 6] with relevant {0, 6}: hits at ranks 0 and 2.
# user2 ranks [7, -1, -1] with no relevant items: skipped everywhere.
RANKED = np.array([[3, 1, 2], [0, 5, 6], [7, -1, -1]], dtype=np.int64)
RELEVANT = _rel([1, 4], [0, 6], [])


def test_recall_by_hand() -> None:
    # @1: user0 0/2, user1 1/2 -> mean 1/4.
    assert recall_at_k(RANKED, RELEVANT, 1) == pytest.approx(0.25)
    # @2: user0 1/2, user1 1/2 -> 1/2.
    assert recall_at_k(RANKED, RELEVANT, 2) == pytest.approx(0.5)
    # @3: user0 1/2, user1 2/2 -> 3/4.
    assert recall_at_k(RANKED, RELEVANT, 3) == pytest.approx(0.75)


def test_ndcg_by_hand() -> None:
    # @2: user0 DCG = 1/log2(3) (hit at rank 1), IDCG = 1 + 1/log2(3) (2 relevant, 2 slots).
    #     user1 DCG = 1 (hit at rank 0), IDCG = 1 + 1/log2(3).
    user0 = (1 / LOG2_3) / (1 + 1 / LOG2_3)
    user1 = 1 / (1 + 1 / LOG2_3)
    assert ndcg_at_k(RANKED, RELEVANT, 2) == pytest.approx((user0 + user1) / 2)
    # @3: user0 unchanged DCG, IDCG still over min(2, 3) = 2 hits; user1 DCG = 1 + 1/log2(4).
    user1_at3 = (1 + 1 / LOG2_4) / (1 + 1 / LOG2_3)
    assert ndcg_at_k(RANKED, RELEVANT, 3) == pytest.approx((user0 + user1_at3) / 2)


def test_ideal_dcg_is_capped_at_k() -> None:
    # 3 relevant, K = 1: IDCG = 1 (one slot), so a hit at rank 0 is a perfect 1, recall 1/3.
    ranked = np.array([[5, 6]])
    relevant = _rel([5, 6, 7])
    assert ndcg_at_k(ranked, relevant, 1) == pytest.approx(1.0)
    assert recall_at_k(ranked, relevant, 1) == pytest.approx(1 / 3)


def test_users_without_relevant_items_are_skipped() -> None:
    # Same as RANKED/RELEVANT minus user2: identical numbers, user2 neither helps nor hurts.
    for k in (1, 2, 3):
        assert recall_at_k(RANKED, RELEVANT, k) == recall_at_k(RANKED[:2], RELEVANT[:2], k)
        assert ndcg_at_k(RANKED, RELEVANT, k) == ndcg_at_k(RANKED[:2], RELEVANT[:2], k)


def test_no_user_with_relevant_items_scores_zero() -> None:
    ranked = np.array([[1, 2], [3, 4]])
    assert recall_at_k(ranked, _rel([], []), 2) == 0.0
    assert ndcg_at_k(ranked, _rel([], []), 2) == 0.0


def test_padding_never_counts_as_a_hit() -> None:
    # Even a (malformed) relevant set naming no real item cannot match -1; item 2 is the only hit.
    ranked = np.array([[-1, -1, 2], [-1, -1, -1]])
    relevant = _rel([2, 9], [0])
    assert recall_at_k(ranked, relevant, 3) == pytest.approx((1 / 2 + 0) / 2)
    assert recall_at_k(ranked, relevant, 2) == 0.0


def test_duplicate_relevant_items_count_once() -> None:
    ranked = np.array([[4, 0]])
    assert recall_at_k(ranked, _rel([4, 4, 5]), 1) == pytest.approx(1 / 2)


def test_coverage() -> None:
    # Top 2 over all users (user2 included): {3, 1, 0, 5, 7} = 5 of 10 items; -1 ignored.
    assert catalog_coverage(RANKED, n_items=10, k=2) == pytest.approx(0.5)
    # Top 3: adds 2 and 6 -> 7 of 10.
    assert catalog_coverage(RANKED, n_items=10, k=3) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="n_items=5"):
        catalog_coverage(RANKED, n_items=5, k=3)


def test_retrieval_metrics_bundle() -> None:
    metrics = retrieval_metrics(RANKED, RELEVANT, n_items=10, ks=(1, 3))
    assert set(metrics) == {"recall@1", "ndcg@1", "recall@3", "ndcg@3", "coverage@3", "users"}
    assert metrics["recall@3"] == pytest.approx(recall_at_k(RANKED, RELEVANT, 3))
    assert metrics["ndcg@1"] == pytest.approx(ndcg_at_k(RANKED, RELEVANT, 1))
    assert metrics["coverage@3"] == pytest.approx(0.7)
    assert metrics["users"] == 2


@pytest.mark.parametrize("k", [0, 4])
def test_bad_k_raises(k: int) -> None:
    with pytest.raises(ValueError, match=f"k={k}"):
        recall_at_k(RANKED, RELEVANT, k)
    with pytest.raises(ValueError, match=f"k={k}"):
        ndcg_at_k(RANKED, RELEVANT, k)


def test_ks_wider_than_ranking_raise() -> None:
    with pytest.raises(ValueError, match=r"ks \[10\]"):
        retrieval_metrics(RANKED, RELEVANT, n_items=10, ks=(3, 10))


def test_mismatched_users_raise() -> None:
    with pytest.raises(ValueError, match="relevant has 2 users but ranked has 3 rows"):
        recall_at_k(RANKED, RELEVANT[:2], 2)


def test_repeated_item_in_a_row_raises() -> None:
    with pytest.raises(ValueError, match="ranked row 1"):
        recall_at_k(np.array([[0, 1], [2, 2]]), _rel([0], [2]), 2)


@st.composite
def rankings(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Random rankings over a small catalog: distinct items per row, some -1 padding, random relevance."""
    n_items = draw(st.integers(2, 12))
    width = draw(st.integers(1, n_items))
    n_users = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ranked = np.stack([rng.permutation(n_items)[:width] for _ in range(n_users)])
    n_real = rng.integers(0, width + 1, size=n_users)
    ranked[np.arange(width)[None, :] >= n_real[:, None]] = -1
    relevant = [rng.choice(n_items, size=rng.integers(0, n_items + 1), replace=False) for _ in range(n_users)]
    return ranked, relevant, width


@settings(max_examples=60, deadline=None)
@given(rankings())
def test_metric_properties(case: tuple[np.ndarray, list[np.ndarray], int]) -> None:
    ranked, relevant, width = case
    recalls = [recall_at_k(ranked, relevant, k) for k in range(1, width + 1)]
    ndcgs = [ndcg_at_k(ranked, relevant, k) for k in range(1, width + 1)]
    assert all(0.0 <= r <= 1.0 + 1e-12 for r in recalls)
    assert all(0.0 <= n <= 1.0 + 1e-12 for n in ndcgs)
    assert all(a <= b + 1e-12 for a, b in zip(recalls, recalls[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(rankings())
def test_perfect_ranking_has_ndcg_one(case: tuple[np.ndarray, list[np.ndarray], int]) -> None:
    _, relevant, width = case
    assume(any(r.size for r in relevant))
    n_items = max(int(r.max(initial=0)) for r in relevant) + 1
    # Each user's relevant items first, then the other items: the ideal list at every K.
    perfect = np.stack([np.concatenate([r, np.setdiff1d(np.arange(n_items), r)]) for r in relevant])
    for k in range(1, min(width, n_items) + 1):
        assert ndcg_at_k(perfect, relevant, k) == pytest.approx(1.0)
