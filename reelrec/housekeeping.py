"""Housekeeping: keep a home that runs every night for a year bounded, and its answers fresh.

Four steps, each idempotent (a second run finds nothing to do and reports zeros), each reporting
what it reclaimed per table or folder; ``reelrec housekeep [--dry-run]`` runs them all from the
shell, the ``reelrec_housekeeping`` DAG runs them as one task each after every night:

1. **lake** (:mod:`reelrec.housekeeping_lake`): compact small files, vacuum every file that no kept
   Delta version reads; kept are all versions a rebuild of the last ``nights`` nights or a rollback
   to a kept release reads;
2. **models** (:mod:`reelrec.housekeeping_models`): remove model versions (with their ANN indexes)
   and training sets outside the serving release, the rollback window and the last
   ``model_versions`` nights;
3. **online** (:mod:`reelrec.online_expiry`): remove the users' lists (and embeddings) generated
   more than ``online_max_age_days`` before the online default list: serving answers those users
   with the default list, flagged as a fallback;
4. **airflow**: Airflow's own ``airflow db clean`` of the metadata database (rows, archive skipped)
   and the task log files older than ``airflow_days``.

Retention (:class:`Retention`, each from the environment, defaults in brackets):
``REELREC_KEEP_NIGHTS`` (7) nights rebuildable by Delta time travel; ``REELREC_KEEP_RELEASES`` (3)
published releases besides the serving one that a rollback may return to;
``REELREC_KEEP_MODEL_VERSIONS`` (3) latest nights' model versions and training sets;
``REELREC_ONLINE_MAX_AGE_DAYS`` (7); ``REELREC_AIRFLOW_RETENTION_DAYS`` (30).

Never alongside a night. Every step (not a dry run, which only reads) holds the home's run lock
(:mod:`reelrec.run_lock`, what ``reelrec run``/``demo`` hold for their whole run) and refuses to
start while the Airflow metadata shows a ``reelrec_nightly`` run queued or running (a night the
scheduler started itself holds no lock). The DAG first waits for such a run to end (a sensor in
reschedule mode); the shell command refuses at once (exit 75). A night triggered *during* a step is
the one case left: ``max_active_runs`` does not see the other DAG; steps are short and the DAG runs
right after the night, a day before the next one.

Each run that changed something leaves a record, ``runs/housekeeping/<UTC time>.json``: the
retention, and per step what was removed (versions, folders, files, rows, bytes).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reelrec import releases, run_lock
from reelrec.housekeeping_airflow import clean_airflow
from reelrec.housekeeping_lake import housekeep_lake, kept_nights
from reelrec.housekeeping_models import housekeep_models
from reelrec.settings import Settings

NIGHTLY_DAG = "reelrec_nightly"
RECORDS_DIR = "housekeeping"
STEPS = ("lake", "models", "online", "airflow")


class NightRunningError(RuntimeError):
    """A nightly run is queued or running: housekeeping must not touch what it reads."""


@dataclass(frozen=True)
class Retention:
    """What housekeeping keeps (see the module docstring for the variables)."""

    nights: int = 7  # nights whose Delta versions stay readable (rebuild); below delta's 30-day logs
    rollback_releases: int = 3  # published releases, besides the serving one, a rollback may return to
    model_versions: int = 3  # latest nights whose model versions and training sets are kept
    online_max_age_days: float = 7.0  # a user's list this much older than the default list expires
    airflow_days: int = 30  # Airflow metadata rows and task logs older than this are removed

    @classmethod
    def from_env(cls) -> Retention:
        """The retention from the environment (variables in the module docstring; unset: defaults)."""

        def env(name: str, default: float) -> float:
            value = float(os.environ.get(name, default))
            if value < 0 or value != value:
                raise ValueError(f"{name} must be a number >= 0, got {os.environ.get(name)!r}")
            return value

        default = cls()
        return cls(
            nights=int(env("REELREC_KEEP_NIGHTS", default.nights)),
            rollback_releases=int(env("REELREC_KEEP_RELEASES", default.rollback_releases)),
            model_versions=int(env("REELREC_KEEP_MODEL_VERSIONS", default.model_versions)),
            online_max_age_days=env("REELREC_ONLINE_MAX_AGE_DAYS", default.online_max_age_days),
            airflow_days=int(env("REELREC_AIRFLOW_RETENTION_DAYS", default.airflow_days)),
        )


def kept_releases(settings: Settings, window: int) -> list[releases.Release]:
    """The serving release and the last ``window`` other published releases (newest night last)."""
    serving = releases.serving(settings)
    published = [r for r in releases.releases(settings) if r.published and r != serving]
    kept = published[-window:] if window > 0 else []
    return [*kept, serving] if serving is not None else kept


def running_nights(settings: Settings) -> list[dict[str, Any]]:
    """The ``reelrec_nightly`` runs the Airflow metadata shows queued or running (none without a DB)."""
    from reelrec.airflow_local import dag_runs

    return [
        run
        for run in dag_runs(settings, limit=20, dag_id=NIGHTLY_DAG)
        if run["state"] in ("queued", "running")
    ]


@contextlib.contextmanager
def excluded_from_nights(settings: Settings, step: str, dry_run: bool) -> Iterator[None]:
    """Hold the run lock and check no night runs (a dry run only reads: neither).

    Raises:
        run_lock.RunLockedError: another ``reelrec run``/``demo``/``housekeep`` holds the home.
        NightRunningError: naming the running nights' run ids.
    """
    if dry_run:
        yield
        return
    with run_lock.hold(settings, f"housekeep {step}", []):
        running = running_nights(settings)
        if running:
            raise NightRunningError(
                f"housekeeping {step}: nightly run(s) {[r['run_id'] for r in running]} are "
                f"{'/'.join(sorted({r['state'] for r in running}))}; it runs after they end"
            )
        yield


def lake_step(
    settings: Settings, retention: Retention | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Compact and vacuum every Delta table under the retention (:mod:`reelrec.housekeeping_lake`)."""
    retention = retention or Retention.from_env()
    with excluded_from_nights(settings, "lake", dry_run):
        nights = kept_nights(settings, retention.nights)
        kept = kept_releases(settings, retention.rollback_releases)
        report = housekeep_lake(settings, nights, kept, dry_run)
    return {"kept_nights": nights, "kept_releases": [r.version for r in kept], **report}


