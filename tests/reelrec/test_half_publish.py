"""A night killed half-way through publishing never serves a user a mixed answer.

Night D1 (model version A) is online; night D2 (version B) is being published when its process is
killed (SIGKILL, ``REELREC_FAULTS="online_write.batch@batch=1:kill"``) after two batches of users.
Meanwhile, and after the kill, a reader asks for every user's list *and embedding*
(``Recommender(..., embeddings=True)``): each answer must carry one ``model_version``, and the list
and embedding must be exactly the gold rows of that version. Redis is left half-published (some
users on B, the rest on A: each batch is one ``MULTI``/``EXEC``); SQLite is left on A (the whole
publish is one transaction, rolled back). Rerunning the publish brings every user to B.

The negative control publishes the candidates view alone: the reader refuses the mixed answer.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from feature_repo.materialize import materialize
from feature_repo.registry import apply
from reelrec import catalog, lake
from reelrec.catalog import DEFAULT_LIST_KEY
from reelrec.dates import feature_timestamp
from reelrec.serving import Recommender
from reelrec.settings import Settings
from tests.reelrec.test_serving import STORES, online_store

pytestmark = pytest.mark.feast

D1, D2 = "2026-11-01", "2026-11-02"
USERS = [f"u{i:06d}" for i in range(40)]
VIDEOS = [f"v{i:07d}" for i in range(30)]
BATCH = 8  # users per publish batch: 5 batches, killed after the second
VERSION = {D1: "two_tower_v1-2026-11-01-aaaaaaaa", D2: "two_tower_v1-2026-11-02-bbbbbbbb"}


def _gold(date: str) -> dict[str, tuple[list[str], list[float]]]:
    """Each user's (list, embedding) of night ``date``: different on each night."""
    rng = np.random.default_rng(int(date[-2:]))
    return {
        user: (
            [VIDEOS[j] for j in rng.permutation(len(VIDEOS))[:5]],
            rng.standard_normal(4).astype(np.float32).tolist(),
        )
        for user in USERS
    }


def write_gold(settings: Settings, date: str) -> None:
    gold = _gold(date)
    stamp = {
        catalog.MODEL_VERSION: VERSION[date],
        catalog.GENERATED_AT: datetime.fromisoformat(f"{date}T03:00:00+00:00"),
        catalog.EVENT_TIMESTAMP: feature_timestamp(date),
        catalog.DT: date,
    }

    def rows(columns: dict[str, Any]) -> pa.Table:
        n = len(next(iter(columns.values())))
        return pa.table({**columns, **{name: [value] * n for name, value in stamp.items()}})

    users = [*USERS, DEFAULT_LIST_KEY]
    lists = [gold[u][0] for u in USERS] + [VIDEOS[:5]]
    scores = pa.array([[1.0, 0.8, 0.6, 0.4, 0.2]] * len(users), pa.list_(pa.float32()))
    lake.write_partition(
        catalog.CANDIDATES,
        settings,
        rows({catalog.USER_ID: users, catalog.VIDEO_IDS: lists, catalog.SCORES: scores}),
        date,
    )
    embeddings = pa.array([gold[u][1] for u in USERS], pa.list_(pa.float32()))
    lake.write_partition(
        catalog.USER_EMBEDDINGS, settings, rows({catalog.USER_ID: USERS, catalog.EMBEDDING: embeddings}), date
    )
    videos = pa.array([[0.5] * 4] * len(VIDEOS), pa.list_(pa.float32()))
    lake.write_partition(
        catalog.VIDEO_EMBEDDINGS, settings, rows({catalog.VIDEO_ID: VIDEOS, catalog.EMBEDDING: videos}), date
    )


def _publish_and_die(settings: Settings) -> None:
    """In a spawned process: publish D2 with a kill after the second batch of users."""
    os.environ["REELREC_HOME"] = str(settings.home)
    os.environ["REELREC_FAULTS"] = "online_write.batch@batch=1:kill"
    os.environ["REELREC_PUBLISH_BATCH_ROWS"] = str(BATCH)
    materialize(D2, settings, group="outputs")


def _check(answers: list[dict[str, Any]]) -> dict[str, str]:
    """Each answer is one version's gold list and embedding; returns the version per user."""
    golds = {VERSION[d]: _gold(d) for d in (D1, D2)}
    seen = {}
    for answer in answers:
        assert answer["found"], answer
        version = answer["model_version"]
        videos, embedding = golds[version][answer["user_id"]]
        assert [item["video_id"] for item in answer["items"]] == videos, answer
        assert answer["embedding"] == pytest.approx(embedding), answer
        seen[answer["user_id"]] = version
    return seen


@pytest.mark.parametrize("store", STORES)
def test_a_half_published_night_serves_each_user_one_version(store: str, tmp_path: Path) -> None:
    with online_store(tmp_path / "home", store) as settings:
        for date in (D1, D2):
            write_gold(settings, date)
        apply(settings)
        materialize(D1, settings, group="outputs")
        reader = Recommender(settings, embeddings=True)
        assert set(_check(reader(USERS)).values()) == {VERSION[D1]}

        reads: list[dict[str, str]] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def keep_reading() -> None:
            own = Recommender(settings, embeddings=True)
            while not stop.is_set():
                try:
                    reads.append(_check(own(USERS)))
                except BaseException as err:  # noqa: BLE001 - reported by the test thread
                    errors.append(err)
                    return

        publisher = multiprocessing.get_context("spawn").Process(target=_publish_and_die, args=(settings,))
        publisher.start()  # spawned before the reader thread starts: nothing forked mid-read
        thread = threading.Thread(target=keep_reading)
        thread.start()
        publisher.join(timeout=300)
        stop.set()
        thread.join(timeout=60)
        assert publisher.exitcode == -9, "the publisher was to be killed by SIGKILL"
        assert not errors, errors[0]
        assert reads, "the reader read nothing while the night was published"

        after = _check(reader(USERS))
        versions = sorted(after.values())
        if store == "sqlite":  # one transaction: rolled back, every user still on night D1
            assert set(versions) == {VERSION[D1]}
        else:  # whole batches committed, the rest not: half-published, each user whole
            # Batches 0 and 1 were confirmed before the kill; batch 2 had been sent (its replies are
            # read once the next batch is sent) and Redis ran its MULTI/EXEC, or not, as a whole.
            # Batch 0 holds the default list's key too (it sorts first), so one user fewer.
            assert versions.count(VERSION[D2]) in (2 * BATCH - 1, 3 * BATCH - 1)
            assert 0 < versions.count(VERSION[D1]) < len(USERS)

        materialize(D2, settings, group="outputs")  # the rerun of the publish
        assert set(_check(reader(USERS)).values()) == {VERSION[D2]}


def test_a_mixed_answer_is_refused_not_served(tmp_path: Path) -> None:
    with online_store(tmp_path / "home", "sqlite") as settings:
        for date in (D1, D2):
            write_gold(settings, date)
        apply(settings)
        materialize(D1, settings, group="outputs")
        # the lists of D2 without their embeddings: what publishing view by view would leave
        materialize(D2, settings, feature_views=["user_daily_candidates"])
        reader = Recommender(settings, embeddings=True)
        with pytest.raises(ValueError, match="refusing a mixed answer"):
            reader(USERS[:1])
        lists_only = Recommender(settings)([USERS[0]])[0]
        assert lists_only["model_version"] == VERSION[D2]
        assert "embedding" not in lists_only
