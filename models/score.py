"""Score night D: candidates and embeddings of every active user, for serving on D+1.

* **users**: every active user, i.e. every row of silver.user_features for D (an event in the 28
  days ending at D), embedded with D's features and recent watch history;
* **videos**: every video of D's catalog snapshot, fresh uploads of D included (embedded from
  content), with its age at D+1 00:00, when the lists start being served;
* **gate**: nothing is written unless the promotion gate let night D publish
  (:func:`models.promotion.require_promoted`; a held night is skipped);
* **lists**: :func:`models.stages.make_lists`: the six candidate sources (the two-tower source
  searching the faiss HNSW index built here, the way an online service would), merged with
  provenance and watched videos removed, ranked by the multi-task ranker, list rules applied;
* **outputs**: gold.candidates (one row per active user, plus the default list under
  ``__default__``), gold.user_embeddings, gold.video_embeddings (partition ``dt=D``, every row
  with the release's ``model_version`` and ``generated_at``), gold.candidate_sources (why each
  video is in each list), the faiss HNSW index of the video embeddings next to the model
  (``<model>/ann/dt=D.faiss`` + ``dt=D.video_ids.json``), and ``runs/dt=D/release.json`` (the
  release ``publish`` registers).

``generated_at`` is the wall-clock time the lists were produced: it is metadata for the consumer
("how old is this list"), never an input to any computation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from models.default_list import default_list
from models.interactions import pairs_matrix
from models.promotion import release_version, require_promoted
from models.ranker.artifacts import load as load_ranker
from models.sources.base import Night
from models.sources.night import build_night
from models.stages import NightLists, make_lists
from models.two_tower.artifacts import TrainedModel, load
from reelrec import lake
from reelrec.catalog import (
    CANDIDATE_SOURCES,
    CANDIDATES,
    DEFAULT_LIST_KEY,
    DT,
    EMBEDDING,
    EVENT_TIMESTAMP,
    GENERATED_AT,
    MODEL_VERSION,
    SCORES,
    USER_EMBEDDINGS,
    USER_ID,
    VIDEO_EMBEDDINGS,
    VIDEO_ID,
    VIDEO_IDS,
)
from reelrec.dates import feature_timestamp
from reelrec.errors import DataError
from reelrec.history import watched
from reelrec.jobs import run_job
from reelrec.settings import Settings

RELEASE_FILE = "release.json"  # runs/dt=D/: the release scored tonight, registered by publish
HNSW_NEIGHBOURS = 32  # graph degree of the faiss HNSW index
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 256  # inner product over biased (non-unit) video vectors needs a wider search


class NothingToScoreError(DataError):
    """Night D has no active users or no catalog to score."""


def build_ann_index(vectors: np.ndarray, video_ids: list[str], folder: Path, date: str) -> dict[str, Any]:
    """Write a faiss HNSW inner-product index of unit ``vectors`` (I, D) and its id list.

    Returns:
        Facts: path, vectors, dimension, bytes, build seconds.
    """
    import faiss

    started = time.perf_counter()
    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH  # stored in the file: the default a service searches with
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dt={date}.faiss"
    faiss.write_index(index, str(path))
    (folder / f"dt={date}.video_ids.json").write_text(json.dumps(video_ids))
    return {
        "path": str(path),
        "vectors": int(index.ntotal),
        "dimension": int(vectors.shape[1]),
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
    }


def ann_recall(
    index_path: str, users: np.ndarray, videos: np.ndarray, k: int = 100, sample: int = 500
) -> float:
    """Share of the exact top-k (no exclusions) that the HNSW index returns, over a user sample."""
    import faiss

    index = faiss.read_index(index_path)
    queries = np.ascontiguousarray(users[:sample], dtype=np.float32)
    k = min(k, len(videos))
    _, approx = index.search(queries, k)
    exact = np.argsort(-(queries @ videos.T), axis=1)[:, :k]
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist(), strict=True))
    return hits / max(exact.size, 1)


def _list_rows(items: np.ndarray, scores: np.ndarray, video_ids: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """(U, N) item indices / scores (-1 padded) -> list<string> ids and list<float32> scores."""
    valid = items >= 0
    lengths = valid.sum(axis=1)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(video_ids[items[valid]], pa.string()))
    values = pa.ListArray.from_arrays(pa.array(offsets), pa.array(scores[valid], pa.float32()))
    return ids, values


def _pad(array: np.ndarray, width: int, fill: float = -1) -> np.ndarray:
    """``array`` (R, C <= width) right-padded with ``fill`` to ``width`` columns."""
    out = np.full((array.shape[0], width), fill, dtype=array.dtype)
    out[:, : array.shape[1]] = array
    return out


def _embedding_column(vectors: np.ndarray) -> pa.Array:
    n, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32)), flat)


def score(date: str, settings: Settings, trained: TrainedModel | None = None) -> dict[str, Any]:
    """Write night D's final lists (and the default list), user/video embeddings, provenance, ANN index.

    Raises:
        HeldError: when the promotion gate held night D (nothing is written).
        NothingToScoreError: when D has no active users or an empty catalog.
        FileNotFoundError: when night D has no trained model or ranker.
    """
    started = time.perf_counter()
    decision = require_promoted(date, settings)
    trained = trained or load(date, settings)
    ranker = load_ranker(date, settings)
    embed_started = time.perf_counter()
    night = build_night(settings, date, date, trained=trained)  # features of D, for serving on D+1
    embed_seconds = time.perf_counter() - embed_started
    if not night.user_ids or not night.video_ids:
        raise NothingToScoreError(
            f"score dt={date}: {len(night.user_ids)} active users in silver.user_features and "
            f"{len(night.video_ids)} videos in the bronze.videos snapshot; nothing to score"
        )
    assert night.user_vectors is not None and night.video_vectors is not None
    # The two-tower source searches the ANN index published with the lists, as an online service would.
    ann = build_ann_index(night.video_vectors, night.video_ids, trained.path / "ann", date)
    ann["recall@100_vs_exact"] = round(ann_recall(ann["path"], night.user_vectors, night.video_vectors), 4)
    night.ann_index = ann["path"]
    lists = make_lists(night, ranker)
    default_items, default_scores = default_list(settings, date, night.video_ids, night.fresh)
    components = {"two_tower": trained.version, "ranker": ranker.version}
    version = release_version(date, components)
    generated_at = datetime.now(UTC)
    write_started = time.perf_counter()
    scored = ScoredNight(
        night.user_ids,
        night.video_ids,
        night.user_vectors,
        night.video_vectors,
        lists.final_items,
        lists.final_scores,
    )
    versions = write_outputs(
        settings, date, Provenance(version, generated_at), scored, (default_items, default_scores)
    )
    versions.update(write_provenance(settings, date, version, lists, night))
    write_seconds = time.perf_counter() - write_started
    _write_release(settings, date, version, components, decision)
    top = lists.final_items
    n_users = len(night.user_ids)
    lengths = (top >= 0).sum(axis=1)
    return {
        "date": date,
        "model_version": version,
        "components": components,
        "users": n_users,
        "videos": len(night.video_ids),
        "fresh_videos": int(night.fresh.sum()),
        "candidates_per_user": {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 2)},
        "merged_per_user": round(float((lists.merged.items >= 0).sum(axis=1).mean()), 1),
        "fresh_candidates_per_user": round(
            float(night.fresh[np.maximum(top, 0)][top >= 0].sum() / n_users), 2
        ),
        "default_list": len(default_items),
        "watched_pairs_excluded": int(night.exclude.nnz),
        "embed_seconds": round(embed_seconds, 3),
        "stage_seconds": lists.seconds,
        "users_per_second": round(n_users / max(time.perf_counter() - embed_started, 1e-9)),
        "write_seconds": round(write_seconds, 3),
        "versions": versions,
        "ann_index": ann,
        "generated_at": generated_at.isoformat(),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _write_release(
    settings: Settings, date: str, version: str, components: dict[str, str], decision: dict[str, Any]
) -> None:
    """``runs/dt=D/release.json``: what ``publish`` registers once the lists are online."""
    path = settings.run_dir(date) / RELEASE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"version": version, "night": date, "components": components, "gate": decision}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2))
    tmp.replace(path)


def write_provenance(
    settings: Settings, date: str, version: str, lists: NightLists, night: Night
) -> dict[str, int]:
    """gold.candidate_sources of D: for every final list, which sources proposed each video at which rank."""
    merged = lists.merged
    names = np.asarray(merged.sources, dtype=object)
    final = lists.final_items
    ids, sources = [], []
    video_ids = np.asarray(night.video_ids, dtype=object)
    for u in range(final.shape[0]):
        row = final[u][final[u] >= 0]
        where = {item: j for j, item in enumerate(merged.items[u]) if item >= 0}
        ranks = merged.source_ranks[u]
        ids.append(video_ids[row].tolist())
        sources.append(
            [
                " ".join(
                    f"{names[s]}#{ranks[where[item], s] + 1}" for s in np.flatnonzero(ranks[where[item]] >= 0)
                )
                if item in where
                else ""
                for item in row
            ]
        )
    table = pa.table(
        {
            USER_ID: pa.array(night.user_ids, pa.string()),
            VIDEO_IDS: pa.array(ids, pa.list_(pa.string())),
            "sources": pa.array(sources, pa.list_(pa.string())),
            MODEL_VERSION: pa.array([version] * len(ids), pa.string()),
            DT: pa.array([date] * len(ids), pa.string()),
        }
    )
    name = f"{CANDIDATE_SOURCES.layer}.{CANDIDATE_SOURCES.name}"
    return {name: lake.write_partition(CANDIDATE_SOURCES, settings, table, date)}


def watched_matrix(
    settings: Settings, date: str, user_ids: list[str], items: dict[str, int]
) -> sp.csr_matrix:
    """(U, I) binary: the catalog videos each user watched up to ``date`` (never recommended again)."""
    seen = watched(settings, until=date)
    return pairs_matrix(
        seen.column(USER_ID).to_pylist(),
        seen.column(VIDEO_ID).to_pylist(),
        {u: i for i, u in enumerate(user_ids)},
        items,
    )


@dataclass
class Provenance:
    """What every gold row of a night carries: which model produced it, and when."""

    model_version: str
    generated_at: datetime

    def columns(self, date: str, n: int) -> dict[str, pa.Array]:
        """``model_version, generated_at, event_timestamp, dt`` columns of ``n`` rows of night ``date``."""
        return {
            MODEL_VERSION: pa.array([self.model_version] * n, pa.string()),
            GENERATED_AT: pa.array([self.generated_at] * n, pa.timestamp("us", tz="UTC")),
            EVENT_TIMESTAMP: pa.array([feature_timestamp(date)] * n, pa.timestamp("us", tz="UTC")),
            DT: pa.array([date] * n, pa.string()),
        }


@dataclass
class ScoredNight:
    """The night's retrieval results, in the row orders of ``user_ids`` and ``video_ids``."""

    user_ids: list[str]
    video_ids: list[str]
    user_vectors: np.ndarray  # (U, D)
    video_vectors: np.ndarray  # (I, D)
    top: np.ndarray  # (U, N) item indices, -1 padded
    top_scores: np.ndarray  # (U, N)


