"""Validating partitions: one table or a whole suite, reports written, and the gate tasks call.

Every table's outcome is written as a :class:`~reelrec.validation.report.ValidationReport` (see
:func:`~reelrec.validation.report.report_path`); a missing table or an empty partition is a
failed report, not an exception. :func:`check` and :func:`gate` turn failed reports into a
:class:`~reelrec.validation.report.ValidationError` naming tables, rules and rows, and pointing at
the tables' pages in GX's Data Docs site (:mod:`~reelrec.validation.data_docs`), rebuilt after every
suite run.
"""

from __future__ import annotations

import logging
from typing import Any

from reelrec import lake
from reelrec.catalog import Table
from reelrec.dates import add_days
from reelrec.settings import Settings
from reelrec.validation.data_docs import docs_lines, publish, validate_absent
from reelrec.validation.failures import absent_entry
from reelrec.validation.output_facts import OutputFacts, load_output_facts
from reelrec.validation.outputs import OUTPUTS, checked_versions, output_checks
from reelrec.validation.partition import read_partition
from reelrec.validation.report import ValidationError, ValidationReport, write_report
from reelrec.validation.rules import DEFAULT_VOLUME_FACTOR
from reelrec.validation.runner import Batch, BatchOutcome, Runner
from reelrec.validation.suites import expectations, get_suite, suite_of, suite_table, suite_tables

log = logging.getLogger(__name__)


def _missing_report(
    suite: str, table: Table, date: str, reason: str, versions: dict[str, int | None]
) -> ValidationReport:
    return ValidationReport(
        suite=suite,
        table=table.name,
        date=date,
        success=False,
        evaluated=1,
        failed=[
            absent_entry(
                "partition_present",
                f"table {table.layer}.{table.name} has rows in partition dt={date}",
                reason,
            )
        ],
        versions=versions,
    )


def _batches(
    table: Table,
    date: str,
    settings: Settings,
    volume_factor: float | None,
    facts: OutputFacts | None,
) -> tuple[list[Batch], list[dict[str, Any]], dict[str, int | None]]:
    """The GX batches of one non-empty partition, failures found before GX, and the versions read."""
    if facts is None:
        rows, version = read_partition(table, settings, date)
        previous_rows = lake.partition_row_count(table, settings, add_days(date, -1))
        return (
            [Batch("", rows, expectations(table, date, previous_rows, volume_factor))],
            [],
            {table.name: version},
        )
    versions = checked_versions(table, facts)
    rows = facts.partitions.get(table.name)
    if rows is None:  # written after the facts were loaded
        rows, versions[table.name] = read_partition(table, settings, date)
    batches, unavailable = output_checks(table, rows, date, facts)
    return batches, unavailable, versions


def _validate(
    runner: Runner | None,
    suite: str,
    table: Table,
    date: str,
    settings: Settings,
    volume_factor: float | None,
    facts: OutputFacts | None = None,
) -> tuple[ValidationReport, Runner | None]:
    """Validate one partition; ``facts`` (suite "outputs" only) are the cross-table facts of ``date``."""
    if table not in get_suite(suite).tables:
        raise KeyError(f"table {table.name!r} is not part of suite {suite!r}: {suite_tables(suite)}")
    outcome = BatchOutcome()
    versions = {
        **(checked_versions(table, facts) if facts else {}),
        table.name: lake.version(table, settings),
    }
    if versions[table.name] is None:
        reason = f"Delta table does not exist at {table.path(settings)}"
        report = _missing_report(suite, table, date, reason, versions)
    elif lake.partition_row_count(table, settings, date) == 0:
        if get_suite(suite).rules[table.name].may_be_empty:
            report = ValidationReport(
                suite=suite, table=table.name, date=date, success=True, evaluated=0, versions=versions
            )
        else:
            reason = f"partition dt={date} is missing or empty in {table.path(settings)}"
            report = _missing_report(suite, table, date, reason, versions)
    else:
        batches, unavailable, versions = _batches(table, date, settings, volume_factor, facts)
        runner = runner or Runner()
        outcome = runner.run_batches(f"{suite}.{table.name}.{date}", table, batches)
        failed = unavailable + outcome.failed
        report = ValidationReport(
            suite=suite,
            table=table.name,
            date=date,
            success=not failed,
            evaluated=len(unavailable) + outcome.evaluated,
            failed=failed,
            versions=versions,
        )
    report.path = write_report(report, settings, outcome.outcomes)
    log.info("%s", report.describe())
    return report, runner


def _unseen_by_gx(report: ValidationReport) -> bool:
    """Whether GX never looked at the partition (missing table, missing or empty partition)."""
    return report.evaluated == 0 or [f["expectation"] for f in report.failed] == ["partition_present"]


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
        The report, also written to :func:`~reelrec.validation.report.report_path`. One table alone
        is not a suite run: the Data Docs keep the table's page of the last :func:`validate_suite`.
    """
    suite = suite or suite_of(table_name)
    table = suite_table(suite, table_name)
    facts = load_output_facts(date, settings) if suite == OUTPUTS else None
    report, _ = _validate(None, suite, table, date, settings, volume_factor, facts)
    return report


def validate_suite(
    suite: str,
    date: str,
    settings: Settings,
    volume_factor: float | None = DEFAULT_VOLUME_FACTOR,
) -> list[ValidationReport]:
    """Validate every table of ``suite`` for ``date`` with one GX context; one report per table.

    The Data Docs site (:func:`~reelrec.validation.data_docs.publish`) is rebuilt with the results.
    """
    tables = get_suite(suite).tables
    facts = load_output_facts(date, settings) if suite == OUTPUTS else None
    runner: Runner | None = None
    reports = []
    for table in tables:
        report, runner = _validate(runner, suite, table, date, settings, volume_factor, facts)
        reports.append(report)
        if _unseen_by_gx(report):  # let GX see the absence too, so the Data Docs show the table
            runner = runner or Runner()
            validate_absent(runner, f"{suite}.{table.name}.{date}", table, allowed_empty=report.success)
    if runner is not None:
        publish(runner, date, settings)
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
            its column and up to :data:`~reelrec.validation.report.SAMPLE_ROWS` offending rows,
            then the Data Docs site and each failing table's page in it.
    """
    reports = validate_suite(suite, date, settings, volume_factor)
    bad = [r for r in reports if not r.success]
    if bad:
        head = (
            f"validation suite {suite!r} failed for dt={date}: "
            f"{len(bad)} of {len(reports)} table(s) failed ({', '.join(r.table for r in bad)})"
        )
        docs = docs_lines(date, settings, [(suite, r.table) for r in bad])
        raise ValidationError("\n".join([head, *(r.describe() for r in bad), *docs]), reports)
    return reports


def gate(suite: str, date: str, settings: Settings) -> dict[str, Any]:
    """:func:`check`, returning a small JSON-able summary (what the nightly DAG's gate tasks return)."""
    reports = check(suite, date, settings)
    return {
        "suite": suite,
        "tables": {r.table: {"success": r.success, "expectations": r.evaluated} for r in reports},
    }
