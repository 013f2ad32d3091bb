"""The two towers, built from small named modules.

User tower: the user's daily engagement features plus a pooled view of the recent watch history
and of the recent positives (their learned video id embeddings, and the mean of their text
embeddings). ``user_history_encoder`` chooses how the id embeddings are pooled: ``"mean"`` (order
ignored) or ``"attention"`` (the ordered history, newest first, through learned position embeddings
and one self-attention layer, then pooled by a learned query: :class:`AttentionHistory`).

Video tower: a learned id embedding (rare and unseen videos share the "unknown" id, so fresh
uploads are embedded from content alone), the projected text and frame embeddings, a hashed creator
embedding and the video's performance and freshness features.

The user tower also learns an id embedding per user with training positives (others, and a share
of training rows, use the shared "unknown" user id so new users are served from features alone).

Both towers end in an L2 normalisation. The video tower also emits a bounded per-video bias
(``item_bias * tanh``) as an extra coordinate, matched by a constant 1 on the user side, so the
score ``u . v + bias(v)`` is still one dot product (ANN-searchable): a cosine alone cannot span the
range that popularity needs (measured: +0.01 to +0.03 recall@100 on the small world, mostly on the
most popular videos).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.two_tower.config import TwoTowerConfig
from reelrec.catalog import RECENT_HISTORY_LEN

PAD_ID = 0  # history padding
UNKNOWN_ID = 1  # videos outside the id vocabulary (fresh uploads, rare videos)


@dataclass
class UserInputs:
    """A batch of user-tower inputs."""

    numeric: Tensor  # (B, n_user_features) float32, standardised
    history_ids: Tensor  # (B, H) int64, PAD_ID-padded video id indices, newest first
    history_text: Tensor  # (B, 384) float32, mean text embedding of the history (0 if none)
    ids: Tensor | None = None  # (B,) int64 user id indices (UNKNOWN_ID: no own id); None: all unknown
    positive_ids: Tensor | None = None  # (B, H) int64, PAD_ID-padded: the user's recent positives
    positive_text: Tensor | None = None  # (B, 384) float32, their mean text embedding


@dataclass
class VideoInputs:
    """A batch of video-tower inputs."""

    ids: Tensor  # (B,) int64 video id indices (UNKNOWN_ID when outside the vocabulary)
    creator: Tensor  # (B,) int64 hashed creator bucket
    text: Tensor  # (B, 384) float32 text embedding
    frame: Tensor  # (B, 32) float32 frame embedding (0 when missing)
    numeric: Tensor  # (B, n_video_features) float32, standardised


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Two linear layers with a GELU and layer norm between them."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, out_dim)
    )


class VideoTower(nn.Module):
    """(VideoInputs) -> (B, embedding_dim) unit vectors."""

    def __init__(self, cfg: TwoTowerConfig, n_ids: int, n_numeric: int, text_dim: int, frame_dim: int):
        super().__init__()
        self.ids = nn.Embedding(n_ids, cfg.id_dim, padding_idx=PAD_ID)
        self.creators = nn.Embedding(cfg.creator_buckets, cfg.id_dim)
        self.text = nn.Linear(text_dim, cfg.content_dim)
        self.frame = nn.Linear(frame_dim, cfg.content_dim)
        in_dim = 2 * cfg.id_dim + 2 * cfg.content_dim + n_numeric
        self.head = mlp(in_dim, cfg.hidden_dim, cfg.embedding_dim)
        self.bias = mlp(in_dim, cfg.hidden_dim, 1) if cfg.item_bias > 0 else None
        self.bias_scale = cfg.item_bias

    def forward(self, x: VideoInputs) -> Tensor:
        """(B, embedding_dim) unit direction, plus a last column ``item_bias * tanh(bias)``."""
        parts = torch.cat(
            [self.ids(x.ids), self.creators(x.creator), self.text(x.text), self.frame(x.frame), x.numeric],
            dim=1,
        )
        direction = F.normalize(self.head(parts), dim=1)
        if self.bias is None:
            return direction
        return torch.cat([direction, self.bias_scale * torch.tanh(self.bias(parts))], dim=1)


def _mean_pool(embedding: nn.Embedding, ids: Tensor) -> Tensor:
    """(B, H) PAD_ID-padded ids -> (B, dim) mean of their embeddings (zeros for an empty row)."""
    if ids.shape[1] == 0:
        return torch.zeros(len(ids), embedding.embedding_dim)
    mask = (ids != PAD_ID).unsqueeze(-1).float()  # (B, H, 1)
    return (embedding(ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def _pool(encoder: AttentionHistory | None, embedding: nn.Embedding, ids: Tensor) -> Tensor:
    """(B, H) ids -> (B, dim) with ``encoder``, or the mean pool without one."""
    return _mean_pool(embedding, ids) if encoder is None else encoder(embedding, ids)


class AttentionHistory(nn.Module):
    """(B, H) PAD_ID-padded ids, newest first -> (B, dim): attention over the ordered history.

    Each video's id embedding plus a learned embedding of its position (0: newest) goes through one
    pre-norm self-attention layer (padding masked as keys); a learned query, the same for every user
    (target-free: the tower must not see the candidate), then weighs the positions into one vector.
    A row without history gives zeros, as the mean pool does. Positions start near zero and the query
    at zero, so an untrained encoder is close to a mean pool of the attended embeddings.
    """

    heads = 2

    def __init__(self, dim: int, max_len: int = RECENT_HISTORY_LEN):
        super().__init__()
        self.positions = nn.Embedding(max_len, dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.block = nn.TransformerEncoderLayer(
            dim, self.heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.query = nn.Parameter(torch.zeros(dim))
        self.max_len = max_len

    def forward(self, embedding: nn.Embedding, ids: Tensor) -> Tensor:
        ids = ids[:, : self.max_len]
        if ids.shape[1] == 0:
            return torch.zeros(len(ids), embedding.embedding_dim)
        padding = ids == PAD_ID  # (B, H)
        empty = padding.all(dim=1)  # (B,)
        # A fully masked row would softmax to NaN: let it attend to its first slot, zeroed below.
        padding[:, 0] &= ~empty
        x = embedding(ids) + self.positions(torch.arange(ids.shape[1]))  # (B, H, dim)
        h = self.block(x, src_key_padding_mask=padding)  # (B, H, dim)
        logits = (h @ self.query) / h.shape[-1] ** 0.5  # (B, H)
        weights = torch.softmax(logits.masked_fill(padding, float("-inf")), dim=1)
        pooled = (weights.unsqueeze(-1) * h).sum(dim=1)  # (B, dim)
        return torch.where(empty.unsqueeze(1), torch.zeros_like(pooled), pooled)


class UserTower(nn.Module):
    """(UserInputs, shared id embedding) -> (B, embedding_dim) unit vectors."""

    def __init__(self, cfg: TwoTowerConfig, n_numeric: int, text_dim: int, n_user_ids: int = 2):
        super().__init__()
        self.ids = nn.Embedding(n_user_ids, cfg.id_dim, padding_idx=PAD_ID)
        self.history_text = nn.Linear(text_dim, cfg.content_dim)
        self.positive_text = nn.Linear(text_dim, cfg.content_dim)
        self.head = mlp(3 * cfg.id_dim + 2 * cfg.content_dim + n_numeric, cfg.hidden_dim, cfg.embedding_dim)
        # Created last: the "mean" tower keeps its parameters, their order and its initial weights.
        self.history_encoder: AttentionHistory | None = None
        self.positive_encoder: AttentionHistory | None = None
        if cfg.user_history_encoder == "attention":
            self.history_encoder = AttentionHistory(cfg.id_dim)
            self.positive_encoder = AttentionHistory(cfg.id_dim)

    def forward(self, x: UserInputs, video_ids: nn.Embedding) -> Tensor:
        batch = len(x.numeric)
        ids = x.ids if x.ids is not None else torch.full((batch,), UNKNOWN_ID, dtype=torch.long)
        positive_ids = x.positive_ids if x.positive_ids is not None else x.history_ids[:, :0]
        positive_text = x.positive_text if x.positive_text is not None else torch.zeros_like(x.history_text)
        parts = [
            self.ids(ids),
            _pool(self.history_encoder, video_ids, x.history_ids),
            self.history_text(x.history_text),
            _pool(self.positive_encoder, video_ids, positive_ids),
            self.positive_text(positive_text),
            x.numeric,
        ]
        return F.normalize(self.head(torch.cat(parts, dim=1)), dim=1)


class TwoTower(nn.Module):
    """User and video towers sharing the video id embedding (used by the history pool)."""

    def __init__(
        self,
        cfg: TwoTowerConfig,
        n_ids: int,
        n_user_numeric: int,
        n_video_numeric: int,
        text_dim: int,
        frame_dim: int,
        n_user_ids: int = 2,
    ):
        super().__init__()
        self.video = VideoTower(cfg, n_ids, n_video_numeric, text_dim, frame_dim)
        self.user = UserTower(cfg, n_user_numeric, text_dim, n_user_ids)

    def embed_users(self, x: UserInputs) -> Tensor:
        """(B, D) unit vectors; D = embedding_dim (+ 1 with an item bias)."""
        users = self.user(x, self.video.ids)
        if self.video.bias is None:
            return users
        return torch.cat([users, torch.ones_like(users[:, :1])], dim=1)

    def embed_videos(self, x: VideoInputs) -> Tensor:
        """(B, D) vectors: a unit direction (+ a bounded per-video bias as the last coordinate)."""
        return self.video(x)


def in_batch_softmax_loss(
    users: Tensor,
    videos: Tensor,
    video_ids: Tensor,
    log_q: Tensor | None,
    temperature: float,
    extra: tuple[Tensor, Tensor, Tensor | None] | None = None,
) -> Tensor:
    """Sampled softmax over the batch's videos, with the logQ correction.

    Every other positive in the batch is a negative for a row. Popular videos show up as in-batch
    negatives more often than the catalogue would sample them, which pushes them down; subtracting
    ``log q(video)`` (its share of training positives) from every logit undoes that bias (Yi et al.,
    RecSys 2019). The same video appearing twice in a batch is not a negative of itself.

    Args:
        users: (B, D) unit user embeddings.
        videos: (B, D) unit embeddings of each row's positive video.
        video_ids: (B,) vocabulary ids of the positives (UNKNOWN_ID rows are never masked).
        log_q: (B,) log sampling probability of each positive, or None (no correction).
        temperature: logits are cosines divided by this.
        extra: optional further negatives shared by every row (mixed negative sampling, Yang et al.
            2020): ``(videos (M, D), ids (M,), log_q (M,) or None)``; one equal to a row's positive
            is masked for that row.

    Returns:
        Scalar mean cross-entropy.
    """
    logits = users @ videos.T / temperature  # (B, B)
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0)
    same = (video_ids.unsqueeze(0) == video_ids.unsqueeze(1)) & (video_ids.unsqueeze(0) != UNKNOWN_ID)
    same.fill_diagonal_(False)
    if extra is not None:
        extra_videos, extra_ids, extra_log_q = extra
        extra_logits = users @ extra_videos.T / temperature  # (B, M)
        if extra_log_q is not None:
            extra_logits = extra_logits - extra_log_q.unsqueeze(0)
        logits = torch.cat([logits, extra_logits], dim=1)  # (B, B + M)
        extra_same = (video_ids.unsqueeze(1) == extra_ids.unsqueeze(0)) & (
            extra_ids.unsqueeze(0) != UNKNOWN_ID
        )
        same = torch.cat([same, extra_same], dim=1)
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(users), device=users.device)
    return F.cross_entropy(logits, target)
