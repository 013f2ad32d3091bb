"""User-tower history encoders side by side: today's mean pool against attention over the ordered history.

    .venv/bin/python benchmarks/user_tower.py --home /work/homes/small
    .venv/bin/python benchmarks/user_tower.py --home /tmp/c/small --dates 2026-11-03,2026-11-04 --seeds 7,8

For each model night D of a populated home (its training sets built), trains the two-tower model
once per ``user_history_encoder`` (``mean``, ``attention``) with the same seed on the same training
set, exactly as ``models.two_tower.train`` does (:func:`models.two_tower.train.fit_night`) but in
memory, and evaluates both with the protocol of :mod:`models.evaluate` (held-out day D, features of
D-1, full ranking over D's catalog with watched videos removed: its ``held_out_day``, the exact
``blocked_top_k`` and the metrics of :mod:`models.metrics`). Prints per
night and variant recall@100, NDCG@10, fresh recall@100 and training seconds, the relative change
of ``attention`` against ``mean``, and the means over nights. Nothing is written into the home; the
``mean`` model's version is compared with the one the home's own run trained (same code, same data:
the same weights), which checks that the in-memory training is the nightly one.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from models import training_set
from models.evaluate import HeldOutDay, held_out_day
from models.metrics import recall_at_k, retrieval_metrics
from models.topk import blocked_top_k, top_k_with_quota
from models.two_tower import artifacts, embed
from models.two_tower.artifacts import TrainedModel
from models.two_tower.config import HISTORY_ENCODERS, TwoTowerConfig
from models.two_tower.inputs import ContentLookup
from models.two_tower.train import fit_night
from reelrec.dates import add_days, day_bounds
from reelrec.settings import Settings

DEFAULT_DATES = "2026-11-03,2026-11-04,2026-11-05,2026-11-06,2026-11-07"
METRICS = ("recall@100", "ndcg@10", "recall@10", "fresh_recall@100")
K = 100


def _measure(
    users: np.ndarray, videos: np.ndarray, day: HeldOutDay, fresh: np.ndarray, cfg: TwoTowerConfig
) -> dict[str, float]:
    """The model's plain top 100 (watched videos excluded) on the held-out day, and the published
    lists' recall@100 (``fresh_slots`` reserved for fresh uploads), as models.evaluate measures them."""

    def scores(rows: slice) -> np.ndarray:
        return users[rows] @ videos.T  # (B, I)

    n_users, n_items = len(day.user_ids), len(videos)
    ranked, _ = blocked_top_k(scores, n_users, K, exclude=day.exclude, block_size=cfg.block_size)
    metrics = retrieval_metrics(ranked, day.relevant, n_items, ks=(10, 50, K))
    metrics["fresh_recall@100"] = recall_at_k(ranked, day.relevant_fresh, K)
    published, _ = top_k_with_quota(
        scores, n_users, K, fresh, cfg.fresh_slots, day.exclude, block_size=cfg.block_size
    )
    metrics["published_recall@100"] = recall_at_k(published, day.relevant, K)
    return {k: round(float(v), 5) for k, v in metrics.items()}


def _night(settings: Settings, date: str, seeds: list[int], threads: int) -> list[dict[str, Any]]:
    """Train and evaluate every encoder and seed on night ``date``; one row per (encoder, seed)."""
    base = TwoTowerConfig(threads=threads)
    examples = training_set.load(date, settings)
    positives = examples.filter(pc.equal(examples.column(training_set.LABEL), 1))
    content = ContentLookup.from_lake(settings)
    # The held-out day, as models.evaluate.evaluate builds it.
    catalog = embed.load_catalog(settings, date, add_days(date, -1), requested_at=day_bounds(date)[0])
    items = {v: i for i, v in enumerate(catalog.video_ids)}
    fresh = catalog.uploaded_on(date)
    day = held_out_day(settings, date, base, items, fresh)
    histories = training_set.positive_histories(settings, add_days(date, -1), base.training_set)
    users = embed.load_users(settings, add_days(date, -1), day.user_ids)
    pointer = artifacts.pointer_path(settings, date)
    nightly = json.loads(pointer.read_text())["model_version"] if pointer.exists() else None
    rows = []
    for seed in seeds:
        for encoder in HISTORY_ENCODERS:
            cfg = replace(base, user_history_encoder=encoder, seed=seed)
            started = time.perf_counter()
            fitted = fit_night(date, settings, cfg, positives, content)
            train_seconds = time.perf_counter() - started
            version = artifacts.model_version(date, fitted.model, fitted.space)
            trained = TrainedModel(version, cfg, fitted.space, fitted.model, Path("/nonexistent"))
            user_vectors = embed.embed_users(trained, users, content, histories)
            video_vectors = embed.embed_videos(trained, catalog, content)
            measured = _measure(user_vectors, video_vectors, day, fresh, cfg)
            rows.append(
                {
                    "date": date,
                    "encoder": encoder,
                    "seed": seed,
                    "users": len(day.user_ids),
                    "examples": positives.num_rows,
                    "model_version": version,
                    "same_as_nightly": None
                    if nightly is None or seed != base.seed or encoder != "mean"
                    else version == nightly,
                    "train_seconds": round(train_seconds, 2),
                    "final_loss": round(fitted.losses[-1], 4),
                    **{m: measured[m] for m in (*METRICS, "published_recall@100")},
                }
            )
    return rows


