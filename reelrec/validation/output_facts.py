"""What suite "outputs" compares the gold tables of one date against, loaded once per suite run.

The gold rules look across tables: candidates go to active users (``silver.user_features`` of D),
never list a video the user watched (``bronze.events`` views up to D, :mod:`reelrec.history`),
every gold row carries one model version and both towers share one embedding dimension. The facts
behind those rules are read here, each table at one Delta version, which the reports record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from reelrec import history, lake
from reelrec.catalog import (
    CANDIDATES,
    EMBEDDING,
    EVENTS,
    GOLD_TABLES,
    MODEL_VERSION,
    USER_EMBEDDINGS,
    USER_FEATURES,
    USER_ID,
    VIDEO_EMBEDDINGS,
)
from reelrec.settings import Settings
from reelrec.validation.failures import absent_entry
from reelrec.validation.partition import absence, read_partition


@dataclass
class OutputFacts:
    """What the "outputs" checks of one date compare against.

    Attributes:
        partitions: the ``dt=D`` rows of each gold table whose partition has rows.
        active_users: distinct user ids of ``silver.user_features`` ``dt=D``.
        watched: distinct ``(user_id, video_id)`` pairs viewed up to ``D`` by the candidates' users.
        model_version: the version every gold row of ``D`` must carry: the most common one of the
            first gold table present (candidates, user_embeddings, video_embeddings).
        model_versions: distinct versions of each gold table (for the failure message).
        embedding_dim: the most common embedding length over both embedding tables (the two towers
            score by dot product, so they share one dimension).
        unavailable: reference table name -> report entry saying why its facts are missing.
        versions: table name -> Delta version its facts were read at.
    """

    partitions: dict[str, pa.Table] = field(default_factory=dict)
    active_users: pa.Array | None = None
    watched: pa.Table | None = None
    model_version: str | None = None
    model_versions: dict[str, list[str]] = field(default_factory=dict)
    embedding_dim: int | None = None
    unavailable: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int | None] = field(default_factory=dict)


def most_common(values: pa.Array | pa.ChunkedArray) -> Any:
    """The most frequent non-null value (ties: the smallest), ``None`` when there is none."""
    counts = pc.value_counts(values.drop_null())
    pairs = zip(counts.field("counts").to_pylist(), counts.field("values").to_pylist(), strict=True)
    return min(pairs, key=lambda cv: (-cv[0], cv[1]), default=(0, None))[1]


def _load_active_users(facts: OutputFacts, date: str, settings: Settings) -> None:
    if (reason := absence(USER_FEATURES, settings, date)) is None:
        facts.versions[USER_FEATURES.name] = lake.version(USER_FEATURES, settings)
        users = lake.read(
            USER_FEATURES,
            settings,
            dates=[date],
            columns=[USER_ID],
            version=facts.versions[USER_FEATURES.name],
        ).column(USER_ID)
        facts.active_users = pc.unique(users.combine_chunks())
    else:
        facts.unavailable[USER_FEATURES.name] = absent_entry(
            "reference_present",
            f"table {USER_FEATURES.layer}.{USER_FEATURES.name} has rows in partition dt={date} "
            "(its user_ids are the active users of the day)",
            reason,
        )


def _load_watched(facts: OutputFacts, date: str, settings: Settings) -> None:
    candidates = facts.partitions.get(CANDIDATES.name)
    if candidates is None or USER_ID not in candidates.column_names:
        return
    if lake.exists(EVENTS, settings):
        users = pc.unique(candidates.column(USER_ID).combine_chunks()).to_pylist()
        facts.versions[EVENTS.name] = lake.version(EVENTS, settings)
        facts.watched = history.watched(settings, until=date, users=users)
    else:
        facts.unavailable[EVENTS.name] = absent_entry(
            "reference_present",
            f"table {EVENTS.layer}.{EVENTS.name} exists (its view events up to dt={date} "
            "are the watched videos)",
            f"Delta table does not exist at {EVENTS.path(settings)}",
        )


def _summarise_gold(facts: OutputFacts) -> None:
    """The model version every gold row must carry and the embedding dimension both towers share."""
    for name, rows in facts.partitions.items():
        if MODEL_VERSION in rows.column_names:
            facts.model_versions[name] = sorted(pc.unique(rows.column(MODEL_VERSION)).drop_null().to_pylist())
            if facts.model_version is None:
                facts.model_version = most_common(rows.column(MODEL_VERSION))
    dims = [
        pc.list_value_length(rows.column(EMBEDDING))
        for name, rows in facts.partitions.items()
        if name in (USER_EMBEDDINGS.name, VIDEO_EMBEDDINGS.name) and EMBEDDING in rows.column_names
    ]
    if dims:
        facts.embedding_dim = most_common(pa.chunked_array(dims, type=pa.int32()))


def load_output_facts(date: str, settings: Settings) -> OutputFacts:
    """Read the gold partitions of ``date`` and the reference facts their checks compare against."""
    facts = OutputFacts()
    for table in GOLD_TABLES:
        if absence(table, settings, date) is None:
            facts.partitions[table.name], facts.versions[table.name] = read_partition(table, settings, date)
        else:
            facts.versions[table.name] = lake.version(table, settings)
    _load_active_users(facts, date, settings)
    _load_watched(facts, date, settings)
    _summarise_gold(facts)
    return facts
