"""The synthetic world: determinism, the landing contract, and the signal models can learn from.

Everything runs on the tiny preset (a few thousand events a day); the world of three days is
generated once per module and read back the way an ingest job would, straight from the files.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reelrec.catalog import CREATORS, DT, EVENT_TYPES, FOLLOWS, FRAME_EMBEDDING_DIM, SURFACES, USERS, VIDEOS
from reelrec.settings import Settings
from reelrec.synthetic import AGE_BUCKETS, CORRUPTION_KINDS, COUNTRIES, FEEDS, PRESETS, generate, truth_day

START = "2026-11-01"
DAYS = 3
DATES = [str(dt.date(2026, 11, 1) + dt.timedelta(days=i)) for i in range(DAYS)]
TS_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ------------------------------------------------------------------------------------------ helpers
def _home(tmp_path_factory: pytest.TempPathFactory, name: str) -> Settings:
    return Settings.from_env(tmp_path_factory.mktemp(name) / "home")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _raw_lines(settings: Settings, date: str) -> list[str]:
    folder = settings.landing / "events" / f"dt={date}"
    lines: list[str] = []
    for part in sorted(folder.glob("*.jsonl.gz")):
        lines.extend(gzip.decompress(part.read_bytes()).decode().splitlines())
    return lines


def _parse_ts(value: Any) -> dt.datetime:
    if not isinstance(value, str) or not TS_FORMAT.match(value):
        raise ValueError(value)
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _defect(line: str, date: str) -> str | None:
    """The contract breach of one landed event line (a kind of CORRUPTION_KINDS), or None."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return "malformed_json"
    if not isinstance(record, dict):
        return "malformed_json"
    if not isinstance(record.get("user_id"), str):
        return "missing_user_id"
    if record.get("event_type") not in EVENT_TYPES:
        return "unknown_event_type"
    try:
        ts = _parse_ts(record.get("event_ts"))
    except ValueError:
        return "unparsable_event_ts"
    if str(ts.date()) != date:
        return "event_ts_other_day"
    watch = record.get("watch_ms")
    if watch is not None and watch < 0:
        return "negative_watch_ms"
    return None


def _checked_lines(settings: Settings, date: str) -> list[tuple[str, str | None]]:
    """Every landed event line of a date with its defect (None for a good line)."""
    return [(line, _defect(line, date)) for line in _raw_lines(settings, date)]


def _good_events(settings: Settings, date: str) -> list[dict[str, Any]]:
    """Contract-conforming events of a date, deduplicated by event_id, in time order."""
    seen: dict[str, dict[str, Any]] = {}
    for line, defect in _checked_lines(settings, date):
        if defect is None:
            record = json.loads(line)
            seen.setdefault(record["event_id"], record)
    return sorted(seen.values(), key=lambda r: (r["event_ts"], EVENT_TYPES.index(r["event_type"])))


def _snapshot(settings: Settings, feed: str, date: str) -> pa.Table:
    return pq.read_table(settings.landing / feed / f"dt={date}" / f"{feed}.parquet")


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, Any]]:
    settings = _home(tmp_path_factory, "world")
    return settings, generate(settings, "tiny", START, DAYS)


@pytest.fixture(scope="module")
def checked(world: tuple[Settings, dict[str, Any]]) -> dict[str, list[tuple[str, str | None]]]:
    settings, _ = world
    return {date: _checked_lines(settings, date) for date in DATES}


