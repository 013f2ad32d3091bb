"""The default list: recent views, recency-weighted, with fresh slots, on a hand-made tiny lake."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from models.default_list import DefaultListConfig, default_list, default_row, rank_default_list
from reelrec import lake
from reelrec.catalog import CANDIDATES, DEFAULT_LIST_KEY, EVENTS, VIDEOS
from reelrec.dates import feature_timestamp
from reelrec.settings import Settings
from tests.spark_jobs.tiny import D, event, video, write_bronze

D1, D2, D3 = "2026-11-09", "2026-11-08", "2026-11-07"  # D-1, D-2 (weight 1/4), D-3 (outside 3 nights)
CATALOG = [f"v{i}" for i in range(1, 8)]  # v5, v6, v7 are the uploads of D
FRESH = np.array([False, False, False, False, True, True, True])


def _videos() -> list[dict[str, Any]]:
    uploaded = {
        "v1": "2026-11-01T00:00:00",
        "v2": "2026-11-02T00:00:00",
        "v3": "2026-11-03T00:00:00",
        "v4": "2026-10-01T00:00:00",
        "v5": f"{D}T09:00:00",
        "v6": f"{D}T20:00:00",
        "v7": f"{D}T10:00:00",
    }
    return [video(v, "c1", at, 10_000) for v, at in uploaded.items()]


def _events() -> list[dict[str, Any]]:
    views = [
        ("u1", "v1", D2),  # v1: 2 viewers two nights back (weight 1/4) = 0.5 ...
        ("u2", "v1", D2),
        *[(f"u{i}", "v1", D3) for i in range(4)],  # ... four viewers three nights back do not count
        ("u1", "v2", D),  # v2: 1 viewer on D (weight 1) + 1 on D-1 (1/2) = 1.5 ...
        ("u1", "v2", D),  # ... the same viewer twice on one night counts once
        ("u2", "v2", D1),
        ("u1", "v3", D1),  # v3: 2 viewers on D-1 = 1.0
        ("u3", "v3", D1),
        ("u4", "v5", D),  # v5 (fresh): 1 first-day viewer = 1.0
        ("u5", "gone", D),  # not in D's catalog: never listed
    ]
    rows = [
        event(f"e{i}", "view", u, v, f"{night}T12:00:{i:02d}", 9_000) for i, (u, v, night) in enumerate(views)
    ]
    # skips and impressions are not views
    rows += [
        event("s1", "skip", "u9", "v4", f"{D}T13:00:00", 300),
        event("i1", "impression", "u9", "v4", f"{D}T13:00:01"),
    ]
    return rows


@pytest.fixture
def lake_home(settings: Settings) -> Settings:
    write_bronze(settings, VIDEOS, _videos())
    write_bronze(settings, EVENTS, _events())
    return settings


def _listed(items: np.ndarray) -> list[str]:
    return [CATALOG[i] for i in items]


def test_default_list_ranks_recent_views_with_fresh_slots(lake_home: Settings) -> None:
    # popularity: v1 0.5, v2 1.5, v3 1.0, v4 0, v5 1.0, v6 0, v7 0; equal scores: newer upload first
    items, scores = default_list(lake_home, D, CATALOG, FRESH, DefaultListConfig(top_n=4, fresh_slots=2))
    assert _listed(items) == ["v2", "v5", "v3", "v6"]  # fresh v5, v6 (v6 newer than v7, both unseen)
    assert scores.dtype == np.float32 and scores.tolist() == [1.5, 1.0, 1.0, 0.0]

    items, scores = default_list(lake_home, D, CATALOG, FRESH, DefaultListConfig(top_n=4, fresh_slots=0))
    assert _listed(items) == ["v2", "v3", "v1", "v4"] and scores.tolist() == [1.5, 1.0, 0.5, 0.0]

    items, _ = default_list(lake_home, D, CATALOG, FRESH)  # top_n 100 > catalog: all of it, once
    assert _listed(items) == ["v2", "v5", "v3", "v1", "v6", "v7", "v4"]

    half_life_2 = DefaultListConfig(top_n=3, fresh_slots=0, half_life_nights=2.0)  # D-1 weighs 2**-0.5
    items, scores = default_list(lake_home, D, CATALOG, FRESH, half_life_2)
    assert _listed(items) == ["v2", "v3", "v1"]
    assert scores.tolist() == pytest.approx([1 + 2**-0.5, 2 * 2**-0.5, 1.0])


def test_default_row_is_one_candidates_row_under_the_documented_key(lake_home: Settings) -> None:
    generated = datetime(2026, 11, 11, 3, 0, tzinfo=UTC)
    cfg = DefaultListConfig(top_n=4, fresh_slots=2)
    row = default_row(lake_home, D, CATALOG, FRESH, "two_tower_v1-x", generated, cfg)
    assert DEFAULT_LIST_KEY == "__default__"
    assert row.schema == CANDIDATES.schema
    assert row.to_pylist() == [
        {
            "user_id": "__default__",
            "video_ids": ["v2", "v5", "v3", "v6"],
            "scores": [1.5, 1.0, 1.0, 0.0],
            "model_version": "two_tower_v1-x",
            "generated_at": generated,
            "event_timestamp": feature_timestamp(D),
            "dt": D,
        }
    ]
    user = pa.table({**row.to_pydict(), "user_id": ["u1"]}, schema=CANDIDATES.schema)
    lake.write_partition(CANDIDATES, lake_home, pa.concat_tables([user, row]), D)  # the catalog accepts it
    assert sorted(lake.read(CANDIDATES, lake_home, dates=[D]).column("user_id").to_pylist()) == [
        "__default__",
        "u1",
    ]


def test_an_empty_lake_still_lists_the_catalog_newest_fresh_first(settings: Settings) -> None:
    items, scores = default_list(settings, D, CATALOG, FRESH, DefaultListConfig(top_n=3, fresh_slots=1))
    assert len(items) == 3 and FRESH[items].sum() == 1 and not scores.any()  # no events: all zero


def test_rank_default_list_gives_slots_back_both_ways() -> None:
    popularity = np.array([5.0, 4.0, 3.0, 0.5, 0.2], dtype=np.float32)
    upload = np.zeros(5, dtype=np.int64)
    one_fresh = np.array([False, False, False, False, True])
    items, _ = rank_default_list(popularity, upload, one_fresh, top_n=3, fresh_slots=2)
    assert items.tolist() == [0, 1, 4]  # one fresh upload for two slots: the other slot goes back
    all_but_one_fresh = np.array([True, True, True, True, False])
    items, _ = rank_default_list(popularity, upload, all_but_one_fresh, top_n=4, fresh_slots=1)
    assert items.tolist() == [0, 1, 2, 4]  # one non-fresh video: the fresh ones take the rest
    with pytest.raises(ValueError, match="fresh_slots must be in"):
        rank_default_list(popularity, upload, one_fresh, top_n=3, fresh_slots=4)
    with pytest.raises(ValueError, match="differ in length"):
        rank_default_list(popularity, upload[:4], one_fresh, top_n=3, fresh_slots=1)


@hsettings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.booleans()), min_size=1, max_size=30),
    st.integers(1, 12),
    st.data(),
)
def test_rank_default_list_properties(
    videos: list[tuple[int, int, bool]], top_n: int, data: st.DataObject
) -> None:
    slots = data.draw(st.integers(0, top_n))
    popularity = np.array([p for p, _, _ in videos], dtype=np.float32)
    upload = np.array([u for _, u, _ in videos], dtype=np.int64)
    fresh = np.array([f for _, _, f in videos])
    items, scores = rank_default_list(popularity, upload, fresh, top_n, slots)
    assert len(items) == min(top_n, len(videos)) == len(set(items.tolist()))
    assert (np.diff(scores) <= 0).all() and (scores == popularity[items]).all()
    assert fresh[items].sum() >= min(slots, fresh.sum(), len(items))
    # brute force: the best fresh and the best others, as one best-first order ranks them
    order = sorted(range(len(videos)), key=lambda i: (-popularity[i], -upload[i], i))
    n_fresh = max(min(slots, int(fresh.sum())), len(items) - int((~fresh).sum()))
    want = [i for i in order if fresh[i]][:n_fresh] + [i for i in order if not fresh[i]][
        : len(items) - n_fresh
    ]
    assert items.tolist() == sorted(want, key=order.index)
