"""The description of one long-running process of the stack (:class:`Component`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Component:
    """One long-running process of the stack.

    Attributes:
        name: stable id, e.g. ``spark-connect``, ``airflow-scheduler`` (pid file and log are named after it).
        argv: the command line, absolute paths to the venv's own binaries.
        env: variables set on top of the caller's environment.
        ports: TCP ports it listens on, on 127.0.0.1: checked free before the start, and the component
            counts as ready once every one of them accepts connections.
        ready_url: optional HTTP URL that answers 2xx once the component is ready (checked after ports).
        start_timeout_s: how long a start may take before it is reported as failed, with its log.
        after: names of components that must be ready before this one starts.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    ready_url: str | None = None
    start_timeout_s: float = 90.0
    after: tuple[str, ...] = ()
