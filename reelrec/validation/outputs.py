"""Suite "outputs": the gold model outputs of one date (candidates, user and video embeddings).

The suite guards what is about to be published. Besides the catalog checks and the feature
timestamp (:data:`OUTPUT_RULES`) it looks inside list columns and across tables (active users,
watched videos, one model version): it adds the derived check columns of
:mod:`reelrec.validation.output_columns` to a copy of the partition and compares against the facts
of :mod:`reelrec.validation.output_facts`, plus a small *coverage* frame per table for "every
active user / every candidate video has a row", and for gold.candidates a one-row frame for "the
default list (``user_id`` :data:`~reelrec.catalog.DEFAULT_LIST_KEY`) is there exactly once".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from reelrec.catalog import (
    CANDIDATES,
    DEFAULT_LIST_KEY,
    EVENT_TIMESTAMP,
    EVENTS,
    GOLD_TABLES,
    USER_EMBEDDINGS,
    USER_FEATURES,
    USER_ID,
    VIDEO_EMBEDDINGS,
    VIDEO_ID,
    VIDEO_IDS,
    Table,
)
from reelrec.validation.output_columns import candidate_columns, derived_expectations, embedding_columns
from reelrec.validation.output_facts import OutputFacts
from reelrec.validation.rules import Rules, table_expectations
from reelrec.validation.runner import Batch

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

OUTPUTS = "outputs"

OUTPUT_TABLES: tuple[Table, ...] = GOLD_TABLES

# Gold tables: the catalog checks and the feature timestamp only. Their row counts follow the active
# users and the eligible videos, which the derived checks compare against, so there is no
# day-over-day volume rule; the list and embedding rules are in output_columns.
OUTPUT_RULES: dict[str, Rules] = {
    table.name: Rules(at_end_of_day=(EVENT_TIMESTAMP,), day_over_day=False) for table in OUTPUT_TABLES
}
"""Value rules of each gold table (the derived checks come on top)."""

# Tables whose dt=D facts the checks of each gold table need, besides the gold tables themselves.
OUTPUT_REFERENCES: dict[str, tuple[Table, ...]] = {
    CANDIDATES.name: (USER_FEATURES, EVENTS),
    USER_EMBEDDINGS.name: (USER_FEATURES,),
    VIDEO_EMBEDDINGS.name: (),
}


def checked_versions(table: Table, facts: OutputFacts) -> dict[str, int | None]:
    """Delta versions of the tables the checks of ``table`` read: every gold table (one model
    version across them) and ``table``'s references."""
    names = [t.name for t in (*OUTPUT_TABLES, *OUTPUT_REFERENCES[table.name])]
    return {name: facts.versions[name] for name in names if name in facts.versions}


def _coverage(table: Table, rows: pa.Table, facts: OutputFacts) -> pa.Table | None:
    """Coverage frame of a gold table: one row per entity that must have a row in it, or ``None``."""
    if table.name in (CANDIDATES.name, USER_EMBEDDINGS.name):
        if facts.active_users is None:
            return None
        flag = "has_candidates" if table.name == CANDIDATES.name else "has_embedding"
        present = pc.is_in(facts.active_users, value_set=pc.unique(rows.column(USER_ID).combine_chunks()))
        return pa.table({USER_ID: facts.active_users, flag: present})
    candidates = facts.partitions.get(CANDIDATES.name)
    if candidates is None or VIDEO_IDS not in candidates.column_names:
        return None  # the candidates report fails on its own
    listed = pc.unique(pc.list_flatten(candidates.column(VIDEO_IDS).combine_chunks())).drop_null()
    present = pc.is_in(listed, value_set=pc.unique(rows.column(VIDEO_ID).combine_chunks()))
    return pa.table({VIDEO_ID: listed, "has_embedding": present})


def _coverage_expectation(table: Table, flag: str, date: str) -> Expectation:
    import great_expectations.expectations as gxe

    if table.name == VIDEO_EMBEDDINGS.name:
        whom = f"every video listed in a gold.candidates list of dt={date}"
    else:
        whom = f"every active user of dt={date} (silver.user_features)"
    return gxe.ExpectColumnValuesToBeInSet(
        column=flag, value_set=[True], description=f"{whom} has a row in gold.{table.name}"
    )


def _default_list_batch(rows: pa.Table, date: str) -> Batch:
    """The frame that checks gold.candidates holds the default list of D exactly once.

    Its other rules (non-empty, no duplicate, finite sorted scores, the night's model version) are
    the per-row rules every list meets; it is exempt from ``is_active_user`` only.
    """
    import great_expectations.expectations as gxe

    count = pc.sum(pc.equal(rows.column(USER_ID), DEFAULT_LIST_KEY)).as_py() or 0
    expectation = gxe.ExpectColumnValuesToBeBetween(
        column="default_list_rows",
        min_value=1,
        max_value=1,
        description=f"gold.candidates dt={date} holds the default list (user_id {DEFAULT_LIST_KEY!r}) "
        "exactly once: users without a list are served it",
    )
    return Batch(
        ".default_list", pa.table({"default_list_rows": pa.array([count], pa.int64())}), [expectation]
    )


def output_checks(
    table: Table, rows: pa.Table, date: str, facts: OutputFacts
) -> tuple[list[Batch], list[dict[str, Any]]]:
    """What suite "outputs" runs for one gold partition: GX batches, and reference facts it lacks."""
    unavailable = [
        facts.unavailable[t.name] for t in OUTPUT_REFERENCES[table.name] if t.name in facts.unavailable
    ]
    rules = OUTPUT_RULES[table.name]
    if set(rows.column_names) != set(table.columns):  # derived columns need exactly the catalog's
        return [Batch("", rows, table_expectations(table, rules, date))], unavailable
    if table.name == CANDIDATES.name:
        derived = candidate_columns(rows, facts)
    else:
        derived = embedding_columns(rows, facts, by_user=table.name == USER_EMBEDDINGS.name)
    frame = rows
    for name, column in derived.items():
        frame = frame.append_column(name, column)
    expectations = table_expectations(
        table, rules, date, derived_columns=list(derived)
    ) + derived_expectations(derived, date, facts, table)
    batches = [Batch("", frame, expectations)]
    coverage = _coverage(table, rows, facts)
    if coverage is not None:
        flag = coverage.column_names[1]
        batches.append(Batch(".coverage", coverage, [_coverage_expectation(table, flag, date)]))
    if table.name == CANDIDATES.name:
        batches.append(_default_list_batch(rows, date))
    return batches, unavailable
