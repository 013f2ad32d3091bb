"""Who and what exists in the synthetic world: presets, random streams, users, creators and videos.

Users have Dirichlet topic tastes (tilted by age bucket) and a power-law activity; creators have a
home topic, a skill and a power-law output; videos have a main topic (sometimes a second one), a
latent quality, a power-law popularity, a caption and hashtags from their topics, and a
``frame_embedding`` that is a fixed random projection of their topic mixture (plus a little quality
and noise). Every day brings new users, new creators and fresh uploads.

Users, creators and videos up to any day are a pure function of (seed, preset, anchor, day): every
(seed, preset, stream, day) has its own random generator (:func:`rng_for`), so days never share draws
and growing the world further never changes what already exists.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import numpy as np

from reelrec.catalog import AGE_BUCKETS, DURATION_MS, FRAME_EMBEDDING_DIM
from reelrec.dates import day_bounds
from synthetic_world.topics import N_TOPICS, TOPICS, texts

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "MX", "CA", "ES", "IT", "AU", "KR", "NL", "SE", "PL")
_COUNTRY_P = np.array([22, 8, 7, 6, 9, 10, 6, 5, 4, 4, 4, 3, 3, 3, 3, 3], dtype=np.float64)
_AGE_P = np.array([0.12, 0.35, 0.28, 0.15, 0.10])  # per AGE_BUCKETS


@dataclass(frozen=True)
class Preset:
    """Size of a synthetic world (counts at the anchor date, plus daily growth)."""

    name: str
    users: int  # users signed up before the first generated day
    creators: int  # creators joined before the first generated day
    videos: int  # initial catalog, uploaded over the 60 days before the first day
    uploads_per_day: float  # mean fresh uploads per day (Poisson)
    signups_per_day: float  # mean new users per day (Poisson)
    new_creators_per_day: float  # mean new creators per day (Poisson); they upload from the next day
    impressions_per_active_user: float  # mean feed impressions of a user active on a day
    corrupt_rate: float  # injected bad event lines per good event line
    event_files: int  # JSONL parts per events drop


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiny", 60, 12, 120, 10, 1.0, 0.3, 28, 0.01, 2),
        Preset("small", 3_000, 300, 4_000, 200, 30, 2, 22, 0.001, 2),
        Preset("medium", 30_000, 2_000, 40_000, 2_000, 300, 10, 26, 0.0005, 4),
    )
}


# ------------------------------------------------------------------------------------------ randomness
# One random stream per purpose; the numbers are part of the world's definition (same seed => same world).
STREAM_CONSTANTS = 0  # topic projection, quality direction, age tastes
STREAM_INITIAL = 1  # the population before the anchor
STREAM_GROWTH = 2  # signups, new creators and uploads of each day
STREAM_EVENTS = 3  # feeds and reactions of each day
STREAM_CORRUPT = 4  # injected bad event lines of each day
STREAM_DUPS = 5  # duplicated event lines of each day


def rng_for(seed: int, preset: Preset, stream: int, day: int = 0) -> np.random.Generator:
    """An independent generator per (seed, preset, stream, day): days never share random draws.

    Args:
        seed: the world's seed.
        preset: the world's size; its name is part of the seed.
        stream: one of the ``STREAM_*`` constants.
        day: day index after the anchor (0 = the anchor date).
    """
    return np.random.default_rng([seed, zlib.crc32(preset.name.encode()), stream, day + 1_000_000])


def day_start_ms(date: dt.date) -> int:
    """Epoch milliseconds of 00:00 UTC on ``date``."""
    return int(day_bounds(date.isoformat())[0].timestamp() * 1000)


def _pareto(rng: np.random.Generator, alpha: float, n: int) -> np.ndarray:
    """Power-law draws >= 1 with tail index ``alpha``."""
    return (1.0 - rng.random(n)) ** (-1.0 / alpha)


def _uniform_ms(rng: np.random.Generator, lo: int, hi: int, n: int) -> np.ndarray:
    """Sorted uniform instants in [lo, hi) as epoch milliseconds."""
    return np.sort(rng.integers(lo, hi, n, dtype=np.int64))


# ------------------------------------------------------------------------------------------ the world
@dataclass
class _Constants:
    projection: np.ndarray  # (T, FRAME_EMBEDDING_DIM) topic -> frame embedding
    quality_direction: np.ndarray  # (FRAME_EMBEDDING_DIM,) how quality shows in frames
    age_taste: np.ndarray  # (len(AGE_BUCKETS), T) Dirichlet concentration per age bucket


Columns = dict[str, np.ndarray]


def _concat(a: Columns, b: Columns) -> Columns:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


class World:
    """Users, creators and videos of one world, grown day by day from the anchor.

    Entities are columns of numpy arrays (``users``, ``creators``, ``videos``), in time order: the
    row index of an entity is its id number.
    """

    def __init__(self, preset: Preset, seed: int, anchor: dt.date) -> None:
        self.preset, self.seed, self.anchor = preset, seed, anchor
        rng = rng_for(seed, preset, STREAM_CONSTANTS)
        projection = rng.normal(0.0, 1.0, (N_TOPICS, FRAME_EMBEDDING_DIM))
        quality_direction = rng.normal(0.0, 1.0, FRAME_EMBEDDING_DIM)
        age_taste = rng.gamma(0.6, 1.0, (len(AGE_BUCKETS), N_TOPICS))
        age_taste = 0.3 * age_taste / age_taste.mean(axis=1, keepdims=True) + 0.05
        self.constants = _Constants(
            projection, quality_direction / np.linalg.norm(quality_direction), age_taste
        )

        t0 = day_start_ms(anchor)
        rng = rng_for(seed, preset, STREAM_INITIAL)
        self.creators = self._new_creators(rng, preset.creators, t0 - 730 * DAY_MS, t0 - 61 * DAY_MS)
        self.users = self._new_users(rng, preset.users, t0 - 730 * DAY_MS, t0 - HOUR_MS)
        self.videos = self._new_videos(rng, preset.videos, t0 - 60 * DAY_MS, t0, np.arange(preset.creators))
        self.days = 0  # days grown: day indexes 0 .. days-1 after the anchor

    # -- entities --------------------------------------------------------------------------------
    def _new_users(self, rng: np.random.Generator, n: int, lo: int, hi: int) -> Columns:
        age = rng.choice(len(AGE_BUCKETS), n, p=_AGE_P)
        taste = rng.gamma(self.constants.age_taste[age])  # Dirichlet draws, one row per user
        taste = (taste + 1e-12) / (taste + 1e-12).sum(axis=1, keepdims=True)
        return {
            "signup_ms": _uniform_ms(rng, lo, hi, n),
            "country": rng.choice(len(COUNTRIES), n, p=_COUNTRY_P / _COUNTRY_P.sum()),
            "age": age,
            "activity": _pareto(rng, 1.5, n),
            "taste": taste.astype(np.float32),
        }

    def _new_creators(self, rng: np.random.Generator, n: int, lo: int, hi: int) -> Columns:
        return {
            "joined_ms": _uniform_ms(rng, lo, hi, n),
            "country": rng.choice(len(COUNTRIES), n, p=_COUNTRY_P / _COUNTRY_P.sum()),
            "home_topic": rng.integers(0, N_TOPICS, n),
            "activity": _pareto(rng, 1.3, n),  # output and reach
            "skill": rng.normal(0.0, 0.5, n),
        }

    def _new_videos(
        self, rng: np.random.Generator, n: int, lo: int, hi: int, eligible_creators: np.ndarray
    ) -> Columns:
        weight = self.creators["activity"][eligible_creators]
        creator = eligible_creators[
            np.minimum(np.searchsorted(np.cumsum(weight) / weight.sum(), rng.random(n)), len(weight) - 1)
        ]
        topic = np.where(
            rng.random(n) < 0.8, self.creators["home_topic"][creator], rng.integers(0, N_TOPICS, n)
        )
        second = np.where(rng.random(n) < 0.3, (topic + rng.integers(1, N_TOPICS, n)) % N_TOPICS, -1)
        second_weight = np.where(second >= 0, rng.uniform(0.2, 0.45, n), 0.0)
        quality = rng.normal(0.0, 1.0, n) + self.creators["skill"][creator]
        median_s = np.array([t.median_duration_s for t in TOPICS])[topic]
        duration = np.clip(np.round(median_s * 1000 * np.exp(rng.normal(0.0, 0.6, n))), 3_000, 180_000)

        mix = np.zeros((n, N_TOPICS))
        mix[np.arange(n), topic] = 1.0 - second_weight
        has_second = second >= 0
        mix[np.arange(n)[has_second], second[has_second]] = second_weight[has_second]
        embedding = (
            mix @ self.constants.projection
            + 0.4 * quality[:, None] * self.constants.quality_direction
            + rng.normal(0.0, 0.5, (n, FRAME_EMBEDDING_DIM))
        )
        captions, hashtags = texts(rng, topic, second)
        return {
            "creator": creator,
            "upload_ms": _uniform_ms(rng, lo, hi, n),
            DURATION_MS: duration.astype(np.int64),
            "topic": topic,
            "second_topic": second,
            "second_weight": second_weight,
            "quality": quality,
            "popularity": np.exp(rng.normal(0.0, 2.5, n)) * np.sqrt(self.creators["activity"][creator]),
            "caption": captions,
            "hashtags": hashtags,
            "embedding": embedding.astype(np.float32),
        }

    # -- growth ----------------------------------------------------------------------------------
    def grow_through(self, day: int) -> None:
        """Add the signups, new creators and uploads of every day up to ``day`` (0 = anchor)."""
        while self.days <= day:
            k = self.days
            start = day_start_ms(self.anchor) + k * DAY_MS
            rng = rng_for(self.seed, self.preset, STREAM_GROWTH, k)
            eligible = np.flatnonzero(self.creators["joined_ms"] < start)
            self.videos = _concat(
                self.videos,
                self._new_videos(
                    rng, rng.poisson(self.preset.uploads_per_day), start, start + DAY_MS, eligible
                ),
            )
            self.creators = _concat(
                self.creators,
                self._new_creators(rng, rng.poisson(self.preset.new_creators_per_day), start, start + DAY_MS),
            )
            self.users = _concat(
                self.users,
                self._new_users(rng, rng.poisson(self.preset.signups_per_day), start, start + DAY_MS),
            )
            self.days += 1

    def counts_until(self, end_ms: int) -> tuple[int, int, int]:
        """(users, creators, videos) that exist before ``end_ms``; ids are in time order."""
        return (
            int(np.searchsorted(self.users["signup_ms"], end_ms)),
            int(np.searchsorted(self.creators["joined_ms"], end_ms)),
            int(np.searchsorted(self.videos["upload_ms"], end_ms)),
        )
