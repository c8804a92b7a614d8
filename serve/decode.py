"""Image files to uint8 (32, 32, 3) RGB as a person sees them, in two steps so a request's
limits are checked from the headers before any pixel is decoded:

- `open_image`: the header only (format, size); 413 over the per-image pixel limit, also when
  the size is beyond Pillow's own decompression-bomb limit; 415 for what is not an accepted format.
- `to_rgb32`: decode the first frame (multi-picture JPEGs (MPO), animated GIF/PNG/WebP), apply
  the EXIF orientation, scale 16-bit greyscale to 8 bits (Pillow's convert would clip it to white),
  convert to RGB (alpha dropped) and resize to 32x32 with Pillow's bicubic filter (antialiased when
  shrinking; the aspect ratio is not kept). A truncated or corrupt file is 400 naming it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from serve.errors import BadInput

SIZE = (32, 32)
FORMATS = ("PNG", "JPEG", "MPO", "GIF", "WEBP")  # MPO: multi-picture JPEG (phone cameras)
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # greyscale over 8 bits (PNG 16-bit opens as one)


def open_image(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """The image's header, checked: format and width x height <= max_pixels. Nothing decoded yet."""
    if not data:
        raise BadInput(400, f"{name}: empty file; send a PNG or JPEG image")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise BadInput(413, f"{name}: declared size is over the {max_pixels}-pixel limit; downscale it") from None
    except UnidentifiedImageError:
        raise BadInput(415, f"{name}: not a PNG or JPEG image ({len(data)} bytes Pillow cannot identify)") from None
    except Exception as exc:  # a malformed header raises whatever its parser does
        raise BadInput(400, f"{name}: truncated or corrupt image header ({type(exc).__name__}: {exc})") from None
    if img.format not in FORMATS:
        raise BadInput(415, f"{name}: {img.format} image; send PNG or JPEG (GIF, WebP also accepted)")
    width, height = img.size
    if width * height > max_pixels:
        raise BadInput(
            413, f"{name}: {width}x{height} image is over the {max_pixels}-pixel limit; downscale it (to 32x32 ideally)"
        )
    return img


def eight_bit(img: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) greyscale -> 8-bit "L", scaled from 0..65535 (not clipped)."""
    if img.mode not in WIDE_MODES:
        return img
    wide = np.asarray(img).astype(np.int64)
    return Image.fromarray(((np.clip(wide, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8), mode="L")


def to_rgb32(img: Image.Image, name: str) -> np.ndarray:
    """An opened image (its first frame) -> uint8 (32, 32, 3), as displayed (EXIF orientation)."""
    try:
        img.seek(0)
        img.load()  # decodes now: a truncated or corrupt file fails here
        upright = ImageOps.exif_transpose(img) or img
        rgb = eight_bit(upright).convert("RGB")
        if rgb.size != SIZE:
            rgb = rgb.resize(SIZE, Image.Resampling.BICUBIC)
    except Exception as exc:  # any decoder failure is the file's fault, not the server's
        raise BadInput(400, f"{name}: truncated or corrupt {img.format} ({type(exc).__name__}: {exc})") from None
    return np.asarray(rgb, dtype=np.uint8)


def decode_image(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """One image file -> uint8 (32, 32, 3) RGB (or BadInput)."""
    return to_rgb32(open_image(data, name, max_pixels), name)
