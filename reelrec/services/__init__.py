"""The long-running processes of a reelrec stack: what they are, and starting, stopping, showing them.

A :class:`Component` describes one process (an Airflow component, a Celery worker, a Spark master,
worker or Connect server): its command line, environment and the ports it listens on, always on
127.0.0.1. ``reelrec services up|down|status`` starts, stops and shows the components of the
current profile, with pid files and logs under ``REELREC_HOME/services``.

- :mod:`reelrec.services.component`: the :class:`Component` description;
- :mod:`reelrec.services.process`: one process: pid file, log, port checks, readiness, stop;
- :mod:`reelrec.services.stack`: the components of a profile, the external engines it needs
  (Postgres, Redis) and ``up``/``down``/``status`` over all of them.
"""

from __future__ import annotations

from reelrec.services.component import Component
from reelrec.services.process import ComponentState, ServiceError
from reelrec.services.stack import components, down, status, up

__all__ = ["Component", "ComponentState", "ServiceError", "components", "down", "status", "up"]
