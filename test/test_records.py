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

"""Detection records survive their key/value wire form; malformed ones are refused."""
from __future__ import annotations

import numpy as np
import pytest

from vad4space_ros.deploy.records import DetectionRecord, RecordError, Region


def record(**changes) -> DetectionRecord:
    """Return a valid record with two regions, with ``changes`` applied."""
    values = {'stamp_ns': 12, 'frame_id': 'mastcam', 'score': 1.2, 'raw_score': 3.4,
              'threshold': 0.5, 'is_anomaly': True, 'method': 'padim', 'model_id': 'padim-x',
              'latency_ms': 9.5, 'embedding': np.array([0.5, -0.25], np.float32),
              'regions': [Region(10, 20, 64, 64, 1.5), Region(0, 0, 8, 4, 0.7)]}
    values.update(changes)
    return DetectionRecord(**values)


def test_round_trip_keeps_every_field_and_region() -> None:
    """Parsing what to_key_values wrote gives the same record, regions in order."""
    original = record()
    parsed = DetectionRecord.from_key_values(original.to_key_values())
    assert parsed.regions == original.regions
    np.testing.assert_array_equal(parsed.embedding, original.embedding)
    assert (parsed.stamp_ns, parsed.score, parsed.model_id) == (12, 1.2, 'padim-x')


def test_records_without_regions_still_parse() -> None:
    """A record from before regions existed (no 'regions' key) has no regions."""
    pairs = [pair for pair in record().to_key_values() if pair[0] != 'regions']
    assert DetectionRecord.from_key_values(pairs).regions == []


@pytest.mark.parametrize('text', ['[{"x": 1}]', '{"x": 1}', 'not json',
                                  '[{"x": -1, "y": 0, "width": 4, "height": 4, "score": 1}]',
                                  '[{"x": 0, "y": 0, "width": 0, "height": 4, "score": 1}]'])
def test_malformed_regions_are_refused(text: str) -> None:
    """Regions that are not boxes with x, y >= 0 and a positive size raise RecordError."""
    pairs = [(k, text if k == 'regions' else v) for k, v in record().to_key_values()]
    with pytest.raises(RecordError):
        DetectionRecord.from_key_values(pairs)
