"""Data validation with Great Expectations: the "bronze", "features" and "outputs" suites.

A suite is data. For every table it names, a suite builds a list of GX expectations for one logical
date ``D`` from three sources:

* the table catalog (:mod:`reelrec.catalog`): the exact column set, non-null columns, unique key;
* the per-table value rules below (:data:`BRONZE_RULES`, :data:`FEATURE_RULES`, :data:`OUTPUT_RULES`):
  time inside the day, value ranges, windowed counts that never shrink as the window grows,
  categorical sets;
* volume: the ``dt=D`` partition is never empty, and (bronze and silver tables) when ``dt=D-1``
  exists its row count stays within ``[1/f, f]`` times the previous day's (``f`` =
  ``volume_factor``, 2 by default).

Suite "outputs" guards the gold model outputs of ``D`` (candidates, user and video embeddings)
before they are published. Its rules look inside list columns and across tables (active users,
watched videos, one model version), which GX column expectations cannot do; so it first adds
*derived check columns* to a copy of the partition, computed vectorised in Arrow/numpy (see
:data:`OUTPUT_CHECK_COLUMNS`), and then runs ordinary GX expectations over them, plus a small
*coverage* frame per table for "every active user / every candidate video has a row". Failures
therefore land in the same report format, with offending rows, as those of the other suites.

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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec import history, lake
from reelrec.catalog import (
    CANDIDATES,
    CREATOR_FEATURES,
    CREATORS,
    DT,
    EVENT_TIMESTAMP,
    EVENT_TS,
    EVENT_TYPE,
    EVENT_TYPES,
    EVENTS,
    FOLLOWS,
    MODEL_VERSION,
    POSITION,
    SURFACE,
    SURFACES,
    USER_EMBEDDINGS,
    USER_FEATURES,
    USER_ID,
    USERS,
    VIDEO_EMBEDDINGS,
    VIDEO_FEATURES,
    VIDEO_ID,
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
    return {**BRONZE_RULES, **FEATURE_RULES, **OUTPUT_RULES}[table.name]


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


# Gold tables: the catalog checks and the feature timestamp only. Their row counts follow the active
# users and the eligible videos, which the derived checks below compare against, so there is no
# day-over-day volume rule; the list and embedding rules are in OUTPUT_CHECK_COLUMNS.
OUTPUT_RULES: dict[str, Rules] = {
    CANDIDATES.name: Rules(at_end_of_day=(EVENT_TIMESTAMP,)),
    USER_EMBEDDINGS.name: Rules(at_end_of_day=(EVENT_TIMESTAMP,)),
    VIDEO_EMBEDDINGS.name: Rules(at_end_of_day=(EVENT_TIMESTAMP,)),
}


def _catalog_expectations(
    table: Table,
    date: str,
    previous_rows: int | None,
    volume_factor: float | None,
    derived_columns: Sequence[str] = (),
) -> list[Expectation]:
    """Columns, non-null columns, unique key and volume: what every table of every suite checks.

    ``derived_columns`` are check columns added to the validated copy of the partition (suite
    "outputs"); the exact column set then is the catalog's plus those.
    """
    import great_expectations.expectations as gxe

    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=[*table.columns, *derived_columns], exact_match=True),
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


def outputs_expectations(
    table: Table,
    date: str,
    previous_rows: int | None = None,
    volume_factor: float | None = None,
) -> list[Expectation]:
    """Catalog expectations of suite "outputs" for one gold table: columns, nulls, key, not empty.

    ``previous_rows`` and ``volume_factor`` are ignored: gold tables have no day-over-day volume
    rule. The list, embedding and cross-table rules need derived columns and facts of other tables
    (:func:`_output_checks`); this is what runs when the partition does not even have the catalog's
    columns.
    """
    return _catalog_expectations(table, date, None, None) + _rule_expectations(OUTPUT_RULES[table.name], date)


SuiteBuilder = Callable[[Table, str, "int | None", "float | None"], "list[Expectation]"]

OUTPUTS = "outputs"

SUITES: dict[str, tuple[tuple[Table, ...], SuiteBuilder]] = {
    "bronze": ((EVENTS, VIDEOS, USERS, CREATORS, FOLLOWS), bronze_expectations),
    "features": ((USER_FEATURES, VIDEO_FEATURES, CREATOR_FEATURES), features_expectations),
    OUTPUTS: ((CANDIDATES, USER_EMBEDDINGS, VIDEO_EMBEDDINGS), outputs_expectations),
}


def _suite(suite: str) -> tuple[tuple[Table, ...], SuiteBuilder]:
    try:
        return SUITES[suite]
    except KeyError:
        raise KeyError(f"unknown validation suite {suite!r}; known suites: {sorted(SUITES)}") from None


def suite_tables(suite: str) -> list[str]:
    """Names of the tables validated by ``suite`` ("bronze", "features" or "outputs")."""
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
            expected = set(kwargs.get("column_set") or table.columns)
            observed = {
                "missing": sorted(expected - set(observed)),
                "unexpected": sorted(set(observed) - expected),
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
    indices = [i for i in (result.get("partial_unexpected_index_list") or []) if isinstance(i, int)]
    sample: list[dict[str, Any]] = []
    if indices:
        # meta "show": columns that explain an offending row (e.g. which items were watched)
        evidence = list((config.meta or {}).get("show") or [])
        shown = [c for c in [*table.key, *columns, *evidence] if c != DT and c in rows.column_names]
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


# ---------------------------------------------------------------- suite "outputs": derived check columns
VIDEO_IDS = "video_ids"
SCORES = "scores"
EMBEDDING = "embedding"

UNIT_NORM_TOLERANCE = 0.01
"""User embeddings are unit vectors: an L2 norm must lie in ``[1 - tol, 1 + tol]``."""
MAX_VIDEO_EMBEDDING_NORM = 4.0
"""Video embeddings are bounded: a unit direction plus a bounded per-video bias coordinate."""

OUTPUT_CHECK_COLUMNS: dict[str, str] = {
    # gold.candidates, one value per candidate row
    "is_active_user": "user_id is an active user of D, i.e. has a row in silver.user_features dt=D",
    "n_items": "len(video_ids)",
    "n_scores": "len(scores)",
    "n_null_items": "null entries in video_ids",
    "n_duplicate_items": "len(video_ids) minus its distinct entries: repeats of a video already listed",
    "duplicate_items": "the video ids listed more than once, once each (shown with n_duplicate_items)",
    "n_watched_items": "entries of video_ids the user watched up to D (a view event, reelrec.history)",
    "watched_items": "those watched video ids in list order (shown with n_watched_items)",
    "n_nonfinite_scores": "scores that are NaN, +-inf or null",
    "scores_sorted": "no finite score is greater than the finite one before it (best first, ties allowed; "
    "non-finite scores are n_nonfinite_scores' concern)",
    # gold.user_embeddings (is_active_user too) and gold.video_embeddings, one value per row
    "embedding_dim": "len(embedding)",
    "n_nonfinite_values": "embedding values that are NaN, +-inf or null",
    "embedding_norm": "L2 norm of the embedding, in float64; null when a value is not finite (the norm is "
    "then meaningless and n_nonfinite_values reports the row)",
    # coverage frames: one row per entity that must have a row, not per partition row
    "has_candidates": "per active user of D: the user has a gold.candidates row",
    "has_embedding": "per active user of D (user_embeddings) or per video listed in any candidates "
    "list of D (video_embeddings): it has an embedding row",
}
"""Every column the "outputs" suite adds before running GX, with what it holds."""

# Tables whose dt=D facts the checks of each gold table need, besides the gold tables themselves.
_OUTPUT_REFERENCES: dict[str, tuple[Table, ...]] = {
    CANDIDATES.name: (USER_FEATURES, EVENTS),
    USER_EMBEDDINGS.name: (USER_FEATURES,),
    VIDEO_EMBEDDINGS.name: (),
}


@dataclass
class _OutputFacts:
    """What the "outputs" checks of one date compare against, loaded once per suite run.

    Attributes:
        partitions: the ``dt=D`` rows of each gold table whose partition has rows.
        active_users: distinct user ids of ``silver.user_features`` ``dt=D``.
        watched: distinct ``(user_id, video_id)`` pairs viewed up to ``D`` by the candidates' users.
        model_version: the version every gold row of ``D`` must carry: the most common one of the
            first gold table present (candidates, user_embeddings, video_embeddings).
        model_versions: distinct versions of each gold table (for the failure message).
        embedding_dim: the most common embedding length over both embedding tables (the two towers
            score by dot product, so they share one dimension).
        unavailable: reference table name -> report entry saying why its facts are missing.
    """

    partitions: dict[str, pa.Table] = field(default_factory=dict)
    active_users: pa.Array | None = None
    watched: pa.Table | None = None
    model_version: str | None = None
    model_versions: dict[str, list[str]] = field(default_factory=dict)
    embedding_dim: int | None = None
    unavailable: dict[str, dict[str, Any]] = field(default_factory=dict)


def _absence(table: Table, settings: Settings, date: str) -> str | None:
    """Why ``table`` has no rows for ``date`` (``None``: it has some)."""
    if not lake.exists(table, settings):
        return f"Delta table does not exist at {table.path(settings)}"
    if lake.partition_row_count(table, settings, date) == 0:
        return f"partition dt={date} is missing or empty in {table.path(settings)}"
    return None


def _read_partition(table: Table, settings: Settings, date: str) -> pa.Table:
    """The ``dt=date`` rows with the columns the table really has (the column check compares them)."""
    actual_columns = lake.open_table(table, settings).to_pyarrow_dataset().schema.names
    return lake.read(table, settings, dates=[date], columns=actual_columns)


def _most_common(values: pa.Array | pa.ChunkedArray) -> Any:
    """The most frequent non-null value (ties: the smallest), ``None`` when there is none."""
    counts = pc.value_counts(values.drop_null())
    pairs = zip(counts.field("counts").to_pylist(), counts.field("values").to_pylist(), strict=True)
    return min(pairs, key=lambda cv: (-cv[0], cv[1]), default=(0, None))[1]


def _load_output_facts(date: str, settings: Settings) -> _OutputFacts:
    facts = _OutputFacts()
    for table in SUITES[OUTPUTS][0]:
        if _absence(table, settings, date) is None:
            facts.partitions[table.name] = _read_partition(table, settings, date)

    if (reason := _absence(USER_FEATURES, settings, date)) is None:
        users = lake.read(USER_FEATURES, settings, dates=[date], columns=[USER_ID]).column(USER_ID)
        facts.active_users = pc.unique(users.combine_chunks())
    else:
        facts.unavailable[USER_FEATURES.name] = _absent_entry(
            "reference_present",
            f"table {USER_FEATURES.layer}.{USER_FEATURES.name} has rows in partition dt={date} "
            "(its user_ids are the active users of the day)",
            reason,
        )

    candidates = facts.partitions.get(CANDIDATES.name)
    if candidates is not None and USER_ID in candidates.column_names:
        if lake.exists(EVENTS, settings):
            users = pc.unique(candidates.column(USER_ID).combine_chunks()).to_pylist()
            facts.watched = history.watched(settings, until=date, users=users)
        else:
            facts.unavailable[EVENTS.name] = _absent_entry(
                "reference_present",
                f"table {EVENTS.layer}.{EVENTS.name} exists (its view events up to dt={date} "
                "are the watched videos)",
                f"Delta table does not exist at {EVENTS.path(settings)}",
            )

    for name, rows in facts.partitions.items():
        if MODEL_VERSION in rows.column_names:
            facts.model_versions[name] = sorted(pc.unique(rows.column(MODEL_VERSION)).drop_null().to_pylist())
            if facts.model_version is None:
                facts.model_version = _most_common(rows.column(MODEL_VERSION))

    dims = [
        pc.list_value_length(rows.column(EMBEDDING))
        for name, rows in facts.partitions.items()
        if name in (USER_EMBEDDINGS.name, VIDEO_EMBEDDINGS.name) and EMBEDDING in rows.column_names
    ]
    if dims:
        facts.embedding_dim = _most_common(pa.chunked_array(dims, type=pa.int32()))
    return facts


def _flatten(lists: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """The list values in row order, the row each value belongs to, and each row's length.

    A null list has length 0 and contributes no values.
    """
    array = lists.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy().astype(np.int64)
    return pc.list_flatten(array), np.repeat(np.arange(len(array)), lengths), lengths


def _per_row(parents: np.ndarray, n_rows: int) -> np.ndarray:
    """How many of the flattened values given by their ``parents`` fall in each row."""
    return np.bincount(parents, minlength=n_rows).astype(np.int64)


def _lists_per_row(items: pa.Table, n_rows: int) -> pa.Array:
    """``items`` (``row``, ``pos``, ``video_id``) regrouped as one list per row, in ``pos`` order."""
    items = items.sort_by([("row", "ascending"), ("pos", "ascending")])
    counts = _per_row(items.column("row").to_numpy(), n_rows)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), items.column(VIDEO_ID).combine_chunks())


def _candidate_columns(rows: pa.Table, facts: _OutputFacts) -> dict[str, pa.Array]:
    """Derived check columns of a candidates partition (see :data:`OUTPUT_CHECK_COLUMNS`).

    Vectorised over the flattened lists: ``(row, pos, user_id, video_id)`` per listed item, grouped
    for duplicates and semi-joined with the watched pairs.
    """
    n = rows.num_rows
    users = rows.column(USER_ID).combine_chunks()
    items, item_rows, n_items = _flatten(rows.column(VIDEO_IDS))
    scores, score_rows, n_scores = _flatten(rows.column(SCORES))
    columns: dict[str, pa.Array] = {}
    if facts.active_users is not None:
        columns["is_active_user"] = pc.is_in(users, value_set=facts.active_users)
    columns["n_items"] = pa.array(n_items)
    columns["n_scores"] = pa.array(n_scores)
    columns["n_null_items"] = pa.array(
        _per_row(item_rows[pc.is_null(items).to_numpy(zero_copy_only=False)], n)
    )

    listed = pa.table(
        {"row": item_rows, "pos": np.arange(len(items)), USER_ID: users.take(item_rows), VIDEO_ID: items}
    )
    groups = listed.group_by(["row", VIDEO_ID]).aggregate([("pos", "count"), ("pos", "min")])
    columns["n_duplicate_items"] = pa.array(n_items - _per_row(groups.column("row").to_numpy(), n))
    repeated = groups.filter(pc.field("pos_count") > 1).select(["row", "pos_min", VIDEO_ID])
    columns["duplicate_items"] = _lists_per_row(repeated.rename_columns(["row", "pos", VIDEO_ID]), n)

    if facts.watched is not None:
        seen = listed.join(facts.watched, keys=[USER_ID, VIDEO_ID], join_type="left semi")
        columns["n_watched_items"] = pa.array(_per_row(seen.column("row").to_numpy(), n))
        columns["watched_items"] = _lists_per_row(seen.select(["row", "pos", VIDEO_ID]), n)

    values = scores.to_numpy(zero_copy_only=False)  # nulls become NaN
    finite = np.isfinite(values)
    columns["n_nonfinite_scores"] = pa.array(_per_row(score_rows[~finite], n))
    comparable = (score_rows[1:] == score_rows[:-1]) & finite[1:] & finite[:-1]
    increases = score_rows[1:][comparable & (values[1:] > values[:-1])]
    columns["scores_sorted"] = pa.array(_per_row(increases, n) == 0)
    return columns


def _embedding_columns(rows: pa.Table, facts: _OutputFacts, by_user: bool) -> dict[str, pa.Array]:
    """Derived check columns of an embedding partition (see :data:`OUTPUT_CHECK_COLUMNS`)."""
    n = rows.num_rows
    values, value_rows, dims = _flatten(rows.column(EMBEDDING))
    v = values.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN
    columns: dict[str, pa.Array] = {}
    if by_user and facts.active_users is not None:
        columns["is_active_user"] = pc.is_in(
            rows.column(USER_ID).combine_chunks(), value_set=facts.active_users
        )
    columns["embedding_dim"] = pa.array(dims)
    n_nonfinite = _per_row(value_rows[~np.isfinite(v)], n)
    columns["n_nonfinite_values"] = pa.array(n_nonfinite)
    norm = np.sqrt(np.bincount(value_rows, weights=np.where(np.isfinite(v), v * v, 0.0), minlength=n))
    columns["embedding_norm"] = pa.array(norm, mask=n_nonfinite > 0)
    return columns


def _derived_expectations(
    columns: Mapping[str, pa.Array], date: str, facts: _OutputFacts, table: Table
) -> list[Expectation]:
    """GX expectations over the derived columns present in ``columns`` and over ``model_version``."""
    import great_expectations.expectations as gxe

    between = gxe.ExpectColumnValuesToBeBetween
    low_norm, high_norm = 1 - UNIT_NORM_TOLERANCE, 1 + UNIT_NORM_TOLERANCE
    norm_rule = f"unit vector: L2 norm within [{low_norm:g}, {high_norm:g}]"
    if table.name == VIDEO_EMBEDDINGS.name:
        high_norm = MAX_VIDEO_EMBEDDING_NORM
        norm_rule = f"bounded vector: L2 norm within [{low_norm:g}, {high_norm:g}]"
    rules: dict[str, Expectation] = {
        "is_active_user": gxe.ExpectColumnValuesToBeInSet(
            column="is_active_user",
            value_set=[True],
            description=f"user_id is an active user of dt={date} (has a row in silver.user_features)",
        ),
        "n_items": between(
            column="n_items", min_value=1, description="every list is non-empty (n_items >= 1)"
        ),
        "n_scores": gxe.ExpectColumnPairValuesToBeEqual(
            column_A="n_items",
            column_B="n_scores",
            description="one score per video: len(video_ids) == len(scores)",
        ),
        "n_null_items": between(column="n_null_items", max_value=0, description="no null video id in a list"),
        "n_duplicate_items": between(
            column="n_duplicate_items",
            max_value=0,
            description="no duplicate video id within a list",
            meta={"show": ["duplicate_items"]},
        ),
        "n_watched_items": between(
            column="n_watched_items",
            max_value=0,
            description=f"no video the user already watched (a view event up to dt={date})",
            meta={"show": ["watched_items"]},
        ),
        "n_nonfinite_scores": between(
            column="n_nonfinite_scores",
            max_value=0,
            description="every score is finite (no NaN, inf or null)",
        ),
        "scores_sorted": gxe.ExpectColumnValuesToBeInSet(
            column="scores_sorted", value_set=[True], description="scores sorted best first (non-increasing)"
        ),
        "embedding_dim": between(column="embedding_dim", min_value=1, description="embedding is non-empty"),
        "n_nonfinite_values": between(
            column="n_nonfinite_values",
            max_value=0,
            description="every embedding value is finite (no NaN, inf or null)",
        ),
        "embedding_norm": between(
            column="embedding_norm",
            min_value=low_norm,
            max_value=high_norm,
            description=norm_rule,
        ),
    }
    expectations = [rules[name] for name in columns if name in rules]
    if "embedding_dim" in columns and facts.embedding_dim is not None:
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="embedding_dim",
                value_set=[facts.embedding_dim],
                description=(
                    f"one embedding dimension, {facts.embedding_dim} (the most common over "
                    f"user_embeddings and video_embeddings of dt={date})"
                ),
            )
        )
    if facts.model_version is not None:
        seen = "; ".join(
            f"{name}: {versions[:SAMPLE_ROWS]}" for name, versions in facts.model_versions.items()
        )
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=MODEL_VERSION,
                value_set=[facts.model_version],
                description=(
                    f"one model_version across the gold outputs of dt={date}: {facts.model_version!r} "
                    f"(most common in gold.{next(iter(facts.model_versions))}); seen {seen}"
                ),
            )
        )
    return expectations


def _coverage(table: Table, rows: pa.Table, facts: _OutputFacts) -> pa.Table | None:
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


@dataclass
class _Batch:
    """One frame GX validates for a table's report, with the expectations that run on it."""

    suffix: str  # of the GX validation name: "" for the partition, ".coverage" for a coverage frame
    rows: pa.Table
    expectations: list[Expectation]


