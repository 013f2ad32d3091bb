"""The synthetic short-video world: demo data and test data for reelrec.

:func:`generate` writes the landing zone for a range of logical dates exactly as the data contract
(``docs/data-contract.md``) describes it, as an upstream app would deliver it, and keeps the hidden
truth of the world (topics, latent quality, user tastes, injected corruption) under
``REELREC_HOME/truth``, which nothing in the pipeline reads.

The world:

* 16 topics, each with its own caption words and hashtags. A video has a main topic (and sometimes a
  second one) and a latent quality; its caption and hashtags are drawn mostly from its topics'
  vocabularies, its ``frame_embedding`` is a fixed random projection of its topic mixture (plus a
  little quality and noise), so text and frames carry signal a model can learn.
* Users have Dirichlet topic tastes (tilted by age bucket) and a power-law activity; creators have a
  home topic, a skill and a power-law output; videos have a power-law popularity that fades with age.
* Every day brings new users, new creators and fresh uploads. An active user's feed mixes popular,
  taste-matched and fresh videos; the chance to watch falls with the feed position; watch time
  follows taste match, quality and duration (rewatches up to 3x the duration); likes, shares and
  follows are much rarer than views.
* The events drop of each day gets a few injected bad lines (one count per kind in
  :data:`CORRUPTION_KINDS`) and about 0.5 % exact duplicate lines; the counts are in the returned
  summary and in ``truth/days/dt=D.json``, so tests can check quarantine and dedup counts exactly.

Determinism and continuity: the first call creates a *world* anchored at its ``start`` date
(``truth/world.json``). Users, creators and videos up to any day are a pure function of
(seed, preset, anchor, day); the events of a day also depend on the follow edges of earlier days
(an edge is created once). Later calls with the same seed and preset continue the same world, so a
nightly DAG may generate one date at a time; regenerating a date replaces its landing folders and
gives byte-identical files. Another seed or preset, or a start before the anchor, starts a new
world (``truth/`` is rewritten; landing folders of other dates are left as they are).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import shutil
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelrec.catalog import (
    CREATORS,
    DT,
    EVENT_TYPES,
    FOLLOWS,
    FRAME_EMBEDDING_DIM,
    SURFACES,
    TS,
    USERS,
    VIDEOS,
)
from reelrec.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
WORLD_VERSION = 1
DUPLICATE_RATE = 0.005
GZIP_LEVEL = 3  # fast deflate: half the time of -6 on JSON lines, about 20 % larger
FEEDS = ("events", "videos", "users", "creators", "follows")
SUCCESS = "_SUCCESS"

# Kinds of injected bad event lines; every one of them breaks the landing contract.
CORRUPTION_KINDS = (
    "malformed_json",  # not a JSON object (truncated line or garbage)
    "missing_user_id",  # user_id absent or null
    "unknown_event_type",  # event_type outside EVENT_TYPES
    "negative_watch_ms",  # a view/skip with watch_ms < 0
    "unparsable_event_ts",  # event_ts that is not an ISO-8601 instant
    "event_ts_other_day",  # valid event_ts, but on the day before or after the drop's date
)

# Event type codes: positions in EVENT_TYPES.
_IMPRESSION, _VIEW, _LIKE, _SHARE, _FOLLOW, _SKIP = (
    EVENT_TYPES.index(t) for t in ("impression", "view", "like", "share", "follow", "skip")
)

COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "MX", "CA", "ES", "IT", "AU", "KR", "NL", "SE", "PL")
_COUNTRY_P = np.array([22, 8, 7, 6, 9, 10, 6, 5, 4, 4, 4, 3, 3, 3, 3, 3], dtype=np.float64)
AGE_BUCKETS = ("13-17", "18-24", "25-34", "35-44", "45+")
_AGE_P = np.array([0.12, 0.35, 0.28, 0.15, 0.10])
_SURFACE_P = np.array([0.6, 0.3, 0.1])
# Feed sources: popular videos, taste-matched videos, fresh uploads (last ~48 h).
_SOURCE_P = np.array([0.50, 0.38, 0.12])


@dataclass(frozen=True)
class Topic:
    """A content topic: its caption vocabulary, hashtags and typical video length."""

    name: str
    words: tuple[str, ...]
    hashtags: tuple[str, ...]
    median_duration_s: float


def _topic(name: str, words: str, hashtags: str, median_duration_s: float) -> Topic:
    return Topic(name, tuple(words.split()), tuple(f"#{h}" for h in hashtags.split()), median_duration_s)


TOPICS: tuple[Topic, ...] = (
    _topic(
        "cooking",
        "recipe pasta garlic oven bake kitchen sauce chef dinner spicy noodles dessert butter "
        "homemade grill dough flavor tasty meal ramen",
        "recipe foodtok cooking homemade easyrecipe chef dinner baking",
        35,
    ),
    _topic(
        "fitness",
        "workout gym squat cardio reps muscle protein abs stretch deadlift sweat training "
        "core lift plank routine gains mobility hiit pushups",
        "fitness gymtok workout gains legday fitcheck training hiit",
        30,
    ),
    _topic(
        "gaming",
        "gameplay boss level controller speedrun console loot clutch stream noob respawn "
        "ranked headshot lobby quest pixel glitch arcade combo victory",
        "gaming gamer twitch speedrun esports gameplay ps5 nintendo",
        25,
    ),
    _topic(
        "music",
        "guitar song melody beat piano vocals chorus album cover remix drums bass lyrics "
        "acoustic concert studio tune rhythm singer harmony",
        "music newmusic cover singer guitar piano producer livemusic",
        22,
    ),
    _topic(
        "dance",
        "choreo dance moves challenge steps groove tutorial popping spin hiphop ballet "
        "trend footwork duet freestyle twirl salsa rehearsal tempo stage",
        "dance dancechallenge choreography dancer hiphop ballet trend duet",
        15,
    ),
    _topic(
        "comedy",
        "prank joke skit funny laugh roast parody sketch awkward meme punchline hilarious "
        "standup blooper sarcasm impression silly comedian giggle pov",
        "comedy funny skit prank meme lol standup parody",
        18,
    ),
    _topic(
        "pets",
        "puppy kitten dog cat paws fluffy bark meow vet leash treats zoomies adopt rescue "
        "whiskers purr fetch hamster parrot cuddle",
        "pets dogsoftiktok catsoftiktok puppy kitten rescue cute petlover",
        14,
    ),
    _topic(
        "travel",
        "beach flight hotel island passport sunset mountains hike backpack roadtrip tokyo "
        "paris cruise resort airport itinerary hostel village waterfall explore",
        "travel wanderlust traveltok vacation roadtrip explore beach backpacking",
        28,
    ),
    _topic(
        "fashion",
        "outfit thrift denim sneakers jacket haul streetwear vintage dress closet style "
        "accessories boots runway tailoring linen capsule lookbook hoodie tote",
        "fashion ootd outfit thrift streetwear style haul vintage",
        20,
    ),
    _topic(
        "beauty",
        "makeup skincare lipstick foundation serum eyeliner blush contour glow primer "
        "moisturizer mascara nails brows concealer palette sunscreen toner lashes highlighter",
        "beauty makeup skincare grwm nails glowup makeuptutorial selfcare",
        32,
    ),
    _topic(
        "tech",
        "smartphone laptop unboxing gadget battery review chip camera keyboard setup coding "
        "software update specs benchmark charger headphones monitor app robot",
        "tech gadgets unboxing techtok coding setup review iphone",
        40,
    ),
    _topic(
        "sports",
        "goal dunk match highlights referee stadium striker buzzer penalty tennis football "
        "basketball sprint coach rookie championship dribble serve knockout league",
        "sports football nba soccer highlights goal tennis athlete",
        20,
    ),
    _topic(
        "diy",
        "woodworking paint drill crafts glue upcycle shelf restore sanding hack build tools "
        "project resin sewing knit decor garden planter pallet",
        "diy crafts woodworking homedecor upcycling lifehack maker handmade",
        45,
    ),
    _topic(
        "science",
        "experiment physics chemistry space planet telescope atoms lab molecule biology "
        "rocket gravity fossil microscope quantum reaction galaxy climate volcano eclipse",
        "science sciencetok space physics chemistry nasa experiment stem",
        38,
    ),
    _topic(
        "cars",
        "engine horsepower drift turbo exhaust supercar garage detailing wheels mechanic "
        "racetrack torque restoration electric sedan convertible burnout dyno gearbox carshow",
        "cars cartok supercar jdm carsoftiktok drift mechanic racing",
        26,
    ),
    _topic(
        "nature",
        "forest wildlife ocean birds river storm flowers whale camping sunrise desert bees "
        "jungle glacier meadow fox deer coral canyon aurora",
        "nature wildlife outdoors earth naturelover birds ocean hiking",
        24,
    ),
)
_GENERIC_TEXT = (
    "the this my you and wow so best new day today watch wait for it just finally look "
    "time love how what real part one more never again like that when your with try"
)
GENERIC_WORDS = tuple(_GENERIC_TEXT.split())  # filler words shared by every topic
GENERIC_HASHTAGS = ("#fyp", "#foryou", "#viral", "#trending", "#foryoupage", "#daily")
N_TOPICS = len(TOPICS)
_WORDS_PER_TOPIC = 20
_HASHTAGS_PER_TOPIC = 8
assert all(len(t.words) == _WORDS_PER_TOPIC and len(t.hashtags) == _HASHTAGS_PER_TOPIC for t in TOPICS)


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
_STREAM_CONSTANTS, _STREAM_INITIAL, _STREAM_GROWTH, _STREAM_EVENTS, _STREAM_CORRUPT, _STREAM_DUPS = range(6)


def _rng(seed: int, preset: Preset, stream: int, day: int = 0) -> np.random.Generator:
    """An independent generator per (seed, preset, stream, day): days never share random draws."""
    return np.random.default_rng([seed, zlib.crc32(preset.name.encode()), stream, day + 1_000_000])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


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


class _World:
    """Users, creators and videos of one world, grown day by day from the anchor."""

    def __init__(self, preset: Preset, seed: int, anchor: dt.date) -> None:
        self.preset, self.seed, self.anchor = preset, seed, anchor
        rng = _rng(seed, preset, _STREAM_CONSTANTS)
        projection = rng.normal(0.0, 1.0, (N_TOPICS, FRAME_EMBEDDING_DIM))
        quality_direction = rng.normal(0.0, 1.0, FRAME_EMBEDDING_DIM)
        age_taste = rng.gamma(0.6, 1.0, (len(AGE_BUCKETS), N_TOPICS))
        age_taste = 0.3 * age_taste / age_taste.mean(axis=1, keepdims=True) + 0.05
        self.constants = _Constants(
            projection, quality_direction / np.linalg.norm(quality_direction), age_taste
        )

        t0 = day_start_ms(anchor)
        rng = _rng(seed, preset, _STREAM_INITIAL)
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
        captions, hashtags = _texts(rng, topic, second)
        return {
            "creator": creator,
            "upload_ms": _uniform_ms(rng, lo, hi, n),
            "duration_ms": duration.astype(np.int64),
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
            rng = _rng(self.seed, self.preset, _STREAM_GROWTH, k)
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


def _texts(rng: np.random.Generator, topic: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Captions (6-14 words) and 1-4 distinct hashtags, mostly from the videos' topics."""
    n = len(topic)
    vocab = np.array([w for t in TOPICS for w in t.words] + list(GENERIC_WORDS), dtype=object)
    tags = np.array([h for t in TOPICS for h in t.hashtags] + list(GENERIC_HASHTAGS), dtype=object)
    other = np.where(second >= 0, second, topic)[:, None]

    u = rng.random((n, 14))
    word_topic = np.where(u < 0.55, topic[:, None], other)
    topical = word_topic * _WORDS_PER_TOPIC + rng.integers(0, _WORDS_PER_TOPIC, (n, 14))
    generic = N_TOPICS * _WORDS_PER_TOPIC + rng.integers(0, len(GENERIC_WORDS), (n, 14))
    words = vocab[np.where(u < 0.72, topical, generic)]
    n_words = rng.integers(6, 15, n)

    v = rng.random((n, 4))
    tag_topic = np.where(v < 0.6, topic[:, None], other)
    topical_tags = tag_topic * _HASHTAGS_PER_TOPIC + rng.integers(0, _HASHTAGS_PER_TOPIC, (n, 4))
    generic_tags = N_TOPICS * _HASHTAGS_PER_TOPIC + rng.integers(0, len(GENERIC_HASHTAGS), (n, 4))
    picked = tags[np.where(v < 0.8, topical_tags, generic_tags)]
    n_tags = rng.integers(1, 5, n)

    captions = np.empty(n, dtype=object)
    hashtags = np.empty(n, dtype=object)
    for i in range(n):  # one short string per video, not per event
        captions[i] = " ".join(words[i, : n_words[i]])
        hashtags[i] = list(dict.fromkeys(picked[i, : n_tags[i]]))
    return captions, hashtags


