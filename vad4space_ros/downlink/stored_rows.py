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

"""Rows of the downlink store as Python values: items, releases, product parts, embeddings."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import hashlib

import numpy as np

from vad4space_ros.downlink.schema import THUMBNAIL


@dataclass(frozen=True)
class StoredItem:
    """A queued item as the ranking needs it."""

    item_id: int
    frame_id: str
    stamp_ns: int
    score: float
    is_anomaly: bool
    embedding: np.ndarray
    product_bytes: int
    thumbnail_bytes: int
    thumbnail_sent: bool
    accepted_ns: int


@dataclass(frozen=True)
class Release:
    """One row of the outbox joined with its item."""

    release_id: int
    item_id: int
    pass_id: int
    position: int
    product: str
    size: int
    priority: float
    attempts: int
    frame_id: str
    stamp_ns: int
    score: float
    is_anomaly: bool
    model_id: str
    method: str
    record_json: str
    missing: str


@dataclass(frozen=True)
class StoredPart:
    """One captured product part: a frame, a region crop or a heatmap thumbnail (encoded)."""

    kind: str
    part: int
    image_format: str
    box: tuple[int, int, int, int]  # x, y, width, height in frame pixels
    region_score: float | None
    data: bytes

    @property
    def sha256(self) -> str:
        """Hex digest of the bytes (pairs an image message with its description)."""
        return hashlib.sha256(self.data).hexdigest()


def encode_embedding(embedding: np.ndarray) -> bytes:
    """Store embeddings as float16 (half the space; cosine similarity is unaffected)."""
    return np.asarray(embedding, dtype=np.float16).ravel().tobytes()


def decode_embedding(blob: bytes) -> np.ndarray:
    """Inverse of :func:`encode_embedding` (float32)."""
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


ITEM_COLUMNS = ('items.id, frame_id, stamp_ns, score, is_anomaly, embedding, product_bytes, '
                'thumbnail_bytes, EXISTS (SELECT 1 FROM releases r WHERE r.item_id = items.id '
                f"AND r.product = '{THUMBNAIL}'), accepted_ns")
RELEASE_COLUMNS = ('r.id, r.item_id, r.pass_id, r.position, r.product, r.bytes, r.priority, '
                   'r.attempts, i.frame_id, i.stamp_ns, i.score, i.is_anomaly, i.model_id, '
                   'i.method, i.record_json, i.missing')
PART_COLUMNS = 'kind, part, format, x, y, width, height, region_score, data'


def item_from_row(row: Sequence) -> StoredItem:
    """Build a :class:`StoredItem` from a row selected with ``ITEM_COLUMNS``."""
    return StoredItem(int(row[0]), row[1], int(row[2]), float(row[3]), bool(row[4]),
                      decode_embedding(row[5]), int(row[6]), int(row[7]), bool(row[8]),
                      int(row[9]))


def release_from_row(row: Sequence) -> Release:
    """Build a :class:`Release` from a row selected with ``RELEASE_COLUMNS``."""
    return Release(*row[:10], float(row[10]), bool(row[11]), *row[12:16])


def part_from_row(row: Sequence) -> StoredPart:
    """Build a :class:`StoredPart` from a row selected with ``PART_COLUMNS``."""
    return StoredPart(row[0], int(row[1]), row[2], (int(row[3]), int(row[4]), int(row[5]),
                                                    int(row[6])), row[7], bytes(row[8]))
