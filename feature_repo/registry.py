"""Register this repo's definitions in a Feast store, and take them out again.

:func:`apply` is what the nightly DAG's ``feast_apply`` task calls (``feature_repo.registry:apply``);
from the shell it is ``python -m feature_repo.registry [--home H]``, which prints the same facts
as JSON. The repo is the source of truth for its Feast project, like ``feast apply``: objects that
left ``feature_repo/`` are deleted from the registry.

Feast is imported inside the functions: importing this module stays cheap for the DAG.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import Any

from feature_repo.store_config import open_store
from reelrec.settings import Settings


def repo_objects(settings: Settings) -> list[Any]:
    """Every object of ``feature_repo/``, with sources pointing at ``settings``' lake.

    The module-level objects in ``feature_repo`` read their paths from the environment at
    import time; here the views are rebuilt over :func:`feature_repo.data_sources.delta_source`
    for ``settings``, so one process can apply several homes. Services reference views by name.
    """
    from feature_repo.data_sources import delta_source
    from feature_repo.entities import ENTITIES
    from feature_repo.feature_services import FEATURE_SERVICES
    from feature_repo.feature_views import VIEW_BUILDERS

    sources = [delta_source(table, settings) for table in VIEW_BUILDERS]
    views = [build(delta_source(table, settings)) for table, build in VIEW_BUILDERS.items()]
    return [*ENTITIES, *sources, *views, *FEATURE_SERVICES]


def apply(settings: Settings) -> dict[str, Any]:
    """Register the feature repo in the store's registry and create online tables (idempotent).

    Renders the store config first (:func:`feature_repo.store_config.render_config`). Like
    ``feast apply``, the repo is the source of truth for its project: entities, sources, views and
    services registered earlier but no longer in ``feature_repo/`` are deleted (with the online
    tables of deleted views).

    Returns:
        ``{"project", "feast_env", "entities", "feature_views", "feature_services", "deleted",
        "seconds"}`` (names as lists).
    """
    from feast import Entity, FeatureService, FeatureView

    started = time.perf_counter()
    store = open_store(settings)
    objects = repo_objects(settings)
    wanted = {(type(o).__name__, o.name) for o in objects}
    registered: list[Any] = [
        *store.list_entities(),
        *store.list_data_sources(),
        *store.list_feature_views(),
        *store.list_feature_services(),
    ]
    stale = [o for o in registered if (type(o).__name__, o.name) not in wanted]
    with contextlib.redirect_stdout(sys.stderr):
        store.apply(objects, objects_to_delete=stale, partial=not stale)

    def names(kind: type[Any]) -> list[str]:
        return sorted(str(o.name) for o in objects if type(o) is kind)

    return {
        "project": store.project,
        "feast_env": settings.feast_env,
        "entities": names(Entity),
        "feature_views": names(FeatureView),
        "feature_services": names(FeatureService),
        "deleted": sorted(f"{type(o).__name__}:{o.name}" for o in stale),
        "seconds": round(time.perf_counter() - started, 3),
    }


def teardown(settings: Settings) -> dict[str, Any]:
    """Remove this project's online values and registry entries; other projects are untouched.

    ``FeatureStore.teardown`` deletes *every* project of a shared registry, so it is never used.
    Local files (the embedded registry and SQLite database) stay; delete ``settings.feast`` to
    drop them.

    Returns:
        ``{"project", "feature_views", "entities"}``: what was torn down.
    """
    store = open_store(settings)
    views = store.list_feature_views()
    entities = store.list_entities()
    store._get_provider().teardown_infra(store.project, views, entities)
    registry = store.registry
    if any(p.name == store.project for p in store.list_projects()):
        registry.delete_project(store.project)
    engine = getattr(registry, "write_engine", None)
    if engine is not None:  # SQL registry: Feast's delete_project leaves the view version history
        from feast.infra.registry.sql import feature_view_version_history as history
        from sqlalchemy import delete

        with engine.begin() as conn:
            conn.execute(delete(history).where(history.c.project_id == store.project))
    return {
        "project": store.project,
        "feature_views": sorted(v.name for v in views),
        "entities": sorted(e.name for e in entities),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m feature_repo.registry [--home H]``: apply the repo and print the facts as JSON."""
    parser = argparse.ArgumentParser(description="Register feature_repo/ in the Feast store (feast apply).")
    parser.add_argument("--home", default=None, help="REELREC_HOME (default: env or ./.reelrec)")
    args = parser.parse_args(argv)
    json.dump(apply(Settings.from_env(args.home)), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
