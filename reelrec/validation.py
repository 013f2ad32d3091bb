"""Data validation with Great Expectations: the "bronze" and "features" suites.

A suite is data. For every table it names, a suite builds a list of GX expectations for one logical
date ``D`` from three sources:

* the table catalog (:mod:`reelrec.catalog`): the exact column set, non-null columns, unique key;
* the per-table value rules below (:data:`BRONZE_RULES`, :data:`FEATURE_RULES`): time inside the
  day, value ranges, windowed counts that never shrink as the window grows, categorical sets;
* volume: the ``dt=D`` partition is never empty, and when ``dt=D-1`` exists its row count stays
  within ``[1/f, f]`` times the previous day's (``f`` = ``volume_factor``, 2 by default).

Time (:mod:`reelrec.dates`): ``D`` covers ``[D 00:00, D+1 00:00)`` UTC; a feature row of ``D``
carries ``event_timestamp == D 23:59:59`` UTC (:func:`reelrec.dates.feature_timestamp`).

Usage (what the Airflow tasks call)::

    check("bronze", "2026-11-01", settings)   # raises ValidationError naming table, rule, rows

Every table's outcome is also written as JSON to ``runs/dt=D/validation/<suite>.<table>.json``.
``great_expectations`` is imported lazily, so importing this module stays cheap.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from reelrec import lake
from reelrec.catalog import (
    CREATOR_FEATURES,
    CREATORS,
    DT,
    EVENT_TIMESTAMP,
    EVENT_TS,
    EVENT_TYPE,
    EVENT_TYPES,
    EVENTS,
    FOLLOWS,
    POSITION,
    SURFACE,
    SURFACES,
    USER_FEATURES,
    USERS,
    VIDEO_FEATURES,
    VIDEOS,
    WATCH_MS,
    Table,
)
from reelrec.dates import add_days, day_bounds, feature_timestamp
from reelrec.errors import DataError
from reelrec.settings import Settings

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult
    from great_expectations.expectations.expectation import Expectation

log = logging.getLogger(__name__)

DEFAULT_VOLUME_FACTOR = 2.0
"""Row count of ``D`` must lie in ``[prev / f, prev * f]`` of ``D-1``'s row count."""

SAMPLE_ROWS = 5
"""How many offending rows a failure carries (in the report and in the error message)."""

AGE_BUCKETS = ("13-17", "18-24", "25-34", "35-44", "45+")
"""``users.age_bucket`` values of the landing contract."""

WATCHED_EVENT_TYPES = ("view", "skip")
"""Event types that carry ``watch_ms`` (null for the others)."""


class ValidationError(DataError):
    """A table partition broke its suite; the message names suite, table, date, rules and rows."""

    def __init__(self, message: str, reports: Sequence[ValidationReport] = ()) -> None:
        super().__init__(message)
        self.reports = list(reports)


# Day-over-day volume is compared only when the previous day is big enough for the ratio to mean
# something: on a table of a handful of rows a 2x swing is noise, not an outage.
MIN_ROWS_FOR_VOLUME = 100


# ---------------------------------------------------------------- rules: suites as data
@dataclass(frozen=True)
class Rules:
    """Value rules of one table, on top of what the catalog already says (columns, nulls, key).

    Nulls are ignored by every value rule (a nullable column may be null); non-nullable catalog
    columns get a not-null expectation of their own.
    """

    within_day: tuple[str, ...] = ()  # timestamp in [D 00:00, D+1 00:00)
    not_after_day: tuple[str, ...] = ()  # timestamp < D+1 00:00 (known by the end of D)
    at_end_of_day: tuple[str, ...] = ()  # timestamp == D 23:59:59 (feature validity instant)
    non_negative: tuple[str, ...] = ()  # counts, durations, positions, ages: >= 0
    positive: tuple[str, ...] = ()  # > 0
    unit_interval: tuple[str, ...] = ()  # rates in [0, 1]
    bounded: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # [lo, hi]
    not_greater: tuple[tuple[str, str], ...] = ()  # (a, b): a <= b row by row
    value_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    not_null_when: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (col, if_col, if_col in values)
    may_be_empty: bool = False  # a day may legitimately have no rows (e.g. no new follows)


