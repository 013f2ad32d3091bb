"""Candidate sources and their merge: hand-computed cases, brute-force references, point in time.

Pure scoring functions are checked on hand-made arrays; the lake-backed sources run on a tiny lake
(three catalog nights, a few users) where rows dated after ``as_of`` must never change a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from models.sources import covisit, ease, followed, fresh_content, trending, two_tower
from models.sources.base import Night, SourceCandidates, check_candidates, sparse_top_k
from models.sources.config import SOURCE_NAMES, SourcesConfig
from models.sources.merge import merge, retrieve_all
from reelrec.catalog import EVENTS, FOLLOWS, VIDEO_CONTENT, VIDEO_FEATURES, VIDEOS
from reelrec.settings import Settings
from tests.spark_jobs.tiny import event, ts, video, write_bronze

D, AS_OF, PREV = "2026-11-10", "2026-11-09", "2026-11-08"
VIDEOS_OF_D = ["v1", "v2", "v3", "v4", "v5", "v6"]  # v5 uploaded on AS_OF, v6 on D
USERS = ["u1", "u2", "u3", "u4"]  # u4: no history, follows nobody


def _night(settings: Settings, exclude: Sequence[tuple[int, int]] = (), **extra: Any) -> Night:
    rows = [u for u, _ in exclude]
    cols = [i for _, i in exclude]
    watched = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(USERS), len(VIDEOS_OF_D)))
    histories = {"u1": ["v2", "v1"], "u2": ["v3"], "u3": ["v3", "v2"]}
    fresh = np.array([False] * 5 + [True])
    return Night(settings, D, AS_OF, USERS, VIDEOS_OF_D, fresh, watched.tocsr(), histories, **extra)


# ---------------------------------------------------------------- base and two_tower


def test_check_candidates_rejects_bad_padding_and_repeats(settings: Settings) -> None:
    night = _night(settings)
    ok = SourceCandidates("s", np.array([[0, -1]] * 4), np.array([[1.0, np.nan]] * 4, np.float32))
    assert check_candidates(ok, night) is ok
    with pytest.raises(ValueError, match="NaN exactly"):
        check_candidates(SourceCandidates("s", ok.items, np.ones((4, 2), np.float32)), night)
    with pytest.raises(ValueError, match="twice"):
        check_candidates(SourceCandidates("s", np.array([[1, 1]] * 4), np.ones((4, 2), np.float32)), night)
    with pytest.raises(ValueError, match="U=4"):
        check_candidates(SourceCandidates("s", ok.items[:3], ok.scores[:3]), night)


def test_sparse_top_k_keeps_stored_zero_and_negative_scores_only(settings: Settings) -> None:
    night = _night(settings, exclude=[(0, 1)])
    scores = sp.csr_matrix((np.array([0.0, -2.0, 5.0]), ([0, 0, 0], [0, 3, 1])), shape=(4, 6))
    result = sparse_top_k("s", scores, night, k=3)
    assert result.items[0].tolist() == [0, 3, -1]  # v2 (score 5) was watched
    assert result.scores[0, :2].tolist() == [0.0, -2.0] and np.isnan(result.scores[0, 2])
    assert (result.items[1:] == -1).all()


def test_two_tower_exact_matches_brute_force_without_watched(settings: Settings) -> None:
    rng = np.random.default_rng(0)
    users, videos = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    night = _night(settings, exclude=[(0, 0), (0, 1), (2, 5)], user_vectors=users, video_vectors=videos)
    result = check_candidates(two_tower.retrieve(night, 3), night)
    scores = users @ videos.T
    scores[night.exclude.toarray() > 0] = -np.inf
    assert result.items.tolist() == np.argsort(-scores, axis=1, kind="stable")[:, :3].tolist()
    empty = two_tower.retrieve(_night(settings), 3)
    assert empty.items.shape == (4, 0) and empty.scores.shape == (4, 0)


def test_two_tower_ann_over_fetches_and_drops_watched(settings: Settings, tmp_path: Any) -> None:
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    users, videos = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    index = faiss.IndexFlatIP(3)  # exact inner product: the ANN path must then equal the exact one
    index.add(videos)
    path = str(tmp_path / "videos.faiss")
    faiss.write_index(index, path)
    watched = [(0, 0), (0, 1), (0, 2), (3, 4)]
    exact = two_tower.retrieve(_night(settings, watched, user_vectors=users, video_vectors=videos), 3)
    night = _night(settings, watched, user_vectors=users, video_vectors=videos, ann_index=path)
    ann = check_candidates(two_tower.retrieve(night, 3), night)
    assert ann.items.tolist() == exact.items.tolist()
    np.testing.assert_allclose(ann.scores, exact.scores, rtol=1e-5)
    assert ann.items.tolist()[0] and not {0, 1, 2} & set(ann.items[0].tolist())


# ---------------------------------------------------------------- pure scoring functions


def test_covisit_block_scores_history_times_counts_with_tie_break(settings: Settings) -> None:
    history = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 0]], np.float32))
    counts = sp.csr_matrix(np.array([[0, 2, 1, 0], [2, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], np.float32))
    popularity = np.array([4.0, 2.0, 1.0, 0.0], np.float32)
    scores = covisit.covisit_block(history, counts, popularity)(slice(0, 2))
    # user 0: v0 <- v1 (2), v1 <- v0 (2), v2 <- both (2); popularity / 4 * 0.5 breaks the ties
    np.testing.assert_allclose(scores[0, :3], [2.5, 2.25, 2.125])
    assert scores[0, 3] == -np.inf and (scores[1] == -np.inf).all()


def test_trending_scores_combine_both_terms_and_drop_unviewed() -> None:
    scores = trending.trending_scores(
        np.array([2.0, 1.0, np.nan, 0.0]), np.array([np.e - 1, np.e**2 - 1, np.nan, 0])
    )
    w = trending.VIEWS_WEIGHT
    np.testing.assert_allclose(scores[:2], [w * 0.5 + (1 - w), w + (1 - w) * 0.5], rtol=1e-6)
    assert scores[2] == -np.inf and scores[3] == -np.inf


def test_followed_block_reaches_only_followed_creators_uploads() -> None:
    follows = sp.csr_matrix(np.array([[1, 0], [0, 1], [0, 0]], np.float32))
    video_creator = np.array([0, 1, 0, -1])  # video 3 is not a recent upload
    recency = np.array([5.0, 1.0, 7.0, 9.0], np.float32)
    block = followed.followed_block(follows, video_creator, recency)(slice(0, 3))
    assert block[0].tolist() == [5.0, -np.inf, 7.0, -np.inf]
    assert block[1].tolist() == [-np.inf, 1.0, -np.inf, -np.inf] and (block[2] == -np.inf).all()


def test_fresh_content_taste_is_cosine_to_mean_of_unit_parts() -> None:
    vectors = fresh_content.content_vectors(
        np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), np.array([[0.0], [2.0], [0.0]])
    )
    np.testing.assert_allclose(vectors[0], [1.0, 0.0, 0.0])  # no frame: the text part alone, unit
    np.testing.assert_allclose(vectors[1], [0.0, 1 / np.sqrt(2), 1 / np.sqrt(2)])
    history = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]], np.float32))
    taste = fresh_content.taste_vectors(history, vectors)
    expected = (vectors[0] + vectors[1]) / np.linalg.norm(vectors[0] + vectors[1])
    np.testing.assert_allclose(taste[0], expected, rtol=1e-6)
    assert np.isnan(taste[1]).all() and np.isnan(taste[2]).all()  # only a content-less video / nothing
    scores = fresh_content.fresh_block(taste, vectors)(slice(0, 3))
    np.testing.assert_allclose(scores[0, :2], [expected @ vectors[0], expected @ vectors[1]], rtol=1e-6)
    assert scores[0, 2] == -np.inf and (scores[1:] == -np.inf).all()


def test_ease_weights_match_closed_form_and_per_column_ridge() -> None:
    x = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 1, 0], [0, 0, 1, 1]], np.float64)
    lam = 0.7
    weights = ease.ease_weights(sp.csr_matrix(x), lam)
    p = np.linalg.inv(x.T @ x + lam * np.eye(4))
    closed = np.eye(4) - p / np.diag(p)[None, :]
    np.fill_diagonal(closed, 0.0)
    np.testing.assert_allclose(weights, closed, atol=1e-12)
    for j in range(4):  # EASE column j is the ridge regression of item j on every other item
        others = [i for i in range(4) if i != j]
        a = x[:, others]
        ridge = np.linalg.solve(a.T @ a + lam * np.eye(3), a.T @ x[:, j])
        np.testing.assert_allclose(weights[others, j], ridge, atol=1e-10)
    with pytest.raises(ValueError, match="ease_lambda"):
        ease.ease_weights(x, 0.0)


def test_most_watched_keeps_top_items_by_count_then_index() -> None:
    assert ease.most_watched(np.array([3, 3, 1, 1, 0, 4, 4, 4]), 6, 3).tolist() == [1, 3, 4]
    assert ease.most_watched(np.array([2]), 6, 3).tolist() == [2]


# ---------------------------------------------------------------- merge


def _sources() -> list[SourceCandidates]:
    nan = np.nan
    a = SourceCandidates(
        "a", np.array([[2, 0, 5], [1, -1, -1]]), np.array([[9, 8, 7], [3, nan, nan]], np.float32)
    )
    b = SourceCandidates("b", np.array([[0, 3], [4, 1]]), np.array([[0.5, 0.4], [0.9, 0.8]], np.float32))
    c = SourceCandidates("c", np.zeros((2, 0), np.int64), np.zeros((2, 0), np.float32))
    return [a, b, c]


def _two_user_night(settings: Settings) -> Night:
    watched = sp.csr_matrix(([1.0], ([0], [5])), shape=(2, 6))  # user 0 watched item 5
    return Night(settings, D, AS_OF, ["u1", "u2"], VIDEOS_OF_D, np.zeros(6, bool), watched, {})


def test_merge_provenance_is_exact(settings: Settings) -> None:
    merged = merge(_sources(), _two_user_night(settings), max_candidates=10)
    assert merged.sources == ["a", "b", "c"]
    # user 0: 2 (a#0), 0 (a#1, b#0: best rank 0, two sources), 3 (b#1); 5 watched. Ties at rank 0:
    # item 0 has two sources so comes before item 2.
    assert merged.items.tolist() == [[0, 2, 3], [1, 4, -1]]
    assert merged.source_ranks[0].tolist() == [[1, 0, -1], [0, -1, -1], [-1, 1, -1]]
    np.testing.assert_array_equal(merged.source_scores[0, 0], np.array([8, 0.5, np.nan], np.float32))
    assert merged.source_ranks[1].tolist() == [[0, 1, -1], [-1, 0, -1], [-1, -1, -1]]
    assert np.isnan(merged.source_scores[1, 2]).all()
    assert merged.order_by_best_source().tolist() == merged.items.tolist()
    items, scores = merged.source_only("b")
    assert items.tolist() == [[0, 3, -1], [4, 1, -1]]
    np.testing.assert_array_equal(scores[1], np.array([0.9, 0.8, np.nan], np.float32))


def test_merge_cap_and_determinism(settings: Settings) -> None:
    night = _two_user_night(settings)
    capped = merge(_sources(), night, max_candidates=2)
    assert capped.items.tolist() == [[0, 2], [1, 4]]
    swapped = merge(_sources()[::-1], night, max_candidates=2)
    assert swapped.items.tolist() == capped.items.tolist()
    assert swapped.source_ranks[..., ::-1].tolist() == capped.source_ranks.tolist()
    with pytest.raises(ValueError, match="repeat"):
        merge(_sources() + _sources()[:1], night, 2)


# ---------------------------------------------------------------- lake-backed sources, point in time


def _positive(eid: str, user: str, vid: str, day: str, hour: int) -> list[dict[str, Any]]:
    at = f"{day}T{hour:02d}:00:00"
    return [
        event(f"{eid}i", "impression", user, vid, at),
        event(f"{eid}v", "view", user, vid, at, watch_ms=10_000),
    ]


def _write_past(settings: Settings) -> None:
    uploads = {"v1": "2026-11-01", "v2": "2026-11-02", "v3": "2026-11-03", "v4": "2026-11-08"}
    uploads |= {"v5": AS_OF, "v6": D}
    creators = {"v1": "c1", "v2": "c1", "v3": "c2", "v4": "c2", "v5": "c1", "v6": "c2"}
    rows = [
        video(v, creators[v], f"{up}T06:00:00", 10_000, dt=night)
        for night in (PREV, AS_OF, D)
        for v, up in uploads.items()
        if up <= night
    ]
    write_bronze(settings, VIDEOS, rows)
    events = []
    for n, (user, vid, day) in enumerate(
        [
            ("u1", "v1", PREV),
            ("u1", "v2", AS_OF),
            ("u2", "v1", PREV),
            ("u2", "v3", AS_OF),
            ("u3", "v2", PREV),
            ("u3", "v3", AS_OF),
            ("u3", "v4", AS_OF),
            ("u9", "v3", AS_OF),
            ("u9", "v4", AS_OF),
        ]
    ):
        events += _positive(f"p{n}", user, vid, day, 8 + n)
    write_bronze(settings, EVENTS, events)
    follows = [{"user_id": "u1", "creator_id": "c1", "followed_at": ts(f"{PREV}T01:00:00"), "dt": PREV}]
    write_bronze(settings, FOLLOWS, follows)
    features = [_features(v, views) for v, views in [("v1", 5), ("v2", 1), ("v3", 9), ("v4", 0), ("v5", 2)]]
    write_bronze(settings, VIDEO_FEATURES, features)
    text = {v: np.eye(384, dtype=np.float32)[i % 3].tolist() for i, v in enumerate(uploads)}
    content = [
        {
            "video_id": v,
            "creator_id": creators[v],
            "text_embedding": text[v],
            "frame_embedding": [1.0] * 32,
            "text_encoder": "test",
            "event_timestamp": ts(f"{up}T06:00:00"),
            "dt": up,
        }
        for v, up in uploads.items()
    ]
    write_bronze(settings, VIDEO_CONTENT, content)


def _features(vid: str, views: int, dt: str = AS_OF) -> dict[str, Any]:
    return {
        "video_id": vid,
        "creator_id": "c1",
        "views_1d": views,
        "views_7d": 7,
        "trending_score": views / 2.0,
        "event_timestamp": ts(f"{dt}T23:59:59"),
        "dt": dt,
    }


def _write_future(settings: Settings) -> None:
    """Rows of night D (after as_of): they must change nothing when as_of = D - 1."""
    events = []
    for n, (user, vid) in enumerate([("u2", "v2"), ("u4", "v1"), ("u4", "v2"), ("u1", "v5"), ("u1", "v3")]):
        events += _positive(f"f{n}", user, vid, D, 8 + n)
    write_bronze(settings, EVENTS, events)
    later = ts(f"{D}T01:00:00")
    write_bronze(
        settings, FOLLOWS, [{"user_id": u, "creator_id": "c2", "followed_at": later, "dt": D} for u in USERS]
    )
    write_bronze(settings, VIDEO_FEATURES, [_features(v, 50 - 7 * n, D) for n, v in enumerate(VIDEOS_OF_D)])


def _lake_results(night: Night) -> dict[str, list[list[int]]]:
    cfg = SourcesConfig(ease_lambda=1.0)
    retrievers = {
        "covisit": lambda: covisit.retrieve(night, 4, cfg),
        "trending": lambda: trending.retrieve(night, 4),
        "followed": lambda: followed.retrieve(night, 4, cfg),
        "fresh_content": lambda: fresh_content.retrieve(night, 4, SourcesConfig(fresh_days=2)),
        "ease": lambda: ease.retrieve(night, 4, cfg),
    }
    return {name: check_candidates(run(), night).items.tolist() for name, run in retrievers.items()}


def test_lake_sources_ignore_everything_after_as_of(settings: Settings) -> None:
    _write_past(settings)
    night = _night(settings, exclude=[(0, 0), (0, 1)])  # u1 watched v1 and v2
    before = _lake_results(night)
    assert before["trending"][3] == [2, 0, 4, 1]  # views of AS_OF: v3 9, v1 5, v5 2, v2 1; v4 0 dropped
    assert before["trending"][0] == [2, 4, -1, -1]  # u1 watched v1, v2
    assert before["followed"][0] == [4, -1, -1, -1]  # c1's uploads of the 3 days up to D: v5 (v2 watched)
    assert before["followed"][1] == [-1] * 4
    assert before["fresh_content"][3] == [-1] * 4  # no history, no fresh taste
    assert before["fresh_content"][1] == [5, 4, -1, -1]  # history v3: v6 shares its text, then v5
    assert before["fresh_content"][0] == [4, 5, -1, -1]  # history v2, v1: v5 shares v2's text
    assert before["covisit"][3] == [-1] * 4 and before["ease"][3] == [-1] * 4
    assert 3 in before["covisit"][1]  # u2 (history v3) reaches v4 through u3 and u9
    _write_future(settings)
    assert _lake_results(night) == before
    moved = _night(settings, exclude=[(0, 0), (0, 1)])
    moved.as_of = D  # the same lake read as of D: the future rows now count
    assert _lake_results(moved) != before


def test_retrieve_all_merges_every_source_without_watched(settings: Settings) -> None:
    _write_past(settings)
    night = _night(settings, exclude=[(0, 0), (0, 1), (2, 2)])
    results, merged = retrieve_all(night, SourcesConfig(ease_lambda=1.0, max_candidates=3))
    assert [r.name for r in results] == list(SOURCE_NAMES) and merged.sources == list(SOURCE_NAMES)
    assert results[0].items.shape == (4, 0)  # no vectors: two_tower is empty
    assert merged.items.shape[1] <= 3
    watched = night.exclude.toarray() > 0
    for u in range(4):
        kept = merged.items[u][merged.items[u] >= 0]
        assert not watched[u, kept].any()
        assert len(set(kept.tolist())) == len(kept)
    present = merged.source_ranks >= 0
    assert (present.any(axis=2) == (merged.items >= 0)).all()
    assert (np.isnan(merged.source_scores) == ~present).all()


@pytest.mark.torch
def test_build_night_reads_only_up_to_as_of(settings: Settings) -> None:
    from models.sources.night import build_night
    from reelrec.catalog import USER_FEATURES

    _write_past(settings)
    _write_future(settings)
    stamp = ts(f"{AS_OF}T23:59:59")
    rows = [{"user_id": u, "event_timestamp": stamp, "dt": AS_OF} for u in ("u3", "u1", "u2")]
    write_bronze(settings, USER_FEATURES, rows + [{"user_id": "u4", "event_timestamp": stamp, "dt": D}])
    night = build_night(settings, D, AS_OF)
    assert night.user_ids == ["u1", "u2", "u3"]  # u4's only row is of D
    assert night.video_ids == VIDEOS_OF_D and night.fresh.tolist() == [False] * 5 + [True]
    assert night.exclude.toarray().astype(int).tolist() == [
        [1, 1, 0, 0, 0, 0],  # u1's views of D (v5, v3) are not watched as of AS_OF
        [1, 0, 1, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
    ]
    assert night.histories["u1"] == ["v2", "v1"] and "u4" not in night.histories
    assert night.user_vectors is None and night.video_vectors is None
    with pytest.raises(ValueError, match="future"):
        build_night(settings, AS_OF, D)
