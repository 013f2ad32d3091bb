"""The external engines a production stack needs and never starts: Postgres and Redis.

They are checked (answering) before the stack starts, and the Airflow metadata database is created
in Postgres when missing.
"""

from __future__ import annotations

from urllib.parse import urlparse

from reelrec.services.process import ServiceError
from reelrec.settings import Settings


def check_engines(settings: Settings) -> None:
    """In the production profile: Postgres and Redis answer, and the Airflow database exists (created
    when missing).

    Raises:
        ServiceError: naming the engine and its address when one does not answer.
    """
    if settings.profile != "production":
        return
    _check_redis(settings.redis_url, "Feast online store")
    _check_redis(settings.celery_broker_url, "Celery broker")
    if settings.airflow_db.startswith("postgresql"):
        create_database(settings.airflow_db)


def _check_redis(address: str, role: str) -> None:
    """Ping Redis at ``address``: a ``redis://`` URL or Feast's ``host:port[,db=N,...]`` string."""
    import redis

    try:
        if "://" in address:
            client = redis.Redis.from_url(address, socket_connect_timeout=3)
        else:
            host_port, *options = address.split(",")
            host, _, port = host_port.partition(":")
            extra = dict(option.split("=", 1) for option in options if "=" in option)
            client = redis.Redis(
                host=host, port=int(port or 6379), db=int(extra.get("db", 0)), socket_connect_timeout=3
            )
        client.ping()
    except redis.RedisError as err:
        raise ServiceError(f"Redis ({role}) at {address} does not answer: {err}") from err


def create_database(url: str) -> bool:
    """Create the Postgres database named in SQLAlchemy ``url`` if it does not exist (idempotent).

    Returns:
        Whether it was created now.

    Raises:
        ServiceError: when the server does not answer.
    """
    import psycopg2

    parsed = urlparse(url.replace("postgresql+psycopg2://", "postgresql://"))
    name = parsed.path.lstrip("/")
    server = f"{parsed.hostname}:{parsed.port or 5432}"
    try:
        conn = psycopg2.connect(
            host=parsed.hostname,
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password,
            dbname="postgres",
            connect_timeout=5,
        )
    except psycopg2.OperationalError as err:
        raise ServiceError(f"Postgres at {server} does not answer: {err}") from err
    conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone():
                return False
            cursor.execute(f'CREATE DATABASE "{name}"')
            return True
    finally:
        conn.close()


def drop_database(url: str) -> None:
    """Drop the Postgres database named in ``url`` if it exists (tests clean up their own)."""
    import psycopg2

    parsed = urlparse(url.replace("postgresql+psycopg2://", "postgresql://"))
    conn = psycopg2.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        dbname="postgres",
        connect_timeout=5,
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')
    finally:
        conn.close()
