"""Run nights through the Airflow scheduler: start the stack, create each night, follow it live.

``reelrec run --date D [--to D2]`` (and ``make run``) lands here: the components of the profile
are started (or reused), the DAG is unpaused once parsed, and each night is created through the
REST API with logical date D and data interval [D, D+1), one at a time in date order. Every task
prints as it changes state; a failed night names its failed task, try number and log file, and
the run's page in the UI. After each night, its task logs are gathered in ``runs/dt=D/airflow.log``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelrec.airflow_local import DAG_ID, api_url
from reelrec.services.component import Component
from reelrec.settings import Settings

FINISHED = ("success", "failed")
NIGHT_TIMEOUT_S = 3600.0
POLL_S = 1.0


@dataclass
class NightOutcome:
    """How one night run by the scheduler ended."""

    date: str
    run_id: str
    state: str
    seconds: float
    tasks: list[dict[str, Any]] = field(default_factory=list)  # the run's task instances at its end

    @property
    def failed_tasks(self) -> list[dict[str, Any]]:
        """The task instances that ended ``failed``."""
        return [ti for ti in self.tasks if ti["state"] == "failed"]

    @property
    def succeeded(self) -> bool:
        """Whether the DAG run ended in ``success``."""
        return self.state == "success"


def task_log_path(
    settings: Settings, run_id: str, task_id: str, try_number: int, dag_id: str = DAG_ID
) -> Path:
    """The task log file Airflow writes for one try (default ``log_filename_template``)."""
    return (
        settings.airflow_home
        / "logs"
        / f"dag_id={dag_id}"
        / f"run_id={run_id}"
        / f"task_id={task_id}"
        / f"attempt={try_number}.log"
    )


def run_url(settings: Settings, run_id: str, task_id: str | None = None, dag_id: str = DAG_ID) -> str:
    """The UI page of a DAG run (or of one of its tasks)."""
    url = f"{api_url(settings)}/dags/{dag_id}/runs/{run_id}"
    return f"{url}/tasks/{task_id}" if task_id else url


def follow(
    api: Any,
    settings: Settings,
    run_id: str,
    echo: Callable[[str], None],
    timeout_s: float = NIGHT_TIMEOUT_S,
    on_state: Callable[[str, str | None], None] | None = None,
) -> NightOutcome:
    """Print each task of ``run_id`` as it changes state until the run finishes.

    ``on_state(task_id, state)`` is called with each change too (the progress bar counts them).

    Raises:
        TimeoutError: when the run has not finished after ``timeout_s``.
    """
    began = time.monotonic()
    seen: dict[str, str | None] = {}
    while time.monotonic() - began < timeout_s:
        run = api.dag_run(DAG_ID, run_id)
        tis = api.task_instances(DAG_ID, run_id)
        for ti in sorted(tis, key=lambda t: (t.get("start_date") or "", t["task_id"])):
            if seen.get(ti["task_id"]) != ti["state"] and (ti["state"] or ti["task_id"] in seen):
                seen[ti["task_id"]] = ti["state"]
                if on_state is not None:
                    on_state(ti["task_id"], ti["state"])
                took = f" ({ti['duration']:.1f}s)" if ti.get("duration") is not None else ""
                echo(f"  {time.monotonic() - began:6.1f}s  {ti['task_id']:<22} {ti['state'] or 'none'}{took}")
        if run["state"] in FINISHED:
            date = str(run["logical_date"])[:10]
            return NightOutcome(date, run_id, run["state"], time.monotonic() - began, tis)
        time.sleep(POLL_S)
    raise TimeoutError(
        f"DAG run {run_id} not finished after {timeout_s:.0f} s; see {run_url(settings, run_id)}"
    )


def _render_log_line(line: str) -> str:
    """A task log line (JSON in Airflow 3) as ``timestamp level logger: event`` text."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "event" not in record:
        return line
    text = (
        f"{record.get('timestamp', '')} {str(record.get('level', '')).upper()} {record.get('logger', '')}: "
    )
    text += str(record["event"])
    for key in ("error_detail", "exception"):
        if record.get(key):
            text += "\n" + (json.dumps(record[key]) if not isinstance(record[key], str) else record[key])
    return text


def gather_logs(settings: Settings, date: str, run_id: str, tis: Sequence[dict[str, Any]]) -> Path:
    """Write the night's task logs (each task's latest try, in start order) to ``runs/dt=D/airflow.log``."""
    out = settings.run_dir(date) / "airflow.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for ti in sorted(tis, key=lambda t: (t.get("start_date") or "", t["task_id"])):
        path = task_log_path(settings, run_id, ti["task_id"], int(ti.get("try_number") or 1))
        if path.exists():
            lines = path.read_text(errors="replace").splitlines()
            body = "\n".join(_render_log_line(line) for line in lines)
            parts.append(f"==== {ti['task_id']} ({ti['state']}, try {ti.get('try_number')}) {path}\n{body}")
    out.write_text("\n\n".join(parts) + "\n")
    return out


