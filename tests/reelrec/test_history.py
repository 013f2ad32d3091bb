"""reelrec.history: what counts as *watched* (a view; a skip is not), read from bronze events by date."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from reelrec import lake
from reelrec.catalog import (
    DT,
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    EVENTS,
    IMPRESSION,
    LIKE,
    POSITION,
    SHARE,
    SKIP,
    SURFACE,
    SURFACES,
    USER_ID,
    VIDEO_ID,
    VIEW,
    WATCH_MS,
)
from reelrec.history import watched
from reelrec.settings import Settings

D1, D2, D3 = "2026-11-01", "2026-11-02", "2026-11-03"


def write_events(settings: Settings, date: str, *events: tuple[str, str, str]) -> None:
    """Write ``(user_id, video_id, event_type)`` events as ``date``'s bronze partition."""
    n = len(events)
    day = datetime.fromisoformat(date).replace(hour=12, tzinfo=UTC)
    lake.write_partition(
        EVENTS,
        settings,
        pa.table(
            {
                EVENT_ID: [f"{date}-{i}" for i in range(n)],
                EVENT_TYPE: [event_type for _, _, event_type in events],
                USER_ID: [user for user, _, _ in events],
                VIDEO_ID: [video for _, video, _ in events],
                EVENT_TS: pa.array([day] * n, pa.timestamp("us", tz="UTC")),
                WATCH_MS: [5_000 if event_type in (VIEW, SKIP) else None for _, _, event_type in events],
                SURFACE: [SURFACES[0]] * n,
                POSITION: pa.array(range(n), pa.int32()),
                DT: [date] * n,
            }
        ),
        date,
    )


def pairs(table: pa.Table) -> list[tuple[str, str]]:
    assert table.column_names == [USER_ID, VIDEO_ID]
    return sorted(zip(table.column(USER_ID).to_pylist(), table.column(VIDEO_ID).to_pylist(), strict=True))


@pytest.fixture
def three_nights(settings: Settings) -> Settings:
    write_events(
        settings,
        D1,
        ("u1", "v1", IMPRESSION),
        ("u1", "v1", VIEW),
        ("u1", "v2", SKIP),
        ("u2", "v3", LIKE),
        ("u2", "v4", SHARE),
    )
    write_events(settings, D2, ("u1", "v1", VIEW), ("u2", "v2", VIEW), ("u3", "v5", SKIP))
    write_events(settings, D3, ("u3", "v6", VIEW))
    return settings


def test_a_view_counts_as_watched_and_a_skip_does_not(three_nights: Settings) -> None:
    assert pairs(watched(three_nights, until=D1)) == [("u1", "v1")]


def test_other_events_do_not_count_as_watched(settings: Settings) -> None:
    write_events(settings, D1, ("u1", "v1", IMPRESSION), ("u1", "v2", LIKE), ("u1", "v3", SHARE))

    assert watched(settings, until=D1).num_rows == 0


def test_each_pair_appears_once_however_often_it_was_viewed(three_nights: Settings) -> None:
    # u1 viewed v1 on D1 and again on D2
    assert pairs(watched(three_nights, until=D2)) == [("u1", "v1"), ("u2", "v2")]


def test_until_is_inclusive_and_later_nights_are_never_read(three_nights: Settings) -> None:
    assert ("u3", "v6") not in pairs(watched(three_nights, until=D2))
    assert ("u3", "v6") in pairs(watched(three_nights, until=D3))


def test_since_is_inclusive(three_nights: Settings) -> None:
    assert pairs(watched(three_nights, since=D2, until=D3)) == [("u1", "v1"), ("u2", "v2"), ("u3", "v6")]
    assert pairs(watched(three_nights, since=D3, until=D3)) == [("u3", "v6")]
    assert pairs(watched(three_nights, since=D1, until=D1)) == [("u1", "v1")]


def test_users_filter_keeps_only_those_users(three_nights: Settings) -> None:
    assert pairs(watched(three_nights, until=D3, users=["u2", "u3", "u3"])) == [("u2", "v2"), ("u3", "v6")]
    assert pairs(watched(three_nights, until=D3, users=iter(["u1"]))) == [("u1", "v1")]
    assert watched(three_nights, until=D3, users=[]).num_rows == 0
    assert watched(three_nights, until=D3, users=["nobody"]).num_rows == 0


def test_a_window_before_any_event_is_empty_with_the_right_columns(three_nights: Settings) -> None:
    empty = watched(three_nights, until="2026-10-31")

    assert empty.num_rows == 0
    assert empty.column_names == [USER_ID, VIDEO_ID]