def _output_checks(
    table: Table, rows: pa.Table, date: str, facts: _OutputFacts
) -> tuple[list[_Batch], list[dict[str, Any]]]:
    """What suite "outputs" runs for one gold partition: GX batches, and reference facts it lacks."""
    unavailable = [
        facts.unavailable[t.name] for t in _OUTPUT_REFERENCES[table.name] if t.name in facts.unavailable
    ]
    if set(rows.column_names) != set(table.columns):  # derived columns need exactly the catalog's
        return [_Batch("", rows, outputs_expectations(table, date))], unavailable
    if table.name == CANDIDATES.name:
        derived = _candidate_columns(rows, facts)
    else:
        derived = _embedding_columns(rows, facts, by_user=table.name == USER_EMBEDDINGS.name)
    frame = rows
    for name, column in derived.items():
        frame = frame.append_column(name, column)
    expectations = (
        _catalog_expectations(table, date, None, None, derived_columns=list(derived))
        + _rule_expectations(OUTPUT_RULES[table.name], date)
        + _derived_expectations(derived, date, facts, table)
    )
    batches = [_Batch("", frame, expectations)]
    coverage = _coverage(table, rows, facts)
    if coverage is not None:
        flag = coverage.column_names[1]
        batches.append(_Batch(".coverage", coverage, [_coverage_expectation(table, flag, date)]))
    return batches, unavailable


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


