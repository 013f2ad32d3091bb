"""The table catalog: one schema per table, the single source of column names.

Every Delta table reelrec writes is declared here with its layer, Arrow schema, partitioning and
key. Jobs ``select`` into these schemas at their end (see :func:`reelrec.lake.write_partition`), so a
drifting column fails loudly at write time instead of surprising a consumer.

Time: every timestamp is UTC with microsecond precision. ``dt`` is the logical date
``YYYY-MM-DD`` (a string partition column). Feature rows carry ``event_timestamp``, the instant
the features are valid from (end of ``dt``), which Feast uses for point-in-time joins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from reelrec.settings import Settings

TS = pa.timestamp("us", tz="UTC")

# Column names shared across stages (the recsys vocabulary of the project).
EVENT_ID = "event_id"
EVENT_TYPE = "event_type"
EVENT_TS = "event_ts"
USER_ID = "user_id"
VIDEO_ID = "video_id"
CREATOR_ID = "creator_id"
WATCH_MS = "watch_ms"
SURFACE = "surface"
POSITION = "position"
DT = "dt"
EVENT_TIMESTAMP = "event_timestamp"
# catalog snapshot columns
UPLOAD_TS = "upload_ts"
DURATION_MS = "duration_ms"
CAPTION = "caption"
HASHTAGS = "hashtags"
FRAME_EMBEDDING = "frame_embedding"
TEXT_EMBEDDING = "text_embedding"
SIGNUP_TS = "signup_ts"
JOINED_TS = "joined_ts"
COUNTRY = "country"
AGE_BUCKET = "age_bucket"
FOLLOWED_AT = "followed_at"
# feature and model-output columns read by more than one stage
RECENT_VIDEO_IDS = "recent_video_ids"
TRENDING_SCORE = "trending_score"
AGE_HOURS = "age_hours"
FOLLOWERS_TOTAL = "followers_total"
VIDEO_IDS = "video_ids"
SCORES = "scores"
EMBEDDING = "embedding"
# quarantine columns: where a bad landed row came from and why it was refused
SOURCE = "source"
FILE = "file"
LINE = "line"
REASON = "reason"
RECORD = "record"

IMPRESSION, VIEW, LIKE, SHARE, FOLLOW, SKIP = "impression", "view", "like", "share", "follow", "skip"
EVENT_TYPES = (IMPRESSION, VIEW, LIKE, SHARE, FOLLOW, SKIP)
# Event types that carry a watch time (`watch_ms` is required on them, null on the others). Not to be
# confused with what counts as *watched* (a view), which `reelrec.history` defines.
TIMED_EVENT_TYPES = (VIEW, SKIP)
SURFACES = ("spotlight", "discover", "stories")
AGE_BUCKETS = ("13-17", "18-24", "25-34", "35-44", "45+")
# Feature windows in days, ending at D inclusive: every windowed feature is `<name>_<w>d` for these.
WINDOWS = (1, 7, 28)
FRAME_EMBEDDING_DIM = 32
# Longest caption bronze.videos keeps (the app's own limit): ingest cuts longer ones to it.
CAPTION_MAX_CHARS = 2200
TEXT_EMBEDDING_DIM = 384  # all-MiniLM-L6-v2 sentence embeddings
RECENT_HISTORY_LEN = 50
MODEL_VERSION = "model_version"
GENERATED_AT = "generated_at"
# gold.candidates row of the night's default list (recent popularity with fresh slots,
# models.default_list): served to users without a list of their own (reelrec.serving). Not a user id.
DEFAULT_LIST_KEY = "__default__"


@dataclass(frozen=True)
class Table:
    """A Delta table: where it lives, its schema and how it is partitioned."""

    name: str
    layer: str  # bronze | silver | gold | quarantine
    schema: pa.Schema
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = (DT,)
    description: str = ""

    @property
    def columns(self) -> list[str]:
        """Column names in schema order."""
        return list(self.schema.names)

    def path(self, settings: Settings) -> Path:
        """Folder of the Delta table under ``REELREC_HOME/lake``."""
        return settings.lake / self.layer / self.name

    def uri(self, settings: Settings) -> str:
        """String form of :meth:`path`, as delta-rs and DuckDB want it."""
        return str(self.path(settings))


# ---------------------------------------------------------------- bronze: landed, typed, deduplicated
EVENTS = Table(
    name="events",
    layer="bronze",
    key=(EVENT_ID,),
    description="One row per app event, deduplicated by event_id, partitioned by the UTC date of event_ts.",
    schema=pa.schema(
        [
            pa.field(EVENT_ID, pa.string(), nullable=False),
            pa.field(EVENT_TYPE, pa.string(), nullable=False),
            pa.field(USER_ID, pa.string(), nullable=False),
            pa.field(VIDEO_ID, pa.string(), nullable=False),
            pa.field(EVENT_TS, TS, nullable=False),
            pa.field(WATCH_MS, pa.int64()),
            pa.field(SURFACE, pa.string(), nullable=False),
            pa.field(POSITION, pa.int32(), nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

VIDEOS = Table(
    name="videos",
    layer="bronze",
    key=(VIDEO_ID, DT),
    description="Daily snapshot of the video catalog as of the end of dt.",
    schema=pa.schema(
        [
            pa.field(VIDEO_ID, pa.string(), nullable=False),
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            pa.field(UPLOAD_TS, TS, nullable=False),
            pa.field(DURATION_MS, pa.int64(), nullable=False),
            pa.field(CAPTION, pa.string()),
            pa.field(HASHTAGS, pa.list_(pa.string())),
            pa.field(FRAME_EMBEDDING, pa.list_(pa.float32())),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

USERS = Table(
    name="users",
    layer="bronze",
    key=(USER_ID, DT),
    description="Daily snapshot of the user catalog as of the end of dt.",
    schema=pa.schema(
        [
            pa.field(USER_ID, pa.string(), nullable=False),
            pa.field(SIGNUP_TS, TS, nullable=False),
            pa.field(COUNTRY, pa.string()),
            pa.field(AGE_BUCKET, pa.string()),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

CREATORS = Table(
    name="creators",
    layer="bronze",
    key=(CREATOR_ID, DT),
    description="Daily snapshot of the creator catalog as of the end of dt.",
    schema=pa.schema(
        [
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            pa.field(JOINED_TS, TS, nullable=False),
            pa.field(COUNTRY, pa.string()),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

FOLLOWS = Table(
    name="follows",
    layer="bronze",
    key=(USER_ID, CREATOR_ID),
    description="Follow edges created on dt (one row per new edge).",
    schema=pa.schema(
        [
            pa.field(USER_ID, pa.string(), nullable=False),
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            pa.field(FOLLOWED_AT, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

QUARANTINE = Table(
    name="quarantine",
    layer="bronze",
    key=(SOURCE, RECORD),
    partition_by=(DT, SOURCE),
    description="Landed rows that broke the data contract, with the reason, file and line.",
    schema=pa.schema(
        [
            pa.field(SOURCE, pa.string(), nullable=False),  # landing feed: events, videos, ...
            pa.field(FILE, pa.string(), nullable=False),
            pa.field(LINE, pa.int64()),  # 1-based line (JSONL) or row (parquet)
            pa.field(REASON, pa.string(), nullable=False),
            pa.field(RECORD, pa.string(), nullable=False),  # the raw row as JSON text
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)


# ---------------------------------------------------------------- silver: features as of the end of dt
def windowed_names(prefix: str, windows: tuple[int, ...] = WINDOWS) -> tuple[str, ...]:
    """Names of a windowed feature: ``windowed_names("views") == ("views_1d", "views_7d", "views_28d")``."""
    return tuple(f"{prefix}_{w}d" for w in windows)


def _windowed(prefix: str, dtype: pa.DataType, windows: tuple[int, ...] = WINDOWS) -> list[pa.Field]:
    return [pa.field(name, dtype) for name in windowed_names(prefix, windows)]


USER_FEATURES = Table(
    name="user_features",
    layer="silver",
    key=(USER_ID, DT),
    description="Per-user activity as of the end of dt (windows end at dt inclusive).",
    schema=pa.schema(
        [
            pa.field(USER_ID, pa.string(), nullable=False),
            *_windowed("impressions", pa.int64()),
            *_windowed("views", pa.int64()),
            *_windowed("watch_ms", pa.int64()),
            pa.field("completion_rate_7d", pa.float64()),
            pa.field("completion_rate_28d", pa.float64()),
            pa.field("like_rate_28d", pa.float64()),
            pa.field("active_days_28d", pa.int64()),
            pa.field(RECENT_VIDEO_IDS, pa.list_(pa.string())),  # newest first, at most 50
            pa.field(EVENT_TIMESTAMP, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

VIDEO_FEATURES = Table(
    name="video_features",
    layer="silver",
    key=(VIDEO_ID, DT),
    description="Per-video performance as of the end of dt; every catalog video has a row.",
    schema=pa.schema(
        [
            pa.field(VIDEO_ID, pa.string(), nullable=False),
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            *_windowed("impressions", pa.int64()),
            *_windowed("views", pa.int64()),
            pa.field("completion_rate_7d", pa.float64()),
            pa.field("like_rate_7d", pa.float64()),
            pa.field("share_rate_7d", pa.float64()),
            pa.field("avg_watch_fraction_1d", pa.float64()),
            pa.field("avg_watch_fraction_7d", pa.float64()),
            pa.field(AGE_HOURS, pa.float64()),
            pa.field(TRENDING_SCORE, pa.float64()),
            pa.field(EVENT_TIMESTAMP, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

CREATOR_FEATURES = Table(
    name="creator_features",
    layer="silver",
    key=(CREATOR_ID, DT),
    description="Per-creator audience and output as of the end of dt.",
    schema=pa.schema(
        [
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            pa.field(FOLLOWERS_TOTAL, pa.int64()),
            pa.field("new_followers_7d", pa.int64()),
            pa.field("uploads_7d", pa.int64()),
            pa.field("uploads_28d", pa.int64()),
            pa.field("views_7d", pa.int64()),
            pa.field("engagement_rate_7d", pa.float64()),
            pa.field(EVENT_TIMESTAMP, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

VIDEO_CONTENT = Table(
    name="video_content",
    layer="silver",
    key=(VIDEO_ID,),
    description="Content embeddings of every video, written once, on the night dt it is first seen. "
    "event_timestamp is the upload time: the content is known from the moment of upload.",
    schema=pa.schema(
        [
            pa.field(VIDEO_ID, pa.string(), nullable=False),
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            pa.field(TEXT_EMBEDDING, pa.list_(pa.float32()), nullable=False),  # unit norm, 384-d
            pa.field(FRAME_EMBEDDING, pa.list_(pa.float32())),  # upstream, 32-d, may be missing
            pa.field("text_encoder", pa.string(), nullable=False),  # model that made text_embedding
            pa.field(EVENT_TIMESTAMP, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

# ---------------------------------------------------------------- gold: model outputs of the night dt
CANDIDATES = Table(
    name="candidates",
    layer="gold",
    key=(USER_ID, DT),
    description="Top-N retrieval candidates per active user, best first, unwatched videos only.",
    schema=pa.schema(
        [
            pa.field(USER_ID, pa.string(), nullable=False),
            pa.field(VIDEO_IDS, pa.list_(pa.string()), nullable=False),
            pa.field(SCORES, pa.list_(pa.float32()), nullable=False),
            pa.field(MODEL_VERSION, pa.string(), nullable=False),
            pa.field(GENERATED_AT, TS, nullable=False),
            pa.field(EVENT_TIMESTAMP, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)


def _embedding_table(name: str, key: str, description: str) -> Table:
    """A gold table of one model-output embedding per ``key`` and night."""
    return Table(
        name=name,
        layer="gold",
        key=(key, DT),
        description=description,
        schema=pa.schema(
            [
                pa.field(key, pa.string(), nullable=False),
                pa.field(EMBEDDING, pa.list_(pa.float32()), nullable=False),
                pa.field(MODEL_VERSION, pa.string(), nullable=False),
                pa.field(GENERATED_AT, TS, nullable=False),
                pa.field(EVENT_TIMESTAMP, TS, nullable=False),
                pa.field(DT, pa.string(), nullable=False),
            ]
        ),
    )


USER_EMBEDDINGS = _embedding_table(
    "user_embeddings", USER_ID, "User-tower embedding of every active user (unit norm)."
)
VIDEO_EMBEDDINGS = _embedding_table(
    "video_embeddings",
    VIDEO_ID,
    "Video-tower embedding of every eligible video (unit direction + bounded bias coordinate), "
    "fresh uploads included.",
)

# Why each video of a published list is there: kept in the lake (not published online), read by
# `reelrec recommend --explain` and the nightly report. ``sources[i]`` describes ``video_ids[i]``:
# "<source>#<rank>" for every candidate source that proposed it (1-based rank), space-separated.
CANDIDATE_SOURCES = Table(
    name="candidate_sources",
    layer="gold",
    key=(USER_ID, DT),
    description="Provenance of every published list: which sources proposed each video, at which rank.",
    schema=pa.schema(
        [
            pa.field(USER_ID, pa.string(), nullable=False),
            pa.field(VIDEO_IDS, pa.list_(pa.string()), nullable=False),
            pa.field("sources", pa.list_(pa.string()), nullable=False),
            pa.field(MODEL_VERSION, pa.string(), nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

BRONZE_TABLES = (EVENTS, VIDEOS, USERS, CREATORS, FOLLOWS, QUARANTINE)
SILVER_TABLES = (USER_FEATURES, VIDEO_FEATURES, CREATOR_FEATURES, VIDEO_CONTENT)
GOLD_TABLES = (CANDIDATES, USER_EMBEDDINGS, VIDEO_EMBEDDINGS)
ALL_TABLES = BRONZE_TABLES + SILVER_TABLES + GOLD_TABLES + (CANDIDATE_SOURCES,)
TABLES = {t.name: t for t in ALL_TABLES}


def table(name: str) -> Table:
    """Look a table up by name, naming the known tables when it is not there."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known tables: {sorted(TABLES)}") from None
