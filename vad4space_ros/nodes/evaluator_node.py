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

The matching, the completion rule and the result document live in
:mod:`vad4space_ros.evaluation.matching` (ROS-free); this node wires topics and parameters to it.
The result is written as JSON to ``output`` atomically, summarised in the log and published on
``~/result`` (DiagnosticArray, transient-local). With ``exit_on_done`` the node then exits: code 0
when the metrics were computed and written, 1 otherwise (no matched frame, a single class, or an
unwritable output; the file then carries ``error``).
"""
from __future__ import annotations

from pathlib import Path
import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
# evaluation.metrics imports scikit-learn lazily; load it at start-up, not when the replay is done.
import sklearn.metrics  # noqa: F401
from std_msgs.msg import Empty

from vad4space_ros.data.labels import ground_truth_of, LabelError
from vad4space_ros.deploy.records import RecordError
from vad4space_ros.evaluation.matching import (
    CompletionWatch, evaluate, StampMatcher, summary_line, summary_values, write_result)
from vad4space_ros.nodes.entry_point import run_node
from vad4space_ros.nodes.parameters import (
    declare_parameters, ParameterTable, read_only_descriptor)
from vad4space_ros.nodes.ros_conversions import msg_to_record, stamp_to_ns

NODE_NAME = 'vad4space_evaluator'
RESULT_NAME = 'vad4space/evaluation'
REPLAY_STATUS_NAME = 'vad4space/replay'
REPLAY_FINAL_STATES = ('done', 'failed', 'stopped')
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
        self.watch = CompletionWatch(
            time.monotonic(), expected_count=int(self.param['expected_count']),
            quiet_period=float(self.param['quiet_period']),
            timeout=float(self.param['timeout']))
        self.malformed = 0
        self.done = False
        self.exit_code = 0

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
        self.watch.activity(time.monotonic())

    def _on_label(self, msg: DiagnosticArray) -> None:
        if self.done:
            return
        try:
            truth = ground_truth_of(msg.status)
        except LabelError as error:
            self._reject(f'malformed label: {error}')
            return
        self.matcher.add_label(stamp_to_ns(msg.header), truth)
        self.watch.activity(time.monotonic())

    def _reject(self, reason: str) -> None:
        self.malformed += 1
        self.get_logger().warning(reason, throttle_duration_sec=WARN_THROTTLE_SEC)

    def _on_replay_status(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name != REPLAY_STATUS_NAME or status.message not in REPLAY_FINAL_STATES:
                continue
            values = {pair.key: pair.value for pair in status.values}
            published = values.get('labels_published', '0')
            if self.watch.replay_finished(status.message,
                                          int(published) if published.isdigit() else 0,
                                          time.monotonic()):
                self.get_logger().info(f'replay {status.message}: expecting '
                                       f'{self.watch.replay_expected} labelled frames')

    # ----------------------------------------------------------------- completion
    def _check_completion(self) -> None:
        if not self.done:
            reason = self.watch.reason_to_finish(self.matcher.matched_count(), time.monotonic())
            if reason is not None:
                self.finish(reason)

    def finish(self, reason: str) -> None:
        """Evaluate what was matched, write the metrics file and publish ``~/result``."""
        if self.done:
            return
        self.done = True
        result = evaluate(self.matcher, bool(self.param['include_frames']),
                          malformed=self.malformed, expected=self.watch.expected)
        result.update(reason=reason, replay_state=self.watch.replay_state,
                      elapsed_s=time.monotonic() - self.watch.start)
        try:
            write_result(result, self.output)
        except (OSError, ValueError) as error:
            self.get_logger().error(f'cannot write {self.output}: {error}')
            self.exit_code = 1
        else:
            self.exit_code = 0 if result['metrics'] is not None else 1
        self._report(result)

    def _report(self, result: dict[str, Any]) -> None:
        summary = summary_line(result)
        self.get_logger().info(f'{summary} -> {self.output}')
        values = {**summary_values(result), 'output': str(self.output)}
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK if self.exit_code == 0 else DiagnosticStatus.ERROR,
            name=RESULT_NAME, message=summary,
            values=[KeyValue(key=key, value=value) for key, value in values.items()])
        if self.context.ok():
            array = DiagnosticArray(status=[status])
            array.header.stamp = self.get_clock().now().to_msg()
            self._result_pub.publish(array)

    def flush(self) -> None:
        """Give ``~/result`` subscribers a moment to acknowledge the result."""
        self._result_pub.wait_for_all_acked(Duration(seconds=RESULT_ACK_TIMEOUT))


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
