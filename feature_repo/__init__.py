"""reelrec's Feast repository: definitions by kind, store config templates, and the repo's operations.

Definitions: ``entities``, ``data_sources``, ``feature_views``, ``feature_services`` (read by the Feast CLI
through ``feast_cli``). Operations on a store: ``store_config`` (render ``feature_store.yaml``),
``registry`` (apply, teardown) and ``materialize`` (one date of a view group into the online store).
"""
