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

"""Downlink policy: the knobs of ranking, selection, capacity and ageing, with descriptions.

The node declares one ROS parameter per field (same name, default and description) and the
store keeps a JSON copy so that ``vad4space queue show`` ranks with the policy the node used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
import json
from typing import Any


def knob(default: Any, description: str) -> Any:
    """Declare a policy field with its default and a description for the ROS parameter."""
    return field(default=default, metadata={'description': description})


@dataclass(frozen=True)
class DownlinkPolicy:
    """How the downlink queue ranks, selects, bounds and ages its products."""

    min_score: float = knob(
        0.0, 'Detections with a calibrated score below this are not queued (0.5 = threshold).')
    redundancy_weight: float = knob(
        0.9, 'lambda in priority = score * (1 - lambda * r): how much a near-duplicate of a '
        'higher-ranked or already released item is penalised (0 = no redundancy suppression).')
    similarity_floor: float = knob(
        0.95, 'Cosine similarity at or below which two embeddings count as distinct; '
        'r = clip((max_similarity - floor) / (1 - floor), 0, 1). PaDiM/MobileNetV2 embeddings '
        'of different synthetic Mars tiles reach 0.92, re-shot/noisy copies 0.986 and above.')
    ranking_window: int = knob(
        512, 'Number of queued items (highest scores first) ranked with redundancy suppression '
        'and offered to the knapsack in each round of a pass; the rest follow by score.')
    released_memory: int = knob(
        256, 'How many most recently released full products count as "already sent" for '
        'redundancy suppression.')
    capacity_items: int = knob(
        10000, 'Maximum number of queued items; beyond it the lowest-ranked item is evicted.')
    capacity_bytes: int = knob(
        2_000_000_000, 'Maximum total stored bytes of queued full products; beyond it the '
        'lowest-ranked items are evicted.')
    ttl_s: float = knob(
        604800.0, 'Queued items older than this (seconds since acceptance, wall clock) expire; '
        '0 disables expiry.')
    send_thumbnails: bool = knob(
        True, 'Spend budget that no further full product fits in on thumbnails of the '
        'best-ranked items not sent in full (a preview; their full products stay queued).')
    max_knapsack_buckets: int = knob(
        4096, 'Byte budget resolution of the knapsack: bytes are rounded up to multiples of '
        'ceil(budget / max_knapsack_buckets), so the chosen set always fits the budget.')

    def __post_init__(self) -> None:
        """Reject values that make the policy meaningless."""
        checks = [
            (0.0 <= self.redundancy_weight <= 1.0, 'redundancy_weight must be in [0, 1]'),
            (-1.0 <= self.similarity_floor < 1.0, 'similarity_floor must be in [-1, 1)'),
            (self.ranking_window >= 1, 'ranking_window must be >= 1'),
            (self.released_memory >= 0, 'released_memory must be >= 0'),
            (self.capacity_items >= 1, 'capacity_items must be >= 1'),
            (self.capacity_bytes >= 1, 'capacity_bytes must be >= 1'),
            (self.ttl_s >= 0.0, 'ttl_s must be >= 0'),
            (self.max_knapsack_buckets >= 1, 'max_knapsack_buckets must be >= 1'),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def descriptions(cls) -> dict[str, str]:
        """Return {field name: description}."""
        return {item.name: item.metadata['description'] for item in fields(cls)}

    def to_json(self) -> str:
        """Serialise to JSON (stored in the queue database)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'DownlinkPolicy':
        """Parse :meth:`to_json` output, ignoring unknown keys from other versions."""
        known = {item.name for item in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})
