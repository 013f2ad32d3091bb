"""The trained ranker as a versioned artifact: naming, saving and loading.

Training writes a folder per version; evaluation and ranking load it from here, without importing
any training code::

    REELREC_HOME/models/ranker/<model_version>/
        model.pt        state_dict, standardisation statistics included (torch.load(..., weights_only=True))
        config.json     RankerConfig
        features.json   the name of every input column, in order
        training.json   written by models.ranker.train
    REELREC_HOME/models/ranker/dt=D.json   which version night D trained

``model_version`` is ``ranker_v1-<D>-<hash of config, feature names and weights>``: retraining the
same night on the same data with the same configuration gives the same version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from models.ranker.config import RankerConfig
from models.ranker.model import Ranker
from models.weights import load_weights
from reelrec import faults
from reelrec.settings import Settings

MODEL_NAME = "ranker_v1"
WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"
FEATURES_FILE = "features.json"


@dataclass
class TrainedRanker:
    """A loaded ranker with the configuration and input layout it was trained with."""

    version: str
    cfg: RankerConfig
    feature_names: list[str]
    model: Ranker
    path: Path


def model_root(settings: Settings) -> Path:
    """Folder holding every ranker version and the per-night pointers."""
    return settings.models / "ranker"


def pointer_path(settings: Settings, date: str) -> Path:
    """``dt=D.json``: which version night ``date`` trained."""
    return model_root(settings) / f"dt={date}.json"


def model_version(date: str, model: Ranker, cfg: RankerConfig, feature_names: list[str]) -> str:
    """``ranker_v1-<date>-<8 hex>``: a hash of the config, the input columns and every weight (name order)."""
    digest = hashlib.sha256(cfg.to_json().encode())
    digest.update(json.dumps(feature_names).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return f"{MODEL_NAME}-{date}-{digest.hexdigest()[:8]}"


def save(date: str, settings: Settings, model: Ranker, cfg: RankerConfig, feature_names: list[str]) -> Path:
    """Write night ``date``'s ranker into its version folder; returns the folder (named by the version)."""
    path = model_root(settings) / model_version(date, model, cfg, feature_names)
    path.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path / WEIGHTS_FILE)
    # Crash point: weights written, config not yet; nothing points here until ``point_to``.
    faults.point("model.save", settings, model="ranker", date=date)
    (path / CONFIG_FILE).write_text(cfg.to_json())
    (path / FEATURES_FILE).write_text(json.dumps(feature_names))
    return path


def point_to(date: str, settings: Settings, path: Path) -> None:
    """Record ``path`` as the ranker night ``date`` trained (what :func:`load` reads)."""
    pointer = pointer_path(settings, date)
    staged = pointer.with_name(pointer.name + ".tmp")  # a kill mid-write never leaves half a pointer
    staged.write_text(json.dumps({"date": date, "model_version": path.name, "path": str(path)}))
    staged.replace(pointer)


def load_version(path: Path) -> TrainedRanker:
    """The ranker saved in version folder ``path``."""
    cfg = RankerConfig.from_json((path / CONFIG_FILE).read_text())
    names = json.loads((path / FEATURES_FILE).read_text())
    model = Ranker(len(names), cfg)
    model.load_state_dict(load_weights(path / WEIGHTS_FILE, "ranker"))
    model.eval()
    return TrainedRanker(version=path.name, cfg=cfg, feature_names=names, model=model, path=path)


def load(date: str, settings: Settings) -> TrainedRanker:
    """The ranker night ``date`` trained.

    Raises:
        FileNotFoundError: naming the night and the command that trains it.
    """
    pointer = pointer_path(settings, date)
    if not pointer.exists():
        raise FileNotFoundError(
            f"no ranker trained for dt={date} ({pointer}); run python -m models.ranker.train --date {date}"
        )
    return load_version(Path(json.loads(pointer.read_text())["path"]))