# ------------------------------------------------------------------------------------------ one day
@dataclass
class _Day:
    """The good events of one day (sorted by time) and the follow edges they create."""

    event_type: np.ndarray  # int8 code into EVENT_TYPES
    user: np.ndarray
    video: np.ndarray
    ts_ms: np.ndarray
    watch_ms: np.ndarray  # -1 where the event type carries no watch time
    surface: np.ndarray
    position: np.ndarray
    active_users: int
    follow_user: np.ndarray
    follow_creator: np.ndarray
    follow_ms: np.ndarray


def _edge_key(user: np.ndarray, creator: np.ndarray) -> np.ndarray:
    """One int64 per (user, creator) follow edge."""
    return user.astype(np.int64) * (1 << 32) + creator


def _boundaries(sorted_keys: np.ndarray) -> np.ndarray:
    """True where a row starts a new run of equal keys."""
    first = np.ones(len(sorted_keys), dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return first


def _group_starts(group: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's group, for rows sorted by ``group``."""
    first = _boundaries(group)
    return np.maximum.accumulate(np.where(first, np.arange(len(group)), 0))


def _simulate_day(world: _World, day: int, prior_follows: np.ndarray) -> _Day:
    """Feeds, watches and engagement of every active user on day ``day`` after the anchor."""
    preset = world.preset
    rng = _rng(world.seed, preset, _STREAM_EVENTS, day)
    start = day_start_ms(world.anchor) + day * DAY_MS
    n_users, n_creators, n_videos = world.counts_until(start + DAY_MS)
    users, videos = world.users, world.videos

    # Who is active today, and how many impressions they scroll through.
    activity = users["activity"][:n_users]
    relative = activity / activity.mean()
    signup_offset = np.clip(users["signup_ms"][:n_users] - start, 0, None)  # > 0 for today's signups
    awake = 1.0 - signup_offset / DAY_MS
    active = np.flatnonzero(rng.random(n_users) < (1.0 - np.exp(-1.5 * relative)) * awake)
    load = np.minimum(relative[active], 15.0) * awake[active]
    load /= max(load.mean(), 1e-9)
    n_imp = 1 + rng.poisson((preset.impressions_per_active_user - 1.0) * load)
    user = np.repeat(active, n_imp)
    n = len(user)

    # Sessions: contiguous runs of one user's impressions (mean length 10).
    new_session = _boundaries(user) | (rng.random(n) < 0.1)
    session = np.cumsum(new_session) - 1
    session_first = np.flatnonzero(new_session)
    session_user = user[session_first]
    n_sessions = len(session_first)
    position = (np.arange(n) - session_first[session]).astype(np.int32)
    surface = rng.choice(len(SURFACES), n_sessions, p=_SURFACE_P)[session]
    # Provisional session starts, ascending per user (shifted later so a user's sessions never overlap).
    lo = signup_offset[session_user] + 1_000
    provisional = lo + (rng.random(n_sessions) * (DAY_MS - lo)).astype(np.int64)
    provisional = provisional[np.lexsort((provisional, session_user))]

    # Candidates: popular, taste-matched or fresh videos.
    n_old = int(np.searchsorted(videos["upload_ms"], start))  # uploaded before today
    age_days = (start - videos["upload_ms"][:n_old]) / DAY_MS
    weight = (
        videos["popularity"][:n_old]
        * np.exp(0.8 * videos["quality"][:n_old])
        * (0.2 + np.exp(-age_days / 10.0))
    )
    weight = np.minimum(weight, np.quantile(weight, 0.995))  # no single video swallows the feeds
    source = rng.choice(3, n, p=_SOURCE_P)
    video = np.minimum(np.searchsorted(np.cumsum(weight) / weight.sum(), rng.random(n)), n_old - 1)

    taste_rows = np.flatnonzero(source == 1)
    taste = users["taste"][:n_users].astype(np.float64)
    flat_taste = (
        np.cumsum(taste, axis=1) / taste.sum(axis=1, keepdims=True) + np.arange(n_users)[:, None]
    ).ravel()
    u_t = user[taste_rows]
    topic = np.searchsorted(flat_taste, u_t + rng.random(len(taste_rows)) * 0.999999) - u_t * N_TOPICS
    topic = np.clip(topic, 0, N_TOPICS - 1)
    by_topic = np.argsort(videos["topic"][:n_old], kind="stable")
    sorted_topic = videos["topic"][:n_old][by_topic]
    sorted_weight = weight[by_topic]
    topic_total = np.bincount(sorted_topic, weights=sorted_weight, minlength=N_TOPICS)
    within = np.cumsum(sorted_weight) - np.r_[0.0, np.cumsum(topic_total)][sorted_topic]
    flat_videos = sorted_topic + within / np.maximum(topic_total[sorted_topic], 1e-12)
    pick = np.searchsorted(flat_videos, topic + rng.random(len(taste_rows)) * 0.999999)
    video[taste_rows] = by_topic[np.minimum(pick, n_old - 1)]

    fresh_rows = np.flatnonzero(source == 2)
    first_recent = int(np.searchsorted(videos["upload_ms"], start - DAY_MS))
    eligible = np.searchsorted(videos["upload_ms"], start + provisional[session[fresh_rows]]) - first_recent
    fresh = first_recent + (rng.random(len(fresh_rows)) * eligible).astype(np.int64)
    video[fresh_rows[eligible > 0]] = fresh[eligible > 0]

    # Watching: taste match, quality, duration and feed position.
    t1, t2, w2 = videos["topic"][video], videos["second_topic"][video], videos["second_weight"][video]
    user_taste = users["taste"][user]
    match = (1.0 - w2) * user_taste[np.arange(n), t1] + w2 * user_taste[np.arange(n), np.maximum(t2, 0)]
    affinity = match / user_taste.max(axis=1)
    quality = videos["quality"][video]
    duration = videos["duration_ms"][video]
    length = np.log(duration / 20_000.0)
    viewed = rng.random(n) < _sigmoid(
        -0.6 + 2.6 * affinity + 0.6 * quality - 0.35 * np.log1p(position) - 0.35 * length
    )
    fraction = _sigmoid(-0.2 + 2.2 * affinity + 0.7 * quality - 0.6 * length + rng.normal(0.0, 1.0, n))
    rewatch = rng.random(n) < _sigmoid(-4.0 + 2.5 * affinity + 0.6 * quality - 0.6 * length)
    fraction = np.where(rewatch, 1.0 + 2.0 * rng.random(n) ** 2, fraction)
    watch = np.where(
        viewed,
        np.clip(np.round(fraction * duration), 1_000, 3 * duration),
        rng.integers(0, 1_000, n),
    ).astype(np.int64)
    watched = np.minimum(watch / duration, 1.0)
    liked = viewed & (rng.random(n) < _sigmoid(-6.2 + 2.5 * watched + 1.2 * affinity + 0.7 * quality))
    shared = viewed & (rng.random(n) < _sigmoid(-8.2 + 2.0 * watched + 1.0 * affinity + 0.9 * quality))
    creator = videos["creator"][video]
    follow_logit = -9.0 + 1.5 * watched + 1.5 * affinity + 0.5 * quality
    followed = viewed & (
        rng.random(n) < _sigmoid(follow_logit + 0.3 * np.log(world.creators["activity"][creator]))
    )

    # Time: impression, then view/skip when the watch ends, engagement, then a scroll gap.
    latency = rng.integers(1, 300, n)
    step = watch + latency + 1_500 + np.minimum(rng.exponential(2_000, n), 30_000).astype(np.int64)
    elapsed = np.cumsum(step) - step
    elapsed -= elapsed[session_first][session]  # ms since the session started
    session_length = np.bincount(session, weights=step, minlength=n_sessions).astype(np.int64) + 60_000
    before = np.cumsum(session_length) - session_length
    before -= before[_group_starts(session_user)]  # ms of the user's earlier sessions
    offset = np.int64(1) << 40  # keeps the running max inside each user's group
    group = np.cumsum(_boundaries(session_user))
    session_start = before + np.maximum.accumulate(provisional - before + group * offset) - group * offset
    impression_ms = session_start[session] + elapsed
    view_ms = impression_ms + watch + latency
    keep = view_ms + 1_500 < DAY_MS  # sessions running past midnight end there

    # A follow creates an edge once: not if it exists already, not twice today.
    key = _edge_key(user, creator)
    followed &= keep & ~np.isin(key, prior_follows)
    follow_rows = np.flatnonzero(followed)
    follow_rows = follow_rows[np.argsort(view_ms[follow_rows], kind="stable")]
    follow_rows = follow_rows[np.unique(key[follow_rows], return_index=True)[1]]
    followed[:] = False
    followed[follow_rows] = True

    rows = np.flatnonzero(keep)
    parts = [
        (rows, impression_ms[rows], _IMPRESSION, False),
        (rows, view_ms[rows], np.where(viewed[rows], _VIEW, _SKIP), True),
    ]
    for flag, code, lo_ms, hi_ms in (
        (liked, _LIKE, 50, 450),
        (shared, _SHARE, 500, 950),
        (followed, _FOLLOW, 1_000, 1_450),
    ):
        r = np.flatnonzero(flag & keep)
        parts.append((r, view_ms[r] + rng.integers(lo_ms, hi_ms, len(r)), code, False))
    follow_event_rows, follow_event_ms = parts[-1][0], parts[-1][1]
    idx = np.concatenate([p[0] for p in parts])
    ts = np.concatenate([p[1] for p in parts]) + start
    codes = np.concatenate([np.broadcast_to(np.asarray(p[2], dtype=np.int8), len(p[0])) for p in parts])
    watch_col = np.concatenate([watch[p[0]] if p[3] else np.full(len(p[0]), -1, np.int64) for p in parts])
    order = np.argsort(ts, kind="stable")
    idx = idx[order]
    return _Day(
        event_type=codes[order],
        user=user[idx],
        video=video[idx],
        ts_ms=ts[order],
        watch_ms=watch_col[order],
        surface=surface[idx],
        position=position[idx],
        active_users=len(np.unique(user[rows])),
        follow_user=user[follow_event_rows],
        follow_creator=creator[follow_event_rows],
        follow_ms=follow_event_ms + start,
    )


# ------------------------------------------------------------------------------------------ writing
def day_start_ms(date: dt.date) -> int:
    """Epoch milliseconds of 00:00 UTC on ``date``."""
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC).timestamp() * 1000)


