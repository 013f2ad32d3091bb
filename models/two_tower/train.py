"""Train the two-tower model of night D on the point-in-time training set of the nights before D.

``train(D, settings, cfg)`` reads the training set (:mod:`models.training_set`), fits the feature
space, trains on CPU with a fixed seed and saves a versioned artifact folder
(:mod:`models.two_tower.artifacts`), adding ``training.json``: losses per epoch, examples, seconds
and the Delta versions of the inputs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from models import training_set
from models.two_tower import artifacts, embed
from models.two_tower.config import TwoTowerConfig
from models.two_tower.inputs import (
    CONTENT_VIEW,
    REQUEST_AGE,
    USER_VIEW,
    VIDEO_VIEW,
    ContentLookup,
    FeatureSpace,
    unprefixed,
    user_inputs,
    user_numeric,
    video_inputs,
    video_numeric,
)
from models.two_tower.model import UNKNOWN_ID, TwoTower, UserInputs, VideoInputs, in_batch_softmax_loss
from reelrec import faults
from reelrec.catalog import RECENT_VIDEO_IDS, USER_ID, VIDEO_ID
from reelrec.dates import add_days, day_bounds
from reelrec.jobs import run_job
from reelrec.settings import Settings


def _take_users(x: UserInputs, idx: torch.Tensor) -> UserInputs:
    def take(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[idx]

    return UserInputs(
        x.numeric[idx],
        x.history_ids[idx],
        x.history_text[idx],
        take(x.ids),
        take(x.positive_ids),
        take(x.positive_text),
    )


def _take_videos(x: VideoInputs, idx: torch.Tensor) -> VideoInputs:
    return VideoInputs(x.ids[idx], x.creator[idx], x.text[idx], x.frame[idx], x.numeric[idx])


def prepare(
    positives: pa.Table, content: ContentLookup, cfg: TwoTowerConfig
) -> tuple[FeatureSpace, UserInputs, VideoInputs, torch.Tensor]:
    """Encode the positives of a training set.

    Returns:
        (feature space, user inputs (N, ...), video inputs (N, ...), log q (N,) of each positive).
    """
    n = positives.num_rows
    user_x = user_numeric(unprefixed(positives, USER_VIEW), n)
    video_x = video_numeric(
        {**unprefixed(positives, VIDEO_VIEW), REQUEST_AGE: positives.column(REQUEST_AGE)}, n
    )
    video_ids = positives.column(VIDEO_ID).to_pylist()
    user_ids = positives.column(USER_ID).to_pylist()
    space = FeatureSpace.fit(video_ids, user_x, video_x, cfg, user_ids=user_ids)
    histories = positives.column(f"{USER_VIEW}__{RECENT_VIDEO_IDS}").to_pylist()
    positive_history = (
        positives.column(training_set.POSITIVE_HISTORY).to_pylist()
        if training_set.POSITIVE_HISTORY in positives.column_names
        else None
    )
    users = user_inputs(user_x, histories, space, content, user_ids=user_ids, positives=positive_history)
    joined = {k: v.to_pylist() for k, v in unprefixed(positives, CONTENT_VIEW).items()}
    videos = video_inputs(video_ids, video_x, space, content, cfg, joined=joined)
    # q(v): the share of training positives that are v, i.e. how often v is sampled as an in-batch negative.
    _, inverse, counts = positive_counts(video_ids)
    log_q = torch.from_numpy(np.log(counts[inverse] / n).astype(np.float32))
    return space, users, videos, log_q


def positive_counts(video_ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct videos, index of each positive's video among them, positives per distinct video)."""
    uniques, inverse, counts = np.unique(
        np.asarray(video_ids, dtype=object), return_inverse=True, return_counts=True
    )
    return uniques, inverse, counts


