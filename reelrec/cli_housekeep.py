"""``reelrec housekeep [--dry-run] [--json]``: the housekeeping DAG's work from the shell.

Registered on the ``reelrec`` parser by :func:`add_parsers` (kept apart so ``cli.py`` stays short);
the work is :func:`reelrec.housekeeping.housekeep`, imported when the command runs. Exit status 75
(the run lock's) while a night runs or another command holds the home. docs/housekeeping.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from reelrec.settings import Settings


def cmd_housekeep(args: argparse.Namespace, settings: Settings) -> int:
    from reelrec.housekeeping import cli_main

    return cli_main(settings, dry_run=args.dry_run, as_json=args.json)


def add_parsers(sub: Any) -> None:
    """Add ``housekeep`` to the ``reelrec`` command's subparsers."""
    p = sub.add_parser("housekeep", help="compact/vacuum the lake, prune old models, expire old lists")
    p.add_argument("--dry-run", action="store_true", help="report what would be removed; change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_housekeep)
