"""Housekeeping of ``$REELREC_HOME/models``: old model versions, their ANN indexes and training sets.

The layout is the one the model packages write (``models/two_tower/artifacts.py``,
``models/ranker/artifacts.py``, ``models/training_set.py``); the core reads it as files and imports
none of them::

    models/<model>/<model>_v1-<D>-<hash>/   one version (weights, config; two-tower: ann/dt=D.faiss)
    models/<model>/dt=D.json                which version night D trained
    models/training_sets/dt=D/              night D's training examples

Kept, per model (``two_tower``, ``ranker``): every version a kept release names (the serving one and
the rollback window: :func:`reelrec.housekeeping.kept_releases`), the versions the last ``versions``
nights trained (their ``dt=D.json``), and a version folder of a night later than every pointer (a
night still writing). Everything else is removed with its folder (the ANN index lives inside it),
and so is a pointer naming a removed version (``load`` then says the night has no model, instead of
failing on a missing folder). Training sets: those of the nights whose model is kept and of the last
``versions`` nights. Release records and the serving pointer are never removed: they are the history
``reelrec models list`` shows (a rollback reads the gold tables, not these files).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from reelrec import releases
from reelrec.housekeeping_lake import parquet_rows
from reelrec.settings import Settings

MODEL_DIRS = ("two_tower", "ranker")
TRAINING_SETS = "training_sets"
_NIGHT = re.compile(r"-(\d{4}-\d{2}-\d{2})-")


def folder_facts(path: Path) -> tuple[int, int, int]:
    """Files, bytes and parquet rows under ``path`` (a file or a folder)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    rows = sum(parquet_rows(file) for file in files if file.suffix == ".parquet")
    return len(files), sum(f.stat().st_size for f in files), rows


def _pointers(root: Path) -> dict[str, str]:
    """Night -> version named by each ``dt=D.json`` of a model folder (unreadable pointers skipped)."""
    out: dict[str, str] = {}
    for path in sorted(root.glob("dt=*.json")):
        try:
            out[path.stem.removeprefix("dt=")] = str(json.loads(path.read_text())["model_version"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _kept_versions(root: Path, pointers: dict[str, str], named: set[str], versions: int) -> set[str]:
    kept = named | {pointers[night] for night in sorted(pointers)[-versions:]} if versions > 0 else set(named)
    latest = max(pointers, default="")
    for folder in root.iterdir():
        night = _NIGHT.search(folder.name)
        if folder.is_dir() and night and night.group(1) > latest:
            kept.add(folder.name)  # newer than every pointer: a night still writing it
    return kept


def _remove(path: Path, dry_run: bool) -> dict[str, Any]:
    files, size, rows = folder_facts(path)
    if not dry_run and path.is_dir():
        shutil.rmtree(path)
    elif not dry_run:
        path.unlink()
    return {"path": path.name, "files": files, "bytes": size, "rows": rows}


def prune_model(
    settings: Settings, model: str, named: set[str], versions: int, dry_run: bool
) -> dict[str, Any]:
    """Remove the versions of ``model`` outside the retention (see the module docstring)."""
    root = settings.models / model
    if not root.is_dir():
        return {"kept": [], "removed": [], "pointers_removed": [], "bytes": 0}
    pointers = _pointers(root)
    kept = _kept_versions(root, pointers, named, versions)
    removed = [
        _remove(folder, dry_run)
        for folder in sorted(root.iterdir())
        if folder.is_dir() and folder.name not in kept
    ]
    gone = {entry["path"] for entry in removed}
    stale = [night for night, version in sorted(pointers.items()) if version in gone]
    dropped = [_remove(root / f"dt={night}.json", dry_run) for night in stale]
    return {
        "kept": sorted(name for name in kept if (root / name).is_dir()),
        "kept_nights": sorted(night for night, version in pointers.items() if version in kept),
        "removed": removed,
        "pointers_removed": [entry["path"] for entry in dropped],
        "bytes": sum(entry["bytes"] for entry in removed + dropped),
    }


def prune_training_sets(settings: Settings, nights: set[str], versions: int, dry_run: bool) -> dict[str, Any]:
    """Remove ``training_sets/dt=D`` except for ``nights`` and the last ``versions`` nights."""
    root = settings.models / TRAINING_SETS
    folders = sorted(p for p in root.glob("dt=*") if p.is_dir()) if root.is_dir() else []
    recent = {p.name.removeprefix("dt=") for p in folders[-versions:]} if versions > 0 else set()
    keep = nights | recent
    removed = [_remove(p, dry_run) for p in folders if p.name.removeprefix("dt=") not in keep]
    return {
        "kept": sorted(p.name for p in folders if p.name.removeprefix("dt=") in keep),
        "removed": removed,
        "bytes": sum(entry["bytes"] for entry in removed),
        "rows": sum(entry["rows"] for entry in removed),
    }


def housekeep_models(
    settings: Settings, kept: list[releases.Release], versions: int, dry_run: bool
) -> dict[str, Any]:
    """Prune every model folder and the training sets; what was removed, per folder, with bytes."""
    named = {name for release in kept for name in (release.version, *release.components.values())}
    out: dict[str, Any] = {
        model: prune_model(settings, model, named, versions, dry_run) for model in MODEL_DIRS
    }
    nights = {night for model in MODEL_DIRS for night in out[model].get("kept_nights", [])}
    out[TRAINING_SETS] = prune_training_sets(settings, nights, versions, dry_run)
    out["bytes"] = sum(out[name]["bytes"] for name in (*MODEL_DIRS, TRAINING_SETS))
    return out
