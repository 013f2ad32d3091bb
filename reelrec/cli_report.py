"""``reelrec report``: write night D's HTML report (``runs/dt=D/report.html``) and print its path.

reelrec report --date 2026-11-07 [--open]   # --open: also open it in the web browser

Registered on the ``reelrec`` parser by :func:`add_parsers` (kept apart so ``cli.py`` stays short).
"""

from __future__ import annotations

import argparse
from typing import Any

from reelrec.dates import cli_date
from reelrec.settings import Settings


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Write the report (and ``runs/index.html``), print its path; ``--open`` opens it."""
    import webbrowser

    from reelrec.report_html import write_report

    path = write_report(args.date, settings)
    print(path)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``report`` to the ``reelrec`` subcommands."""
    p = sub.add_parser("report", help="write night D's HTML report with plots (runs/dt=D/report.html)")
    p.add_argument("--date", type=cli_date, required=True)
    p.add_argument("--open", action="store_true", help="open the report in the web browser")
    p.set_defaults(func=cmd_report)
