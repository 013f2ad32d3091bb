"""reelrec.dates: the one place logical dates turn into windows and instants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reelrec.dates import add_days, date_range, day_bounds, feature_timestamp, parse_date


def test_date_range_ends_at_the_date_inclusive_oldest_first() -> None:
    assert date_range("2026-11-02", 3) == ["2026-10-31", "2026-11-01", "2026-11-02"]
    assert date_range("2026-11-02", 1) == ["2026-11-02"]
    window = date_range("2026-11-10", 28)
    assert (len(window), window[0], window[-1]) == (28, "2026-10-14", "2026-11-10")


def test_date_range_needs_a_day() -> None:
    with pytest.raises(ValueError, match="days=0"):
        date_range("2026-11-02", 0)


def test_day_bounds_are_the_utc_midnights_around_the_date() -> None:
    start, end = day_bounds("2026-12-31")

    assert start == datetime(2026, 12, 31, tzinfo=UTC)
    assert end == datetime(2027, 1, 1, tzinfo=UTC)


def test_feature_timestamp_is_the_last_second_of_the_date() -> None:
    assert feature_timestamp("2026-11-01") == datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC)


def test_add_days_crosses_months_and_goes_back() -> None:
    assert add_days("2026-02-27", 2) == "2026-03-01"
    assert add_days("2026-03-01", -1) == "2026-02-28"


@pytest.mark.parametrize("bad", ["2026-11-1", "2026/11/01", "20261101", "2026-02-30", ""])
def test_parse_date_names_the_bad_value(bad: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_date(bad)
