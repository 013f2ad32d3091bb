"""Derived check columns of suite "outputs", and the GX expectations that run over them.

GX column expectations cannot look inside list columns or across tables, so the "outputs" suite
first adds *derived check columns* (:data:`OUTPUT_CHECK_COLUMNS`) to a copy of a gold partition,
computed vectorised in Arrow/numpy, and then runs ordinary expectations over them. Failures thus
land in the same report format, with offending rows, as those of the other suites.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec.catalog import (
    DEFAULT_LIST_KEY,
    EMBEDDING,
    MODEL_VERSION,
    SCORES,
    USER_ID,
    VIDEO_EMBEDDINGS,
    VIDEO_ID,
    VIDEO_IDS,
    Table,
)
from reelrec.validation.output_facts import OutputFacts
from reelrec.validation.report import SAMPLE_ROWS

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

UNIT_NORM_TOLERANCE = 0.01
"""User embeddings are unit vectors: an L2 norm must lie in ``[1 - tol, 1 + tol]``."""
MAX_VIDEO_EMBEDDING_NORM = 4.0
"""Video embeddings are bounded: a unit direction plus a bounded per-video bias coordinate."""

OUTPUT_CHECK_COLUMNS: dict[str, str] = {
    # gold.candidates, one value per candidate row
    "is_active_user": "user_id is an active user of D, i.e. has a row in silver.user_features dt=D "
    f"(or, in gold.candidates, is the default list's key {DEFAULT_LIST_KEY!r})",
    "n_items": "len(video_ids)",
    "n_scores": "len(scores)",
    "n_null_items": "null entries in video_ids",
    "n_duplicate_items": "len(video_ids) minus its distinct entries: repeats of a video already listed",
    "duplicate_items": "the video ids listed more than once, once each (shown with n_duplicate_items)",
    "n_watched_items": "entries of video_ids the user watched up to D (a view event, reelrec.history)",
    "watched_items": "those watched video ids in list order (shown with n_watched_items)",
    "n_nonfinite_scores": "scores that are NaN, +-inf or null",
    "scores_sorted": "no finite score is greater than the finite one before it (best first, ties allowed; "
    "non-finite scores are n_nonfinite_scores' concern)",
    # gold.user_embeddings (is_active_user too) and gold.video_embeddings, one value per row
    "embedding_dim": "len(embedding)",
    "n_nonfinite_values": "embedding values that are NaN, +-inf or null",
    "embedding_norm": "L2 norm of the embedding, in float64; null when a value is not finite (the norm is "
    "then meaningless and n_nonfinite_values reports the row)",
    # coverage frames: one row per entity that must have a row, not per partition row
    "has_candidates": "per active user of D: the user has a gold.candidates row",
    "default_list_rows": f"gold.candidates rows keyed {DEFAULT_LIST_KEY!r}, the default list of D "
    "(a one-row frame)",
    "has_embedding": "per active user of D (user_embeddings) or per video listed in any candidates "
    "list of D (video_embeddings): it has an embedding row",
}
"""Every column the "outputs" suite adds before running GX, with what it holds."""


# ---------------------------------------------------------------- computing the columns
def _flatten(lists: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """The list values in row order, the row each value belongs to, and each row's length.

    A null list has length 0 and contributes no values.
    """
    array = lists.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy().astype(np.int64)
    return pc.list_flatten(array), np.repeat(np.arange(len(array)), lengths), lengths


def _per_row(parents: np.ndarray, n_rows: int) -> np.ndarray:
    """How many of the flattened values given by their ``parents`` fall in each row."""
    return np.bincount(parents, minlength=n_rows).astype(np.int64)


def _lists_per_row(items: pa.Table, n_rows: int) -> pa.Array:
    """``items`` (``row``, ``pos``, ``video_id``) regrouped as one list per row, in ``pos`` order."""
    items = items.sort_by([("row", "ascending"), ("pos", "ascending")])
    counts = _per_row(items.column("row").to_numpy(), n_rows)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), items.column(VIDEO_ID).combine_chunks())


def _score_columns(scores: pa.Array, score_rows: np.ndarray, n: int) -> dict[str, pa.Array]:
    """``n_nonfinite_scores`` and ``scores_sorted`` of ``n`` candidate rows from their flattened scores."""
    values = scores.to_numpy(zero_copy_only=False)  # nulls become NaN
    finite = np.isfinite(values)
    comparable = (score_rows[1:] == score_rows[:-1]) & finite[1:] & finite[:-1]
    increases = score_rows[1:][comparable & (values[1:] > values[:-1])]
    return {
        "n_nonfinite_scores": pa.array(_per_row(score_rows[~finite], n)),
        "scores_sorted": pa.array(_per_row(increases, n) == 0),
    }


def candidate_columns(rows: pa.Table, facts: OutputFacts) -> dict[str, pa.Array]:
    """Derived check columns of a candidates partition (see :data:`OUTPUT_CHECK_COLUMNS`).

    Vectorised over the flattened lists: ``(row, pos, user_id, video_id)`` per listed item, grouped
    for duplicates and semi-joined with the watched pairs.
    """
    n = rows.num_rows
    users = rows.column(USER_ID).combine_chunks()
    items, item_rows, n_items = _flatten(rows.column(VIDEO_IDS))
    scores, score_rows, n_scores = _flatten(rows.column(SCORES))
    columns: dict[str, pa.Array] = {}
    if facts.active_users is not None:  # the default list's row is no user, and belongs
        columns["is_active_user"] = pc.or_(
            pc.is_in(users, value_set=facts.active_users), pc.equal(users, DEFAULT_LIST_KEY)
        )
    columns["n_items"] = pa.array(n_items)
    columns["n_scores"] = pa.array(n_scores)
    columns["n_null_items"] = pa.array(
        _per_row(item_rows[pc.is_null(items).to_numpy(zero_copy_only=False)], n)
    )

    listed = pa.table(
        {"row": item_rows, "pos": np.arange(len(items)), USER_ID: users.take(item_rows), VIDEO_ID: items}
    )
    groups = listed.group_by(["row", VIDEO_ID]).aggregate([("pos", "count"), ("pos", "min")])
    columns["n_duplicate_items"] = pa.array(n_items - _per_row(groups.column("row").to_numpy(), n))
    repeated = groups.filter(pc.field("pos_count") > 1).select(["row", "pos_min", VIDEO_ID])
    columns["duplicate_items"] = _lists_per_row(repeated.rename_columns(["row", "pos", VIDEO_ID]), n)

    if facts.watched is not None:
        seen = listed.join(facts.watched, keys=[USER_ID, VIDEO_ID], join_type="left semi")
        columns["n_watched_items"] = pa.array(_per_row(seen.column("row").to_numpy(), n))
        columns["watched_items"] = _lists_per_row(seen.select(["row", "pos", VIDEO_ID]), n)

    columns.update(_score_columns(scores, score_rows, n))
    return columns


def embedding_columns(rows: pa.Table, facts: OutputFacts, by_user: bool) -> dict[str, pa.Array]:
    """Derived check columns of an embedding partition (see :data:`OUTPUT_CHECK_COLUMNS`)."""
    n = rows.num_rows
    values, value_rows, dims = _flatten(rows.column(EMBEDDING))
    v = values.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN
    columns: dict[str, pa.Array] = {}
    if by_user and facts.active_users is not None:
        columns["is_active_user"] = pc.is_in(
            rows.column(USER_ID).combine_chunks(), value_set=facts.active_users
        )
    columns["embedding_dim"] = pa.array(dims)
    n_nonfinite = _per_row(value_rows[~np.isfinite(v)], n)
    columns["n_nonfinite_values"] = pa.array(n_nonfinite)
    norm = np.sqrt(np.bincount(value_rows, weights=np.where(np.isfinite(v), v * v, 0.0), minlength=n))
    columns["embedding_norm"] = pa.array(norm, mask=n_nonfinite > 0)
    return columns


# ---------------------------------------------------------------- expectations over the columns
def _list_rules(date: str) -> dict[str, Expectation]:
    """Rules on the derived columns of a candidates row (and ``is_active_user`` of both user tables)."""
    import great_expectations.expectations as gxe

    between = gxe.ExpectColumnValuesToBeBetween
    return {
        "is_active_user": gxe.ExpectColumnValuesToBeInSet(
            column="is_active_user",
            value_set=[True],
            description=f"user_id is an active user of dt={date} (has a row in silver.user_features), "
            f"or {DEFAULT_LIST_KEY!r} in gold.candidates",
        ),
        "n_items": between(
            column="n_items", min_value=1, description="every list is non-empty (n_items >= 1)"
        ),
        "n_scores": gxe.ExpectColumnPairValuesToBeEqual(
            column_A="n_items",
            column_B="n_scores",
            description="one score per video: len(video_ids) == len(scores)",
        ),
        "n_null_items": between(column="n_null_items", max_value=0, description="no null video id in a list"),
        "n_duplicate_items": between(
            column="n_duplicate_items",
            max_value=0,
            description="no duplicate video id within a list",
            meta={"show": ["duplicate_items"]},
        ),
        "n_watched_items": between(
            column="n_watched_items",
            max_value=0,
            description=f"no video the user already watched (a view event up to dt={date})",
            meta={"show": ["watched_items"]},
        ),
        "n_nonfinite_scores": between(
            column="n_nonfinite_scores",
            max_value=0,
            description="every score is finite (no NaN, inf or null)",
        ),
        "scores_sorted": gxe.ExpectColumnValuesToBeInSet(
            column="scores_sorted", value_set=[True], description="scores sorted best first (non-increasing)"
        ),
    }


def _embedding_rules(table: Table) -> dict[str, Expectation]:
    """Rules on the derived columns of an embedding row: non-empty, finite, norm in range."""
    import great_expectations.expectations as gxe

    between = gxe.ExpectColumnValuesToBeBetween
    low_norm, high_norm = 1 - UNIT_NORM_TOLERANCE, 1 + UNIT_NORM_TOLERANCE
    norm_rule = f"unit vector: L2 norm within [{low_norm:g}, {high_norm:g}]"
    if table.name == VIDEO_EMBEDDINGS.name:
        high_norm = MAX_VIDEO_EMBEDDING_NORM
        norm_rule = f"bounded vector: L2 norm within [{low_norm:g}, {high_norm:g}]"
    return {
        "embedding_dim": between(column="embedding_dim", min_value=1, description="embedding is non-empty"),
        "n_nonfinite_values": between(
            column="n_nonfinite_values",
            max_value=0,
            description="every embedding value is finite (no NaN, inf or null)",
        ),
        "embedding_norm": between(
            column="embedding_norm",
            min_value=low_norm,
            max_value=high_norm,
            description=norm_rule,
        ),
    }


def _agreement_rules(columns: Mapping[str, pa.Array], date: str, facts: OutputFacts) -> list[Expectation]:
    """Rules across the gold tables: one embedding dimension, one model version."""
    import great_expectations.expectations as gxe

    expectations: list[Expectation] = []
    if "embedding_dim" in columns and facts.embedding_dim is not None:
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="embedding_dim",
                value_set=[facts.embedding_dim],
                description=(
                    f"one embedding dimension, {facts.embedding_dim} (the most common over "
                    f"user_embeddings and video_embeddings of dt={date})"
                ),
            )
        )
    if facts.model_version is not None:
        seen = "; ".join(
            f"{name}: {versions[:SAMPLE_ROWS]}" for name, versions in facts.model_versions.items()
        )
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=MODEL_VERSION,
                value_set=[facts.model_version],
                description=(
                    f"one model_version across the gold outputs of dt={date}: {facts.model_version!r} "
                    f"(most common in gold.{next(iter(facts.model_versions))}); seen {seen}"
                ),
            )
        )
    return expectations


def derived_expectations(
    columns: Mapping[str, pa.Array], date: str, facts: OutputFacts, table: Table
) -> list[Expectation]:
    """GX expectations over the derived columns present in ``columns`` and over ``model_version``."""
    rules = {**_list_rules(date), **_embedding_rules(table)}
    return [rules[name] for name in columns if name in rules] + _agreement_rules(columns, date, facts)
