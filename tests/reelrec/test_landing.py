"""The landing zone's rules: which drops of D are missing or incomplete, and who waits for them."""

from __future__ import annotations

import pytest

from reelrec.landing import (
    FEEDS,
    SUCCESS_MARKER,
    IncompleteDropError,
    drop_dir,
    drop_files,
    format_missing,
    missing_drops,
    waits_for_drops,
)
from reelrec.settings import Settings

D = "2026-11-01"


def test_missing_drops_names_each_feed_and_why(settings: Settings) -> None:
    assert set(missing_drops(D, settings)) == set(FEEDS)  # nothing landed yet
    for feed in FEEDS:
        drop_dir(feed, D, settings).mkdir(parents=True)
        (drop_dir(feed, D, settings) / SUCCESS_MARKER).touch()
        (drop_dir(feed, D, settings) / ("a.jsonl" if feed == "events" else "a.parquet")).write_bytes(b"x")
    assert missing_drops(D, settings) == {}
    (drop_dir("users", D, settings) / SUCCESS_MARKER).unlink()
    (drop_dir("follows", D, settings) / "a.parquet").unlink()
    missing = missing_drops(D, settings)
    assert missing == {
        "users": f"landing drop users for dt={D} is incomplete: {drop_dir('users', D, settings)} has no "
        "_SUCCESS marker",
        "follows": f"landing drop follows for dt={D} has no data files matching '*.parquet' in "
        f"{drop_dir('follows', D, settings)}",
    }
    assert format_missing(D, missing).startswith(
        f"2 of 5 landing drops for dt={D} not complete (users, follows): "
    )
    with pytest.raises(IncompleteDropError, match="has no _SUCCESS marker"):  # same words as the sensor's
        drop_files("users", D, settings)


@pytest.mark.parametrize(
    ("run_type", "params", "waits"),
    [
        ("scheduled", {}, True),
        ("scheduled", {"date": None, "wait_for_data": None}, True),
        ("scheduled", {"date": D}, False),  # pinned to a past date
        ("manual", {}, False),
        ("backfill", {}, False),
        ("asset_triggered", None, False),
        ("manual", {"wait_for_data": True}, True),
        ("scheduled", {"wait_for_data": False}, False),
    ],
)
def test_only_scheduled_nights_wait_unless_the_run_says(
    run_type: str, params: dict | None, waits: bool
) -> None:
    assert waits_for_drops(run_type, params) is waits
