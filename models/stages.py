"""The stages that turn one night into published lists: sources, merge, ranker, list rules.

Evaluation (:mod:`models.evaluate`, features of D-1, exact two-tower retrieval) and scoring
(:mod:`models.score`, features of D, the two-tower source searching the published ANN index the
way an online service would) run the same code, so what is measured is what is published:

1. every candidate source (:mod:`models.sources`) proposes its own top k;
2. :func:`models.sources.merge.retrieve_all` merges them per user with provenance, watched removed;
3. the ranker (:mod:`models.ranker.rank`) scores every merged candidate with its heads and the
   configured blend;
4. the final list applies the documented rules (fresh slots, creator cap in the top 10).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from models.ranker.artifacts import TrainedRanker
from models.ranker.features import video_catalog
from models.ranker.rank import RankedLists, final_lists, rank
from models.sources.base import Night, SourceCandidates
from models.sources.config import SourcesConfig
from models.sources.merge import Merged, retrieve_all


@dataclass
class NightLists:
    """Every stage's lists of one night, rows in ``night.user_ids`` order."""

    results: list[SourceCandidates]
    merged: Merged
    ranked: RankedLists
    final_items: np.ndarray  # (U, N) catalog indices, -1 padded
    final_scores: np.ndarray  # (U, N) blended scores
    seconds: dict[str, float] = field(default_factory=dict)

    def ranker_order(self) -> np.ndarray:
        """``(U, M)`` merged candidates by the blended score alone (no list rules), -1 last."""
        order = np.argsort(-self.ranked.scores, axis=1, kind="stable")  # -inf (padding) sorts last
        return np.take_along_axis(self.ranked.items, order, axis=1)


def list_scores(items: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The published score of each list position: non-increasing down the list, NaN padding.

    The list rules move some videos below videos the ranker scored lower (a creator's third video in
    the top 10 is pushed past position 10); such a video is published with the score of its new
    place, the lowest blended score above it, so a list's scores always read best first.
    """
    valid = items >= 0
    ordered = np.minimum.accumulate(np.where(valid, scores, np.inf), axis=1)
    return np.where(valid, ordered, np.nan).astype(np.float32)


def make_lists(night: Night, ranker: TrainedRanker, sources: SourcesConfig | None = None) -> NightLists:
    """Run sources, merge, ranker and list rules for every user of ``night``."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    results, merged = retrieve_all(night, sources or SourcesConfig())
    seconds["sources_and_merge"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    ranked = rank(merged, night, ranker, night.settings)
    seconds["rank"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    creators, _ = video_catalog(night.settings, night.date, night.video_ids)
    items, scores = final_lists(ranked, night, creators, ranker.cfg)
    scores = list_scores(items, scores)
    seconds["final_list"] = round(time.perf_counter() - started, 3)
    return NightLists(results, merged, ranked, items, scores, seconds)