def _ids(prefix: str, width: int, n: int) -> pa.Array:
    return pc.binary_join_element_wise(
        prefix, pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), width, "0"), ""
    )


def _ts(ms: np.ndarray) -> pa.Array:
    return pa.array(ms * 1000, TS)


def _iso(ms: np.ndarray) -> pa.Array:
    """ISO-8601 UTC strings with milliseconds (``2026-11-01T13:45:12.123Z``) from epoch ms.

    Built as a fixed-width byte matrix: an order of magnitude faster than Arrow's strftime.
    """
    ms = np.asarray(ms, dtype=np.int64)
    n = len(ms)
    days, ms_of_day = np.divmod(ms, DAY_MS)
    unique_days, day_of_row = np.unique(days, return_inverse=True)
    dates = "".join(np.datetime_as_string(unique_days.astype("datetime64[D]"))).encode()
    text = np.empty((n, 24), dtype=np.uint8)
    text[:, :10] = np.frombuffer(dates, dtype=np.uint8).reshape(-1, 10)[day_of_row]
    hours, rest = np.divmod(ms_of_day, HOUR_MS)
    minutes, rest = np.divmod(rest, 60_000)
    seconds, millis = np.divmod(rest, 1_000)
    for col, value, width in ((11, hours, 2), (14, minutes, 2), (17, seconds, 2), (20, millis, 3)):
        for i in range(width):
            text[:, col + i] = value // 10 ** (width - 1 - i) % 10 + ord("0")
    for col, char in ((10, "T"), (13, ":"), (16, ":"), (19, "."), (23, "Z")):
        text[:, col] = ord(char)
    offsets = np.arange(0, 24 * (n + 1), 24, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def _event_lines(day: _Day, date: dt.date, user_ids: pa.Array, video_ids: pa.Array) -> pa.Array:
    """One JSON object per good event, each ending in a newline (built column-wise by Arrow)."""
    n = len(day.ts_ms)
    event_ids = pc.binary_join_element_wise(
        f"e{date:%Y%m%d}-", pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), 8, "0"), ""
    )
    has_watch = pa.array(day.watch_ms >= 0)
    watch = pc.if_else(
        has_watch,
        pc.binary_join_element_wise(
            ',"watch_ms":', pc.cast(pa.array(np.maximum(day.watch_ms, 0)), pa.string()), ""
        ),
        "",
    )
    return pc.binary_join_element_wise(
        '{"event_id":"',
        event_ids,
        '","event_type":"',
        pc.take(pa.array(EVENT_TYPES), pa.array(day.event_type)),
        '","user_id":"',
        pc.take(user_ids, pa.array(day.user)),
        '","video_id":"',
        pc.take(video_ids, pa.array(day.video)),
        '","event_ts":"',
        _iso(day.ts_ms),
        '"',
        watch,
        ',"surface":"',
        pc.take(pa.array(SURFACES), pa.array(day.surface)),
        '","position":',
        pc.cast(pa.array(day.position), pa.string()),
        "}\n",
        "",
    )


