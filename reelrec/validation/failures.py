"""Report entries from Great Expectations results: the rule, what was observed, the offending rows.

GX answers in its own vocabulary (kwargs, ``partial_unexpected_*`` lists, pair tuples); the entries
built here say it in the table's: which columns, which rule, which values, and up to
:data:`reelrec.validation.report.SAMPLE_ROWS` offending rows with their key columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from reelrec.catalog import DT, Table
from reelrec.validation.report import SAMPLE_ROWS, jsonable

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

BATCH_KWARG = "batch_id"
_NOT_RULE_KWARGS = {BATCH_KWARG, "column", "column_A", "column_B", "column_list", "column_set"}


def absent_entry(expectation: str, rule: str, reason: str) -> dict[str, Any]:
    """A failed report entry for data that is not there at all (nothing for GX to look at)."""
    return {"expectation": expectation, "column": None, "rule": rule, "observed": reason, "sample_rows": []}


def outcome_entry(outcome: ExpectationValidationResult) -> dict[str, Any] | None:
    """One expectation's outcome as the report lists it (``None`` when GX lost its expectation)."""
    config = outcome.expectation_config
    if config is None:
        return None
    return {
        "expectation": config.type,
        "kwargs": jsonable({k: v for k, v in config.kwargs.items() if k != BATCH_KWARG}),
        "success": bool(outcome.success),
    }


def _columns_of(kwargs: Mapping[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs:
        return [kwargs["column_B"], kwargs["column_A"]]
    return list(kwargs.get("column_list") or [])


def _rule_text(kwargs: Mapping[str, Any], description: str | None) -> str:
    if description:
        return description
    parts = []
    for name, value in kwargs.items():
        if name in _NOT_RULE_KWARGS or value is None:
            continue
        if name == "row_condition":
            value = getattr(value, "to_dict", lambda v=value: v)()
        parts.append(f"{name}={jsonable(value)}")
    return ", ".join(parts)


def _observed(outcome: ExpectationValidationResult, kwargs: Mapping[str, Any], table: Table) -> Any:
    """What GX saw: an error, the observed value (a column set as missing/unexpected), or the
    unexpected count with a few unexpected values."""
    config = outcome.expectation_config
    assert config is not None, "GX returned a result without its expectation"
    result = outcome.result or {}
    exception = outcome.exception_info or {}
    if exception.get("raised_exception"):
        return f"error: {exception.get('exception_message')}"
    if "observed_value" in result:
        observed = result["observed_value"]
        if config.type == "expect_table_columns_to_match_set":
            expected = set(kwargs.get("column_set") or table.columns)
            return {
                "missing": sorted(expected - set(observed)),
                "unexpected": sorted(set(observed) - expected),
            }
        return observed
    return {
        "unexpected_count": result.get("unexpected_count"),
        "element_count": result.get("element_count"),
        "unexpected_values": (result.get("partial_unexpected_list") or [])[:SAMPLE_ROWS],
    }


def _sample_rows(
    outcome: ExpectationValidationResult, rows: pa.Table, table: Table, columns: list[str]
) -> list[dict[str, Any]]:
    """Up to SAMPLE_ROWS offending rows: key columns, checked columns and the rule's evidence."""
    config = outcome.expectation_config
    assert config is not None, "GX returned a result without its expectation"
    result = outcome.result or {}
    indices = [i for i in (result.get("partial_unexpected_index_list") or []) if isinstance(i, int)]
    if not indices:
        return []
    # meta "show": columns that explain an offending row (e.g. which items were watched)
    evidence = list((config.meta or {}).get("show") or [])
    shown = [c for c in [*table.key, *columns, *evidence] if c != DT and c in rows.column_names]
    shown = list(dict.fromkeys(shown))
    return rows.select(shown).take(sorted(set(indices))[:SAMPLE_ROWS]).to_pylist()


def failure_entry(outcome: ExpectationValidationResult, rows: pa.Table, table: Table) -> dict[str, Any]:
    """One failed expectation as a report entry, with the offending rows taken from ``rows``."""
    config = outcome.expectation_config
    assert config is not None, "GX returned a result without its expectation"
    kwargs = dict(config.kwargs)
    columns = _columns_of(kwargs)
    observed = _observed(outcome, kwargs, table)
    columns_text: str | None
    if config.type == "expect_column_pair_values_a_to_be_greater_than_b":
        columns_text = f"{kwargs['column_B']} <= {kwargs['column_A']}"
        rule = ""
        if isinstance(observed, dict):  # GX lists (A, B) tuples: name them, in the order of the rule
            observed["unexpected_values"] = [
                {kwargs["column_B"]: b, kwargs["column_A"]: a} for a, b in observed["unexpected_values"]
            ]
    elif config.type == "expect_column_pair_values_to_be_equal":
        columns = [kwargs["column_A"], kwargs["column_B"]]
        columns_text = " == ".join(columns)
        rule = _rule_text(kwargs, config.description)
        if isinstance(observed, dict):
            observed["unexpected_values"] = [
                {kwargs["column_A"]: a, kwargs["column_B"]: b} for a, b in observed["unexpected_values"]
            ]
    else:
        columns_text = ", ".join(columns) if columns else None
        rule = _rule_text(kwargs, config.description)
    return jsonable(
        {
            "expectation": config.type,
            "column": columns_text,
            "rule": rule,
            "observed": observed,
            "sample_rows": _sample_rows(outcome, rows, table, columns),
        }
    )
