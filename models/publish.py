"""Publish night D's content embeddings and model outputs to the Feast online store.

``publish_outputs`` refuses to publish unless the "outputs" suite passed for D on exactly the rows
that are in the gold tables now (its reports are read back and the table versions compared), so
bad candidates never reach serving. Publishing is Feast materialization of the ``outputs`` view
group (:func:`feature_repo.materialize.materialize`); the previous nights stay in the gold Delta tables,
so rolling back is republishing an earlier date's partition (``python -m models.publish --date D``
after the newer night's online values are cleared) or Delta time travel.
"""

from __future__ import annotations

from typing import Any

from feature_repo.materialize import materialize
from reelrec import faults, lake
from reelrec.catalog import CANDIDATES, GOLD_TABLES, MODEL_VERSION
from reelrec.errors import DataError
from reelrec.jobs import run_job
from reelrec.settings import Settings
from reelrec.validation import OUTPUTS, read_report, report_path


class NotValidatedError(DataError):
    """The model outputs of D have not passed the "outputs" suite; nothing is published."""


def require_outputs_validated(date: str, settings: Settings) -> None:
    """Refuse unless every gold table of ``date`` passed the "outputs" suite as it is now.

    "As it is now": each passing report records the Delta version of every table it read, and
    every gold table's version recorded there must equal its current version. A gold table written
    since (tonight's rerun, or another night's partition) makes the reports stale: validate again.

    Raises:
        NotValidatedError: naming the gold table, the date and what to run.
    """
    current = {table.name: lake.version(table, settings) for table in GOLD_TABLES}
    for table in GOLD_TABLES:
        report = read_report(OUTPUTS, table.name, date, settings)
        if report is None:
            raise NotValidatedError(
                f"publish dt={date}: no outputs-suite report for {table.layer}.{table.name} "
                f"({report_path(OUTPUTS, table.name, date, settings)}); run "
                f"`reelrec validate --suite outputs --date {date}` (the DAG task validate_outputs) first"
            )
        if not report.success:
            raise NotValidatedError(
                f"publish dt={date}: {table.layer}.{table.name} failed the outputs suite ({report.path}); "
                "nothing was published"
            )
        validated = {name: report.versions.get(name) for name in current if name in report.versions}
        validated.setdefault(table.name, None)  # a report without its own table's version proves nothing
        for name, version in validated.items():
            if version != current[name]:
                raise NotValidatedError(
                    f"publish dt={date}: gold.{name} was rewritten after it was validated (the "
                    f"outputs report of gold.{table.name}, {report.path}, checked Delta version "
                    f"{version}, the table is at version {current[name]}); validate it again before "
                    "publishing"
                )


def publish_content(date: str, settings: Settings) -> dict[str, Any]:
    """Materialize the content embeddings first encoded on D (skipped when D brought none)."""
    return materialize(date, settings, group="content")


def publish_outputs(date: str, settings: Settings) -> dict[str, Any]:
    """Materialize D's validated candidates and embeddings into the online store.

    Raises:
        NotValidatedError: when the outputs suite did not pass on the current gold rows of D.
    """
    require_outputs_validated(date, settings)
    report = materialize(date, settings, group="outputs")
    faults.point("publish.outputs", settings, date=date)  # online values written, task not done yet
    versions = lake.read(CANDIDATES, settings, dates=[date], columns=[MODEL_VERSION]).column(0).unique()
    report[MODEL_VERSION] = versions.to_pylist()[0] if len(versions) else None
    return report


def main(date: str, settings: Settings) -> dict[str, Any]:
    """``python -m models.publish --date D``: publish D's validated outputs."""
    return publish_outputs(date, settings)


if __name__ == "__main__":
    raise SystemExit(
        run_job(main, "Publish night D's validated candidates and embeddings to the online store.")
    )
