"""The multi-task ranker: learning a planted rule, the blend, the final-list rules, artifacts, outcomes,
provenance features and the serving features against Feast's point-in-time join."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp
import torch

from models.ranker import artifacts, features
from models.ranker.config import RankerConfig
from models.ranker.examples import (
    cap_per_user,
    impressions_of,
    labels_of,
    merged_lookup,
    negative_rows,
    sample_negatives,
    sample_users,
    with_negatives,
)
from models.ranker.model import Ranker, blend, multi_task_loss, predict
from models.ranker.rank import RankedLists, final_lists
from models.ranker.train import fit, head_metrics
from models.sources.base import Night
from models.sources.merge import Merged
from models.training_set import TrainingSetConfig, impression_outcomes
from reelrec.catalog import EVENTS, VIDEOS
from reelrec.settings import Settings
from tests.spark_jobs.tiny import D, event, video, write_bronze

SMALL = RankerConfig(epochs=12, batch_size=256, n_experts=2, expert_dim=16, tower_hidden=8)


def _planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, 6), x0 far from standard; head 1 (like) follows ``x0 * x1 > 0``, the rest is noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    x[:, 0] = x[:, 0] * 50 + 1000  # raw features far from standard: the model must standardise
    planted = ((x[:, 0] - 1000) * x[:, 1] > 0).astype(np.float32)
    flip = rng.random(n) < 0.1
    y = (rng.random((n, 4)) < 0.3).astype(np.float32)
    y[:, 1] = np.where(flip, 1 - planted, planted)
    return x, y


@pytest.mark.torch
def test_sample_users_keeps_every_impression_of_at_most_n_users_per_night() -> None:
    users = [f"u{i}" for i in range(10)]
    table = pa.table(
        {
            "user_id": users * 2 + users,
            "video_id": [f"v{i}" for i in range(30)],
            "dt": [D] * 20 + ["2026-11-02"] * 10,
        }
    )
    sampled = sample_users(table, 4)
    per_night: dict[str, set[str]] = {}
    kept_rows = zip(sampled.column("user_id").to_pylist(), sampled.column("dt").to_pylist(), strict=True)
    for user, day in kept_rows:
        per_night.setdefault(str(day), set()).add(user)
    assert {day: len(kept) for day, kept in per_night.items()} == {D: 4, "2026-11-02": 4}
    kept_d = per_night[D]
    assert sampled.filter(pa.compute.equal(sampled.column("dt"), D)).num_rows == 2 * len(kept_d)  # all rows
    assert sample_users(table, 4).equals(sampled)  # deterministic
    assert sample_users(table, 10).equals(table)  # a night under the budget keeps everyone


def test_fit_stops_at_the_step_budget() -> None:
    x, y = _planted(3000, seed=1)
    budget = dataclasses.replace(SMALL, epochs=5, batch_size=256, max_steps=14)  # 12 steps an epoch
    losses = fit(Ranker(x.shape[1], budget), x, y, budget)
    assert len(losses) == 2  # the budget ends the second epoch; no third one starts
    unbounded = fit(Ranker(x.shape[1], SMALL), x, y, dataclasses.replace(budget, max_steps=10**6))
    assert len(unbounded) == 5


def test_model_learns_a_planted_interaction_and_not_noise() -> None:
    torch.manual_seed(0)
    x, y = _planted(3000, seed=1)
    model = Ranker(x.shape[1], SMALL)
    losses = fit(model, x, y, SMALL)
    assert losses[-1] < losses[0]
    held_x, held_y = _planted(2000, seed=2)
    metrics = head_metrics(model, held_x, held_y, SMALL.heads)
    assert metrics["like"]["auc"] > 0.8
    assert abs(metrics["completion"]["auc"] - 0.5) < 0.1  # pure noise stays noise
    assert set(metrics) == set(SMALL.heads) and metrics["like"]["positives"] == int(held_y[:, 1].sum())


def test_blend_is_the_documented_weighted_sum() -> None:
    cfg = RankerConfig()
    assert dict(zip(cfg.heads, cfg.blend_weights, strict=True)) == {
        "completion": 1.0,
        "like": 0.5,
        "share": 0.5,
        "skip": -0.25,
    }
    p = np.array([[0.5, 0.25, 0.1, 0.2], [0.0, 0.0, 0.0, 1.0]], np.float32)
    np.testing.assert_allclose(blend(p, cfg.blend_weights), [0.5 + 0.125 + 0.05 - 0.05, -0.25], rtol=1e-6)
    with pytest.raises(ValueError, match="4 heads but 3 weights"):
        RankerConfig(blend_weights=(1.0, 2.0, 3.0))


def test_loss_is_the_mean_of_per_head_cross_entropies() -> None:
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    by_hand = (bce(logits[:, 0], labels[:, 0]) + bce(logits[:, 1], labels[:, 1])) / 2
    assert torch.isclose(multi_task_loss(logits, labels), by_hand)


def test_config_json_round_trip_and_fingerprint() -> None:
    cfg = RankerConfig(top_n=50)
    again = RankerConfig.from_json(cfg.to_json())
    assert again == cfg and again.fingerprint() == cfg.fingerprint() != RankerConfig().fingerprint()
    assert isinstance(again.heads, tuple)


@pytest.mark.torch
def test_save_load_round_trip_gives_identical_scores(settings: Settings) -> None:
    x, y = _planted(500, seed=3)
    cfg = dataclasses.replace(SMALL, epochs=1)
    model = Ranker(x.shape[1], cfg)
    fit(model, x, y, cfg)
    names = [f"f{i}" for i in range(x.shape[1])]
    path = artifacts.save("2026-11-06", settings, model, cfg, names)
    artifacts.point_to("2026-11-06", settings, path)
    loaded = artifacts.load("2026-11-06", settings)
    assert loaded.version == path.name and loaded.version.startswith("ranker_v1-2026-11-06-")
    assert loaded.cfg == cfg and loaded.feature_names == names
    np.testing.assert_array_equal(predict(loaded.model, x), predict(model, x))
    assert artifacts.model_version("2026-11-06", loaded.model, cfg, names) == loaded.version
    with pytest.raises(FileNotFoundError, match="python -m models.ranker.train --date 2026-11-07"):
        artifacts.load("2026-11-07", settings)


# ---------------------------------------------------------------- final lists
def _night(settings: Settings, exclude: list[tuple[int, int]], fresh: list[int], n_items: int) -> Night:
    rows, cols = zip(*exclude, strict=True) if exclude else ((), ())
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(1, n_items))
    flags = np.zeros(n_items, bool)
    flags[fresh] = True
    videos = [f"v{i}" for i in range(n_items)]
    return Night(settings, D, D, ["u1"], videos, flags, matrix, {})


def _ranked(items: list[int], scores: list[float], n_items: int) -> RankedLists:
    return RankedLists(
        ["u1"],
        [f"v{i}" for i in range(n_items)],
        RankerConfig().heads,
        np.array([items], np.int64),
        np.zeros((1, len(items), 4), np.float32),
        np.array([scores], np.float32),
    )


def test_final_list_removes_watched_and_caps_creators_in_the_top_ten(settings: Settings) -> None:
    n = 14
    items = list(range(n))
    scores = [float(100 - i) for i in items]  # already best first: 0, 1, 2, ...
    creators = np.array(["a", "a", "a", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"], dtype=object)
    night = _night(settings, exclude=[(0, 1)], fresh=[], n_items=n)
    cfg = RankerConfig(top_n=12, fresh_slots=0, max_per_creator_top10=2)
    got, got_scores = final_lists(_ranked(items, scores, n), night, creators, cfg)
    # v1 watched: gone. Creator a keeps v0, v2 in the top 10; v3 is pushed below position 10.
    assert got[0].tolist() == [0, 2, 4, 5, 6, 7, 8, 9, 10, 11, 3, 12]
    assert got_scores[0, 10] == 97.0 and 1 not in got[0]


def test_final_list_reserves_fresh_slots_and_never_drops_creators(settings: Settings) -> None:
    n = 8
    items = [0, 1, 2, 3, 4, 5, 6, 7]
    scores = [9.0, 8.0, 7.0, 6.0, 5.0, 1.0, 0.5, 0.25]
    creators = np.array([None] * n, dtype=object)
    night = _night(settings, exclude=[], fresh=[5, 6, 7], n_items=n)
    # 4 slots, 2 of them fresh: the best two others and the best two fresh, merged by score.
    got, _ = final_lists(_ranked(items, scores, n), night, creators, RankerConfig(top_n=4, fresh_slots=2))
    assert got[0].tolist() == [0, 1, 5, 6]
    # Fewer other candidates than the non-fresh slots: fresh ones fill the rest; short lists are padded.
    got, got_scores = final_lists(
        _ranked([5, 0, 6, 7, -1], [1.0, 9.0, 0.5, 0.25, -np.inf], n),
        night,
        creators,
        RankerConfig(top_n=6, fresh_slots=1),
    )
    assert got[0].tolist() == [0, 5, 6, 7, -1, -1] and np.isneginf(got_scores[0, 4:]).all()


# ---------------------------------------------------------------- features
def test_merged_lookup_and_source_block() -> None:
    merged = Merged(
        user_ids=["u1", "u2"],
        video_ids=["v0", "v1", "v2"],
        sources=["covisit", "trending"],
        items=np.array([[2, 0], [1, -1]], np.int64),
        source_scores=np.array([[[3.0, np.nan], [np.nan, 0.5]], [[1.0, 0.9], [np.nan, np.nan]]], np.float32),
        source_ranks=np.array([[[0, -1], [-1, 4]], [[2, 0], [-1, -1]]], np.int32),
    )
    scores, ranks = merged_lookup(merged, np.array([0, 1, 0, 1, -1]), np.array([0, 1, 1, 2, 0]))
    assert ranks.tolist() == [[-1, 4], [2, 0], [-1, -1], [-1, -1], [-1, -1]]
    block = features.source_block(scores, ranks, merged.sources, ("two_tower", "covisit", "trending"))
    assert block.shape == (5, 10)
    np.testing.assert_allclose(block[0], [0, 0, 0, 0, 0, 0, 0.5, 0.2, 1, 1])
    np.testing.assert_allclose(block[1], [0, 0, 0, 1.0, 1 / 3, 1, 0.9, 1.0, 1, 2], rtol=1e-6)
    assert not block[2:].any()


def test_content_block_is_the_cosine_to_the_mean_of_the_history() -> None:
    content = features.ContentLookup(
        index={"a": 0, "b": 1, "c": 2},
        text=np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32),
        frame=np.zeros((3, 1), np.float32),
        creator=["x", "x", "y"],
    )
    tastes = features.taste_vectors([["a", "b"], [], ["zz"]], content)
    texts = features.video_texts(["a", "c", "missing"], content)
    block = features.content_block(
        tastes, texts, np.array([2.0, 0.0, 1.0]), np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])
    )
    np.testing.assert_allclose(block[:, 0], [np.sqrt(0.5), 1.0, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(block[:, 1], np.log1p([2.0, 2.0, 0.0, 1.0]), rtol=1e-6)


def test_cap_per_user_is_deterministic_and_caps() -> None:
    table = pa.table(
        {
            "user_id": ["u1"] * 5 + ["u2"],
            "video_id": [f"v{i}" for i in range(6)],
            "dt": [D] * 6,
        }
    )
    capped = cap_per_user(table, 2)
    assert (
        capped.column("user_id").to_pylist().count("u1") == 2 and "u2" in capped.column("user_id").to_pylist()
    )
    assert cap_per_user(table, 2).equals(capped)


def test_impression_outcomes_label_every_impression_with_its_position(settings: Settings) -> None:
    at = f"{D}T"
    write_bronze(
        settings,
        VIDEOS,
        [video("v1", "c1", "2026-11-09T22:00:00", 10_000), video("v2", "c2", "2026-11-10T08:00:00", 10_000)],
    )
    write_bronze(
        settings,
        EVENTS,
        [
            event("e1", "impression", "u1", "v1", at + "10:00:00", position=3),
            event("e2", "impression", "u1", "v1", at + "10:05:00", position=1),
            event("e3", "view", "u1", "v1", at + "10:00:10", watch_ms=9_000),
            event("e4", "share", "u1", "v1", at + "10:00:11"),
            event("e5", "impression", "u1", "v2", at + "11:00:00", position=4),
            event("e6", "view", "u1", "v2", at + "11:00:02", watch_ms=5_000),  # half watched: kept
            event("e7", "like", "u1", "v2", at + "11:00:03"),
            event("e8", "impression", "u2", "v2", at + "12:00:00", position=0),
            event("e9", "skip", "u2", "v2", at + "12:00:01", watch_ms=300),
            event("e10", "impression", "u2", "v9", at + "12:00:00"),  # not in the catalog: dropped
        ],
    )
    out = impression_outcomes(settings, [D], TrainingSetConfig())
    rows = [
        (r["user_id"], r["video_id"], r["position"], r["completion"], r["like"], r["share"], r["skip"])
        for r in out.to_pylist()
    ]
    assert rows == [("u1", "v1", 1, 1, 0, 1, 0), ("u1", "v2", 4, 0, 1, 0, 0), ("u2", "v2", 0, 0, 0, 0, 1)]
    assert out.column("event_timestamp")[0].as_py() == datetime(2026, 11, 10, 10, tzinfo=UTC)
    assert out.column("video_age_hours").to_pylist()[1] == pytest.approx(3.0)


@pytest.mark.feast
def test_serving_features_equal_feasts_point_in_time_features(settings: Settings) -> None:
    from feature_repo import registry
    from reelrec import feast_store
    from tests.feature_repo.test_feast import CREATOR, D1, D2, USERS, VIDEOS, write_silver

    write_silver(settings, D1)
    write_silver(settings, D2)
    registry.apply(settings)
    users = [USERS[0], USERS[1], "u999999", USERS[0]]  # an unknown user: every value missing in both
    videos = [VIDEOS[0], VIDEOS[1], VIDEOS[2], "v9999999"]  # an unknown video likewise
    creators: list[Any] = [CREATOR, CREATOR, "c99999", CREATOR]
    age = np.array([1.5, 30.0, 0.0, 7.0])
    entity_df = pd.DataFrame(
        {
            "user_id": users,
            "video_id": videos,
            "creator_id": creators,
            "event_timestamp": [datetime(2026, 11, 3, 9, tzinfo=UTC)] * 4,
        }
    )
    frame = feast_store.historical_features(settings, entity_df, features.FEATURE_SERVICE)
    from_feast = features.feast_entity_block(frame, age)
    served = features.serving_entities(settings, D2, users, videos, age, creators)
    from_silver = np.concatenate([served.users, served.videos, served.creators], axis=1)
    assert from_feast.shape == (4, 36)
    np.testing.assert_allclose(from_silver, from_feast, rtol=1e-6)
    assert from_feast[0, 0] == pytest.approx(np.log1p(20))  # D2's impressions_1d: the night before, not D1
    assert from_feast[1, 0] == pytest.approx(np.log1p(21))
    assert not from_feast[2, :13].any() and from_feast[2, 13] == 1.0  # the unknown user: nothing, flagged


def test_final_lists_on_random_rows_keep_every_rule(settings: Settings) -> None:
    rng = np.random.default_rng(5)
    n_users, width, n_items = 30, 40, 60
    items = np.stack([rng.choice(n_items, width, replace=False) for _ in range(n_users)])
    items[:, -5:] = -1  # padding
    scores = rng.random((n_users, width)).astype(np.float32)
    watched = sp.random(n_users, n_items, density=0.1, format="csr", random_state=1)
    fresh = rng.random(n_items) < 0.2
    creators = np.array([f"c{i}" for i in rng.integers(0, 6, n_items)], dtype=object)
    night = Night(
        settings,
        D,
        D,
        [f"u{i}" for i in range(n_users)],
        [f"v{i}" for i in range(n_items)],
        fresh,
        watched,
        {},
    )
    ranked = RankedLists(
        night.user_ids, night.video_ids, RankerConfig().heads, items, np.zeros((n_users, width, 4)), scores
    )
    cfg = RankerConfig(top_n=20, fresh_slots=4, max_per_creator_top10=2)
    got, _ = final_lists(ranked, night, creators, cfg)
    for u in range(n_users):
        row = [int(i) for i in got[u] if i >= 0]
        allowed = [int(i) for i in items[u] if i >= 0 and watched[u, i] == 0]
        assert len(row) == len(set(row)) == min(cfg.top_n, len(allowed)) and set(row) <= set(allowed)
        n_fresh = sum(fresh[i] for i in allowed)
        assert sum(fresh[i] for i in row) >= min(cfg.fresh_slots, n_fresh)
        top = [creators[i] for i in row[:10]]
        assert max(top.count(c) for c in set(top)) <= 2 or len(set(creators[row])) * 2 < 10


# ---------------------------------------------------------------- candidate negatives
def _merged_for_negatives() -> Merged:
    items = np.array([[0, 1, 2, 3, 4], [5, 1, -1, -1, -1], [2, 3, -1, -1, -1]], np.int64)
    shape = (*items.shape, 1)
    return Merged(
        user_ids=["u0", "u1", "u2"],
        video_ids=[f"v{i}" for i in range(6)],
        sources=["ease"],
        items=items,
        source_scores=np.full(shape, np.nan, np.float32),
        source_ranks=np.full(shape, -1, np.int32),
    )


def test_negatives_are_unimpressed_merged_candidates_capped_per_user_and_deterministic() -> None:
    merged = _merged_for_negatives()
    shown = [(0, 1), (0, 3), (1, 5), (2, 2), (2, 3), (0, 5)]  # u2 saw both its candidates
    rows, cols = zip(*shown, strict=True)
    impressed = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(3, 6))
    users, items = sample_negatives(merged, impressed, per_user=2, seed=11)
    pairs = list(zip(users.tolist(), items.tolist(), strict=True))
    assert [u for u, _ in pairs] == [0, 0, 1]  # u0: 2 of its 3 eligible; u1: its only one; u2: none
    assert {i for u, i in pairs if u == 0} < {0, 2, 4} and (1, 1) in pairs
    assert not any(impressed[u, i] for u, i in pairs)
    again = sample_negatives(merged, impressed, per_user=2, seed=11)
    assert again[0].tolist() == users.tolist() and again[1].tolist() == items.tolist()
    seen = {tuple(sample_negatives(merged, impressed, 2, seed)[1].tolist()) for seed in range(20)}
    assert len(seen) > 1  # the seed decides which eligible candidates are kept
    assert sample_negatives(merged, impressed, per_user=0, seed=11)[0].size == 0


def test_negative_rows_are_zero_labelled_requests_at_midnight_in_the_impressions_schema(
    settings: Settings,
) -> None:
    at = f"{D}T"
    write_bronze(
        settings,
        VIDEOS,
        [video("v1", "c1", "2026-11-09T22:00:00", 10_000), video("v2", "c2", "2026-11-10T08:00:00", 10_000)],
    )
    write_bronze(settings, EVENTS, [event("e1", "impression", "u1", "v1", at + "10:00:00", position=3)])
    cfg = RankerConfig(serving_position=0)
    impressions, shown = impressions_of(settings, [D], cfg, cap=True)
    assert shown.num_rows == 1
    night = Night(
        settings, D, "2026-11-09", ["u1"], ["v1", "v2"], np.zeros(2, bool), sp.csr_matrix((1, 2)), {}
    )
    negatives = negative_rows(settings, night, np.array([0, 0]), np.array([1, 0]), cfg)
    assert negatives.column("video_id").to_pylist() == ["v2", "v1"]
    assert negatives.column("creator_id").to_pylist() == ["c2", "c1"]
    assert all(negatives.column(h).to_pylist() == [0, 0] for h in cfg.heads)
    assert negatives.column("position").to_pylist() == [0, 0]
    assert negatives.column("event_timestamp").to_pylist() == [datetime(2026, 11, 10, tzinfo=UTC)] * 2
    assert negatives.column("video_age_hours").to_pylist() == pytest.approx([0.0, 2.0])  # v2: uploaded later
    both = with_negatives(impressions, negatives)
    assert both.schema == impressions.schema and both.num_rows == 3
    assert labels_of(both, cfg).tolist()[1:] == [[0.0] * 4, [0.0] * 4]
