"""docker/compose.yml describes the production profile's stack: every component, every setting.

No container engine runs here: the file is parsed with yaml and compared with what the code says
the production profile is (reelrec/settings.py, and the Airflow configuration that
reelrec.airflow_local derives from it), hosts replaced by compose service names.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from reelrec.settings import Settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
# The components of the production profile (issue 8): the stack `reelrec services up` starts,
# plus the two services it only checks.
COMPONENTS = (
    "postgres",
    "redis",
    "spark-master",
    "spark-worker",
    "spark-connect",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "celery-worker",
)
EXTERNAL = ("postgres", "redis")  # images of their own; every other component runs reelrec's image
# Each field of Settings and the variable that sets it. A new field fails the test below until it is
# added here, and then until compose.yml carries it.
FIELD_ENV = {
    "spark_master": "SPARK_MASTER",
    "spark_remote": "REELREC_SPARK_REMOTE",
    "spark_driver_memory": "REELREC_SPARK_DRIVER_MEMORY",
    "feast_env": "REELREC_FEAST_ENV",
    "redis_url": "REELREC_REDIS_URL",
    "registry_url": "REELREC_REGISTRY_URL",
    "airflow_db_url": "REELREC_AIRFLOW_DB_URL",
    "airflow_executor": "REELREC_AIRFLOW_EXECUTOR",
    "celery_broker_url": "REELREC_CELERY_BROKER_URL",
    "ui_port": "REELREC_UI_PORT",
    "scoring_engine": "REELREC_SCORING_ENGINE",
    "spark_scoring_min_users": "REELREC_SPARK_SCORING_MIN_USERS",
}
# On one machine every endpoint is 127.0.0.1:<port>; in compose, the service listening on it.
SERVICE_BY_PORT = {
    5432: "postgres",
    6379: "redis",
    7077: "spark-master",
    15002: "spark-connect",
    8080: "airflow-api-server",
}


def in_compose(value: str) -> str:
    """``value`` with each ``127.0.0.1:<port>`` replaced by the compose service on that port."""
    for port, service in SERVICE_BY_PORT.items():
        value = value.replace(f"127.0.0.1:{port}", f"{service}:{port}")
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / "compose.yml").read_text()))


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The production profile's settings with nothing overridden by this machine's environment."""
    for name in [*FIELD_ENV.values(), "REELREC_HOME"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REELREC_PROFILE", "production")
    return Settings.from_env(tmp_path / "home")


def test_every_component_is_a_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(COMPONENTS) <= set(services), sorted(set(COMPONENTS) - set(services))
    assert set(services) - set(COMPONENTS) == {"airflow-init"}  # the one-shot `airflow db migrate`
    for name in COMPONENTS:
        service = services[name]
        assert service.get("command") or name in EXTERNAL, name
        assert service.get("image") == ("reelrec:latest" if name not in EXTERNAL else service["image"])


def test_the_component_names_are_those_of_the_local_stack(production: Settings) -> None:
    from reelrec.airflow_local import airflow_components
    from reelrec.spark_cluster import spark_components

    names = {c.name for c in [*spark_components(production), *airflow_components(production)]}
    assert names == set(COMPONENTS) - set(EXTERNAL)


def test_every_production_setting_is_in_every_reelrec_service(
    compose: dict[str, Any], production: Settings
) -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - {"home", "profile", "extra"}
    assert fields == set(FIELD_ENV), "a new setting: add it to FIELD_ENV and to docker/compose.yml"
    from reelrec.spark_cluster import connect_url

    expected = {
        "REELREC_PROFILE": "production",
        **{env: in_compose(str(getattr(production, name))) for name, env in FIELD_ENV.items()},
        # Production settings leave the Connect URL to the stack that starts the server.
        "REELREC_SPARK_REMOTE": in_compose(connect_url()),
        # The empty default means SQLite; production names its Postgres database.
        "REELREC_AIRFLOW_DB_URL": in_compose(production.airflow_db),
    }
    assert (
        expected["REELREC_AIRFLOW_DB_URL"] == "postgresql+psycopg2://postgres@postgres:5432/reelrec_airflow"
    )
    assert expected["SPARK_MASTER"] == "spark://spark-master:7077"
    for name, service in compose["services"].items():
        if name in EXTERNAL:
            continue
        env = {key: str(value) for key, value in service["environment"].items()}
        assert {key: env.get(key) for key in expected} == expected, name


def test_airflow_is_configured_from_the_same_settings(compose: dict[str, Any], production: Settings) -> None:
    from reelrec.airflow_local import airflow_env

    derived = airflow_env(production)
    keys = (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CORE__LOAD_EXAMPLES",
    )
    expected = {key: in_compose(derived[key]) for key in keys}
    assert expected["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        env = compose["services"][name]["environment"]
        assert {key: env.get(key) for key in keys} == expected, name
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/reelrec/dags"
    worker = compose["services"]["celery-worker"]
    assert worker["command"][:3] == ["airflow", "celery", "worker"]
    assert {"redis", "airflow-init"} <= set(worker["depends_on"])  # the broker and a migrated database


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    published = {name: s.get("ports", []) for name, s in compose["services"].items()}
    assert all(str(p).startswith("127.0.0.1:") for ports in published.values() for p in ports), published
    assert "127.0.0.1:8080:8080" in published["airflow-api-server"]
    assert "127.0.0.1:7077:7077" in published["spark-master"]
    assert "127.0.0.1:15002:15002" in published["spark-connect"]


def test_the_spark_daemons_come_from_the_pyspark_install_of_the_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["spark-master"]["command"][:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    assert services["spark-worker"]["command"][:2] == ["spark-class", "org.apache.spark.deploy.worker.Worker"]
    assert services["spark-worker"]["command"][-1] == "spark://spark-master:7077"
    connect = " ".join(services["spark-connect"]["command"])
    assert "org.apache.spark.sql.connect.service.SparkConnectServer" in connect
    assert (
        "--master spark://spark-master:7077" in connect and "spark.connect.grpc.binding.port=15002" in connect
    )
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "ENV SPARK_HOME=/opt/reelrec/.venv/lib/python3.11/site-packages/pyspark" in dockerfile
    assert "$SPARK_HOME/bin" in dockerfile and "openjdk-17-jre-headless" in dockerfile
    for package in ("reelrec", "spark_jobs", "feature_repo", "models", "synthetic_world", "dags"):
        assert f"COPY {package} {package}" in dockerfile, package
    init = (DOCKER / "postgres-init.sql").read_text()
    assert "CREATE DATABASE reelrec_airflow" in init