def fit(
    model: TwoTower,
    users: UserInputs,
    videos: VideoInputs,
    log_q: torch.Tensor,
    cfg: TwoTowerConfig,
    keys: torch.Tensor | None = None,
    catalog: CatalogNegatives | None = None,
) -> list[float]:
    """Train ``model`` in place; returns the mean loss of each epoch.

    ``keys`` (N,) identify each positive's video (equal keys: same video, never ``UNKNOWN_ID``), so a
    video repeated in a batch is not a negative of itself even when its id is hidden or unknown;
    by default the ids before id dropout.

    With ``catalog``, every batch also scores ``cfg.catalog_negatives`` videos drawn uniformly from
    the catalog (mixed negative sampling): in-batch negatives are only ever videos that someone
    liked, so without them the never-watched tail would have no say in the loss. The logQ
    correction then uses the mixture's sampling probability ``(B q(v) + M / N) / (B + M)``.
    """
    keys = videos.ids.clone() if keys is None else keys
    mixed = catalog is not None and cfg.catalog_negatives > 0
    if mixed:
        assert catalog is not None
        b, m, n_catalog = cfg.batch_size, cfg.catalog_negatives, len(catalog.keys)

        def mixture(q: torch.Tensor) -> torch.Tensor:
            return torch.log((b * q + m / n_catalog) / (b + m))

        log_q = mixture(torch.exp(log_q))
        catalog_log_q = mixture(catalog.q)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    n = len(log_q)
    losses = []
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=generator)
        total, batches = 0.0, 0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if len(idx) < 2:
                continue
            batch_videos = _take_videos(videos, idx)
            # Hide some ids: the model must also place videos from content alone (fresh uploads).
            hidden = torch.rand(len(idx), generator=generator) < cfg.id_dropout
            batch_videos.ids = torch.where(
                hidden, torch.full_like(batch_videos.ids, UNKNOWN_ID), batch_videos.ids
            )
            batch_users = _take_users(users, idx)
            if batch_users.ids is not None:  # some rows as an unknown user: new users are served too
                hidden_user = torch.rand(len(idx), generator=generator) < cfg.id_dropout
                batch_users.ids = torch.where(
                    hidden_user, torch.full_like(batch_users.ids, UNKNOWN_ID), batch_users.ids
                )
            u = model.embed_users(batch_users)
            v = model.embed_videos(batch_videos)
            extra = None
            if mixed:
                assert catalog is not None
                drawn = torch.randint(0, n_catalog, (m,), generator=generator)
                extra = (
                    model.embed_videos(_take_videos(catalog.videos, drawn)),
                    catalog.keys[drawn],
                    catalog_log_q[drawn] if cfg.logq_correction else None,
                )
            loss = in_batch_softmax_loss(
                u, v, keys[idx], log_q[idx] if cfg.logq_correction else None, cfg.temperature, extra
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
            batches += 1
        losses.append(total / max(batches, 1))
    model.eval()
    return losses


@dataclass
class CatalogNegatives:
    """The catalog as of the last training night, for uniformly drawn negatives."""

    videos: VideoInputs  # (N, ...) every video of the snapshot, features of the night before
    keys: torch.Tensor  # (N,) video identity, the same keys as the positives
    q: torch.Tensor  # (N,) share of training positives that are this video (0 if none)


def catalog_negatives(
    settings: Settings,
    date: str,
    space: FeatureSpace,
    content: ContentLookup,
    cfg: TwoTowerConfig,
    key_of: dict[str, int],
    q_of: dict[str, float],
) -> CatalogNegatives:
    """Encode the catalog snapshot of D-1 (features of D-2, age at D-1 00:00) as negatives."""
    last = add_days(date, -1)
    catalog = embed.load_catalog(settings, last, add_days(last, -1), requested_at=day_bounds(last)[0])
    x = video_numeric(
        {c: catalog.features.column(c) for c in catalog.features.column_names}, len(catalog.video_ids)
    )
    videos = video_inputs(catalog.video_ids, x, space, content, cfg)
    next_key = max(key_of.values(), default=UNKNOWN_ID) + 1
    keys = []
    for v in catalog.video_ids:
        if v not in key_of:
            key_of[v] = next_key
            next_key += 1
        keys.append(key_of[v])
    return CatalogNegatives(
        videos=videos,
        keys=torch.tensor(keys, dtype=torch.int64),
        q=torch.tensor([q_of.get(v, 0.0) for v in catalog.video_ids], dtype=torch.float32),
    )


@dataclass
class Fitted:
    """A model trained in memory (nothing written yet)."""

    model: TwoTower
    space: FeatureSpace
    losses: list[float]  # mean loss of each epoch
    fit_seconds: float  # catalog negatives and the epochs, not the encoding of the positives


def fit_night(
    date: str, settings: Settings, cfg: TwoTowerConfig, positives: pa.Table, content: ContentLookup
) -> Fitted:
    """Train night D's model on the positives of D's training set, in memory (what :func:`train` saves)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    space, users, videos, log_q = prepare(positives, content, cfg)
    model = artifacts.build_model(cfg, space)
    fit_started = time.perf_counter()
    positive_ids = positives.column(VIDEO_ID).to_pylist()
    uniques, inverse, counts = positive_counts(positive_ids)
    key_of = {str(v): i + UNKNOWN_ID + 1 for i, v in enumerate(uniques)}
    q_of = {str(v): c / len(positive_ids) for v, c in zip(uniques, counts, strict=True)}
    catalog = None
    if cfg.catalog_negatives:
        catalog = catalog_negatives(settings, date, space, content, cfg, key_of, q_of)
    keys = torch.from_numpy(inverse.astype(np.int64) + UNKNOWN_ID + 1)
    losses = fit(model, users, videos, log_q, cfg, keys=keys, catalog=catalog)
    return Fitted(model, space, losses, time.perf_counter() - fit_started)


def shuffled_users(positives: pa.Table, seed: int) -> pa.Table:
    """``positives`` with the user side (id, history, user features) of the rows permuted: every
    positive now pairs a video with a random user's inputs, the labels of a broken model."""
    user_side = [
        name
        for name in positives.column_names
        if name in (USER_ID, training_set.POSITIVE_HISTORY) or name.startswith(f"{USER_VIEW}__")
    ]
    order = pa.array(np.random.default_rng(seed).permutation(positives.num_rows))
    for name in user_side:
        position = positives.schema.get_field_index(name)
        positives = positives.set_column(position, name, positives.column(name).take(order))
    return positives


def train(date: str, settings: Settings, cfg: TwoTowerConfig | None = None) -> dict[str, Any]:
    """Train night D's model on the training set built for D and save its artifacts.

    Returns:
        Facts: model_version, path, examples, epochs, losses, seconds, examples/s.
    """
    cfg = cfg or TwoTowerConfig()
    started = time.perf_counter()
    examples = training_set.load(date, settings)
    positives = examples.filter(pc.equal(examples.column(training_set.LABEL), 1))
    corrupted = faults.point("train.labels", settings, date=date, model="two_tower")
    if corrupted:  # a deliberately broken model (REELREC_FAULTS=train.labels:corrupt)
        positives = shuffled_users(positives, cfg.seed)
    content = ContentLookup.from_lake(settings)
    fitted = fit_night(date, settings, cfg, positives, content)
    model, space, losses, fit_seconds = fitted.model, fitted.space, fitted.losses, fitted.fit_seconds
    path = artifacts.save(date, settings, model, space, cfg)
    version = path.name
    facts = {
        "date": date,
        "model_version": version,
        "path": str(path),
        "examples": positives.num_rows,
        "vocabulary": len(space.vocabulary),
        "corrupted_labels": corrupted,
        "epochs": cfg.epochs,
        "losses": [round(x, 4) for x in losses],
        "fit_seconds": round(fit_seconds, 2),
        "examples_per_second": round(positives.num_rows * cfg.epochs / max(fit_seconds, 1e-9)),
        "inputs": json.loads((training_set.training_set_dir(settings, date) / "facts.json").read_text())[
            "inputs"
        ],
        "seconds": round(time.perf_counter() - started, 2),
    }
    (path / "training.json").write_text(json.dumps(facts, indent=2))
    artifacts.point_to(date, settings, path)
    return facts


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Entry point of the DAG task and of ``python -m models.two_tower.train --date D``."""
    return train(date, settings)


if __name__ == "__main__":
    raise SystemExit(run_job(main, "Train the two-tower retrieval model of night D."))