def _rules(table: Table) -> Rules:
    return {**BRONZE_RULES, **FEATURE_RULES}[table.name]


def _windows(prefix: str, windows: Iterable[int] = (1, 7, 28)) -> tuple[str, ...]:
    return tuple(f"{prefix}_{w}d" for w in windows)


def _monotone(prefix: str, windows: Iterable[int] = (1, 7, 28)) -> tuple[tuple[str, str], ...]:
    """``prefix_1d <= prefix_7d <= prefix_28d``: a longer window never counts less."""
    names = _windows(prefix, windows)
    return tuple(zip(names[:-1], names[1:], strict=True))


BRONZE_RULES: dict[str, Rules] = {
    EVENTS.name: Rules(
        within_day=(EVENT_TS,),
        non_negative=(WATCH_MS, POSITION),
        value_sets={EVENT_TYPE: EVENT_TYPES, SURFACE: SURFACES},
        not_null_when=((WATCH_MS, EVENT_TYPE, WATCHED_EVENT_TYPES),),
    ),
    VIDEOS.name: Rules(not_after_day=("upload_ts",), positive=("duration_ms",)),
    USERS.name: Rules(not_after_day=("signup_ts",), value_sets={"age_bucket": AGE_BUCKETS}),
    CREATORS.name: Rules(not_after_day=("joined_ts",)),
    FOLLOWS.name: Rules(within_day=("followed_at",), may_be_empty=True),
}

FEATURE_RULES: dict[str, Rules] = {
    USER_FEATURES.name: Rules(
        at_end_of_day=(EVENT_TIMESTAMP,),
        non_negative=_windows("impressions") + _windows("views") + _windows("watch_ms"),
        unit_interval=("completion_rate_7d", "completion_rate_28d", "like_rate_28d"),
        bounded={"active_days_28d": (0, 28)},
        not_greater=_monotone("impressions") + _monotone("views") + _monotone("watch_ms"),
    ),
    VIDEO_FEATURES.name: Rules(
        at_end_of_day=(EVENT_TIMESTAMP,),
        non_negative=(
            *_windows("impressions"),
            *_windows("views"),
            "avg_watch_fraction_1d",  # may pass 1 when a short video loops
            "avg_watch_fraction_7d",
            "age_hours",
        ),
        unit_interval=("completion_rate_7d", "like_rate_7d", "share_rate_7d"),
        not_greater=_monotone("impressions") + _monotone("views"),
    ),
    CREATOR_FEATURES.name: Rules(
        at_end_of_day=(EVENT_TIMESTAMP,),
        non_negative=("followers_total", "new_followers_7d", "uploads_7d", "uploads_28d", "views_7d"),
        unit_interval=("engagement_rate_7d",),
        not_greater=(("uploads_7d", "uploads_28d"), ("new_followers_7d", "followers_total")),
    ),
}


def _catalog_expectations(
    table: Table, date: str, previous_rows: int | None, volume_factor: float | None
) -> list[Expectation]:
    """Columns, non-null columns, unique key and volume: what every table of every suite checks."""
    import great_expectations.expectations as gxe

    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=table.columns, exact_match=True),
    ]
    if previous_rows and previous_rows >= MIN_ROWS_FOR_VOLUME and volume_factor:
        low = max(1, math.ceil(previous_rows / volume_factor))
        high = math.floor(previous_rows * volume_factor)
        expectations.append(
            gxe.ExpectTableRowCountToBeBetween(
                min_value=low,
                max_value=high,
                description=(
                    f"row count within [1/{volume_factor:g}x, {volume_factor:g}x] of "
                    f"dt={add_days(date, -1)} ({previous_rows} rows)"
                ),
            )
        )
    else:
        expectations.append(
            gxe.ExpectTableRowCountToBeBetween(min_value=1, description="partition is not empty")
        )
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=f.name) for f in table.schema if not f.nullable]
    key = [c for c in table.key if c != DT]  # one partition holds one dt
    if len(key) == 1:
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column=key[0]))
    elif key:
        expectations.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=key))
    return expectations


def _rule_expectations(rules: Rules, date: str) -> list[Expectation]:
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


