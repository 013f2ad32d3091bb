"""The promotion gate of night D, and the release name of what a night publishes.

A *release* is what one night publishes: the final lists, embeddings and default list made by one
two-tower model and one ranker. Its name, the ``model_version`` of every gold row of that night,
is ``reelrec_v1-<D>-<8 hex>`` (a hash of the component versions), and
:mod:`reelrec.releases` keeps the registry and the serving pointer.

``gate(D)`` (the DAG task ``gate``, between ``evaluate`` and ``score``) reads night D's
``metrics.json``: the candidate release's final list and the serving release's final list, both
made for the same held-out day D by the same harness (:mod:`models.evaluate`), and the baselines
(:data:`BASELINES`: each a candidate source measured alone). :func:`models.gate.decide` applies
the rule; the decision is written to ``runs/dt=D/gate.json`` and returned as the task's facts.
:func:`require_promoted` is how the output tasks obey it: a held night raises
:class:`models.gate.HeldError` (a "nothing to do": Airflow marks them skipped, with the reason in
the log), so nothing is written and the serving release keeps serving.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from models.gate import GateConfig, HeldError, decide
from reelrec.errors import DataError
from reelrec.jobs import run_job
from reelrec.settings import Settings

GATE_FILE = "gate.json"
RELEASE_PREFIX = "reelrec_v1"
BASELINES = ("trending", "covisit", "ease")  # non-learned (or linear) lists the release must beat


class NotEvaluatedError(DataError):
    """Night D has no metrics (or no gate decision) to decide on."""


def release_version(date: str, components: dict[str, str]) -> str:
    """``reelrec_v1-D-<8 hex>``: the same components on the same night give the same name."""
    digest = hashlib.sha256(json.dumps(components, sort_keys=True).encode()).hexdigest()[:8]
    return f"{RELEASE_PREFIX}-{date}-{digest}"


def read_metrics(date: str, settings: Settings) -> dict[str, Any]:
    """Night D's evaluation (``runs/dt=D/metrics.json``).

    Raises:
        NotEvaluatedError: naming the file and the task that writes it.
    """
    path = settings.run_dir(date) / "metrics.json"
    if not path.exists():
        raise NotEvaluatedError(
            f"gate dt={date}: no evaluation at {path}; run `python -m models.evaluate --date {date}`"
        )
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def gate(date: str, force: bool, settings: Settings, cfg: GateConfig | None = None) -> dict[str, Any]:
    """Decide whether night D's release is published; write and return the decision."""
    metrics = read_metrics(date, settings)
    retrieval = metrics.get("retrieval", {})
    if "final" not in retrieval:
        raise NotEvaluatedError(
            f"gate dt={date}: metrics.json has no final-list metrics (stages: {sorted(retrieval)})"
        )
    serving = metrics.get("serving") or {}
    serving_final = (serving.get("retrieval") or {}).get("final")
    baselines = {name: retrieval[name] for name in BASELINES if name in retrieval}
    decision = decide(
        retrieval["final"],
        serving_final,
        baselines,
        cfg or GateConfig(),
        force=force,
        serving_version=serving.get("version"),
    )
    facts = {
        "date": date,
        "candidate_version": metrics.get("release", {}).get("version"),
        "serving_version": serving.get("version"),
        **asdict(decision),
    }
    path = settings.run_dir(date) / GATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(facts, indent=2))
    tmp.replace(path)
    return facts


def read_gate(date: str, settings: Settings) -> dict[str, Any] | None:
    """Night D's gate decision, or ``None`` when the gate has not run for D."""
    path = settings.run_dir(date) / GATE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def require_promoted(date: str, settings: Settings) -> dict[str, Any]:
    """The gate decision of D when it lets the night publish.

    Raises:
        NotEvaluatedError: when the gate has not run for D.
        HeldError: when the gate held the night (the output tasks are skipped).
    """
    decision = read_gate(date, settings)
    if decision is None:
        raise NotEvaluatedError(
            f"dt={date}: the promotion gate has not decided ({settings.run_dir(date) / GATE_FILE} is "
            f"missing); run `python -m models.promotion --date {date}` first"
        )
    if not decision["publish"]:
        raise HeldError(f"dt={date} held by the promotion gate, nothing written: {decision['reason']}")
    return decision


def main(date: str, settings: Settings) -> dict[str, Any]:
    """``python -m models.promotion --date D``: the gate without ``force_publish``."""
    return gate(date, False, settings)


if __name__ == "__main__":
    raise SystemExit(run_job(main, "Promotion gate of night D: publish or hold."))
