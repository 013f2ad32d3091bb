"""Publishing refuses model outputs that have not passed the outputs suite as they are now."""

from __future__ import annotations

import pyarrow as pa
import pytest

from models.publish import NotValidatedError, publish_outputs, require_outputs_validated
from reelrec import lake
from reelrec.catalog import CANDIDATES, GOLD_TABLES
from reelrec.dates import feature_timestamp
from reelrec.settings import Settings
from reelrec.validation import OUTPUTS, ValidationReport
from reelrec.validation.report import write_report

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


def _reports(settings: Settings, success: bool, versions: dict[str, int | None] | None = None) -> None:
    """One outputs report per gold table, recording ``versions`` (default: the tables' current ones)."""
    if versions is None:
        versions = {table.name: lake.version(table, settings) for table in GOLD_TABLES}
    for table in GOLD_TABLES:
        report = ValidationReport(OUTPUTS, table.name, D, success=success, evaluated=1, versions=versions)
        write_report(report, settings, outcomes=[])


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
    _write_candidates(settings)
    _reports(settings, success=True)  # validated as they are ...
    _write_candidates(settings)  # ... and the candidates were rewritten since
    with pytest.raises(NotValidatedError, match="gold.candidates was rewritten after it was validated"):
        publish_outputs(D, settings)


def test_a_report_of_another_delta_version_is_refused_however_recent_the_file(settings: Settings) -> None:
    _write_candidates(settings)
    _write_candidates(settings)  # now at version 1
    # Written after the last commit (a file-time comparison would let it through), but it checked
    # version 0 of the candidates, not the rows that are there now.
    _reports(settings, success=True, versions={"candidates": 0})
    with pytest.raises(
        NotValidatedError, match=r"gold\.candidates was rewritten .* checked Delta version 0, .* at version 1"
    ):
        publish_outputs(D, settings)


def test_passing_reports_of_the_current_versions_are_accepted(settings: Settings) -> None:
    _write_candidates(settings)
    _reports(settings, success=True)
    require_outputs_validated(D, settings)  # does not raise


def test_publish_of_a_night_the_gate_held_is_refused(settings: Settings) -> None:
    import json

    from models.gate import HeldError

    _write_candidates(settings)
    _reports(settings, success=True)
    gate = settings.run_dir(D) / "gate.json"
    gate.parent.mkdir(parents=True, exist_ok=True)
    gate.write_text(json.dumps({"publish": False, "reason": "held: final list NDCG@10 0.01 < ..."}))
    with pytest.raises(HeldError, match="held by the promotion gate"):
        publish_outputs(D, settings)
