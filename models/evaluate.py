"""Evaluate night D's two-tower model against the baselines, in one harness, on day D.

Protocol (the same for every method):

* **held-out day**: the model was trained on the nights before D; D's impressions are unseen.
* **relevant**: the videos a user had a *positive* on during D (a view of at least the completion
  threshold, a like or a share; :func:`models.training_set.labels`), minus videos the user had
  already watched before D. Users with no such video are not evaluated.
* **full ranking**: every video of D's catalog snapshot, fresh uploads of D included, is scored;
  videos the user watched before D are removed (:func:`reelrec.history.watched`); then the top
  ``max(ks)`` are kept with :func:`models.topk.blocked_top_k` (exact, blocked over users).
* **features**: the model sees the features of night D-1, i.e. what was known when D began.
* **metrics**: recall@K and NDCG@K for K in 10, 50, 100 (:mod:`models.metrics`), catalog coverage
  of the top 100, and recall@100 on fresh videos only (uploaded on D: no interaction before D).

Methods: ``two_tower`` (the model's plain top 100, ranked like the baselines);
``two_tower_fresh_slots`` (the published lists: ``fresh_slots`` of the 100 reserved for fresh
uploads, see :func:`models.topk.top_k_with_quota`); ``popularity`` (training-window positives
per video); ``covisit`` (item-to-item co-visitation of training-window positives, scored from the
user's positives of the ``history_days`` nights before D, the same history the model's user tower
pools, popularity as fallback). The result is ``metrics.json`` in the model folder and in
``runs/dt=D/metrics.json``: ``{"retrieval": {"two_tower": {"recall@10": ...}, ...}, ...}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from models import training_set
from models.baselines import covisitation_matrix, covisitation_scores, popularity_scores
from models.interactions import index_of, pairs_matrix
from models.metrics import recall_at_k, retrieval_metrics
from models.topk import ScoreBlock, blocked_top_k, popularity_block, top_k_with_quota
from models.two_tower import embed
from models.two_tower.artifacts import TrainedModel, load
from models.two_tower.config import TwoTowerConfig
from models.two_tower.inputs import ContentLookup
from reelrec.catalog import EVENT_TIMESTAMP, USER_ID, VIDEO_ID
from reelrec.dates import add_days, day_bounds
from reelrec.history import watched
from reelrec.jobs import run_job
from reelrec.settings import Settings

KS = (10, 50, 100)
Ranker = Callable[[], tuple[np.ndarray, np.ndarray]]
POPULARITY_TIE_BREAK = 0.5  # below 1: integer co-visitation counts are never reordered by it


@dataclass
class HeldOutDay:
    """What day D says about each evaluated user: relevant videos and what is excluded from ranking."""

    user_ids: list[str]  # evaluated users, sorted: row u of every ranking
    pairs: list[tuple[str, str]]  # (user, video) relevant pairs, in label order
    relevant: list[np.ndarray]  # per user, sorted item indices of their relevant videos
    relevant_fresh: list[np.ndarray]  # per user, the relevant videos uploaded on D
    exclude: sp.csr_matrix  # (U, I) videos each user watched before D

    @property
    def users(self) -> dict[str, int]:
        """Row of each evaluated user."""
        return {u: i for i, u in enumerate(self.user_ids)}


@dataclass
class Baselines:
    """What the non-learned methods learned from the training-window positives."""

    popularity: np.ndarray  # (I,) positives per video
    covisit: sp.csr_matrix  # (I, I) co-visitation counts


def evaluate(date: str, settings: Settings) -> dict[str, Any]:
    """Score night D's model and the baselines on day D; write and return the metrics.

    Raises:
        FileNotFoundError: when night D has no trained model or training set.
    """
    started = time.perf_counter()
    trained = load(date, settings)
    cfg = trained.cfg
    catalog = embed.load_catalog(settings, date, add_days(date, -1), requested_at=day_bounds(date)[0])
    items = {v: i for i, v in enumerate(catalog.video_ids)}
    fresh = catalog.uploaded_on(date)
    day = held_out_day(settings, date, cfg, items, fresh)
    baselines = fit_baselines(settings, date, items, day.user_ids)
    # Every method sees the same user history: the positives of the history_days nights before D.
    positives = training_set.positive_histories(settings, add_days(date, -1), cfg.training_set)
    history = pairs_matrix(
        [u for u in day.user_ids for _ in positives.get(u, [])],
        [v for u in day.user_ids for v in positives.get(u, [])],
        day.users,
        items,
    )
    content = ContentLookup.from_lake(settings)
    embed_started = time.perf_counter()
    user_vectors, video_vectors = _embed_as_of_day_before(
        settings, date, trained, catalog, content, day, positives
    )
    embed_seconds = time.perf_counter() - embed_started

    def two_tower(rows: slice) -> np.ndarray:
        return user_vectors[rows] @ video_vectors.T

    def covisit_block(rows: slice) -> np.ndarray:
        return covisitation_scores(
            history, baselines.covisit, baselines.popularity, rows, tie_break=POPULARITY_TIE_BREAK
        )

    baseline_scorers = {"popularity": popularity_block(baselines.popularity), "covisit": covisit_block}
    retrieval = compare(methods(two_tower, baseline_scorers, day, fresh, cfg), day)
    result = {
        "date": date,
        "model_version": trained.version,
        "protocol": "held-out day D; relevant = D's positives not watched before D; full ranking over D's "
        "catalog with watched videos removed; features as of D-1",
        "users": len(day.user_ids),
        "catalog_videos": len(items),
        "fresh_videos": int(fresh.sum()),
        "users_with_fresh_positives": int(sum(len(r) > 0 for r in day.relevant_fresh)),
        "relevant_pairs": len(day.pairs),
        "retrieval": retrieval,
        "embed_seconds": round(embed_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }
    _write_metrics(result, trained, settings, date)
    return result


def held_out_day(
    settings: Settings, date: str, cfg: TwoTowerConfig, items: dict[str, int], fresh: np.ndarray
) -> HeldOutDay:
    """Relevant: D's positives on catalog videos, minus videos the user watched before D."""
    day = training_set.labels(settings, [date], cfg.training_set)
    day = day.filter(pc.equal(day.column(training_set.LABEL), 1))
    before = watched(settings, until=add_days(date, -1))
    seen = set(zip(before.column(USER_ID).to_pylist(), before.column(VIDEO_ID).to_pylist(), strict=True))
    pairs = [
        (u, v) for u, v in zip(day.column(USER_ID).to_pylist(), day.column(VIDEO_ID).to_pylist(), strict=True)
    ]
    pairs = [(u, v) for u, v in pairs if (u, v) not in seen and v in items]
    user_ids = sorted({u for u, _ in pairs})
    users = {u: i for i, u in enumerate(user_ids)}
    n_users = len(users)
    rel_u = np.fromiter((users[u] for u, _ in pairs), np.int64, len(pairs))
    rel_i = np.fromiter((items[v] for _, v in pairs), np.int64, len(pairs))
    relevant = [np.unique(rel_i[rel_u == u]) for u in range(n_users)] if n_users else []
    exclude = pairs_matrix(
        before.column(USER_ID).to_pylist(), before.column(VIDEO_ID).to_pylist(), users, items
    )
    return HeldOutDay(user_ids, pairs, relevant, [r[fresh[r]] for r in relevant], exclude)


