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

"""Match detection records to ground-truth labels by header stamp, and score the matches.

ROS-free: the evaluator node feeds labels and records in as they arrive and asks
:class:`CompletionWatch` when to stop; :func:`evaluate` builds the result document, which
:func:`write_result` writes as JSON atomically.

Result document: ``counts`` (labels, detections, matched, unmatched and duplicate counts, plus
``malformed`` and ``expected``), ``model`` (methods, model ids, thresholds), ``latency_ms``
(mean, p50, p95, max of the records' latencies), ``metrics``
(:func:`~vad4space_ros.evaluation.metrics.image_metrics` of the records' calibrated scores at
the records' threshold; None plus ``error`` when not computable, e.g. a single class),
``decisions`` (confusion counts of the records' own ``is_anomaly``), the unmatched stamps,
``complete`` (every expected frame matched) and, optionally, ``frames`` (per-frame score,
decision and label).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from vad4space_ros.atomic_files import atomic_write_text
from vad4space_ros.data.labels import GroundTruth
from vad4space_ros.deploy.records import DetectionRecord
from vad4space_ros.evaluation.metrics import confusion_at, image_metrics

SUMMARY_METRICS = ('img_auroc', 'auc_pr', 'img_f1', 'img_acc', 'img_f1_oracle')


class StampMatcher:
    """Labels and detections keyed by header stamp; a repeated stamp keeps the first."""

    def __init__(self) -> None:
        """Start empty."""
        self.labels: dict[int, GroundTruth] = {}
        self.detections: dict[int, DetectionRecord] = {}
        self.duplicate_labels = 0
        self.duplicate_detections = 0

    def add_label(self, stamp_ns: int, truth: GroundTruth) -> None:
        """Store a label; a repeated stamp keeps the first one."""
        if stamp_ns in self.labels:
            self.duplicate_labels += 1
        else:
            self.labels[stamp_ns] = truth

    def add_detection(self, record: DetectionRecord) -> None:
        """Store a detection record; a repeated stamp keeps the first one."""
        if record.stamp_ns in self.detections:
            self.duplicate_detections += 1
        else:
            self.detections[record.stamp_ns] = record

    def matched_stamps(self) -> list[int]:
        """Return the stamps with both a label and a detection, in time order."""
        return sorted(self.labels.keys() & self.detections.keys())

    def matched_count(self) -> int:
        """Return how many stamps have both a label and a detection."""
        return len(self.labels.keys() & self.detections.keys())

    def counts(self) -> dict[str, int]:
        """Return label, detection, matched, unmatched and duplicate counts."""
        matched = self.matched_count()
        return {'labels': len(self.labels), 'detections': len(self.detections),
                'matched': matched,
                'labels_without_detection': len(self.labels) - matched,
                'detections_without_label': len(self.detections) - matched,
                'duplicate_labels': self.duplicate_labels,
                'duplicate_detections': self.duplicate_detections}


@dataclass
class CompletionWatch:
    """Decide when an evaluation run is over (times are ``time.monotonic()`` seconds).

    Over at the first of: ``expected`` frames matched (``expected_count``, else the count the
    replay announced when it finished); the replay finished and nothing arrived for
    ``quiet_period`` seconds; ``timeout`` seconds after ``start`` (0 = no timeout).
    """

    start: float
    expected_count: int = 0
    quiet_period: float = 2.0
    timeout: float = 0.0
    replay_state: str = ''
    replay_expected: int = 0
    last_activity: float = field(init=False)
    replay_finished_at: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        """Count the start as the last activity."""
        self.last_activity = self.start

    @property
    def expected(self) -> int:
        """Return the expected frame count (0 = not known yet)."""
        return self.expected_count or self.replay_expected

    def activity(self, now: float) -> None:
        """Note that a label or a detection arrived."""
        self.last_activity = now

    def replay_finished(self, state: str, labels_published: int, now: float) -> bool:
        """Note the replay's final state; return False if it was already noted."""
        self.replay_state = state
        if self.replay_finished_at is not None:
            return False
        self.replay_finished_at = now
        self.replay_expected = max(0, labels_published)
        return True

    def reason_to_finish(self, matched: int, now: float) -> str | None:
        """Return why the run is over, or None while it is not."""
        if self.expected and matched >= self.expected:
            return f'all {self.expected} expected frames matched'
        if self.replay_finished_at is not None and (
                now - max(self.last_activity, self.replay_finished_at) >= self.quiet_period):
            return f'replay {self.replay_state} and quiet for {self.quiet_period:.1f} s'
        if self.timeout and now - self.start >= self.timeout:
            return f'timeout after {self.timeout:.1f} s'
        return None