def _change(new: float, old: float) -> str:
    return f"{100 * (new - old) / old:+.1f}%" if old else "n/a"


def _report(rows: list[dict[str, Any]]) -> None:
    """Per night (seeds averaged): both encoders' metrics and attention's relative change."""
    print(
        f"{'night':<11}{'users':>6} | {'recall@100 mean/attn':>22} {'chg':>7} | {'ndcg@10 mean/attn':>20} "
        f"{'chg':>7} | {'fresh_r@100 mean/attn':>22} | {'train s mean/attn':>18}"
    )
    means: dict[str, dict[str, list[float]]] = {e: {} for e in HISTORY_ENCODERS}
    wins = {"recall@100": 0, "ndcg@10": 0}
    dates = sorted({r["date"] for r in rows})
    for date in dates:
        avg = {}
        for encoder in HISTORY_ENCODERS:
            mine = [r for r in rows if r["date"] == date and r["encoder"] == encoder]
            avg[encoder] = {k: float(np.mean([r[k] for r in mine])) for k in (*METRICS, "train_seconds")}
            for k, v in avg[encoder].items():
                means[encoder].setdefault(k, []).append(v)
        m, a = avg["mean"], avg["attention"]
        for k in wins:
            wins[k] += a[k] > m[k]
        users = next(r["users"] for r in rows if r["date"] == date)
        print(
            f"{date:<11}{users:>6} | {m['recall@100']:>10.4f} {a['recall@100']:>10.4f} "
            f"{_change(a['recall@100'], m['recall@100']):>8} | {m['ndcg@10']:>9.4f} {a['ndcg@10']:>9.4f} "
            f"{_change(a['ndcg@10'], m['ndcg@10']):>8} | {m['fresh_recall@100']:>10.4f} "
            f"{a['fresh_recall@100']:>10.4f} | {m['train_seconds']:>8.1f} {a['train_seconds']:>8.1f}"
        )
    m = {k: float(np.mean(v)) for k, v in means["mean"].items()}
    a = {k: float(np.mean(v)) for k, v in means["attention"].items()}
    print(
        f"{'mean':<17} | {m['recall@100']:>10.4f} {a['recall@100']:>10.4f} "
        f"{_change(a['recall@100'], m['recall@100']):>8} | {m['ndcg@10']:>9.4f} {a['ndcg@10']:>9.4f} "
        f"{_change(a['ndcg@10'], m['ndcg@10']):>8} | {m['fresh_recall@100']:>10.4f} "
        f"{a['fresh_recall@100']:>10.4f} | {m['train_seconds']:>8.1f} {a['train_seconds']:>8.1f}"
    )
    print(
        f"attention beats mean on recall@100 in {wins['recall@100']}/{len(dates)} nights, "
        f"on ndcg@10 in {wins['ndcg@10']}/{len(dates)}"
    )
    checked = [
        r["same_as_nightly"] for r in rows if r["encoder"] == "mean" and r["same_as_nightly"] is not None
    ]
    if checked:
        print(f"mean model == the home's nightly model (seed 7): {sum(checked)}/{len(checked)} nights")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default="/work/homes/small", help="a populated REELREC_HOME (read only)")
    parser.add_argument("--dates", default=DEFAULT_DATES, help="comma-separated model nights")
    parser.add_argument("--seeds", default="7", help="comma-separated seeds (7: the config's default)")
    parser.add_argument("--threads", type=int, default=TwoTowerConfig().threads)
    parser.add_argument("--json", type=Path, help="also write every row to this file")
    args = parser.parse_args()
    settings = Settings.from_env(Path(args.home))
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict[str, Any]] = []
    for date in args.dates.split(","):
        night = _night(settings, date, seeds, args.threads)
        for row in night:
            print(json.dumps(row), flush=True)
        rows.extend(night)
    _report(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
