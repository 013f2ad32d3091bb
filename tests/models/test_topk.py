"""Blocked exact top-k against a brute-force per-user reference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp

from models.topk import blocked_top_k, popularity_block


def _reference(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-user Python sort by (score desc, item asc) over eligible items, padded with -1 / -inf."""
    n_users, n_items = scores.shape
    dense_exclude = np.zeros_like(scores, dtype=bool) if exclude is None else exclude.toarray() != 0
    items = np.full((n_users, k), -1, dtype=np.int64)
    values = np.full((n_users, k), -np.inf, dtype=np.float32)
    for u in range(n_users):
        eligible = [j for j in range(n_items) if np.isfinite(scores[u, j]) and not dense_exclude[u, j]]
        best = sorted(eligible, key=lambda j: (-scores[u, j], j))[:k]
        items[u, : len(best)] = best
        values[u, : len(best)] = scores[u, best]
    return items, values


def _block_of(scores: np.ndarray) -> Callable[[slice], np.ndarray]:
    calls: list[slice] = []

    def score(rows: slice) -> np.ndarray:
        calls.append(rows)
        return scores[rows].copy()

    score.calls = calls  # type: ignore[attr-defined]
    return score


def _random_case(seed: int, n_users: int = 37, n_items: int = 23) -> tuple[np.ndarray, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    # Few distinct values, so ties are everywhere; some NaN and inf that must never be returned.
    scores = rng.integers(0, 5, size=(n_users, n_items)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.05] = np.nan
    scores[rng.random(scores.shape) < 0.03] = np.inf
    exclude = sp.random(n_users, n_items, density=0.3, format="csr", random_state=seed, dtype=np.float32)
    exclude.data[:] = 1
    return scores, exclude


@pytest.mark.parametrize("block_size", [1, 5, 16, 37, 100])
@pytest.mark.parametrize("k", [1, 7, 23])
def test_matches_brute_force(block_size: int, k: int) -> None:
    scores, exclude = _random_case(seed=block_size * 31 + k)
    score = _block_of(scores)
    items, values = blocked_top_k(score, scores.shape[0], k, exclude=exclude, block_size=block_size)
    want_items, want_values = _reference(scores, k, exclude)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(values, want_values)
    assert items.dtype == np.int64 and values.dtype == np.float32
    # Blocks tile [0, U) in order, each at most block_size users.
    spans = [(s.start, s.stop) for s in score.calls]  # type: ignore[attr-defined]
    assert spans[0][0] == 0 and spans[-1][1] == scores.shape[0]
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert all(stop - start <= block_size for start, stop in spans)


def test_without_exclusions_matches_brute_force() -> None:
    scores, _ = _random_case(seed=3)
    items, values = blocked_top_k(_block_of(scores), scores.shape[0], 10, block_size=8)
    want_items, want_values = _reference(scores, 10, None)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(values, want_values)


def test_excluded_and_non_finite_items_never_returned() -> None:
    scores, exclude = _random_case(seed=11)
    items, _ = blocked_top_k(_block_of(scores), scores.shape[0], 23, exclude=exclude, block_size=6)
    rows, cols = np.nonzero(items >= 0)
    picked = items[rows, cols]
    assert not (exclude.toarray()[rows, picked] != 0).any()
    assert np.isfinite(scores[rows, picked]).all()


def test_padding_when_fewer_eligible_than_k() -> None:
    scores = np.array([[3.0, 1.0, 2.0], [np.nan, 5.0, -np.inf]], dtype=np.float32)
    exclude = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]]))
    # k = 5 > I = 3: width stays 5, only the eligible items are real.
    items, values = blocked_top_k(_block_of(scores), 2, 5, exclude=exclude, block_size=1)
    np.testing.assert_array_equal(items, [[2, 1, -1, -1, -1], [1, -1, -1, -1, -1]])
    np.testing.assert_array_equal(values[0, :2], [2.0, 1.0])
    assert values[1, 0] == 5.0
    assert np.isneginf(values[items == -1]).all()


def test_ties_break_to_lower_item_index() -> None:
    # Everything ties (including -0.0 vs 0.0): the lowest indices win, in index order.
    scores = np.zeros((3, 50), dtype=np.float32)
    scores[1, ::2] = -0.0
    scores[2, 40] = 1.0
    items, _ = blocked_top_k(_block_of(scores), 3, 4, block_size=2)
    np.testing.assert_array_equal(items, [[0, 1, 2, 3], [0, 1, 2, 3], [40, 0, 1, 2]])
    again, _ = blocked_top_k(_block_of(scores), 3, 4, block_size=3)
    np.testing.assert_array_equal(again, items)


def test_negative_scores_order_correctly() -> None:
    scores = np.array([[-3.5, -0.5, -1e30, 2.0, -2.0]], dtype=np.float32)
    items, values = blocked_top_k(_block_of(scores), 1, 5)
    np.testing.assert_array_equal(items, [[3, 1, 4, 0, 2]])
    np.testing.assert_array_equal(values, scores[:, [3, 1, 4, 0, 2]])


def test_popularity_block_ranks_every_user_alike() -> None:
    popularity = np.array([1.0, 9.0, 4.0, 9.0, 0.0], dtype=np.float32)
    block = popularity_block(popularity)
    assert block(slice(2, 5)).shape == (3, 5)
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]))
    items, _ = blocked_top_k(block, 2, 3, exclude=exclude, block_size=1)
    np.testing.assert_array_equal(items, [[3, 2, 0], [1, 3, 2]])


def test_read_only_blocks_are_not_written() -> None:
    scores = np.array([[1.0, np.nan, 2.0]], dtype=np.float32)
    scores.flags.writeable = False
    items, _ = blocked_top_k(lambda rows: scores[rows], 1, 2)
    np.testing.assert_array_equal(items, [[2, 0]])
    assert np.isnan(scores[0, 1])


def test_bad_arguments_raise() -> None:
    scores = np.ones((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="k must be >= 1"):
        blocked_top_k(_block_of(scores), 4, 0)
    with pytest.raises(ValueError, match="exclude has 2 rows"):
        blocked_top_k(_block_of(scores), 4, 1, exclude=sp.csr_matrix((2, 3)))
    with pytest.raises(ValueError, match="exclude has 5 items"):
        blocked_top_k(_block_of(scores), 4, 1, exclude=sp.csr_matrix((4, 5)))
    with pytest.raises(ValueError, match="returned shape"):
        blocked_top_k(lambda rows: scores, 4, 1, block_size=2)