def _latency_summary(latencies: list[float]) -> dict[str, float] | None:
    if not latencies:
        return None
    values = np.asarray(latencies, dtype=np.float64)
    return {'mean': float(values.mean()), 'p50': float(np.percentile(values, 50)),
            'p95': float(np.percentile(values, 95)), 'max': float(values.max())}


def evaluate(matcher: StampMatcher, include_frames: bool = True, *, malformed: int = 0,
             expected: int = 0) -> dict[str, Any]:
    """Return the result document of the matched frames (``metrics`` None plus ``error``)."""
    stamps = matcher.matched_stamps()
    truths = [matcher.labels[stamp] for stamp in stamps]
    records = [matcher.detections[stamp] for stamp in stamps]
    labels = [truth.label for truth in truths]
    scores = [record.score for record in records]
    thresholds = sorted({record.threshold for record in records})
    counts = {**matcher.counts(), 'malformed': malformed, 'expected': expected}
    result: dict[str, Any] = {
        'counts': counts,
        'model': {'methods': sorted({r.method for r in records}),
                  'model_ids': sorted({r.model_id for r in records}),
                  'thresholds': thresholds},
        'latency_ms': _latency_summary([record.latency_ms for record in records]),
        'metrics': None, 'decisions': None, 'error': None,
        'complete': bool(expected and counts['matched'] == expected
                         and not counts['labels_without_detection']),
    }
    try:
        result['metrics'] = image_metrics(
            labels, scores, thresholds[0] if len(thresholds) == 1 else None)
    except ValueError as error:
        result['error'] = str(error)
    if records:
        decisions = confusion_at(labels, [float(r.is_anomaly) for r in records], 0.5)
        decisions.pop('threshold')
        result['decisions'] = decisions
    result['unmatched_label_stamps'] = sorted(matcher.labels.keys() - set(stamps))
    result['unmatched_detection_stamps'] = sorted(matcher.detections.keys() - set(stamps))
    if include_frames:
        result['frames'] = [
            {'stamp_ns': stamp, 'label': truth.label, 'category': truth.category,
             'source': truth.source, 'score': record.score, 'raw_score': record.raw_score,
             'is_anomaly': record.is_anomaly, 'latency_ms': record.latency_ms}
            for stamp, truth, record in zip(stamps, truths, records)]
    return result


def format_metric(value: float | None) -> str:
    """Format a metric with four decimals, ``n/a`` when undefined."""
    return 'n/a' if value is None or not math.isfinite(value) else f'{value:.4f}'


def summary_line(result: dict[str, Any]) -> str:
    """Return a one-line summary: why it ended, the match counts, the headline metrics."""
    counts, metrics = result['counts'], result['metrics']
    summary = (f'{result.get("reason", "evaluated")}: {counts["matched"]} matched, '
               f'{counts["labels_without_detection"]} labels without detection, '
               f'{counts["detections_without_label"]} detections without label')
    if metrics is None:
        return summary + f'; no metrics: {result["error"]}'
    return summary + (f'; img-AUROC {metrics["img_auroc"]:.4f}, AUC-PR {metrics["auc_pr"]:.4f}, '
                      f'img-F1 {format_metric(metrics["img_f1"])}, '
                      f'img-ACC {format_metric(metrics["img_acc"])}')


def summary_values(result: dict[str, Any]) -> dict[str, str]:
    """Return the counts, completeness and headline metrics as strings (for a status)."""
    values = {key: str(value) for key, value in result['counts'].items()}
    values['complete'] = str(result['complete']).lower()
    if result['metrics'] is not None:
        values.update({key: format_metric(result['metrics'][key]) for key in SUMMARY_METRICS})
    return values


def write_result(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the result document as JSON atomically; raise ValueError on NaN or infinity."""
    return atomic_write_text(path, json.dumps(result, indent=1, allow_nan=False) + '\n')
