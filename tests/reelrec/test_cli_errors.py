"""Errors a person can act on: a missing drop, a failed suite, a busy port.

Each is met through the command a person types; the message must name the thing (folder, table
and rule, port) and the next command to run, and no traceback may reach the terminal.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reelrec.cli import main
from reelrec.settings import Settings
from tests.reelrec.validation.test_bronze_and_features import D, events_rows, write_suite
from tests.spark_server import free_port

BIN = Path(sys.executable).parent


def test_a_missing_drop_names_the_folders_and_the_next_command(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (settings.landing / "events" / "dt=2026-11-01").mkdir(parents=True)  # a drop without _SUCCESS
    code = main(["--home", str(settings.home), "run", "--date", "2026-11-01", "--to", "2026-11-02"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot run dt=2026-11-01: 5 of 5 landing drops for dt=2026-11-01 not complete" in err
    assert "cannot run dt=2026-11-02" in err
    assert str(settings.landing / "events" / "dt=2026-11-01") in err
    assert "no _SUCCESS" in err or "_SUCCESS" in err
    assert "reelrec generate --preset tiny --start 2026-11-01 --days 2" in err
    assert "reelrec run --date 2026-11-01 --to 2026-11-02" in err
    assert "Traceback" not in err
    assert not settings.services.exists()  # refused before anything started


@pytest.mark.gx
def test_a_failed_suite_names_table_rule_rows_and_the_next_command(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    events = events_rows(D)
    events[1]["watch_ms"] = -250
    write_suite("bronze", settings, events=events)
    code = main(["--home", str(settings.home), "validate", "--suite", "bronze", "--date", D])
    err = capsys.readouterr().err
    assert code == 1
    assert f"validation suite 'bronze' failed for dt={D}" in err
    assert "expect_column_values_to_be_between on column 'watch_ms'" in err
    assert events[1]["event_id"] in err
    assert f"reelrec validate --suite bronze --date {D}" in err
    assert f"reelrec run --date {D}" in err
    assert "Traceback" not in err


@pytest.mark.airflow
@pytest.mark.slow
def test_a_busy_port_names_port_owner_and_what_to_change(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            **os.environ,
            "REELREC_HOME": str(settings.home),
            "REELREC_UI_PORT": str(port),
            # The Spark Connect server starts first: on a port of its own.
            "REELREC_SPARK_CONNECT_PORT": str(free_port()),
        }
        done = subprocess.run(
            [str(BIN / "reelrec"), "ui"], env=env, capture_output=True, text=True, timeout=300
        )
    try:
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"port {port} of airflow-api-server on 127.0.0.1 is already taken by pid {os.getpid()}" in (
            done.stderr
        )
        assert "REELREC_UI_PORT" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout
    finally:
        subprocess.run([str(BIN / "reelrec"), "stop"], env=env, capture_output=True, timeout=120)


def test_the_console_script_exits_with_the_commands_status_and_all_its_output(tmp_path: Path) -> None:
    """``reelrec`` (``reelrec.cli:entry``) skips the interpreter's teardown: what the command printed to a
    pipe still arrives, and the exit status is the command's own (0, or 75 for a locked home)."""
    from reelrec import run_lock

    home = tmp_path / "home"
    script = str(BIN / "reelrec")
    done = subprocess.run(
        [script, "--home", str(home), "housekeep", "--dry-run"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "would reclaim 0.00 MB" in done.stdout
    with run_lock.hold(Settings.from_env(home), "run", [D]):
        locked = subprocess.run(
            [script, "--home", str(home), "housekeep"], capture_output=True, text=True, timeout=300
        )
    assert locked.returncode == run_lock.EXIT_LOCKED
    assert "another run holds the run lock" in locked.stderr
    assert Path(script).read_text().count("from reelrec.cli import entry") == 1
