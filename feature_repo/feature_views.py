"""Feast feature views over the silver feature tables, one per entity and grain.

Names read ``<entity>_<grain>_<topic>``. Every field takes its name and type from the table catalog
(:mod:`reelrec.catalog`) through :func:`catalog_field`, so a column renamed or retyped there fails
here at import time instead of surprising a model at serving time. Windowed columns are generated
as the catalog generates them (:func:`windowed_fields` over ``catalog.WINDOWS``), so a new window
appears in the catalog and the views together.

Rows are valid from ``event_timestamp`` = end of ``dt``; the two-day TTL lets a consumer ride out
one missed night but never serves features older than that.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pyarrow as pa
from feast import Entity, FeatureView, Field, FileSource
from feast.types import Array, FeastType, Float32, Float64, Int32, Int64, String, UnixTimestamp

from feature_repo.data_sources import (
    OWNER,
    candidates_source,
    creator_features_source,
    user_embeddings_source,
    user_features_source,
    video_content_source,
    video_embeddings_source,
    video_features_source,
)
from feature_repo.entities import creator, user, video
from reelrec.catalog import (
    AGE_HOURS,
    CANDIDATES,
    CREATOR_FEATURES,
    CREATOR_ID,
    EMBEDDING,
    FOLLOWERS_TOTAL,
    FRAME_EMBEDDING,
    GENERATED_AT,
    MODEL_VERSION,
    RECENT_VIDEO_IDS,
    SCORES,
    TEXT_EMBEDDING,
    TRENDING_SCORE,
    TS,
    USER_EMBEDDINGS,
    USER_FEATURES,
    USER_ID,
    VIDEO_CONTENT,
    VIDEO_EMBEDDINGS,
    VIDEO_FEATURES,
    VIDEO_ID,
    VIDEO_IDS,
    WATCH_MS,
    WINDOWS,
    Table,
    windowed_names,
)

DAILY_TTL = timedelta(days=2)
NO_EXPIRY = timedelta(0)  # Feast: a zero TTL never expires (content does not age)

_PRIMITIVES: dict[pa.DataType, FeastType] = {
    pa.string(): String,
    pa.int64(): Int64,
    pa.int32(): Int32,
    pa.float64(): Float64,
    pa.float32(): Float32,
    TS: UnixTimestamp,
}


def feast_type(arrow_type: pa.DataType, where: str) -> FeastType:
    """Feast dtype of an Arrow column type (primitives and lists of primitives).

    Raises:
        TypeError: naming ``where`` (table.column) when the type has no Feast counterpart here.
    """
    if pa.types.is_list(arrow_type) and arrow_type.value_type in _PRIMITIVES:
        return Array(_PRIMITIVES[arrow_type.value_type])
    if arrow_type in _PRIMITIVES:
        return _PRIMITIVES[arrow_type]
    raise TypeError(f"{where}: Arrow type {arrow_type} has no Feast dtype mapping")


def catalog_field(table: Table, name: str, description: str) -> Field:
    """A Feast ``Field`` for column ``name`` of ``table``, typed from the catalog schema.

    Raises:
        KeyError: naming the table and column when the catalog has no such column.
    """
    if name not in table.schema.names:
        raise KeyError(f"table {table.layer}.{table.name} has no column {name!r}; columns: {table.columns}")
    where = f"{table.layer}.{table.name}.{name}"
    return Field(name=name, dtype=feast_type(table.schema.field(name).type, where), description=description)


def _during(window: int) -> str:
    """The span of a ``window``-day feature in words: ``on dt`` or ``in the N days ending at dt``."""
    return "on dt" if window == 1 else f"in the {window} days ending at dt"


def windowed_fields(table: Table, prefix: str, measure: str, defined_as: str = "") -> list[Field]:
    """One field per catalog window (:data:`reelrec.catalog.WINDOWS`), named as the catalog names them.

    ``windowed_fields(t, "views", "Videos the user watched", defined_as="(view events)")`` gives
    ``views_1d`` ("Videos the user watched (view events) on dt."), ``views_7d`` ("Videos the user
    watched in the 7 days ending at dt.") and ``views_28d``. ``defined_as`` says what is counted; it
    is written once, in the first window's description.
    """
    fields = []
    for i, (window, name) in enumerate(zip(WINDOWS, windowed_names(prefix), strict=True)):
        what = f"{measure} {defined_as}" if defined_as and i == 0 else measure
        fields.append(catalog_field(table, name, f"{what} {_during(window)}."))
    return fields


def _tags(table: Table, topic: str) -> dict[str, str]:
    return {"grain": "daily", "topic": topic, "source_table": f"{table.layer}.{table.name}", "team": "recsys"}


# ---------------------------------------------------------------- user
def user_daily_engagement(source: FileSource) -> FeatureView:
    """How much and how a user watched, over windows ending at the end of ``dt``."""
    t = USER_FEATURES
    return FeatureView(
        name="user_daily_engagement",
        entities=[user],
        ttl=DAILY_TTL,
        schema=[
            catalog_field(t, USER_ID, "User id (join key)."),
            *windowed_fields(t, "impressions", "Videos shown to the user"),
            *windowed_fields(t, "views", "Videos the user watched", defined_as="(view events)"),
            *windowed_fields(t, WATCH_MS, "Total watch time in milliseconds"),
            catalog_field(t, "completion_rate_7d", "Share of the user's views in 7 days watched to the end."),
            catalog_field(
                t, "completion_rate_28d", "Share of the user's views in 28 days watched to the end."
            ),
            catalog_field(t, "like_rate_28d", "Likes per view over the 28 days ending at dt."),
            catalog_field(t, "active_days_28d", "Days with at least one event in the 28 days ending at dt."),
            catalog_field(
                t, RECENT_VIDEO_IDS, "Videos the user watched most recently, newest first (<= 50)."
            ),
        ],
        source=source,
        online=True,
        description="Per-user engagement (volume, watch time, completion, likes) as of the end of dt.",
        owner=OWNER,
        tags=_tags(t, "engagement"),
    )


# ---------------------------------------------------------------- video
def video_daily_performance(source: FileSource) -> FeatureView:
    """How a video performs with the audience, over windows ending at the end of ``dt``."""
    t = VIDEO_FEATURES
    return FeatureView(
        name="video_daily_performance",
        entities=[video],
        ttl=DAILY_TTL,
        schema=[
            catalog_field(t, VIDEO_ID, "Video id (join key)."),
            catalog_field(t, CREATOR_ID, "Creator who uploaded the video."),
            *windowed_fields(t, "impressions", "Times the video was shown"),
            *windowed_fields(t, "views", "Times the video was watched", defined_as="(view events)"),
            catalog_field(
                t, "completion_rate_7d", "Share of the video's views in 7 days watched to the end."
            ),
            catalog_field(t, "like_rate_7d", "Likes per view over the 7 days ending at dt."),
            catalog_field(t, "share_rate_7d", "Shares per view over the 7 days ending at dt."),
            catalog_field(
                t, "avg_watch_fraction_1d", "Mean watch_ms / duration_ms of the video's views on dt."
            ),
            catalog_field(
                t, "avg_watch_fraction_7d", "Mean watch_ms / duration_ms over 7 days ending at dt."
            ),
            catalog_field(t, AGE_HOURS, "Hours from upload to the end of dt."),
            catalog_field(
                t, TRENDING_SCORE, "Recency-weighted engagement score used by the trending baseline."
            ),
        ],
        source=source,
        online=True,
        description="Per-video audience performance (reach, completion, likes, shares, freshness) as of dt.",
        owner=OWNER,
        tags=_tags(t, "performance"),
    )


# ---------------------------------------------------------------- creator
def creator_daily_audience(source: FileSource) -> FeatureView:
    """A creator's audience and output, as of the end of ``dt``."""
    t = CREATOR_FEATURES
    return FeatureView(
        name="creator_daily_audience",
        entities=[creator],
        ttl=DAILY_TTL,
        schema=[
            catalog_field(t, CREATOR_ID, "Creator id (join key)."),
            catalog_field(t, FOLLOWERS_TOTAL, "Followers at the end of dt."),
            catalog_field(t, "new_followers_7d", "Follow edges created in the 7 days ending at dt."),
            catalog_field(t, "uploads_7d", "Videos uploaded in the 7 days ending at dt."),
            catalog_field(t, "uploads_28d", "Videos uploaded in the 28 days ending at dt."),
            catalog_field(t, "views_7d", "Views of the creator's videos in the 7 days ending at dt."),
            catalog_field(t, "engagement_rate_7d", "(likes + shares + follows) per view over the 7 days."),
        ],
        source=source,
        online=True,
        description="Per-creator audience growth, output and engagement as of the end of dt.",
        owner=OWNER,
        tags=_tags(t, "audience"),
    )


# ---------------------------------------------------------------- content (static per video)
def video_static_content(source: FileSource) -> FeatureView:
    """What a video shows and says: caption/hashtag text embedding and the upstream frame embedding.

    Rows are valid from the upload time and never expire: content does not change.
    """
    t = VIDEO_CONTENT
    return FeatureView(
        name="video_static_content",
        entities=[video],
        ttl=NO_EXPIRY,
        schema=[
            catalog_field(t, VIDEO_ID, "Video id (join key)."),
            catalog_field(t, CREATOR_ID, "Creator who uploaded the video."),
            catalog_field(
                t, TEXT_EMBEDDING, "all-MiniLM-L6-v2 embedding of caption + hashtags (384-d, unit norm)."
            ),
            catalog_field(t, FRAME_EMBEDDING, "Upstream visual embedding of sampled frames (32-d)."),
            catalog_field(t, "text_encoder", "Model that produced text_embedding."),
        ],
        source=source,
        online=True,
        description="Multimodal content embeddings of a video (text + frames), valid from upload.",
        owner=OWNER,
        tags=_tags(t, "content") | {"grain": "static"},
    )


# ---------------------------------------------------------------- model outputs (gold)
def user_daily_candidates(source: FileSource) -> FeatureView:
    """The night's retrieval candidates of a user, best first, with the model version behind them."""
    t = CANDIDATES
    return FeatureView(
        name="user_daily_candidates",
        entities=[user],
        ttl=DAILY_TTL,
        schema=[
            catalog_field(t, USER_ID, "User id (join key)."),
            catalog_field(t, VIDEO_IDS, "Candidate videos, best first; never a video the user watched."),
            catalog_field(t, SCORES, "Retrieval score of each candidate (same order as video_ids)."),
            catalog_field(t, MODEL_VERSION, "Model version that produced the list."),
            catalog_field(t, GENERATED_AT, "When the scoring job produced the list (UTC)."),
        ],
        source=source,
        online=True,
        description="Top-N two-tower retrieval candidates per active user, published nightly.",
        owner=OWNER,
        tags=_tags(t, "candidates") | {"plane": "model"},
    )


def _daily_embedding(
    name: str, table: Table, entity: Entity, key: str, what: str, source: FileSource
) -> FeatureView:
    return FeatureView(
        name=name,
        entities=[entity],
        ttl=DAILY_TTL,
        schema=[
            catalog_field(table, key, f"{entity.name.capitalize()} id (join key)."),
            catalog_field(table, EMBEDDING, what),
            catalog_field(table, MODEL_VERSION, "Model version that produced the embedding."),
            catalog_field(table, GENERATED_AT, "When the scoring job produced the embedding (UTC)."),
        ],
        source=source,
        online=True,
        description=f"Two-tower {entity.name} embeddings, published nightly.",
        owner=OWNER,
        tags=_tags(table, "embedding") | {"plane": "model"},
    )


def user_daily_embedding(source: FileSource) -> FeatureView:
    """The user-tower embedding of a user, for online nearest-neighbour retrieval."""
    return _daily_embedding(
        "user_daily_embedding", USER_EMBEDDINGS, user, USER_ID, "User-tower embedding (unit norm).", source
    )


def video_daily_embedding(source: FileSource) -> FeatureView:
    """The video-tower embedding of a video (fresh uploads included), matching the ANN index."""
    return _daily_embedding(
        "video_daily_embedding",
        VIDEO_EMBEDDINGS,
        video,
        VIDEO_ID,
        "Video-tower embedding: unit direction + bias coordinate (norm <= 4).",
        source,
    )


user_daily_engagement_fv = user_daily_engagement(user_features_source)
video_daily_performance_fv = video_daily_performance(video_features_source)
creator_daily_audience_fv = creator_daily_audience(creator_features_source)
video_static_content_fv = video_static_content(video_content_source)
user_daily_candidates_fv = user_daily_candidates(candidates_source)
user_daily_embedding_fv = user_daily_embedding(user_embeddings_source)
video_daily_embedding_fv = video_daily_embedding(video_embeddings_source)

# Which Delta table feeds which view: feature_repo.registry rebuilds the views for other settings.
VIEW_BUILDERS: dict[Table, Callable[[FileSource], FeatureView]] = {
    USER_FEATURES: user_daily_engagement,
    VIDEO_FEATURES: video_daily_performance,
    CREATOR_FEATURES: creator_daily_audience,
    VIDEO_CONTENT: video_static_content,
    CANDIDATES: user_daily_candidates,
    USER_EMBEDDINGS: user_daily_embedding,
    VIDEO_EMBEDDINGS: video_daily_embedding,
}
