"""reelrec.spark_cluster: the Spark components of each profile, and a night on the standalone cluster."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from reelrec.settings import Settings
from reelrec.spark_cluster import (
    CONNECT_APP_NAME,
    CONNECT_SERVER_CLASS,
    SparkPorts,
    connect_jar,
    connect_url,
    spark_components,
    spark_home,
)


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str, **env: str) -> Settings:
    for name in ("SPARK_MASTER", "REELREC_SPARK_REMOTE", *PORT_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REELREC_PROFILE", profile)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env(tmp_path / "home")


PORT_VARIABLES = (
    "REELREC_SPARK_CONNECT_PORT",
    "REELREC_SPARK_MASTER_UI_PORT",
    "REELREC_SPARK_WORKER_UI_PORT",
)


def _conf(argv: tuple[str, ...]) -> dict[str, str]:
    pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--conf"]
    return dict(pair.split("=", 1) for pair in pairs)


def _option(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_ports_move_by_environment_so_two_homes_run_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(
        tmp_path,
        monkeypatch,
        "production",
        SPARK_MASTER="spark://127.0.0.1:17077",
        REELREC_SPARK_CONNECT_PORT="15012",
        REELREC_SPARK_MASTER_UI_PORT="18091",
        REELREC_SPARK_WORKER_UI_PORT="18092",
    )

    master, worker, connect = spark_components(settings)

    assert master.ports == (17077, 18091) and master.ready_url == "http://127.0.0.1:18091/json"
    assert _option(worker.argv, "--webui-port") == "18092"
    assert connect.ports == (15012,)
    assert _conf(connect.argv)["spark.connect.grpc.binding.port"] == "15012"
    assert connect_url() == "sc://127.0.0.1:15012"
    monkeypatch.setenv("REELREC_SPARK_CONNECT_PORT", "../15002")
    with pytest.raises(ValueError, match="REELREC_SPARK_CONNECT_PORT='../15002' is not a TCP port"):
        SparkPorts()


def test_embedded_profile_runs_one_connect_server_in_local_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, monkeypatch, "embedded")

    [connect] = spark_components(settings)

    assert connect.name == "spark-connect"
    assert connect.ports == (15002,)
    assert connect.after == ()
    assert Path(connect.argv[0]) == spark_home() / "bin" / "spark-submit"
    assert Path(connect.argv[0]).exists()
    assert _option(connect.argv, "--class") == CONNECT_SERVER_CLASS
    assert _option(connect.argv, "--master") == "local[2]"
    assert connect.argv[-1] == str(connect_jar()) and connect_jar().exists()
    conf = _conf(connect.argv)
    assert conf["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert conf["spark.connect.grpc.binding.port"] == "15002"
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.driver.memory"] == settings.spark_driver_memory
    assert connect.env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert Path(connect.env["JAVA_HOME"], "bin", "java").exists()
    assert Path(connect.env["SPARK_LOCAL_DIRS"]).is_relative_to(settings.services)
    assert connect_url() == "sc://127.0.0.1:15002"


@pytest.mark.spark
def test_the_connect_server_jvm_gets_the_driver_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spark's own launcher builds the server's java command: its heap is the configured driver memory.

    (The launcher sizes a Connect server like a daemon; it ran with -Xmx512m and ran out of heap on a
    `medium` day until the component set SPARK_DAEMON_MEMORY.)
    """
    import subprocess

    monkeypatch.setenv("REELREC_SPARK_DRIVER_MEMORY", "3g")
    [connect] = spark_components(_settings(tmp_path, monkeypatch, "embedded"))
    java = Path(connect.env["JAVA_HOME"], "bin", "java")
    launcher = [str(java), "-cp", f"{spark_home() / 'jars'}/*", "org.apache.spark.launcher.Main"]
    argv = [*launcher, "org.apache.spark.deploy.SparkSubmit", *connect.argv[1:]]
    scala = connect_jar().name.split("_")[1].split("-")[0]  # spark-connect_2.13-4.1.1.jar -> 2.13
    env = {**connect.env, "SPARK_SCALA_VERSION": scala}  # what spark-class's load-spark-env.sh sets
    built = subprocess.run(argv, env=env, capture_output=True, check=True, timeout=60).stdout
    command = built.decode().split("\0")
    assert "-Xmx3g" in command, [arg for arg in command if arg.startswith("-Xm")]


