"""The landed drops fit the landing contract, and the injected defects match the hidden truth exactly."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from typing import Any

import pyarrow as pa

from reelrec.catalog import AGE_BUCKETS, CREATORS, DT, FOLLOWS, FRAME_EMBEDDING_DIM, SURFACES, USERS, VIDEOS
from reelrec.landing import FEEDS, check_drops
from synthetic_world import CORRUPTION_KINDS, COUNTRIES, truth_day
from tests.synthetic_world.landed import DATES, CheckedLines, Events, World, parse_ts, snapshot


def test_the_core_accepts_every_drop_through_its_landing_layout(world: World) -> None:
    settings, summary = world
    for date in DATES:
        report = check_drops(date, settings)
        assert list(report) == list(FEEDS)
        assert report["events"]["files"] == summary["dates"][date]["event_files"] == 2
        assert all(report[feed]["files"] == 1 for feed in FEEDS if feed != "events"), date
    assert not list(settings.landing.glob("*/_tmp-*")), "no temporary folder is left behind"


def test_every_folder_is_complete_and_typed_as_the_catalog(world: World) -> None:
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
            assert snapshot(settings, feed, date).schema.equals(expected), f"{feed} {date}"
        day = summary["dates"][date]
        assert snapshot(settings, "videos", date).num_rows == day["videos"]
        assert snapshot(settings, "users", date).num_rows == day["users"]
        assert snapshot(settings, "creators", date).num_rows == day["creators"]


def test_snapshots_hold_valid_unique_entities(world: World) -> None:
    settings, _ = world
    date = DATES[-1]
    end = dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    videos = snapshot(settings, "videos", date).to_pylist()
    users = snapshot(settings, "users", date).to_pylist()
    creators = {c["creator_id"]: c for c in snapshot(settings, "creators", date).to_pylist()}

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


def test_injected_bad_rows_match_the_truth_exactly(world: World, checked: CheckedLines) -> None:
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


def test_duplicates_are_exact_copies_of_good_lines(world: World, checked: CheckedLines) -> None:
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


def test_good_events_fit_the_contract(world: World, events: Events) -> None:
    settings, summary = world
    for date in DATES:
        videos = {v["video_id"]: v for v in snapshot(settings, "videos", date).to_pylist()}
        users = {u["user_id"]: u for u in snapshot(settings, "users", date).to_pylist()}
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
            ts = parse_ts(e["event_ts"])
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


def test_impressions_are_followed_by_one_view_or_skip(events: Events) -> None:
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


def test_engagement_is_rarer_than_views(events: Events) -> None:
    counts = Counter(e["event_type"] for day in events.values() for e in day)
    assert counts["impression"] == counts["view"] + counts["skip"]
    assert counts["view"] > 4 * counts["like"] > 0
    assert counts["like"] > counts["share"] > 0
    assert counts["view"] > 20 * counts["follow"] > 0


def test_follows_drop_carries_the_follow_events(world: World, events: Events) -> None:
    settings, _ = world
    creator_of = {v["video_id"]: v["creator_id"] for v in snapshot(settings, "videos", DATES[-1]).to_pylist()}
    all_edges: list[tuple[str, str]] = []
    for date in DATES:
        taps = [
            (e["user_id"], creator_of[e["video_id"]], parse_ts(e["event_ts"]))
            for e in events[date]
            if e["event_type"] == "follow"
        ]
        drop = [
            (f["user_id"], f["creator_id"], f["followed_at"])
            for f in snapshot(settings, "follows", date).to_pylist()
        ]
        assert sorted(taps) == sorted(drop)
        all_edges += [(u, c) for u, c, _ in drop]
    assert len(all_edges) == len(set(all_edges)) > 0, "an edge is created once"
