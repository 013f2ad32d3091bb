"""Two-tower model: tower shapes and norms, the in-batch loss by hand, a tiny training run, round trips.

Everything here is synthetic and in memory: no lake, no Feast.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from torch.nn import functional as F

from models.training_set import TrainingSetConfig
from models.two_tower.artifacts import build_model, load, model_root, model_version, point_to, save
from models.two_tower.config import TwoTowerConfig
from models.two_tower.inputs import (
    CONTENT_VIEW,
    REQUEST_AGE,
    USER_COUNTS,
    USER_RATES,
    USER_VIEW,
    VIDEO_COUNTS,
    VIDEO_RATES,
    VIDEO_VIEW,
    ContentLookup,
    FeatureSpace,
    user_numeric,
    video_numeric,
)
from models.two_tower.model import (
    PAD_ID,
    UNKNOWN_ID,
    AttentionHistory,
    TwoTower,
    UserInputs,
    VideoInputs,
    in_batch_softmax_loss,
)
from models.two_tower.train import fit, prepare
from reelrec.catalog import FRAME_EMBEDDING_DIM, RECENT_HISTORY_LEN, TEXT_EMBEDDING_DIM
from reelrec.settings import Settings

SMALL = TwoTowerConfig(embedding_dim=8, id_dim=4, content_dim=4, hidden_dim=16, creator_buckets=16)
N_USER_NUMERIC = user_numeric({}, 1).shape[1]
N_VIDEO_NUMERIC = video_numeric({}, 1).shape[1]


def _space(n_videos: int) -> FeatureSpace:
    """An identity feature space over videos ``v00 .. v{n-1}`` (ids 2 .. n + 1)."""
    return FeatureSpace(
        vocabulary=[f"v{i:02d}" for i in range(n_videos)],
        user_mean=[0.0] * N_USER_NUMERIC,
        user_std=[1.0] * N_USER_NUMERIC,
        video_mean=[0.0] * N_VIDEO_NUMERIC,
        video_std=[1.0] * N_VIDEO_NUMERIC,
    )


def _random_inputs(batch: int, n_ids: int, seed: int) -> tuple[UserInputs, VideoInputs]:
    g = torch.Generator().manual_seed(seed)
    users = UserInputs(
        numeric=torch.randn(batch, N_USER_NUMERIC, generator=g),
        history_ids=torch.randint(0, n_ids, (batch, RECENT_HISTORY_LEN), generator=g),
        history_text=torch.randn(batch, TEXT_EMBEDDING_DIM, generator=g),
    )
    users.history_ids[0] = PAD_ID  # a user with no history at all: the pool must not divide by zero
    videos = VideoInputs(
        ids=torch.randint(0, n_ids, (batch,), generator=g),
        creator=torch.randint(0, SMALL.creator_buckets, (batch,), generator=g),
        text=torch.randn(batch, TEXT_EMBEDDING_DIM, generator=g),
        frame=torch.randn(batch, FRAME_EMBEDDING_DIM, generator=g),
        numeric=torch.randn(batch, N_VIDEO_NUMERIC, generator=g),
    )
    return users, videos


# ------------------------------------------------------------------------------------------ towers
@pytest.mark.torch
@hypothesis_settings(max_examples=20, deadline=None)
@given(batch=st.integers(2, 16), n_videos=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_towers_return_unit_directions_and_a_bounded_bias(batch: int, n_videos: int, seed: int) -> None:
    torch.manual_seed(seed)
    space = _space(n_videos)
    users, videos = _random_inputs(batch, space.n_ids, seed)
    with torch.no_grad():
        plain = build_model(replace(SMALL, item_bias=0.0), space).eval()
        for out in (plain.embed_users(users), plain.embed_videos(videos)):  # no bias: unit rows
            assert out.shape == (batch, SMALL.embedding_dim) and out.dtype == torch.float32
            torch.testing.assert_close(out.norm(dim=1), torch.ones(batch))
        model = build_model(SMALL, space).eval()
        u, v = model.embed_users(users), model.embed_videos(videos)
    for out in (u, v):
        assert out.shape == (batch, SMALL.embedding_dim + 1)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out[:, :-1].norm(dim=1), torch.ones(batch))  # unit direction
    assert (u[:, -1] == 1.0).all()  # users carry a constant 1 against the videos' bias coordinate
    assert (v[:, -1].abs() <= SMALL.item_bias).all()
    torch.testing.assert_close(u @ v.T, u[:, :-1] @ v[:, :-1].T + v[:, -1])  # cosine + bias(video)


@pytest.mark.torch
def test_history_pool_ignores_padding_and_order() -> None:
    torch.manual_seed(0)
    model = build_model(SMALL, _space(10)).eval()
    users, _ = _random_inputs(2, 12, seed=1)
    users.numeric[1], users.history_text[1] = users.numeric[0], users.history_text[0]
    users.history_ids[:] = PAD_ID
    users.history_ids[0, :3] = torch.tensor([4, 7, 9])
    users.history_ids[1, -3:] = torch.tensor([9, 4, 7])  # same videos, other order and padding places
    with torch.no_grad():
        u = model.embed_users(users)
    torch.testing.assert_close(u[0], u[1])


# ------------------------------------------------------------------------------------------ history encoders
ATTENTION = replace(SMALL, user_history_encoder="attention")


def _with_positives(users: UserInputs, seed: int) -> UserInputs:
    """``users`` plus positive ids (row 1 without any) and their text."""
    g = torch.Generator().manual_seed(seed)
    users.positive_ids = torch.randint(2, 12, (len(users.numeric), RECENT_HISTORY_LEN), generator=g)
    users.positive_ids[:, 7:] = PAD_ID
    users.positive_ids[1] = PAD_ID
    users.positive_text = torch.randn(len(users.numeric), TEXT_EMBEDDING_DIM, generator=g)
    return users


@pytest.mark.torch
@pytest.mark.parametrize("grad", [False, True])
def test_attention_tower_shapes_norms_and_empty_history(grad: bool) -> None:
    torch.manual_seed(0)
    model = build_model(ATTENTION, _space(10)).eval()
    assert model.user.history_encoder is not None and model.user.positive_encoder is not None
    users = _with_positives(_random_inputs(6, 12, seed=2)[0], seed=3)  # row 0: no history, 1: no positives
    with torch.set_grad_enabled(grad):  # no_grad may take torch's fused attention path: same answer
        u = model.embed_users(users)
        pooled = model.user.history_encoder(model.video.ids, users.history_ids)
        nothing = model.user.positive_encoder(model.video.ids, torch.full((3, 5), PAD_ID))
    assert u.shape == (6, ATTENTION.embedding_dim + 1) and torch.isfinite(u).all()
    torch.testing.assert_close(u[:, :-1].norm(dim=1), torch.ones(6))
    assert pooled.shape == (6, ATTENTION.id_dim) and torch.isfinite(pooled).all()
    assert (pooled[0] == 0).all() and (pooled[1:].abs().sum(1) > 0).all()
    assert (nothing == 0).all()
    if grad:  # an empty history must not put NaN into the gradients either
        u.sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.torch
@pytest.mark.parametrize("encoder", ["mean", "attention"])
@pytest.mark.parametrize("stream", ["history_ids", "positive_ids"])
def test_history_order_matters_only_for_attention(encoder: str, stream: str) -> None:
    torch.manual_seed(0)
    model = build_model(replace(SMALL, user_history_encoder=encoder), _space(10)).eval()
    users, _ = _random_inputs(2, 12, seed=1)
    users.numeric[1], users.history_text[1] = users.numeric[0], users.history_text[0]
    users.history_ids[:] = PAD_ID
    users.history_ids[:, :4] = torch.tensor([5, 3, 8, 2])
    users.positive_ids = users.history_ids.clone()
    users.positive_text = torch.zeros_like(users.history_text)
    ordered: torch.Tensor = getattr(users, stream)
    ordered[0, :3] = torch.tensor([4, 7, 9])
    ordered[1, :3] = torch.tensor([9, 4, 7])  # same videos, watched in another order
    with torch.no_grad():
        u = model.embed_users(users)
    if encoder == "mean":
        torch.testing.assert_close(u[0], u[1])
    else:
        assert (u[0] - u[1]).abs().max() > 1e-4


@pytest.mark.torch
def test_attention_padding_does_not_change_the_output() -> None:
    torch.manual_seed(0)
    model = build_model(ATTENTION, _space(10)).eval()
    users = _with_positives(_random_inputs(4, 12, seed=6)[0], seed=7)
    users.history_ids[:, 5:] = PAD_ID
    short = UserInputs(
        users.numeric,
        users.history_ids[:, :5],
        users.history_text,
        users.ids,
        users.positive_ids[:, :7] if users.positive_ids is not None else None,
        users.positive_text,
    )
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(model.embed_users(users), model.embed_users(short))
    # Histories longer than the position table keep their newest RECENT_HISTORY_LEN videos.
    encoder = AttentionHistory(SMALL.id_dim, max_len=4).eval()
    ids = torch.tensor([[3, 5, 7, 9, 11, 2]])
    with torch.no_grad():
        torch.testing.assert_close(encoder(model.video.ids, ids), encoder(model.video.ids, ids[:, :4]))


@pytest.mark.torch
def test_attention_modules_leave_the_mean_towers_initial_weights_alone() -> None:
    # They are created last, so a default ("mean") model is the same model, weight for weight, as before.
    space = _space(10)
    torch.manual_seed(5)
    mean = build_model(SMALL, space).state_dict()
    torch.manual_seed(5)
    attention = build_model(ATTENTION, space).state_dict()
    extra = set(attention) - set(mean)
    assert set(mean) <= set(attention)
    assert extra and all(k.startswith(("user.history_encoder.", "user.positive_encoder.")) for k in extra)
    for name, tensor in mean.items():
        assert torch.equal(tensor, attention[name]), name


@pytest.mark.torch
def test_tiny_training_run_with_attention_reduces_loss() -> None:
    space, users, videos, log_q, _ = _topic_problem()
    users.history_ids = users.history_ids[:, :8]  # 5 videos each: the rest is padding, and slow
    cfg = replace(TINY, user_history_encoder="attention")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, space)
    losses = fit(model, users, videos, log_q, cfg)
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.8 * losses[0], losses
    with torch.no_grad():
        scores = model.embed_users(users) @ model.embed_videos(videos).T  # (N, N)
    same = ((users.history_ids[:, 0] - 2) % N_TOPICS)[:, None] == ((videos.ids - 2) % N_TOPICS)[None, :]
    assert scores[same].mean() > scores[~same].mean() + 0.3


def test_config_names_its_history_encoder() -> None:
    assert TwoTowerConfig().user_history_encoder == "mean"
    with pytest.raises(ValueError, match="user_history_encoder='gru'"):
        TwoTowerConfig(user_history_encoder="gru")
    old = json.loads(TwoTowerConfig().to_json())
    del old["user_history_encoder"]  # a config.json saved before the field existed
    assert TwoTowerConfig.from_json(json.dumps(old)) == TwoTowerConfig()


# ------------------------------------------------------------------------------------------ loss
@pytest.mark.torch
def test_loss_by_hand_with_and_without_log_q() -> None:
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    videos = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    ids = torch.tensor([2, 3])
    # Cosines [[0.6, 0.8], [0.8, 0.6]] / T = 0.5 -> logits [[1.2, 1.6], [1.6, 1.2]].
    # Two columns: CE_i = log(1 + exp(l_ij - l_ii)), so both rows give log(1 + e^0.4) = 0.9130.
    plain = math.log(1 + math.exp(0.4))
    torch.testing.assert_close(in_batch_softmax_loss(users, videos, ids, None, 0.5), torch.tensor(plain))
    # q = (0.75, 0.25): column j loses log q_j, so l_ij - l_ii gains log q_i - log q_j.
    # Row 0: log(1 + e^0.4 * 0.75 / 0.25) = log(1 + 4.4755) = 1.7004
    # Row 1: log(1 + e^0.4 * 0.25 / 0.75) = log(1 + 0.4973) = 0.4037 -> mean 1.0520.
    log_q = torch.log(torch.tensor([0.75, 0.25]))
    corrected = (math.log(1 + math.exp(0.4) * 3) + math.log(1 + math.exp(0.4) / 3)) / 2
    assert corrected == pytest.approx(1.0520, abs=1e-4)
    torch.testing.assert_close(
        in_batch_softmax_loss(users, videos, ids, log_q, 0.5), torch.tensor(corrected, dtype=torch.float32)
    )


def _loss_without(logits: torch.Tensor, removed: set[tuple[int, int]]) -> torch.Tensor:
    """Mean CE of the diagonal targets, each row's softmax taken without the ``removed`` cells."""
    rows = []
    for i in range(len(logits)):
        keep = [j for j in range(len(logits)) if (i, j) not in removed]
        rows.append(torch.logsumexp(logits[i, keep], dim=0) - logits[i, i])
    return torch.stack(rows).mean()