def _event_dict(day: _Day, i: int, event_id: str, user_ids: pa.Array, video_ids: pa.Array) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": event_id,
        "event_type": EVENT_TYPES[day.event_type[i]],
        "user_id": user_ids[int(day.user[i])].as_py(),
        "video_id": video_ids[int(day.video[i])].as_py(),
        "event_ts": _iso(day.ts_ms[i : i + 1])[0].as_py(),
    }
    if day.watch_ms[i] >= 0:
        record["watch_ms"] = int(day.watch_ms[i])
    record["surface"] = SURFACES[day.surface[i]]
    record["position"] = int(day.position[i])
    return record


def _bad_lines(
    rng: np.random.Generator, day: _Day, date: dt.date, n_bad: int, user_ids: pa.Array, video_ids: pa.Array
) -> tuple[list[str], dict[str, int]]:
    """``n_bad`` contract-breaking lines, spread evenly over CORRUPTION_KINDS.

    Each has a fresh event id (numbered after the day's good events), so dedup never hides one.
    """
    kinds = rng.permutation(np.arange(n_bad) % len(CORRUPTION_KINDS))
    n = len(day.ts_ms)
    with_watch = np.flatnonzero(day.watch_ms >= 0)
    lines: list[str] = []
    counts = dict.fromkeys(CORRUPTION_KINDS, 0)
    for j, k in enumerate(kinds):
        kind = CORRUPTION_KINDS[k]
        counts[kind] += 1
        template = int(rng.choice(with_watch)) if kind == "negative_watch_ms" else int(rng.integers(0, n))
        record = _event_dict(day, template, f"e{date:%Y%m%d}-{n + j:08d}", user_ids, video_ids)
        if kind == "malformed_json":
            text = json.dumps(record, separators=(",", ":"))
            if rng.random() < 0.7:
                lines.append(text[: int(rng.integers(5, len(text) - 2))])  # truncated write
            else:
                lines.append("<html><body>502 Bad Gateway</body></html>")
            continue
        if kind == "missing_user_id":
            if rng.random() < 0.5:
                del record["user_id"]
            else:
                record["user_id"] = None
        elif kind == "unknown_event_type":
            record["event_type"] = str(rng.choice(["comment", "pause", "unknown", "duet"]))
        elif kind == "negative_watch_ms":
            record["watch_ms"] = -int(rng.integers(1, 5_000))
        elif kind == "unparsable_event_ts":
            record["event_ts"] = str(
                rng.choice(["not-a-timestamp", f"{date}T25:61:00.000Z", f"{date}T12:3x:00.000Z"])
            )
        elif kind == "event_ts_other_day":
            shift = DAY_MS if rng.random() < 0.5 else -DAY_MS
            record["event_ts"] = _iso(np.array([day.ts_ms[template] + shift]))[0].as_py()
        lines.append(json.dumps(record, separators=(",", ":")))
    return lines, counts


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def _replace_folder(settings: Settings, feed: str, date: dt.date, files: dict[str, bytes | pa.Table]) -> None:
    """Write a landing folder for one date atomically; ``_SUCCESS`` is the last file written."""
    root = settings.landing / feed
    final = root / f"dt={date}"
    tmp = root / f"_tmp-dt={date}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, content in files.items():
        if isinstance(content, pa.Table):
            _write_parquet(content, tmp / name)
        else:
            (tmp / name).write_bytes(content)
    (tmp / SUCCESS).write_bytes(b"")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def _without_dt(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f for f in schema if f.name != DT])


