"""The trained two-tower model as a versioned artifact: naming, saving and loading.

Training writes a folder per version; evaluation and scoring load it from here, without importing
any training code::

    REELREC_HOME/models/two_tower/<model_version>/
        model.pt             state_dict (loaded with torch.load(..., weights_only=True))
        config.json          TwoTowerConfig
        feature_space.json   id vocabulary and standardisation statistics
        training.json        written by models.two_tower.train
        metrics.json         written by models.evaluate
    REELREC_HOME/models/two_tower/dt=D.json   which version night D trained

``model_version`` is ``two_tower_v1-<D>-<hash of weights and feature space>``: retraining the same
night on the same data gives the same version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from models.two_tower.config import TwoTowerConfig
from models.two_tower.inputs import FeatureSpace
from models.two_tower.model import TwoTower
from models.weights import load_weights
from reelrec import faults
from reelrec.catalog import FRAME_EMBEDDING_DIM, TEXT_EMBEDDING_DIM
from reelrec.settings import Settings

MODEL_NAME = "two_tower_v1"
WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"
FEATURE_SPACE_FILE = "feature_space.json"


@dataclass
class TrainedModel:
    """A loaded model with everything needed to embed users and videos."""

    version: str
    cfg: TwoTowerConfig
    space: FeatureSpace
    model: TwoTower
    path: Path


def model_root(settings: Settings) -> Path:
    """Folder holding every two-tower version and the per-night pointers."""
    return settings.models / "two_tower"


def pointer_path(settings: Settings, date: str) -> Path:
    """``dt=D.json``: which version night ``date`` trained."""
    return model_root(settings) / f"dt={date}.json"


def build_model(cfg: TwoTowerConfig, space: FeatureSpace) -> TwoTower:
    """An untrained :class:`TwoTower` sized for ``space`` (vocabularies, numeric features)."""
    return TwoTower(
        cfg,
        n_ids=space.n_ids,
        n_user_numeric=len(space.user_mean),
        n_video_numeric=len(space.video_mean),
        text_dim=TEXT_EMBEDDING_DIM,
        frame_dim=FRAME_EMBEDDING_DIM,
        n_user_ids=space.n_user_ids,
    )


def model_version(date: str, model: TwoTower, space: FeatureSpace) -> str:
    """``two_tower_v1-<date>-<8 hex>``: a hash of the feature space and every weight, in name order."""
    digest = hashlib.sha256(space.to_json().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return f"{MODEL_NAME}-{date}-{digest.hexdigest()[:8]}"


def save(date: str, settings: Settings, model: TwoTower, space: FeatureSpace, cfg: TwoTowerConfig) -> Path:
    """Write the weights, config and feature space of night ``date``'s model into its version folder.

    Returns:
        The version folder (its name is the model version).
    """
    path = model_root(settings) / model_version(date, model, space)
    path.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path / WEIGHTS_FILE)
    # Crash point: weights written, config not yet; nothing points here until ``point_to``.
    faults.point("model.save", settings, model="two_tower", date=date)
    (path / CONFIG_FILE).write_text(cfg.to_json())
    (path / FEATURE_SPACE_FILE).write_text(space.to_json())
    return path


def point_to(date: str, settings: Settings, path: Path) -> None:
    """Record ``path`` as the model night ``date`` trained (what :func:`load` reads)."""
    pointer = pointer_path(settings, date)
    staged = pointer.with_name(pointer.name + ".tmp")  # a kill mid-write never leaves half a pointer
    staged.write_text(json.dumps({"date": date, "model_version": path.name, "path": str(path)}))
    staged.replace(pointer)


def load(date: str, settings: Settings) -> TrainedModel:
    """The model night ``date`` trained.

    Raises:
        FileNotFoundError: naming the night and the command that trains it.
    """
    pointer = pointer_path(settings, date)
    if not pointer.exists():
        raise FileNotFoundError(
            f"no two-tower model trained for dt={date} ({pointer}); "
            f"run python -m models.two_tower.train --date {date}"
        )
    path = Path(json.loads(pointer.read_text())["path"])
    cfg = TwoTowerConfig.from_json((path / CONFIG_FILE).read_text())
    space = FeatureSpace.from_json((path / FEATURE_SPACE_FILE).read_text())
    model = build_model(cfg, space)
    model.load_state_dict(load_weights(path / WEIGHTS_FILE, "two-tower"))
    model.eval()
    return TrainedModel(version=path.name, cfg=cfg, space=space, model=model, path=path)
