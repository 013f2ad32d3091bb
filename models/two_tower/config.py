"""The frozen configuration of the two-tower retrieval model and of the data it is trained on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TwoTowerConfig:
    """Everything that decides what the model is; saved with every artifact."""

    # --- training data (models.training_set)
    train_days: int = 3  # nights before D whose impressions become examples (recent tastes and trends)
    completion_threshold: float = 0.8  # a view of >= 80 % of the duration is a positive
    hard_negative_fraction: float = 0.2  # a skip or a view < 20 % is a hard negative
    history_days: int = 7  # nights of a user's positives pooled as their taste (user tower)
    max_examples_per_user: int = 150  # per label, over the window: heavy users do not dominate

    # --- architecture (models.two_tower.model)
    embedding_dim: int = 64  # output of both towers, unit-normalised
    id_dim: int = 32  # learned video id embedding, shared by the video tower and the history pool
    content_dim: int = 64  # projection of the text (384-d) and frame (32-d) embeddings
    hidden_dim: int = 128
    creator_buckets: int = 4096  # hashed creator ids: new creators need no vocabulary change
    min_video_positives: int = 2  # videos with fewer training positives share the "unknown" id
    item_bias: float = 2.0  # range of a learned per-video bias next to the cosine (0: none)
    id_dropout: float = 0.25  # share of examples whose video id is hidden: content must carry fresh videos

    # --- optimisation (models.two_tower.train)
    temperature: float = 0.1  # softmax temperature of the cosine logits
    logq_correction: bool = True  # subtract log(sampling probability): in-batch negatives are popular
    catalog_negatives: int = 512  # per batch, drawn uniformly from the catalog: the tail is negative too
    batch_size: int = 1024
    epochs: int = 6
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    seed: int = 7
    threads: int = 2  # torch intra-op threads: the machine, not the library default

    # --- scoring (models.score)
    top_n: int = 100  # candidates kept per user
    fresh_slots: int = 10  # of top_n, reserved for videos uploaded on D (they have no interactions yet)
    block_size: int = 2048  # users per block of the exact matrix multiply

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
