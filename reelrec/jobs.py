"""Command-line wrapper shared by the jobs: ``python -m spark_jobs.<job> --date D``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from reelrec.catalog import Table
from reelrec.dates import cli_date
from reelrec.settings import Settings

JobMain = Callable[[str, Settings], dict[str, Any]]


def written_facts(
    table: Table, settings: Settings, date: str, version: int, inputs: dict[str, int | None]
) -> dict[str, Any]:
    """What a job that replaced ``table``'s ``dt=date`` partition reports (to the DAG and the manifest)."""
    from reelrec.lake import partition_row_count

    return {
        "date": date,
        "rows_written": partition_row_count(table, settings, date),
        "versions": {table.name: version},
        "inputs": inputs,
    }


def run_job(main: JobMain, description: str, argv: list[str] | None = None) -> int:
    """Parse ``--date`` (and ``--home``), run ``main`` and print its facts as JSON on stdout."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--date", required=True, type=cli_date, help="logical date YYYY-MM-DD")
    parser.add_argument("--home", default=None, help="REELREC_HOME (default: env or ./.reelrec)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    facts = main(args.date, Settings.from_env(args.home))
    json.dump(facts, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0
