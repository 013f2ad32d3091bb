"""One ``reelrec run`` (or ``reelrec demo``) per ``REELREC_HOME`` at a time: the run lock.

Two runs writing the same home at once would interleave their writes: two inline runs
(``airflow dags test``, which no scheduler serializes) replacing the same Delta partitions and
materializing into the same online store at the same time; through the scheduler, the second
run's nights slip in between the first's (``max_active_runs=1`` serializes nights, not runs), and
with ``--force-publish`` it deletes and recreates a finished night's DAG run under the first. The
lock makes the second command stop at once, before it starts anything, with a message that names
the holder.

How. :func:`hold` takes an exclusive ``fcntl.flock`` on ``$REELREC_HOME/run.lock`` without
waiting and keeps the file open for the whole run. The kernel releases a flock when the last
descriptor of its open file closes, so the lock is freed on a normal exit, on an exception and
on SIGKILL or an OOM kill alike: no stale lock to clean up, no pid to check for liveness. The
descriptor is not inheritable (PEP 446), so the services a run starts and leaves running (the
Airflow stack, started with ``subprocess.Popen``) do not keep the lock after it. The
holder writes who it is into the file (``{"pid", "command", "dates", "since", "host"}``) once it
holds the lock; a refused command reads that back for its message. The file itself is never
deleted (deleting a flock'ed file lets a third process lock a new inode while the second still
holds the old one); it keeps the last holder's record, which means nothing once the lock is free.

Scope. The lock is per home, not per date: the nights of one home share the Airflow stack, the
Feast registry and the online store, so two runs of different dates interleave writes too. What
it does not cover:
a run triggered in the Airflow UI takes no lock; the DAG's ``max_active_runs=1`` makes the
scheduler queue it behind the running night instead (docs/reliability.md, "Backfills and reruns").
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reelrec.settings import Settings

LOCK_FILE = "run.lock"
EXIT_LOCKED = 75
"""Exit status of a command refused because another run holds the lock (sysexits' EX_TEMPFAIL)."""


class RunLockedError(RuntimeError):
    """Another process holds the run lock of this home; nothing was started."""

    def __init__(self, path: Path, holder: dict[str, Any] | None) -> None:
        self.path = path
        self.holder = holder
        super().__init__(describe_refusal(path, holder))


def lock_path(settings: Settings) -> Path:
    """``$REELREC_HOME/run.lock``."""
    return settings.home / LOCK_FILE


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def describe_refusal(path: Path, holder: dict[str, Any] | None) -> str:
    """The refusal message: the holder's pid, command and dates, and the lock file."""
    if holder is None:  # locked, but the holder has not written its record yet
        who = "another reelrec process (it has not recorded its pid yet)"
    else:
        dates = list(holder.get("dates") or [])
        span = dates[0] if len(dates) == 1 else f"{dates[0]}..{dates[-1]}" if dates else "no dates"
        who = (
            f"pid {holder.get('pid')} on {holder.get('host')} (`reelrec {holder.get('command')}`, "
            f"dt={span}, since {holder.get('since')})"
        )
    return (
        f"another run holds the run lock of this home: {who}; lock file {path}. Two runs in one "
        "REELREC_HOME would interleave their writes: wait for it to finish (the lock is released when "
        "that process exits, even if it is killed), or stop it"
    )


@contextlib.contextmanager
def hold(settings: Settings, command: str, dates: Sequence[str]) -> Iterator[Path]:
    """Hold the home's run lock for the block; refuse at once when another process holds it.

    Args:
        settings: whose home.
        command: what holds it (``run``, ``demo``), for the refusal message of others.
        dates: the logical dates the holder runs, for the same message.

    Yields:
        The lock file's path.

    Raises:
        RunLockedError: naming the holder's pid, command, dates and the lock file.
    """
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(path, _read_holder(path)) from None
        record = {
            "pid": os.getpid(),
            "command": command,
            "dates": list(dates),
            "since": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "host": socket.gethostname(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock (if taken); so does the process's death
