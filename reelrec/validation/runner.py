"""Running expectations with Great Expectations: one ephemeral context per suite run.

A :class:`Batch` is one Arrow frame with the expectations to run on it; :meth:`Runner.run_batches`
validates the batches of one table and returns what a report needs (how many expectations ran,
the failures with their offending rows, every expectation's outcome). ``great_expectations`` is
imported when the first runner is made, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from reelrec.catalog import Table
from reelrec.validation.failures import failure_entry, outcome_entry
from reelrec.validation.report import SAMPLE_ROWS

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.expectations.expectation import Expectation


@dataclass
class Batch:
    """One frame GX validates for a table's report, with the expectations that run on it."""

    suffix: str  # of the GX validation name: "" for the partition, ".coverage" for a coverage frame
    rows: pa.Table
    expectations: list[Expectation]


@dataclass
class BatchOutcome:
    """What the batches of one table gave: expectations run, failure entries, every outcome."""

    evaluated: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)


class Runner:
    """One ephemeral GX context with one pandas batch definition, shared by a suite's tables.

    Every run's suite and result are kept in :attr:`validated` until the Data Docs take them
    (:func:`reelrec.validation.data_docs.publish`).
    """

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self.context.data_sources.add_pandas("reelrec_lake").add_dataframe_asset("partition")
        self.batch = asset.add_batch_definition_whole_dataframe("whole_partition")
        self.validated: list[tuple[ExpectationSuite, ExpectationSuiteValidationResult]] = []

    def run(self, name: str, expectations: list[Expectation], frame: Any) -> Any:
        """Validate the pandas ``frame`` against ``expectations`` as suite ``name``; GX's result."""
        suite = self.context.suites.add(self._gx.ExpectationSuite(name=name, expectations=expectations))
        definition = self.context.validation_definitions.add(
            self._gx.ValidationDefinition(name=name, data=self.batch, suite=suite)
        )
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_ROWS},
        )
        self.validated.append((suite, result))
        return result

    def run_batches(self, name: str, table: Table, batches: Sequence[Batch]) -> BatchOutcome:
        """Validate each batch as ``name + batch.suffix`` and gather the table's outcome."""
        gathered = BatchOutcome()
        for batch in batches:
            result = self.run(f"{name}{batch.suffix}", batch.expectations, batch.rows.to_pandas())
            gathered.evaluated += len(result.results)
            gathered.failed += [failure_entry(o, batch.rows, table) for o in result.results if not o.success]
            gathered.outcomes += [e for o in result.results if (e := outcome_entry(o)) is not None]
        return gathered
