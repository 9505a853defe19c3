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

"""Ground-truth labels of benchmark frames and their key/value wire form (ROS-free).

A label travels as one ``diagnostic_msgs/DiagnosticStatus`` inside a ``DiagnosticArray`` that
carries the frame's header stamp: name ``vad4space/ground_truth``, level OK (normal) or WARN
(anomaly), message ``normal``/``anomaly``, hardware_id = dataset, and the KeyValue pairs
``label`` (0/1), ``category``, ``source`` (file name), ``split`` and ``index`` (position in the
stream). :mod:`vad4space_ros.data.bags` writes it, the replay node publishes it and the evaluator
node reads it, all through this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, TYPE_CHECKING

if TYPE_CHECKING:
    from vad4space_ros.data.samples import Sample

LABEL_STATUS_NAME = 'vad4space/ground_truth'
NORMAL_MESSAGE = 'normal'
ANOMALY_MESSAGE = 'anomaly'


class LabelError(ValueError):
    """A label message lacks the ground-truth status or holds a malformed label."""


@dataclass(frozen=True)
class GroundTruth:
    """The label of one frame: 1 = anomaly, 0 = normal, and where the frame came from."""

    label: int
    category: str = ''
    source: str = ''
    split: str = ''
    index: int | None = None
    dataset: str = ''

    @classmethod
    def of_sample(cls, sample: Sample, index: int, dataset: str) -> GroundTruth:
        """Describe the ``index``-th frame of a stream, made from ``sample``."""
        return cls(int(sample.label), sample.category, sample.path.name, sample.split, index,
                   dataset)

    @property
    def message(self) -> str:
        """Return the status message: ``anomaly`` or ``normal``."""
        return ANOMALY_MESSAGE if self.label else NORMAL_MESSAGE

    def to_key_values(self) -> list[tuple[str, str]]:
        """Return the label as ordered (key, value) string pairs (``index`` only when known)."""
        pairs = [('label', str(self.label)), ('category', self.category),
                 ('source', self.source), ('split', self.split)]
        return pairs + ([('index', str(self.index))] if self.index is not None else [])

    @classmethod
    def from_key_values(cls, pairs: Iterable[tuple[str, str]],
                        dataset: str = '') -> GroundTruth:
        """Parse pairs written by :meth:`to_key_values`; raise LabelError when malformed."""
        values = dict(pairs)
        if values.get('label') not in ('0', '1'):
            raise LabelError(f'label must be 0 or 1, got {values.get("label")!r}')
        index = values.get('index')
        if index is not None and not index.isdigit():
            raise LabelError(f'index must be a non-negative integer, got {index!r}')
        return cls(int(values['label']), values.get('category', ''), values.get('source', ''),
                   values.get('split', ''), None if index is None else int(index), dataset)


def ground_truth_of(statuses: Iterable[Any]) -> GroundTruth:
    """Read the ground truth among the statuses of a DiagnosticArray (rclpy or rosbags).

    Raise LabelError when no status is named ``vad4space/ground_truth`` or its label is bad.
    """
    for status in statuses:
        if status.name == LABEL_STATUS_NAME:
            return GroundTruth.from_key_values(
                ((pair.key, pair.value) for pair in status.values), status.hardware_id)
    raise LabelError(f'DiagnosticArray has no {LABEL_STATUS_NAME!r} status')
