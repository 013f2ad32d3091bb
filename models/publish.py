"""Publish night D's content embeddings and model outputs to the Feast online store.

``publish_outputs`` refuses to publish unless the "outputs" suite passed for D on exactly the rows
that are in the gold tables now (its reports are read back and the table versions compared), so
bad candidates never reach serving. Publishing is Feast materialization of the ``outputs`` view
group (:func:`feature_repo.materialize.materialize`), after which the night's release (the
models behind the lists, their metrics and the gate's decision) is recorded and made the serving
one (:mod:`reelrec.releases`). A held night publishes nothing
(:func:`models.promotion.require_promoted`). The previous nights stay in the gold Delta tables:
``reelrec rollback --to VERSION`` republishes an earlier release from them (:mod:`reelrec.rollback`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from feature_repo.materialize import materialize
from models.promotion import require_promoted
from models.score import RELEASE_FILE
from reelrec import faults, lake, releases
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
    require_promoted(date, settings)  # a held rerun must not republish an earlier run's validated rows
    report = materialize(date, settings, group="outputs")
    faults.point("publish.outputs", settings, date=date)  # online values written, task not done yet
    versions = lake.read(CANDIDATES, settings, dates=[date], columns=[MODEL_VERSION]).column(0).unique()
    report[MODEL_VERSION] = versions.to_pylist()[0] if len(versions) else None
    # A backfill older than what is online writes nothing (every view skipped by its watermark):
    # its release is recorded, but the serving pointer stays on the release the store serves.
    online = any(view["status"] == "materialized" for view in report["views"].values())
    report["serving"] = register_release(date, settings, make_serving=online)
    return report


def register_release(date: str, settings: Settings, make_serving: bool = True) -> dict[str, Any]:
    """Record night D's release (``runs/dt=D/release.json`` + its metrics) and make it the serving one.

    With ``make_serving`` false (a backfilled night the online store is already newer than) the
    release is recorded and the serving pointer is left where it is.

    Raises:
        NotValidatedError: when score wrote no release for D.
    """
    path = settings.run_dir(date) / RELEASE_FILE
    if not path.exists():
        raise NotValidatedError(
            f"publish dt={date}: no release at {path}; run `python -m models.score --date {date}`"
        )
    body = json.loads(path.read_text())
    metrics_path = settings.run_dir(date) / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    gate = body.get("gate") or {}
    release = releases.Release(
        version=body["version"],
        night=date,
        components=body["components"],
        metrics=dict((metrics.get("retrieval") or {}).get("final", {})),
        gate=gate,
        published_at=datetime.now(UTC).isoformat(),
        forced=bool(gate.get("forced")),
    )
    releases.record_release(settings, release)
    if make_serving:
        releases.set_serving(settings, release.version, reason="forced" if release.forced else "publish")
    return {"version": release.version, "forced": release.forced, "serving": make_serving}


def main(date: str, settings: Settings) -> dict[str, Any]:
    """``python -m models.publish --date D``: publish D's validated outputs."""
    return publish_outputs(date, settings)


if __name__ == "__main__":
    raise SystemExit(
        run_job(main, "Publish night D's validated candidates and embeddings to the online store.")
    )
