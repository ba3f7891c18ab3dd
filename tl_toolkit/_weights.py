"""Reading weights files safely, for plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._errors import UserError

__all__ = ["read_state_dict", "safetensors_problem", "weights_folder_problems"]


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

        problem = safetensors_problem(path)
        if problem:
            raise UserError(f"{key}: {problem}")
        try:
            return load_file(str(path))
        except Exception as e:
            raise UserError(f"{key}: cannot read {path} as safetensors: {_first_line(e)}") from None
    import torch

    try:
        # weights_only: a weights file never runs code when it is read.
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise UserError(
                f"{key}: {path} holds pickled Python objects, not only tensors (a whole model saved with "
                f"torch.save(model)?); save model.state_dict() instead, or a .safetensors file"
            ) from None
        raise UserError(f"{key}: cannot read {path} as a weights file (torch.load: {_first_line(e)}); "
                        f"give a .safetensors file or a .pth/.bin state dict") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise UserError(f"{key}: {path} holds a {type(state).__name__}, not a state dict")
    return state


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a ``.safetensors`` file's framing (None when it is whole), without reading its tensors.

    The file is an 8-byte header length, a JSON header giving each tensor's byte range, then the data: a file
    cut short (an interrupted copy or download) ends before the last range does.
    """
    import json
    import struct

    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{path} is not a safetensors file ({size} bytes, too short for a header); replace it"
            (length,) = struct.unpack("<Q", head)
            if length > size - 8:
                return (f"{path} is not a safetensors file, or is truncated (its header claims {length} bytes, "
                        f"the file holds {size}); replace it with a complete copy")
            header = json.loads(f.read(length))
    except OSError as e:
        from ._errors import os_error_message

        return f"cannot read {os_error_message(e, path=path)}"
    except (ValueError, UnicodeDecodeError):
        return f"{path} is not a safetensors file (its header is not JSON); replace it"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and "data_offsets" in v]
    need = 8 + length + max(ends, default=0)
    if size < need:
        return (f"{path} is truncated: it holds {size} of the {need} bytes its header describes (an interrupted "
                f"copy or download?); replace it with a complete copy")
    return None


def weights_folder_problems(key: str, folder: Path) -> list[str]:
    """Damaged ``.safetensors`` files in a model folder, one message each."""
    return [f"{key}: {problem}" for file in sorted(folder.rglob("*.safetensors"))
            if (problem := safetensors_problem(file))]
