# Copyright 2026 The vad4space_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Capture of downlink products: the bytes that a pass carries home for one detection.

A detection's **full product** is its frame, or the crops of its regions when the record has
regions (:class:`~vad4space_ros.deploy.records.Region`, boxes in frame pixels), each encoded as
PNG (lossless) or JPEG, plus the detection record (JSON). Its **thumbnail** is the heatmap (or the
frame) shrunk so that its longer side is ``max_side`` pixels, encoded as JPEG or PNG. The bytes
are encoded once, when the detection is accepted, and stored with it; the pass budget, capacity
and the knapsack use their real lengths.
"""
from __future__ import annotations

from dataclasses import dataclass
import json

import cv2
import numpy as np

from vad4space_ros.deploy.records import DetectionRecord, Region
from vad4space_ros.downlink.schema import FRAME, HEATMAP, REGION

IMAGE_FORMATS = ('png', 'jpeg')


@dataclass(frozen=True)
class CaptureSettings:
    """How products are encoded."""

    image_format: str = 'png'
    thumbnail_format: str = 'jpeg'
    thumbnail_max_side: int = 128
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        """Reject unknown formats and out-of-range values."""
        for name in ('image_format', 'thumbnail_format'):
            if getattr(self, name) not in IMAGE_FORMATS:
                raise ValueError(f'{name} must be one of {IMAGE_FORMATS}, '
                                 f'got {getattr(self, name)!r}')
        if self.thumbnail_max_side < 1:
            raise ValueError('thumbnail_max_side must be >= 1')
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError('jpeg_quality must be in 1..100')


@dataclass(frozen=True)
class ProductPart:
    """One encoded image of a product, with where it lies in the frame."""

    kind: str  # frame, region or heatmap
    part: int  # index among the parts of that kind
    image_format: str
    box: tuple[int, int, int, int]  # x, y, width, height in frame pixels
    region_score: float | None
    data: bytes


def record_json(record: DetectionRecord) -> str:
    """Return the record as the JSON object stored and sent with its full product."""
    return json.dumps(dict(record.to_key_values()), sort_keys=True)


def encode_image(image: np.ndarray, image_format: str, jpeg_quality: int = 90) -> bytes:
    """Encode an HxW or HxWx3 uint8 RGB image as PNG or JPEG bytes."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f'image format must be one of {IMAGE_FORMATS}, got {image_format!r}')
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f'cannot encode a {image.shape} {image.dtype} image')
    pixels = np.ascontiguousarray(image[:, :, ::-1] if image.ndim == 3 else image)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if image_format == 'jpeg' else []
    ok, encoded = cv2.imencode('.jpg' if image_format == 'jpeg' else '.png', pixels, params)
    if not ok:
        raise ValueError(f'cannot encode a {image.shape} image as {image_format}')
    return encoded.tobytes()


def decode_image(data: bytes) -> np.ndarray:
    """Decode PNG/JPEG bytes to an HxWx3 uint8 RGB image (raise ValueError if unreadable)."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError('bytes are not a PNG or JPEG image')
    return pixels[:, :, ::-1]


def clip_region(region: Region, height: int, width: int) -> tuple[int, int, int, int] | None:
    """Return the region's box clipped to the frame, or None if nothing of it is inside."""
    x0, y0 = min(region.x, width), min(region.y, height)
    x1, y1 = min(region.x + region.width, width), min(region.y + region.height, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def capture_frame(image: np.ndarray, regions: list[Region],
                  settings: CaptureSettings) -> list[ProductPart]:
    """Encode the frame, or one crop per region (regions outside the frame are skipped)."""
    height, width = image.shape[:2]
    if not regions:
        return [ProductPart(FRAME, 0, settings.image_format, (0, 0, width, height), None,
                            encode_image(image, settings.image_format, settings.jpeg_quality))]
    parts = []
    for region in regions:
        box = clip_region(region, height, width)
        if box is None:
            continue
        x, y, w, h = box
        crop = encode_image(image[y:y + h, x:x + w], settings.image_format,
                            settings.jpeg_quality)
        parts.append(ProductPart(REGION, len(parts), settings.image_format, box, region.score,
                                 crop))
    return parts


def capture_thumbnail(image: np.ndarray, settings: CaptureSettings) -> ProductPart:
    """Shrink an image (heatmap or frame) to the thumbnail size and encode it."""
    height, width = image.shape[:2]
    scale = min(1.0, settings.thumbnail_max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else image
    return ProductPart(HEATMAP, 0, settings.thumbnail_format, (0, 0, width, height), None,
                       encode_image(small, settings.thumbnail_format, settings.jpeg_quality))
