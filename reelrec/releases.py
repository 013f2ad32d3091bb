"""The release registry and the serving pointer: which model version each night produced and which one serves.

A *release* is what one night produced for the online store: the gold rows of one ``model_version``
(the string every row of ``gold.candidates``, ``gold.user_embeddings`` and ``gold.video_embeddings``
carries), the night ``D`` they rank, the model versions behind them, the offline metrics they were
scored with and the promotion gate's decision (:mod:`models.gate`). A night the gate *held* is recorded
too (``gate.publish`` false, no ``published_at``): ``reelrec models list`` shows it and a rollback may
still republish it on purpose.

Both are plain JSON files under ``settings.models`` (``$REELREC_HOME/models``), written atomically
(a temporary file in the same folder, then ``os.replace``), so a reader never sees half a file.

``releases/<version>.json``, one file per release (recording a version again replaces it)::

    {"version": "two_tower_v1-20261102-ab12", "night": "2026-11-02",
     "components": {"two_tower": "two_tower_v1-20261102-ab12", "ranker": "ranker_v1-20261102-cd34"},
     "metrics": {"ndcg@10": 0.1403, "recall@100": 0.412},
     "gate": {"publish": true, "reason": "published: ...", "candidate": 0.1403, "serving": 0.1350, ...},
     "published_at": "2026-11-03T03:20:11+00:00",   # null when the gate held the night
     "forced": false}

``serving.json``, the pointer: the version the online store serves now, and every move of the pointer,
oldest first (``reason`` says why: ``publish``, ``forced`` (a publish that overrode the gate) or
``rollback``; ``details`` is what the mover recorded, e.g. a rollback's online timestamp)::

    {"version": "two_tower_v1-20261101-ef56", "night": "2026-11-01", "since": "2026-11-03T09:12:00+00:00",
     "reason": "rollback",
     "history": [{"version": "...", "night": "...", "at": "...", "reason": "publish", "previous": null,
                  "details": {}}, ...]}

The pointer is read-modify-written by one writer at a time (the night's publish task, or a person's
``reelrec rollback``); two concurrent movers would each write a whole, valid file, the later one wins.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reelrec.settings import Settings

RELEASES_DIR = "releases"
SERVING_FILE = "serving.json"
REASONS = ("publish", "forced", "rollback")
_SAFE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


@dataclass(frozen=True)
class Release:
    """What one night produced for the online store (see the module docstring for the JSON form)."""

    version: str  # model_version of the gold rows
    night: str  # catalog night D the lists rank
    components: dict[str, str] = field(default_factory=dict)  # {"two_tower": ..., "ranker": ...}
    metrics: dict[str, float] = field(default_factory=dict)  # offline metrics of the final lists
    gate: dict[str, Any] = field(default_factory=dict)  # models.gate.Decision as a dict
    published_at: str | None = None  # ISO UTC; None when the gate held the night
    forced: bool = False  # published although the gate would have held it

    @property
    def published(self) -> bool:
        """Whether the night reached the online store (the gate passed it, or it was forced)."""
        return self.published_at is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form written to ``releases/<version>.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Release:
        """Read a release back (unknown keys are ignored, so older files stay readable)."""
        return cls(
            version=str(data["version"]),
            night=str(data["night"]),
            components=dict(data.get("components") or {}),
            metrics=dict(data.get("metrics") or {}),
            gate=dict(data.get("gate") or {}),
            published_at=data.get("published_at"),
            forced=bool(data.get("forced", False)),
        )


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string with second precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _check_version(version: str) -> str:
    if not _SAFE_VERSION.match(version or ""):
        raise ValueError(
            f"model version {version!r} is not a safe file name (letters, digits and ._@+- only)"
        )
    return version


def release_path(settings: Settings, version: str) -> Path:
    """Where the release of ``version`` is kept: ``$REELREC_HOME/models/releases/<version>.json``."""
    return settings.models / RELEASES_DIR / f"{_check_version(version)}.json"


def serving_path(settings: Settings) -> Path:
    """Where the serving pointer is kept: ``$REELREC_HOME/models/serving.json``."""
    return settings.models / SERVING_FILE


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2, sort_keys=True, default=str)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def record_release(settings: Settings, release: Release) -> Path:
    """Record (or replace) the release of ``release.version``; returns the file written.

    Raises:
        ValueError: when the version is not a safe file name or the night is empty.
    """
    if not release.night:
        raise ValueError(f"release {release.version!r}: night is empty")
    path = release_path(settings, release.version)
    _write_json(path, release.to_dict())
    return path


def releases(settings: Settings) -> list[Release]:
    """Every recorded release, oldest night first (ties: by version)."""
    folder = settings.models / RELEASES_DIR
    found = (
        [Release.from_dict(_read_json(p)) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
    )
    return sorted(found, key=lambda r: (r.night, r.version))


def get_release(settings: Settings, version: str) -> Release | None:
    """The recorded release of ``version``, or ``None``."""
    path = release_path(settings, version)
    return Release.from_dict(_read_json(path)) if path.exists() else None


def serving_pointer(settings: Settings) -> dict[str, Any] | None:
    """The raw serving pointer (``serving.json``), or ``None`` when nothing was ever published."""
    path = serving_path(settings)
    return _read_json(path) if path.exists() else None


def serving(settings: Settings) -> Release | None:
    """The release the online store serves now, or ``None`` when no version was ever published.

    Raises:
        ValueError: when the pointer names a version without a release record (a hand-edited file).
    """
    pointer = serving_pointer(settings)
    if pointer is None:
        return None
    release = get_release(settings, pointer["version"])
    if release is None:
        raise ValueError(
            f"{serving_path(settings)} names version {pointer['version']!r}, which has no release record "
            f"in {settings.models / RELEASES_DIR}"
        )
    return release


def set_serving(
    settings: Settings, version: str, reason: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Point serving at ``version`` and append the move to the pointer's history.

    Args:
        settings: whose ``models`` folder.
        version: a recorded release's version.
        reason: why the pointer moves: ``publish``, ``forced`` or ``rollback``.
        details: what the mover wants kept with the move (JSON-able), e.g. a rollback's online timestamp.

    Returns:
        The new pointer (what ``serving.json`` now holds).

    Raises:
        ValueError: for an unknown reason.
        KeyError: naming the version and the recorded ones when ``version`` has no release record.
    """
    if reason not in REASONS:
        raise ValueError(f"set_serving: reason {reason!r} is not one of {list(REASONS)}")
    release = get_release(settings, version)
    if release is None:
        known = [r.version for r in releases(settings)]
        raise KeyError(f"no release of model version {version!r}; recorded versions: {known}")
    previous = serving_pointer(settings)
    at = now_iso()
    move = {
        "version": version,
        "night": release.night,
        "at": at,
        "reason": reason,
        "previous": previous["version"] if previous else None,
        "details": details or {},
    }
    pointer = {
        "version": version,
        "night": release.night,
        "since": at,
        "reason": reason,
        "history": [*(previous or {}).get("history", []), move],
    }
    _write_json(serving_path(settings), pointer)
    return pointer
