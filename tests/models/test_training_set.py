"""Training-set labels from hand-made bronze events, the per-user cap, and the first-night error."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from models.training_set import LABEL, NoTrainingDataError, TrainingSetConfig, build, cap_per_user, labels
from reelrec.catalog import EVENTS, VIDEOS
from reelrec.settings import Settings
from tests.spark_jobs.tiny import D, event, ts, video, write_bronze

PREV = "2026-11-09"  # the night before D


def _videos() -> list[dict[str, Any]]:
    """Catalog snapshots of PREV and D (v1 is in both: the join must take each night's own row)."""
    return [
        video("v1", "c1", "2026-11-09T22:00:00", 10_000, dt=PREV),
        video("v1", "c1", "2026-11-09T22:00:00", 10_000, dt=D),
        video("v2", "c1", "2026-11-08T10:00:00", 20_000, dt=D),
        video("v3", "c2", "2026-11-10T09:30:00", 10_000, dt=D),
        video("v4", "c2", "2026-11-01T00:00:00", 10_000, dt=D),
    ]


def _events() -> list[dict[str, Any]]:
    at = f"{D}T"
    return [
        # u1/v1: completed view (exactly 80 %), impressed twice: positive at the first impression.
        event("e01", "impression", "u1", "v1", at + "10:05:00"),
        event("e02", "impression", "u1", "v1", at + "10:00:00"),
        event("e03", "view", "u1", "v1", at + "10:00:20", watch_ms=8_000),
        # u1/v2: a short view, but liked: positive.
        event("e04", "impression", "u1", "v2", at + "11:00:00"),
        event("e05", "view", "u1", "v2", at + "11:00:05", watch_ms=2_000),
        event("e06", "like", "u1", "v2", at + "11:00:06"),
        # u1/v3: skipped: hard negative (the skip's watch_ms is not a view).
        event("e07", "impression", "u1", "v3", at + "12:00:00"),
        event("e08", "skip", "u1", "v3", at + "12:00:01", watch_ms=500),
        # u2/v1: half watched: neither, dropped.
        event("e09", "impression", "u2", "v1", at + "10:00:00"),
        event("e10", "view", "u2", "v1", at + "10:00:06", watch_ms=5_000),
        # u2/v2: a full view without an impression: not an example.
        event("e11", "view", "u2", "v2", at + "10:30:00", watch_ms=20_000),
        # u2/v3: a view of 10 %: hard negative.
        event("e12", "impression", "u2", "v3", at + "13:00:00"),
        event("e13", "view", "u2", "v3", at + "13:00:02", watch_ms=1_000),
        # u3/v3: a view of exactly 20 %: not below the hard-negative fraction, dropped.
        event("e14", "impression", "u3", "v3", at + "13:30:00"),
        event("e15", "view", "u3", "v3", at + "13:30:03", watch_ms=2_000),
        # u3/v4: a 30 % view, shared: positive.
        event("e16", "impression", "u3", "v4", at + "14:00:00"),
        event("e17", "view", "u3", "v4", at + "14:00:04", watch_ms=3_000),
        event("e18", "share", "u3", "v4", at + "14:00:05"),
        # u3/v2: an impression with no view and no skip: says nothing, not an example.
        event("e21", "impression", "u3", "v2", at + "15:00:00"),
        # u3/v1: liked without any view event: still a positive.
        event("e22", "impression", "u3", "v1", at + "16:00:00"),
        event("e23", "like", "u3", "v1", at + "16:00:09"),
        # The night before: u1 completed v1 one hour after its upload.
        event("e19", "impression", "u1", "v1", f"{PREV}T23:00:00"),
        event("e20", "view", "u1", "v1", f"{PREV}T23:00:11", watch_ms=10_000),
    ]


@pytest.fixture
def lake_with_events(settings: Settings) -> Settings:
    write_bronze(settings, VIDEOS, _videos())
    write_bronze(settings, EVENTS, _events())
    return settings


COLUMNS = ["user_id", "video_id", "dt", "event_timestamp", LABEL, "video_age_hours", "liked", "shared"]


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return [tuple(row[c] for c in COLUMNS) for row in table.to_pylist()]


def test_labels_of_one_night(lake_with_events: Settings) -> None:
    out = labels(lake_with_events, [D], TrainingSetConfig())
    # (user, video, dt, first impression, label, hours from upload to impression, liked, shared)
    assert _rows(out) == [
        ("u1", "v1", D, ts(f"{D}T10:00:00"), 1, 12.0, False, False),
        ("u1", "v2", D, ts(f"{D}T11:00:00"), 1, 49.0, True, False),
        ("u1", "v3", D, ts(f"{D}T12:00:00"), 0, 2.5, False, False),
        ("u2", "v3", D, ts(f"{D}T13:00:00"), 0, 3.5, False, False),
        ("u3", "v4", D, ts(f"{D}T14:00:00"), 1, 9 * 24 + 14.0, False, True),
        ("u3", "v1", D, ts(f"{D}T16:00:00"), 1, 18.0, True, False),
    ]
    assert out.column("watch_fraction").to_pylist() == pytest.approx([0.8, 0.1, 0.0, 0.1, 0.3, 0.0])
    assert out.schema.field(LABEL).type == pa.int8()


def test_labels_keep_each_night_apart(lake_with_events: Settings) -> None:
    out = labels(lake_with_events, [PREV, D], TrainingSetConfig())
    assert out.num_rows == 7  # v1 is in both snapshots: one example per (user, video, dt), no fan-out
    assert _rows(out)[0] == ("u1", "v1", PREV, ts(f"{PREV}T23:00:00"), 1, 1.0, False, False)
    assert _rows(out)[1:] == _rows(labels(lake_with_events, [D], TrainingSetConfig()))
    assert labels(lake_with_events, [PREV], TrainingSetConfig()).num_rows == 1


def test_labels_follow_the_configured_thresholds(lake_with_events: Settings) -> None:
    strict = TrainingSetConfig(completion_threshold=0.9, hard_negative_fraction=0.6)
    out = labels(lake_with_events, [D], strict)
    by_pair = {(r["user_id"], r["video_id"]): r[LABEL] for r in out.to_pylist()}
    # u1/v1 (80 %) is no longer complete and not below 60 %: dropped.
    # u2/v1 (50 %) and u3/v3 (20 %) become hard negatives; the like and the share still win.
    assert by_pair == {
        ("u1", "v2"): 1,
        ("u1", "v3"): 0,
        ("u2", "v1"): 0,
        ("u2", "v3"): 0,
        ("u3", "v3"): 0,
        ("u3", "v4"): 1,
        ("u3", "v1"): 1,
    }


# ------------------------------------------------------------------------------------------ cap
def _examples() -> pa.Table:
    rows = [("heavy", f"p{i}", D, 1) for i in range(10)]
    rows += [("heavy", f"n{i}", D, 0) for i in range(5)]
    rows += [("heavy", "p0", PREV, 1)]  # same video another night: a different example
    rows += [("light", "p0", D, 1), ("light", "p1", D, 1), ("light", "n0", D, 0)]
    users, videos, dts, label = zip(*rows, strict=True)
    return pa.table(
        {
            "user_id": list(users),
            "video_id": list(videos),
            "dt": list(dts),
            LABEL: pa.array(label, pa.int8()),
        }
    )


def _kept(table: pa.Table, user: str, label: int) -> set[tuple[str, str]]:
    return {(r["video_id"], r["dt"]) for r in table.to_pylist() if r["user_id"] == user and r[LABEL] == label}


def test_cap_per_user_caps_each_label_separately() -> None:
    examples = _examples()
    capped = cap_per_user(examples, 3)
    assert len(_kept(capped, "heavy", 1)) == 3
    assert len(_kept(capped, "heavy", 0)) == 3
    assert _kept(capped, "heavy", 1) <= _kept(examples, "heavy", 1)
    assert _kept(capped, "light", 1) == _kept(examples, "light", 1)  # under the cap: untouched
    assert _kept(capped, "light", 0) == _kept(examples, "light", 0)
    assert capped.num_rows == 3 + 3 + 3
    assert capped.schema == examples.schema


def test_cap_per_user_is_deterministic_and_order_free() -> None:
    examples = _examples()
    first = cap_per_user(examples, 3)
    assert cap_per_user(examples, 3).equals(first)
    reversed_rows = examples.take(pa.array(range(examples.num_rows - 1, -1, -1)))
    again = cap_per_user(reversed_rows, 3)
    for user in ("heavy", "light"):
        for label in (0, 1):
            assert _kept(again, user, label) == _kept(first, user, label)
    # The kept rows stay in their input order (training_set sorts by user and time before capping).
    kept_positions = [examples.to_pylist().index(row) for row in first.to_pylist()]
    assert kept_positions == sorted(kept_positions)


def test_cap_larger_than_every_group_keeps_everything() -> None:
    examples = _examples()
    assert cap_per_user(examples, 100).equals(examples)
    assert cap_per_user(examples.slice(0, 0), 3).num_rows == 0


# ------------------------------------------------------------------------------------------ build
def test_build_without_an_earlier_night_names_the_date(settings: Settings) -> None:
    write_bronze(settings, VIDEOS, [v for v in _videos() if v["dt"] == D])
    write_bronze(settings, EVENTS, [e for e in _events() if e["dt"] == D])
    with pytest.raises(NoTrainingDataError, match=f"dt={D}.*{PREV}"):
        build(D, settings)


def test_build_with_only_hard_negatives_before_d_raises(settings: Settings) -> None:
    write_bronze(settings, VIDEOS, _videos())
    skips = [
        event("s1", "impression", "u1", "v1", f"{PREV}T23:00:00"),
        event("s2", "skip", "u1", "v1", f"{PREV}T23:00:01", watch_ms=300),
    ]
    write_bronze(settings, EVENTS, [*skips, *[e for e in _events() if e["dt"] == D]])
    assert labels(settings, [PREV], TrainingSetConfig()).column(LABEL).to_pylist() == [0]
    with pytest.raises(NoTrainingDataError, match=f"dt={D}"):
        build(D, settings)


def test_build_skips_nights_served_without_features_of_the_night_before(settings: Settings) -> None:
    # PREV has positives, but nothing was served with features on PREV (no silver.user_features of
    # the night before it): the platform's first night never becomes training data.
    write_bronze(settings, VIDEOS, _videos())
    write_bronze(settings, EVENTS, _events())
    assert labels(settings, [PREV], TrainingSetConfig()).column(LABEL).to_pylist().count(1) >= 1
    with pytest.raises(NoTrainingDataError, match="features of the night before in silver.user_features"):
        build(D, settings)


def test_positive_histories_are_point_in_time_newest_first_and_distinct(settings: Settings) -> None:
    from models.training_set import positive_histories

    write_bronze(settings, VIDEOS, _videos())
    write_bronze(settings, EVENTS, _events())
    cfg = TrainingSetConfig(history_days=2)
    # Up to the night before D, only u1's completed view of v1 on PREV is known.
    assert positive_histories(settings, PREV, cfg) == {"u1": ["v1"]}
    # Up to D: D's positives join, newest first; v1 of u1 (PREV and D) appears once.
    assert positive_histories(settings, D, cfg) == {"u1": ["v2", "v1"], "u3": ["v1", "v4"]}
    # A one-night window ending at D no longer sees PREV.
    assert positive_histories(settings, D, TrainingSetConfig(history_days=1))["u1"] == ["v2", "v1"]
