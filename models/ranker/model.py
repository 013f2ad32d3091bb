"""The multi-task ranker: DCN-v2 cross layers, a multi-gate mixture of experts, one tower per head.

``x (B, F)`` raw features -> standardised (statistics fitted on the training set, stored as buffers
so they travel with the weights; clipped to +-8) -> ``cross_layers`` DCN-v2 crosses
``x_{l+1} = x_0 * (W x_l + b) + x_l`` (explicit feature interactions, e.g. source score x user
activity) -> ``n_experts`` MLP experts shared by every head -> per head a softmax gate over the
experts (MMoE: tasks that disagree, like completion and skip, can use different experts) and a
small tower -> one logit per head ``(B, H)``.
The loss is the mean over heads of the binary cross-entropy.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.ranker.config import RankerConfig

CLIP = 8.0  # standardised inputs are clipped to +-CLIP: a heavy tail at serving cannot saturate the heads


class CrossLayer(nn.Module):
    """One DCN-v2 cross: ``x0 * (W x + b) + x`` (full-rank W)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(x) + x  # (B, F)


class Expert(nn.Module):
    """A shared expert: a two-layer MLP of the crossed input."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, out), nn.ReLU(), nn.Linear(out, out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class Ranker(nn.Module):
    """MMoE over DCN-v2 crosses; :meth:`forward` gives one logit per head."""

    mean: torch.Tensor  # (F,) buffers: the standardisation travels with the weights
    std: torch.Tensor

    def __init__(self, n_features: int, cfg: RankerConfig) -> None:
        super().__init__()
        self.n_heads = len(cfg.heads)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.crosses = nn.ModuleList(CrossLayer(n_features) for _ in range(cfg.cross_layers))
        self.experts = nn.ModuleList(Expert(n_features, cfg.expert_dim) for _ in range(cfg.n_experts))
        self.gates = nn.ModuleList(nn.Linear(n_features, cfg.n_experts) for _ in range(self.n_heads))
        self.towers = nn.ModuleList(
            nn.Sequential(
                nn.Linear(cfg.expert_dim, cfg.tower_hidden), nn.ReLU(), nn.Linear(cfg.tower_hidden, 1)
            )
            for _ in range(self.n_heads)
        )

    def set_standardisation(self, x: np.ndarray) -> None:
        """Fit the input standardisation on the raw training matrix ``x`` (N, F)."""
        std = x.std(0)
        # A feature constant in training (a source that could not run those nights) keeps its scale:
        # dividing by a tiny std would turn its first non-constant value at serving into an outlier.
        std = np.where(std < 1e-3, 1.0, std)
        self.mean.copy_(torch.from_numpy(x.mean(0).astype(np.float32)))
        self.std.copy_(torch.from_numpy(std.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features (B, F) -> logits (B, H)."""
        x0 = torch.clamp((x - self.mean) / self.std, -CLIP, CLIP)
        crossed = x0
        for cross in self.crosses:
            crossed = cross(x0, crossed)
        experts = torch.stack([e(crossed) for e in self.experts], dim=1)  # (B, E, expert_dim)
        logits = []
        for gate, tower in zip(self.gates, self.towers, strict=True):
            weights = torch.softmax(gate(crossed), dim=1).unsqueeze(2)  # (B, E, 1)
            logits.append(tower((weights * experts).sum(1)))  # (B, 1)
        return torch.cat(logits, dim=1)


def multi_task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over heads of the binary cross-entropy of logits (B, H) against 0/1 labels (B, H)."""
    per_head = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0)
    return per_head.mean()


def blend(probabilities: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """The final score ``sum_h weights[h] * p_h``: probabilities (..., H) -> (...,) float32."""
    return (np.asarray(probabilities, np.float64) @ np.asarray(weights, np.float64)).astype(np.float32)


@torch.no_grad()
def predict(model: Ranker, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """(N, H) float32 probabilities of every head for raw features ``x`` (N, F).

    Batches of a few thousand rows keep every activation in cache: on one thread, 400k rows took
    2.2-2.4 s in batches of 2-4k against 3.4-3.6 s in batches of 64k (/work/bench/pred2.py, this
    machine). More threads do not pay on a shared two-core machine (2 threads: 9-18 s).
    """
    model.eval()
    out = [torch.sigmoid(model(torch.from_numpy(x[s : s + batch]))).numpy() for s in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros((0, model.n_heads), np.float32)
