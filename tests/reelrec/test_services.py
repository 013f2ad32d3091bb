"""The stack's process manager on cheap components: ``python -m http.server`` processes on free ports."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator

import pytest

from reelrec import services
from reelrec.services import Component, ServiceError
from reelrec.services.process import pid_file
from reelrec.services.stack import ordered
from reelrec.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _web(name: str, port: int, after: tuple[str, ...] = ()) -> Component:
    argv = (sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1")
    return Component(
        name=name,
        argv=argv,
        ports=(port,),
        ready_url=f"http://127.0.0.1:{port}/",
        start_timeout_s=30.0,
        after=after,
    )


@pytest.fixture
def stack(settings: Settings) -> Iterator[list[Component]]:
    components = [_web("web-b", _free_port(), after=("web-a",)), _web("web-a", _free_port())]
    yield components
    services.down(settings, components)


def test_up_status_down_round_trip(settings: Settings, stack: list[Component]) -> None:
    first = services.up(settings, stack, echo=lambda _: None)
    assert first["started"] == ["web-a", "web-b"]  # `after` honoured
    states = {s.name: s for s in services.status(settings, stack)}
    assert all(s.running and s.pid for s in states.values())
    assert all(s.log.exists() for s in states.values())
    assert json.loads(json.dumps([s.as_dict() for s in states.values()]))[0]["running"] is True

    again = services.up(settings, stack, echo=lambda _: None)
    assert again["started"] == [] and sorted(again["running"]) == ["web-a", "web-b"]
    assert {s.name: s.pid for s in services.status(settings, stack)} == {n: s.pid for n, s in states.items()}

    assert sorted(services.down(settings, stack)) == ["web-a", "web-b"]
    assert not any(s.running for s in services.status(settings, stack))
    assert services.down(settings, stack) == []
    for component in stack:  # the ports are free again
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", component.ports[0])) != 0


def test_port_taken_names_port_component_and_owner(settings: Settings) -> None:
    import os

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        component = _web("web-x", port)
        with pytest.raises(ServiceError) as err:
            services.up(settings, [component], echo=lambda _: None)
    message = str(err.value)
    assert f"port {port}" in message and "web-x" in message and f"pid {os.getpid()}" in message
    assert not services.status(settings, [component])[0].running


def test_failed_start_shows_its_log_and_stops_the_others(settings: Settings) -> None:
    good = _web("web-ok", _free_port())
    bad = Component(
        name="broken",
        argv=(sys.executable, "-c", "print('cannot open the thing'); raise SystemExit(3)"),
        after=("web-ok",),
    )
    with pytest.raises(ServiceError) as err:
        services.up(settings, [good, bad], echo=lambda _: None)
    assert "broken exited" in str(err.value) and "cannot open the thing" in str(err.value)
    assert not any(s.running for s in services.status(settings, [good, bad]))


def test_stale_pid_file_is_cleaned(settings: Settings, stack: list[Component]) -> None:
    settings.services.mkdir(parents=True)
    stale = pid_file(settings.services, "web-a")
    stale.write_text(json.dumps({"pid": 999_999_999, "start_ticks": 1}))
    assert not services.status(settings, stack)[1].running
    assert not stale.exists()
    assert services.up(settings, stack, echo=lambda _: None)["started"] == ["web-a", "web-b"]


def test_order_rejects_unknown_dependency() -> None:
    with pytest.raises(ServiceError, match="not in the stack"):
        ordered([_web("web-b", 1, after=("nowhere",))])


def test_profile_components_bind_loopback_only(settings: Settings) -> None:
    names = {c.name for c in services.components(settings)}
    assert names >= {"airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
    assert "celery-worker" not in names
    api = next(c for c in services.components(settings) if c.name == "airflow-api-server")
    assert "127.0.0.1" in api.argv and api.env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert api.env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert api.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == settings.airflow_db
    for component in services.components(settings):
        if component.name in ("airflow-scheduler", "airflow-triggerer"):
            assert "--skip-serve-logs" in component.argv  # no log server on 0.0.0.0


def test_production_profile_adds_celery_on_postgres(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("REELREC_PROFILE", "production")
    settings = Settings.from_env(str(tmp_path))
    stack = {c.name: c for c in services.components(settings)}
    assert "celery-worker" in stack
    env = stack["celery-worker"].env
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == settings.celery_broker_url
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
