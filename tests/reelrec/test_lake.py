"""reelrec.lake: the Delta contract, on real delta-rs tables in a throwaway lake.

Partition overwrite replaces exactly one date, rows are selected and cast into the catalog schema,
errors name the table and column, old versions stay readable, and the file list Spark reads is the
current snapshot's, not whatever parquet lies in the folder.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reelrec import lake
from reelrec.catalog import CREATOR_ID, DT, FOLLOWED_AT, FOLLOWS, QUARANTINE, USER_ID
from reelrec.errors import DataError
from reelrec.settings import Settings

D1, D2, D3 = "2026-11-01", "2026-11-02", "2026-11-03"


def follows(date: str, *users: str) -> pa.Table:
    """Follow edges of ``users`` to creator c1 on ``date``, columns in a different order than the catalog."""
    n = len(users)
    return pa.table(
        {
            DT: [date] * n,
            CREATOR_ID: ["c1"] * n,
            USER_ID: list(users),
            FOLLOWED_AT: pa.array([datetime(2026, 11, 1, 12, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
            "ignored_extra": list(range(n)),
        }
    )


def users_by_date(settings: Settings, version: int | None = None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in lake.read(FOLLOWS, settings, version=version).to_pylist():
        found.setdefault(row[DT], []).append(row[USER_ID])
    return {date: sorted(users) for date, users in sorted(found.items())}


def quarantine(date: str, source: str, n: int) -> pa.Table:
    return pa.table(
        {
            "source": [source] * n,
            "file": [f"{source}.jsonl"] * n,
            "line": list(range(1, n + 1)),
            "reason": ["bad"] * n,
            "record": ["{}"] * n,
            DT: [date] * n,
        }
    )


# ---------------------------------------------------------------------------------------- conform
def test_conform_selects_orders_and_casts_into_the_catalog_schema() -> None:
    data = follows(D1, "u1").set_column(
        3, FOLLOWED_AT, pa.array([datetime(2026, 11, 1, 12)], pa.timestamp("ms"))
    )

    rows = lake.conform(FOLLOWS, data)

    assert rows.schema == FOLLOWS.schema  # extra column dropped, order and types from the catalog
    assert rows.column(FOLLOWED_AT).type == pa.timestamp("us", tz="UTC")


def test_conform_names_the_table_and_the_missing_column() -> None:
    with pytest.raises(
        lake.SchemaContractError, match=r"bronze\.follows: missing column\(s\) \['followed_at'\]"
    ):
        lake.conform(FOLLOWS, follows(D1, "u1").drop_columns([FOLLOWED_AT]))


def test_conform_names_the_column_with_nulls_in_a_required_field() -> None:
    data = follows(D1, "u1", "u2").set_column(2, USER_ID, pa.array(["u1", None]))

    with pytest.raises(lake.SchemaContractError, match=r"bronze\.follows: column 'user_id' is non-nullable"):
        lake.conform(FOLLOWS, data)


def test_conform_names_the_column_that_does_not_cast() -> None:
    data = follows(D1, "u1").set_column(3, FOLLOWED_AT, pa.array(["not a time"]))

    with pytest.raises(
        lake.SchemaContractError, match=r"bronze\.follows: column 'followed_at' of type string"
    ):
        lake.conform(FOLLOWS, data)


def test_schema_contract_errors_are_data_errors() -> None:
    """The DAG fails a task on a DataError at once: a broken contract is not fixed by retrying."""
    assert issubclass(lake.SchemaContractError, DataError)


# -------------------------------------------------------------------------------- partition writes
def test_overwriting_a_date_replaces_only_that_dates_rows(settings: Settings) -> None:
    assert lake.write_partition(FOLLOWS, settings, follows(D1, "u1", "u2"), D1) == 0
    assert lake.write_partition(FOLLOWS, settings, follows(D2, "u3"), D2) == 1

    version = lake.write_partition(FOLLOWS, settings, follows(D1, "u9"), D1)

    assert version == 2 == lake.version(FOLLOWS, settings)
    assert users_by_date(settings) == {D1: ["u9"], D2: ["u3"]}
    rows = [lake.partition_row_count(FOLLOWS, settings, date) for date in (D1, D2, D3)]
    assert rows == [1, 1, 0]


def test_rerunning_a_date_never_duplicates_rows(settings: Settings) -> None:
    for _ in range(3):
        lake.write_partition(FOLLOWS, settings, follows(D1, "u1", "u2"), D1)

    assert users_by_date(settings) == {D1: ["u1", "u2"]}


def test_rows_of_another_date_are_refused_naming_the_partition(settings: Settings) -> None:
    data = pa.concat_tables([follows(D1, "u1"), follows(D2, "u2")])

    with pytest.raises(
        lake.SchemaContractError, match=r"bronze\.follows: writing partition dt=2026-11-01 .*2026-11-02"
    ):
        lake.write_partition(FOLLOWS, settings, data, D1)
    assert not lake.exists(FOLLOWS, settings)  # nothing was committed


def test_an_extra_partition_key_pins_the_overwrite(settings: Settings) -> None:
    lake.write_partition(QUARANTINE, settings, quarantine(D1, "events", 2), D1, {"source": "events"})
    lake.write_partition(QUARANTINE, settings, quarantine(D1, "videos", 3), D1, {"source": "videos"})

    lake.write_partition(QUARANTINE, settings, quarantine(D1, "events", 1), D1, {"source": "events"})

    counts = lake.read(QUARANTINE, settings).group_by("source").aggregate([("line", "count")]).to_pylist()
    assert sorted((row["source"], row["line_count"]) for row in counts) == [("events", 1), ("videos", 3)]


def test_writing_no_rows_empties_the_date(settings: Settings) -> None:
    lake.write_partition(FOLLOWS, settings, follows(D1, "u1"), D1)
    lake.write_partition(FOLLOWS, settings, follows(D2, "u2"), D2)

    lake.write_partition(FOLLOWS, settings, follows(D2), D2)

    assert users_by_date(settings) == {D1: ["u1"]}
    assert lake.partition_dates(FOLLOWS, settings) == {D1}


# ---------------------------------------------------------------------------- reads and time travel
def test_time_travel_reads_the_table_as_of_a_version(settings: Settings) -> None:
    lake.write_partition(FOLLOWS, settings, follows(D1, "u1", "u2"), D1)
    lake.write_partition(FOLLOWS, settings, follows(D2, "u3"), D2)
    lake.write_partition(FOLLOWS, settings, follows(D1, "u9"), D1)

    assert users_by_date(settings, version=0) == {D1: ["u1", "u2"]}
    assert users_by_date(settings, version=1) == {D1: ["u1", "u2"], D2: ["u3"]}
    assert users_by_date(settings, version=2) == {D1: ["u9"], D2: ["u3"]}
    assert lake.open_table(FOLLOWS, settings, version=0).version() == 0


def test_read_selects_dates_and_columns_in_catalog_order(settings: Settings) -> None:
    lake.write_partition(FOLLOWS, settings, follows(D1, "u1"), D1)
    lake.write_partition(FOLLOWS, settings, follows(D2, "u2"), D2)
    lake.write_partition(FOLLOWS, settings, follows(D3, "u3"), D3)

    assert lake.read(FOLLOWS, settings).column_names == FOLLOWS.columns
    picked = lake.read(FOLLOWS, settings, dates=[D3, D1, D1], columns=[USER_ID])
    assert picked.column_names == [USER_ID]
    assert sorted(picked.column(USER_ID).to_pylist()) == ["u1", "u3"]


def test_a_table_never_written_is_absent_not_an_error_where_that_is_asked(settings: Settings) -> None:
    assert not lake.exists(FOLLOWS, settings)
    assert lake.version(FOLLOWS, settings) is None
    assert lake.partition_dates(FOLLOWS, settings) == set()
    assert lake.partition_row_count(FOLLOWS, settings, D1) == 0


def test_opening_a_table_never_written_names_it_and_its_path(settings: Settings) -> None:
    with pytest.raises(FileNotFoundError, match=r"bronze\.follows does not exist at .*lake/bronze/follows"):
        lake.open_table(FOLLOWS, settings)
    with pytest.raises(FileNotFoundError, match=r"bronze\.follows"):
        lake.read(FOLLOWS, settings)


# --------------------------------------------------------------------- snapshot files and partitions
def test_snapshot_files_leave_out_files_the_log_removed(settings: Settings) -> None:
    lake.write_partition(FOLLOWS, settings, follows(D1, "u1", "u2"), D1)
    lake.write_partition(FOLLOWS, settings, follows(D2, "u3"), D2)
    lake.write_partition(FOLLOWS, settings, follows(D1, "u9"), D1)  # removes the first file from the log

    on_disk = {path.name for path in FOLLOWS.path(settings).rglob("*.parquet")}
    snapshot = lake.snapshot_files(FOLLOWS, settings)

    assert len(on_disk) == 3  # the replaced file is still in the folder (no vacuum) ...
    assert len(snapshot) == 2  # ... but not in the snapshot
    assert {Path(uri).name for uri in snapshot} < on_disk
    assert all(Path(uri.removeprefix("file://")).exists() for uri in snapshot)
    # the snapshot's files hold exactly the current rows
    current = pa.concat_tables([pq.read_table(uri.removeprefix("file://")) for uri in snapshot])
    assert sorted(current.column(USER_ID).to_pylist()) == ["u3", "u9"]


def test_snapshot_files_of_some_dates(settings: Settings) -> None:
    lake.write_partition(FOLLOWS, settings, follows(D1, "u1"), D1)
    lake.write_partition(FOLLOWS, settings, follows(D2, "u2"), D2)

    only_d2 = lake.snapshot_files(FOLLOWS, settings, dates=[D2])

    assert len(only_d2) == 1 and f"{DT}={D2}" in only_d2[0]
    assert lake.snapshot_files(FOLLOWS, settings, dates=[D3]) == []


def test_partition_dates_come_from_the_log_not_the_folder(settings: Settings) -> None:
    lake.write_partition(FOLLOWS, settings, follows(D1, "u1"), D1)
    lake.write_partition(FOLLOWS, settings, follows(D2, "u2"), D2)
    # a stray folder that no commit names is not a partition
    (FOLLOWS.path(settings) / f"{DT}={D3}").mkdir()

    assert lake.partition_dates(FOLLOWS, settings) == {D1, D2}
