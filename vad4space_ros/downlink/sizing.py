"""Byte estimates of downlink products: the full frame and a small thumbnail/heatmap.

A product's size decides what fits in a pass, so it is measured rather than guessed whenever the
frame (or its heatmap) was seen: the full product is the raw frame (``raw``, the message's data
length) or the frame compressed as PNG (lossless) or JPEG; the thumbnail is the frame or heatmap
scaled so that its longer side is ``max_side`` pixels, compressed as JPEG or PNG.
"""
from __future__ import annotations

import cv2
import numpy as np

PRODUCT_FORMATS = ('raw', 'png', 'jpeg')
THUMBNAIL_FORMATS = ('jpeg', 'png')


def encoded_size(image: np.ndarray, image_format: str, jpeg_quality: int = 90) -> int:
    """Return the byte size of an HxW or HxWx3 uint8 RGB image compressed as PNG or JPEG."""
    if image_format not in THUMBNAIL_FORMATS:
        raise ValueError(f'image format must be one of {THUMBNAIL_FORMATS}, got {image_format!r}')
    pixels = np.ascontiguousarray(image[:, :, ::-1] if image.ndim == 3 else image)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if image_format == 'jpeg' else []
    ok, encoded = cv2.imencode('.jpg' if image_format == 'jpeg' else '.png', pixels, params)
    if not ok:
        raise ValueError(f'cannot encode a {image.shape} {image.dtype} image as {image_format}')
    return int(encoded.size)


def thumbnail_size(image: np.ndarray, max_side: int, image_format: str,
                   jpeg_quality: int = 90) -> int:
    """Return the byte size of the image shrunk to ``max_side`` pixels (longer side), encoded."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else image
    return encoded_size(small, image_format, jpeg_quality)
