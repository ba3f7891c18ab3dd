"""Opening the images of a data set, for image backbones.

Image columns are read undecoded (paths or bytes) and decoded here, in the
DataLoader worker that asks for the example: decoding runs in parallel with
training, and a broken file is reported by its path rather than as a decoder
error deep inside a batch.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from ._errors import DataError

if TYPE_CHECKING:
    import datasets
    from PIL import Image

__all__ = ["open_image", "undecoded"]


def undecoded(dataset: datasets.Dataset, column: str) -> datasets.Dataset:
    """``dataset`` with its ``datasets.Image`` column left undecoded, for :func:`open_image` to decode."""
    import datasets as hf

    feature = dataset.features.get(column)
    if isinstance(feature, hf.Image) and feature.decode:
        return dataset.cast_column(column, hf.Image(decode=False))
    return dataset


def open_image(value: Any) -> Image.Image:
    """An RGB image from what an image column holds.

    Args:
        value: a PIL image, a file path, or the ``{"bytes", "path"}`` dict of an
            undecoded ``datasets.Image``. Grayscale, palette and RGBA images become RGB.

    Raises:
        DataError: the file is missing or is not a readable image; the message names it.
    """
    from PIL import Image

    if isinstance(value, Image.Image):
        image = value
    else:
        path, data = (value.get("path"), value.get("bytes")) if isinstance(value, dict) else (value, None)
        where = path or "an image stored in the data set"
        try:
            image = Image.open(io.BytesIO(data) if data is not None else str(path))
            image.load()  # decode now: a truncated file fails here, with its name
        except (OSError, ValueError, SyntaxError, EOFError) as e:  # what PIL raises for broken files
            raise DataError(
                f"{where}: cannot read it as an image ({type(e).__name__}: {e}); replace or remove the file"
            ) from None
    return image if image.mode == "RGB" else image.convert("RGB")