def bronze_expectations(
    table: Table,
    date: str,
    previous_rows: int | None = None,
    volume_factor: float | None = DEFAULT_VOLUME_FACTOR,
) -> list[Expectation]:
    """Expectations of suite "bronze" for one bronze table and logical date.

    Args:
        table: one of events, videos, users, creators, follows.
        date: logical date ``D``.
        previous_rows: row count of ``dt=D-1`` (``None`` or 0: no previous day, only "not empty").
        volume_factor: allowed day-over-day row count ratio; ``None`` turns the comparison off.
    """
    return _catalog_expectations(table, date, previous_rows, volume_factor) + _rule_expectations(
        BRONZE_RULES[table.name], date
    )


def features_expectations(
    table: Table,
    date: str,
    previous_rows: int | None = None,
    volume_factor: float | None = DEFAULT_VOLUME_FACTOR,
) -> list[Expectation]:
    """Expectations of suite "features" for one silver feature table and logical date.

    Args: as :func:`bronze_expectations`, for user_features, video_features, creator_features.
    """
    return _catalog_expectations(table, date, previous_rows, volume_factor) + _rule_expectations(
        FEATURE_RULES[table.name], date
    )


SuiteBuilder = Callable[[Table, str, "int | None", "float | None"], "list[Expectation]"]

SUITES: dict[str, tuple[tuple[Table, ...], SuiteBuilder]] = {
    "bronze": ((EVENTS, VIDEOS, USERS, CREATORS, FOLLOWS), bronze_expectations),
    "features": ((USER_FEATURES, VIDEO_FEATURES, CREATOR_FEATURES), features_expectations),
}


def _suite(suite: str) -> tuple[tuple[Table, ...], SuiteBuilder]:
    try:
        return SUITES[suite]
    except KeyError:
        raise KeyError(f"unknown validation suite {suite!r}; known suites: {sorted(SUITES)}") from None


def suite_tables(suite: str) -> list[str]:
    """Names of the tables validated by ``suite`` ("bronze" or "features")."""
    return [t.name for t in _suite(suite)[0]]


def _suite_of(table_name: str) -> str:
    for name, (tables, _) in SUITES.items():
        if table_name in (t.name for t in tables):
            return name
    raise KeyError(f"table {table_name!r} belongs to no validation suite; suites: {sorted(SUITES)}")


