"""Request bodies to uint8 (N, 32, 32, 3) arrays, or a 4xx error naming the problem.

Images: multipart files or one raw image body, decoded by serve/decode.py. JSON:
{"images": <uint8 (N, 32, 32, 3) nested lists>} or the bare list. Before any pixel is decoded,
the request is held to its limits (settings): at most `max_images` images and `max_request_pixels`
pixels summed from the images' headers (413 naming the limit); the body's size and time are
bounded while it streams in (serve/limits.py). Parsing and decoding run in a worker thread,
never on the event loop, so /health and other requests go on meanwhile.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
from starlette.exceptions import HTTPException

from serve.decode import decode_image, open_image, to_rgb32
from serve.errors import BadInput

__all__ = ["BadInput", "decode_image", "parse_json_batch", "read_images"]
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/octet-stream", "")
HOW = 'send image files (multipart), one PNG/JPEG body, or JSON {"images": <uint8 (N, 32, 32, 3)>}'
DEPTH = 4  # JSON images nest (N, 32, 32, 3)


def _too_many(n: int, limit: int) -> BadInput:
    return BadInput(413, f"{n} images in one request is over the {limit}-image limit; split the request")


def parse_json_batch(obj: object, max_images: int | None = None) -> np.ndarray:
    """{"images": [...]} or [...] of integers 0..255 shaped (N, 32, 32, 3) -> uint8 array."""
    if isinstance(obj, dict):
        if "images" not in obj:
            raise BadInput(422, f'JSON body has keys {sorted(obj)[:5]}; send {{"images": <uint8 (N, 32, 32, 3)>}}')
        obj = obj["images"]
    if max_images is not None and isinstance(obj, list) and len(obj) > max_images:
        raise _too_many(len(obj), max_images)
    try:
        arr = np.asarray(obj)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise BadInput(422, "images: ragged nested lists; expected shape (N, 32, 32, 3)") from None
    if arr.ndim != DEPTH or arr.shape[1:] != (32, 32, 3) or arr.shape[0] < 1:
        raise BadInput(422, f"images: shape {arr.shape}; expected (N, 32, 32, 3) with N >= 1")
    if arr.dtype.kind not in "iu":
        raise BadInput(422, f"images: dtype {arr.dtype}; send integers 0..255 (uint8)")
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high > 255:
        raise BadInput(422, f"images: values {low}..{high} are outside uint8's 0..255")
    return arr.astype(np.uint8)


def json_images(body: bytes, max_images: int) -> np.ndarray:
    try:
        obj = json.loads(body)
    except RecursionError:
        raise BadInput(400, f"JSON nested too deeply; images nest {DEPTH} levels: (N, 32, 32, 3)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(400, f"body is not valid JSON ({exc}); {HOW}") from None
    return parse_json_batch(obj, max_images)


def decode_files(files: list[tuple[str, bytes]], s) -> np.ndarray:
    """(name, bytes) files -> uint8 (N, 32, 32, 3), the request's limits checked from the headers first."""
    if len(files) > s.max_images:
        raise _too_many(len(files), s.max_images)
    opened = [open_image(data, name, s.max_image_pixels) for name, data in files]
    total = sum(img.size[0] * img.size[1] for img in opened)
    if total > s.max_request_pixels:
        raise BadInput(413, f"{total} pixels in this request's images are over the {s.max_request_pixels}-pixel limit")
    return np.stack([to_rgb32(img, name) for img, (name, _) in zip(opened, files)])


async def _multipart(request, s) -> list[tuple[str, bytes]]:
    from starlette.datastructures import UploadFile

    try:
        form = await request.form(max_files=s.max_images)
    except HTTPException as exc:  # Starlette's "Too many files. Maximum number of files is N."
        if "too many files" in str(exc.detail).lower():
            detail = f"more than {s.max_images} images in one request is over the {s.max_images}-image limit"
            raise BadInput(413, f"{detail}; split the request") from None
        raise
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if not files:
        raise BadInput(400, f"multipart body has no file part; {HOW}")
    return [(f"file {f.filename or i!r}", await f.read()) for i, f in enumerate(files)]


async def read_images(request, s) -> np.ndarray:
    """A starlette request's images as uint8 (N, 32, 32, 3), or BadInput; s: serve Settings."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        files = await _multipart(request, s)
    else:
        body = await request.body()  # bounded in size and time as it streams in (serve/limits.py)
        if not body:
            raise BadInput(400, f"empty request body; {HOW}")
        if ctype == "application/json":
            return await asyncio.to_thread(json_images, body, s.max_images)
        if ctype not in IMAGE_TYPES:
            raise BadInput(415, f"content type {ctype!r} not accepted; {HOW}")
        files = [("body", body)]
    return await asyncio.to_thread(decode_files, files, s)