def test_production_profile_runs_master_worker_and_connect_on_the_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, monkeypatch, "production")

    master, worker, connect = spark_components(settings)

    assert [c.name for c in (master, worker, connect)] == ["spark-master", "spark-worker", "spark-connect"]
    assert master.argv[1:] == (
        "org.apache.spark.deploy.master.Master",
        "--host",
        "127.0.0.1",
        "--port",
        "7077",
        "--webui-port",
        "8081",
    )
    assert master.ports == (7077, 8081)
    assert master.ready_url == "http://127.0.0.1:8081/json"
    assert worker.argv[1] == "org.apache.spark.deploy.worker.Worker"
    assert worker.argv[-1] == "spark://127.0.0.1:7077"
    assert _option(worker.argv, "--host") == "127.0.0.1"
    assert _option(worker.argv, "--webui-port") == "8082"
    assert Path(_option(worker.argv, "--work-dir")).is_relative_to(settings.services)
    assert worker.after == ("spark-master",)
    assert _option(connect.argv, "--master") == "spark://127.0.0.1:7077"
    assert connect.after == ("spark-master", "spark-worker")
    assert all(Path(c.argv[0]).exists() for c in (master, worker, connect))
    assert all(c.env["SPARK_LOCAL_IP"] == "127.0.0.1" for c in (master, worker, connect))


def test_a_cluster_elsewhere_gets_only_the_connect_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, monkeypatch, "production", SPARK_MASTER="spark://10.0.0.5:7077")

    [connect] = spark_components(settings)

    assert _option(connect.argv, "--master") == "spark://10.0.0.5:7077"


def _json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.loads(response.read()))


@pytest.mark.spark
@pytest.mark.slow
def test_a_night_on_the_standalone_cluster_equals_the_local_night(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synthetic = pytest.importorskip("synthetic_world")
    from tests.spark_server import free_port, lake_rows, run_night, running

    date = "2026-11-01"
    master_port = free_port()
    # Free ports, not the stack's fixed ones: a running `reelrec services up` must not collide.
    ports = SparkPorts(master_ui=free_port(), worker_ui=free_port(), connect=free_port())
    cluster = _settings(tmp_path, monkeypatch, "production", SPARK_MASTER=f"spark://127.0.0.1:{master_port}")
    local = Settings.from_env(tmp_path / "local")
    synthetic.generate(local, preset="tiny", start=date, days=1)
    shutil.copytree(local.landing, cluster.landing)
    components = spark_components(cluster, ports)
    assert [c.name for c in components] == ["spark-master", "spark-worker", "spark-connect"]

    started = time.monotonic()
    with running(components, cluster.services):
        print(f"cluster ready in {time.monotonic() - started:.1f} s")
        on_cluster = run_night(cluster.home, [date], remote=connect_url(ports))
        status = _json(f"http://127.0.0.1:{ports.master_ui}/json")
        worker = _json(f"http://127.0.0.1:{ports.worker_ui}/json")
        print(f"night on the cluster done at {time.monotonic() - started:.1f} s")

    assert status["url"] == f"spark://127.0.0.1:{master_port}"
    assert [w["state"] for w in status["workers"]] == ["ALIVE"]
    apps = status["activeapps"] + status["completedapps"]
    [app] = [app for app in apps if app["name"] == CONNECT_APP_NAME]
    assert app["state"] in ("RUNNING", "FINISHED")
    assert app["cores"] == 2
    # The work ran in that application's executor on the worker, not in the Connect driver.
    assert [e["appid"] for e in worker["executors"]] == [app["id"]]

    embedded = {"REELREC_PROFILE": "embedded", "SPARK_MASTER": ""}
    assert on_cluster == run_night(local.home, [date], env=embedded)
    assert lake_rows(cluster) == lake_rows(local)
