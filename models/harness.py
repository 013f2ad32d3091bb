"""One evaluation harness for every stage of the multi-stage recommender, on the held-out day D.

The protocol is :mod:`models.evaluate`'s (held-out day, relevant = D's positives not watched before
D, watched videos removed, features as of D-1). Every stage is a ``(U, L)`` ranked list of catalog
indices (``-1`` padded) measured by :func:`list_metrics`:

* ``recall@K`` and ``ndcg@K`` for K in 10, 50, 100 (:mod:`models.metrics`);
* ``coverage@100``: the share of D's catalog in anyone's top 100;
* ``fresh_recall@100``: recall@100 on the relevant videos uploaded on D;
* ``creator_diversity@10``: per user, distinct creators among the top 10 over the videos there,
  averaged over users (1.0: ten videos of ten creators).

Stages: each source alone (its own top 100), ``merged`` (the union of the sources ordered by the
best source rank), ``ranker`` (the merged set ordered by the blended heads, no list rules) and
``final`` (the published list: the ranker's order with the list rules, and the default list for
cold users). Heads are measured separately (:func:`models.ranker.train.head_metrics`): AUC and
log loss of each head on D's impressions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.metrics import recall_at_k, retrieval_metrics

KS = (10, 50, 100)
LIST_LEN = max(KS)


def padded(items: np.ndarray, length: int = LIST_LEN) -> np.ndarray:
    """``items`` cut or right-padded with ``-1`` to ``length`` columns (int64)."""
    items = np.asarray(items, dtype=np.int64)
    if items.ndim != 2:
        raise ValueError(f"a ranked list must be (users, ranks), got shape {items.shape}")
    if items.shape[1] >= length:
        return items[:, :length]
    pad = np.full((items.shape[0], length - items.shape[1]), -1, dtype=np.int64)
    return np.concatenate([items, pad], axis=1)


def creator_diversity(ranked: np.ndarray, creators: np.ndarray, k: int = 10) -> float:
    """Mean over users with a non-empty top ``k`` of (distinct creators / videos) in that top ``k``.

    Args:
        ranked: ``(U, L)`` item indices, ``-1`` padded.
        creators: ``(I,)`` int creator code of each catalog item.
    """
    top = np.asarray(ranked)[:, :k]
    valid = top >= 0
    lengths = valid.sum(axis=1)
    if not lengths.any():
        return 0.0
    codes = np.where(valid, creators[np.maximum(top, 0)], -1)
    codes.sort(axis=1)
    # A creator counts once per row: a code that differs from its left neighbour, padding (-1) excluded.
    first = np.ones_like(codes, dtype=bool)
    first[:, 1:] = codes[:, 1:] != codes[:, :-1]
    distinct = (first & (codes >= 0)).sum(axis=1)
    rows = lengths > 0
    return float(np.mean(distinct[rows] / lengths[rows]))


def list_metrics(
    ranked: np.ndarray,
    relevant: Sequence[np.ndarray],
    relevant_fresh: Sequence[np.ndarray],
    creators: np.ndarray,
    n_items: int,
) -> dict[str, float]:
    """Every list metric of the harness for one stage (floats rounded to 5 places)."""
    ranked = padded(ranked)
    metrics = retrieval_metrics(ranked, relevant, n_items, ks=KS)
    metrics["fresh_recall@100"] = recall_at_k(ranked, relevant_fresh, LIST_LEN)
    metrics["creator_diversity@10"] = creator_diversity(ranked, creators)
    return {key: round(value, 5) for key, value in metrics.items()}


def goals(retrieval: dict[str, dict[str, float]], sources: Sequence[str]) -> dict[str, Any]:
    """The issue's goals for one night: final NDCG@10 >= 1.10x and recall@100 >= the best single source's."""
    present = [s for s in sources if s in retrieval]
    if "final" not in retrieval or not present:
        return {}
    best_ndcg = max(present, key=lambda s: retrieval[s]["ndcg@10"])
    best_recall = max(present, key=lambda s: retrieval[s]["recall@100"])
    final = retrieval["final"]
    return {
        "best_source_ndcg@10": {"source": best_ndcg, "value": retrieval[best_ndcg]["ndcg@10"]},
        "best_source_recall@100": {"source": best_recall, "value": retrieval[best_recall]["recall@100"]},
        "ndcg@10_ratio": round(final["ndcg@10"] / max(retrieval[best_ndcg]["ndcg@10"], 1e-12), 4),
        "ndcg@10_goal_met": final["ndcg@10"] >= 1.10 * retrieval[best_ndcg]["ndcg@10"],
        "recall@100_goal_met": final["recall@100"] >= retrieval[best_recall]["recall@100"],
    }
