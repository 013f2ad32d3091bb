"""The landing zone: where upstream systems drop each day's raw files.

Layout: ``$REELREC_HOME/landing/<feed>/dt=YYYY-MM-DD/`` holding the drop's data files and an empty
``_SUCCESS`` marker written last. A folder without the marker is an incomplete drop and is refused.
See docs/data-contract.md for the fields of each feed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reelrec.errors import DataError
from reelrec.settings import Settings

SUCCESS_MARKER = "_SUCCESS"
# feed -> glob of its data files inside dt=D/
FEEDS: dict[str, str] = {
    "events": "*.jsonl*",
    "videos": "*.parquet",
    "users": "*.parquet",
    "creators": "*.parquet",
    "follows": "*.parquet",
}


class IncompleteDropError(DataError, FileNotFoundError):
    """A landing drop is missing, has no ``_SUCCESS`` marker, or holds no data files."""


def drop_dir(feed: str, date: str, settings: Settings) -> Path:
    """Folder of ``feed``'s drop for logical date ``date``."""
    if feed not in FEEDS:
        raise KeyError(f"unknown landing feed {feed!r}; known feeds: {sorted(FEEDS)}")
    return settings.landing / feed / f"dt={date}"


def drop_files(feed: str, date: str, settings: Settings) -> list[Path]:
    """Data files of a complete drop, sorted by name.

    Raises:
        IncompleteDropError: naming the folder and date when the drop is missing or incomplete.
    """
    folder = drop_dir(feed, date, settings)
    if not folder.is_dir():
        raise IncompleteDropError(f"landing drop {feed} for dt={date} is missing: no folder {folder}")
    if not (folder / SUCCESS_MARKER).exists():
        raise IncompleteDropError(
            f"landing drop {feed} for dt={date} is incomplete: {folder} has no {SUCCESS_MARKER} marker"
        )
    files = sorted(p for p in folder.glob(FEEDS[feed]) if p.is_file())
    if not files:
        raise IncompleteDropError(
            f"landing drop {feed} for dt={date} has no data files matching {FEEDS[feed]!r} in {folder}"
        )
    return files


def check_drops(date: str, settings: Settings) -> dict[str, Any]:
    """Check every feed's drop for ``date``; return files and bytes per feed.

    Raises:
        IncompleteDropError: for the first feed whose drop is missing or incomplete.
    """
    report: dict[str, Any] = {}
    for feed in FEEDS:
        files = drop_files(feed, date, settings)
        report[feed] = {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
    return report
