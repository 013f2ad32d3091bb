"""The frozen configuration of the multi-task ranker: its data, architecture, training and list rules.

Saved as ``config.json`` with every artifact; its fingerprint is part of the model version, so two
rankers trained with different settings never share a version name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from models.training_set import TrainingSetConfig

_DATA = TrainingSetConfig()


@dataclass(frozen=True)
class RankerConfig:
    """Everything that decides what the ranker is; saved with every artifact.

    The final score of a candidate is the blend ``sum_h blend_weights[h] * p_h`` of the heads'
    probabilities, with the defaults::

        score = 1.0 * p(completion) + 0.5 * p(like) + 0.5 * p(share) - 0.25 * p(skip)

    The heads are trained on impressions plus never-shown merged candidates (``negatives_per_user``),
    so each estimates ``p(outcome)`` of a candidate, impression included; a completed view is most
    of what the evaluation counts relevant, likes and shares add a little, and ``p(skip)`` (also
    high for videos the feed shows often) costs a little. Measured on the small home (2026-11-04,
    200 negatives, batch 256): this blend NDCG@10 0.176 / recall@100 0.591 of the final list,
    against 1, 2, 4, -1: 0.175 / 0.554 and 1, 2, 4, 0: 0.173 / 0.586. 100 negatives and batches
    of 1024 (the defaults) train on about half the examples with a quarter of the steps: a night's
    ranker in minutes, not tens of minutes, on two cores.
    """

    # --- training data (models.ranker.examples)
    train_days: int = _DATA.train_days  # nights before D whose impressions are examples (never D)
    completion_threshold: float = _DATA.completion_threshold  # a view >= 80 % of the duration completes
    history_days: int = _DATA.history_days  # nights of positives whose content is the user's taste
    max_examples_per_user: int = 300  # impressions per user over the window (deterministic sample)
    # Never-impressed merged candidates per impressed user and night, labelled 0 on every head: the
    # ranker ranks every merged candidate, most of them never shown, so it must see such candidates.
    negatives_per_user: int = 100
    # Impressed users per training night whose examples are kept (a deterministic crc32 sample of
    # user|night): a bound on a night's examples, and so on the sources', Feast's and the fit's
    # seconds, as the user base grows past it. The medium home (~15k impressed users, 1.9M examples)
    # is under it: sampling it to 6k users halved the ranker's NDCG@10 there (0.041 -> 0.016).
    max_users_per_night: int = 20_000
    heads: tuple[str, ...] = ("completion", "like", "share", "skip")
    blend_weights: tuple[float, ...] = (1.0, 0.5, 0.5, -0.25)  # one per head, same order
    # Retrieval sources whose score, rank and flag are features (column order of the feature matrix).
    sources: tuple[str, ...] = ("two_tower", "covisit", "trending", "followed", "fresh_content", "ease")

    # --- architecture (models.ranker.model)
    n_experts: int = 4  # MMoE experts shared by the heads, mixed by one softmax gate per head
    expert_dim: int = 64
    cross_layers: int = 2  # DCN-v2 cross layers on the standardised input (explicit feature crosses)
    tower_hidden: int = 32  # per-head tower on the gated mixture

    # --- optimisation (models.ranker.train)
    epochs: int = 6
    # At most this many optimiser steps in all: epochs over a large night stop at the budget. The
    # small home's ~1.2k steps are under it; on the medium home (1.9M examples, 6 epochs = 11.4k
    # steps) 6k steps gave NDCG@10 0.041 / recall@100 0.241 of the ranker's order against 0.034 /
    # 0.243 for the 6 full epochs, with half the fit time (/work/bench/ranker_exp.py, 2026-11-03).
    max_steps: int = 6000
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    batch_size: int = 1024  # hundreds of thousands of examples a night (impressions + negatives)
    seed: int = 7
    # torch intra-op threads. One: the network is small (a 1024-row step takes ~11 ms on one thread),
    # and two threads on a busy two-core machine measured 25-200x slower per step (spinning workers).
    threads: int = 1

    # --- final lists (models.ranker.rank.final_lists)
    top_n: int = 100  # videos per user
    fresh_slots: int = 10  # of top_n, kept for videos uploaded on D when the user has such candidates
    max_per_creator_top10: int = 2  # a creator's further videos are pushed below position 10, not dropped
    serving_position: int = 0  # the feed position every candidate is ranked as (position is a bias)

    def __post_init__(self) -> None:
        if len(self.heads) != len(self.blend_weights):
            raise ValueError(f"RankerConfig: {len(self.heads)} heads but {len(self.blend_weights)} weights")

    @property
    def training_set(self) -> TrainingSetConfig:
        """The shared training-set configuration with this ranker's data fields."""
        return TrainingSetConfig(
            train_days=self.train_days,
            completion_threshold=self.completion_threshold,
            history_days=self.history_days,
        )

    def to_json(self) -> str:
        """Stable JSON of every field (sorted keys)."""
        return json.dumps(asdict(self), sort_keys=True)

    def fingerprint(self) -> str:
        """Short hash of the configuration."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:8]

    @classmethod
    def from_json(cls, text: str) -> RankerConfig:
        """Inverse of :meth:`to_json` (unknown keys are an error; lists become tuples)."""
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(text).items()
        }
        return cls(**fields)