def models_step(
    settings: Settings, retention: Retention | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Remove model versions, ANN indexes and training sets outside the retention."""
    retention = retention or Retention.from_env()
    with excluded_from_nights(settings, "models", dry_run):
        kept = kept_releases(settings, retention.rollback_releases)
        return housekeep_models(settings, kept, retention.model_versions, dry_run)


def online_step(
    settings: Settings, retention: Retention | None = None, dry_run: bool = False, store: Any = None
) -> dict[str, Any]:
    """Remove expired users' lists and embeddings from the online store (:mod:`reelrec.online_expiry`)."""
    from reelrec.online_expiry import expire

    retention = retention or Retention.from_env()
    if not (settings.feast / "feature_store.yaml").exists() and store is None:
        return {"skipped": "no Feast store in this home", "bytes": 0, "views": {}}
    with excluded_from_nights(settings, "online", dry_run):
        return expire(settings, dry_run, store, timedelta(days=retention.online_max_age_days))


def airflow_step(
    settings: Settings, retention: Retention | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """``airflow db clean`` and task logs past the retention (:mod:`reelrec.housekeeping_airflow`)."""
    retention = retention or Retention.from_env()
    with excluded_from_nights(settings, "airflow", dry_run):
        return clean_airflow(settings, retention.airflow_days, dry_run)


STEP_FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "lake": lake_step,
    "models": models_step,
    "online": online_step,
    "airflow": airflow_step,
}


def reclaimed(report: dict[str, Any]) -> int:
    """Bytes the steps of ``report`` reclaimed (or would, in a dry run)."""
    return sum(int((report.get("steps") or {}).get(step, {}).get("bytes", 0)) for step in STEPS)


def record(report: dict[str, Any], settings: Settings) -> Path | None:
    """Write ``runs/housekeeping/<UTC time>.json`` unless a dry run or nothing was reclaimed."""
    if report.get("dry_run") or not reclaimed(report):
        return None
    folder = settings.runs / RECORDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = folder / f"{stamp}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    tmp.replace(path)
    return path


def record_steps(steps: dict[str, dict[str, Any] | None], settings: Settings) -> str | None:
    """The DAG's last task: the record of the steps that ran (``None``: skipped steps)."""
    report = {
        "dry_run": False,
        "retention": asdict(Retention.from_env()),
        "steps": {k: v for k, v in steps.items() if v},
    }
    path = record(report, settings)
    return str(path) if path else None


def lock_free(settings: Settings) -> bool:
    """Whether no process holds the home's run lock now (taken and released at once)."""
    try:
        with run_lock.hold(settings, "housekeep probe", []):
            return True
    except run_lock.RunLockedError:
        return False


def wait_for_nights(settings: Settings) -> bool:
    """Whether no nightly run is queued or running and the run lock is free (the DAG's sensor pokes this)."""
    return not running_nights(settings) and lock_free(settings)


def housekeep(
    settings: Settings,
    retention: Retention | None = None,
    dry_run: bool = False,
    steps: tuple[str, ...] = STEPS,
    store: Any = None,
) -> dict[str, Any]:
    """Run the housekeeping ``steps`` in order; the report (and its record's path, when one was written).

    Args:
        settings: which home.
        retention: what to keep (:meth:`Retention.from_env` when ``None``).
        dry_run: report what would be reclaimed, change nothing (no record either).
        steps: a subset of :data:`STEPS`.
        store: an open Feast ``FeatureStore`` for the online step (``get_store(settings)`` otherwise).
    """
    retention = retention or Retention.from_env()
    report: dict[str, Any] = {"dry_run": dry_run, "retention": asdict(retention), "steps": {}, "seconds": {}}
    for step in steps:
        started = time.perf_counter()
        options: dict[str, Any] = {"store": store} if step == "online" else {}
        report["steps"][step] = STEP_FUNCTIONS[step](settings, retention, dry_run, **options)
        report["seconds"][step] = round(time.perf_counter() - started, 3)
    report["bytes"] = reclaimed(report)
    path = record(report, settings)
    report["record"] = str(path) if path else None
    return report


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def format_report(report: dict[str, Any]) -> str:
    """The report as a few lines per step: bytes and rows per table or folder, what was removed."""
    verb = "would reclaim" if report["dry_run"] else "reclaimed"
    steps = report["steps"]
    lines = [f"housekeeping {'(dry run) ' if report['dry_run'] else ''}{verb} {_mb(report['bytes'])}"]
    if "lake" in steps:
        lake = steps["lake"]
        lines.append(f"lake: kept nights {lake['kept_nights']}, rollback window {lake['kept_releases']}")
        for name, t in lake["tables"].items():
            vac = t["vacuum"]
            lines.append(
                f"  {name:32} versions {t['floor']}..{t['current']} kept; compacted "
                f"{t['compact']['files_merged']} files; vacuum {vac['files']} files, {vac['rows']} rows, "
                f"{_mb(vac['bytes'])}"
            )
    if "models" in steps:
        for name, facts in steps["models"].items():
            if isinstance(facts, dict):
                removed = [entry["path"] for entry in facts["removed"]]
                lines.append(
                    f"models/{name}: kept {facts['kept']}; removed {removed} ({_mb(facts['bytes'])})"
                )
    if "online" in steps:
        online = steps["online"]
        lines.append(f"online: {online.get('skipped') or 'cutoff ' + str(online.get('cutoff'))}")
        for name, v in online.get("views", {}).items():
            lines.append(f"  {name:32} {v['users']} users, {v['values']} values, {_mb(v['bytes'])}")
    if "airflow" in steps:
        flow = steps["airflow"]
        meta = flow["metadata"].get("skipped") or f"rows {flow['metadata']['rows']}"
        lines.append(f"airflow: before {flow['cutoff']}: {meta}; logs {flow['logs']['files']} files")
    if report.get("record"):
        lines.append(f"record: {report['record']}")
    return "\n".join(lines)


def cli_main(settings: Settings, dry_run: bool, as_json: bool) -> int:
    """``reelrec housekeep``: run every step; exit 75 while a night runs or the run lock is held."""
    import sys

    try:
        report = housekeep(settings, dry_run=dry_run)
    except (run_lock.RunLockedError, NightRunningError) as err:
        print(f"[reelrec] refused: {err}", file=sys.stderr)
        return run_lock.EXIT_LOCKED
    print(json.dumps(report, indent=2, default=str) if as_json else format_report(report))
    return 0
