"""The world is realistic enough to learn from: fresh uploads, inactive users, heavy tails, taste signal."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np
import pyarrow.parquet as pq

from tests.synthetic_world.landed import DATES, START, Events, World, snapshot


def test_fresh_uploads_arrive_every_day(world: World, events: Events) -> None:
    settings, summary = world
    previous = {v["video_id"] for v in snapshot(settings, "videos", "2026-11-01").to_pylist()}
    for date in DATES[1:]:
        videos = snapshot(settings, "videos", date).to_pylist()
        new = [v for v in videos if v["video_id"] not in previous]
        assert previous <= {v["video_id"] for v in videos}, "a snapshot keeps every earlier video"
        assert len(new) == summary["dates"][date]["uploads"] > 0
        assert all(str(v["upload_ts"].date()) == date for v in new)
        shown = {e["video_id"] for e in events[date] if e["event_type"] == "impression"}
        assert shown & {v["video_id"] for v in new}, f"{date}: no fresh upload reached a feed"
        previous = {v["video_id"] for v in videos}


def test_some_users_are_inactive_each_day(world: World, events: Events) -> None:
    settings, summary = world
    for date in DATES:
        active = {e["user_id"] for e in events[date]}
        assert len(active) == summary["dates"][date]["active_users"]
        assert 0.3 < len(active) / summary["dates"][date]["users"] < 0.95


def test_popularity_is_heavy_tailed(world: World, events: Events) -> None:
    settings, _ = world
    catalog = snapshot(settings, "videos", DATES[-1]).num_rows
    shown = Counter(e["video_id"] for day in events.values() for e in day if e["event_type"] == "impression")
    counts = np.sort(np.array(list(shown.values())))[::-1]
    assert counts[: catalog // 10].sum() > 0.5 * counts.sum()


def test_feed_position_lowers_the_view_rate(events: Events) -> None:
    outcomes = [e for day in events.values() for e in day if e["event_type"] in ("view", "skip")]
    top = [e["event_type"] == "view" for e in outcomes if e["position"] < 3]
    deep = [e["event_type"] == "view" for e in outcomes if e["position"] >= 10]
    assert np.mean(top) > np.mean(deep) + 0.05


def test_taste_drives_watching(world: World, events: Events) -> None:
    settings, _ = world
    top_topic = dict(
        zip(
            *pq.read_table(settings.truth / "users.parquet", columns=["user_id", "top_topic"])
            .to_pydict()
            .values(),
            strict=True,
        )
    )
    topic = dict(
        zip(
            *pq.read_table(settings.truth / "videos.parquet", columns=["video_id", "topic"])
            .to_pydict()
            .values(),
            strict=True,
        )
    )
    outcomes = [e for day in events.values() for e in day if e["event_type"] in ("view", "skip")]
    matched = [e["watch_ms"] for e in outcomes if topic[e["video_id"]] == top_topic[e["user_id"]]]
    other = [e["watch_ms"] for e in outcomes if topic[e["video_id"]] != top_topic[e["user_id"]]]
    assert len(matched) > 50 and len(other) > 50
    assert np.mean(matched) > 1.5 * np.mean(other)


def test_text_carries_topic_signal(world: World) -> None:
    settings, _ = world
    truth = pq.read_table(settings.truth / "videos.parquet", columns=["video_id", "topic"]).to_pydict()
    topic = dict(zip(truth["video_id"], truth["topic"], strict=True))
    videos = snapshot(settings, "videos", START).to_pylist()
    words = [(topic[v["video_id"]], set(v["caption"].split()), set(v["hashtags"])) for v in videos]

    def jaccard(a: set[str], b: set[str]) -> float:
        return len(a & b) / len(a | b)

    same: dict[str, list[float]] = {"caption": [], "hashtags": []}
    different: dict[str, list[float]] = {"caption": [], "hashtags": []}
    for (t1, c1, h1), (t2, c2, h2) in combinations(words, 2):
        bucket = same if t1 == t2 else different
        bucket["caption"].append(jaccard(c1, c2))
        bucket["hashtags"].append(jaccard(h1, h2))
    assert np.mean(same["caption"]) > 2 * np.mean(different["caption"])
    assert np.mean(same["hashtags"]) > 2 * np.mean(different["hashtags"])


def test_frame_embeddings_cluster_by_topic(world: World) -> None:
    settings, _ = world
    truth = pq.read_table(settings.truth / "videos.parquet", columns=["video_id", "topic"]).to_pydict()
    topic = dict(zip(truth["video_id"], truth["topic"], strict=True))
    videos = snapshot(settings, "videos", START)
    labels = np.array([topic[v] for v in videos["video_id"].to_pylist()])
    emb = np.array(videos["frame_embedding"].to_pylist(), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cosine = emb @ emb.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    assert cosine[same & off_diagonal].mean() > cosine[~same].mean() + 0.3
