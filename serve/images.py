"""Request bodies to uint8 (N, 32, 32, 3) arrays, or a 4xx error naming the problem.

Images: PNG or JPEG of any size, converted to RGB and resized to 32x32 with
Pillow's bicubic filter (antialiased when shrinking; the aspect ratio is not
kept). JSON: {"images": <uint8 (N, 32, 32, 3) nested lists>} or the bare list.
"""

from __future__ import annotations

import io

import numpy as np

SIZE = (32, 32)
FORMATS = ("PNG", "JPEG")


class BadInput(Exception):
    """A request the server refuses: an HTTP status (4xx) and one line naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def decode_image(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """One PNG/JPEG file -> uint8 (32, 32, 3) RGB."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadInput(400, f"{name}: empty file; send a PNG or JPEG image")
    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError):
        raise BadInput(415, f"{name}: not a PNG or JPEG image ({len(data)} bytes Pillow cannot identify)") from None
    if img.format not in FORMATS:
        raise BadInput(415, f"{name}: {img.format} image; send PNG or JPEG")
    width, height = img.size
    if width * height > max_pixels:
        raise BadInput(
            413, f"{name}: {width}x{height} image is over the {max_pixels}-pixel limit; downscale it (to 32x32 ideally)"
        )
    try:
        img.load()  # decodes now: a truncated or corrupt file fails here
        rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInput(400, f"{name}: truncated or corrupt {img.format} ({exc})") from None
    if rgb.size != SIZE:
        rgb = rgb.resize(SIZE, Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def parse_json_batch(obj: object) -> np.ndarray:
    """{"images": [...]} or [...] of integers 0..255 shaped (N, 32, 32, 3) -> uint8 array."""
    if isinstance(obj, dict):
        if "images" not in obj:
            raise BadInput(422, f'JSON body has keys {sorted(obj)[:5]}; send {{"images": <uint8 (N, 32, 32, 3)>}}')
        obj = obj["images"]
    try:
        arr = np.asarray(obj)
    except ValueError:
        raise BadInput(422, "images: ragged nested lists; expected shape (N, 32, 32, 3)") from None
    if arr.ndim != 4 or arr.shape[1:] != (32, 32, 3) or arr.shape[0] < 1:
        raise BadInput(422, f"images: shape {arr.shape}; expected (N, 32, 32, 3) with N >= 1")
    if arr.dtype.kind not in "iu":
        raise BadInput(422, f"images: dtype {arr.dtype}; send integers 0..255 (uint8)")
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high > 255:
        raise BadInput(422, f"images: values {low}..{high} are outside uint8's 0..255")
    return arr.astype(np.uint8)
