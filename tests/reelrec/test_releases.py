"""The release registry and the serving pointer: JSON round trips, ordering, pointer history, errors."""

from __future__ import annotations

import json

import pytest

from reelrec import releases
from reelrec.releases import Release
from reelrec.settings import Settings


def _release(version: str, night: str, published: bool = True) -> Release:
    return Release(
        version=version,
        night=night,
        components={"two_tower": version, "ranker": f"ranker-{night}"},
        metrics={"ndcg@10": 0.12, "recall@100": 0.4},
        gate={"publish": published, "reason": "test"},
        published_at="2026-11-03T03:00:00+00:00" if published else None,
    )


def test_releases_round_trip_sorted_by_night(settings: Settings) -> None:
    later, earlier = _release("tt-b", "2026-11-02"), _release("tt-a", "2026-11-01", published=False)
    releases.record_release(settings, later)
    path = releases.record_release(settings, earlier)
    assert path == settings.models / "releases" / "tt-a.json"
    assert json.loads(path.read_text())["published_at"] is None
    assert releases.releases(settings) == [earlier, later]
    assert releases.get_release(settings, "tt-b") == later and later.published and not earlier.published
    assert releases.get_release(settings, "tt-zzz") is None
    assert not list((settings.models / "releases").glob(".*"))  # no temporary file left behind


def test_recording_a_version_again_replaces_it(settings: Settings) -> None:
    releases.record_release(settings, _release("tt-a", "2026-11-01"))
    releases.record_release(settings, _release("tt-a", "2026-11-02"))
    assert [r.night for r in releases.releases(settings)] == ["2026-11-02"]


def test_the_serving_pointer_moves_and_keeps_its_history(settings: Settings) -> None:
    assert releases.serving(settings) is None  # nothing published yet
    for r in (_release("tt-a", "2026-11-01"), _release("tt-b", "2026-11-02")):
        releases.record_release(settings, r)
    releases.set_serving(settings, "tt-a", "publish")
    releases.set_serving(settings, "tt-b", "forced")
    pointer = releases.set_serving(
        settings, "tt-a", "rollback", {"online_timestamp": "2026-11-03T00:00:01+00:00"}
    )
    assert releases.serving(settings) == releases.get_release(settings, "tt-a")
    assert pointer == json.loads((settings.models / "serving.json").read_text())
    assert (pointer["version"], pointer["night"], pointer["reason"]) == ("tt-a", "2026-11-01", "rollback")
    moves = [(m["version"], m["reason"], m["previous"]) for m in pointer["history"]]
    assert moves == [("tt-a", "publish", None), ("tt-b", "forced", "tt-a"), ("tt-a", "rollback", "tt-b")]
    assert pointer["history"][-1]["details"] == {"online_timestamp": "2026-11-03T00:00:01+00:00"}


def test_bad_pointer_moves_and_names_are_refused(settings: Settings) -> None:
    releases.record_release(settings, _release("tt-a", "2026-11-01"))
    with pytest.raises(KeyError, match=r"no release of model version 'tt-x'; recorded versions: \['tt-a'\]"):
        releases.set_serving(settings, "tt-x", "publish")
    with pytest.raises(ValueError, match="reason 'because'"):
        releases.set_serving(settings, "tt-a", "because")
    with pytest.raises(ValueError, match="not a safe file name"):
        releases.record_release(settings, _release("../escape", "2026-11-01"))
    assert not (settings.models / "serving.json").exists()


def test_a_pointer_to_an_unrecorded_version_is_an_error_naming_it(settings: Settings) -> None:
    settings.models.mkdir(parents=True)
    (settings.models / "serving.json").write_text(json.dumps({"version": "tt-gone", "history": []}))
    with pytest.raises(ValueError, match="names version 'tt-gone', which has no release record"):
        releases.serving(settings)


def test_models_list_and_the_serving_line_read_the_registry(settings: Settings) -> None:
    from reelrec.cli_format import format_releases, format_serving
    from reelrec.cli_models import release_rows, serving_line

    assert serving_line(settings) == (None, format_serving(None, None))
    releases.record_release(settings, _release("tt-a", "2026-11-01"))
    releases.record_release(settings, _release("tt-b", "2026-11-02", published=False))
    releases.set_serving(settings, "tt-a", "publish")
    text = format_releases(release_rows(settings)).splitlines()
    assert text[1].split()[:6] == [
        "*",
        "tt-a",
        "2026-11-01",
        "ranker=ranker-2026-11-01,",
        "two_tower=tt-a",
        "0.1200",
    ]
    assert text[2].split()[:7] == [
        "tt-b",
        "2026-11-02",
        "ranker=ranker-2026-11-02,",
        "two_tower=tt-b",
        "0.1200",
        "0.4000",
        "held",
    ]
    assert serving_line(settings) == (
        "tt-a",
        "serving: tt-a (night 2026-11-01, published 2026-11-03T03:00:00+00:00)",
    )
