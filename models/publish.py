"""Publish night D's content embeddings and model outputs to the Feast online store.

``publish_outputs`` refuses to publish unless the "outputs" suite passed for D on exactly the rows
that are in the gold tables now (its reports are read back and the table versions compared), so
bad candidates never reach serving. Publishing is Feast materialization of the ``outputs`` view
group (:func:`reelrec.feast_store.materialize`); the previous nights stay in the gold Delta tables,
so rolling back is republishing an earlier date's partition (``python -m models.publish --date D``
after the newer night's online values are cleared) or Delta time travel.
"""

from __future__ import annotations

import json
from typing import Any

from reelrec import feast_store, lake
from reelrec.catalog import CANDIDATES, GOLD_TABLES, MODEL_VERSION
from reelrec.errors import DataError
from reelrec.jobs import run_job
from reelrec.settings import Settings


class NotValidatedError(DataError):
    """The model outputs of D have not passed the "outputs" suite; nothing is published."""


def _require_outputs_validated(date: str, settings: Settings) -> None:
    folder = settings.run_dir(date) / "validation"
    for table in GOLD_TABLES:
        path = folder / f"outputs.{table.name}.json"
        if not path.exists():
            raise NotValidatedError(
                f"publish dt={date}: no outputs-suite report for {table.layer}.{table.name} ({path}); "
                f"run `reelrec validate --suite outputs --date {date}` (the DAG task validate_outputs) first"
            )
        report = json.loads(path.read_text())
        if not report.get("success"):
            raise NotValidatedError(
                f"publish dt={date}: {table.layer}.{table.name} failed the outputs suite ({path}); "
                "nothing was published"
            )
        if path.stat().st_mtime < lake.open_table(table, settings).history(1)[0]["timestamp"] / 1000:
            raise NotValidatedError(
                f"publish dt={date}: {table.layer}.{table.name} was rewritten after it was validated; "
                "validate it again before publishing"
            )


def publish_content(date: str, settings: Settings) -> dict[str, Any]:
    """Materialize the content embeddings first encoded on D (skipped when D brought none)."""
    return feast_store.materialize(date, settings, group="content")


def publish_outputs(date: str, settings: Settings) -> dict[str, Any]:
    """Materialize D's validated candidates and embeddings into the online store.

    Raises:
        NotValidatedError: when the outputs suite did not pass on the current gold rows of D.
    """
    _require_outputs_validated(date, settings)
    report = feast_store.materialize(date, settings, group="outputs")
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
