"""Great Expectations Data Docs: every suite's results rendered by GX's own site builder.

The JSON reports (:mod:`reelrec.validation.report`) are what code reads; the Data Docs are what a
person opens. After each suite run (:func:`~reelrec.validation.validate.validate_suite`, which the
gates call; one table validated alone is not published), :func:`publish` copies the GX objects of
that run, each expectation suite and its ``ExpectationSuiteValidationResult``, into two filesystem
stores under ``runs/gx/`` and rebuilds GX's filesystem site ``runs/data_docs/`` from them
(``SiteBuilder`` with a ``TupleFilesystemStoreBackend``): the index lists every night's validations,
one page per validated table and night. A table GX never looked at (the Delta table is missing or
its partition is empty) gets a real GX validation too: the row-count rule on an empty frame with the
table's columns, so a missing partition shows as a failed page rather than as no page.

Pages are keyed by the night, not by the wall clock: a validation of ``D`` is stored under run
``dt=D`` at ``D 00:00`` UTC, so rerunning a night replaces its pages instead of adding new ones.
The site's layout is GX's: ``validations/<suite>/<table>/<D>/dt=<D>/<run time>/<batch>.html``
(:func:`validation_pages` finds them without importing GX). GX's page templates load Bootstrap and
jQuery from public CDNs: without a network a table's page shows unstyled with all its content, but
the index's list of validations is drawn by a CDN script and stays empty, which is why the nightly
report and a failed gate's message link each table's page directly.

The site is a view: a failure to render it is logged and never changes a suite's verdict.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from reelrec.catalog import Table
from reelrec.settings import Settings

if TYPE_CHECKING:
    from reelrec.validation.runner import Runner

log = logging.getLogger(__name__)

DATA_DOCS_FOLDER = "data_docs"
"""Folder of ``runs/`` holding the GX Data Docs site (``index.html`` at its top)."""

GX_STORE_FOLDER = "gx"
"""Folder of ``runs/`` holding the GX stores the site is built from (suites and results as JSON)."""

SITE_NAME = "reelrec"
BATCH_ID = "partition"  # the batch identifier of every stored validation (one frame per GX run)


def data_docs_dir(settings: Settings) -> Path:
    """The Data Docs site: ``runs/data_docs``."""
    return settings.runs / DATA_DOCS_FOLDER


def data_docs_index(settings: Settings) -> Path:
    """The site's home page (it exists once any suite ran)."""
    return data_docs_dir(settings) / "index.html"


def validation_pages(date: str, settings: Settings) -> dict[str, Path]:
    """The Data Docs page of each table validated for night ``date``, keyed ``"<suite>.<table>"``.

    Only the partition's page is listed (a coverage frame's page sits one folder deeper and is
    linked from the index).
    """
    root = data_docs_dir(settings) / "validations"
    pages: dict[str, Path] = {}
    for page in sorted(root.glob(f"*/*/{date}/dt={date}/*/*.html")):
        suite, table = page.relative_to(root).parts[:2]
        pages[f"{suite}.{table}"] = page
    return pages


def _night_run_id(date: str) -> Any:
    from great_expectations.core.run_identifier import RunIdentifier

    midnight = dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC)
    return RunIdentifier(run_name=f"dt={date}", run_time=midnight)


def _view(class_name: str) -> dict[str, str]:
    return {"module_name": "reelrec.validation.gx_views", "class_name": class_name}


def _docs_context(settings: Settings) -> Any:
    """An ephemeral GX context whose suite and result stores and Data Docs site live under runs/."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig

    def on_disk(folder: Path) -> dict[str, str]:
        return {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)}

    def in_memory() -> dict[str, str]:
        return {"class_name": "InMemoryStoreBackend"}

    store = settings.runs / GX_STORE_FOLDER
    config = DataContextConfig(
        stores={
            "expectations_store": {
                "class_name": "ExpectationsStore",
                "store_backend": on_disk(store / "expectations"),
            },
            "validation_results_store": {
                "class_name": "ValidationResultsStore",
                "store_backend": on_disk(store / "validations"),
            },
            "validation_definition_store": {
                "class_name": "ValidationDefinitionStore",
                "store_backend": in_memory(),
            },
            "checkpoint_store": {"class_name": "CheckpointStore", "store_backend": in_memory()},
        },
        expectations_store_name="expectations_store",
        validation_results_store_name="validation_results_store",
        checkpoint_store_name="checkpoint_store",
        data_docs_sites={
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": on_disk(data_docs_dir(settings)),
                # GX's views with their templates compiled once per process (gx_views)
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "view": _view("CachedIndexPageView"),
                },
                "site_section_builders": {
                    "expectations": {"view": _view("CachedPageView")},
                    "validations": {"view": _view("CachedPageView")},
                },
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def validate_absent(runner: Runner, name: str, table: Table, allowed_empty: bool) -> None:
    """Let GX see a partition that is not there: the row-count rule on an empty frame of ``table``."""
    import great_expectations as gx

    rule = gx.expectations.ExpectTableRowCountToBeBetween(
        min_value=0 if allowed_empty else 1,
        meta={"notes": f"no rows of {table.layer}.{table.name} for this night (missing table or partition)"},
    )
    empty = pa.table({c: pa.array([], pa.string()) for c in table.columns})
    runner.run(name, [rule], empty.to_pandas())


def publish(runner: Runner, date: str, settings: Settings) -> dict[str, Path]:
    """Store ``runner``'s validations of night ``date`` and rebuild the Data Docs site.

    Returns:
        :func:`validation_pages` of ``date`` after the build (empty if the build failed: logged).
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    try:
        docs = _docs_context(settings)
        run_id = _night_run_id(date)
        changed: list[Any] = []
        for suite, result in runner.validated:
            suite_id = ExpectationSuiteIdentifier(name=suite.name)
            result_id = ValidationResultIdentifier(
                expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=BATCH_ID
            )
            result.meta["run_id"] = run_id
            docs.expectations_store.set(suite_id, suite)
            docs.validation_results_store.set(result_id, result)
            changed += [suite_id, result_id]
        runner.validated.clear()
        docs.build_data_docs(site_names=[SITE_NAME], resource_identifiers=changed)
    except Exception as err:  # the site is a view; the JSON reports and the verdict stand
        log.warning(
            "Data Docs for dt=%s not built in %s: %s", date, data_docs_dir(settings), err, exc_info=True
        )
        return {}
    return validation_pages(date, settings)


def docs_lines(date: str, settings: Settings, tables: Sequence[tuple[str, str]]) -> list[str]:
    """Lines of a failure message pointing at the Data Docs pages of ``(suite, table)`` pairs."""
    pages = validation_pages(date, settings)
    lines = [f"Data Docs: {data_docs_index(settings)}"] if data_docs_index(settings).exists() else []
    for suite, table in tables:
        if (page := pages.get(f"{suite}.{table}")) is not None:
            lines.append(f"  {suite}.{table}: {page}")
    return lines