# ---------------------------------------------------------------- reports
@dataclass
class ValidationReport:
    """Outcome of one suite on one table partition.

    ``failed`` holds one dict per failed expectation: ``expectation`` (GX type), ``column``
    (``None`` for table-level rules), ``rule`` (its arguments), ``observed`` and ``sample_rows``
    (up to :data:`SAMPLE_ROWS` offending rows: key columns and the checked columns).
    """

    suite: str
    table: str
    date: str
    success: bool
    evaluated: int
    failed: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None  # where the JSON report was written

    def describe(self) -> str:
        """Human-readable summary naming the table, the date, each failed rule and its rows."""
        head = f"suite {self.suite!r}, table {self.table}, dt={self.date}"
        if self.success:
            return f"{head}: passed {self.evaluated} expectation(s)"
        lines = [f"{head}: {len(self.failed)} of {self.evaluated} expectation(s) failed"]
        if self.path:
            lines[0] += f" (report: {self.path})"
        for failure in self.failed:
            where = f" on column {failure['column']!r}" if failure["column"] else ""
            rule = f" [{failure['rule']}]" if failure.get("rule") else ""
            observed = failure["observed"]
            if not isinstance(observed, str):
                observed = json.dumps(observed, default=str)
            lines.append(f"  - {failure['expectation']}{where}{rule}: observed {observed}")
            lines += [f"      offending row: {json.dumps(r, default=str)}" for r in failure["sample_rows"]]
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """Plain JSON values from numpy / pandas / datetime values (NaN and NaT become None)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:  # pandas NaT / NA
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


_BATCH = "batch_id"
_NOT_RULE_KWARGS = {_BATCH, "column", "column_A", "column_B", "column_list", "column_set"}


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
        parts.append(f"{name}={_jsonable(value)}")
    return ", ".join(parts)


def _failure(outcome: ExpectationValidationResult, rows: pa.Table, table: Table) -> dict[str, Any]:
    """One failed expectation as a report entry, with the offending rows taken from ``rows``."""
    config = outcome.expectation_config
    assert config is not None, "GX returned a result without its expectation"
    kwargs = dict(config.kwargs)
    columns = _columns_of(kwargs)
    result = outcome.result or {}
    exception = outcome.exception_info or {}
    if exception.get("raised_exception"):
        observed: Any = f"error: {exception.get('exception_message')}"
    elif "observed_value" in result:
        observed = result["observed_value"]
        if config.type == "expect_table_columns_to_match_set":
            observed = {
                "missing": sorted(set(table.columns) - set(observed)),
                "unexpected": sorted(set(observed) - set(table.columns)),
            }
    else:
        observed = {
            "unexpected_count": result.get("unexpected_count"),
            "element_count": result.get("element_count"),
            "unexpected_values": (result.get("partial_unexpected_list") or [])[:SAMPLE_ROWS],
        }
    columns_text: str | None
    if config.type == "expect_column_pair_values_a_to_be_greater_than_b":
        columns_text = f"{kwargs['column_B']} <= {kwargs['column_A']}"
        rule = ""
        if isinstance(observed, dict):  # GX lists (A, B) tuples: name them, in the order of the rule
            observed["unexpected_values"] = [
                {kwargs["column_B"]: b, kwargs["column_A"]: a} for a, b in observed["unexpected_values"]
            ]
    else:
        columns_text = ", ".join(columns) if columns else None
        rule = _rule_text(kwargs, config.description)
    indices = [i for i in (result.get("partial_unexpected_index_list") or []) if isinstance(i, int)]
    sample: list[dict[str, Any]] = []
    if indices:
        shown = [c for c in [*table.key, *columns] if c != DT and c in rows.column_names]
        shown = list(dict.fromkeys(shown))
        sample = rows.select(shown).take(sorted(set(indices))[:SAMPLE_ROWS]).to_pylist()
    return _jsonable(
        {
            "expectation": config.type,
            "column": columns_text,
            "rule": rule,
            "observed": observed,
            "sample_rows": sample,
        }
    )


def _write_report(report: ValidationReport, settings: Settings, outcomes: list[dict[str, Any]]) -> Path:
    path = settings.run_dir(report.date) / "validation" / f"{report.suite}.{report.table}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in asdict(report).items() if k != "path"}
    body["expectations"] = outcomes
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- running GX
class _Runner:
    """One ephemeral GX context with one pandas batch definition, shared by a suite's tables."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self.context.data_sources.add_pandas("reelrec_lake").add_dataframe_asset("partition")
        self.batch = asset.add_batch_definition_whole_dataframe("whole_partition")

    def run(self, name: str, expectations: list[Expectation], frame: Any) -> Any:
        suite = self.context.suites.add(self._gx.ExpectationSuite(name=name, expectations=expectations))
        definition = self.context.validation_definitions.add(
            self._gx.ValidationDefinition(name=name, data=self.batch, suite=suite)
        )
        return definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_ROWS},
        )


def _missing_report(suite: str, table: Table, date: str, reason: str) -> ValidationReport:
    return ValidationReport(
        suite=suite,
        table=table.name,
        date=date,
        success=False,
        evaluated=1,
        failed=[
            {
                "expectation": "partition_present",
                "column": None,
                "rule": f"table {table.layer}.{table.name} has rows in partition dt={date}",
                "observed": reason,
                "sample_rows": [],
            }
        ],
    )


