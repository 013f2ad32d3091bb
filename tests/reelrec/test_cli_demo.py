"""The end of ``reelrec demo`` when no list was published: a gate that held every model night is a
correct outcome (exit 0, the reasons and the command to publish anyway); nothing published with no
night held is an error (exit 1)."""

from __future__ import annotations

import json

import pytest

from models.gate import decide
from reelrec.cli_results import _nothing_published
from reelrec.settings import Settings

NIGHTS = ["2026-11-01", "2026-11-02", "2026-11-03"]


def _write_gate(settings: Settings, date: str, publish: bool) -> str:
    candidate = {"ndcg@10": 0.02 if not publish else 0.30}
    decision = decide(candidate, None, {"popularity": {"ndcg@10": 0.10}})
    assert decision.publish is publish
    run_dir = settings.run_dir(date)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "gate.json").write_text(json.dumps(decision.to_dict()))
    return decision.reason


def test_a_demo_whose_only_model_night_was_held_explains_and_succeeds(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = _write_gate(settings, NIGHTS[2], publish=False)

    assert _nothing_published(NIGHTS, settings) == 0

    out = capsys.readouterr().out
    assert "the promotion gate held every model night" in out
    assert f"dt={NIGHTS[2]}: {reason}" in out
    assert f"reelrec run --date {NIGHTS[2]} --force-publish" in out


def test_a_demo_that_published_nothing_without_a_held_night_fails(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _nothing_published(NIGHTS, settings) == 1
    assert f"no candidates were published for {NIGHTS[0]}..{NIGHTS[2]}" in capsys.readouterr().err
