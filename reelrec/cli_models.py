"""``reelrec models list`` and ``reelrec rollback``: the model versions and moving the serving pointer.

reelrec models list [--json]            # versions, nights, metrics, gate decisions; * marks the serving one
reelrec rollback --to VERSION [--json]  # republish VERSION's lists and embeddings from the gold tables

Registered on the ``reelrec`` parser by :func:`add_parsers` (kept apart so ``cli.py`` stays short).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from reelrec.settings import Settings


def release_rows(settings: Settings) -> list[dict[str, Any]]:
    """Every recorded release as a dict, oldest night first, with ``serving`` marking the serving one."""
    from reelrec.releases import releases, serving_pointer

    pointer = serving_pointer(settings)
    current = pointer["version"] if pointer else None
    return [{**r.to_dict(), "serving": r.version == current} for r in releases(settings)]


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from reelrec.cli_format import format_releases

    rows = release_rows(settings)
    print(json.dumps(rows, indent=2, default=str) if args.json else format_releases(rows))
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from reelrec.cli_format import format_rollback
    from reelrec.rollback import UnknownVersionError, rollback

    try:
        facts = rollback(settings, args.to)
    except UnknownVersionError as err:
        raise SystemExit(f"reelrec rollback: {err}") from None
    print(json.dumps(facts, indent=2, default=str) if args.json else format_rollback(facts))
    return 0


def serving_line(settings: Settings) -> tuple[str | None, str]:
    """The serving version (``None`` when none is recorded) and ``reelrec recommend``'s first line."""
    from reelrec.cli_format import format_serving
    from reelrec.releases import serving, serving_pointer

    release = serving(settings)
    line = format_serving(release.to_dict() if release else None, serving_pointer(settings))
    return (release.version if release else None), line


def add_parsers(sub: Any) -> None:
    """Add ``models`` and ``rollback`` to the ``reelrec`` subcommand parsers ``sub``."""
    p = sub.add_parser("models", help="model versions: nights, metrics, gate decisions")
    models = p.add_subparsers(dest="models_command", required=True)
    q = models.add_parser("list", help="every recorded version; * marks the serving one")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_models)

    p = sub.add_parser("rollback", help="serve an earlier model version again, from the gold tables")
    p.add_argument("--to", required=True, metavar="VERSION", help="see `reelrec models list`")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rollback)
