"""One day of the synthetic app: who scrolls, what their feeds show, and how they react.

An active user's feed mixes popular, taste-matched and fresh videos; the chance to watch falls with
the feed position; watch time follows taste match, quality and duration (rewatches up to 3x the
duration); likes, shares and follows are much rarer than views. :func:`simulate_day` returns the
day's good events in time order and the follow edges they create.

Every step draws from the day's one events generator in a fixed order: that order is part of the
world's definition (reordering draws changes every generated file).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelrec.catalog import DURATION_MS, EVENT_TYPES, FOLLOW, IMPRESSION, LIKE, SHARE, SKIP, SURFACES, VIEW
from synthetic_world.topics import N_TOPICS
from synthetic_world.world import DAY_MS, STREAM_EVENTS, World, day_start_ms, rng_for

# Event type codes: positions in EVENT_TYPES.
_IMPRESSION, _VIEW, _LIKE, _SHARE, _FOLLOW, _SKIP = (
    EVENT_TYPES.index(t) for t in (IMPRESSION, VIEW, LIKE, SHARE, FOLLOW, SKIP)
)
_SURFACE_P = np.array([0.6, 0.3, 0.1])  # per SURFACES
# Feed sources: popular videos, taste-matched videos, fresh uploads (last ~48 h).
_SOURCE_P = np.array([0.50, 0.38, 0.12])
_POPULAR, _TASTE, _FRESH = range(3)


@dataclass
class DayEvents:
    """The good events of one day (sorted by time) and the follow edges they create.

    Entities are row indexes into the world's columns; times are epoch milliseconds.
    """

    event_type: np.ndarray  # int8 code into EVENT_TYPES
    user: np.ndarray
    video: np.ndarray
    ts_ms: np.ndarray
    watch_ms: np.ndarray  # -1 where the event type carries no watch time
    surface: np.ndarray  # code into SURFACES
    position: np.ndarray
    active_users: int
    follow_user: np.ndarray
    follow_creator: np.ndarray
    follow_ms: np.ndarray


@dataclass(frozen=True)
class _Sessions:
    """The day's impressions grouped into sessions: contiguous runs of one user's impressions."""

    index: np.ndarray  # (n,) session of each impression
    first: np.ndarray  # (S,) first impression row of each session
    user: np.ndarray  # (S,) user of each session
    position: np.ndarray  # (n,) int32 slot of each impression in its session's feed
    surface: np.ndarray  # (n,) surface code of each impression
    provisional_start: np.ndarray  # (S,) ms after midnight, ascending per user (before de-overlapping)


@dataclass(frozen=True)
class _Reactions:
    """What each impression's user did with the video shown."""

    viewed: np.ndarray  # (n,) bool: a view (else a skip)
    watch: np.ndarray  # (n,) int64 watch time in ms
    liked: np.ndarray  # (n,) bool
    shared: np.ndarray  # (n,) bool
    followed: np.ndarray  # (n,) bool: tapped follow (before removing existing and repeated edges)
    creator: np.ndarray  # (n,) creator of the video shown


