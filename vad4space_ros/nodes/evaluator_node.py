"""``vad4space_evaluator``: match detections to ground-truth labels and write the metrics.

Subscriptions (relative names; remap them)

- ``detection`` ``diagnostic_msgs/DiagnosticArray``: the detector's per-frame records
  (:mod:`vad4space_ros.deploy.records`), reliable;
- ``label`` ``diagnostic_msgs/DiagnosticArray``: ground truth as written in benchmark bags
  (:mod:`vad4space_ros.data.bags`: status ``vad4space/ground_truth`` with ``label`` 0/1,
  ``category``, ``source``, ``index``), reliable; transient-local when ``labels_transient_local``
  is set (``vad4space_replay`` offers it, so a late evaluator still gets every label; ``ros2 bag
  play`` offers volatile, which a transient-local subscription would not match);
- ``replay_status`` ``diagnostic_msgs/DiagnosticArray`` (reliable, transient-local): the replay's
  ``~/status``; its ``done`` state carries ``labels_published``, the expected frame count;
- ``~/finish`` ``std_msgs/Empty``: evaluate now with what has arrived.

Detections and labels are buffered on both sides and matched by header stamp; a repeated stamp
(a frame sent again) keeps the first record and is counted as a duplicate. Evaluation happens once,
at the first of: every expected frame matched (``expected_count``, or ``labels_published`` of the
replay's ``done``); the replay is done (or failed) and nothing arrived for ``quiet_period``
seconds; a message on ``~/finish``; ``timeout`` seconds after start (if > 0). Unmatched labels
and detections are counted in the result, never silently dropped.

The metrics (:func:`~vad4space_ros.evaluation.metrics.image_metrics` on the records' calibrated
scores at the records' threshold, plus the confusion counts of the records' own ``is_anomaly``
decisions) are written as JSON to ``output`` atomically (temporary file + rename), summarised in
the log and published on ``~/result`` (DiagnosticArray, transient-local). With ``exit_on_done`` the
node then exits: code 0 when the metrics were computed and written, 1 otherwise (no matched frame,
a single class, or an unwritable output; the file then carries ``error``).
"""
from __future__ import annotations

from dataclasses import dataclass
import json
import math
import os
from pathlib import Path
import sys
import tempfile
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
# core.metrics imports scikit-learn lazily; load it at start-up, not when the replay is done.
import sklearn.metrics  # noqa: F401
from std_msgs.msg import Empty

from vad4space_ros.data.bags import LABEL_STATUS_NAME
from vad4space_ros.deploy.records import DetectionRecord, RecordError
from vad4space_ros.evaluation.metrics import confusion_at, image_metrics
from vad4space_ros.nodes.entry_point import run_node
from vad4space_ros.nodes.parameters import (
    declare_parameters, ParameterTable, read_only_descriptor)
from vad4space_ros.nodes.ros_conversions import msg_to_record, stamp_to_ns

NODE_NAME = 'vad4space_evaluator'
RESULT_NAME = 'vad4space/evaluation'
REPLAY_STATUS_NAME = 'vad4space/replay'
WARN_THROTTLE_SEC = 5.0
CHECK_PERIOD = 0.1
RESULT_ACK_TIMEOUT = 2.0

# name -> (default, descriptor); all read-only (they take effect at start).
PARAMETERS: ParameterTable = {
    'output': ('', read_only_descriptor(
        'Metrics JSON file to write (required; replaced atomically).')),
    'expected_count': (0, read_only_descriptor(
        'Frames to expect; 0 = take labels_published from the done status of the replay.',
        integer=(0, 100_000_000))),
    'quiet_period': (2.0, read_only_descriptor(
        'Seconds without new messages, after the replay is done, before evaluating anyway.',
        floating=(0.0, 3600.0))),
    'timeout': (0.0, read_only_descriptor(
        'Evaluate this many seconds after start whatever arrived; 0 = no timeout.',
        floating=(0.0, 604800.0))),
    'labels_transient_local': (False, read_only_descriptor(
        'Subscribe to labels transient-local (matches vad4space_replay and gets labels '
        'published before this node started; does not match a volatile ros2 bag play).')),
    'include_frames': (True, read_only_descriptor(
        'Write the per-frame score, decision and label list into the metrics file.')),
    'exit_on_done': (True, read_only_descriptor(
        'Exit after writing the metrics (0 = written, 1 = not computable); else stay idle.')),
}


class EvaluatorError(RuntimeError):
    """The evaluator cannot start (for example no output path)."""


@dataclass(frozen=True)
class GroundTruth:
    """The label of one frame."""

    label: int
    category: str
    source: str