def fit_baselines(settings: Settings, date: str, items: dict[str, int], user_ids: list[str]) -> Baselines:
    """Popularity and co-visitation of the training-window positives (the model's own training data)."""
    train = training_set.load(date, settings)
    train = train.filter(pc.equal(train.column(training_set.LABEL), 1))
    train_items = index_of(train.column(VIDEO_ID).to_pylist(), items)
    popularity = popularity_scores(train_items[train_items >= 0], len(items))
    all_users = {u: i for i, u in enumerate(sorted(set(train.column(USER_ID).to_pylist()) | set(user_ids)))}
    train_users = index_of(train.column(USER_ID).to_pylist(), all_users)
    stamps = train.column(EVENT_TIMESTAMP).cast(pa.int64()).to_numpy()
    ok = train_items >= 0
    covisit = covisitation_matrix(
        train_users[ok], train_items[ok], len(all_users), len(items), timestamps=stamps[ok]
    )
    return Baselines(popularity, covisit)


def _embed_as_of_day_before(
    settings: Settings,
    date: str,
    trained: TrainedModel,
    catalog: embed.Catalog,
    content: ContentLookup,
    day: HeldOutDay,
    positives: dict[str, list[str]],
) -> tuple[np.ndarray, np.ndarray]:
    """(U, D) evaluated users and (I, D) catalog videos, embedded with the features of D-1."""
    user_vectors = embed.embed_users(
        trained, embed.load_users(settings, add_days(date, -1), day.user_ids), content, positives
    )
    return user_vectors, embed.embed_videos(trained, catalog, content)


def methods(
    two_tower: ScoreBlock,
    baselines: dict[str, ScoreBlock],
    day: HeldOutDay,
    fresh: np.ndarray,
    cfg: TwoTowerConfig,
) -> dict[str, Ranker]:
    """Every method as a ranker of the top ``max(KS)`` with watched videos excluded.

    The model twice: ranked plainly like the baselines, and with ``fresh_slots`` as published.
    """
    k, n_users = max(KS), len(day.user_ids)

    def with_fresh_slots(scorer: ScoreBlock) -> Ranker:
        return lambda: top_k_with_quota(
            scorer, n_users, k, fresh, cfg.fresh_slots, day.exclude, cfg.block_size
        )

    def plain(scorer: ScoreBlock) -> Ranker:
        return lambda: blocked_top_k(scorer, n_users, k, exclude=day.exclude, block_size=cfg.block_size)

    return {
        "two_tower": plain(two_tower),  # the model's own ranking, like the baselines'
        "two_tower_fresh_slots": with_fresh_slots(two_tower),  # the lists that are published
        **{name: plain(scorer) for name, scorer in baselines.items()},
    }


def compare(rankers: dict[str, Ranker], day: HeldOutDay) -> dict[str, dict[str, float]]:
    """Run every ranker and measure it against the held-out day (floats rounded to 5 places)."""
    n_items = day.exclude.shape[1]
    retrieval: dict[str, dict[str, float]] = {}
    for name, ranker in rankers.items():
        method_started = time.perf_counter()
        ranked, _ = ranker()
        metrics = retrieval_metrics(ranked, day.relevant, n_items, ks=KS)
        metrics["fresh_recall@100"] = recall_at_k(ranked, day.relevant_fresh, 100)
        metrics["seconds"] = round(time.perf_counter() - method_started, 2)
        retrieval[name] = {key: (round(v, 5) if isinstance(v, float) else v) for key, v in metrics.items()}
    return retrieval


def _write_metrics(result: dict[str, Any], trained: TrainedModel, settings: Settings, date: str) -> None:
    """``metrics.json`` next to the model and in the night's run folder."""
    text = json.dumps(result, indent=2)
    (trained.path / "metrics.json").write_text(text)
    run_dir = settings.run_dir(date)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(text)


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Entry point of the DAG task and of ``python -m models.evaluate --date D``."""
    return evaluate(date, settings)


if __name__ == "__main__":
    raise SystemExit(run_job(main, "Evaluate night D's two-tower model and the baselines on day D."))
