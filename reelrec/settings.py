"""Where reelrec keeps its state and which engines it talks to.

Everything is read from environment variables so that switching from the embedded default
(Spark local, Delta on disk, SQLite) to the production path (Spark cluster, Celery, Redis, Postgres)
is configuration, never a code fork. ``REELREC_PROFILE`` picks the defaults of every engine at once;
each variable below still overrides its own default.

Variables (default in the embedded profile; in the production profile where it differs):

- ``REELREC_PROFILE``: ``embedded`` (default) or ``production``.
- ``REELREC_HOME`` (``./.reelrec``): root of all state: landing/, lake/, feast/, models/, runs/,
  airflow/, services/.
- ``SPARK_MASTER`` (``local[2]``; production ``spark://127.0.0.1:7077``): master of in-process
  Spark sessions and of the Spark Connect server.
- ``REELREC_SPARK_REMOTE`` (unset): ``sc://host:port`` of a Spark Connect server; jobs then use it
  instead of starting a JVM of their own (the Airflow components started by reelrec set it).
- ``REELREC_SPARK_DRIVER_MEMORY`` (``2g``): driver memory of local Spark.
- ``REELREC_FEAST_ENV`` (``embedded``; production ``production``): SQLite online store and file
  registry, or Redis online store and SQL registry.
- ``REELREC_REDIS_URL`` (``127.0.0.1:6379``): Redis online store of production Feast.
- ``REELREC_REGISTRY_URL`` (``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``): Feast SQL
  registry.
- ``REELREC_AIRFLOW_DB_URL`` (SQLite under ``REELREC_HOME/airflow``; production
  ``postgresql+psycopg2://postgres@127.0.0.1:5432/reelrec_airflow``): Airflow metadata database.
- ``REELREC_AIRFLOW_EXECUTOR`` (``LocalExecutor``; production ``CeleryExecutor``).
- ``REELREC_CELERY_BROKER_URL`` (``redis://127.0.0.1:6379/1``): Celery broker (production).
- ``REELREC_UI_PORT`` (``8080``): Airflow API server and UI, on 127.0.0.1.
- ``REELREC_SPARK_CONNECT_PORT`` (``15002``), ``REELREC_SPARK_MASTER_UI_PORT`` (``8081``),
  ``REELREC_SPARK_WORKER_UI_PORT`` (``8082``): the Spark components' ports (read by
  :class:`reelrec.spark_cluster.SparkPorts`); with ``REELREC_UI_PORT`` they let two homes' stacks run
  side by side on one machine.
- ``REELREC_SCORING_ENGINE`` (``local``; production ``auto``): where exact top-k scoring runs:
  ``local`` (one process), ``spark`` (a Spark job partitioned by users) or ``auto`` (Spark from
  ``REELREC_SPARK_SCORING_MIN_USERS`` users on).
- ``REELREC_SPARK_SCORING_MIN_USERS`` (``200000``): the user count from which ``auto`` scores on Spark.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOME = ".reelrec"
PROFILES = ("embedded", "production")
SCORING_ENGINES = ("local", "spark", "auto")
# Per profile, the defaults that differ (everything else is the same in both).
_PROFILE_DEFAULTS: dict[str, dict[str, str]] = {
    "embedded": {
        "spark_master": "local[2]",
        "feast_env": "embedded",
        "airflow_executor": "LocalExecutor",
    },
    "production": {
        "spark_master": "spark://127.0.0.1:7077",
        "feast_env": "production",
        "airflow_executor": "CeleryExecutor",
        "scoring_engine": "auto",
        "airflow_db_url": "postgresql+psycopg2://postgres@127.0.0.1:5432/reelrec_airflow",
    },
}


@dataclass(frozen=True)
class Settings:
    """Resolved locations and engine endpoints for one process."""

    home: Path
    profile: str = "embedded"
    spark_master: str = "local[2]"
    spark_remote: str = ""  # sc://host:port of a Spark Connect server; empty: in-process Spark
    spark_driver_memory: str = "2g"
    feast_env: str = "embedded"
    redis_url: str = "127.0.0.1:6379"
    registry_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    airflow_db_url: str = ""  # empty: SQLite under airflow_home (see airflow_db)
    airflow_executor: str = "LocalExecutor"
    celery_broker_url: str = "redis://127.0.0.1:6379/1"
    ui_port: int = 8080
    scoring_engine: str = "local"  # local | spark | auto (see models.spark_scoring.use_spark)
    spark_scoring_min_users: int = 200_000  # auto: users from which scoring runs on Spark
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> Settings:
        """Build settings from the environment; ``home`` overrides ``REELREC_HOME``.

        Raises:
            ValueError: when ``REELREC_PROFILE`` is not one of :data:`PROFILES` or
                ``REELREC_SCORING_ENGINE`` not one of :data:`SCORING_ENGINES`.
        """
        root = Path(home or os.environ.get("REELREC_HOME", DEFAULT_HOME)).expanduser().resolve()
        profile = os.environ.get("REELREC_PROFILE", "embedded") or "embedded"
        if profile not in PROFILES:
            raise ValueError(f"REELREC_PROFILE={profile!r} is not one of {list(PROFILES)}")
        defaults = _PROFILE_DEFAULTS[profile]

        def env(name: str, key: str, fallback: str) -> str:
            return os.environ.get(name) or defaults.get(key, fallback)

        scoring_engine = env("REELREC_SCORING_ENGINE", "scoring_engine", "local")
        if scoring_engine not in SCORING_ENGINES:
            raise ValueError(f"REELREC_SCORING_ENGINE={scoring_engine!r} not one of {list(SCORING_ENGINES)}")

        return cls(
            home=root,
            profile=profile,
            spark_master=env("SPARK_MASTER", "spark_master", "local[2]"),
            spark_remote=env("REELREC_SPARK_REMOTE", "spark_remote", ""),
            spark_driver_memory=env("REELREC_SPARK_DRIVER_MEMORY", "spark_driver_memory", "2g"),
            feast_env=env("REELREC_FEAST_ENV", "feast_env", "embedded"),
            redis_url=env("REELREC_REDIS_URL", "redis_url", "127.0.0.1:6379"),
            registry_url=env(
                "REELREC_REGISTRY_URL",
                "registry_url",
                "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
            ),
            airflow_db_url=env("REELREC_AIRFLOW_DB_URL", "airflow_db_url", ""),
            airflow_executor=env("REELREC_AIRFLOW_EXECUTOR", "airflow_executor", "LocalExecutor"),
            celery_broker_url=env(
                "REELREC_CELERY_BROKER_URL", "celery_broker_url", "redis://127.0.0.1:6379/1"
            ),
            ui_port=int(env("REELREC_UI_PORT", "ui_port", "8080")),
            scoring_engine=scoring_engine,
            spark_scoring_min_users=int(
                env("REELREC_SPARK_SCORING_MIN_USERS", "spark_scoring_min_users", "200000")
            ),
        )

    @property
    def airflow_db(self) -> str:
        """SQLAlchemy URL of Airflow's metadata database (SQLite under ``airflow_home`` by default)."""
        return self.airflow_db_url or f"sqlite:///{self.airflow_home / 'airflow.db'}"

    @property
    def services(self) -> Path:
        """Pid files and logs of the processes ``reelrec services up`` starts."""
        return self.home / "services"

    @property
    def landing(self) -> Path:
        """Raw daily drops, as an upstream app would deliver them."""
        return self.home / "landing"

    @property
    def truth(self) -> Path:
        """The synthetic generator's hidden truth; nothing in the pipeline reads it."""
        return self.home / "truth"

    @property
    def lake(self) -> Path:
        """Delta tables: bronze/, silver/, gold/."""
        return self.home / "lake"

    @property
    def feast(self) -> Path:
        """Feast registry, online store and rendered feature_store.yaml."""
        return self.home / "feast"

    @property
    def models(self) -> Path:
        """Versioned model artifacts."""
        return self.home / "models"

    @property
    def runs(self) -> Path:
        """Run manifests and validation reports, one folder per logical date."""
        return self.home / "runs"

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME for the embedded Airflow (SQLite metadata database)."""
        return self.home / "airflow"

    def run_dir(self, date: str) -> Path:
        """Folder holding the manifest and reports of logical date ``date``."""
        return self.runs / f"dt={date}"
