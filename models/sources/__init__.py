"""Candidate sources of the multi-stage recommender: each proposes videos per user, ``merge`` unites them.

Sources (module ``NAME`` and ``retrieve(night, k)``): ``two_tower``, ``covisit``, ``trending``,
``followed``, ``fresh_content``, ``ease``. A :class:`~models.sources.base.Night` (built by
:func:`models.sources.night.build_night`) holds what they read; :func:`models.sources.merge.retrieve_all`
runs them all and merges their lists with provenance.
"""
