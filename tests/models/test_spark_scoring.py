"""Scoring on Spark: the same top-k as the single-process path, bit for bit, whatever the partitioning.

The reference is :func:`models.spark_scoring.local_top_k` (``models.topk`` in one process). Shapes are
small and random, with ties (integer-valued embeddings make many equal dot products), exclusions (some
users with almost every video watched, so rows are padded), fresh slots, and score blocks small enough
that a block of one user occurs on both sides.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from models.sources import two_tower
from models.sources.base import Night, check_candidates
from models.spark_scoring import local_top_k, spark_top_k, use_spark, user_video_scores
from reelrec.settings import Settings


def _world(
    seed: int, n_users: int, n_items: int, dim: int, ties: bool
) -> tuple[list[str], np.ndarray, np.ndarray, sp.csr_matrix, np.ndarray]:
    """User ids, user and video vectors, watched CSR (a few users watched nearly everything), fresh flags."""
    rng = np.random.default_rng(seed)
    if ties:  # small integers: exact dot products, many of them equal
        users = rng.integers(-2, 3, size=(n_users, dim)).astype(np.float32)
        videos = rng.integers(-2, 3, size=(n_items, dim)).astype(np.float32)
    else:
        users = rng.normal(size=(n_users, dim)).astype(np.float32)
        videos = rng.normal(size=(n_items, dim)).astype(np.float32)
    watched = (rng.random((n_users, n_items)) < 0.15).astype(np.float32)
    watched[:3, 4:] = 1.0  # users 0-2 can get at most 4 videos
    watched[3] = 0.0  # user 3 watched nothing
    fresh = rng.random(n_items) < 0.2
    ids = [f"u{i:03d}" for i in rng.permutation(n_users)]  # hash order differs from input order
    return ids, users, videos, sp.csr_matrix(watched), fresh


@pytest.mark.parametrize(("n_users", "n_items"), [(300, 300), (40, 37), (3, 2000)])
def test_user_video_scores_give_a_user_the_same_bits_in_any_block(n_users: int, n_items: int) -> None:
    rng = np.random.default_rng(3)
    users = rng.normal(size=(n_users, 64)).astype(np.float32)
    videos = rng.normal(size=(n_items, 64)).astype(np.float32)
    block = user_video_scores(users, videos)
    np.testing.assert_allclose(block, users @ videos.T, rtol=1e-5, atol=1e-5)
    alone = np.vstack([user_video_scores(users[i : i + 1], videos) for i in range(n_users)])
    np.testing.assert_array_equal(alone, block)
    order = rng.permutation(n_users)
    np.testing.assert_array_equal(user_video_scores(users[order], videos), block[order])
    with threadpool_limits(1):  # as in a Spark task, one BLAS thread
        np.testing.assert_array_equal(user_video_scores(users[order[:7]], videos), block[order[:7]])
    assert block.dtype == np.float32 and block.shape == (n_users, n_items)


def test_use_spark_follows_the_engine_and_the_user_threshold(settings: Settings) -> None:
    auto = dataclasses.replace(settings, scoring_engine="auto", spark_scoring_min_users=1000)
    assert not use_spark(auto, 999) and use_spark(auto, 1000)
    assert use_spark(dataclasses.replace(settings, scoring_engine="spark"), 1)
    assert not use_spark(dataclasses.replace(settings, scoring_engine="local"), 10**9)


def test_profiles_choose_the_scoring_engine(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REELREC_SCORING_ENGINE", raising=False)
    monkeypatch.setenv("REELREC_PROFILE", "embedded")
    assert Settings.from_env(tmp_path).scoring_engine == "local"
    monkeypatch.setenv("REELREC_PROFILE", "production")
    production = Settings.from_env(tmp_path)
    assert production.scoring_engine == "auto" and production.spark_scoring_min_users == 200_000
    monkeypatch.setenv("REELREC_SCORING_ENGINE", "spark")
    monkeypatch.setenv("REELREC_SPARK_SCORING_MIN_USERS", "5")
    assert Settings.from_env(tmp_path).scoring_engine == "spark"
    assert Settings.from_env(tmp_path).spark_scoring_min_users == 5
    monkeypatch.setenv("REELREC_SCORING_ENGINE", "gpu")
    with pytest.raises(ValueError, match="REELREC_SCORING_ENGINE='gpu'"):
        Settings.from_env(tmp_path)


def test_spark_top_k_rejects_inputs_that_do_not_fit_before_starting_a_job() -> None:
    ids, users, videos, watched, fresh = _world(0, 6, 10, 4, ties=True)
    with pytest.raises(ValueError, match="quota"):
        spark_top_k(None, ids, users, watched, videos, k=3, fresh=fresh, quota=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exclude is"):
        spark_top_k(None, ids, users, watched[:, :9], videos, k=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="user_vectors has 5 rows"):
        spark_top_k(None, ids, users[:5], watched, videos, k=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fresh is"):
        spark_top_k(None, ids, users, watched, videos, k=3, fresh=fresh[:9], quota=1)  # type: ignore[arg-type]


@pytest.mark.spark
@pytest.mark.parametrize(
    ("ties", "dim", "quota", "partitions"),
    [(True, 4, 3, 3), (True, 4, 0, 7), (False, 64, 2, 4), (False, 64, 0, 1)],
)
def test_spark_top_k_equals_the_single_process_top_k(
    spark: Any, ties: bool, dim: int, quota: int, partitions: int
) -> None:
    ids, users, videos, watched, fresh = _world(11, 61, 37, dim, ties)
    k = 8
    want_items, want_scores = local_top_k(users, watched, videos, k, fresh, quota, block_size=5)
    got = spark_top_k(spark, ids, users, watched, videos, k, fresh, quota, partitions, block_size=6)
    assert got.user_ids == ids
    np.testing.assert_array_equal(got.items, want_items)
    np.testing.assert_array_equal(got.scores, want_scores)
    assert got.items.dtype == np.int64 and got.scores.dtype == np.float32
    # The case is not vacuous: padded rows, and (with ties) equal scores inside a user's list.
    assert (got.items[:3, 4:] == -1).all() and (got.items[3] >= 0).all()
    listed = got.scores[np.isfinite(got.scores).all(axis=1)]
    assert not ties or (np.diff(listed, axis=1) == 0).any()
    if quota:  # user 3 watched nothing: every reserved slot holds a fresh video
        assert fresh.sum() >= quota and fresh[got.items[3]].sum() >= quota


@pytest.mark.spark
def test_spark_top_k_does_not_depend_on_the_partition_count(spark: Any) -> None:
    ids, users, videos, watched, fresh = _world(5, 45, 30, 4, ties=True)
    one = spark_top_k(spark, ids, users, watched, videos, 6, fresh, 2, partitions=1)
    many = spark_top_k(spark, ids, users, watched, videos, 6, fresh, 2, partitions=9)
    np.testing.assert_array_equal(one.items, many.items)
    np.testing.assert_array_equal(one.scores, many.scores)


@pytest.mark.spark
def test_two_tower_source_on_spark_equals_it_in_process(spark: Any, settings: Settings) -> None:
    ids, users, videos, watched, fresh = _world(7, 33, 25, 64, ties=False)
    video_ids = [f"v{i:02d}" for i in range(25)]

    def night(engine: str) -> Night:
        engine_settings = dataclasses.replace(settings, scoring_engine=engine, spark_scoring_min_users=30)
        return Night(
            engine_settings, "2026-11-10", "2026-11-10", ids, video_ids, fresh, watched, {}, users, videos
        )

    local = check_candidates(two_tower.retrieve(night("local"), 10), night("local"))
    on_spark = check_candidates(two_tower.retrieve(night("auto"), 10), night("auto"))  # 33 >= 30 users
    np.testing.assert_array_equal(on_spark.items, local.items)
    np.testing.assert_array_equal(on_spark.scores, local.scores)
    assert (local.items[:3, 4:] == -1).all() and np.isnan(local.scores[:3, 4:]).all()