def _batch(seed: int, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, 3, generator=g), dim=1), F.normalize(
        torch.randn(n, 3, generator=g), dim=1
    )


@pytest.mark.torch
@pytest.mark.parametrize("with_log_q", [False, True])
def test_duplicate_positive_is_not_its_own_negative(with_log_q: bool) -> None:
    users, videos = _batch(seed=3)
    log_q = torch.log(torch.tensor([0.4, 0.4, 0.1, 0.1])) if with_log_q else None
    temperature = 0.2
    logits = users @ videos.T / temperature - (log_q if log_q is not None else 0.0)
    # Rows 0 and 1 share a positive: their cross cells (0, 1) and (1, 0) drop out of the softmax.
    got = in_batch_softmax_loss(users, videos, torch.tensor([5, 5, 7, 8]), log_q, temperature)
    torch.testing.assert_close(got, _loss_without(logits, {(0, 1), (1, 0)}))
    distinct = in_batch_softmax_loss(users, videos, torch.tensor([5, 6, 7, 8]), log_q, temperature)
    torch.testing.assert_close(distinct, _loss_without(logits, set()))
    assert not torch.isclose(got, distinct)
    # Masking with -inf must not leak NaN into the gradients.
    users.requires_grad_(True)
    in_batch_softmax_loss(users, videos, torch.tensor([5, 5, 5, 5]), log_q, temperature).backward()
    assert users.grad is not None and torch.isfinite(users.grad).all()


