"""Rendering the Feast store config from ``feature_repo/``'s templates, and the core opening it."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from feature_repo.store_config import main, render_config
from reelrec import feast_store
from reelrec.settings import Settings


def test_render_config_embedded_uses_absolute_paths_under_feast_home(settings: Settings) -> None:
    path = render_config(settings)
    config = yaml.safe_load(path.read_text())
    assert path == settings.feast / "feature_store.yaml"
    assert config["registry"]["path"] == str(settings.feast / "registry.db")
    assert config["online_store"] == {"type": "sqlite", "path": str(settings.feast / "online_store.db")}
    assert config["offline_store"]["type"] == "duckdb"
    assert config["project"] == "reelrec"


def test_render_config_production_takes_endpoints_from_settings(settings: Settings) -> None:
    prod = dataclasses.replace(
        settings,
        feast_env="production",
        redis_url="redis.internal:6380,db=2",
        registry_url="postgresql+psycopg://feast@pg.internal:5432/feast",
        extra={"feast_project": "reelrec_staging"},
    )
    config = yaml.safe_load(render_config(prod).read_text())
    assert config["project"] == "reelrec_staging"
    assert config["online_store"] == {"type": "redis", "connection_string": "redis.internal:6380,db=2"}
    assert config["registry"]["registry_type"] == "sql"
    assert config["registry"]["path"] == "postgresql+psycopg://feast@pg.internal:5432/feast"
    assert config["offline_store"]["type"] == "duckdb"


def test_render_config_rejects_unknown_env_and_bad_project(settings: Settings) -> None:
    with pytest.raises(ValueError, match="REELREC_FEAST_ENV='cloud'"):
        render_config(dataclasses.replace(settings, feast_env="cloud"))
    with pytest.raises(ValueError, match="project name 'bad-name'"):
        render_config(dataclasses.replace(settings, extra={"feast_project": "bad-name"}))


@pytest.mark.feast
def test_the_core_opens_only_a_rendered_config_and_names_the_command(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    config = settings.feast / "feature_store.yaml"
    with pytest.raises(
        FileNotFoundError,
        match=rf"no Feast store config at {re.escape(str(config))}; .*feature_repo\.store_config",
    ):
        feast_store.get_store(settings)
    assert main(["--home", str(settings.home)]) == 0
    assert capsys.readouterr().out.strip() == str(config)
    store = feast_store.get_store(settings)
    assert store.project == "reelrec" and store.config.online_store.type == "sqlite"