@pytest.fixture(scope="module")
def events(world: tuple[Settings, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    settings, _ = world
    return {date: _good_events(settings, date) for date in DATES}


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_gives_byte_identical_files(
    world: tuple[Settings, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings, _ = world
    again = _home(tmp_path_factory, "again")
    generate(again, "tiny", START, DAYS)
    assert _files(again.landing) == _files(settings.landing)
    assert _files(again.truth) == _files(settings.truth)

    other = _home(tmp_path_factory, "other-seed")
    generate(other, "tiny", START, DAYS, seed=8)
    assert _raw_lines(other, DATES[0]) != _raw_lines(settings, DATES[0])


def test_one_date_at_a_time_continues_the_same_world(
    world: tuple[Settings, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings, _ = world
    nightly = _home(tmp_path_factory, "nightly")
    summaries = [generate(nightly, "tiny", date, 1) for date in DATES]
    assert [s["new_world"] for s in summaries] == [True, False, False]
    assert {s["anchor"] for s in summaries} == {START}
    assert _files(nightly.landing) == _files(settings.landing)


def test_regenerating_a_date_replaces_its_folders(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = _home(tmp_path_factory, "rerun")
    generate(settings, "tiny", START, 2)
    before = _files(settings.landing)
    stray = settings.landing / "events" / f"dt={DATES[1]}" / "part-00099.jsonl"
    stray.write_text('{"event_id": "stale"}\n')
    (settings.landing / "videos" / f"dt={DATES[1]}" / "_SUCCESS").unlink()

    summary = generate(settings, "tiny", DATES[1], 1)

    assert summary["new_world"] is False
    assert not stray.exists()
    assert _files(settings.landing) == before
    assert not list(settings.landing.glob("*/_tmp-*"))


def test_corruption_does_not_change_the_good_events(
    world: tuple[Settings, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings, summary = world
    clean = _home(tmp_path_factory, "clean")
    clean_summary = generate(clean, "tiny", START, 1, corrupt_rate=0.0)
    assert clean_summary["dates"][START]["bad_rows_total"] == 0
    assert all(_defect(line, START) is None for line in _raw_lines(clean, START))
    assert _good_events(clean, START) == _good_events(settings, START)
    assert summary["dates"][START]["bad_rows_total"] > 0


def test_another_seed_starts_a_new_world(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = _home(tmp_path_factory, "reseed")
    generate(settings, "tiny", START, 1)
    summary = generate(settings, "tiny", DATES[1], 1, seed=8)
    meta = json.loads((settings.truth / "world.json").read_text())
    assert summary["new_world"] is True
    assert (meta["seed"], meta["anchor"], meta["dates"]) == (8, DATES[1], [DATES[1]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "huge"}, "unknown preset 'huge'"),
        ({"start": "2026-13-01"}, "start date '2026-13-01'"),
        ({"days": 0}, "days must be >= 1"),
        ({"corrupt_rate": 1.5}, "corrupt_rate"),
    ],
)
def test_bad_arguments_are_named(settings: Settings, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"preset": "tiny", "start": START, "days": 1} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        generate(settings, **args)
    assert not settings.landing.exists()


# ------------------------------------------------------------------------------------------ the contract
def test_every_folder_is_complete_and_typed_as_the_catalog(world: tuple[Settings, dict[str, Any]]) -> None:
    settings, summary = world
    for date in DATES:
        for feed in FEEDS:
            folder = settings.landing / feed / f"dt={date}"
            assert (folder / "_SUCCESS").read_bytes() == b"", f"{feed} {date}"
        assert len(list((settings.landing / "events" / f"dt={date}").glob("part-*.jsonl.gz"))) == 2
        for feed, table in (
            ("videos", VIDEOS),
            ("users", USERS),
            ("creators", CREATORS),
            ("follows", FOLLOWS),
        ):
            expected = pa.schema([f for f in table.schema if f.name != DT])
            assert _snapshot(settings, feed, date).schema.equals(expected), f"{feed} {date}"
        day = summary["dates"][date]
        assert _snapshot(settings, "videos", date).num_rows == day["videos"]
        assert _snapshot(settings, "users", date).num_rows == day["users"]
        assert _snapshot(settings, "creators", date).num_rows == day["creators"]


def test_snapshots_hold_valid_unique_entities(world: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = world
    date = DATES[-1]
    end = dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    videos = _snapshot(settings, "videos", date).to_pylist()
    users = _snapshot(settings, "users", date).to_pylist()
    creators = {c["creator_id"]: c for c in _snapshot(settings, "creators", date).to_pylist()}

    assert len({v["video_id"] for v in videos}) == len(videos)
    assert len({u["user_id"] for u in users}) == len(users)
    assert all(re.fullmatch(r"v\d{7}", v["video_id"]) for v in videos)
    assert all(re.fullmatch(r"u\d{6}", u["user_id"]) for u in users)
    assert all(re.fullmatch(r"c\d{5}", c) for c in creators)
    for v in videos:
        assert v["creator_id"] in creators
        assert creators[v["creator_id"]]["joined_ts"] < v["upload_ts"] < end
        assert 0 < v["duration_ms"] <= 180_000
        assert 6 <= len(v["caption"].split()) <= 14
        assert 1 <= len(v["hashtags"]) <= 4 and len(set(v["hashtags"])) == len(v["hashtags"])
        assert all(h.startswith("#") for h in v["hashtags"])
        assert len(v["frame_embedding"]) == FRAME_EMBEDDING_DIM
    for u in users:
        assert u["signup_ts"] < end and u["country"] in COUNTRIES and u["age_bucket"] in AGE_BUCKETS
    assert all(c["country"] in COUNTRIES and c["joined_ts"] < end for c in creators.values())


def test_injected_bad_rows_match_the_truth_exactly(
    world: tuple[Settings, dict[str, Any]], checked: dict[str, list[tuple[str, str | None]]]
) -> None:
    settings, summary = world
    for date in DATES:
        lines = checked[date]
        defects = Counter(defect for _, defect in lines if defect is not None)
        truth = truth_day(settings, date)
        assert dict(defects) == {k: v for k, v in truth["bad_rows"].items() if v}, date
        assert set(truth["bad_rows"]) == set(CORRUPTION_KINDS)
        assert min(truth["bad_rows"].values()) >= 1, "every kind appears on a tiny day"
        assert truth["bad_rows"] == summary["dates"][date]["bad_rows"]
        assert len(lines) == truth["lines"] == truth["events"] + truth["duplicates"] + truth["bad_rows_total"]


def test_duplicates_are_exact_copies_of_good_lines(
    world: tuple[Settings, dict[str, Any]], checked: dict[str, list[tuple[str, str | None]]]
) -> None:
    settings, _ = world
    for date in DATES:
        by_id: dict[str, list[str]] = defaultdict(list)
        for line, defect in checked[date]:
            if defect is None:
                by_id[json.loads(line)["event_id"]].append(line)
        copies = {event_id: lines for event_id, lines in by_id.items() if len(lines) > 1}
        truth = truth_day(settings, date)
        assert sum(len(lines) - 1 for lines in copies.values()) == truth["duplicates"] > 0
        assert all(len(set(lines)) == 1 for lines in copies.values())
        assert len(by_id) == truth["events"]


def test_good_events_fit_the_contract(
    world: tuple[Settings, dict[str, Any]], events: dict[str, list[dict[str, Any]]]
) -> None:
    settings, summary = world
    for date in DATES:
        videos = {v["video_id"]: v for v in _snapshot(settings, "videos", date).to_pylist()}
        users = {u["user_id"]: u for u in _snapshot(settings, "users", date).to_pylist()}
        first_seen: dict[str, dt.datetime] = {}
        for e in events[date]:
            assert set(e) <= {
                "event_id",
                "event_type",
                "user_id",
                "video_id",
                "event_ts",
                "watch_ms",
                "surface",
                "position",
            }
            assert e["surface"] in SURFACES and isinstance(e["position"], int) and e["position"] >= 0
            ts = _parse_ts(e["event_ts"])
            first_seen.setdefault(e["user_id"], ts)
            video = videos[e["video_id"]]
            assert video["upload_ts"] < ts, "a video is shown only after its upload"
            if e["event_type"] in ("view", "skip"):
                assert isinstance(e["watch_ms"], int)
                assert e["watch_ms"] <= 3 * video["duration_ms"]
                assert (e["watch_ms"] >= 1000) == (e["event_type"] == "view")
            else:
                assert e.get("watch_ms") is None
        for user_id, ts in first_seen.items():
            assert users[user_id]["signup_ts"] < ts, f"{user_id} acts before signing up"
        by_type = Counter(e["event_type"] for e in events[date])
        assert by_type == Counter({k: v for k, v in summary["dates"][date]["by_type"].items() if v})


def test_impressions_are_followed_by_one_view_or_skip(events: dict[str, list[dict[str, Any]]]) -> None:
    for date in DATES:
        open_impression: dict[str, dict[str, Any]] = {}  # user -> impression awaiting its view/skip
        last_view: dict[str, dict[str, Any]] = {}  # user -> last view, for like/share/follow
        for e in events[date]:
            user = e["user_id"]
            if e["event_type"] == "impression":
                assert user not in open_impression, f"{user}: two impressions without a view/skip"
                open_impression[user] = e
                last_view.pop(user, None)
            elif e["event_type"] in ("view", "skip"):
                shown = open_impression.pop(user)
                assert (shown["video_id"], shown["position"], shown["surface"]) == (
                    e["video_id"],
                    e["position"],
                    e["surface"],
                )
                if e["event_type"] == "view":
                    last_view[user] = e
            else:
                assert last_view[user]["video_id"] == e["video_id"], f"{e['event_type']} without a view"
        assert not open_impression, f"{date}: impressions without a view/skip"


def test_engagement_is_rarer_than_views(events: dict[str, list[dict[str, Any]]]) -> None:
    counts = Counter(e["event_type"] for day in events.values() for e in day)
    assert counts["impression"] == counts["view"] + counts["skip"]
    assert counts["view"] > 4 * counts["like"] > 0
    assert counts["like"] > counts["share"] > 0
    assert counts["view"] > 20 * counts["follow"] > 0


def test_follows_drop_carries_the_follow_events(
    world: tuple[Settings, dict[str, Any]], events: dict[str, list[dict[str, Any]]]
) -> None:
    settings, _ = world
    creator_of = {
        v["video_id"]: v["creator_id"] for v in _snapshot(settings, "videos", DATES[-1]).to_pylist()
    }
    all_edges: list[tuple[str, str]] = []
    for date in DATES:
        taps = [
            (e["user_id"], creator_of[e["video_id"]], _parse_ts(e["event_ts"]))
            for e in events[date]
            if e["event_type"] == "follow"
        ]
        drop = [
            (f["user_id"], f["creator_id"], f["followed_at"])
            for f in _snapshot(settings, "follows", date).to_pylist()
        ]
        assert sorted(taps) == sorted(drop)
        all_edges += [(u, c) for u, c, _ in drop]
    assert len(all_edges) == len(set(all_edges)) > 0, "an edge is created once"


# ------------------------------------------------------------------------------------------ realism
def test_fresh_uploads_arrive_every_day(
    world: tuple[Settings, dict[str, Any]], events: dict[str, list[dict[str, Any]]]
) -> None:
    settings, summary = world
    previous = {v["video_id"] for v in _snapshot(settings, "videos", "2026-11-01").to_pylist()}
    for date in DATES[1:]:
        videos = _snapshot(settings, "videos", date).to_pylist()
        new = [v for v in videos if v["video_id"] not in previous]
        assert previous <= {v["video_id"] for v in videos}, "a snapshot keeps every earlier video"
        assert len(new) == summary["dates"][date]["uploads"] > 0
        assert all(str(v["upload_ts"].date()) == date for v in new)
        shown = {e["video_id"] for e in events[date] if e["event_type"] == "impression"}
        assert shown & {v["video_id"] for v in new}, f"{date}: no fresh upload reached a feed"
        previous = {v["video_id"] for v in videos}


def test_some_users_are_inactive_each_day(
    world: tuple[Settings, dict[str, Any]], events: dict[str, list[dict[str, Any]]]
) -> None:
    settings, summary = world
    for date in DATES:
        active = {e["user_id"] for e in events[date]}
        assert len(active) == summary["dates"][date]["active_users"]
        assert 0.3 < len(active) / summary["dates"][date]["users"] < 0.95


def test_popularity_is_heavy_tailed(
    world: tuple[Settings, dict[str, Any]], events: dict[str, list[dict[str, Any]]]
) -> None:
    settings, _ = world
    catalog = _snapshot(settings, "videos", DATES[-1]).num_rows
    shown = Counter(e["video_id"] for day in events.values() for e in day if e["event_type"] == "impression")
    counts = np.sort(np.array(list(shown.values())))[::-1]
    assert counts[: catalog // 10].sum() > 0.5 * counts.sum()


def test_feed_position_lowers_the_view_rate(events: dict[str, list[dict[str, Any]]]) -> None:
    outcomes = [e for day in events.values() for e in day if e["event_type"] in ("view", "skip")]
    top = [e["event_type"] == "view" for e in outcomes if e["position"] < 3]
    deep = [e["event_type"] == "view" for e in outcomes if e["position"] >= 10]
    assert np.mean(top) > np.mean(deep) + 0.05


def test_taste_drives_watching(
    world: tuple[Settings, dict[str, Any]], events: dict[str, list[dict[str, Any]]]
) -> None:
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


def test_text_carries_topic_signal(world: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = world
    truth = pq.read_table(settings.truth / "videos.parquet", columns=["video_id", "topic"]).to_pydict()
    topic = dict(zip(truth["video_id"], truth["topic"], strict=True))
    videos = _snapshot(settings, "videos", START).to_pylist()
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


def test_frame_embeddings_cluster_by_topic(world: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = world
    truth = pq.read_table(settings.truth / "videos.parquet", columns=["video_id", "topic"]).to_pydict()
    topic = dict(zip(truth["video_id"], truth["topic"], strict=True))
    videos = _snapshot(settings, "videos", START)
    labels = np.array([topic[v] for v in videos["video_id"].to_pylist()])
    emb = np.array(videos["frame_embedding"].to_pylist(), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cosine = emb @ emb.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    assert cosine[same & off_diagonal].mean() > cosine[~same].mean() + 0.3


def test_preset_sizes_are_ordered() -> None:
    tiny, small, medium = PRESETS["tiny"], PRESETS["small"], PRESETS["medium"]
    assert tiny.users < small.users < medium.users
    assert tiny.videos < small.videos < medium.videos
    assert tiny.uploads_per_day < small.uploads_per_day < medium.uploads_per_day
