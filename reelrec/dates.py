"""Logical dates and the instants derived from them, in one place.

A nightly run works on one logical date ``D`` (``YYYY-MM-DD``, UTC). Everything a job needs to
know about time is derived from ``D`` here; nothing calls ``now()``.

- :func:`day_bounds` is the half-open UTC interval ``[D 00:00, D+1 00:00)`` of event times on ``D``.
- :func:`feature_timestamp` is ``D 23:59:59`` UTC: the ``event_timestamp`` of feature rows computed
  as of the end of ``D`` (Feast joins them point-in-time to anything at or after that instant).
- :func:`date_range` lists the ``days`` dates of a window that ends at ``D`` inclusive, so a 28-day
  window as of ``D`` is ``date_range(D, 28) == [D-27, ..., D]``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta


def parse_date(value: str) -> date:
    """Parse a logical date ``YYYY-MM-DD``.

    Raises:
        ValueError: naming the bad value.
    """
    try:
        parsed = date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"logical date must be YYYY-MM-DD, got {value!r}") from None
    if parsed.isoformat() != value:
        raise ValueError(f"logical date must be YYYY-MM-DD, got {value!r}")
    return parsed


def iso_date(value: object) -> str:
    """Validate a logical date and return it as ``YYYY-MM-DD`` (the form every stage passes around).

    Raises:
        ValueError: naming the bad value.
    """
    return parse_date(str(value)).isoformat()


def cli_date(value: str) -> str:
    """``argparse`` type for ``--date``/``--to``/``--start``: a logical date, or a usage error naming it."""
    import argparse

    try:
        return iso_date(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def dates_between(first: str, last: str) -> list[str]:
    """Every logical date from ``first`` to ``last`` inclusive, oldest first.

    Raises:
        ValueError: when ``last`` is before ``first``.
    """
    start, end = parse_date(first), parse_date(last)
    if end < start:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def add_days(value: str, days: int) -> str:
    """The logical date ``days`` after ``value`` (negative ``days`` go back)."""
    return (parse_date(value) + timedelta(days=days)).isoformat()


def date_range(end: str, days: int) -> list[str]:
    """The ``days`` logical dates of the window ending at ``end`` inclusive, oldest first.

    Example:
        >>> date_range("2026-11-03", 3)
        ['2026-11-01', '2026-11-02', '2026-11-03']
    """
    if days < 1:
        raise ValueError(f"a date window needs at least one day, got days={days}")
    last = parse_date(end)
    return [(last - timedelta(days=offset)).isoformat() for offset in range(days - 1, -1, -1)]


def day_bounds(value: str) -> tuple[datetime, datetime]:
    """UTC instants ``[start, end)`` of logical date ``value``: midnight to the next midnight."""
    start = datetime.combine(parse_date(value), time(0, 0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def feature_timestamp(value: str) -> datetime:
    """``event_timestamp`` of features computed as of the end of ``value``: ``D 23:59:59`` UTC."""
    return datetime.combine(parse_date(value), time(23, 59, 59), tzinfo=UTC)
