"""Errors that mean "the data is wrong", as opposed to "something flaked".

A :class:`DataError` is deterministic: retrying the task on the same inputs gives the same result,
so the nightly DAG fails such a task at once (no retries) while transient errors (a lost executor,
a busy database) still get the DAG's retries.
"""


class DataError(Exception):
    """Input or output data broke a contract; the message names table/file, date, field and rows."""


class NothingToDoError(Exception):
    """A stage has nothing to work on for this date yet (e.g. no earlier night to train on).

    Not a failure: the nightly DAG skips the task and everything that depends on it, and the night
    still succeeds.
    """