@pytest.mark.torch
def test_unknown_id_duplicates_are_not_masked() -> None:
    # UNKNOWN_ID lumps different videos together (fresh uploads, rare videos): they stay negatives.
    users, videos = _batch(seed=4)
    unknown = torch.tensor([UNKNOWN_ID, UNKNOWN_ID, 7, UNKNOWN_ID])
    distinct = torch.tensor([2, 3, 7, 4])
    torch.testing.assert_close(
        in_batch_softmax_loss(users, videos, unknown, None, 0.1),
        in_batch_softmax_loss(users, videos, distinct, None, 0.1),
    )


# ------------------------------------------------------------------------------------------ training
N_TOPICS, N_VIDEOS, N_USERS, POSITIVES_PER_USER = 4, 50, 200, 3
TINY = TwoTowerConfig(
    embedding_dim=16,
    id_dim=8,
    content_dim=8,
    hidden_dim=32,
    creator_buckets=16,
    batch_size=64,
    epochs=6,
    learning_rate=5e-3,
    temperature=0.1,
    seed=11,
)


def _topic_problem() -> tuple[FeatureSpace, UserInputs, VideoInputs, torch.Tensor, np.ndarray]:
    """200 users, 50 videos in 4 topics; each user's positives are videos of their own topic.

    Text embeddings carry the topic (a topic direction plus noise); a user's history text is the
    mean text of a few own-topic videos, so the user tower can see the topic too.
    """
    rng = np.random.default_rng(0)
    video_topic = np.arange(N_VIDEOS) % N_TOPICS
    directions = rng.normal(size=(N_TOPICS, TEXT_EMBEDDING_DIM)).astype(np.float32)
    text = directions[video_topic] + 0.5 * rng.normal(size=(N_VIDEOS, TEXT_EMBEDDING_DIM)).astype(np.float32)
    frame = rng.normal(size=(N_VIDEOS, FRAME_EMBEDDING_DIM)).astype(np.float32)
    creator = rng.integers(0, TINY.creator_buckets, N_VIDEOS)
    user_topic = np.arange(N_USERS) % N_TOPICS
    user_numeric_x = rng.normal(size=(N_USERS, N_USER_NUMERIC)).astype(np.float32)
    by_topic = [np.flatnonzero(video_topic == t) for t in range(N_TOPICS)]
    histories = np.stack([rng.choice(by_topic[t], 5, replace=False) for t in user_topic])  # (U, 5)
    history_ids = np.full((N_USERS, RECENT_HISTORY_LEN), PAD_ID, np.int64)
    history_ids[:, :5] = histories + 2
    history_text = text[histories].mean(1)

    user_rows = np.repeat(np.arange(N_USERS), POSITIVES_PER_USER)  # (N,)
    video_rows = np.concatenate([rng.choice(by_topic[t], POSITIVES_PER_USER) for t in user_topic])
    users = UserInputs(
        numeric=torch.from_numpy(user_numeric_x[user_rows]),
        history_ids=torch.from_numpy(history_ids[user_rows]),
        history_text=torch.from_numpy(history_text[user_rows]),
    )
    videos = VideoInputs(
        ids=torch.from_numpy(video_rows + 2),
        creator=torch.from_numpy(creator[video_rows]),
        text=torch.from_numpy(text[video_rows]),
        frame=torch.from_numpy(frame[video_rows]),
        numeric=torch.from_numpy(rng.normal(size=(N_VIDEOS, N_VIDEO_NUMERIC)).astype(np.float32)[video_rows]),
    )
    counts = np.bincount(video_rows, minlength=N_VIDEOS)
    log_q = torch.from_numpy(np.log(counts[video_rows] / len(video_rows)).astype(np.float32))
    return _space(N_VIDEOS), users, videos, log_q, video_topic[video_rows] == user_topic[user_rows]


