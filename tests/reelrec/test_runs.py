"""reelrec.runs: which date a run processes, and the manifest it leaves behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from reelrec import lake, runs
from reelrec.catalog import (
    AGE_BUCKET,
    AGE_BUCKETS,
    COUNTRY,
    CREATOR_ID,
    DT,
    FOLLOWED_AT,
    FOLLOWS,
    SIGNUP_TS,
    USER_ID,
    USERS,
)
from reelrec.runs import read_manifest, record_manifest, resolve_run_date
from reelrec.settings import Settings

D1, D2 = "2026-11-01", "2026-11-02"


# ---------------------------------------------------------------------------------- the run's date
def test_the_date_param_wins_over_the_logical_date() -> None:
    assert resolve_run_date({"date": D1}, datetime(2026, 11, 5, tzinfo=UTC)) == D1


def test_without_a_param_the_logical_date_is_the_run_date() -> None:
    assert resolve_run_date(None, datetime(2026, 11, 3, tzinfo=UTC)) == "2026-11-03"
    assert resolve_run_date({}, datetime(2026, 11, 3, 23, 59, tzinfo=UTC)) == "2026-11-03"
    assert resolve_run_date({"date": None}, datetime(2026, 11, 3, tzinfo=UTC)) == "2026-11-03"
    assert resolve_run_date({"date": ""}, datetime(2026, 11, 3, tzinfo=UTC)) == "2026-11-03"


def test_a_naive_logical_date_is_utc() -> None:
    assert resolve_run_date(None, datetime(2026, 11, 3, 23, 30)) == "2026-11-03"


def test_an_aware_logical_date_is_read_in_utc() -> None:
    # 01:00 on the 3rd at UTC+2 is 23:00 on the 2nd in UTC
    plus_two = timezone(timedelta(hours=2))
    assert resolve_run_date(None, datetime(2026, 11, 3, 1, tzinfo=plus_two)) == D2


def test_a_bad_date_param_names_the_param_and_the_value() -> None:
    with pytest.raises(ValueError, match=r"param 'date': .*YYYY-MM-DD.*'03/11/2026'"):
        resolve_run_date({"date": "03/11/2026"}, datetime(2026, 11, 3, tzinfo=UTC))
    with pytest.raises(ValueError, match=r"'2026-11-31'"):
        resolve_run_date({"date": "2026-11-31"}, None)


def test_no_date_at_all_is_an_error_that_says_how_to_give_one() -> None:
    with pytest.raises(ValueError, match=r"no logical date.*'date' param"):
        resolve_run_date({"date": None}, None)


# ----------------------------------------------------------------------------------- the manifest
def _follows(date: str, *users: str) -> pa.Table:
    n = len(users)
    return pa.table(
        {
            USER_ID: list(users),
            CREATOR_ID: ["c1"] * n,
            FOLLOWED_AT: pa.array([datetime(2026, 11, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
            DT: [date] * n,
        }
    )


def test_manifest_round_trip_records_versions_rows_and_task_facts(settings: Settings) -> None:
    lake.write_partition(FOLLOWS, settings, _follows(D1, "u1", "u2"), D1)
    lake.write_partition(FOLLOWS, settings, _follows(D2, "u3"), D2)
    facts = {"ingest_events": {"rows": 2, "version": 1}, "train": None}  # None: a skipped task

    path = record_manifest(D2, facts, settings)

    assert path == settings.run_dir(D2) / runs.MANIFEST
    manifest = read_manifest(D2, settings)
    assert manifest == {
        "date": D2,
        "status": "data-only",  # no gate decision, nothing published: the model plane was skipped
        # D2's rows and the table's version after the run; tables never written are left out
        "tables": {"bronze.follows": {"version": 1, "rows": 1}},
        "tasks": facts,
    }
    assert json.loads(path.read_text()) == manifest
    assert not list(path.parent.glob("*.tmp"))  # written through a temp file, then renamed


def test_rerecording_a_date_replaces_its_manifest(settings: Settings) -> None:
    record_manifest(D1, {"check_landing": {"ok": True}}, settings)
    lake.write_partition(FOLLOWS, settings, _follows(D1, "u1"), D1)

    record_manifest(D1, {"check_landing": {"ok": False}}, settings)

    manifest = read_manifest(D1, settings)
    assert manifest is not None
    assert manifest["tasks"] == {"check_landing": {"ok": False}}
    assert manifest["tables"] == {"bronze.follows": {"version": 0, "rows": 1}}


def test_a_date_without_a_run_has_no_manifest(settings: Settings) -> None:
    record_manifest(D1, {}, settings)

    assert read_manifest(D2, settings) is None


def test_table_state_covers_every_written_table(settings: Settings) -> None:
    lake.write_partition(FOLLOWS, settings, _follows(D1, "u1"), D1)
    lake.write_partition(FOLLOWS, settings, _follows(D1, "u1", "u2"), D1)
    users = pa.table(
        {
            USER_ID: ["u1"],
            SIGNUP_TS: pa.array([datetime(2026, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            COUNTRY: ["NO"],
            AGE_BUCKET: [AGE_BUCKETS[1]],
            DT: [D2],
        }
    )
    lake.write_partition(USERS, settings, users, D2)

    assert runs.table_state(D1, settings) == {
        "bronze.follows": {"version": 1, "rows": 2},
        "bronze.users": {"version": 0, "rows": 0},  # written, but nothing on D1
    }


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        ({"train": None, "publish": None}, "data-only"),
        ({"gate": {"publish": True, "forced": False}, "publish": {"rows": 3}}, "published"),
        ({"gate": {"publish": True, "forced": True}, "publish": {"rows": 3}}, "published (forced)"),
        ({"gate": {"publish": False, "reason": "held: ..."}, "publish": None}, "held"),
    ],
)
def test_night_status_reads_the_gate_and_publish_facts(facts: dict[str, Any], status: str) -> None:
    assert runs.night_status(facts) == status