def _absent_entry(expectation: str, rule: str, reason: str) -> dict[str, Any]:
    """A failed report entry for data that is not there at all (nothing for GX to look at)."""
    return {"expectation": expectation, "column": None, "rule": rule, "observed": reason, "sample_rows": []}


def _missing_report(suite: str, table: Table, date: str, reason: str) -> ValidationReport:
    return ValidationReport(
        suite=suite,
        table=table.name,
        date=date,
        success=False,
        evaluated=1,
        failed=[
            _absent_entry(
                "partition_present",
                f"table {table.layer}.{table.name} has rows in partition dt={date}",
                reason,
            )
        ],
    )


def _validate(
    runner: _Runner | None,
    suite: str,
    table: Table,
    date: str,
    settings: Settings,
    volume_factor: float | None,
    facts: _OutputFacts | None = None,
) -> tuple[ValidationReport, _Runner | None]:
    """Validate one partition; ``facts`` (suite "outputs" only) are the cross-table facts of ``date``."""
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
        failed: list[dict[str, Any]] = []
        if facts is None:
            rows = _read_partition(table, settings, date)
            previous_rows = lake.partition_row_count(table, settings, add_days(date, -1))
            batches = [_Batch("", rows, build(table, date, previous_rows, volume_factor))]
        else:
            rows = facts.partitions.get(table.name)
            if rows is None:  # written after the facts were loaded
                rows = _read_partition(table, settings, date)
            batches, failed = _output_checks(table, rows, date, facts)
        evaluated = len(failed)
        runner = runner or _Runner()
        for batch in batches:
            name = f"{suite}.{table.name}.{date}{batch.suffix}"
            result = runner.run(name, batch.expectations, batch.rows.to_pandas())
            evaluated += len(result.results)
            failed += [_failure(o, batch.rows, table) for o in result.results if not o.success]
            outcomes += [
                {
                    "expectation": o.expectation_config.type,
                    "kwargs": _jsonable(
                        {k: v for k, v in o.expectation_config.kwargs.items() if k != _BATCH}
                    ),
                    "success": bool(o.success),
                }
                for o in result.results
                if o.expectation_config is not None
            ]
        report = ValidationReport(
            suite=suite, table=table.name, date=date, success=not failed, evaluated=evaluated, failed=failed
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
    facts = _load_output_facts(date, settings) if suite == OUTPUTS else None
    report, _ = _validate(None, suite, table, date, settings, volume_factor, facts)
    return report


def validate_suite(
    suite: str,
    date: str,
    settings: Settings,
    volume_factor: float | None = DEFAULT_VOLUME_FACTOR,
) -> list[ValidationReport]:
    """Validate every table of ``suite`` for ``date`` with one GX context; one report per table."""
    tables, _ = _suite(suite)
    facts = _load_output_facts(date, settings) if suite == OUTPUTS else None
    runner: _Runner | None = None
    reports = []
    for table in tables:
        report, runner = _validate(runner, suite, table, date, settings, volume_factor, facts)
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
