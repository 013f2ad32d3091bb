"""The suite registry: which tables each suite validates and with which rules.

A suite is data: a name, its tables and a :class:`~reelrec.validation.rules.Rules` per table.
:func:`expectations` builds the expectations of any table of any suite for one logical date.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reelrec.catalog import Table
from reelrec.validation.bronze import BRONZE, BRONZE_RULES, BRONZE_TABLES
from reelrec.validation.features import FEATURE_RULES, FEATURE_TABLES, FEATURES
from reelrec.validation.outputs import OUTPUT_RULES, OUTPUT_TABLES, OUTPUTS
from reelrec.validation.rules import DEFAULT_VOLUME_FACTOR, Rules, table_expectations

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation


@dataclass(frozen=True)
class Suite:
    """A validation suite: the tables it checks, in order, and the value rules of each."""

    name: str
    tables: tuple[Table, ...]
    rules: Mapping[str, Rules]


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite(BRONZE, BRONZE_TABLES, BRONZE_RULES),
        Suite(FEATURES, FEATURE_TABLES, FEATURE_RULES),
        Suite(OUTPUTS, OUTPUT_TABLES, OUTPUT_RULES),
    )
}


def get_suite(name: str) -> Suite:
    """The suite called ``name``.

    Raises:
        KeyError: naming the unknown suite and the known ones.
    """
    try:
        return SUITES[name]
    except KeyError:
        raise KeyError(f"unknown validation suite {name!r}; known suites: {sorted(SUITES)}") from None


def suite_tables(suite: str) -> list[str]:
    """Names of the tables validated by ``suite`` ("bronze", "features" or "outputs")."""
    return [t.name for t in get_suite(suite).tables]


def suite_of(table_name: str) -> str:
    """Name of the suite that validates ``table_name``.

    Raises:
        KeyError: when no suite lists the table.
    """
    for suite in SUITES.values():
        if table_name in suite.rules:
            return suite.name
    raise KeyError(f"table {table_name!r} belongs to no validation suite; suites: {sorted(SUITES)}")


def suite_table(suite: str, table_name: str) -> Table:
    """The catalog table ``table_name`` of ``suite``.

    Raises:
        KeyError: when ``suite`` does not validate that table.
    """
    table = next((t for t in get_suite(suite).tables if t.name == table_name), None)
    if table is None:
        raise KeyError(f"table {table_name!r} is not part of suite {suite!r}: {suite_tables(suite)}")
    return table


def expectations(
    table: Table,
    date: str,
    previous_rows: int | None = None,
    volume_factor: float | None = DEFAULT_VOLUME_FACTOR,
) -> list[Expectation]:
    """Expectations of ``table``'s suite for its ``dt=date`` partition.

    Args:
        table: a table of suite "bronze", "features" or "outputs".
        date: logical date ``D``.
        previous_rows: row count of ``dt=D-1`` (``None`` or 0: no previous day, only "not empty");
            ignored for tables without a day-over-day volume rule (the gold outputs).
        volume_factor: allowed day-over-day row count ratio; ``None`` turns the comparison off.
    """
    rules = get_suite(suite_of(table.name)).rules[table.name]
    return table_expectations(table, rules, date, previous_rows, volume_factor)