def run_scheduled(
    dates: Sequence[str],
    settings: Settings,
    as_json: bool = False,
    stack: Sequence[Component] | None = None,
    conf: dict[str, Any] | None = None,
    quiet: bool = False,
) -> int:
    """Run the nightly DAG for each date, in order, through the scheduler; stop at the first failure.

    Progress: each task as it changes state, and on a terminal a progress bar of the nights and of
    the night's tasks (:class:`Progress`); after each night its rows per table. ``quiet`` prints
    each night's outcome and the errors only; ``as_json`` moves the progress to stderr.

    Args:
        dates: logical dates, run one at a time in this order.
        settings: profile and home; the stack of the profile is started if not running.
        as_json: print the per-night summaries as JSON (progress then goes to stderr).
        stack: the components to use (default: the profile's); tests pass their own ports.
        conf: the runs' params (``{"force_publish": True}``); see :meth:`AirflowApi.start_night`.
        quiet: no progress lines.

    Returns:
        0 when every night succeeded, 1 otherwise.
    """
    from reelrec import services
    from reelrec.airflow_api import AirflowApi
    from reelrec.airflow_local import task_instances
    from reelrec.report import format_night, night_summary

    out = sys.stderr if as_json else sys.stdout
    bar = Progress(len(dates), enabled=not quiet and out.isatty())

    def echo(line: str) -> None:
        if not quiet:
            bar.print(line, out)

    echo(f"[reelrec] Airflow UI: {api_url(settings)}/dags/{DAG_ID}  (profile {settings.profile})")
    began = time.monotonic()
    try:
        started = services.up(settings, stack, echo=echo)
    except services.ServiceError as err:
        print(f"[reelrec] the stack did not start: {err}", file=sys.stderr)
        return 1
    api = AirflowApi(settings)
    try:
        api.wait_for_dag(DAG_ID)
        api.unpause(DAG_ID)
        names = ", ".join(started["started"]) or "none"
        echo(f"[reelrec] stack ready in {time.monotonic() - began:.1f}s (started: {names})")
        summaries = []
        for date in dates:
            run_id, reused = api.start_night(DAG_ID, date, conf)
            again = " (cleared and rerun)" if reused else ""
            echo(f"[reelrec] dt={date}: run {run_id}{again}  {run_url(settings, run_id)}")
            bar.night(date)
            outcome = follow(api, settings, run_id, echo, on_state=bar.task)
            log = gather_logs(settings, date, run_id, outcome.tasks)
            summary = night_summary(date, settings, task_instances(date, settings))
            summary["wall_seconds"] = round(outcome.seconds, 1)
            summaries.append(summary)
            if quiet:
                print(f"[reelrec] dt={date}: {outcome.state} in {outcome.seconds:.1f}s", file=out, flush=True)
            elif not as_json:
                echo(format_night(summary))
                echo(f"  wall time: {outcome.seconds:.1f}s   task logs: {log}")
            if not outcome.succeeded:
                _report_failure(outcome, settings)
                break
    finally:
        api.close()
        bar.close()
    if as_json:
        print(json.dumps(summaries, indent=2, default=str))
    return 0 if all(s["completed"] for s in summaries) and len(summaries) == len(dates) else 1


def _report_failure(outcome: NightOutcome, settings: Settings) -> None:
    print(f"[reelrec] dt={outcome.date} FAILED ({run_url(settings, outcome.run_id)})", file=sys.stderr)
    for ti in outcome.failed_tasks:
        try_number = int(ti.get("try_number") or 1)
        path = task_log_path(settings, outcome.run_id, ti["task_id"], try_number)
        print(f"  task {ti['task_id']} failed on try {try_number}; log: {path}", file=sys.stderr)
        print(f"  {run_url(settings, outcome.run_id, ti['task_id'])}", file=sys.stderr)
        lines = (
            [_render_log_line(line) for line in path.read_text(errors="replace").splitlines()]
            if path.exists()
            else []
        )
        for line in [line for line in lines if "rror" in line][-6:]:
            print(f"    {line[:400]}", file=sys.stderr)
        print(f"  next: {next_step(ti['task_id'], outcome.date)}", file=sys.stderr)


def next_step(task_id: str, date: str) -> str:
    """What a person runs after ``task_id`` failed on night ``date``."""
    again = f".venv/bin/reelrec run --date {date}"
    if task_id == "check_landing":
        return (
            f"land the drops named above (data files, then _SUCCESS), or write a synthetic world: "
            f".venv/bin/reelrec generate --start {date} --days 1; then {again}"
        )
    if task_id.startswith("validate_"):
        suite = task_id.removeprefix("validate_")
        return (
            f"the {suite} suite failed on the rows named above (their Data Docs page is linked in the "
            f"error); fix the data upstream, check again with .venv/bin/reelrec validate --suite {suite} "
            f"--date {date}, then {again}"
        )
    return (
        f"read the log above, fix the cause, then {again} (one job alone: python -m <module> --date {date})"
    )


class Progress:
    """A progress bar (``rich``) of the nights and of the current night's tasks, on a terminal only.

    Lines printed through :meth:`print` appear above the bars; elsewhere (a pipe, a log file, CI)
    nothing but those lines is written.
    """

    FINAL = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})

    def __init__(self, nights: int, enabled: bool) -> None:
        self.bar: Any = None
        self.done: set[str] = set()
        self.started = 0
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self.nights = self.bar.add_task("nights", total=nights)
        self.tasks = self.bar.add_task("tasks", total=None)
        self.bar.start()

    def print(self, line: str, out: Any) -> None:
        if self.bar is None:
            print(line, file=out, flush=True)
        else:
            self.bar.console.print(line, markup=False, highlight=False)

    def night(self, date: str) -> None:
        """A new night starts: the one before it is done."""
        if self.bar is not None:
            if self.started:
                self.bar.advance(self.nights)
            self.started += 1
            self.done = set()
            self.bar.reset(self.tasks, description=f"dt={date} tasks", total=None)

    def task(self, task_id: str, state: str | None) -> None:
        if self.bar is not None and state in self.FINAL and task_id not in self.done:
            self.done.add(task_id)
            self.bar.update(self.tasks, completed=len(self.done))

    def close(self) -> None:
        if self.bar is not None:
            if self.started:
                self.bar.advance(self.nights)
            self.bar.stop()
