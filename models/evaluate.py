"""Evaluate night D's release, every stage of it, and the serving release, on the held-out day D.

Protocol (the same for every stage and release):

* **held-out day**: the models were trained on the nights before D; D's impressions are unseen.
* **relevant**: the videos a user had a *positive* on during D (a view of at least the completion
  threshold, a like or a share; :func:`models.training_set.labels`), minus videos the user had
  already watched before D. Users with no such video are not evaluated; of the others, at most
  :data:`MAX_USERS` are (a deterministic sample, :func:`sampled`, the same for every release).
* **catalog**: every video of D's snapshot, fresh uploads of D included; videos the user watched
  before D are never ranked (:func:`reelrec.history.watched`).
* **features**: everything is as of night D-1, i.e. what was known when D began
  (:func:`models.sources.night.build_night` with ``as_of`` D-1; the two-tower source ranks exactly).
* **cold users**: an evaluated user without features on D-1 was not scored by night D-1, so the
  feed served them the default list: their final list is the default list
  (:func:`models.default_list.default_list`), counted, never dropped (``cold_users``).
* **metrics**: :mod:`models.harness` (recall/NDCG@10/50/100, coverage, fresh recall, creator
  diversity of the top 10) for each source alone, ``merged`` (ordered by the best source rank),
  ``ranker`` (ordered by the blended heads) and ``final`` (the published list); per ranker head, AUC
  and log loss on D's impressions; the issue's goals (:func:`models.harness.goals`).
* **serving release**: the release serving now (:func:`reelrec.releases.serving`) is rebuilt from
  its own models and measured by the same code on the same day (``serving``): the promotion gate
  (:mod:`models.promotion`) compares the two.

The result is ``metrics.json`` in the two-tower model folder and in ``runs/dt=D/metrics.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc
import scipy.sparse as sp

from models import training_set
from models.default_list import default_list
from models.harness import KS, LIST_LEN, goals, list_metrics, padded
from models.interactions import pairs_matrix
from models.promotion import release_version
from models.ranker import artifacts as ranker_artifacts
from models.ranker.artifacts import TrainedRanker
from models.ranker.examples import sampled
from models.ranker.features import video_catalog
from models.sources.base import Night
from models.sources.config import SOURCE_NAMES
from models.sources.night import build_night
from models.stages import NightLists, make_lists
from models.two_tower import artifacts as two_tower_artifacts
from models.two_tower import embed
from models.two_tower.artifacts import TrainedModel
from models.two_tower.config import TwoTowerConfig
from reelrec import lake, releases
from reelrec.catalog import USER_FEATURES, USER_ID, VIDEO_ID
from reelrec.dates import add_days, day_bounds
from reelrec.history import watched
from reelrec.jobs import run_job
from reelrec.settings import Settings

__all__ = ["KS", "HeldOutDay", "evaluate", "held_out_day"]


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


# Evaluated users at most (a deterministic crc32 sample of ``user|D``, the same for the night's
# release and the serving one, so the gate compares them on the same users). The cost of evaluation
# grows with the users evaluated: the medium home has ~18k users with positives a day (262 s of
# evaluate on a busy machine); 5k keep the standard error of NDCG@10 near 0.002, under the gate's
# tolerance of 0.005, and the small home's ~2k users are all kept.
MAX_USERS = 5000


def held_out_day(
    settings: Settings,
    date: str,
    cfg: TwoTowerConfig,
    items: dict[str, int],
    fresh: np.ndarray,
    max_users: int | None = MAX_USERS,
) -> HeldOutDay:
    """Relevant: D's positives on catalog videos, minus videos the user watched before D; the users
    with any, sampled down to ``max_users`` (:func:`sampled`; None keeps every one)."""
    day = training_set.labels(settings, [date], cfg.training_set)
    day = day.filter(pc.equal(day.column(training_set.LABEL), 1))
    before = watched(settings, until=add_days(date, -1))
    seen = set(zip(before.column(USER_ID).to_pylist(), before.column(VIDEO_ID).to_pylist(), strict=True))
    pairs = [
        (u, v) for u, v in zip(day.column(USER_ID).to_pylist(), day.column(VIDEO_ID).to_pylist(), strict=True)
    ]
    pairs = [(u, v) for u, v in pairs if (u, v) not in seen and v in items]
    user_ids = sorted({u for u, _ in pairs})
    if max_users is not None and len(user_ids) > max_users:
        user_ids = sampled(user_ids, date, max_users)
        kept = set(user_ids)
        pairs = [(u, v) for u, v in pairs if u in kept]
    users = {u: i for i, u in enumerate(user_ids)}
    n_users = len(users)
    rel_u = np.fromiter((users[u] for u, _ in pairs), np.int64, len(pairs))
    rel_i = np.fromiter((items[v] for _, v in pairs), np.int64, len(pairs))
    relevant = [np.unique(rel_i[rel_u == u]) for u in range(n_users)] if n_users else []
    exclude = pairs_matrix(
        before.column(USER_ID).to_pylist(), before.column(VIDEO_ID).to_pylist(), users, items
    )
    return HeldOutDay(user_ids, pairs, relevant, [r[fresh[r]] for r in relevant], exclude)


def creator_codes(settings: Settings, date: str, video_ids: list[str]) -> np.ndarray:
    """(I,) int creator code of each catalog video of D's snapshot (-1 when unknown)."""
    creators, _ = video_catalog(settings, date, video_ids)
    codes: dict[str, int] = {}
    return np.fromiter(
        (codes.setdefault(c, len(codes)) if c is not None else -1 for c in creators),
        np.int64,
        len(video_ids),
    )


