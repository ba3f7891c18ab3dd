"""Reading weights files safely, for plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._errors import UserError

__all__ = ["read_state_dict"]


def read_state_dict(path: str | Path, key: str = "backbone.weights") -> dict[str, Any]:
    """A state dict from a ``.safetensors`` file, or a pickle file read with ``weights_only=True``.

    A checkpoint dict holding ``state_dict`` or ``model`` is unwrapped.

    Raises:
        UserError: the file is missing or is not a weights file (named after ``key``).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{key}: file {str(path)!r} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:
            raise UserError(f"{key}: cannot read {path} as safetensors: {e}") from None
    import torch

    try:
        # weights_only: a weights file never runs code when it is read.
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{key}: cannot read {path} as a weights file ({type(e).__name__}: {e})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise UserError(f"{key}: {path} holds a {type(state).__name__}, not a state dict")
    return state
