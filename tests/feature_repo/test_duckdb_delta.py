"""The offline install of DuckDB's delta extension from the duckdb-extension-delta wheel."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from reelrec import catalog, duckdb_delta, lake
from reelrec.settings import Settings


def test_extension_file_matches_the_installed_duckdb() -> None:
    path = duckdb_delta.extension_file()
    assert path.name == "delta.duckdb_extension"
    assert path.parent.name == f"v{duckdb.__version__}"
    assert path.stat().st_size > 1_000_000


def test_ensure_installed_is_idempotent_and_loads(capsys) -> None:  # type: ignore[no-untyped-def]
    duckdb_delta.ensure_installed()
    again = duckdb_delta.ensure_installed()
    assert again["installed_now"] is False and again["source"] is None
    assert Path(str(again["install_path"])).is_file()
    assert duckdb_delta.is_installed()
    assert duckdb_delta.main([]) == 0
    assert "extension delta already installed at" in capsys.readouterr().out


def test_delta_scan_reads_only_the_current_snapshot(settings: Settings) -> None:
    duckdb_delta.ensure_installed()
    rows = {name: [None] for name in catalog.CREATOR_FEATURES.columns}
    rows.update(creator_id=["c00001"], followers_total=[1], dt=["2026-11-01"])
    rows["event_timestamp"] = [pa.scalar(0, catalog.TS)]
    lake.write_partition(catalog.CREATOR_FEATURES, settings, pa.table(rows), "2026-11-01")
    rows["followers_total"] = [2]
    lake.write_partition(catalog.CREATOR_FEATURES, settings, pa.table(rows), "2026-11-01")
    path = catalog.CREATOR_FEATURES.uri(settings)
    con = duckdb.connect()
    con.execute("LOAD delta")
    got = con.execute(f"SELECT followers_total FROM delta_scan('{path}')").fetchall()
    parquet_files = list(catalog.CREATOR_FEATURES.path(settings).rglob("*.parquet"))
    assert len(parquet_files) == 2  # the overwritten file is still on disk ...
    assert got == [(2,)]  # ... but delta_scan follows the log
