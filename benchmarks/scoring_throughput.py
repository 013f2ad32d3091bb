"""Scoring throughput at catalog scale: exact blocked top-N with exclusions against the matmul bound.

    .venv/bin/python benchmarks/scoring_throughput.py --users 20000 --videos 100000 --dim 64
    .venv/bin/python benchmarks/scoring_throughput.py --quick

Random unit embeddings stand in for the towers' outputs (the cost of retrieval does not depend on
what the vectors mean). On the same embeddings, prints users/second of:

* ``matmul_bound``: the blocked matrix multiply alone (``users[a:b] @ videos.T``), the bound;
* ``top_k_with_quota``: reelrec's exact top-N with ``watched_per_user`` exclusions and ``fresh_slots``
  reserved for fresh uploads, given the embeddings (``models.topk.DotScores``: the matmul is fused with
  the selection, tile by tile);
* ``blocked_top_k``: the same with the same exclusions, no quota;
* ``top_k_with_quota_blocks`` and ``blocked_top_k_blocks``: the same two given a ``score_block``
  callback instead, as any other scorer is ranked (whole ``(block, I)`` score blocks, then selection);
* ``faiss_flat_ip``: faiss exact inner-product search (``IndexFlatIP``), no exclusions (a peer);
* ``torch_topk``: ``torch.topk`` on the blocked torch matmul output, no exclusions (a peer);

each with its ratio to the bound, measured side by side in one run: the best of ``--repeats`` rounds,
each running every contender once, so load that comes and goes falls on all of them alike.
Unless ``--skip-hnsw``, it then prints the HNSW build time, its recall@100 against the exact result and
its query throughput.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def add_world_arguments(parser: argparse.ArgumentParser) -> None:
    """The shapes of a scoring benchmark (shared with benchmarks/spark_scoring.py) and ``--repeats``."""
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--top-n", type=int, default=100)
    parser.add_argument("--fresh-slots", type=int, default=10)
    parser.add_argument("--watched-per-user", type=int, default=50)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2, help="each figure is the best of this many rounds")


def random_world(
    n_users: int, n_videos: int, dim: int, watched_per_user: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, sp.csr_matrix]:
    """Unit user and video embeddings, 5 % fresh videos and random watched sets (seed 7).

    Returns:
        ``(users (U, D), videos (I, D), fresh (I,) bool, watched (U, I) CSR)``.
    """
    rng = np.random.default_rng(7)
    users = rng.normal(size=(n_users, dim)).astype(np.float32)
    videos = rng.normal(size=(n_videos, dim)).astype(np.float32)
    users /= np.linalg.norm(users, axis=1, keepdims=True)
    videos /= np.linalg.norm(videos, axis=1, keepdims=True)
    fresh = rng.random(n_videos) < 0.05
    rows = np.repeat(np.arange(n_users), watched_per_user)
    cols = rng.integers(0, n_videos, len(rows))
    watched = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_videos))
    return users, videos, fresh, watched


def _best_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The best wall time of each run over ``repeats`` rounds, each round running every one once.

    Round-robin rather than one contender after another, so that load from other processes that
    comes and goes during a run falls on every contender alike, not on whichever ran at that moment.
    """
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def _contenders(
    users: np.ndarray, videos: np.ndarray, fresh: np.ndarray, watched: sp.csr_matrix, args: argparse.Namespace
) -> dict[str, Callable[[], object]]:
    """Name -> a no-argument run over all users, each on the same embeddings."""
    import faiss
    import torch

    from models.topk import DotScores, blocked_top_k, top_k_with_quota

    n_users, block = len(users), args.block_size
    videos_t = np.ascontiguousarray(videos.T)  # (D, I)

    def score(rows: slice) -> np.ndarray:
        return users[rows] @ videos_t  # (B, I)

    dots = DotScores(users, videos)

    def matmul_only() -> None:
        for start in range(0, n_users, block):
            score(slice(start, start + block))

    index = faiss.IndexFlatIP(videos.shape[1])
    index.add(videos)
    users_torch, videos_torch = torch.from_numpy(users), torch.from_numpy(videos_t)

    def torch_topk() -> None:
        with torch.no_grad():
            for start in range(0, n_users, block):
                torch.topk(users_torch[start : start + block] @ videos_torch, args.top_n, dim=1)

    return {
        "matmul_bound": matmul_only,
        "top_k_with_quota": lambda: top_k_with_quota(
            dots, n_users, args.top_n, fresh, args.fresh_slots, watched, block
        ),
        "blocked_top_k": lambda: blocked_top_k(dots, n_users, args.top_n, watched, block),
        "top_k_with_quota_blocks": lambda: top_k_with_quota(
            score, n_users, args.top_n, fresh, args.fresh_slots, watched, block
        ),
        "blocked_top_k_blocks": lambda: blocked_top_k(score, n_users, args.top_n, watched, block),
        "faiss_flat_ip": lambda: index.search(users, args.top_n),
        "torch_topk": torch_topk,
    }


def _hnsw(users: np.ndarray, videos: np.ndarray) -> dict[str, object]:
    from models.score import ann_recall, build_ann_index

    with tempfile.TemporaryDirectory() as tmp:
        ids = [f"v{i:07d}" for i in range(len(videos))]
        ann = build_ann_index(videos, ids, Path(tmp), "bench")
        started = time.perf_counter()
        recall = ann_recall(ann["path"], users, videos, k=100, sample=2000)
        ann_query_s = time.perf_counter() - started
    return {
        "hnsw_build_seconds": ann["seconds"],
        "hnsw_bytes": ann["bytes"],
        "hnsw_recall@100_vs_exact": round(recall, 4),
        "hnsw_queries_per_second_incl_exact_check": round(2000 / ann_query_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_world_arguments(parser)
    parser.add_argument("--only", nargs="*", help="run only these contenders (the bound always runs)")
    parser.add_argument("--skip-hnsw", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2,000 users x 20,000 videos, no HNSW")
    args = parser.parse_args()
    if args.quick:
        args.users, args.videos, args.skip_hnsw = 2_000, 20_000, True

    users, videos, fresh, watched = random_world(args.users, args.videos, args.dim, args.watched_per_user)
    contenders = _contenders(users, videos, fresh, watched, args)
    wanted = ["matmul_bound", *(args.only or [n for n in contenders if n != "matmul_bound"])]
    seconds = _best_seconds({name: contenders[name] for name in wanted}, args.repeats)
    result: dict[str, object] = {
        "users": args.users,
        "videos": args.videos,
        "dim": args.dim,
        "top_n": args.top_n,
        "fresh_slots": args.fresh_slots,
        "watched_per_user": args.watched_per_user,
        "block_size": args.block_size,
    }
    for name, s in seconds.items():
        result[f"{name}_users_per_second"] = round(args.users / s)
        result[f"{name}_ratio_of_bound"] = round(seconds["matmul_bound"] / s, 3)
    if not args.skip_hnsw:
        result.update(_hnsw(users, videos))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
