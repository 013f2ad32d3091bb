"""Feast feature services: one versioned contract per consumer.

A model reads its features through its service only, so adding a feature to a view never changes
what a trained model sees; a new model version gets a new service (``two_tower_v2``) and the old
one keeps serving until it is rolled back or retired.
"""

from __future__ import annotations

from feast import FeatureService

from feature_repo.data_sources import OWNER
from feature_repo.feature_views import (
    creator_daily_audience_fv,
    user_daily_candidates_fv,
    user_daily_embedding_fv,
    user_daily_engagement_fv,
    video_daily_embedding_fv,
    video_daily_performance_fv,
    video_static_content_fv,
)
from reelrec.catalog import CREATOR_ID, FRAME_EMBEDDING, TEXT_EMBEDDING

two_tower_v1 = FeatureService(
    name="two_tower_v1",
    features=[
        user_daily_engagement_fv,
        video_daily_performance_fv,
        video_static_content_fv[[CREATOR_ID, TEXT_EMBEDDING, FRAME_EMBEDDING]],
    ],
    description="Inputs of the two-tower retrieval model v1: user engagement (user tower), video "
    "performance and content embeddings (video tower).",
    owner=OWNER,
    tags={"consumer": "models.two_tower", "version": "1"},
)

ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[user_daily_engagement_fv, video_daily_performance_fv, creator_daily_audience_fv],
    description="Inputs of the multi-task ranker v1: user engagement, video performance and creator "
    "audience, joined per (user, video, creator) at the impression.",
    owner=OWNER,
    tags={"consumer": "models.ranker", "version": "1"},
)

creator_insights_v1 = FeatureService(
    name="creator_insights_v1",
    features=[creator_daily_audience_fv],
    description="Creator audience dashboard and creator-level ranking signals, v1.",
    owner=OWNER,
    tags={"consumer": "creator_insights", "version": "1"},
)

recommendations_v1 = FeatureService(
    name="recommendations_v1",
    features=[user_daily_candidates_fv],
    description="What a feed service reads per user: the night's candidate list, its scores, the "
    "model version and when it was generated.",
    owner=OWNER,
    tags={"consumer": "feed_service", "version": "1"},
)

embeddings_v1 = FeatureService(
    name="embeddings_v1",
    features=[user_daily_embedding_fv, video_daily_embedding_fv],
    description="Two-tower user and video embeddings for online nearest-neighbour services.",
    owner=OWNER,
    tags={"consumer": "ann_service", "version": "1"},
)

FEATURE_SERVICES = [two_tower_v1, ranker_v1, creator_insights_v1, recommendations_v1, embeddings_v1]
