"""The stack of a profile: its components, the engines it needs, and ``up``/``down``/``status`` over them.

Embedded profile: ``spark-connect`` (Spark in local mode) and the Airflow api-server, scheduler,
dag-processor and triggerer on SQLite. Production profile: the Spark standalone ``spark-master`` and
``spark-worker`` with ``spark-connect`` on them, the same Airflow components on Postgres and a
``celery-worker``; Postgres and Redis are external services, checked (and the Airflow database
created) but never started here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reelrec.services import process
from reelrec.services.component import Component
from reelrec.services.engines import check_engines
from reelrec.services.process import ComponentState, ServiceError
from reelrec.settings import Settings

SPARK_CONNECT = "spark-connect"


def spark_components(settings: Settings) -> list[Component]:
    """The Spark components of ``settings``' stack (none when :mod:`reelrec.spark_cluster` is absent)."""
    try:
        from reelrec.spark_cluster import spark_components as described
    except ImportError:
        return []
    return list(described(settings))


def spark_remote_of(stack: Sequence[Component]) -> str:
    """``sc://`` URL of the stack's Spark Connect server ("" when the stack has none)."""
    for component in stack:
        if component.name == SPARK_CONNECT and component.ports:
            return f"sc://{process.HOST}:{component.ports[0]}"
    return ""


def components(settings: Settings, spark: Sequence[Component] | None = None) -> list[Component]:
    """Every component of ``settings``' profile, in start order (``after`` honoured).

    Args:
        settings: the profile, ports and folders.
        spark: the Spark components to use (default: :func:`spark_components`); tests pass their own
            ports this way.
    """
    from reelrec.airflow_local import airflow_components

    spark = list(spark_components(settings) if spark is None else spark)
    return ordered([*spark, *airflow_components(settings, spark_remote=spark_remote_of(spark))])


def ordered(stack: Sequence[Component]) -> list[Component]:
    """``stack`` sorted so that every component comes after the ones it names in ``after``.

    Raises:
        ServiceError: when ``after`` names a component that is not in the stack, or a cycle.
    """
    by_name = {c.name: c for c in stack}
    done: list[Component] = []
    visiting: set[str] = set()

    def visit(component: Component) -> None:
        if component in done:
            return
        if component.name in visiting:
            raise ServiceError(f"components wait for each other: {component.name} (after={component.after})")
        visiting.add(component.name)
        for name in component.after:
            if name not in by_name:
                raise ServiceError(f"{component.name} starts after {name}, which is not in the stack")
            visit(by_name[name])
        visiting.discard(component.name)
        done.append(component)

    for component in stack:
        visit(component)
    return done


def up(
    settings: Settings,
    stack: Sequence[Component] | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Start every component of the stack that is not running yet, each once those it waits for are
    ready; idempotent.

    The engines are checked and the Airflow database migrated first. In the production profile the
    Airflow UI's ``admin`` password is generated at the first start (printed here, once, through
    ``echo``; kept with mode 0600, see :func:`reelrec.airflow_local.ensure_login`). Components whose
    ``after`` are all ready start together.

    Returns:
        ``{"started": [names], "running": [names already up], "seconds": float}``.

    Raises:
        ServiceError: a port taken by something else, a component that exits or is not ready in time
            (with the last lines of its log); the components started by this call are then stopped.
    """
    from reelrec.airflow_local import ADMIN_USER, ensure_db, ensure_login, passwords_file

    began = time.monotonic()
    stack = ordered(stack if stack is not None else components(settings))
    folder = settings.services
    folder.mkdir(parents=True, exist_ok=True)
    check_engines(settings)
    if any(c.name.startswith("airflow-") for c in stack):
        # Before anything of Airflow runs: the simple auth manager would write the file itself,
        # with the umask's permissions and the password in the api-server's log.
        password = ensure_login(settings)
        if password is not None:
            echo(
                f"[services] Airflow login: user {ADMIN_USER}, password {password}  (shown once; "
                f"kept in {passwords_file(settings)}, mode 0600)"
            )
        ensure_db(settings)
    already = [c.name for c in stack if process.running_pid(folder, c.name) is not None]
    started: list[str] = []
    try:
        _start_in_waves(stack, folder, set(already), started, echo)
    except BaseException:
        process.stop_all(list(reversed(started)), folder)
        raise
    return {"started": started, "running": already, "seconds": round(time.monotonic() - began, 1)}


def _start_in_waves(
    stack: Sequence[Component], folder: Path, ready: set[str], started: list[str], echo: Callable[[str], None]
) -> None:
    pending = [c for c in stack if c.name not in ready]
    while pending:
        wave = [c for c in pending if all(name in ready for name in c.after)]
        for component in wave:
            process.check_ports_free(component)
        pids = {}
        for component in wave:
            pids[component.name] = process.start(component, folder)
            started.append(component.name)
        for component in wave:
            seconds = process.wait_ready(component, folder, pids[component.name])
            ports = ",".join(str(p) for p in component.ports) or "-"
            pid = pids[component.name]
            echo(f"[services] {component.name:<22} up in {seconds:5.1f}s  pid {pid}  ports {ports}")
            ready.add(component.name)
        pending = [c for c in pending if c.name not in ready]


def down(settings: Settings, stack: Sequence[Component] | None = None) -> list[str]:
    """Stop every component that has a pid file under ``settings.services`` (reverse start order);
    idempotent.

    Components not in the current profile's stack are stopped too (first), so switching profiles
    never strands a process.

    Returns:
        The names of the components that were running.
    """
    folder = settings.services
    if not folder.exists():
        return []
    known = [c.name for c in ordered(stack if stack is not None else _stack_or_empty(settings))]
    recorded = sorted(path.stem for path in folder.glob("*.pid"))
    order = [name for name in recorded if name not in known] + [n for n in reversed(known) if n in recorded]
    return process.stop_all(order, folder)


def _stack_or_empty(settings: Settings) -> list[Component]:
    try:
        return components(settings)
    except (ServiceError, OSError, ModuleNotFoundError):
        return []


def status(settings: Settings, stack: Sequence[Component] | None = None) -> list[ComponentState]:
    """Each component of the stack: running or not, pid, ports and log."""
    stack = ordered(stack if stack is not None else components(settings))
    return [process.state(component, settings.services) for component in stack]
