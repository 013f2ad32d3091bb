"""Top-k with reserved slots for flagged items (fresh uploads) against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from models import topk
from models.spark_scoring import user_video_scores
from models.topk import DotScores, ScoreBlock, blocked_top_k, top_k_with_quota


def _best(scores: np.ndarray, candidates: list[int], n: int) -> list[int]:
    return sorted(candidates, key=lambda j: (-scores[j], j))[:n]


def _reference(
    scores: np.ndarray, k: int, flagged: np.ndarray, quota: int, exclude: sp.csr_matrix | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per user: the best ``quota`` eligible flagged items, then the best unflagged ones for the
    remaining slots (all ``k - taken`` of them), merged by (score desc, item asc), padded -1 / -inf."""
    n_users, n_items = scores.shape
    banned = np.zeros(scores.shape, bool) if exclude is None else exclude.toarray() != 0
    items = np.full((n_users, k), -1, np.int64)
    values = np.full((n_users, k), -np.inf, np.float32)
    for u in range(n_users):
        eligible = [j for j in range(n_items) if np.isfinite(scores[u, j]) and not banned[u, j]]
        fresh = _best(scores[u], [j for j in eligible if flagged[j]], quota)
        other = _best(scores[u], [j for j in eligible if not flagged[j]], k - len(fresh))
        merged = _best(scores[u], fresh + other, k)
        items[u, : len(merged)] = merged
        values[u, : len(merged)] = scores[u, merged]
    return items, values


def _block_of(scores: np.ndarray) -> ScoreBlock:
    return lambda rows: scores[rows].copy()


def _random_case(
    seed: int, n_users: int = 29, n_items: int = 31
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=(n_users, n_items)).astype(np.float32)  # ties everywhere
    scores[rng.random(scores.shape) < 0.05] = np.nan
    scores[rng.random(scores.shape) < 0.03] = np.inf
    flagged = rng.random(n_items) < 0.2
    flagged[:2] = True
    exclude = sp.random(n_users, n_items, density=0.3, format="csr", random_state=seed, dtype=np.float32)
    exclude.data[:] = 1
    dense = exclude.toarray()
    dense[0, flagged] = 1  # user 0 has no eligible flagged item at all
    dense[1, np.flatnonzero(flagged)[1:]] = 1  # user 1 has exactly one
    return scores, flagged, sp.csr_matrix(dense)


@pytest.mark.parametrize("block_size", [1, 7, 29])
@pytest.mark.parametrize(("k", "quota"), [(1, 1), (5, 2), (10, 3), (10, 10), (12, 5)])
def test_matches_brute_force(block_size: int, k: int, quota: int) -> None:
    scores, flagged, exclude = _random_case(seed=block_size * 97 + k * 13 + quota)
    items, values = top_k_with_quota(
        _block_of(scores), scores.shape[0], k, flagged, quota, exclude=exclude, block_size=block_size
    )
    want_items, want_values = _reference(scores, k, flagged, quota, exclude)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(values, want_values)
    assert items.dtype == np.int64 and values.dtype == np.float32

    # Invariants: no duplicates, nothing excluded or non-finite, scores non-increasing along a row.
    dense_exclude = exclude.toarray() != 0
    for u, row in enumerate(items):
        real = row[row >= 0]
        assert len(set(real.tolist())) == len(real)
        assert (row[len(real) :] == -1).all()  # padding only at the end
        assert not dense_exclude[u, real].any()
        assert np.isfinite(scores[u, real]).all()
        assert flagged[real].sum() <= quota
    assert (np.diff(values, axis=1) <= 0).all()


def test_without_exclusions_matches_brute_force() -> None:
    scores, flagged, _ = _random_case(seed=5)
    items, values = top_k_with_quota(_block_of(scores), scores.shape[0], 8, flagged, 3, block_size=4)
    want_items, want_values = _reference(scores, 8, flagged, 3, None)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(values, want_values)


def test_reserved_slots_surface_low_scored_flagged_items() -> None:
    # Items 3 and 4 are fresh and score below every established item; plain top-3 never shows them.
    scores = np.array([[9.0, 8.0, 7.0, 1.0, 2.0, 6.0]], np.float32)
    flagged = np.array([False, False, False, True, True, False])
    plain, _ = blocked_top_k(_block_of(scores), 1, 3)
    np.testing.assert_array_equal(plain, [[0, 1, 2]])
    items, values = top_k_with_quota(_block_of(scores), 1, 3, flagged, 1)
    np.testing.assert_array_equal(items, [[0, 1, 4]])  # the best fresh one takes the reserved slot
    np.testing.assert_array_equal(values, [[9.0, 8.0, 2.0]])
    items, _ = top_k_with_quota(_block_of(scores), 1, 4, flagged, 2)
    np.testing.assert_array_equal(items, [[0, 1, 4, 3]])


