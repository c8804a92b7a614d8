"""Images decode as a person sees them (EXIF orientation, 16-bit greyscale scaled, the first frame
of animations and multi-picture JPEGs); a request's limits are checked from the headers first."""

from __future__ import annotations

import io
import json
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from serve.decode import decode_image, open_image
from serve.errors import BadInput
from serve.images import decode_files, json_images


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _halves() -> Image.Image:
    """32x32: left half red, right half blue."""
    arr = np.zeros((32, 32, 3), np.uint8)
    arr[:, :16, 0] = 255
    arr[:, 16:, 2] = 255
    return Image.fromarray(arr)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees: displayed left blue, right red
    out = decode_image(_encode(_halves(), "JPEG", exif=exif, quality=95), "r.jpg", 1 << 20)
    assert out[16, 4, 2] > 200 and out[16, 4, 0] < 60  # left is blue as displayed
    assert out[16, 28, 0] > 200 and out[16, 28, 2] < 60
    plain = decode_image(_encode(_halves(), "JPEG", quality=95), "p.jpg", 1 << 20)
    assert plain[16, 4, 0] > 200


def test_16_bit_greyscale_is_scaled_not_clipped_to_white():
    ramp = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0..65472
    img = Image.fromarray(ramp)
    assert img.mode.startswith("I")
    out = decode_image(_encode(img, "PNG"), "deep.png", 1 << 20)
    expect = np.round(ramp / 257).astype(int)
    assert np.abs(out[..., 0].astype(int) - expect).max() <= 1
    assert (out[..., 0] == out[..., 1]).all() and out.min() == 0 and 200 < out.max() < 256
    assert (out < 255).mean() > 0.9  # clipping would make almost every pixel 255


def test_animated_gif_and_png_and_multi_picture_jpeg_take_the_first_frame():
    red, blue = Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))
    gif = _encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    apng = _encode(red, "PNG", save_all=True, append_images=[blue])
    mpo = _encode(red, "MPO", save_all=True, append_images=[blue], quality=95)
    assert Image.open(io.BytesIO(mpo)).format == "MPO" and Image.open(io.BytesIO(gif)).n_frames == 2
    for data in (gif, apng, mpo):
        out = decode_image(data, "a", 1 << 20)
        assert out[..., 0].min() > 200 and out[..., 2].max() < 60


def test_truncated_and_corrupt_images_are_400_naming_the_file():
    png = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)), "PNG")
    jpg = _encode(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")
    for data in (png[: len(png) // 2], png[:-30], jpg[:200], jpg[: len(jpg) // 2]):
        with pytest.raises(BadInput) as err:
            decode_image(data, "file 'cat.png'", 1 << 20)
        assert err.value.status == 400, err.value.message
        assert err.value.message.startswith("file 'cat.png': truncated or corrupt"), err.value.message


def test_a_declared_size_beyond_the_limits_is_413_before_decoding():
    # A PNG header declaring 100000 x 100000 pixels (beyond Pillow's own bomb limit): 413, not 415.
    big = _encode(Image.new("L", (1, 1)), "PNG")
    ihdr = big.index(b"IHDR")
    header = b"IHDR" + (100000).to_bytes(4, "big") * 2 + big[ihdr + 12 : ihdr + 17]
    bomb = big[:ihdr] + header + zlib.crc32(header).to_bytes(4, "big") + big[ihdr + 21 :]
    with pytest.raises(BadInput) as err:
        open_image(bomb, "bomb.png", 4096 * 4096)
    assert err.value.status == 413 and "16777216-pixel limit" in err.value.message
    s = SimpleNamespace(max_images=3, max_image_pixels=1 << 20, max_request_pixels=3000)
    small = _encode(Image.new("RGB", (40, 40)), "PNG")
    with pytest.raises(BadInput) as err:
        decode_files([("a", small)] * 4, s)
    assert err.value.status == 413 and "4 images in one request is over the 3-image limit" in err.value.message
    with pytest.raises(BadInput) as err:
        decode_files([("a", small), ("b", small)], s)  # 3200 pixels declared
    assert err.value.status == 413 and "3200 pixels" in err.value.message and "3000-pixel limit" in err.value.message
    assert decode_files([("a", small)], s).shape == (1, 32, 32, 3)


def test_json_limits_malformed_and_absurdly_nested_bodies():
    one = np.zeros((1, 32, 32, 3), int).tolist()
    assert json_images(json.dumps({"images": one}).encode(), 2).shape == (1, 32, 32, 3)
    with pytest.raises(BadInput) as err:
        json_images(json.dumps({"images": one * 3}).encode(), 2)
    assert err.value.status == 413 and "3 images" in err.value.message
    for body, words in ((b"[" * 200_000 + b"]" * 200_000, "nested too deeply"), (b'{"images": [', "not valid JSON")):
        with pytest.raises(BadInput) as err:
            json_images(body, 2)
        assert err.value.status == 400 and words in err.value.message
    with pytest.raises(BadInput) as err:
        json_images(b"[" * 500 + b"]" * 500, 2)  # deep but under the parser's limit: numpy refuses it
    assert err.value.status == 422