def _snapshots(world: _World, end_ms: int, ids: dict[str, pa.Array]) -> dict[str, pa.Table]:
    n_users, n_creators, n_videos = world.counts_until(end_ms)
    u, c, v = world.users, world.creators, world.videos
    embedding = pa.FixedSizeListArray.from_arrays(
        pa.array(v["embedding"][:n_videos].ravel()), FRAME_EMBEDDING_DIM
    )
    return {
        "videos": pa.Table.from_arrays(
            [
                ids["video"].slice(0, n_videos),
                pc.take(ids["creator"], pa.array(v["creator"][:n_videos])),
                _ts(v["upload_ms"][:n_videos]),
                pa.array(v["duration_ms"][:n_videos]),
                pa.array(v["caption"][:n_videos], pa.string()),
                pa.array(list(v["hashtags"][:n_videos]), pa.list_(pa.string())),
                embedding.cast(pa.list_(pa.float32())),
            ],
            schema=_without_dt(VIDEOS.schema),
        ),
        "users": pa.Table.from_arrays(
            [
                ids["user"].slice(0, n_users),
                _ts(u["signup_ms"][:n_users]),
                pc.take(pa.array(COUNTRIES), pa.array(u["country"][:n_users])),
                pc.take(pa.array(AGE_BUCKETS), pa.array(u["age"][:n_users])),
            ],
            schema=_without_dt(USERS.schema),
        ),
        "creators": pa.Table.from_arrays(
            [
                ids["creator"].slice(0, n_creators),
                _ts(c["joined_ms"][:n_creators]),
                pc.take(pa.array(COUNTRIES), pa.array(c["country"][:n_creators])),
            ],
            schema=_without_dt(CREATORS.schema),
        ),
    }


