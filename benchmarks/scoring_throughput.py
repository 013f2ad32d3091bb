"""Scoring throughput at catalog scale: exact blocked top-N with exclusions, and the faiss index.

    .venv/bin/python benchmarks/scoring_throughput.py --users 30000 --videos 40000

Random unit embeddings stand in for the towers' outputs (the cost of retrieval does not depend on
what the vectors mean). Prints users/second of the exact blocked matrix multiply + top-N (with
``fresh_slots`` reserved, as models.score does), the HNSW build time, its recall@100 against the
exact result and its query throughput.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from models.score import ann_recall, build_ann_index
from models.topk import top_k_with_quota


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--videos", type=int, default=40_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--top-n", type=int, default=100)
    parser.add_argument("--fresh-slots", type=int, default=10)
    parser.add_argument("--watched-per-user", type=int, default=50)
    parser.add_argument("--block-size", type=int, default=2048)
    args = parser.parse_args()

    rng = np.random.default_rng(7)
    users = rng.normal(size=(args.users, args.dim)).astype(np.float32)
    videos = rng.normal(size=(args.videos, args.dim)).astype(np.float32)
    users /= np.linalg.norm(users, axis=1, keepdims=True)
    videos /= np.linalg.norm(videos, axis=1, keepdims=True)
    fresh = rng.random(args.videos) < 0.05
    rows = np.repeat(np.arange(args.users), args.watched_per_user)
    cols = rng.integers(0, args.videos, len(rows))
    watched = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(args.users, args.videos))

    started = time.perf_counter()
    items, _ = top_k_with_quota(
        lambda r: users[r] @ videos.T,
        args.users,
        args.top_n,
        fresh,
        args.fresh_slots,
        watched,
        args.block_size,
    )
    exact_s = time.perf_counter() - started
    assert (items >= 0).all()

    with tempfile.TemporaryDirectory() as tmp:
        ids = [f"v{i:07d}" for i in range(args.videos)]
        ann = build_ann_index(videos, ids, Path(tmp), "bench")
        started = time.perf_counter()
        recall = ann_recall(ann["path"], users, videos, k=100, sample=2000)
        ann_query_s = time.perf_counter() - started
    result = {
        "users": args.users,
        "videos": args.videos,
        "dim": args.dim,
        "exact_top_n_seconds": round(exact_s, 2),
        "exact_users_per_second": round(args.users / exact_s),
        "hnsw_build_seconds": ann["seconds"],
        "hnsw_bytes": ann["bytes"],
        "hnsw_recall@100_vs_exact": round(recall, 4),
        "hnsw_queries_per_second_incl_exact_check": round(2000 / ann_query_s),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
