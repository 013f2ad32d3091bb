"""Named fault-injection points, for tests of what a night does when something flakes.

Code marks a place where production can fail with one line, ``faults.point("materialize.view",
view=name)``. A point does nothing (one environment lookup) unless ``REELREC_FAULTS`` names it::

    REELREC_FAULTS="publish.outputs:connection:1"                   # ConnectionError, the first time only
    REELREC_FAULTS="materialize.view@view=user_daily_embedding:timeout:2,ingest.events:connection"

A spec is ``POINT[@KEY=VALUE...]:KIND[:TIMES]``, several separated by commas. ``@KEY=VALUE``
(repeatable) restricts it to calls whose context has ``KEY`` equal to ``VALUE`` (compared as
strings); ``TIMES`` (default 1) is how often it fires in all, then the point is quiet again.
Kinds are :data:`KINDS`: ``connection`` (:class:`ConnectionError`, like Redis or Postgres
refusing a connection), ``timeout`` (:class:`TimeoutError`), ``kill`` (SIGKILL of the current
process: a worker dying mid-task, for the reliability tests), ``corrupt`` (nothing is raised:
:func:`point` returns True and the code at that point corrupts its own data on purpose, e.g.
``train.labels:corrupt`` trains on shuffled labels, the broken model the promotion gate must
hold). A new kind is one entry there.

Points (``name``: where, its context):

- ``lake.commit`` (:func:`reelrec.lake.write_partition`, every Delta write of ingest, the feature
  jobs and scoring): ``table``, ``date``, ``phase`` = ``before`` | ``after`` the delta-rs commit;
- ``materialize.view`` (:mod:`feature_repo.materialize`): ``date``, ``view``, before each view's
  write step (the three output views of publish share one step);
- ``model.save`` (``models/{two_tower,ranker}/artifacts.py`` ``save``): ``model``, ``date``,
  between the weights and the rest of the version folder;
- ``online_write.batch`` (:mod:`feature_repo.online_write`): ``batch``, ``views``, between the
  bulk writer's batches;
- ``publish.outputs`` (:mod:`models.publish`): ``date``, online values written, release not yet;
- ``train.labels`` (both trainers): ``date``, ``model``, for ``corrupt``.

tests/test_crash_points.py kills a night at each write boundary with these (docs/reliability.md).

How often a spec fired is counted in ``$REELREC_HOME/faults/`` under a file lock, so "the first
time" holds across processes and task retries: a retried Airflow task finds the fault spent and
runs through. :func:`fired` reads the counts back; :func:`reset` deletes them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reelrec.settings import Settings

ENV = "REELREC_FAULTS"
FOLDER = "faults"


class InjectedTimeoutError(TimeoutError):
    """A ``timeout`` fault: an operation that ran out of time."""


class InjectedConnectionError(ConnectionError):
    """A ``connection`` fault: a service that refused or dropped the connection."""


def _connection(message: str) -> None:
    raise InjectedConnectionError(message)


def _timeout(message: str) -> None:
    raise InjectedTimeoutError(message)


def _kill(message: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no except clause: like the OOM killer


def _corrupt(message: str) -> None:
    """Nothing to raise: the caller sees ``point(...)`` return True and corrupts its data."""


# kind -> what firing does, given the message naming the spec and the point's context.
KINDS: dict[str, Callable[[str], None]] = {
    "connection": _connection,
    "timeout": _timeout,
    "kill": _kill,
    "corrupt": _corrupt,
}


@dataclass(frozen=True)
class Fault:
    """One parsed spec of ``REELREC_FAULTS``."""

    spec: str  # as written, e.g. "publish.outputs:connection:1"
    point: str
    kind: str
    times: int
    where: tuple[tuple[str, str], ...] = ()  # (key, value) pairs the call's context must match

    def matches(self, name: str, context: Mapping[str, object]) -> bool:
        """Whether a call of point ``name`` with ``context`` is one this fault targets."""
        return name == self.point and all(str(context.get(k)) == v for k, v in self.where)


def parse(text: str) -> list[Fault]:
    """The faults of a ``REELREC_FAULTS`` value (empty for an empty value).

    Raises:
        ValueError: naming the spec, for an unknown kind, a bad count or a malformed ``@KEY=VALUE``.
    """
    faults = []
    for spec in (part.strip() for part in text.split(",")):
        if not spec:
            continue
        target, _, rest = spec.partition(":")
        kind, _, times = rest.partition(":")
        point, *conditions = target.split("@")
        if not point or kind not in KINDS:
            raise ValueError(
                f"{ENV}: {spec!r} is not POINT[@KEY=VALUE]:KIND[:TIMES] with KIND in {list(KINDS)}"
            )
        if not (times or "1").isdigit() or int(times or "1") < 1:
            raise ValueError(f"{ENV}: {spec!r}: TIMES must be a positive integer, got {times!r}")
        where = []
        for condition in conditions:
            key, sep, value = condition.partition("=")
            if not (key and sep):
                raise ValueError(f"{ENV}: {spec!r}: condition {condition!r} is not KEY=VALUE")
            where.append((key, value))
        faults.append(Fault(spec, point, kind, int(times or "1"), tuple(where)))
    return faults


def _counter(spec: str, settings: Settings) -> Path:
    digest = hashlib.sha1(spec.encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in spec)[:60]
    return settings.home / FOLDER / f"{safe}.{digest}.count"


def _claim(fault: Fault, settings: Settings) -> int:
    """Count one firing of ``fault`` (under a file lock); its number, or 0 when it is spent."""
    path = _counter(fault.spec, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        count = int(handle.read().strip() or 0)
        if count >= fault.times:
            return 0
        handle.seek(0)
        handle.truncate()
        handle.write(str(count + 1))
        handle.flush()
        os.fsync(handle.fileno())
        return count + 1


def point(name: str, settings: Settings | None = None, **context: object) -> bool:
    """A place where production can fail: fire the faults of ``REELREC_FAULTS`` that target it.

    Args:
        name: the point's name, ``<stage>.<step>`` (e.g. ``materialize.view``).
        settings: where the counts live (``Settings.from_env()`` when omitted).
        **context: what the call is doing (``view="user_daily_candidates"``), matched by
            ``@KEY=VALUE`` and shown in the error.

    Returns:
        Whether a ``corrupt`` fault fired here (the caller then corrupts its data on purpose).

    Raises:
        ConnectionError, TimeoutError: when a ``connection``/``timeout`` fault targets this call
            and has not fired ``TIMES`` times yet (a ``kill`` fault never returns).
    """
    text = os.environ.get(ENV)
    if not text:
        return False
    corrupted = False
    for fault in parse(text):
        if not fault.matches(name, context):
            continue
        number = _claim(fault, settings or Settings.from_env())
        if number:
            shown = ", ".join(f"{k}={v}" for k, v in context.items())
            KINDS[fault.kind](
                f"injected {fault.kind} fault at {name}({shown}): {fault.spec!r}, firing {number} of "
                f"{fault.times} ({ENV})"
            )
            corrupted = corrupted or fault.kind == "corrupt"
    return corrupted


def fired(settings: Settings) -> dict[str, int]:
    """How often each spec of the current ``REELREC_FAULTS`` has fired in ``settings``' home."""
    counts = {}
    for fault in parse(os.environ.get(ENV, "")):
        path = _counter(fault.spec, settings)
        counts[fault.spec] = int(path.read_text().strip() or 0) if path.exists() else 0
    return counts


def reset(settings: Settings) -> None:
    """Forget every count in ``settings``' home: each fault fires again."""
    folder = settings.home / FOLDER
    for path in folder.glob("*.count") if folder.is_dir() else []:
        path.unlink()