def _train_once() -> tuple[TwoTower, list[float], UserInputs, VideoInputs]:
    space, users, videos, log_q, _ = _topic_problem()
    torch.manual_seed(TINY.seed)  # weight init; fit seeds its own shuffling and id dropout
    model = build_model(TINY, space)
    return model, fit(model, users, videos, log_q, TINY), users, videos


@pytest.mark.torch
def test_tiny_training_run_reduces_loss_deterministically() -> None:
    model, losses, users, videos = _train_once()
    assert len(losses) == TINY.epochs
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.8 * losses[0], losses  # about 3.8 -> 2.65
    assert not model.training  # fit leaves the model in eval mode
    _, again, _, _ = _train_once()
    assert again == losses

    # What it learned is the topic: own-topic videos outscore the rest for every topic.
    with torch.no_grad():
        scores = model.embed_users(users) @ model.embed_videos(videos).T  # (N, N)
    user_topic = (users.history_ids[:, 0] - 2) % N_TOPICS
    video_topic = (videos.ids - 2) % N_TOPICS
    same = user_topic[:, None] == video_topic[None, :]
    assert scores[same].mean() > scores[~same].mean() + 0.3


# ------------------------------------------------------------------------------------------ round trips
@pytest.mark.torch
def test_state_dict_round_trip_gives_identical_embeddings(tmp_path: Path) -> None:
    space, users, videos, log_q, _ = _topic_problem()
    torch.manual_seed(1)
    model = build_model(SMALL, space)
    fit(model, users, videos, log_q, replace(SMALL, epochs=1))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    torch.manual_seed(2)  # a different init, overwritten by the load
    reloaded = build_model(SMALL, FeatureSpace.from_json(space.to_json()))
    reloaded.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    reloaded.eval()
    with torch.no_grad():
        assert torch.equal(model.embed_users(users), reloaded.embed_users(users))
        assert torch.equal(model.embed_videos(videos), reloaded.embed_videos(videos))


