"""The landing zone: where upstream systems drop each day's raw files.

Layout: ``$REELREC_HOME/landing/<feed>/dt=YYYY-MM-DD/`` holding the drop's data files and an empty
``_SUCCESS`` marker written last. A folder without the marker is an incomplete drop and is refused.
See docs/data-contract.md for the fields of each feed.

Nothing from outside picks a path here: the feed must be one of :data:`FEEDS`, the date a
``YYYY-MM-DD`` logical date, and a drop file a plain name (:func:`check_file_name`), so no argument
or file name can reach outside ``REELREC_HOME/landing``.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from reelrec.dates import iso_date
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


# The event files ingest reads: plain JSON lines or gzip-compressed ones. Other names the feed's glob
# matches (``.jsonl.bz2``, ``.jsonl.png``) are refused rather than guessed at.
EVENT_FILE_SUFFIXES = (".jsonl", ".jsonl.gz")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_REPLAY_STEP = 256  # the resolution, in compressed bytes, of the offset a corrupt member reports


class IncompleteDropError(DataError, FileNotFoundError):
    """A landing drop is missing, has no ``_SUCCESS`` marker, or holds no data files."""


class CorruptDropFileError(DataError):
    """A landing data file is not what its name says: a truncated or corrupt gzip member, a ``.gz``
    file that is not gzip at all, or a name with a suffix the feed does not accept."""


class EmptyDropError(DataError):
    """A marked drop whose data files hold no bytes at all: a day without one event is an upstream
    fault, not a quiet night, so ingest refuses it instead of writing an empty partition."""


def drop_dir(feed: str, date: str, settings: Settings) -> Path:
    """Folder of ``feed``'s drop for logical date ``date``.

    Raises:
        KeyError: naming an unknown feed.
        ValueError: naming a date that is not ``YYYY-MM-DD`` (``../x`` never becomes a folder).
    """
    if feed not in FEEDS:
        raise KeyError(f"unknown landing feed {feed!r}; known feeds: {sorted(FEEDS)}")
    try:
        date = iso_date(date)
    except ValueError as err:
        raise ValueError(f"landing drop {feed}: {err}") from None
    return settings.landing / feed / f"dt={date}"


def check_file_name(feed: str, name: str) -> str:
    """``name`` when it is a plain file name for a drop of ``feed``: no folder part, no ``..``.

    Raises:
        DataError: naming the feed and the file when it holds a path separator, ``..``, a NUL byte,
            or is empty or a dot-name (hidden files are not data).
    """
    bad = not name or name.startswith(".") or ".." in name or any(sep in name for sep in ("/", "\\", "\x00"))
    if bad:
        raise DataError(
            f"landing drop {feed}: file name {name!r} is not a plain file name "
            "(no '/', '\\', '..' or leading '.'); drop files stay inside their dt= folder"
        )
    return name


def _problem(feed: str, date: str, settings: Settings) -> str | None:
    """Why ``feed``'s drop for ``date`` is not complete (naming the folder), or ``None`` when it is."""
    folder = drop_dir(feed, date, settings)
    if not folder.is_dir():
        return f"landing drop {feed} for dt={date} is missing: no folder {folder}"
    if not (folder / SUCCESS_MARKER).exists():
        return f"landing drop {feed} for dt={date} is incomplete: {folder} has no {SUCCESS_MARKER} marker"
    if not _data_files(feed, folder):
        return f"landing drop {feed} for dt={date} has no data files matching {FEEDS[feed]!r} in {folder}"
    return None


def drop_files(feed: str, date: str, settings: Settings) -> list[Path]:
    """Data files of a complete drop, sorted by name.

    Raises:
        IncompleteDropError: naming the folder and date when the drop is missing or incomplete.
    """
    problem = _problem(feed, date, settings)
    if problem:
        raise IncompleteDropError(problem)
    return _data_files(feed, drop_dir(feed, date, settings))


def _data_files(feed: str, folder: Path) -> list[Path]:
    """Files of ``folder`` matching ``feed``'s glob, sorted; names starting with ``_`` or ``.``
    (the marker, writers' temporary and checksum files) are not data."""
    return sorted(p for p in folder.glob(FEEDS[feed]) if p.is_file() and not p.name.startswith(("_", ".")))


