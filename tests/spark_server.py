"""Start and stop Spark components (:mod:`reelrec.spark_cluster`) from tests; run nights against them.

The components run under the stack's own process manager (:mod:`reelrec.services.process`: a process
group each, a log file, ready once their ports accept connections and their ready URL answers), on
ports the test picks, and are stopped with their whole group at teardown, even when the test fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reelrec import lake
from reelrec.catalog import ALL_TABLES
from reelrec.services import process
from reelrec.services.component import Component
from reelrec.settings import Settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(components: Sequence[Component], logs: Path) -> Iterator[dict[str, Path]]:
    """Start ``components`` in order through the stack's own process manager, each once ready, and stop
    them all on exit, even when the test fails.

    Yields:
        Each component's log file, by name.
    """
    logs.mkdir(parents=True, exist_ok=True)
    started: list[str] = []
    try:
        for component in components:
            process.check_ports_free(component)
            pid = process.start(component, logs)
            started.append(component.name)
            process.wait_ready(component, logs, pid)
        yield {component.name: process.log_file(logs, component.name) for component in components}
    finally:
        process.stop_all(started, logs)


# Runs a night's Spark jobs in a fresh interpreter: a process holds either an in-process Spark or a
# Connect session, never both, so each side of a comparison gets its own.
_NIGHT = """
import json, sys
from reelrec.settings import Settings
from spark_jobs import creator_features, ingest_catalogs, ingest_events, user_features, video_features

settings = Settings.from_env()
jobs = (ingest_events, ingest_catalogs, user_features, video_features, creator_features)
facts = {f"{job.__name__} {date}": job.main(date, settings) for date in sys.argv[1:] for job in jobs}
print(json.dumps(facts, default=str))
"""


def run_night(
    home: Path,
    dates: Sequence[str],
    remote: str = "",
    env: dict[str, str] | None = None,
    timeout_s: float = 600,
) -> dict[str, Any]:
    """Run the five Spark jobs of each of ``dates`` on ``home`` in a new process; returns their facts.

    Args:
        home: REELREC_HOME holding the landing drops.
        dates: logical dates, run in order.
        remote: ``sc://`` URL of a Spark Connect server; empty: Spark in that process.
        env: variables to set on top of this process's (e.g. ``REELREC_PROFILE``).
        timeout_s: bound on the whole run.
    """
    variables = {name: value for name, value in os.environ.items() if not name.startswith("SPARK_CONNECT")}
    variables.pop("SPARK_REMOTE", None)
    variables |= {**(env or {}), "REELREC_HOME": str(home), "REELREC_SPARK_REMOTE": remote}
    done = subprocess.run(
        [sys.executable, "-c", _NIGHT, *dates],
        env=variables,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"night {list(dates)} failed ({done.returncode}):\n{done.stderr[-6000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def lake_rows(settings: Settings) -> dict[str, list[str]]:
    """Every row of every Delta table under ``settings``' lake, as sorted ``repr`` s, by table name."""
    return {
        table.name: sorted(repr(row) for row in lake.read(table, settings).to_pylist())
        for table in ALL_TABLES
        if lake.exists(table, settings)
    }
