"""Request bodies to uint8 (N, 32, 32, 3) arrays, or a 4xx error naming the problem.

Images: PNG or JPEG of any size, converted to RGB and resized to 32x32 with
Pillow's bicubic filter (antialiased when shrinking; the aspect ratio is not
kept). JSON: {"images": <uint8 (N, 32, 32, 3) nested lists>} or the bare list.
"""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np

SIZE = (32, 32)
FORMATS = ("PNG", "JPEG")
OFFLOAD_BYTES = 256 << 10  # bodies above this are decoded in a thread, off the event loop
HOW = 'send image files (multipart), one PNG/JPEG body, or JSON {"images": <uint8 (N, 32, 32, 3)>}'


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


async def _multipart(request, s) -> list[tuple[str, bytes]]:
    from starlette.datastructures import UploadFile

    form = await request.form(max_files=max(1, s.max_request_bytes // 64))
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if not files:
        raise BadInput(400, f"multipart body has no file part; {HOW}")
    return [(f"file {f.filename or i!r}", await f.read()) for i, f in enumerate(files)]


async def read_images(request, s) -> np.ndarray:
    """A starlette request's images as uint8 (N, 32, 32, 3), or BadInput; s: serve Settings."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > s.max_request_bytes:
        raise BadInput(413, f"request body of {length} bytes is over the {s.max_request_bytes}-byte limit")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if length == "0":
        raise BadInput(400, f"empty request body; {HOW}")
    if ctype == "multipart/form-data":
        files = await _multipart(request, s)
    else:
        body = await request.body()
        if len(body) > s.max_request_bytes:
            raise BadInput(413, f"request body of {len(body)} bytes is over the {s.max_request_bytes}-byte limit")
        if not body:
            raise BadInput(400, f"empty request body; {HOW}")
        if ctype == "application/json":
            try:
                return parse_json_batch(json.loads(body))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise BadInput(400, f"body is not valid JSON ({exc}); {HOW}") from None
        if ctype not in ("image/png", "image/jpeg", "application/octet-stream", ""):
            raise BadInput(415, f"content type {ctype!r} not accepted; {HOW}")
        files = [("body", body)]

    def decode() -> np.ndarray:
        return np.stack([decode_image(data, name, s.max_image_pixels) for name, data in files])

    if sum(len(d) for _, d in files) > OFFLOAD_BYTES:
        return await asyncio.to_thread(decode)
    return decode()
