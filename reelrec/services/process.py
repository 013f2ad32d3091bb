"""One component's process: its pid file and log, the ports it needs, starting it until ready, stopping it.

Each component runs in its own session (process group), so stopping it stops what it started too
(LocalExecutor workers, API server workers, the JVM under ``spark-submit``). Its pid file
``<services>/<name>.pid`` records the pid and the process's start time (from ``/proc``): a pid file
whose process is gone, or whose pid now belongs to another process, is stale and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reelrec.services.component import Component

HOST = "127.0.0.1"
LOG_TAIL_LINES = 40
STOP_TIMEOUT_S = 30.0


class ServiceError(RuntimeError):
    """A component could not be started (port taken, exited, not ready in time) or stopped."""


@dataclass(frozen=True)
class ComponentState:
    """What ``reelrec services status`` shows for one component."""

    name: str
    running: bool
    pid: int | None
    ports: tuple[int, ...]
    log: Path

    def as_dict(self) -> dict[str, object]:
        """JSON form (``reelrec services status --json``)."""
        return {
            "name": self.name,
            "running": self.running,
            "pid": self.pid,
            "ports": list(self.ports),
            "log": str(self.log),
        }


def pid_file(folder: Path, name: str) -> Path:
    """Pid file of component ``name``."""
    return folder / f"{name}.pid"


def log_file(folder: Path, name: str) -> Path:
    """Log (stdout and stderr) of component ``name``."""
    return folder / "logs" / f"{name}.log"


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22); None if gone
    or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
        return None
    return int(fields[19])


def running_pid(folder: Path, name: str) -> int | None:
    """Pid of component ``name`` when its pid file names a live process of ours; a stale file is removed."""
    path = pid_file(folder, name)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = int(record["pid"])
    if _start_ticks(pid) == record.get("start_ticks"):
        return pid
    path.unlink(missing_ok=True)
    return None


def port_accepts(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_owner(port: int) -> int | None:
    """Pid of the process listening on TCP ``port`` (from ``/proc/net/tcp*``), when it is visible to us."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cells = line.split()
            if cells[3] == "0A" and int(cells[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{cells[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None


def _describe(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"pid {pid}"
    return f"pid {pid} ({cmdline.strip()[:120]})"


# The variable that moves each component's port (the standalone master's own port is in SPARK_MASTER).
PORT_VARIABLES = {
    "airflow-api-server": "REELREC_UI_PORT",
    "spark-connect": "REELREC_SPARK_CONNECT_PORT",
    "spark-master": "SPARK_MASTER, REELREC_SPARK_MASTER_UI_PORT",
    "spark-worker": "REELREC_SPARK_WORKER_UI_PORT",
}


def check_ports_free(component: Component) -> None:
    """Raise :class:`ServiceError` naming the port, the component and (if visible) the owner's pid when
    one of ``component``'s ports is taken."""
    for port in component.ports:
        if port_accepts(port):
            owner = port_owner(port)
            held = f" by {_describe(owner)}" if owner else " by another process"
            variable = PORT_VARIABLES.get(component.name, "REELREC_UI_PORT")
            raise ServiceError(
                f"port {port} of {component.name} on {HOST} is already taken{held}; "
                f"stop that process or move reelrec to other ports (e.g. {variable})"
            )


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _url_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= int(response.status) < 300
    except (OSError, ValueError):
        return False


def start(component: Component, folder: Path, base_env: Mapping[str, str] | None = None) -> int:
    """Start ``component`` in its own session, its output appended to its log; returns its pid.

    The caller checked that it is not running and that its ports are free.
    """
    log = log_file(folder, component.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**(base_env if base_env is not None else os.environ), **component.env}
    with log.open("ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {component.name}\n".encode())
        out.flush()
        process = subprocess.Popen(
            list(component.argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    record = {"pid": process.pid, "start_ticks": _start_ticks(process.pid), "argv": list(component.argv)}
    pid_file(folder, component.name).write_text(json.dumps(record))
    return process.pid


# Processes started by this interpreter: polled so that an exited one is reaped (not left a zombie).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False
    return _start_ticks(pid) is not None


def wait_ready(component: Component, folder: Path, pid: int) -> float:
    """Wait until ``component``'s ports accept connections and its ready URL answers; returns the seconds
    it took.

    Raises:
        ServiceError: when it exits or is not ready within ``start_timeout_s`` (it is then stopped),
            with the last lines of its log.
    """
    started = time.monotonic()
    deadline = started + component.start_timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            pid_file(folder, component.name).unlink(missing_ok=True)
            raise ServiceError(_failure(component, folder, "exited during start-up"))
        ports_ok = all(port_accepts(port) for port in component.ports)
        # A component without ports or URL counts as ready once it has stayed up for 2 s.
        settled = bool(component.ports or component.ready_url) or time.monotonic() - started >= 2.0
        if ports_ok and settled and (component.ready_url is None or _url_answers(component.ready_url)):
            return time.monotonic() - started
        time.sleep(0.3)
    stop(component.name, folder)
    raise ServiceError(_failure(component, folder, f"not ready after {component.start_timeout_s:.0f} s"))


def _failure(component: Component, folder: Path, what: str) -> str:
    log = log_file(folder, component.name)
    return f"{component.name} {what}; last lines of {log}:\n{log_tail(log)}"


def stop(name: str, folder: Path, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop component ``name`` and its process group: SIGTERM, then SIGKILL after ``timeout_s``.

    Returns:
        Whether it was running.
    """
    return bool(stop_all([name], folder, timeout_s))


def stop_all(names: list[str], folder: Path, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop the components ``names`` together: SIGTERM to every group (in this order), wait for all of
    them up to ``timeout_s``, then SIGKILL what is left; their pid files are removed.

    Returns:
        The names of those that were running.
    """
    pids = {name: pid for name in names if (pid := running_pid(folder, name)) is not None}
    for pid in pids.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_group_alive(pid) for pid in pids.values()):
        time.sleep(0.2)
    for name, pid in pids.items():
        _signal_group(pid, signal.SIGKILL)  # what is left of the group (workers may outlive the leader)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            child.wait(timeout=timeout_s)
        pid_file(folder, name).unlink(missing_ok=True)
    return list(pids)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is still in group ``pgid``."""
    child = _CHILDREN.get(pgid)
    if child is not None:
        child.poll()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) == pgid and _start_ticks(int(proc.name)) is not None:
                return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


def state(component: Component, folder: Path) -> ComponentState:
    """The component's current state, from its pid file."""
    pid = running_pid(folder, component.name)
    return ComponentState(
        component.name, pid is not None, pid, component.ports, log_file(folder, component.name)
    )