def parse_label(msg: DiagnosticArray) -> GroundTruth:
    """Read the ground-truth status of a label message; raise ValueError when malformed."""
    for status in msg.status:
        if status.name == LABEL_STATUS_NAME:
            values = {pair.key: pair.value for pair in status.values}
            if values.get('label') not in ('0', '1'):
                raise ValueError(f'label must be 0 or 1, got {values.get("label")!r}')
            return GroundTruth(int(values['label']), values.get('category', ''),
                               values.get('source', ''))
    raise ValueError(f'DiagnosticArray has no {LABEL_STATUS_NAME!r} status')


class StampMatcher:
    """Labels and detections keyed by header stamp (ROS-free)."""

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


def _latency_summary(latencies: list[float]) -> dict[str, float] | None:
    if not latencies:
        return None
    values = np.asarray(latencies, dtype=np.float64)
    return {'mean': float(values.mean()), 'p50': float(np.percentile(values, 50)),
            'p95': float(np.percentile(values, 95)), 'max': float(values.max())}


def evaluate(matcher: StampMatcher, include_frames: bool = True) -> dict[str, Any]:
    """Return the result document of the matched frames (``metrics`` None plus ``error``)."""
    stamps = matcher.matched_stamps()
    truths = [matcher.labels[stamp] for stamp in stamps]
    records = [matcher.detections[stamp] for stamp in stamps]
    labels = [truth.label for truth in truths]
    scores = [record.score for record in records]
    thresholds = sorted({record.threshold for record in records})
    result: dict[str, Any] = {
        'counts': matcher.counts(),
        'model': {'methods': sorted({r.method for r in records}),
                  'model_ids': sorted({r.model_id for r in records}),
                  'thresholds': thresholds},
        'latency_ms': _latency_summary([record.latency_ms for record in records]),
        'metrics': None, 'decisions': None, 'error': None,
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


def write_json_atomically(document: dict[str, Any], path: Path) -> None:
    """Write ``document`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.partial',
                                         dir=path.parent)
    try:
        with os.fdopen(handle, 'w') as stream:
            json.dump(document, stream, indent=1, allow_nan=False)
            stream.write('\n')
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class EvaluatorNode(Node):
    """Evaluator node; ``done`` is set once the metrics were written (or failed)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Declare parameters and subscribe; raise EvaluatorError without an output path."""
        super().__init__(node_name, **kwargs)
        self.param = declare_parameters(self, PARAMETERS)
        if not self.param['output']:
            self.get_logger().fatal('parameter output is empty: give the metrics JSON path '
                                    '(-p output:=/path/metrics.json)')
            self.destroy_node()
            raise EvaluatorError('no output path')
        self.output = Path(self.param['output']).expanduser()
        self.matcher = StampMatcher()
        self.malformed = 0
        self.replay_state = ''
        self.replay_expected = 0
        self.done = False
        self.exit_code = 0
        self._start = self._last_activity = time.monotonic()
        self._done_seen_at: float | None = None

        reliable = {'reliability': ReliabilityPolicy.RELIABLE,
                    'history': HistoryPolicy.KEEP_LAST}
        label_durability = (DurabilityPolicy.TRANSIENT_LOCAL
                            if self.param['labels_transient_local']
                            else DurabilityPolicy.VOLATILE)
        self._detection_sub = self.create_subscription(
            DiagnosticArray, 'detection', self._on_detection, QoSProfile(depth=1000, **reliable))
        self._label_sub = self.create_subscription(
            DiagnosticArray, 'label', self._on_label,
            QoSProfile(depth=10000, durability=label_durability, **reliable))
        self._status_sub = self.create_subscription(
            DiagnosticArray, 'replay_status', self._on_replay_status,
            QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, **reliable))
        self._finish_sub = self.create_subscription(
            Empty, '~/finish', lambda _: self.finish('finish requested on ~/finish'), 10)
        self._result_pub = self.create_publisher(
            DiagnosticArray, '~/result',
            QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, **reliable))
        self._timer = self.create_timer(CHECK_PERIOD, self._check_completion)
        self.get_logger().info(
            f'matching {self._detection_sub.topic_name} with {self._label_sub.topic_name}; '
            f'metrics go to {self.output}')

    # ----------------------------------------------------------------- input
    def _on_detection(self, msg: DiagnosticArray) -> None:
        if self.done:
            return
        try:
            record = msg_to_record(msg)
        except RecordError as error:
            self._reject(f'malformed detection: {error}')
            return
        if record.stamp_ns != stamp_to_ns(msg.header):
            self._reject(f'detection record stamp {record.stamp_ns} differs from its header')
            return
        self.matcher.add_detection(record)
        self._last_activity = time.monotonic()

    def _on_label(self, msg: DiagnosticArray) -> None:
        if self.done:
            return
        try:
            truth = parse_label(msg)
        except ValueError as error:
            self._reject(f'malformed label: {error}')
            return
        self.matcher.add_label(stamp_to_ns(msg.header), truth)
        self._last_activity = time.monotonic()

    def _reject(self, reason: str) -> None:
        self.malformed += 1
        self.get_logger().warning(reason, throttle_duration_sec=WARN_THROTTLE_SEC)

    def _on_replay_status(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name != REPLAY_STATUS_NAME:
                continue
            self.replay_state = status.message
            if status.message in ('done', 'failed', 'stopped') and self._done_seen_at is None:
                self._done_seen_at = time.monotonic()
                values = {pair.key: pair.value for pair in status.values}
                try:
                    self.replay_expected = int(values.get('labels_published', '0'))
                except ValueError:
                    self.replay_expected = 0
                self.get_logger().info(f'replay {status.message}: expecting '
                                       f'{self.replay_expected} labelled frames')

    # ----------------------------------------------------------------- completion
    def expected(self) -> int:
        """Return the expected frame count (0 = not known yet)."""
        return int(self.param['expected_count']) or self.replay_expected

    def _check_completion(self) -> None:
        if self.done:
            return
        now = time.monotonic()
        expected = self.expected()
        if expected and self.matcher.matched_count() >= expected:
            self.finish(f'all {expected} expected frames matched')
        elif self._done_seen_at is not None and (
                now - max(self._last_activity, self._done_seen_at)
                >= float(self.param['quiet_period'])):
            self.finish(f'replay {self.replay_state} and quiet for '
                        f'{self.param["quiet_period"]:.1f} s')
        elif self.param['timeout'] and now - self._start >= float(self.param['timeout']):
            self.finish(f'timeout after {self.param["timeout"]:.1f} s')

    def finish(self, reason: str) -> None:
        """Evaluate what was matched, write the metrics file and publish ``~/result``."""
        if self.done:
            return
        self.done = True
        result = evaluate(self.matcher, bool(self.param['include_frames']))
        counts = result['counts']
        counts['malformed'] = self.malformed
        counts['expected'] = self.expected()
        result['reason'] = reason
        result['complete'] = bool(
            counts['expected'] and counts['matched'] == counts['expected']
            and not counts['labels_without_detection'])
        result['replay_state'] = self.replay_state
        result['elapsed_s'] = time.monotonic() - self._start
        try:
            write_json_atomically(result, self.output)
        except (OSError, ValueError) as error:
            self.get_logger().error(f'cannot write {self.output}: {error}')
            self.exit_code = 1
        else:
            self.exit_code = 0 if result['metrics'] is not None else 1
        self._report(result)

    def _report(self, result: dict[str, Any]) -> None:
        counts, metrics = result['counts'], result['metrics']
        summary = (f'{result["reason"]}: {counts["matched"]} matched, '
                   f'{counts["labels_without_detection"]} labels without detection, '
                   f'{counts["detections_without_label"]} detections without label')
        if metrics is not None:
            summary += (f'; img-AUROC {metrics["img_auroc"]:.4f}, AUC-PR '
                        f'{metrics["auc_pr"]:.4f}, img-F1 {_format(metrics["img_f1"])}, '
                        f'img-ACC {_format(metrics["img_acc"])}')
        else:
            summary += f'; no metrics: {result["error"]}'
        self.get_logger().info(f'{summary} -> {self.output}')
        values = {**counts, 'complete': str(result['complete']).lower(),
                  'output': str(self.output)}
        if metrics is not None:
            values.update({key: _format(metrics[key]) for key in
                           ('img_auroc', 'auc_pr', 'img_f1', 'img_acc', 'img_f1_oracle')})
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK if self.exit_code == 0 else DiagnosticStatus.ERROR,
            name=RESULT_NAME, message=summary,
            values=[KeyValue(key=key, value=str(value)) for key, value in values.items()])
        if self.context.ok():
            array = DiagnosticArray(status=[status])
            array.header.stamp = self.get_clock().now().to_msg()
            self._result_pub.publish(array)

    def flush(self) -> None:
        """Give ``~/result`` subscribers a moment to acknowledge the result."""
        self._result_pub.wait_for_all_acked(Duration(seconds=RESULT_ACK_TIMEOUT))


def _format(value: float | None) -> str:
    return 'n/a' if value is None or not math.isfinite(value) else f'{value:.4f}'


def _spin_until_done(node: EvaluatorNode) -> None:
    """Spin until the metrics are written (with exit_on_done), then let ~/result be acked."""
    while rclpy.ok() and not (node.done and node.param['exit_on_done']):
        rclpy.spin_once(node, timeout_sec=0.1)
    node.flush()


def _finish_if_interrupted(node: EvaluatorNode) -> None:
    """Write the metrics of what arrived when the node is shut down before completion."""
    if not node.done:
        node.finish('shut down before completion')


def main(args: list[str] | None = None) -> int:
    """Run the evaluator; return its exit code (see the module docstring)."""
    return run_node(EvaluatorNode, args, startup_errors=(EvaluatorError,),
                    spin=_spin_until_done, before_destroy=_finish_if_interrupted,
                    exit_code=lambda node: node.exit_code)


if __name__ == '__main__':
    sys.exit(main())