def write_outputs(
    settings: Settings,
    date: str,
    provenance: Provenance,
    night: ScoredNight,
    default: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, int]:
    """Replace night ``date``'s partitions of gold.candidates, user_embeddings and video_embeddings.

    ``default`` (item indices, scores) is the default list, one more gold.candidates row keyed
    :data:`reelrec.catalog.DEFAULT_LIST_KEY`: what users without a list of their own are served.

    Returns:
        The Delta version written, per table.
    """
    n_videos = len(night.video_ids)
    top, top_scores, list_users = night.top, night.top_scores, list(night.user_ids)
    if default is not None:
        width = max(top.shape[1], len(default[0]))
        top = np.vstack([_pad(top, width), _pad(default[0][None, :], width)])
        top_scores = np.vstack([_pad(top_scores, width, np.nan), _pad(default[1][None, :], width, np.nan)])
        list_users.append(DEFAULT_LIST_KEY)
    n_users, n_lists = len(night.user_ids), len(list_users)
    ids, values = _list_rows(top, top_scores, np.asarray(night.video_ids, dtype=object))
    users = pa.array(night.user_ids)
    candidates = {USER_ID: pa.array(list_users), VIDEO_IDS: ids, SCORES: values}
    user_embeddings = {USER_ID: users, EMBEDDING: _embedding_column(night.user_vectors)}
    video_embeddings = {
        VIDEO_ID: pa.array(night.video_ids),
        EMBEDDING: _embedding_column(night.video_vectors),
    }
    rows = (
        (CANDIDATES, candidates, n_lists),
        (USER_EMBEDDINGS, user_embeddings, n_users),
        (VIDEO_EMBEDDINGS, video_embeddings, n_videos),
    )
    return {
        f"{table.layer}.{table.name}": lake.write_partition(
            table, settings, pa.table({**columns, **provenance.columns(date, n)}), date
        )
        for table, columns, n in rows
    }


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Entry point of the DAG task and of ``python -m models.score --date D``."""
    return score(date, settings)


if __name__ == "__main__":
    raise SystemExit(run_job(main, "Score every active user of night D: candidates, embeddings, ANN index."))
