"""The frozen configuration of the two-tower retrieval model and of the data it is trained on.

The training-data fields mirror :class:`models.training_set.TrainingSetConfig` (same names and
defaults) so that a saved ``config.json`` says everything the model was trained with;
:attr:`TwoTowerConfig.training_set` hands them to the shared training set.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from models.training_set import TrainingSetConfig

_DATA = TrainingSetConfig()  # the defaults of the shared training set
HISTORY_ENCODERS = ("mean", "attention")  # TwoTowerConfig.user_history_encoder


@dataclass(frozen=True)
class TwoTowerConfig:
    """Everything that decides what the model is; saved with every artifact."""

    # --- training data (models.training_set.TrainingSetConfig: see there what each one means)
    train_days: int = _DATA.train_days
    completion_threshold: float = _DATA.completion_threshold
    hard_negative_fraction: float = _DATA.hard_negative_fraction
    history_days: int = _DATA.history_days  # also the nights of positives the user tower pools
    max_examples_per_user: int = _DATA.max_examples_per_user

    # --- architecture (models.two_tower.model)
    embedding_dim: int = 64  # output of both towers, unit-normalised
    id_dim: int = 32  # learned video id embedding, shared by the video tower and the history pool
    content_dim: int = 64  # projection of the text (384-d) and frame (32-d) embeddings
    hidden_dim: int = 128
    creator_buckets: int = 4096  # hashed creator ids: new creators need no vocabulary change
    min_video_positives: int = 2  # videos with fewer training positives share the "unknown" id
    item_bias: float = 2.0  # range of a learned per-video bias next to the cosine (0: none)
    id_dropout: float = 0.25  # share of examples whose video id is hidden: content must carry fresh videos
    # How the user tower pools the id embeddings of its histories: "mean" (order ignored) or "attention"
    # (positions + one self-attention layer + a learned pooling query: model.AttentionHistory).
    user_history_encoder: str = "mean"

    # --- optimisation (models.two_tower.train)
    temperature: float = 0.1  # softmax temperature of the cosine logits
    logq_correction: bool = True  # subtract log(sampling probability): in-batch negatives are popular
    catalog_negatives: int = 512  # per batch, drawn uniformly from the catalog: the tail is negative too
    batch_size: int = 1024
    epochs: int = 6
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    seed: int = 7
    # torch intra-op threads. One: the ranker trains side by side (its own thread); three threads on two
    # cores made OpenMP's spinning workers cost 16x (1,674 examples/s on small 2026-11-04, 26.9k alone).
    threads: int = 1

    # --- scoring (models.score)
    top_n: int = 100  # candidates kept per user
    fresh_slots: int = 10  # of top_n, reserved for videos uploaded on D (they have no interactions yet)
    block_size: int = 2048  # users per block of the exact matrix multiply

    def __post_init__(self) -> None:
        if self.user_history_encoder not in HISTORY_ENCODERS:
            raise ValueError(
                f"TwoTowerConfig.user_history_encoder={self.user_history_encoder!r}: "
                f"expected one of {HISTORY_ENCODERS}"
            )

    @property
    def training_set(self) -> TrainingSetConfig:
        """The training-data fields as the shared training set's own configuration."""
        return TrainingSetConfig(
            train_days=self.train_days,
            completion_threshold=self.completion_threshold,
            hard_negative_fraction=self.hard_negative_fraction,
            history_days=self.history_days,
            max_examples_per_user=self.max_examples_per_user,
        )

    def to_json(self) -> str:
        """Stable JSON of every field (sorted keys)."""
        return json.dumps(asdict(self), sort_keys=True)

    def fingerprint(self) -> str:
        """Short hash of the configuration."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:8]

    @classmethod
    def from_json(cls, text: str) -> TwoTowerConfig:
        """Inverse of :meth:`to_json` (unknown keys are an error)."""
        return cls(**json.loads(text))