@pytest.mark.torch
def test_load_reads_the_artifact_folder_of_a_night(tmp_path: Path, settings: Settings) -> None:
    date = "2026-11-10"
    with pytest.raises(FileNotFoundError, match=f"dt={date}"):
        load(date, settings)
    space = _space(5)
    torch.manual_seed(3)
    model = build_model(SMALL, space).eval()
    path = model_root(settings) / "two_tower_v1-test"
    path.mkdir(parents=True)
    torch.save(model.state_dict(), path / "model.pt")
    (path / "config.json").write_text(SMALL.to_json())
    (path / "feature_space.json").write_text(space.to_json())
    (model_root(settings) / f"dt={date}.json").write_text(json.dumps({"path": str(path)}))
    trained = load(date, settings)
    assert trained.version == "two_tower_v1-test"
    assert trained.cfg == SMALL and trained.space == space
    users, videos = _random_inputs(3, space.n_ids, seed=5)
    with torch.no_grad():
        assert torch.equal(trained.model.embed_users(users), model.embed_users(users))
        assert torch.equal(trained.model.embed_videos(videos), model.embed_videos(videos))


@pytest.mark.torch
def test_save_names_the_version_by_weights_and_load_restores_it(settings: Settings) -> None:
    date = "2026-11-10"
    space = _space(5)
    torch.manual_seed(3)
    model = build_model(SMALL, space).eval()
    path = save(date, settings, model, space, SMALL)
    assert path.name == model_version(date, model, space)
    assert path.name.startswith(f"two_tower_v1-{date}-") and len(path.name.rsplit("-", 1)[1]) == 8
    torch.manual_seed(4)
    assert model_version(date, build_model(SMALL, space), space) != path.name
    point_to(date, settings, path)
    assert json.loads((model_root(settings) / f"dt={date}.json").read_text()) == {
        "date": date,
        "model_version": path.name,
        "path": str(path),
    }
    trained = load(date, settings)
    assert trained.version == path.name and trained.path == path
    assert trained.cfg == SMALL and trained.space == space
    users, videos = _random_inputs(3, space.n_ids, seed=5)
    with torch.no_grad():
        assert torch.equal(trained.model.embed_videos(videos), model.embed_videos(videos))