def _validate(
    runner: _Runner | None,
    suite: str,
    table: Table,
    date: str,
    settings: Settings,
    volume_factor: float | None,
) -> tuple[ValidationReport, _Runner | None]:
    tables, build = _suite(suite)
    if table not in tables:
        raise KeyError(f"table {table.name!r} is not part of suite {suite!r}: {suite_tables(suite)}")
    outcomes: list[dict[str, Any]] = []
    if not lake.exists(table, settings):
        report = _missing_report(suite, table, date, f"Delta table does not exist at {table.path(settings)}")
    elif (empty := lake.partition_row_count(table, settings, date) == 0) and _rules(table).may_be_empty:
        report = ValidationReport(suite=suite, table=table.name, date=date, success=True, evaluated=0)
    elif empty:
        report = _missing_report(
            suite, table, date, f"partition dt={date} is missing or empty in {table.path(settings)}"
        )
    else:
        actual_columns = lake.open_table(table, settings).to_pyarrow_dataset().schema.names
        rows = lake.read(table, settings, dates=[date], columns=actual_columns)
        previous_rows = lake.partition_row_count(table, settings, add_days(date, -1))
        expectations = build(table, date, previous_rows, volume_factor)
        runner = runner or _Runner()
        result = runner.run(f"{suite}.{table.name}.{date}", expectations, rows.to_pandas())
        failed = [_failure(o, rows, table) for o in result.results if not o.success]
        outcomes = [
            {
                "expectation": o.expectation_config.type,
                "kwargs": _jsonable({k: v for k, v in o.expectation_config.kwargs.items() if k != _BATCH}),
                "success": bool(o.success),
            }
            for o in result.results
            if o.expectation_config is not None
        ]
        report = ValidationReport(
            suite=suite,
            table=table.name,
            date=date,
            success=bool(result.success),
            evaluated=len(result.results),
            failed=failed,
        )
    report.path = _write_report(report, settings, outcomes)
    log.info("%s", report.describe())
    return report, runner


def validate_table(
    table_name: str,
    date: str,
    settings: Settings,
    suite: str | None = None,
    volume_factor: float | None = DEFAULT_VOLUME_FACTOR,
) -> ValidationReport:
    """Validate the ``dt=date`` partition of one table with its suite and write the JSON report.

    A missing table or an empty partition is a failed report, not an exception.

    Args:
        table_name: catalog name, e.g. ``"events"``.
        date: logical date ``YYYY-MM-DD``.
        settings: where the lake and the run folders live.
        suite: suite to run; by default the one that lists ``table_name``.
        volume_factor: allowed day-over-day row count ratio (``None``: only "not empty").

    Returns:
        The report, also written to ``settings.run_dir(date)/validation/<suite>.<table>.json``.
    """
    suite = suite or _suite_of(table_name)
    table = next((t for t in _suite(suite)[0] if t.name == table_name), None)
    if table is None:
        raise KeyError(f"table {table_name!r} is not part of suite {suite!r}: {suite_tables(suite)}")
    report, _ = _validate(None, suite, table, date, settings, volume_factor)
    return report


def validate_suite(
    suite: str,
    date: str,
    settings: Settings,
    volume_factor: float | None = DEFAULT_VOLUME_FACTOR,
) -> list[ValidationReport]:
    """Validate every table of ``suite`` for ``date`` with one GX context; one report per table."""
    tables, _ = _suite(suite)
    runner: _Runner | None = None
    reports = []
    for table in tables:
        report, runner = _validate(runner, suite, table, date, settings, volume_factor)
        reports.append(report)
    return reports


def check(
    suite: str,
    date: str,
    settings: Settings,
    volume_factor: float | None = DEFAULT_VOLUME_FACTOR,
) -> list[ValidationReport]:
    """Run :func:`validate_suite` and fail loudly: the gate an Airflow task calls.

    Returns:
        The (all passing) reports.

    Raises:
        ValidationError: naming the suite, date, each failing table, each failed expectation with
            its column and up to :data:`SAMPLE_ROWS` offending rows.
    """
    reports = validate_suite(suite, date, settings, volume_factor)
    bad = [r for r in reports if not r.success]
    if bad:
        head = (
            f"validation suite {suite!r} failed for dt={date}: "
            f"{len(bad)} of {len(reports)} table(s) failed ({', '.join(r.table for r in bad)})"
        )
        raise ValidationError("\n".join([head, *(r.describe() for r in bad)]), reports)
    return reports


def gate(suite: str, date: str, settings: Settings) -> dict[str, Any]:
    """:func:`check`, returning a small JSON-able summary (what the nightly DAG's gate tasks return)."""
    reports = check(suite, date, settings)
    return {
        "suite": suite,
        "tables": {r.table: {"success": r.success, "expectations": r.evaluated} for r in reports},
    }