def cold_rows(settings: Settings, as_of: str, user_ids: list[str]) -> np.ndarray:
    """(U,) bool: users without silver.user_features on ``as_of`` (night as_of did not score them)."""
    scored = set(lake.read(USER_FEATURES, settings, dates=[as_of], columns=[USER_ID]).column(0).to_pylist())
    return np.fromiter((u not in scored for u in user_ids), bool, len(user_ids))


def stage_metrics(
    lists: NightLists,
    night: Night,
    day: HeldOutDay,
    creators: np.ndarray,
    cold: np.ndarray,
    default: np.ndarray,
) -> dict[str, dict[str, float]]:
    """The harness's list metrics of every stage of one release."""
    n_items = len(night.video_ids)

    def measure(items: np.ndarray) -> dict[str, float]:
        return list_metrics(items, day.relevant, day.relevant_fresh, creators, n_items)

    out = {result.name: measure(result.items) for result in lists.results}
    out["merged"] = measure(lists.merged.order_by_best_source())
    out["ranker"] = measure(lists.ranker_order())
    final = padded(lists.final_items, LIST_LEN)
    final[cold] = padded(default[None, :], LIST_LEN)[0]
    out["final"] = measure(final)
    return out


def release_metrics(
    settings: Settings,
    date: str,
    day: HeldOutDay,
    trained: TrainedModel,
    ranker: TrainedRanker,
    default: np.ndarray,
) -> tuple[dict[str, Any], NightLists]:
    """Every stage of one release (two-tower + ranker) on day D, with its timings."""
    as_of = add_days(date, -1)
    started = time.perf_counter()
    night = build_night(settings, date, as_of, user_ids=day.user_ids, trained=trained)
    night_seconds = time.perf_counter() - started
    lists = make_lists(night, ranker)
    creators = creator_codes(settings, date, night.video_ids)
    cold = cold_rows(settings, as_of, day.user_ids)
    retrieval = stage_metrics(lists, night, day, creators, cold, default)
    seconds = {"night": round(night_seconds, 3), **lists.seconds}
    return {"retrieval": retrieval, "seconds": seconds, "cold_users": int(cold.sum())}, lists


def serving_metrics(
    settings: Settings, date: str, day: HeldOutDay, default: np.ndarray
) -> dict[str, Any] | None:
    """The serving release's stages on day D, rebuilt from its own models; None when none serves.

    A release whose night's models were since replaced (a rerun of that night) cannot be rebuilt:
    the result says so instead of measuring other models under its name.
    """
    release = releases.serving(settings)
    if release is None or release.night >= date:
        return None
    trained = two_tower_artifacts.load(release.night, settings)
    ranker = ranker_artifacts.load(release.night, settings)
    found = {"two_tower": trained.version, "ranker": ranker.version}
    if found != release.components:
        return {
            "version": release.version,
            "night": release.night,
            "error": f"models of night {release.night} are now {found}, not {release.components}",
        }
    measured, _ = release_metrics(settings, date, day, trained, ranker, default)
    return {"version": release.version, "night": release.night, **measured}


def evaluate(date: str, settings: Settings) -> dict[str, Any]:
    """Measure night D's release and the serving release on day D; write and return the metrics.

    Raises:
        FileNotFoundError: when night D has no trained model, ranker or training set.
    """
    started = time.perf_counter()
    trained = two_tower_artifacts.load(date, settings)
    ranker = ranker_artifacts.load(date, settings)
    as_of = add_days(date, -1)
    catalog = embed.load_catalog(settings, date, as_of, requested_at=day_bounds(date)[0])
    items = {v: i for i, v in enumerate(catalog.video_ids)}
    fresh = catalog.uploaded_on(date)
    day = held_out_day(settings, date, trained.cfg, items, fresh)
    default, _ = default_list(settings, as_of, catalog.video_ids, fresh)
    measured, lists = release_metrics(settings, date, day, trained, ranker, default)
    components = {"two_tower": trained.version, "ranker": ranker.version}
    result = {
        "date": date,
        "model_version": release_version(date, components),
        "release": {"version": release_version(date, components), "components": components},
        "protocol": "held-out day D; relevant = D's positives not watched before D (users with any, at most "
        f"{MAX_USERS} sampled); full catalog of D with "
        "watched videos removed; features as of D-1; cold users get the default list",
        "users": len(day.user_ids),
        "max_users": MAX_USERS,
        "catalog_videos": len(items),
        "fresh_videos": int(fresh.sum()),
        "users_with_fresh_positives": int(sum(len(r) > 0 for r in day.relevant_fresh)),
        "relevant_pairs": len(day.pairs),
        **measured,
        "heads": ranker_head_metrics(settings, date, ranker),
        "goals": goals(measured["retrieval"], SOURCE_NAMES),
        "serving": serving_metrics(settings, date, day, default),
        "seconds": round(time.perf_counter() - started, 2),
    }
    del lists
    _write_metrics(result, trained, settings, date)
    return result


def ranker_head_metrics(settings: Settings, date: str, ranker: TrainedRanker) -> dict[str, Any]:
    """Per head, AUC and log loss of the ranker on the impressions of D (every impression of at most
    :data:`MAX_USERS` sampled users; features as of D-1, the sources of night D: tonight's two-tower
    model, which never saw D)."""
    from models.ranker.examples import build_examples
    from models.ranker.train import head_metrics

    examples = build_examples(settings, [date], ranker.cfg, cap=False, max_users=MAX_USERS)
    return head_metrics(ranker.model, examples.x, examples.y, ranker.cfg.heads)


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
    raise SystemExit(
        run_job(main, "Evaluate night D's release, every stage, and the serving release on day D.")
    )
