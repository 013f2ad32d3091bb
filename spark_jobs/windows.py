"""Column expressions the feature jobs share: day windows ending at D, counts and rates.

A window of ``n`` days as of logical date ``D`` holds the ``dt`` partitions ``D-(n-1) .. D``
inclusive (see :func:`reelrec.dates.date_range`), so a 1-day window is ``D`` itself and nothing
after the end of ``D`` is ever inside a window.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from reelrec.catalog import DT, WINDOWS
from reelrec.dates import date_range

LONGEST_WINDOW = max(WINDOWS)


def in_window(date: str, days: int, column: str = DT) -> Column:
    """True for rows whose ``dt`` (a ``YYYY-MM-DD`` string) lies in the ``days`` ending at ``date``."""
    dates = date_range(date, days)
    return F.col(column).between(dates[0], dates[-1])


def count_where(condition: Column) -> Column:
    """Aggregate: number of rows where ``condition`` holds (0, never null, for a group)."""
    return F.sum(F.when(condition, F.lit(1)).otherwise(F.lit(0))).cast("long")


def sum_where(condition: Column, value: Column) -> Column:
    """Aggregate: sum of ``value`` over rows where ``condition`` holds (0 when none)."""
    return F.coalesce(F.sum(F.when(condition, value)), F.lit(0)).cast("long")


def rate(numerator: Column, denominator: Column) -> Column:
    """``numerator / denominator`` as a double, and 0.0 (not null) when the denominator is 0 or null."""
    return (
        F.when(denominator > 0, numerator.cast("double") / denominator.cast("double"))
        .otherwise(F.lit(0.0))
        .cast("double")
    )


def completed_view(watch_ms: Column, duration_ms: Column) -> Column:
    """A view counts as completed when ``watch_ms >= 0.9 * duration_ms`` (exact integer test).

    Views of a video missing from the catalog snapshot (unknown duration) never count as completed.
    """
    return F.coalesce((watch_ms * 10) >= (duration_ms * 9), F.lit(False))


def watch_fraction(watch_ms: Column, duration_ms: Column) -> Column:
    """Share of the video watched, ``min(watch_ms / duration_ms, 1)``; null when the duration is unknown."""
    return F.least(watch_ms.cast("double") / duration_ms.cast("double"), F.lit(1.0))
