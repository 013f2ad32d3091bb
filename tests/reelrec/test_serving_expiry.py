"""A list older than ``reelrec.online_expiry.max_age()`` (7 days) behind the default list is not served.

u1 is scored on 11-01 only; u2 every published night. Once the default list is 8 nights newer
than u1's list, u1 gets the default list, flagged ``expired`` with the old list's version; at 7
nights u1's own list is still served (the age is "more than 7 days").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from feature_repo.materialize import materialize
from feature_repo.registry import apply
from reelrec import catalog, lake
from reelrec.catalog import DEFAULT_LIST_KEY
from reelrec.dates import feature_timestamp
from reelrec.online_expiry import max_age
from reelrec.serving import recommend
from reelrec.settings import Settings
from tests.reelrec.test_serving import STORES, online_store

pytestmark = pytest.mark.feast

D1, D8, D9 = "2026-11-01", "2026-11-08", "2026-11-09"


def write_lists(settings: Settings, date: str, users: list[str]) -> None:
    n = len(users) + 1
    generated = datetime.fromisoformat(f"{date}T03:00:00+00:00") + timedelta(days=1)
    common = {
        catalog.MODEL_VERSION: [f"reelrec_v1-{date}-00000000"] * n,
        catalog.GENERATED_AT: [generated] * n,
        catalog.EVENT_TIMESTAMP: [feature_timestamp(date)] * n,
        catalog.DT: [date] * n,
    }
    rows = {
        catalog.USER_ID: [*users, DEFAULT_LIST_KEY],
        catalog.VIDEO_IDS: [[f"v{date[-2:]}{i}"] for i in range(n)],
        catalog.SCORES: pa.array([[0.5]] * n, pa.list_(pa.float32())),
    }
    lake.write_partition(catalog.CANDIDATES, settings, pa.table({**rows, **common}), date)


def publish(settings: Settings, date: str) -> None:
    materialize(date, settings, feature_views=["user_daily_candidates"])


@pytest.mark.parametrize("store", STORES)
def test_an_expired_list_gives_way_to_the_default_list(store: str, tmp_path: Path) -> None:
    assert max_age() == timedelta(days=7)
    with online_store(tmp_path / "home", store) as settings:
        for date, users in ((D1, ["u1", "u2"]), (D8, ["u2"]), (D9, ["u2"])):
            write_lists(settings, date, users)
        apply(settings)
        publish(settings, D1)
        publish(settings, D8)
        seven = recommend(settings, ["u1", "u2"])
        assert seven[0]["found"] and seven[0]["model_version"] == f"reelrec_v1-{D1}-00000000"
        assert "expired" not in seven[0]

        publish(settings, D9)
        u1, u2 = recommend(settings, ["u1", "u2"])
        assert u2["found"] and u2["model_version"] == f"reelrec_v1-{D9}-00000000"
        assert (u1["found"], u1["fallback"]) == (False, True)
        assert u1["expired"] == f"reelrec_v1-{D1}-00000000"
        assert u1["items"] == [{"video_id": f"v{D9[-2:]}1", "score": 0.5}]  # the default list's
        assert u1["model_version"] == f"reelrec_v1-{D9}-00000000"
