"""Entry point for the Feast CLI, which reads the repo through this file only (see .feastignore).

The pipeline applies the repo with :func:`feature_repo.registry.apply`; this file lets a data
engineer use Feast's own tools on the same definitions, e.g.::

    python -m feature_repo.store_config    # renders $REELREC_HOME/feast/feature_store.yaml
    feast -c feature_repo -f "$REELREC_HOME/feast/feature_store.yaml" plan
"""

from feature_repo.data_sources import (  # noqa: F401
    candidates_source,
    creator_features_source,
    user_embeddings_source,
    user_features_source,
    video_content_source,
    video_embeddings_source,
    video_features_source,
)
from feature_repo.entities import creator, user, video  # noqa: F401
from feature_repo.feature_services import (  # noqa: F401
    creator_insights_v1,
    embeddings_v1,
    ranker_v1,
    recommendations_v1,
    two_tower_v1,
)
from feature_repo.feature_views import (  # noqa: F401
    creator_daily_audience_fv,
    user_daily_candidates_fv,
    user_daily_embedding_fv,
    user_daily_engagement_fv,
    video_daily_embedding_fv,
    video_daily_performance_fv,
    video_static_content_fv,
)
