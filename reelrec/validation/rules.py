"""Rules as data, and how a table's rules become Great Expectations expectations for one date.

Every table of every suite is checked on three things: what the catalog says (exact column set,
non-null columns, unique key), volume (the partition is not empty and, where the table's
:class:`Rules` ask for it, its row count stays within ``[1/f, f]`` times the previous day's), and
the value rules of its :class:`Rules`. The per-layer rule tables live in
:mod:`reelrec.validation.bronze`, :mod:`reelrec.validation.features` and
:mod:`reelrec.validation.outputs`.

``great_expectations`` is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reelrec.catalog import DT, WINDOWS, Table, windowed_names
from reelrec.dates import add_days, day_bounds, feature_timestamp

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

DEFAULT_VOLUME_FACTOR = 2.0
"""Row count of ``D`` must lie in ``[prev / f, prev * f]`` of ``D-1``'s row count."""

# Day-over-day volume is compared only when the previous day is big enough for the ratio to mean
# something: on a table of a handful of rows a 2x swing is noise, not an outage.
MIN_ROWS_FOR_VOLUME = 100


@dataclass(frozen=True)
class Rules:
    """Value rules of one table, on top of what the catalog already says (columns, nulls, key).

    Nulls are ignored by every value rule (a nullable column may be null); non-nullable catalog
    columns get a not-null expectation of their own.
    """

    within_day: tuple[str, ...] = ()  # timestamp in [D 00:00, D+1 00:00)
    not_after_day: tuple[str, ...] = ()  # timestamp < D+1 00:00 (known by the end of D)
    at_end_of_day: tuple[str, ...] = ()  # timestamp == D 23:59:59 (feature validity instant)
    non_negative: tuple[str, ...] = ()  # counts, durations, positions, ages, unbounded ratios: >= 0
    positive: tuple[str, ...] = ()  # > 0
    unit_interval: tuple[str, ...] = ()  # shares (probabilities) in [0, 1]
    bounded: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # [lo, hi]
    not_greater: tuple[tuple[str, str], ...] = ()  # (a, b): a <= b row by row
    value_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    not_null_when: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (col, if_col, if_col in values)
    may_be_empty: bool = False  # a day may legitimately have no rows (e.g. no new follows)
    day_over_day: bool = True  # compare the row count with D-1's (False: only "not empty")


def monotone(prefix: str, windows: tuple[int, ...] = WINDOWS) -> tuple[tuple[str, str], ...]:
    """``prefix_1d <= prefix_7d <= prefix_28d``: a longer window never counts less."""
    names = windowed_names(prefix, windows)
    return tuple(zip(names[:-1], names[1:], strict=True))


def _volume_expectation(date: str, previous_rows: int | None, volume_factor: float | None) -> Expectation:
    """Row count within ``[1/f, f]`` of ``D-1``'s when that day is big enough, else "not empty"."""
    import great_expectations.expectations as gxe

    if previous_rows and previous_rows >= MIN_ROWS_FOR_VOLUME and volume_factor:
        return gxe.ExpectTableRowCountToBeBetween(
            min_value=max(1, math.ceil(previous_rows / volume_factor)),
            max_value=math.floor(previous_rows * volume_factor),
            description=(
                f"row count within [1/{volume_factor:g}x, {volume_factor:g}x] of "
                f"dt={add_days(date, -1)} ({previous_rows} rows)"
            ),
        )
    return gxe.ExpectTableRowCountToBeBetween(min_value=1, description="partition is not empty")


def catalog_expectations(
    table: Table,
    date: str,
    previous_rows: int | None,
    volume_factor: float | None,
    derived_columns: Sequence[str] = (),
) -> list[Expectation]:
    """Columns, non-null columns, unique key and volume: what every table of every suite checks.

    Args:
        table: the catalog table.
        date: logical date ``D``.
        previous_rows: row count of ``dt=D-1`` (``None`` or 0: no previous day, only "not empty").
        volume_factor: allowed day-over-day row count ratio; ``None`` turns the comparison off.
        derived_columns: check columns added to the validated copy of the partition (suite
            "outputs"); the exact column set then is the catalog's plus those.
    """
    import great_expectations.expectations as gxe

    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=[*table.columns, *derived_columns], exact_match=True),
        _volume_expectation(date, previous_rows, volume_factor),
    ]
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=f.name) for f in table.schema if not f.nullable]
    key = [c for c in table.key if c != DT]  # one partition holds one dt
    if len(key) == 1:
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column=key[0]))
    elif key:
        expectations.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=key))
    return expectations


def rule_expectations(rules: Rules, date: str) -> list[Expectation]:
    """The value rules of one table as GX expectations for logical date ``date``."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    start, end = day_bounds(date)
    between = gxe.ExpectColumnValuesToBeBetween
    out: list[Expectation] = []
    out += [between(column=c, min_value=start, max_value=end, strict_max=True) for c in rules.within_day]
    out += [between(column=c, max_value=end, strict_max=True) for c in rules.not_after_day]
    stamp = feature_timestamp(date)
    out += [between(column=c, min_value=stamp, max_value=stamp) for c in rules.at_end_of_day]
    out += [between(column=c, min_value=0) for c in rules.non_negative]
    out += [between(column=c, min_value=0, strict_min=True) for c in rules.positive]
    out += [between(column=c, min_value=0, max_value=1) for c in rules.unit_interval]
    out += [between(column=c, min_value=lo, max_value=hi) for c, (lo, hi) in rules.bounded.items()]
    out += [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=b, column_B=a, or_equal=True, ignore_row_if="either_value_is_missing"
        )
        for a, b in rules.not_greater
    ]
    out += [gxe.ExpectColumnValuesToBeInSet(column=c, value_set=list(v)) for c, v in rules.value_sets.items()]
    out += [
        gxe.ExpectColumnValuesToNotBeNull(column=c, row_condition=Column(if_col).is_in(list(values)))
        for c, if_col, values in rules.not_null_when
    ]
    return out


def table_expectations(
    table: Table,
    rules: Rules,
    date: str,
    previous_rows: int | None = None,
    volume_factor: float | None = DEFAULT_VOLUME_FACTOR,
    derived_columns: Sequence[str] = (),
) -> list[Expectation]:
    """Catalog, volume and value expectations of one table partition.

    Args:
        table: the catalog table.
        rules: its value rules; ``rules.day_over_day`` False ignores ``previous_rows``.
        date: logical date ``D``.
        previous_rows: row count of ``dt=D-1`` (``None`` or 0: no previous day, only "not empty").
        volume_factor: allowed day-over-day row count ratio; ``None`` turns the comparison off.
        derived_columns: see :func:`catalog_expectations`.
    """
    if not rules.day_over_day:
        previous_rows, volume_factor = None, None
    return catalog_expectations(
        table, date, previous_rows, volume_factor, derived_columns
    ) + rule_expectations(rules, date)
