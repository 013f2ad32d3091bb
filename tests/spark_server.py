"""Start and stop Spark components (:mod:`reelrec.spark_cluster`) from tests; run nights against them.

A small stand-in for the stack's process manager: each component runs in its own process group
with its log in a file, counts as started once its ports accept connections (and its ready URL
answers), and is killed with its whole group at teardown, even when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from reelrec import lake
from reelrec.catalog import ALL_TABLES
from reelrec.services.component import Component
from reelrec.settings import Settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= int(response.status) < 300
    except OSError:
        return False


def _wait_ready(component: Component, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + component.start_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-4000:]
            raise RuntimeError(f"{component.name} exited with {process.returncode}:\n{tail}")
        ready = all(_accepts(port) for port in component.ports)
        if ready and (component.ready_url is None or _answers(component.ready_url)):
            return
        time.sleep(0.5)
    raise TimeoutError(
        f"{component.name} not ready after {component.start_timeout_s} s:\n{log.read_text()[-4000:]}"
    )


def _stop(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM the component's process group, then SIGKILL what is left after ``timeout_s``."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
    # The group may outlive its leader (Python workers of an executor): kill the rest.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=timeout_s)


@contextmanager
def running(components: Sequence[Component], logs: Path) -> Iterator[dict[str, Path]]:
    """Start ``components`` in order, each once ready, and stop them all (reverse order) on exit.

    Yields:
        Each component's log file, by name.
    """
    logs.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    files: dict[str, Path] = {}
    try:
        for component in components:
            busy = [port for port in component.ports if _accepts(port)]
            if busy:
                raise RuntimeError(f"{component.name}: port(s) {busy} on 127.0.0.1 already in use")
            log = files[component.name] = logs / f"{component.name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    list(component.argv),
                    env={**os.environ, **component.env},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started.append(process)
            _wait_ready(component, process, log)
        yield files
    finally:
        for process in reversed(started):
            _stop(process)


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