def test_config_forwards_the_training_data_fields_with_the_same_defaults() -> None:
    shared = {f.name for f in fields(TrainingSetConfig)}
    assert shared <= {f.name for f in fields(TwoTowerConfig)}
    assert TwoTowerConfig().training_set == TrainingSetConfig()
    cfg = TwoTowerConfig(train_days=2, completion_threshold=0.5, history_days=3, max_examples_per_user=9)
    assert cfg.training_set == TrainingSetConfig(
        train_days=2, completion_threshold=0.5, history_days=3, max_examples_per_user=9
    )


def test_config_json_round_trip() -> None:
    cfg = TwoTowerConfig(embedding_dim=8, temperature=0.07, logq_correction=False)
    again = TwoTowerConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.fingerprint() == cfg.fingerprint() != TwoTowerConfig().fingerprint()
    assert list(json.loads(cfg.to_json())) == sorted(json.loads(cfg.to_json()))
    with pytest.raises(TypeError):
        TwoTowerConfig.from_json(json.dumps({"no_such_field": 1}))


def test_feature_space_json_round_trip_ids_and_history() -> None:
    space = FeatureSpace(
        vocabulary=["va", "vb", "vc"],
        user_mean=[0.1, 1 / 3],
        user_std=[1.0, 2.5],
        video_mean=[0.2],
        video_std=[0.7],
    )
    again = FeatureSpace.from_json(space.to_json())
    assert again == space
    assert space.n_ids == 5
    np.testing.assert_array_equal(again.ids(["va", "vc", "new", None]), [2, 4, UNKNOWN_ID, UNKNOWN_ID])
    long = [f"old{i}" for i in range(RECENT_HISTORY_LEN + 5)]
    history = again.history([["vb", "unseen", "va"], None, [], long])
    assert history.shape == (4, RECENT_HISTORY_LEN) and history.dtype == np.int64
    np.testing.assert_array_equal(history[0, :3], [3, UNKNOWN_ID, 2])
    assert (history[0, 3:] == PAD_ID).all()
    assert (history[1:3] == PAD_ID).all()
    assert (history[3] == UNKNOWN_ID).all()  # truncated to the newest RECENT_HISTORY_LEN, no padding