def check_event_file(path: Path) -> int:
    """Bytes of JSON-lines text in an events drop file, after checking it can be read whole.

    A ``.jsonl.gz`` file is decompressed here, member after member, with zlib's streaming decoder,
    so a corrupt file fails before Spark reads it, as bad data (no retry can fix it) with a message
    naming the file, the compressed byte offset and the line reached; Spark's own error for it is a
    plain task failure that the nightly DAG would retry.

    Raises:
        CorruptDropFileError: naming the file when its suffix is not one of
            :data:`EVENT_FILE_SUFFIXES`, when a ``.gz`` file does not start with the gzip magic
            bytes, or when a gzip member is corrupt, truncated, or followed by bytes that are not gzip.
    """
    if not path.name.endswith(EVENT_FILE_SUFFIXES):
        raise CorruptDropFileError(
            f"landing file {path}: unsupported suffix; events drop files end in "
            f"{' or '.join(EVENT_FILE_SUFFIXES)}"
        )
    if not path.name.endswith(".gz"):
        return path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(2)
        if head != _GZIP_MAGIC:
            raise CorruptDropFileError(
                f"landing file {path}: not gzip (starts with {head!r}, not {_GZIP_MAGIC!r}); "
                "a .jsonl.gz drop file must be gzip-compressed JSON lines"
            )
        stream.seek(0)
        return _gunzip_size(path, stream)


def _gunzip_size(path: Path, stream: Any) -> int:
    """Decompressed size of the gzip members in ``stream`` (``path`` names it in errors)."""
    member, members, fed = zlib.decompressobj(wbits=31), 1, 0  # fed: bytes given to this member
    offset = size = newlines = 0  # compressed bytes consumed, text bytes out, complete lines out

    def corrupt(problem: str) -> CorruptDropFileError:
        return CorruptDropFileError(
            f"landing file {path}: {problem} (at compressed byte {offset} of {path.stat().st_size}; "
            f"line {newlines + 1} was being decoded, {newlines} complete lines before it); "
            "no retry can fix the file: re-deliver the drop"
        )

    pending = b""
    while True:
        chunk = pending or stream.read(_CHUNK)
        pending = b""
        if not chunk:
            break
        if member.eof:  # more bytes after a complete member: the next member must start here
            member, members, fed = zlib.decompressobj(wbits=31), members + 1, 0
        before = member.copy()
        try:
            text = member.decompress(chunk)
        except zlib.error as err:
            # Replay the chunk in small steps from the saved state to say where it broke.
            for start in range(0, len(chunk), _REPLAY_STEP):
                try:
                    newlines += before.decompress(chunk[start : start + _REPLAY_STEP]).count(b"\n")
                except zlib.error:
                    offset += start
                    break
            raise corrupt(f"gzip member {members} is corrupt: {err}") from None
        fed += len(chunk)
        size, newlines = size + len(text), newlines + text.count(b"\n")
        offset += len(chunk) - len(member.unused_data)
        pending = member.unused_data
    if fed and not member.eof:
        raise corrupt(f"truncated gzip member {members}: the file ends before the member does")
    return size


def missing_drops(date: str, settings: Settings) -> dict[str, str]:
    """The feeds whose drop for ``date`` is not complete yet, each with why (empty: all complete).

    What the nightly DAG's ``check_landing`` sensor pokes: a drop counts once its ``_SUCCESS``
    marker is written (last, by the upstream system) and it holds data files.
    """
    problems = {feed: _problem(feed, date, settings) for feed in FEEDS}
    return {feed: problem for feed, problem in problems.items() if problem}


def format_missing(date: str, missing: dict[str, str]) -> str:
    """One message naming the feeds of :func:`missing_drops` and, for each, its folder and problem."""
    return (
        f"{len(missing)} of {len(FEEDS)} landing drops for dt={date} not complete "
        f"({', '.join(missing)}): " + "; ".join(missing.values())
    )


def waits_for_drops(run_type: str, params: dict[str, Any] | None) -> bool:
    """Whether a DAG run waits for late drops (``True``) or checks them once and fails (``False``).

    A scheduled night waits: its drops are due around the end of D and may come late. A manual
    run, a backfill, or any run pinning D with the ``date`` param processes a past date whose
    drops should be there: waiting would only hide the problem. The ``wait_for_data`` param
    (``true``/``false``) overrides both.
    """
    chosen = (params or {}).get("wait_for_data")
    if chosen is not None:
        return bool(chosen)
    return str(getattr(run_type, "value", run_type)) == "scheduled" and not (params or {}).get("date")


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
