"""Train the ranker of night D on the impressions of the nights before D; per-head held-out metrics.

``train(D, settings, cfg)`` builds the examples (:mod:`models.ranker.examples`), fits the input
standardisation and the MMoE (:mod:`models.ranker.model`) on CPU with a fixed seed, and saves a
versioned artifact folder (:mod:`models.ranker.artifacts`) with ``training.json``: examples,
positives per head, losses per epoch, seconds per step. :func:`head_metrics` scores any labelled
feature matrix (the evaluation harness passes day D's impressions).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from models import training_set
from models.ranker import artifacts, features
from models.ranker.config import RankerConfig
from models.ranker.examples import build_examples
from models.ranker.model import Ranker, multi_task_loss, predict
from models.sources.config import SourcesConfig
from reelrec import faults
from reelrec.jobs import run_job
from reelrec.settings import Settings


def fit(model: Ranker, x: np.ndarray, y: np.ndarray, cfg: RankerConfig) -> list[float]:
    """Train ``model`` in place on raw features ``x`` (N, F) and labels ``y`` (N, H); mean loss per epoch.

    ``cfg.epochs`` passes over shuffled batches, stopped after ``cfg.max_steps`` steps in all.

    The standardisation statistics are fitted on ``x`` first.
    """
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model.set_standardisation(x)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    features_t, labels_t = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    model.train()
    steps = 0
    for _ in range(cfg.epochs):
        if steps >= cfg.max_steps:
            break
        order = torch.randperm(len(x), generator=generator)
        total, batches = 0.0, 0
        for start in range(0, len(x), cfg.batch_size):
            if steps >= cfg.max_steps:  # the budget ends the epoch: its loss is over the steps taken
                break
            steps += 1
            idx = order[start : start + cfg.batch_size]
            loss = multi_task_loss(model(features_t[idx]), labels_t[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
            batches += 1
        losses.append(total / max(batches, 1))
    model.eval()
    return losses


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (ties share their mean rank); NaN when only one class is present."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[labels > 0].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def head_metrics(
    model: Ranker, x: np.ndarray, y: np.ndarray, heads: Sequence[str] = RankerConfig().heads
) -> dict[str, dict[str, float]]:
    """Per head: ROC AUC, mean log loss (probabilities clipped to [1e-7, 1 - 1e-7]), positives, base rate.

    Protocol: every labelled impression counts once; a head's AUC is NaN when its labels hold one class.
    """
    probabilities = predict(model, x).astype(np.float64)
    out = {}
    for h, head in enumerate(heads):
        labels, p = y[:, h], np.clip(probabilities[:, h], 1e-7, 1 - 1e-7)
        log_loss = (
            -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)) if len(labels) else float("nan")
        )
        out[head] = {
            "auc": round(_auc(labels, p), 4),
            "log_loss": round(float(log_loss), 4),
            "positives": int(labels.sum()),
            "base_rate": round(float(labels.mean()) if len(labels) else float("nan"), 4),
        }
    return out


def train(
    date: str, settings: Settings, cfg: RankerConfig | None = None, source_cfg: SourcesConfig | None = None
) -> dict[str, Any]:
    """Train night D's ranker on the impressions of the ``train_days`` nights before D (plus sampled
    never-shown merged candidates, :mod:`models.ranker.examples`) and save it.

    Returns:
        Facts: model_version, path, dates, examples (negatives among them), positives per head, losses,
        seconds per step.

    Raises:
        NoTrainingDataError: when no night before D has impressions and the features of its night before.
    """
    cfg = cfg or RankerConfig()
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    dates = training_set.training_nights(date, settings, cfg.training_set)
    if not dates:
        raise training_set.NoTrainingDataError(
            f"ranker for dt={date}: no night before it has impressions and the features of its night before"
        )
    examples = build_examples(settings, dates, cfg, cap=True, source_cfg=source_cfg)
    corrupted = faults.point("train.labels", settings, date=date, model="ranker")
    if corrupted:  # a deliberately broken model (REELREC_FAULTS=train.labels:corrupt): labels detached
        examples.y = examples.y[np.random.default_rng(cfg.seed).permutation(len(examples.y))]
    names = features.feature_names(cfg.sources)
    torch.manual_seed(cfg.seed)  # the initial weights too: the same examples give the same model
    model = Ranker(len(names), cfg)
    fit_started = time.perf_counter()
    losses = fit(model, examples.x, examples.y, cfg)
    fit_seconds = time.perf_counter() - fit_started
    path = artifacts.save(date, settings, model, cfg, names)
    facts = {
        "date": date,
        "model_version": path.name,
        "path": str(path),
        "dates": dates,
        "examples": int(examples.x.shape[0]),
        "negatives": examples.negatives,
        "features": len(names),
        "corrupted_labels": corrupted,
        "positives": {h: int(examples.y[:, i].sum()) for i, h in enumerate(cfg.heads)},
        "losses": [round(x, 4) for x in losses],
        "seconds_by_step": {**examples.seconds, "fit": round(fit_seconds, 2)},
        "inputs": training_set.table_versions(settings),
        "seconds": round(time.perf_counter() - started, 2),
    }
    (path / "training.json").write_text(json.dumps(facts, indent=2))
    artifacts.point_to(date, settings, path)
    return facts


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Entry point of the DAG task and of ``python -m models.ranker.train --date D``."""
    return train(date, settings)


if __name__ == "__main__":
    raise SystemExit(run_job(main, "Train the multi-task ranker of night D."))
