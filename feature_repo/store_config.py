"""Render the Feast store config of a ``REELREC_HOME`` from this folder's templates.

``settings.feast_env`` picks the template ``feature_store.<env>.yaml`` next to this file
(``embedded``: SQLite online store + file registry; ``production``: Redis + SQL registry on
PostgreSQL; the offline store is DuckDB over the Delta tables in both). The rendered file lies at
``$REELREC_HOME/feast/feature_store.yaml`` (:func:`reelrec.feast_store.config_path`), with absolute
paths, where :func:`reelrec.feast_store.get_store` and the Feast CLI (``feast -c $REELREC_HOME/feast
serve``) read it. :func:`feature_repo.registry.apply` renders it on every apply; a host that only
serves renders it with ``python -m feature_repo.store_config [--home H]``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from reelrec.feast_store import config_path, get_store
from reelrec.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore

DEFAULT_PROJECT = "reelrec"
FEAST_ENVS = ("embedded", "production")
_PROJECT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TEMPLATE_VAR = re.compile(r"\$\{([A-Z_]+)\}")


def repo_dir() -> Path:
    """The ``feature_repo/`` folder holding the definitions and config templates."""
    return Path(__file__).resolve().parent


def project_name(settings: Settings) -> str:
    """Feast project of ``settings``: ``settings.extra["feast_project"]``, default ``reelrec``.

    Raises:
        ValueError: when the name is not a letter followed by letters, digits or underscores.
    """
    name = settings.extra.get("feast_project", DEFAULT_PROJECT)
    if not _PROJECT_RE.match(name):
        raise ValueError(
            f"Feast project name {name!r} (settings.extra['feast_project']) must start with a letter "
            "and contain only letters, digits and underscores"
        )
    return name


def _yaml_str(value: str) -> str:
    # Templates put every variable inside a double-quoted YAML scalar.
    return value.replace("\\", "\\\\").replace('"', '\\"')


def render_config(settings: Settings) -> Path:
    """Write ``feature_store.yaml`` for ``settings.feast_env`` into ``settings.feast``.

    The template ``feature_repo/feature_store.<env>.yaml`` is filled from ``settings`` (absolute
    registry and online-store paths under ``REELREC_HOME/feast``, Redis and registry URLs, the
    project name). The file is only rewritten when its content changes.

    Returns:
        Path of the rendered file.

    Raises:
        ValueError: for an unknown ``feast_env`` or a template variable that settings do not fill.
    """
    if settings.feast_env not in FEAST_ENVS:
        raise ValueError(f"REELREC_FEAST_ENV={settings.feast_env!r} is not one of {list(FEAST_ENVS)}")
    template = repo_dir() / f"feature_store.{settings.feast_env}.yaml"
    values = {
        "REELREC_FEAST_PROJECT": project_name(settings),
        "REELREC_FEAST_DIR": str(settings.feast),
        "REELREC_HOME": str(settings.home),
        "REELREC_REDIS_URL": settings.redis_url,
        "REELREC_REGISTRY_URL": settings.registry_url,
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"{template}: unknown variable ${{{name}}}; known: {sorted(values)}")
        return _yaml_str(values[name])

    text = _TEMPLATE_VAR.sub(fill, template.read_text())
    settings.feast.mkdir(parents=True, exist_ok=True)
    target = config_path(settings)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target


def open_store(settings: Settings) -> FeatureStore:
    """Render the config of ``settings`` (:func:`render_config`) and open its ``FeatureStore``.

    The repo's own operations (apply, materialize, teardown) open the store this way, so each
    of them runs alone on a fresh ``REELREC_HOME`` and follows a change of settings at once.
    """
    render_config(settings)
    return get_store(settings)


def main(argv: list[str] | None = None) -> int:
    """``python -m feature_repo.store_config [--home H]``: render the config and print its path."""
    parser = argparse.ArgumentParser(description="Render $REELREC_HOME/feast/feature_store.yaml.")
    parser.add_argument("--home", default=None, help="REELREC_HOME (default: env or ./.reelrec)")
    args = parser.parse_args(argv)
    print(render_config(Settings.from_env(args.home)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
