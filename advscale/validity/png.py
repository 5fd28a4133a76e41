"""PNG encoding of small RGB images with nearest-neighbour upscaling (standard library + numpy).

Raters must see the pixels the model saw: every source pixel becomes a ``scale`` x ``scale``
block of identical pixels, with no smoothing, so a 32x32 CIFAR-10 image at ``scale=8`` is a
256x256 PNG whose 8x8 blocks are exactly the original pixels.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from advscale.errors import AdvscaleError

MAX_SCALE = 32
"""The largest upscaling factor accepted (a 32x32 image becomes at most 1024x1024)."""


def upscale_nearest(image: np.ndarray, scale: int) -> np.ndarray:
    """Repeat each pixel of an (H, W, C) image ``scale`` times along both axes."""
    if not 1 <= scale <= MAX_SCALE:
        raise AdvscaleError(f"scale {scale} must be between 1 and {MAX_SCALE}")
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _chunk(tag: bytes, data: bytes) -> bytes:
    body = tag + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_png(image: np.ndarray, scale: int = 1) -> bytes:
    """Encode a uint8 (H, W, 3) RGB image as PNG bytes, upscaled ``scale`` times (nearest)."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise AdvscaleError(f"encode_png needs uint8 (H, W, 3) pixels, got {img.dtype} {img.shape}")
    if scale != 1:
        img = upscale_nearest(img, scale)
    h, w = img.shape[:2]
    rows = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)], axis=1)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def decode_png(data: bytes) -> np.ndarray:
    """Decode a PNG written by :func:`encode_png` (8-bit RGB, filter 0) back to (H, W, 3) uint8.

    Used by tests and by machine raters written in Python; not a general PNG decoder.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AdvscaleError("not a PNG")
    pos, idat = 8, b""
    w = h = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if tag == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            if (depth, color) != (8, 2):
                raise AdvscaleError("decode_png reads 8-bit RGB only")
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * 3)
    if raw[:, 0].any():
        raise AdvscaleError("decode_png reads unfiltered rows only")
    return raw[:, 1:].reshape(h, w, 3).copy()
