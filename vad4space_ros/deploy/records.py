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

"""Per-frame detection records and their key/value wire form.

The detector publishes one record per frame as a ``diagnostic_msgs/DiagnosticArray`` whose single
status carries these fields as ``KeyValue`` pairs (standard messages only: no custom interface
package is needed to consume it). This module is ROS-free: nodes convert to/from messages.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json

import numpy as np

RECORD_NAME = 'vad4space/detection'


class RecordError(ValueError):
    """A key/value record is missing fields or holds values of the wrong type."""


@dataclass(frozen=True)
class Region:
    """An anomalous area of a frame: a box in pixels (top-left origin) and its score."""

    x: int
    y: int
    width: int
    height: int
    score: float

    @classmethod
    def from_dict(cls, values: dict) -> 'Region':
        """Build from ``{'x', 'y', 'width', 'height', 'score'}``; raise RecordError if bad."""
        try:
            region = cls(int(values['x']), int(values['y']), int(values['width']),
                         int(values['height']), float(values['score']))
        except (KeyError, TypeError, ValueError) as error:
            raise RecordError(f'malformed region {values!r}: {error}') from None
        if region.width <= 0 or region.height <= 0 or region.x < 0 or region.y < 0:
            raise RecordError(f'region must have x, y >= 0 and a positive size: {values!r}')
        return region


@dataclass
class DetectionRecord:
    """What the detector concluded about one frame."""

    stamp_ns: int
    frame_id: str
    score: float
    raw_score: float
    threshold: float
    is_anomaly: bool
    method: str
    model_id: str
    latency_ms: float
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    regions: list[Region] = field(default_factory=list)

    def to_key_values(self) -> list[tuple[str, str]]:
        """Return the record as ordered (key, value) string pairs."""
        return [
            ('stamp_ns', str(self.stamp_ns)),
            ('frame_id', self.frame_id),
            ('score', repr(float(self.score))),
            ('raw_score', repr(float(self.raw_score))),
            ('threshold', repr(float(self.threshold))),
            ('is_anomaly', 'true' if self.is_anomaly else 'false'),
            ('method', self.method),
            ('model_id', self.model_id),
            ('latency_ms', f'{self.latency_ms:.3f}'),
            ('embedding', ','.join(f'{v:.5g}' for v in np.asarray(self.embedding).ravel())),
            ('regions', json.dumps([asdict(region) for region in self.regions])),
        ]

    @classmethod
    def from_key_values(cls, pairs: list[tuple[str, str]]) -> 'DetectionRecord':
        """Parse pairs written by :meth:`to_key_values`; raise RecordError when malformed."""
        values = dict(pairs)
        try:
            embedding_text = values.get('embedding', '')
            embedding = np.array(
                [float(v) for v in embedding_text.split(',')] if embedding_text else [],
                dtype=np.float32)
            flag = values['is_anomaly']
            if flag not in ('true', 'false'):
                raise RecordError(f'is_anomaly must be true/false, got {flag!r}')
            record = cls(
                stamp_ns=int(values['stamp_ns']),
                frame_id=values['frame_id'],
                score=float(values['score']),
                raw_score=float(values['raw_score']),
                threshold=float(values['threshold']),
                is_anomaly=flag == 'true',
                method=values['method'],
                model_id=values['model_id'],
                latency_ms=float(values['latency_ms']),
                embedding=embedding,
                regions=[Region.from_dict(item)
                         for item in json.loads(values.get('regions') or '[]')],
            )
        except KeyError as missing:
            raise RecordError(f'detection record lacks field {missing}') from None
        except RecordError:
            raise
        except (ValueError, TypeError, AttributeError) as bad:
            raise RecordError(f'detection record has a malformed value: {bad}') from None
        if not np.isfinite([record.score, record.raw_score, record.threshold]).all():
            raise RecordError('detection record has a non-finite score or threshold')
        return record
