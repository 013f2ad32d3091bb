"""Validation reports: the outcome of one suite on one table partition, and where it is kept.

A report is written as JSON to ``runs/dt=D/validation/<suite>.<table>.json``; :func:`report_path`
is the only place that spells that path out. Besides the outcome it records ``versions``, the Delta
version of every table the checks read (the validated table and, for suite "outputs", the tables
it was compared against), so a consumer such as :mod:`models.publish` can tell whether the rows
that passed are still the rows in the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reelrec.errors import DataError
from reelrec.settings import Settings

REPORTS_FOLDER = "validation"
"""Folder of a night's run directory holding its validation reports."""

SAMPLE_ROWS = 5
"""How many offending rows a failure carries (in the report and in the error message)."""


@dataclass
class ValidationReport:
    """Outcome of one suite on one table partition.

    ``failed`` holds one dict per failed expectation: ``expectation`` (GX type), ``column``
    (``None`` for table-level rules), ``rule`` (its arguments), ``observed`` and ``sample_rows``
    (up to :data:`SAMPLE_ROWS` offending rows: key columns and the checked columns).
    ``versions`` maps every table the checks read to the Delta version read (``None``: the table
    did not exist).
    """

    suite: str
    table: str
    date: str
    success: bool
    evaluated: int
    failed: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, int | None] = field(default_factory=dict)
    path: Path | None = None  # where the JSON report was written or read

    def describe(self) -> str:
        """Human-readable summary naming the table, the date, each failed rule and its rows."""
        head = f"suite {self.suite!r}, table {self.table}, dt={self.date}"
        if self.success:
            return f"{head}: passed {self.evaluated} expectation(s)"
        lines = [f"{head}: {len(self.failed)} of {self.evaluated} expectation(s) failed"]
        if self.path:
            lines[0] += f" (report: {self.path})"
        for failure in self.failed:
            where = f" on column {failure['column']!r}" if failure["column"] else ""
            rule = f" [{failure['rule']}]" if failure.get("rule") else ""
            observed = failure["observed"]
            if not isinstance(observed, str):
                observed = json.dumps(observed, default=str)
            lines.append(f"  - {failure['expectation']}{where}{rule}: observed {observed}")
            lines += [f"      offending row: {json.dumps(r, default=str)}" for r in failure["sample_rows"]]
        return "\n".join(lines)


class ValidationError(DataError):
    """A table partition broke its suite; the message names suite, table, date, rules and rows."""

    def __init__(self, message: str, reports: Sequence[ValidationReport] = ()) -> None:
        super().__init__(message)
        self.reports = list(reports)


def jsonable(value: Any) -> Any:
    """Plain JSON values from numpy / pandas / datetime values (NaN and NaT become None)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays and scalars
        return jsonable(value.tolist())
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:  # pandas NaT / NA
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def reports_dir(date: str, settings: Settings) -> Path:
    """Folder of the validation reports of night ``date``: ``runs/dt=D/validation``."""
    return settings.run_dir(date) / REPORTS_FOLDER


def report_path(suite: str, table: str, date: str, settings: Settings) -> Path:
    """Where the report of ``suite`` on ``table``'s ``dt=date`` partition is written."""
    return reports_dir(date, settings) / f"{suite}.{table}.json"


def write_report(report: ValidationReport, settings: Settings, outcomes: list[dict[str, Any]]) -> Path:
    """Write ``report`` with every expectation's outcome (atomically) and return its path."""
    path = report_path(report.suite, report.table, report.date, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in asdict(report).items() if k != "path"}
    body["expectations"] = outcomes
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def _from_file(path: Path) -> ValidationReport:
    """A report read back; fields a report lacks take the values of a failed, empty report."""
    body = json.loads(path.read_text())
    suite, _, table = path.stem.partition(".")
    return ValidationReport(
        suite=body.get("suite", suite),
        table=body.get("table", table),
        date=body.get("date", path.parent.parent.name.removeprefix("dt=")),
        success=bool(body.get("success")),
        evaluated=int(body.get("evaluated") or 0),
        failed=list(body.get("failed") or []),
        versions=dict(body.get("versions") or {}),
        path=path,
    )


def read_report(suite: str, table: str, date: str, settings: Settings) -> ValidationReport | None:
    """The report of ``suite`` on ``table`` for ``date`` as last written, or ``None`` if there is none."""
    path = report_path(suite, table, date, settings)
    return _from_file(path) if path.exists() else None


def read_reports(date: str, settings: Settings) -> list[ValidationReport]:
    """Every validation report of night ``date``, by suite then table name (empty if none)."""
    folder = reports_dir(date, settings)
    return [_from_file(path) for path in sorted(folder.glob("*.json"))] if folder.exists() else []