def test_a_flagged_item_that_wins_on_score_still_uses_a_reserved_slot() -> None:
    # Fresh item 1 is the best overall: it is one of the `quota` flagged ones, not an extra.
    scores = np.array([[5.0, 9.0, 4.0, 3.0, 8.0]], np.float32)
    flagged = np.array([False, True, False, False, True])
    items, _ = top_k_with_quota(_block_of(scores), 1, 3, flagged, 1)
    np.testing.assert_array_equal(items, [[1, 0, 2]])


def test_unused_reserved_slots_go_to_unflagged_items() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.5], [5.0, 4.0, 3.0, 2.0, 1.0, 0.5]], np.float32)
    flagged = np.array([False, False, False, False, True, True])
    # User 0 has both flagged items excluded; user 1 one of them: 0 and 1 eligible flagged < quota 3.
    exclude = sp.csr_matrix(np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1]]))
    items, values = top_k_with_quota(_block_of(scores), 2, 4, flagged, 3, exclude=exclude)
    np.testing.assert_array_equal(items, [[0, 1, 2, 3], [0, 1, 2, 4]])
    np.testing.assert_array_equal(values, [[5.0, 4.0, 3.0, 2.0], [5.0, 4.0, 3.0, 1.0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quota_zero_or_nothing_flagged_equals_blocked_top_k(seed: int) -> None:
    scores, flagged, exclude = _random_case(seed=seed)
    want = blocked_top_k(_block_of(scores), scores.shape[0], 9, exclude=exclude, block_size=5)
    got = top_k_with_quota(_block_of(scores), scores.shape[0], 9, flagged, 0, exclude=exclude, block_size=5)
    none_flagged = top_k_with_quota(
        _block_of(scores), scores.shape[0], 9, np.zeros_like(flagged), 4, exclude=exclude, block_size=5
    )
    for result in (got, none_flagged):
        np.testing.assert_array_equal(result[0], want[0])
        np.testing.assert_array_equal(result[1], want[1])


def test_quota_outside_zero_to_k_raises() -> None:
    scores = np.ones((2, 4), np.float32)
    flagged = np.array([True, False, False, False])
    with pytest.raises(ValueError, match="quota must be in"):
        top_k_with_quota(_block_of(scores), 2, 3, flagged, 4)
    with pytest.raises(ValueError, match="quota must be in"):
        top_k_with_quota(_block_of(scores), 2, 3, flagged, -1)


@st.composite
def _tied_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, int, int, int]:
    """Small blocks drawn from a few values (ties everywhere, NaN and +-inf included), random exclusions
    and fresh sets; catalogs up to 200 items."""
    n_users = draw(st.integers(1, 9))
    n_items = draw(st.integers(1, 200))
    k = draw(st.integers(1, 6))
    quota = draw(st.integers(1, k))  # quota 0 is plain top-k (flagged items compete), checked below
    palette = np.array([-1.0, -0.0, 0.0, 0.5, 1.0, 2.0, np.nan, np.inf, -np.inf], np.float32)
    weights = draw(st.lists(st.integers(0, 5), min_size=6, max_size=6))
    weights += draw(st.lists(st.sampled_from([0, 0, 1]), min_size=3, max_size=3))  # NaN, inf, -inf
    assume(sum(weights[:6]) > 0)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = np.array(weights, float) / sum(weights)
    scores = palette[rng.choice(len(palette), size=(n_users, n_items), p=p)]
    if draw(st.booleans()):  # mostly distinct scores, the common case for model dot products
        scores = np.where(np.isfinite(scores), rng.normal(size=scores.shape).astype(np.float32), scores)
    flagged = rng.random(n_items) < draw(st.sampled_from([0.0, 0.1, 0.5]))
    exclude = sp.csr_matrix(rng.random((n_users, n_items)) < draw(st.sampled_from([0.0, 0.2, 0.9])))
    return scores.astype(np.float32), flagged, exclude, k, quota, draw(st.integers(1, 10))


@settings(max_examples=300, deadline=None)
@given(_tied_cases(), st.sampled_from([1, None]))
def test_property_matches_brute_force_with_ties(
    case: tuple[np.ndarray, np.ndarray, sp.csr_matrix, int, int, int], rows_per_thread: int | None
) -> None:
    scores, flagged, exclude, k, quota, block_size = case
    with pytest.MonkeyPatch.context() as patch:
        if rows_per_thread is not None:  # split even these small blocks over the selection threads
            patch.setattr(topk, "_MIN_ROWS_PER_THREAD", rows_per_thread)
        _assert_matches_reference(scores, flagged, exclude, k, quota, block_size)


def _assert_matches_reference(
    scores: np.ndarray, flagged: np.ndarray, exclude: sp.csr_matrix, k: int, quota: int, block_size: int
) -> None:
    n_users = scores.shape[0]
    items, values = top_k_with_quota(_block_of(scores), n_users, k, flagged, quota, exclude, block_size)
    want_items, want_values = _reference(scores, k, flagged, quota, exclude)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(values, want_values + np.float32(0.0))  # -0.0 comes back as 0.0
    assert not np.signbit(values[values == 0]).any()
    plain_items, plain_values = blocked_top_k(_block_of(scores), n_users, k, exclude, block_size)
    want_items, want_values = _reference(scores, k, np.zeros_like(flagged), 0, exclude)
    np.testing.assert_array_equal(plain_items, want_items)
    np.testing.assert_array_equal(plain_values, want_values + np.float32(0.0))


def _vectorised_reference(
    scores: np.ndarray, k: int, flagged: np.ndarray, quota: int, exclude: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray]:
    """The reference above, by full sorts (fast enough for catalogs of thousands of items)."""
    n_users, n_items = scores.shape
    eligible = np.isfinite(scores) & (exclude.toarray() == 0)
    items = np.full((n_users, k), -1, np.int64)
    values = np.full((n_users, k), -np.inf, np.float32)
    for u in range(n_users):
        order = np.lexsort((np.arange(n_items), -scores[u].astype(np.float64)))  # score desc, item asc
        order = order[eligible[u, order]]
        fresh = order[flagged[order]][:quota]
        other = order[~flagged[order]][: k - len(fresh)]
        merged = np.sort(np.concatenate([fresh, other]))
        merged = merged[np.lexsort((merged, -scores[u, merged].astype(np.float64)))][:k]
        items[u, : len(merged)] = merged
        values[u, : len(merged)] = scores[u, merged]
    return items, values


@pytest.mark.parametrize("kind", ["distinct", "few_values", "non_finite", "mostly_excluded", "one_value"])
def test_catalog_sized_rows_match_the_reference(kind: str) -> None:
    """Catalogs large enough for the two-pass group path, and rows that must fall back from it."""
    rng = np.random.default_rng(11)
    n_users, n_items, k, quota = 24, 9_000, 100, 10
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    exclude_density = 0.01
    if kind == "few_values":  # heavy ties: far more candidates reach the cut than k
        scores = rng.integers(0, 40, size=scores.shape).astype(np.float32)
    elif kind == "non_finite":  # +inf and NaN among the group maxima of some rows
        scores[rng.random(scores.shape) < 0.01] = np.inf
        scores[rng.random(scores.shape) < 0.01] = np.nan
        scores[: n_users // 2, ::7] = -0.0
    elif kind == "mostly_excluded":  # fewer than k eligible items in some rows
        exclude_density = 0.995
    elif kind == "one_value":
        scores[:] = 0.25
    flagged = rng.random(n_items) < 0.05
    exclude = sp.random(n_users, n_items, density=exclude_density, format="csr", random_state=3)
    exclude.data[:] = 1
    items, values = top_k_with_quota(_block_of(scores), n_users, k, flagged, quota, exclude, 10)
    want_items, want_values = _vectorised_reference(scores, k, flagged, quota, exclude)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(values, want_values + np.float32(0.0))
    plain_items, plain_values = blocked_top_k(_block_of(scores), n_users, k, exclude, 10)
    want_items, want_values = _vectorised_reference(scores, k, np.zeros_like(flagged), 0, exclude)
    np.testing.assert_array_equal(plain_items, want_items)
    np.testing.assert_array_equal(plain_values, want_values + np.float32(0.0))


# The fused path (DotScores): embeddings on a grid of 1/8, so every dot product is exact in float32
# whatever order BLAS sums it in, and the reference can score the whole matrix at once.


def _dyadic(rng: np.random.Generator, shape: tuple[int, int], levels: int) -> np.ndarray:
    """Vectors with entries in ``{-levels..levels} / 8``: few levels give ties everywhere."""
    return (rng.integers(-levels, levels + 1, size=shape) / 8).astype(np.float32)


def _assert_fused_matches(
    users: np.ndarray, items: np.ndarray, k: int, flagged: np.ndarray, quota: int, exclude: sp.csr_matrix
) -> None:
    """Both fused rankings against the reference on ``users @ items.T`` and the unfused path."""
    dots, scores = DotScores(users, items), users @ items.T
    n_users = len(users)
    for mask, q in ((flagged, quota), (np.zeros_like(flagged), 0)):
        want_items, want_values = _vectorised_reference(scores, k, mask, q, exclude)
        got_items, got_values = top_k_with_quota(dots, n_users, k, mask, q, exclude, block_size=5)
        np.testing.assert_array_equal(got_items, want_items)
        np.testing.assert_array_equal(got_values, want_values + np.float32(0.0))
        unfused = top_k_with_quota(_block_of(scores), n_users, k, mask, q, exclude, block_size=5)
        np.testing.assert_array_equal(got_items, unfused[0])
        plain_items, plain_values = blocked_top_k(dots, n_users, k, exclude, block_size=5)
        if q == 0:
            np.testing.assert_array_equal(plain_items, want_items)
            np.testing.assert_array_equal(plain_values, want_values + np.float32(0.0))


@pytest.mark.parametrize(("levels", "tile"), [(1, 37), (3, 64), (8, 1000), (8, 2048)])
def test_fused_catalog_sized_rows_match_the_reference(levels: int, tile: int) -> None:
    """Tiles that split the fresh columns and the 64-score chunks; buffers filled and cut back many
    times (levels=1: nine distinct scores, so most of a row ties with the k-th)."""
    rng = np.random.default_rng(levels * 7 + tile)
    n_users, n_items, k, quota = 23, 9_000, 100, 10
    users, items = _dyadic(rng, (n_users, 16), levels), _dyadic(rng, (n_items, 16), levels)
    flagged = rng.random(n_items) < 0.05
    exclude = sp.random(n_users, n_items, density=0.02, format="lil", random_state=levels)
    exclude[3] = 1  # user 3 has nothing left
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(topk, "_FUSED_TILE", tile)
        patch.setattr(topk, "_FUSED_USERS", 4)  # six tasks over the selection threads
        _assert_fused_matches(users, items, k, flagged, quota, sp.csr_matrix(exclude))


@pytest.mark.filterwarnings("ignore:invalid value encountered in matmul:RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 9),
    st.integers(1, 120),
    st.integers(1, 6),
    st.sampled_from([0.0, 0.1, 0.5]),
    st.sampled_from([0.0, 0.2, 0.9]),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
)
def test_property_fused_matches_brute_force(
    n_users: int, n_items: int, k: int, fresh_share: float, exclude_share: float, tile: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    users, items = _dyadic(rng, (n_users, 3), 1), _dyadic(rng, (n_items, 3), 2)
    if n_items > 3 and seed % 3 == 0:  # an infinite item: +-inf and NaN scores, never returned
        items[n_items // 2] = [np.inf, 0.0, -1.0]
    flagged = rng.random(n_items) < fresh_share
    exclude = sp.csr_matrix(rng.random((n_users, n_items)) < exclude_share)
    quota = int(rng.integers(1, k + 1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(topk, "_FUSED_TILE", tile)
        patch.setattr(topk, "_FUSED_USERS", 2)
        _assert_fused_matches(users, items, k, flagged, quota, exclude)


def test_dot_scores_is_a_score_block_and_checks_shapes() -> None:
    rng = np.random.default_rng(0)
    users, items = _dyadic(rng, (5, 4), 3), _dyadic(rng, (7, 4), 3)
    dots = DotScores(users, items)
    np.testing.assert_array_equal(dots(slice(1, 3)), users[1:3] @ items.T)
    with pytest.raises(ValueError, match="DotScores needs users"):
        DotScores(users, items[:, :3])
    with pytest.raises(ValueError, match="n_users=6 but DotScores holds 5"):
        blocked_top_k(dots, 6, 2)
    with pytest.raises(ValueError, match="exclude has 8 items but DotScores scores 7"):
        blocked_top_k(dots, 5, 2, exclude=sp.csr_matrix((5, 8)))
    with pytest.raises(ValueError, match="quota_items has 6 items but DotScores scores 7"):
        top_k_with_quota(dots, 5, 2, np.ones(6, bool), 1)


def test_fused_scores_have_the_bits_of_user_video_scores() -> None:
    """Real-valued vectors: the fused ranking is the one :func:`models.spark_scoring.local_top_k`
    makes from its fixed-shape score blocks, bit for bit (every product of both has a shape that
    takes BLAS's main kernel, which sums a dot product in one order), whichever users share a task."""
    rng = np.random.default_rng(5)
    n_users, n_items, k, quota = 300, 5_000, 100, 10
    users = rng.normal(size=(n_users, 64)).astype(np.float32)
    items = rng.normal(size=(n_items, 64)).astype(np.float32)
    flagged = rng.random(n_items) < 0.05
    exclude = sp.random(n_users, n_items, density=0.01, format="csr", random_state=5)
    want = top_k_with_quota(
        lambda rows: user_video_scores(users[rows], items),
        n_users,
        k,
        flagged,
        quota,
        exclude,
        block_size=100,
    )
    got = top_k_with_quota(DotScores(users, items), n_users, k, flagged, quota, exclude)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    tail = top_k_with_quota(DotScores(users[250:], items), n_users - 250, k, flagged, quota, exclude[250:])
    np.testing.assert_array_equal(tail[0], want[0][250:])  # another task partner, a smaller last task