def edge_key(user: np.ndarray, creator: np.ndarray) -> np.ndarray:
    """One int64 per (user, creator) follow edge."""
    return user.astype(np.int64) * (1 << 32) + creator


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _boundaries(sorted_keys: np.ndarray) -> np.ndarray:
    """True where a row starts a new run of equal keys."""
    first = np.ones(len(sorted_keys), dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return first


def _group_starts(group: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's group, for rows sorted by ``group``."""
    first = _boundaries(group)
    return np.maximum.accumulate(np.where(first, np.arange(len(group)), 0))


def simulate_day(world: World, day: int, prior_follows: np.ndarray) -> DayEvents:
    """Feeds, watches and engagement of every active user on day ``day`` after the anchor.

    Args:
        world: the world, grown through ``day`` at least.
        day: day index after the anchor (0 = the anchor date).
        prior_follows: :func:`edge_key` of every follow edge created before this day.

    Returns:
        The day's good events in time order and the new follow edges (each created once).
    """
    rng = rng_for(world.seed, world.preset, STREAM_EVENTS, day)
    start = day_start_ms(world.anchor) + day * DAY_MS
    n_users, _, _ = world.counts_until(start + DAY_MS)
    user, signup_offset = _impressions(world, rng, start, n_users)
    sessions = _sessions(rng, user, signup_offset)
    video = _feed_videos(world, rng, start, n_users, user, sessions)
    reactions = _reactions(world, rng, user, video, sessions.position)
    impression_ms, view_ms = _timeline(rng, reactions.watch, sessions)
    keep = view_ms + 1_500 < DAY_MS  # sessions running past midnight end there
    followed = _new_follows(user, reactions, keep, view_ms, prior_follows)
    return _events(rng, start, user, video, sessions, reactions, followed, impression_ms, view_ms, keep)


def _impressions(
    world: World, rng: np.random.Generator, start: int, n_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """Who is active today, and how many impressions they scroll through.

    Returns:
        ``(user, signup_offset)``: the user of each impression, grouped by user; and per user the ms
        after midnight of the signup (> 0 only for today's signups).
    """
    users = world.users
    activity = users["activity"][:n_users]
    relative = activity / activity.mean()
    signup_offset = np.clip(users["signup_ms"][:n_users] - start, 0, None)  # > 0 for today's signups
    awake = 1.0 - signup_offset / DAY_MS
    active = np.flatnonzero(rng.random(n_users) < (1.0 - np.exp(-1.5 * relative)) * awake)
    load = np.minimum(relative[active], 15.0) * awake[active]
    load /= max(load.mean(), 1e-9)
    n_imp = 1 + rng.poisson((world.preset.impressions_per_active_user - 1.0) * load)
    return np.repeat(active, n_imp), signup_offset


def _sessions(rng: np.random.Generator, user: np.ndarray, signup_offset: np.ndarray) -> _Sessions:
    """Sessions of mean length 10, each on one surface, with provisional start times."""
    n = len(user)
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
    return _Sessions(session, session_first, session_user, position, surface, provisional)


def _feed_videos(
    world: World, rng: np.random.Generator, start: int, n_users: int, user: np.ndarray, sessions: _Sessions
) -> np.ndarray:
    """The video of each impression: a popular, a taste-matched or a fresh one."""
    videos = world.videos
    n = len(user)
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

    taste_rows = np.flatnonzero(source == _TASTE)
    video[taste_rows] = _taste_matched(world, rng, n_users, n_old, weight, user[taste_rows])

    fresh_rows = np.flatnonzero(source == _FRESH)
    first_recent = int(np.searchsorted(videos["upload_ms"], start - DAY_MS))
    shown_at = start + sessions.provisional_start[sessions.index[fresh_rows]]
    eligible = np.searchsorted(videos["upload_ms"], shown_at) - first_recent
    fresh = first_recent + (rng.random(len(fresh_rows)) * eligible).astype(np.int64)
    video[fresh_rows[eligible > 0]] = fresh[eligible > 0]
    return video


def _taste_matched(
    world: World, rng: np.random.Generator, n_users: int, n_old: int, weight: np.ndarray, u_t: np.ndarray
) -> np.ndarray:
    """For users ``u_t``: a topic drawn from each one's taste, then a video of that topic by ``weight``."""
    videos = world.videos
    taste = world.users["taste"][:n_users].astype(np.float64)
    flat_taste = (
        np.cumsum(taste, axis=1) / taste.sum(axis=1, keepdims=True) + np.arange(n_users)[:, None]
    ).ravel()
    topic = np.searchsorted(flat_taste, u_t + rng.random(len(u_t)) * 0.999999) - u_t * N_TOPICS
    topic = np.clip(topic, 0, N_TOPICS - 1)
    by_topic = np.argsort(videos["topic"][:n_old], kind="stable")
    sorted_topic = videos["topic"][:n_old][by_topic]
    sorted_weight = weight[by_topic]
    topic_total = np.bincount(sorted_topic, weights=sorted_weight, minlength=N_TOPICS)
    within = np.cumsum(sorted_weight) - np.r_[0.0, np.cumsum(topic_total)][sorted_topic]
    flat_videos = sorted_topic + within / np.maximum(topic_total[sorted_topic], 1e-12)
    pick = np.searchsorted(flat_videos, topic + rng.random(len(u_t)) * 0.999999)
    return by_topic[np.minimum(pick, n_old - 1)]


def _reactions(
    world: World, rng: np.random.Generator, user: np.ndarray, video: np.ndarray, position: np.ndarray
) -> _Reactions:
    """Watching and engagement: taste match, quality, duration and feed position."""
    users, videos = world.users, world.videos
    n = len(user)
    t1, t2, w2 = videos["topic"][video], videos["second_topic"][video], videos["second_weight"][video]
    user_taste = users["taste"][user]
    match = (1.0 - w2) * user_taste[np.arange(n), t1] + w2 * user_taste[np.arange(n), np.maximum(t2, 0)]
    affinity = match / user_taste.max(axis=1)
    quality = videos["quality"][video]
    duration = videos[DURATION_MS][video]
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
    return _Reactions(viewed, watch, liked, shared, followed, creator)


def _timeline(
    rng: np.random.Generator, watch: np.ndarray, sessions: _Sessions
) -> tuple[np.ndarray, np.ndarray]:
    """Impression and view/skip instants (ms after midnight) of each impression.

    An impression, then the view/skip when the watch ends, engagement, then a scroll gap; a user's
    sessions are shifted so they never overlap.
    """
    n = len(watch)
    session, session_first, session_user = sessions.index, sessions.first, sessions.user
    latency = rng.integers(1, 300, n)
    step = watch + latency + 1_500 + np.minimum(rng.exponential(2_000, n), 30_000).astype(np.int64)
    elapsed = np.cumsum(step) - step
    elapsed -= elapsed[session_first][session]  # ms since the session started
    session_length = (
        np.bincount(session, weights=step, minlength=len(session_first)).astype(np.int64) + 60_000
    )
    before = np.cumsum(session_length) - session_length
    before -= before[_group_starts(session_user)]  # ms of the user's earlier sessions
    offset = np.int64(1) << 40  # keeps the running max inside each user's group
    group = np.cumsum(_boundaries(session_user))
    provisional = sessions.provisional_start
    session_start = before + np.maximum.accumulate(provisional - before + group * offset) - group * offset
    impression_ms = session_start[session] + elapsed
    view_ms = impression_ms + watch + latency
    return impression_ms, view_ms


def _new_follows(
    user: np.ndarray, reactions: _Reactions, keep: np.ndarray, view_ms: np.ndarray, prior_follows: np.ndarray
) -> np.ndarray:
    """Follow taps that create an edge: once, not if it exists already, not twice today."""
    key = edge_key(user, reactions.creator)
    candidate = reactions.followed & keep & ~np.isin(key, prior_follows)
    follow_rows = np.flatnonzero(candidate)
    follow_rows = follow_rows[np.argsort(view_ms[follow_rows], kind="stable")]
    follow_rows = follow_rows[np.unique(key[follow_rows], return_index=True)[1]]
    followed = np.zeros(len(user), dtype=bool)
    followed[follow_rows] = True
    return followed


def _events(
    rng: np.random.Generator,
    start: int,
    user: np.ndarray,
    video: np.ndarray,
    sessions: _Sessions,
    reactions: _Reactions,
    followed: np.ndarray,
    impression_ms: np.ndarray,
    view_ms: np.ndarray,
    keep: np.ndarray,
) -> DayEvents:
    """The kept impressions' events (impression, view/skip, like, share, follow) in time order."""
    watch = reactions.watch
    rows = np.flatnonzero(keep)
    parts = [
        (rows, impression_ms[rows], _IMPRESSION, False),
        (rows, view_ms[rows], np.where(reactions.viewed[rows], _VIEW, _SKIP), True),
    ]
    for flag, code, lo_ms, hi_ms in (
        (reactions.liked, _LIKE, 50, 450),
        (reactions.shared, _SHARE, 500, 950),
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
    return DayEvents(
        event_type=codes[order],
        user=user[idx],
        video=video[idx],
        ts_ms=ts[order],
        watch_ms=watch_col[order],
        surface=sessions.surface[idx],
        position=sessions.position[idx],
        active_users=len(np.unique(user[rows])),
        follow_user=user[follow_event_rows],
        follow_creator=reactions.creator[follow_event_rows],
        follow_ms=follow_event_ms + start,
    )
