"""What the DAG files share: the hand-off from a task to its job, and the retry policy.

A task is a few lines that call a job by name (``call("spark_jobs.ingest_events:main", D)``), so
parsing a DAG imports no job code. The job's errors decide the task's outcome: bad data
(:class:`reelrec.errors.DataError`) fails it at once, since no retry can fix it; nothing to do yet
(:class:`reelrec.errors.NothingToDoError`) skips it and its downstream tasks; anything else (Redis or
Postgres briefly away, the run lock held) is retried by :func:`default_args`' policy.
"""

from __future__ import annotations

import os
from typing import Any


def call(entry: str, *args: Any) -> Any:
    """Import ``module:function`` lazily, call it with ``*args`` and the settings from the environment."""
    import importlib

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from reelrec.errors import DataError, NothingToDoError
    from reelrec.settings import Settings

    module, function = entry.split(":")
    try:
        return getattr(importlib.import_module(module), function)(*args, Settings.from_env())
    except DataError as err:
        raise AirflowFailException(f"{type(err).__name__}: {err}") from err
    except NothingToDoError as err:
        raise AirflowSkipException(f"{type(err).__name__}: {err}") from err


def default_args() -> dict[str, Any]:
    """Owner and retries of every reelrec task: 3 retries after ``REELREC_RETRY_DELAY_S`` (120 s),
    doubling each time, at most 15 minutes (read when the DAG file is parsed)."""
    import pendulum

    return {
        "owner": "reelrec",
        "retries": 3,
        "retry_delay": pendulum.duration(seconds=float(os.environ.get("REELREC_RETRY_DELAY_S", "120"))),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": pendulum.duration(minutes=15),
    }
