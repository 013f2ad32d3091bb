"""Where reelrec keeps its state and which engines it talks to.

Everything is read from environment variables so that switching from the embedded default
(Spark local, Delta on disk, SQLite) to the production path (Spark cluster, Redis, Postgres)
is configuration, never a code fork.

| variable | default | meaning |
|---|---|---|
| ``REELREC_HOME`` | ``./.reelrec`` | root of all state: landing/, lake/, feast/, models/, runs/, airflow/ |
| ``SPARK_MASTER`` | ``local[2]`` | Spark master URL (``spark://host:7077`` on a cluster) |
| ``REELREC_SPARK_DRIVER_MEMORY`` | ``2g`` | driver memory for local Spark |
| ``REELREC_FEAST_ENV`` | ``embedded`` | ``embedded`` (SQLite online, file registry) or ``production`` |
| ``REELREC_REDIS_URL`` | ``127.0.0.1:6379`` | Redis online store (production) |
| ``REELREC_REGISTRY_URL`` | ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres`` | Feast registry |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOME = ".reelrec"


@dataclass(frozen=True)
class Settings:
    """Resolved locations and engine endpoints for one process."""

    home: Path
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    feast_env: str = "embedded"
    redis_url: str = "127.0.0.1:6379"
    registry_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> Settings:
        """Build settings from the environment; ``home`` overrides ``REELREC_HOME``."""
        root = Path(home or os.environ.get("REELREC_HOME", DEFAULT_HOME)).expanduser().resolve()
        return cls(
            home=root,
            spark_master=os.environ.get("SPARK_MASTER", "local[2]"),
            spark_driver_memory=os.environ.get("REELREC_SPARK_DRIVER_MEMORY", "2g"),
            feast_env=os.environ.get("REELREC_FEAST_ENV", "embedded"),
            redis_url=os.environ.get("REELREC_REDIS_URL", "127.0.0.1:6379"),
            registry_url=os.environ.get(
                "REELREC_REGISTRY_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
            ),
        )

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
