"""GX's Data Docs page views, with their Jinja templates compiled once per process.

GX makes a new Jinja environment for every view of every site build, so each build compiles its
~50 templates again: about half the time of rebuilding the site after a suite. These subclasses of
GX's own views (named in the site config of :mod:`reelrec.validation.data_docs`, the extension
point GX documents for custom views) share one in-memory Jinja bytecode cache; the pages they
render are GX's, byte for byte.

This module imports ``great_expectations`` at the top: only GX's site builder imports it, by name.
"""

from __future__ import annotations

from typing import Any

from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket


class _InMemoryBytecodeCache(BytecodeCache):
    """Compiled templates by Jinja's key (template name + source checksum), for this process."""

    def __init__(self) -> None:
        self._compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._compiled.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._compiled[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = _InMemoryBytecodeCache()


class CachedPageView(DefaultJinjaPageView):
    """GX's page view (suite and validation pages) with the shared template cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = TEMPLATES


class CachedIndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view with the shared template cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = TEMPLATES
