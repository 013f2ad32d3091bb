"""Publishing refuses model outputs that have not passed the outputs suite as they are now."""

from __future__ import annotations

import json
import os
import time

import pyarrow as pa
import pytest

from models.publish import NotValidatedError, publish_outputs
from reelrec import lake
from reelrec.catalog import CANDIDATES, GOLD_TABLES
from reelrec.dates import feature_timestamp
from reelrec.settings import Settings

D = "2026-11-02"


def _write_candidates(settings: Settings) -> None:
    stamp = feature_timestamp(D)
    rows = pa.table(
        {
            "user_id": ["u1"],
            "video_ids": [["v1", "v2"]],
            "scores": [[0.9, 0.5]],
            "model_version": ["two_tower_v1-test"],
            "generated_at": [stamp],
            "event_timestamp": [stamp],
            "dt": [D],
        }
    )
    lake.write_partition(CANDIDATES, settings, rows, D)


def _reports(settings: Settings, success: bool) -> None:
    folder = settings.run_dir(D) / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    for table in GOLD_TABLES:
        (folder / f"outputs.{table.name}.json").write_text(json.dumps({"success": success}))


def test_publish_without_a_validation_report_names_the_table_and_the_fix(settings: Settings) -> None:
    with pytest.raises(
        NotValidatedError, match=r"dt=2026-11-02: no outputs-suite report for gold\.candidates"
    ):
        publish_outputs(D, settings)


def test_publish_after_a_failed_suite_is_refused(settings: Settings) -> None:
    _write_candidates(settings)
    _reports(settings, success=False)
    with pytest.raises(NotValidatedError, match="gold.candidates failed the outputs suite"):
        publish_outputs(D, settings)


def test_publish_of_rows_rewritten_after_validation_is_refused(settings: Settings) -> None:
    _reports(settings, success=True)
    past = time.time() - 60
    for path in (settings.run_dir(D) / "validation").glob("*.json"):
        os.utime(path, (past, past))  # validated a minute ago ...
    _write_candidates(settings)  # ... and the candidates were rewritten since
    with pytest.raises(NotValidatedError, match="gold.candidates was rewritten after it was validated"):
        publish_outputs(D, settings)
