"""Time the Spark jobs with Spark in process vs on a running Spark Connect server, job by job.

    .venv/bin/reelrec --home /tmp/small generate --preset small --start 2026-11-01 --days 2
    .venv/bin/python benchmarks/spark_connect.py --home /tmp/small --dates 2026-11-01 2026-11-02

Copies the landing zone of ``--home`` into two fresh homes, starts an embedded-profile Connect server
(:mod:`reelrec.spark_cluster`) on a free port, then runs every job as its own process, as an
Airflow task does (``python -m spark_jobs.<job> --date D``), once with Spark in that process and
once over Connect, alternating so that machine load falls on both. Prints the seconds of: starting
a session (import to first result) each way, the Connect server's start, and each job's process;
the jobs' printed facts must be equal both ways.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reelrec.services import process
from reelrec.settings import Settings
from reelrec.spark_cluster import SparkPorts, connect_url, spark_components

JOBS = ("ingest_events", "ingest_catalogs", "user_features", "video_features", "creator_features")
_SESSION = (
    "import time; t = time.monotonic(); from reelrec.settings import Settings; "
    "from reelrec.spark import get_spark; get_spark(Settings.from_env()).range(3).count(); "
    "print(time.monotonic() - t)"
)


def _env(home: Path, remote: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SPARK_CONNECT")}
    return env | {"REELREC_HOME": str(home), "REELREC_SPARK_REMOTE": remote}


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed:\n{done.stderr[-4000:]}")
    return time.monotonic() - started, done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(home: Path, dates: list[str], work: Path) -> dict[str, Any]:
    """Run the comparison on copies of ``home``'s landing zone under ``work``; returns the timings."""
    homes = {"in_process": work / "in_process", "connect": work / "connect"}
    for copy in homes.values():
        shutil.copytree(home / "landing", copy / "landing")
    ports = SparkPorts(connect=_free_port())
    [server] = spark_components(Settings.from_env(work / "server"), ports)
    folder = work / "server" / "services"
    started = time.monotonic()
    pid = process.start(server, folder)
    try:
        process.wait_ready(server, folder, pid)
        result: dict[str, Any] = {"connect_server_start_s": time.monotonic() - started}
        remotes = {"in_process": "", "connect": connect_url(ports)}
        for mode, remote in remotes.items():
            seconds, out = _timed([sys.executable, "-c", _SESSION], _env(homes[mode], remote))
            result[f"session_{mode}"] = {"process_s": seconds, "first_result_s": float(out.split()[-1])}
        jobs: dict[str, dict[str, float]] = {}
        for date in dates:
            for job in JOBS:
                facts = {}
                for mode, remote in remotes.items():
                    argv = [sys.executable, "-m", f"spark_jobs.{job}", "--date", date]
                    seconds, out = _timed(argv, _env(homes[mode], remote))
                    jobs.setdefault(f"{job} {date}", {})[mode] = seconds
                    facts[mode] = json.loads(out)
                if facts["in_process"] != facts["connect"]:
                    raise AssertionError(f"{job} {date}: facts differ: {facts}")
        result["jobs"] = jobs
        result["totals"] = {mode: sum(times[mode] for times in jobs.values()) for mode in remotes}
        return result
    finally:
        process.stop(server.name, folder)


def main() -> None:
    """Parse the arguments, measure, print a table (or JSON)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", required=True, type=Path, help="a REELREC_HOME with a generated landing/")
    parser.add_argument("--dates", nargs="+", required=True, help="logical dates to run, in order")
    parser.add_argument("--json", action="store_true", help="print the timings as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reelrec-connect-bench-") as work:
        result = measure(args.home.resolve(), args.dates, Path(work))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"Connect server start: {result['connect_server_start_s']:.1f} s")
    for mode in ("in_process", "connect"):
        session = result[f"session_{mode}"]
        first, whole = session["first_result_s"], session["process_s"]
        print(f"session {mode:10s}: first result {first:.1f} s, process {whole:.1f} s")
    print(f"{'job':32s} {'in process':>10s} {'connect':>10s}")
    for name, times in result["jobs"].items():
        print(f"{name:32s} {times['in_process']:10.1f} {times['connect']:10.1f}")
    totals = result["totals"]
    print(f"{'total':32s} {totals['in_process']:10.1f} {totals['connect']:10.1f}")


if __name__ == "__main__":
    main()
