"""The Spark processes of a reelrec stack, described as :class:`~reelrec.services.Component` s.

Every Spark job of a night talks to one long-lived Spark Connect server instead of starting a JVM of
its own (``REELREC_SPARK_REMOTE=sc://127.0.0.1:15002``, see :func:`reelrec.spark.get_spark`):

- embedded profile (``SPARK_MASTER=local[2]``): ``spark-connect`` only, a Connect server running
  Spark in local mode;
- production profile (``SPARK_MASTER=spark://127.0.0.1:7077``): a standalone cluster,
  ``spark-master`` and one ``spark-worker``, and ``spark-connect`` submitted to that master, so the
  jobs run as one application on the cluster (listed in the master's JSON status, ``/json``).

Everything runs from the pyspark install of this interpreter's environment (``bin/spark-class``,
``bin/spark-submit``, the Connect server jar in ``jars/``), binds to 127.0.0.1 only and keeps its
scratch and work folders under ``settings.services / "spark"``. This module only describes the
processes; :mod:`reelrec.services` starts and stops them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from reelrec.services.component import Component
from reelrec.settings import Settings
from reelrec.spark import driver_conf

HOST = "127.0.0.1"
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
CONNECT_APP_NAME = "reelrec-spark-connect"
# The one worker of this machine (2 cores, 24 GB): both cores, and memory for one executor of the
# Connect application (its driver, the master and the worker daemons live beside it).
WORKER_CORES = 2
WORKER_MEMORY = "4g"
EXECUTOR_MEMORY = "3g"
DAEMON_MEMORY = "512m"  # master and worker daemons (Spark's default is 1g each)


@dataclass(frozen=True)
class SparkPorts:
    """TCP ports of the Spark components, all on 127.0.0.1 (the master's comes from ``spark_master``).

    Attributes:
        master_ui: the standalone master's web UI; its JSON status is ``http://127.0.0.1:<port>/json``.
        worker_ui: the worker's web UI.
        connect: the Spark Connect server's gRPC port (``sc://127.0.0.1:<port>``).

    Defaults 8081, 8082 and 15002, or ``REELREC_SPARK_MASTER_UI_PORT``, ``REELREC_SPARK_WORKER_UI_PORT``
    and ``REELREC_SPARK_CONNECT_PORT`` (the standalone master's own port is in ``SPARK_MASTER``).
    """

    master_ui: int = field(default_factory=lambda: _port("REELREC_SPARK_MASTER_UI_PORT", 8081))
    worker_ui: int = field(default_factory=lambda: _port("REELREC_SPARK_WORKER_UI_PORT", 8082))
    connect: int = field(default_factory=lambda: _port("REELREC_SPARK_CONNECT_PORT", 15002))


def _port(variable: str, default: int) -> int:
    """A port from the environment (two homes' stacks on one machine), or its default."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{variable}={value!r} is not a TCP port (1-65535)")
    return int(value)


def connect_url(ports: SparkPorts | None = None) -> str:
    """``sc://`` URL of the Connect server the components start (the value of ``REELREC_SPARK_REMOTE``)."""
    return f"sc://{HOST}:{(ports or SparkPorts()).connect}"


def standalone_master_port(settings: Settings) -> int | None:
    """Port of the standalone master to start here: set when ``spark_master`` is ``spark://127.0.0.1:N``.

    ``None`` for ``local[...]`` masters and for clusters elsewhere (nothing to start for them).
    """
    url = urlparse(settings.spark_master)
    if url.scheme != "spark" or url.hostname not in (HOST, "localhost"):
        return None
    return url.port or 7077


def spark_home() -> Path:
    """The pyspark install (``SPARK_HOME``) of this interpreter: ``bin/``, ``jars/``.

    Raises:
        ModuleNotFoundError: when pyspark is not installed.
    """
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("pyspark is not installed in this environment")
    return Path(spec.origin).parent


def java_home() -> str:
    """``JAVA_HOME``: the variable when set, else the JDK of the ``java`` on ``PATH`` (``""`` if none)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return str(Path(java).resolve().parent.parent) if java else ""


def connect_jar(home: Path | None = None) -> Path:
    """The Spark Connect server jar shipped in pyspark's ``jars/`` (``spark-connect_2.13-<version>.jar``).

    Raises:
        FileNotFoundError: when the install has no such jar.
    """
    jars = sorted(((home or spark_home()) / "jars").glob("spark-connect_*.jar"))
    if not jars:
        raise FileNotFoundError(f"no spark-connect_*.jar under {(home or spark_home()) / 'jars'}")
    return jars[-1]


def spark_env(settings: Settings) -> dict[str, str]:
    """Variables every Spark component runs with: its install, JDK, loopback address and scratch space."""
    work = settings.services / "spark"
    return {
        "SPARK_HOME": str(spark_home()),
        "JAVA_HOME": java_home(),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOCAL_DIRS": str(work / "local"),
        "SPARK_LOG_DIR": str(work / "logs"),
        "SPARK_WORKER_DIR": str(work / "work"),
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
        # Python workers (if any) run this interpreter, the venv's.
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        "PYARROW_IGNORE_TIMEZONE": "1",
    }


def _conf_args(conf: dict[str, str]) -> list[str]:
    return [arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]


def connect_component(settings: Settings, ports: SparkPorts | None = None) -> Component:
    """``spark-connect``: a Spark Connect server on ``settings.spark_master``, gRPC on 127.0.0.1."""
    ports = ports or SparkPorts()
    home = spark_home()
    conf = {
        **driver_conf(settings),
        "spark.connect.grpc.binding.address": HOST,
        "spark.connect.grpc.binding.port": str(ports.connect),
    }
    after: tuple[str, ...] = ()
    if standalone_master_port(settings) is not None:
        # One executor taking the worker's cores: the jobs share it, one long-lived application.
        conf |= {
            "spark.executor.memory": EXECUTOR_MEMORY,
            "spark.executor.cores": str(WORKER_CORES),
            "spark.cores.max": str(WORKER_CORES),
        }
        after = ("spark-master", "spark-worker")
    argv = [
        str(home / "bin" / "spark-submit"),
        "--class",
        CONNECT_SERVER_CLASS,
        "--name",
        CONNECT_APP_NAME,
        "--master",
        settings.spark_master,
        *_conf_args(conf),
        str(connect_jar(home)),
    ]
    # Spark's launcher sizes a Connect server's heap (it is the driver of every job) like a daemon's,
    # from SPARK_DAEMON_MEMORY, not from spark.driver.memory: the default 512m ran out of heap
    # collecting one `medium` day of events (TaskResultLost, OutOfMemoryError).
    env = {**spark_env(settings), "SPARK_DAEMON_MEMORY": settings.spark_driver_memory}
    return Component(
        name="spark-connect",
        argv=tuple(argv),
        env=env,
        ports=(ports.connect,),
        start_timeout_s=120.0,
        after=after,
    )


def master_component(settings: Settings, port: int, ports: SparkPorts | None = None) -> Component:
    """``spark-master``: the standalone master on 127.0.0.1:``port``, web UI (and ``/json``) beside it."""
    ports = ports or SparkPorts()
    argv = (
        str(spark_home() / "bin" / "spark-class"),
        MASTER_CLASS,
        "--host",
        HOST,
        "--port",
        str(port),
        "--webui-port",
        str(ports.master_ui),
    )
    return Component(
        name="spark-master",
        argv=argv,
        env=spark_env(settings),
        ports=(port, ports.master_ui),
        ready_url=f"http://{HOST}:{ports.master_ui}/json",
    )


def worker_component(settings: Settings, port: int, ports: SparkPorts | None = None) -> Component:
    """``spark-worker``: one worker with this machine's cores, registered with the master on ``port``."""
    ports = ports or SparkPorts()
    argv = (
        str(spark_home() / "bin" / "spark-class"),
        WORKER_CLASS,
        "--host",
        HOST,
        "--webui-port",
        str(ports.worker_ui),
        "--cores",
        str(WORKER_CORES),
        "--memory",
        WORKER_MEMORY,
        "--work-dir",
        str(settings.services / "spark" / "work"),
        f"spark://{HOST}:{port}",
    )
    return Component(
        name="spark-worker",
        argv=argv,
        env=spark_env(settings),
        ports=(ports.worker_ui,),
        ready_url=f"http://{HOST}:{ports.worker_ui}/json",
        after=("spark-master",),
    )


def spark_components(settings: Settings, ports: SparkPorts | None = None) -> list[Component]:
    """The Spark processes of ``settings``' stack, in start order.

    ``spark-connect`` alone when ``spark_master`` is ``local[...]`` (embedded) or a cluster elsewhere;
    ``spark-master``, ``spark-worker`` and ``spark-connect`` when it is ``spark://127.0.0.1:N``
    (production), the Connect server then running its executors on that worker.
    """
    port = standalone_master_port(settings)
    cluster = (
        []
        if port is None
        else [master_component(settings, port, ports), worker_component(settings, port, ports)]
    )
    return [*cluster, connect_component(settings, ports)]
