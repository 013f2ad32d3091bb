"""Model weights read safely: ``torch.load(..., weights_only=True)`` and a plain state_dict, or refused."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from reelrec.errors import DataError


def load_weights(path: Path, what: str) -> dict[str, torch.Tensor]:
    """The state_dict in ``path``, read with ``torch.load(..., weights_only=True)``.

    Only tensors and plain containers are unpickled: a file holding any other object (a pickled
    callable, a whole module) is refused before anything in it runs.

    Raises:
        DataError: naming the file when it is not a plain state_dict (or not a torch file at all).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"refusing to load {what} weights {path}: not a plain state_dict of tensors "
            f"(torch.load weights_only=True: {first})"
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(
            f"refusing to load {what} weights {path}: it holds a {type(state).__name__}, "
            "not a state_dict of tensors"
        )
    return state
