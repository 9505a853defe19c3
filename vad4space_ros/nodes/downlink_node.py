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

"""``vad4space_downlink``: prioritized, bandwidth-budgeted, crash-safe downlink of product bytes.

Subscriptions (relative names: remap them, e.g. ``-r detection:=/vad4space_detector/detection``)
- ``detection`` ``diagnostic_msgs/DiagnosticArray`` (reliable, depth 100): the detector's
  per-frame records (:mod:`vad4space_ros.deploy.records`). Each accepted one is committed to the
  queue database together with its captured products (:mod:`vad4space_ros.downlink.products`):
  the frame, or one crop per region when the record has regions (``image_format`` PNG/JPEG),
  and the heatmap thumbnail. Malformed records are counted and logged, never fatal.
- ``image`` and ``heatmap`` ``sensor_msgs/Image`` (sensor-data QoS by default, ``image_qos``):
  the last ``image_cache_frames`` frames/heatmaps are kept until their detection arrives; an
  image arriving after its detection is attached while the item is queued. Items whose image
  never arrived are counted (``without_frame``/``without_heatmap`` on ``~/queue``) and go home
  as their record alone, marked ``missing``.
- ``~/pass`` ``std_msgs/UInt64``: one communication pass with a budget of ``data`` bytes
  (the stored byte lengths of what it releases fit the budget).

Publications
- ``~/downlink`` ``diagnostic_msgs/DiagnosticArray`` (reliable, keep-all): one message per
  released product part, in release order, header = the frame's header; one status
  ``vad4space/downlink`` (level WARN = anomaly; hardware_id = model id; message = kind) whose
  values describe it: release_id, part, parts, kind (frame, region, heatmap, or record when the
  image never arrived), format, sha256, part_bytes, box (x,y,width,height), region_score,
  item_id, pass_id, position, product (full/thumbnail), bytes, priority, score, is_anomaly,
  model_id, method, missing, attempt and record (the detection record as JSON).
- ``~/downlink/image`` ``sensor_msgs/CompressedImage`` (reliable, keep-all): the bytes of each
  image part (format ``png``/``jpeg``), header = the frame's header. The ground pairs it with its
  description by (frame, stamp, sha256): ``vad4space ground receive``.
- ``~/queue`` ``diagnostic_msgs/DiagnosticArray`` (reliable, transient-local, depth 1): counters,
  then the ranked items (see :func:`queue_item_status`).

Intake: callbacks only pair records with images (:mod:`vad4space_ros.downlink.image_matching`)
and buffer; a worker thread encodes the products and commits up to ``commit_group`` detections
per transaction (:mod:`vad4space_ros.downlink.intake`), so neither encoding, fsync, a pass nor
acknowledgements delay the subscriptions.

Delivery: exactly-once release; at-least-once transmission with the idempotency key
``release_id.part`` (:mod:`vad4space_ros.downlink.downlink_queue`). Intake never waits for
acknowledgements: a batch of ``publish_batch`` releases is published, then a timer checks every
``ACK_POLL_S`` without blocking (``wait_for_all_acked`` with a zero timeout) until both topics are
acknowledged (then ``sent`` is committed and the next batch goes) or ``ack_timeout_s`` passes
(the batch stays in the outbox and is published again, ``attempt`` + 1):
:mod:`vad4space_ros.nodes.downlink_outbox`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import fields
import sqlite3
import sys
import threading
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import UInt64

from vad4space_ros.deploy.image_encoding import to_rgb8
from vad4space_ros.deploy.records import RecordError
from vad4space_ros.downlink.downlink_queue import DownlinkQueue
from vad4space_ros.downlink.image_matching import ImageMatcher
from vad4space_ros.downlink.intake import IntakeWorker
from vad4space_ros.downlink.policy import DownlinkPolicy
from vad4space_ros.downlink.products import CaptureSettings
from vad4space_ros.nodes.downlink_messages import queue_msg
from vad4space_ros.nodes.downlink_outbox import OutboxPublisher
from vad4space_ros.nodes.downlink_parameters import (
    check_node_settings, NODE_PARAMETERS, PARAMETERS)
from vad4space_ros.nodes.entry_point import run_node
from vad4space_ros.nodes.managed_node import ManagedNode, spin_until_finalized, StartupError
from vad4space_ros.nodes.parameters import declare_parameters
from vad4space_ros.nodes.ros_conversions import image_msg_pixels, msg_to_record, stamp_to_ns

NODE_NAME = 'vad4space_downlink'
ACK_POLL_S = 0.02
STARTUP_ERRORS = (StartupError, ValueError, ParameterException)  # unusable parameters or database
SUCCESS = TransitionCallbackReturn.SUCCESS


class DownlinkNode(ManagedNode):
    """Wire the persistent :class:`DownlinkQueue` to ROS topics (a managed node)."""

    released = 'unconfigured: database closed'

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Declare parameters; with ``autostart`` configure and activate (raise StartupError)."""
        super().__init__(node_name, **kwargs)
        values = declare_parameters(self, PARAMETERS)
        self.settings = {name: values[name] for name in NODE_PARAMETERS}
        self._policy_values = {item.name: values[item.name] for item in fields(DownlinkPolicy)}
        self.queue: DownlinkQueue | None = None
        self.intake: IntakeWorker | None = None
        self.outbox: OutboxPublisher | None = None
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()  # the database: intake thread vs. executor callbacks
        self._inputs: list[Any] = []  # subscriptions and timers while active
        self.autostart(bool(self.settings['autostart']))

    # --- lifecycle --------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Open the database, start the intake thread, create the publishers."""
        try:
            check_node_settings(self.settings)
            self.capture = CaptureSettings(
                self.settings['image_format'], self.settings['thumbnail_format'],
                int(self.settings['thumbnail_max_side']), int(self.settings['jpeg_quality']))
            self.queue = DownlinkQueue.connect(self.settings['database'],
                                               DownlinkPolicy(**self._policy_values),
                                               self.settings['synchronous'])
        except ValueError as error:  # StoreError included
            return self.refuse_configure(error)
        self.intake = IntakeWorker(self.queue, self.capture, self._lock,
                                   int(self.settings['intake_buffer']),
                                   int(self.settings['commit_group']), self._log,
                                   self._mark_dirty)
        self._matcher = ImageMatcher(int(self.settings['image_cache_frames']),
                                     self.settings['thumbnail_source'] == 'image')
        self._queue_dirty = True
        keep_all = QoSProfile(depth=1, history=HistoryPolicy.KEEP_ALL,
                              reliability=ReliabilityPolicy.RELIABLE)
        self.outbox = OutboxPublisher(
            self.queue, self._lock,
            self.create_lifecycle_publisher(DiagnosticArray, '~/downlink', keep_all),
            self.create_lifecycle_publisher(CompressedImage, '~/downlink/image', keep_all),
            int(self.settings['publish_batch']), float(self.settings['ack_timeout_s']),
            self.get_logger(), self._on_sent)
        self._queue_pub = self.create_lifecycle_publisher(DiagnosticArray, '~/queue', QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        summary = self.queue.summary()
        self.get_logger().info(
            f'queue {self.queue.store.path}: {summary["queued"]} queued, '
            f'{summary["released"]} released, {summary["outbox"]} released but not yet '
            'acknowledged (will be published when a consumer subscribes to ~/downlink)')
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the publishers, subscribe and start the timers."""
        result = super().on_activate(state)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        detections = QoSProfile(depth=int(self.settings['detection_queue_depth']),
                                reliability=ReliabilityPolicy.RELIABLE)
        image_qos = QoSProfile(
            depth=int(self.settings['image_queue_depth']),
            reliability=(ReliabilityPolicy.BEST_EFFORT if self.settings['image_qos'] ==
                         'sensor_data' else ReliabilityPolicy.RELIABLE))
        intake = MutuallyExclusiveCallbackGroup()  # runs beside passes and publication
        self._inputs = [
            self.create_subscription(DiagnosticArray, 'detection', self._on_detection,
                                     detections, callback_group=intake),
            self.create_subscription(Image, 'image', self._on_image, image_qos,
                                     callback_group=intake),
            self.create_subscription(Image, 'heatmap', self._on_heatmap, image_qos,
                                     callback_group=intake),
            self.create_subscription(UInt64, '~/pass', self._on_pass, reliable),
            self.create_timer(float(self.settings['queue_publish_period_s']),
                              self._publish_queue),
            self.create_timer(float(self.settings['maintenance_period_s']), self._expire),
            self.create_timer(float(self.settings['outbox_retry_period_s']),
                              self.outbox.flush),
            self.create_timer(ACK_POLL_S, self.outbox.check_acks)]
        self._queue_dirty = True
        self.get_logger().info('active: accepting detections and passes')
        return result

    def _stop_input(self) -> None:
        for entity in self._inputs:
            if hasattr(entity, 'cancel'):
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self._inputs = []
        if self.outbox is not None:  # unacknowledged: stays in the outbox, published again later
            self.outbox.in_flight = None

    def _release(self) -> None:
        if self.intake is not None:
            self.intake.stop()
            self.intake = None
        if self.queue is not None:
            self.queue.close()
            self.queue = None
        self.outbox = None
        self.destroy_publishers()

    def close(self) -> None:
        """Stop input, commit what the intake buffer holds, close the database."""
        self._stop_input()
        self._release()

    def _log(self, level: str, text: str) -> None:
        getattr(self.get_logger(), level)(text, throttle_duration_sec=5.0)

    def _mark_dirty(self) -> None:
        self._queue_dirty = True

    # --- intake (callbacks only buffer; the IntakeWorker encodes and commits) ---------------
    def _on_detection(self, msg: DiagnosticArray) -> None:
        try:
            record = msg_to_record(msg)
        except RecordError as error:
            self.counters['malformed'] += 1
            self.get_logger().warning(
                f'ignored a malformed detection record ({self.counters["malformed"]} so far): '
                f'{error}', throttle_duration_sec=5.0)
            return
        task = self._matcher.detection_task(record)
        intake = self.intake  # None once cleaned up (a transition may run in parallel)
        if intake is not None and intake.submit(task):
            self._matcher.await_images(task)

    def _receive(self, msg: Image, is_frame: bool) -> None:
        key = (stamp_to_ns(msg.header), msg.header.frame_id)
        try:
            pixels = to_rgb8(*image_msg_pixels(msg))
        except ValueError as error:
            self.counters['bad_images'] += 1
            self.get_logger().warning(f'cannot read image of {key[1]}: {error}',
                                      throttle_duration_sec=5.0)
            return
        task = self._matcher.image_task(key, pixels, is_frame)
        intake = self.intake
        if task is not None and intake is not None:
            intake.submit(task)
            self._matcher.attached(task)

    def _on_image(self, msg: Image) -> None:
        self._receive(msg, is_frame=True)

    def _on_heatmap(self, msg: Image) -> None:
        if not self._matcher.thumbnail_from_frame:
            self._receive(msg, is_frame=False)

    # --- passes and publication -------------------------------------------------------------
    def _on_pass(self, msg: UInt64) -> None:
        try:
            with self._lock:
                result = self.queue.run_pass(int(msg.data))
        except sqlite3.Error as error:
            self.get_logger().error(f'pass of {msg.data} bytes failed, nothing released: {error}')
            return
        self.counters['passes'] += 1
        self.get_logger().info(
            f'pass {result.pass_id}: released {len(result.products)} product(s), '
            f'{result.used_bytes}/{result.budget_bytes} bytes')
        self._queue_dirty = True
        self.outbox.flush()

    def _on_sent(self, count: int) -> None:
        self.counters['sent'] += count
        self._queue_dirty = True

    def _expire(self) -> None:
        with self._lock:
            expired = self.queue.expire()
        if expired:
            self.counters['expired'] += len(expired)
            self.get_logger().info(f'{len(expired)} item(s) expired (ttl)')
            self._queue_dirty = True

    def _publish_queue(self) -> None:
        if not self._queue_dirty:
            return
        self._queue_dirty = False
        with self._lock:
            summary = self.queue.summary()
            ranked = self.queue.ranked(int(self.settings['queue_publish_limit']))
        self._queue_pub.publish(queue_msg(self.get_clock().now().to_msg(), NODE_NAME, summary,
                                          self.counters + self.intake.counters, ranked))


def _create_node() -> DownlinkNode:
    """Create the node; print why to stderr when it cannot start."""
    try:
        return DownlinkNode()
    except STARTUP_ERRORS as error:
        print(f'[{NODE_NAME}] cannot start: {error}', file=sys.stderr, flush=True)
        raise


def main(args: list[str] | None = None) -> int:
    """Run the downlink node until shutdown; return 2 if it cannot start."""
    return run_node(_create_node, args, startup_errors=STARTUP_ERRORS, startup_exit_code=2,
                    spin=lambda node: spin_until_finalized(node, threads=2),
                    before_destroy=DownlinkNode.close)


if __name__ == '__main__':
    sys.exit(main())
