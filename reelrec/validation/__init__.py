"""Data validation with Great Expectations: the "bronze", "features" and "outputs" suites.

A suite is data. For every table it names, a suite builds a list of GX expectations for one logical
date ``D`` from three sources:

* the table catalog (:mod:`reelrec.catalog`): the exact column set, non-null columns, unique key;
* the per-table value rules of each layer (:data:`BRONZE_RULES`, :data:`FEATURE_RULES`,
  :data:`OUTPUT_RULES`): time inside the day, value ranges, windowed counts that never shrink as
  the window grows, categorical sets;
* volume: the ``dt=D`` partition is never empty, and (bronze and silver tables) when ``dt=D-1``
  exists its row count stays within ``[1/f, f]`` times the previous day's (``f`` =
  ``volume_factor``, 2 by default).

Suite "outputs" guards the gold model outputs of ``D`` (candidates, user and video embeddings)
before they are published. Its rules look inside list columns and across tables, so it first adds
*derived check columns* (:data:`OUTPUT_CHECK_COLUMNS`) to a copy of the partition and then runs
ordinary GX expectations over them, plus a *coverage* frame per table.

Time (:mod:`reelrec.dates`): ``D`` covers ``[D 00:00, D+1 00:00)`` UTC; a feature row of ``D``
carries ``event_timestamp == D 23:59:59`` UTC (:func:`reelrec.dates.feature_timestamp`).

Usage (what the Airflow tasks call)::

    check("bronze", "2026-11-01", settings)   # raises ValidationError naming table, rule, rows

Every table's outcome, with the Delta version of every table it read, is also written as JSON to
:func:`report_path` (``runs/dt=D/validation/<suite>.<table>.json``), and every suite run is rendered
in GX's Data Docs site (``runs/data_docs/index.html``).

The package, one module per job:

* :mod:`~reelrec.validation.rules`: :class:`Rules` and how rules become expectations;
* :mod:`~reelrec.validation.bronze`, :mod:`~reelrec.validation.features`,
  :mod:`~reelrec.validation.outputs`: the suite of each layer (with
  :mod:`~reelrec.validation.output_facts` and :mod:`~reelrec.validation.output_columns`);
* :mod:`~reelrec.validation.suites`: the registry and :func:`expectations`;
* :mod:`~reelrec.validation.runner` and :mod:`~reelrec.validation.failures`: running GX and
  turning its results into report entries;
* :mod:`~reelrec.validation.report`: :class:`ValidationReport`, where reports live, reading them;
* :mod:`~reelrec.validation.validate`: validating tables and suites, :func:`check`, :func:`gate`;
* :mod:`~reelrec.validation.data_docs` (with :mod:`~reelrec.validation.gx_views`): every suite
  run rendered by GX's own Data Docs site under ``runs/data_docs/``, linked from a failed gate's
  message and from the nightly report.

``great_expectations`` is imported lazily, so importing this package stays cheap.
"""

from reelrec.validation.bronze import BRONZE, BRONZE_RULES
from reelrec.validation.features import FEATURE_RULES, FEATURES
from reelrec.validation.output_columns import OUTPUT_CHECK_COLUMNS
from reelrec.validation.outputs import OUTPUT_RULES, OUTPUTS
from reelrec.validation.report import (
    SAMPLE_ROWS,
    ValidationError,
    ValidationReport,
    read_report,
    read_reports,
    report_path,
    reports_dir,
)
from reelrec.validation.rules import DEFAULT_VOLUME_FACTOR, Rules
from reelrec.validation.suites import SUITES, Suite, expectations, suite_of, suite_tables
from reelrec.validation.validate import check, gate, validate_suite, validate_table

__all__ = [
    "BRONZE",
    "BRONZE_RULES",
    "DEFAULT_VOLUME_FACTOR",
    "FEATURES",
    "FEATURE_RULES",
    "OUTPUTS",
    "OUTPUT_CHECK_COLUMNS",
    "OUTPUT_RULES",
    "SAMPLE_ROWS",
    "SUITES",
    "Rules",
    "Suite",
    "ValidationError",
    "ValidationReport",
    "check",
    "expectations",
    "gate",
    "read_report",
    "read_reports",
    "report_path",
    "reports_dir",
    "suite_of",
    "suite_tables",
    "validate_suite",
    "validate_table",
]