def _entity_ids(world: _World) -> dict[str, pa.Array]:
    return {
        "user": _ids("u", 6, len(world.users["signup_ms"])),
        "creator": _ids("c", 5, len(world.creators["joined_ms"])),
        "video": _ids("v", 7, len(world.videos["upload_ms"])),
    }


def _gzip_parts(lines: pa.Array, parts: int) -> dict[str, bytes]:
    """Split newline-terminated lines into ``parts`` gzip files (mtime 0: byte-identical reruns)."""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    data = memoryview(lines.buffers()[2])  # the lines back to back: a string array's value buffer
    bounds = np.linspace(0, len(lines), parts + 1).round().astype(int)
    with ThreadPoolExecutor(max_workers=min(parts, 4)) as pool:  # zlib releases the GIL
        blobs = pool.map(
            lambda i: gzip.compress(data[offsets[bounds[i]] : offsets[bounds[i + 1]]], GZIP_LEVEL, mtime=0),
            range(parts),
        )
        return {f"part-{i:05d}.jsonl.gz": blob for i, blob in enumerate(blobs)}


# ------------------------------------------------------------------------------------------ truth
def _open_world(
    settings: Settings, preset: Preset, seed: int, start: dt.date
) -> tuple[_World, dict[str, Any], bool]:
    """Continue the world in ``truth/`` when it matches, else start a new one anchored at ``start``."""
    meta_path = settings.truth / "world.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        anchor = dt.date.fromisoformat(meta["anchor"])
        if (meta.get("version"), meta.get("preset"), meta.get("seed")) == (
            WORLD_VERSION,
            preset.name,
            seed,
        ) and anchor <= start:
            return _World(preset, seed, anchor), meta, False
        log.warning(
            "synthetic: truth in %s is world (preset=%s, seed=%s, anchor=%s); starting a new world at %s",
            settings.truth,
            meta.get("preset"),
            meta.get("seed"),
            meta.get("anchor"),
            start,
        )
    if settings.truth.exists():
        shutil.rmtree(settings.truth)
    meta = {"version": WORLD_VERSION, "preset": preset.name, "seed": seed, "anchor": str(start), "dates": []}
    return _World(preset, seed, start), meta, True