def test_feature_space_fit_vocabulary_and_std_floor() -> None:
    cfg = TwoTowerConfig(min_video_positives=2)
    user_x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]], np.float32)
    video_x = np.array([[0.0], [2.0], [4.0]], np.float32)
    space = FeatureSpace.fit(["vb", "va", "vb"], user_x, video_x, cfg)
    assert space.vocabulary == ["vb"]  # va has one positive: it shares the unknown id
    np.testing.assert_allclose(space.user_mean, [3.0, 5.0])
    np.testing.assert_allclose(space.user_std, [math.sqrt(8 / 3), 1e-3])  # constant column: floored
    standardised = space.standardise_users(user_x)
    assert standardised.dtype == np.float32
    np.testing.assert_allclose(standardised[:, 1], 0.0)


# ------------------------------------------------------------------------------------------ numeric
def test_video_numeric_missing_flag_and_log_counts() -> None:
    # Layout: video_age_hours, VIDEO_COUNTS (log1p), VIDEO_RATES, trending_score (signed log1p), missing.
    columns: dict[str, object] = {name: [3.0, 3.0, 3.0] for name in VIDEO_COUNTS}
    columns.update({name: [0.5, 0.5, 0.5] for name in VIDEO_RATES})
    columns["trending_score"] = [-2.0, -2.0, -2.0]
    columns["video_age_hours"] = [7.0, None, 7.0]  # known for every row: not part of the flag
    columns["views_7d"] = pa.array([10, None, 10], pa.int64())  # Delta null: no feature row yet
    columns["like_rate_7d"] = np.array([0.5, 0.5, np.nan])  # Feast/pandas NaN: no feature row yet
    x = video_numeric(columns, 3)
    assert x.shape == (3, 1 + len(VIDEO_COUNTS) + len(VIDEO_RATES) + 1 + 1) and x.dtype == np.float32
    views = 1 + VIDEO_COUNTS.index("views_7d")
    like = 1 + len(VIDEO_COUNTS) + VIDEO_RATES.index("like_rate_7d")
    np.testing.assert_allclose(x[:, 0], [math.log1p(7.0), 0.0, math.log1p(7.0)], rtol=1e-6)
    np.testing.assert_allclose(x[:, views], [math.log1p(10), 0.0, math.log1p(10)], rtol=1e-6)
    np.testing.assert_allclose(x[:, like], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(x[:, 1], math.log1p(3.0), rtol=1e-6)
    np.testing.assert_allclose(x[:, -2], -math.log1p(2.0), rtol=1e-6)
    np.testing.assert_array_equal(x[:, -1], [0.0, 1.0, 1.0])
    assert np.isfinite(x).all()
    # A video with no columns at all (a fresh upload) is all zeros plus the flag.
    np.testing.assert_array_equal(video_numeric({}, 2)[:, -1], [1.0, 1.0])
    np.testing.assert_array_equal(video_numeric({}, 2)[:, :-1], 0.0)


def test_user_numeric_missing_flag_and_log_counts() -> None:
    columns: dict[str, object] = {name: [0.0, 99.0] for name in USER_COUNTS}
    columns.update({name: [0.25, None] for name in USER_RATES})
    x = user_numeric(columns, 2)
    assert x.shape == (2, len(USER_COUNTS) + len(USER_RATES) + 1)
    np.testing.assert_allclose(x[:, : len(USER_COUNTS)], [[0.0] * 10, [math.log1p(99.0)] * 10], rtol=1e-6)
    np.testing.assert_allclose(x[:, len(USER_COUNTS) : -1], [[0.25] * 3, [0.0] * 3])
    np.testing.assert_array_equal(x[:, -1], [0.0, 1.0])


def test_prepare_encodes_positives_with_log_q_and_unseen_videos() -> None:
    """prepare() on a Feast-shaped frame: ids, fresh uploads as UNKNOWN_ID, log q per positive."""
    n = 4
    video_ids = ["va", "va", "vb", "vfresh"]
    table = {
        "user_id": ["u1", "u2", "u1", "u3"],
        "video_id": video_ids,
        REQUEST_AGE: [30.0, 31.0, 5.0, 1.0],
        f"{USER_VIEW}__recent_video_ids": [["va"], [], None, ["vb", "va"]],
        f"{CONTENT_VIEW}__creator_id": ["c1", "c1", "c2", "c3"],
        f"{CONTENT_VIEW}__text_embedding": [[0.1] * TEXT_EMBEDDING_DIM] * n,
        f"{CONTENT_VIEW}__frame_embedding": [[0.2] * FRAME_EMBEDDING_DIM, None, None, None],
    }
    table.update({f"{USER_VIEW}__{c}": [1.0] * n for c in (*USER_COUNTS, *USER_RATES)})
    for name in (*VIDEO_COUNTS, *VIDEO_RATES, "trending_score"):
        # "va" has been seen (feature row on both impressions); vb and vfresh have none yet.
        table[f"{VIDEO_VIEW}__{name}"] = [1.0, 1.0, None, None]
    empty = pa.table(
        {
            "video_id": pa.array([], pa.string()),
            "creator_id": pa.array([], pa.string()),
            "text_embedding": pa.array([], pa.list_(pa.float32())),
            "frame_embedding": pa.array([], pa.list_(pa.float32())),
        }
    )  # content comes from the joined Feast columns here, not from the lookup
    cfg = TwoTowerConfig(min_video_positives=1, creator_buckets=16)
    space, users, videos, log_q = prepare(pa.table(table), ContentLookup.from_table(empty), cfg)
    assert space.vocabulary == ["va", "vb", "vfresh"]
    assert space.users == ["u1", "u2", "u3"] and users.ids is not None
    assert users.ids.tolist() == [2, 3, 2, 4]  # every user with a positive gets an own id
    # vb is in the vocabulary, but its positive has no feature row yet: it trains as a fresh upload.
    assert videos.ids.tolist() == [2, 2, UNKNOWN_ID, UNKNOWN_ID]
    torch.testing.assert_close(log_q, torch.log(torch.tensor([0.5, 0.5, 0.25, 0.25])))
    assert users.history_ids.shape == (n, RECENT_HISTORY_LEN)
    assert users.history_ids[3, :2].tolist() == [3, 2]
    torch.testing.assert_close(videos.frame[0], torch.full((FRAME_EMBEDDING_DIM,), 0.2))
    assert (videos.frame[1:] == 0).all()
    assert videos.creator[0] == videos.creator[1]


def test_shuffled_users_detach_every_user_input_from_its_video() -> None:
    from models.training_set import POSITIVE_HISTORY
    from models.two_tower.train import shuffled_users

    n = 50
    positives = pa.table(
        {
            "user_id": [f"u{i:02d}" for i in range(n)],
            "video_id": [f"v{i:02d}" for i in range(n)],
            POSITIVE_HISTORY: [[f"h{i:02d}"] for i in range(n)],
            f"{USER_VIEW}__views_7d": list(range(n)),
            f"{VIDEO_VIEW}__views_7d": list(range(n)),
        }
    )
    out = shuffled_users(positives, seed=7)
    users = out.column("user_id").to_pylist()
    assert sorted(users) == sorted(positives.column("user_id").to_pylist())  # a permutation
    assert (
        sum(u[1:] != v[1:] for u, v in zip(users, out.column("video_id").to_pylist(), strict=True)) > n // 2
    )
    # The user side moves together; the video side stays with its video.
    rows = out.to_pylist()
    assert all(r[POSITIVE_HISTORY] == [f"h{r['user_id'][1:]}"] for r in rows)
    assert all(r[f"{USER_VIEW}__views_7d"] == int(r["user_id"][1:]) for r in rows)
    assert out.column("video_id").equals(positives.column("video_id"))
    assert out.column(f"{VIDEO_VIEW}__views_7d").equals(positives.column(f"{VIDEO_VIEW}__views_7d"))
