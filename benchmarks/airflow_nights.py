"""Nights through the Airflow scheduler, as `make run` runs them: wall time per night, seconds per
task, scheduling gaps, peak memory of the Python and Java processes.

    .venv/bin/python benchmarks/airflow_nights.py --preset small --days 2
    .venv/bin/python benchmarks/airflow_nights.py --preset medium --days 4 --force-publish

Generates the world in a throwaway REELREC_HOME (unless ``--home`` is given), then runs
``reelrec run --date D`` for each date in order (the embedded profile's scheduler, LocalExecutor,
SQLite metadata; the stack is started by the first night and stopped at the end). ``--force-publish``
publishes nights the promotion gate would hold, so that ``score``, ``validate_outputs`` and
``publish`` are timed too (a held night skips them). A sampler thread reads ``/proc`` every second:
the peak of the summed resident memory of every ``python``/``airflow`` process and of every
``java`` process (Spark), and the largest single process of each.

Per night: wall seconds of ``reelrec run`` (the stack's start-up included on the first night), each
task instance's own seconds (Airflow's metadata; tasks that did not succeed are listed with their
state), their sum, the DAG run's span (first task start to last task end) and the *gaps*: for each
task, its start minus the latest end of a task that ended before it (median and max): the
scheduler's hand-over time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REELREC = Path(sys.executable).parent / "reelrec"


class MemorySampler(threading.Thread):
    """Peak resident memory (MiB) of Python and Java processes, sampled from /proc every second."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = {
            "python_total": 0.0,
            "java_total": 0.0,
            "all_total": 0.0,
            "python_max": 0.0,
            "java_max": 0.0,
        }
        self._halt = threading.Event()

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE") / 2**20
        while not self._halt.is_set():
            totals = {"python": 0.0, "java": 0.0}
            largest = {"python": 0.0, "java": 0.0}
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
                except (OSError, ValueError, IndexError):
                    continue
                kind = "java" if comm.startswith("java") else "python" if _is_python(comm) else None
                if kind:
                    totals[kind] += rss
                    largest[kind] = max(largest[kind], rss)
            for kind in ("python", "java"):
                self.peak[f"{kind}_total"] = max(self.peak[f"{kind}_total"], totals[kind])
                self.peak[f"{kind}_max"] = max(self.peak[f"{kind}_max"], largest[kind])
            self.peak["all_total"] = max(self.peak["all_total"], totals["python"] + totals["java"])
            self._halt.wait(1.0)

    def stop(self) -> dict[str, float]:
        self._halt.set()
        self.join()
        return {f"{k}_mib": round(v) for k, v in self.peak.items()}


def _is_python(comm: str) -> bool:
    return comm.startswith(("python", "airflow", "celery", "gunicorn", "uvicorn", "reelrec"))


def _seconds(value: Any) -> float | None:
    return round(float(value), 2) if value is not None else None


def _stamp(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def night_tasks(date: str, home: Path) -> dict[str, Any]:
    """Task seconds, the DAG run's span and scheduling gaps of night ``date`` from Airflow's metadata."""
    os.environ["REELREC_HOME"] = str(home)
    from reelrec.airflow_local import task_instances
    from reelrec.settings import Settings

    rows = task_instances(date, Settings.from_env())
    tasks = {r["task_id"]: _seconds(r["duration"]) for r in rows}
    not_ok = {r["task_id"]: r["state"] for r in rows if r["state"] != "success"}
    starts = [s for r in rows if (s := _stamp(r["start_date"]))]
    ends = [e for r in rows if (e := _stamp(r["end_date"]))]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    ran = [r for r in rows if _stamp(r["start_date"]) and _stamp(r["end_date"])]
    ordered = sorted(ran, key=lambda r: _stamp(r["start_date"]))  # type: ignore[arg-type,return-value]
    # A task's wait: its start minus the latest end among tasks that ended before it started.
    gaps = []
    for row in ordered[1:]:
        start = _stamp(row["start_date"])
        before = [_stamp(o["end_date"]) for o in ran if _stamp(o["end_date"]) <= start]  # type: ignore[operator]
        if before:
            gaps.append((start - max(before)).total_seconds())  # type: ignore[operator,type-var]
    busy = sum(t or 0 for t in tasks.values())
    return {
        "tasks": tasks,
        "not_succeeded": not_ok,
        "task_seconds_sum": round(busy, 1),
        "dag_run_span_s": round(span, 1) if span is not None else None,
        "gap_median_s": round(statistics.median(gaps), 2) if gaps else None,
        "gap_max_s": round(max(gaps), 2) if gaps else None,
    }


def report(args: argparse.Namespace) -> None:
    """The JSON of :func:`main` for nights already run in ``args.home``, from Airflow's metadata."""
    from reelrec.dates import add_days

    nights = {
        date: night_tasks(date, args.home) for date in (add_days(args.start, i) for i in range(args.days))
    }
    spans = [n["dag_run_span_s"] for n in nights.values() if n["dag_run_span_s"] is not None]
    result = {"preset": args.preset, "home": str(args.home), "report_only": True, "nights": nights}
    result["max_night_wall_s"] = max(spans, default=None)  # the DAG runs' spans: no wall time was taken
    print(json.dumps(result, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "medium"])
    parser.add_argument("--start", default="2026-11-01")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--home", type=Path, help="REELREC_HOME (default: a fresh temp folder)")
    parser.add_argument("--force-publish", action="store_true", help="publish nights the gate would hold")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: report the nights already recorded in --home (no memory figures; a night's "
        "wall time is then its DAG run's span)",
    )
    args = parser.parse_args()
    if args.report_only:
        if args.home is None:
            parser.error("--report-only needs --home")
        report(args)
        return
    home = args.home or Path(tempfile.mkdtemp(prefix=f"reelrec-airflow-{args.preset}-"))
    env = {**os.environ, "REELREC_HOME": str(home)}
    from reelrec.dates import add_days

    dates = [add_days(args.start, i) for i in range(args.days)]
    sampler = MemorySampler()
    sampler.start()
    result: dict[str, Any] = {"preset": args.preset, "home": str(home), "cpus": os.cpu_count()}
    nights: dict[str, dict[str, Any]] = {}
    try:
        started = time.perf_counter()
        generate = [str(REELREC), "generate", "--preset", args.preset, "--start", args.start]
        subprocess.run([*generate, "--days", str(args.days)], env=env, check=True, capture_output=True)
        result["generate_s"] = round(time.perf_counter() - started, 1)
        for date in dates:
            command = [
                str(REELREC),
                "run",
                "--date",
                date,
                *(["--force-publish"] if args.force_publish else []),
            ]
            started = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            wall = round(time.perf_counter() - started, 1)
            print(f"[airflow_nights] {date}: exit {done.returncode}, {wall} s", file=sys.stderr, flush=True)
            nights[date] = {"exit_code": done.returncode, "wall_s": wall, **night_tasks(date, home)}
            if done.returncode != 0:
                print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
                break
    finally:
        subprocess.run([str(REELREC), "stop"], env=env, capture_output=True, check=False)
        result["peak_memory"] = sampler.stop()
    result["nights"] = nights
    result["max_night_wall_s"] = max((n["wall_s"] for n in nights.values()), default=None)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