def _read_follows(settings: Settings) -> pa.Table | None:
    path = settings.truth / "follows.parquet"
    return pq.read_table(path) if path.exists() else None


def _write_truth(settings: Settings, world: _World, meta: dict[str, Any], follows: pa.Table) -> None:
    truth = settings.truth
    truth.mkdir(parents=True, exist_ok=True)
    last = dt.date.fromisoformat(max(meta["dates"]))
    world.grow_through((last - world.anchor).days)
    end = day_start_ms(last) + DAY_MS
    n_users, n_creators, n_videos = world.counts_until(end)
    ids = _entity_ids(world)
    u, c, v = world.users, world.creators, world.videos
    names = pa.array([t.name for t in TOPICS])
    _write_parquet(
        pa.table(
            {
                "video_id": ids["video"].slice(0, n_videos),
                "creator_id": pc.take(ids["creator"], pa.array(v["creator"][:n_videos])),
                "upload_ts": _ts(v["upload_ms"][:n_videos]),
                "topic": pc.take(names, pa.array(v["topic"][:n_videos])),
                "second_topic": pc.take(
                    names, pa.array(v["second_topic"][:n_videos], mask=v["second_topic"][:n_videos] < 0)
                ),
                "second_topic_weight": pa.array(v["second_weight"][:n_videos]),
                "quality": pa.array(v["quality"][:n_videos]),
                "popularity": pa.array(v["popularity"][:n_videos]),
            }
        ),
        truth / "videos.parquet",
    )
    taste = u["taste"][:n_users]
    _write_parquet(
        pa.table(
            {
                "user_id": ids["user"].slice(0, n_users),
                "signup_ts": _ts(u["signup_ms"][:n_users]),
                "activity": pa.array(u["activity"][:n_users]),
                "top_topic": pc.take(names, pa.array(np.argmax(taste, axis=1))),
                "taste": pa.FixedSizeListArray.from_arrays(pa.array(taste.ravel()), N_TOPICS).cast(
                    pa.list_(pa.float32())
                ),
            }
        ),
        truth / "users.parquet",
    )
    _write_parquet(
        pa.table(
            {
                "creator_id": ids["creator"].slice(0, n_creators),
                "joined_ts": _ts(c["joined_ms"][:n_creators]),
                "home_topic": pc.take(names, pa.array(c["home_topic"][:n_creators])),
                "activity": pa.array(c["activity"][:n_creators]),
                "skill": pa.array(c["skill"][:n_creators]),
            }
        ),
        truth / "creators.parquet",
    )
    _write_parquet(follows, truth / "follows.parquet")
    topics = [{"name": t.name, "words": list(t.words), "hashtags": list(t.hashtags)} for t in TOPICS]
    (truth / "topics.json").write_text(json.dumps(topics, indent=1) + "\n")
    (truth / "world.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


def truth_day(settings: Settings, date: str) -> dict[str, Any]:
    """The generator's record of one date: counts, injected bad rows per kind, duplicates.

    Raises:
        FileNotFoundError: naming the file when ``date`` was never generated under this home.
    """
    path = settings.truth / "days" / f"dt={date}.json"
    if not path.exists():
        raise FileNotFoundError(f"synthetic truth for date {date} not found: {path}")
    result: dict[str, Any] = json.loads(path.read_text())
    return result


# ------------------------------------------------------------------------------------------ entry point
_FOLLOW_TRUTH_SCHEMA = pa.schema(
    [("user_id", pa.string()), ("creator_id", pa.string()), ("followed_at", TS), ("dt", pa.string())]
)


def generate(
    settings: Settings,
    preset: str,
    start: str,
    days: int,
    seed: int = 7,
    corrupt_rate: float | None = None,
) -> dict[str, Any]:
    """Write the landing zone for dates ``start`` .. ``start + days - 1`` and the hidden truth.

    Each date D gets ``landing/{events,videos,users,creators,follows}/dt=D/`` (replaced whole, with
    ``_SUCCESS`` written last) and ``truth/days/dt=D.json``.

    Args:
        settings: where ``landing/`` and ``truth/`` live.
        preset: a key of :data:`PRESETS` (``tiny``, ``small``, ``medium``).
        start: first logical date, ``YYYY-MM-DD`` (UTC).
        days: number of consecutive dates, >= 1.
        seed: same seed (and preset) => byte-identical files.
        corrupt_rate: injected bad event lines per good event; ``None`` takes the preset's rate.

    Returns:
        ``{"preset", "seed", "anchor", "new_world", "dates": {D: {...}}, "totals": {...}}`` where each
        date holds ``events`` (good events), ``lines`` (written, with duplicates and bad lines),
        ``by_type``, ``duplicates``, ``bad_rows`` (per kind), ``bad_rows_total``, ``videos``,
        ``uploads``, ``users``, ``new_users``, ``active_users``, ``creators``, ``follows`` and ``seconds``.

    Raises:
        ValueError: naming the argument when the preset, date, days or corrupt_rate is invalid.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known presets: {sorted(PRESETS)}")
    try:
        first = dt.date.fromisoformat(start)
    except ValueError as err:
        raise ValueError(f"start date {start!r} is not YYYY-MM-DD") from err
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    spec = PRESETS[preset]
    rate = spec.corrupt_rate if corrupt_rate is None else corrupt_rate
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"corrupt_rate must be in [0, 1), got {rate}")

    world, meta, new_world = _open_world(settings, spec, seed, first)
    old_follows = None if new_world else _read_follows(settings)
    kept_follows = old_follows if old_follows is not None else _FOLLOW_TRUTH_SCHEMA.empty_table()
    dates = [first + dt.timedelta(days=i) for i in range(days)]
    world.grow_through((dates[-1] - world.anchor).days)
    ids = _entity_ids(world)
    creator_index = {cid: i for i, cid in enumerate(ids["creator"].to_pylist())}
    user_index = {uid: i for i, uid in enumerate(ids["user"].to_pylist())}
    (settings.truth / "days").mkdir(parents=True, exist_ok=True)

    summary: dict[str, Any] = {
        "preset": preset,
        "seed": seed,
        "anchor": str(world.anchor),
        "new_world": new_world,
    }
    per_date: dict[str, dict[str, Any]] = {}
    follow_tables = [kept_follows]
    for date in dates:
        began = time.perf_counter()
        day = (date - world.anchor).days
        start_ms = day_start_ms(date)
        prior = pa.concat_tables(follow_tables)
        prior = prior.filter(pc.less(prior["dt"], str(date)))
        prior_keys = _edge_key(
            np.array([user_index[u] for u in prior["user_id"].to_pylist()], dtype=np.int64),
            np.array([creator_index[c] for c in prior["creator_id"].to_pylist()], dtype=np.int64),
        )
        events = _simulate_day(world, day, prior_keys)

        lines = _event_lines(events, date, ids["user"], ids["video"])
        n_good = len(lines)
        corrupt_rng = _rng(seed, spec, _STREAM_CORRUPT, day)
        bad, bad_counts = _bad_lines(
            corrupt_rng, events, date, int(round(rate * n_good)), ids["user"], ids["video"]
        )
        dup_rng = _rng(seed, spec, _STREAM_DUPS, day)
        n_dup = int(round(DUPLICATE_RATE * n_good))
        dup_of = np.sort(dup_rng.choice(n_good, n_dup, replace=False)) if n_dup else np.zeros(0, np.int64)
        # Sort keys: good lines in time order; a duplicate lands somewhere after its original
        # (a client retry), a bad line anywhere.
        keys = np.concatenate(
            [
                np.arange(n_good, dtype=np.float64),
                dup_of + 0.5 + dup_rng.random(n_dup) * (n_good - dup_of - 0.5),
                corrupt_rng.random(len(bad)) * n_good,
            ]
        )
        all_lines = pa.concat_arrays(
            [
                lines,
                pc.take(lines, pa.array(dup_of, pa.int64())),
                pa.array([line + "\n" for line in bad], pa.string()),
            ]
        )
        ordered = pc.take(all_lines, pa.array(np.argsort(keys, kind="stable")))
        _replace_folder(settings, "events", date, _gzip_parts(ordered, spec.event_files))

        end_ms = start_ms + DAY_MS
        snapshots = _snapshots(world, end_ms, ids)
        for feed in ("videos", "users", "creators"):
            _replace_folder(settings, feed, date, {f"{feed}.parquet": snapshots[feed]})
        follows = pa.Table.from_arrays(
            [
                pc.take(ids["user"], pa.array(events.follow_user)),
                pc.take(ids["creator"], pa.array(events.follow_creator)),
                _ts(events.follow_ms),
            ],
            schema=_without_dt(FOLLOWS.schema),
        )
        _replace_folder(settings, "follows", date, {"follows.parquet": follows})
        follow_tables = [t.filter(pc.not_equal(t["dt"], str(date))) for t in follow_tables]
        follow_tables.append(
            follows.append_column("dt", pa.array([str(date)] * follows.num_rows, pa.string())).cast(
                _FOLLOW_TRUTH_SCHEMA
            )
        )

        n_users, n_creators, n_videos = world.counts_until(end_ms)
        prev_users, _, prev_videos = world.counts_until(start_ms)
        record = {
            "date": str(date),
            "events": n_good,
            "lines": len(ordered),
            "by_type": {t: int(np.sum(events.event_type == i)) for i, t in enumerate(EVENT_TYPES)},
            "duplicates": n_dup,
            "bad_rows": bad_counts,
            "bad_rows_total": sum(bad_counts.values()),
            "videos": n_videos,
            "uploads": n_videos - prev_videos,
            "users": n_users,
            "new_users": n_users - prev_users,
            "active_users": events.active_users,
            "creators": n_creators,
            "follows": follows.num_rows,
            "event_files": spec.event_files,
        }
        (settings.truth / "days" / f"dt={date}.json").write_text(json.dumps(record, indent=1) + "\n")
        per_date[str(date)] = {**record, "seconds": round(time.perf_counter() - began, 3)}
        log.info(
            "synthetic: %s %s: %d events, %d bad, %d duplicate lines",
            preset,
            date,
            n_good,
            record["bad_rows_total"],
            n_dup,
        )

    meta["dates"] = sorted(set(meta["dates"]) | set(per_date))
    all_follows = pa.concat_tables(follow_tables)
    all_follows = all_follows.take(
        pc.sort_indices(all_follows, [("dt", "ascending"), ("followed_at", "ascending")])
    )
    _write_truth(settings, world, meta, all_follows)

    summary["dates"] = per_date
    summary["totals"] = {
        key: sum(d[key] for d in per_date.values())
        for key in ("events", "lines", "duplicates", "bad_rows_total", "uploads", "new_users", "follows")
    } | {"seconds": round(sum(d["seconds"] for d in per_date.values()), 3)}
    return summary
