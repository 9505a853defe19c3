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

"""``vad4space_replay``: play a benchmark bag (or a dataset split) onto ROS topics.

For environments without ``ros2 bag play``, and for lossless evaluation runs. The source is either

- a rosbag2 bag (``bag``: sqlite3 or mcap, read with ``rosbags``) holding
  ``sensor_msgs/Image`` on ``bag_image_topic`` and, optionally, ground-truth
  ``diagnostic_msgs/DiagnosticArray`` labels on ``bag_label_topic``
  (:mod:`vad4space_ros.data.bags`). Messages are published byte for byte as stored, so header
  stamps, frame ids and pixels are exactly those of the bag; other topics are ignored with a
  warning; a bag without the image topic is a fatal error (exit code 1); or
- a dataset folder (``dataset`` + ``root``): one part (``split``) of protocol ``setting``
  (:func:`~vad4space_ros.data.protocols.make_setting` with ``seed``), encoded exactly as
  ``vad4space bag make`` writes it with its defaults (same pixels, labels and stamps: from
  ``bags.DEFAULT_START_NS`` every 0.1 s, whatever the playback rate).

Publications (relative names; remap them)

- ``image`` ``sensor_msgs/Image`` (reliable, volatile; best-effort subscribers such as the
  detector's sensor-data subscription match it);
- ``label`` ``diagnostic_msgs/DiagnosticArray`` ground truth (reliable, transient-local, depth
  ``label_history``: a subscriber that joins late still gets every label);
- ``~/status`` ``diagnostic_msgs/DiagnosticArray`` (reliable, transient-local, depth 1): one
  status ``vad4space/replay`` whose message is the state (``waiting``, ``playing``, ``done``,
  ``stopped``, ``failed``) and whose values count what was published (``images_published``,
  ``labels_published``, ``frames_unanswered``, …). ``done`` is the completion signal: once it is
  published, ``labels_published`` is the number of labelled frames an evaluator should expect.

Pacing. ``rate_hz`` > 0 spaces images ``1 / rate_hz`` seconds apart (wall clock); 0 means no
fixed rate. The detector keeps only the newest frame while it is busy, so an open-loop replay
faster than inference loses frames. For lossless evaluation set ``pace_on_topic`` to the
detector's detection topic: each image is then sent only after the detection of the previous one
arrived (matched by header stamp), so the detector never drops a frame and the replay runs as fast
as inference allows (never faster than ``rate_hz`` if that is set). If no detection comes within
``pace_timeout`` seconds the frame is sent again (up to ``pace_retries`` times: best-effort
transport may lose a frame), then counted as unanswered and the replay moves on.

Start and end. Playback starts once ``image`` and ``label`` each have ``wait_for_subscribers``
matched subscriptions (and, when pacing, the pace topic has a publisher), plus ``start_delay``
seconds for the remaining discovery handshakes; ``wait_timeout`` > 0 gives up (exit code 1).
With ``loop`` the source is played again and again with its original stamps (a demo mode: it
never reaches ``done``). At the end the node waits until subscribers acknowledged the labels and
the status, then exits with code 0 if ``exit_on_done`` is set, else stays idle until shut down.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import rclpy
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from vad4space_ros.data import bags
from vad4space_ros.data.replay_sources import (
    open_source, ReplayError, ReplayMessage, ReplaySource)
from vad4space_ros.nodes.entry_point import run_node
from vad4space_ros.nodes.parameters import (
    declare_parameters, ParameterTable, read_only_descriptor)
from vad4space_ros.nodes.ros_conversions import stamp_to_ns

NODE_NAME = 'vad4space_replay'
STATUS_NAME = 'vad4space/replay'
WAIT_LOG_PERIOD = 5.0
ACK_TIMEOUT = 5.0

# name -> (default, descriptor); all read-only (they take effect at start).
PARAMETERS: ParameterTable = {
    'bag': ('', read_only_descriptor(
        'rosbag2 folder (sqlite3 or mcap) to play; empty = play a dataset.')),
    'bag_image_topic': (bags.IMAGE_TOPIC, read_only_descriptor(
        'Topic of the bag holding sensor_msgs/Image frames (published on `image`).')),
    'bag_label_topic': (bags.LABEL_TOPIC, read_only_descriptor(
        'Topic of the bag holding ground-truth labels (published on `label`); optional.')),
    'dataset': ('', read_only_descriptor(
        'Play a dataset folder instead of a bag: lroc or mastcam (empty = play `bag`).')),
    'root': ('', read_only_descriptor('Dataset root in its published layout (with `dataset`).')),
    'setting': (1, read_only_descriptor('Evaluation protocol 1, 2 or 3 (with `dataset`).',
                                        integer=(1, 3))),
    'seed': (0, read_only_descriptor('Seed of the protocol split (with `dataset`).',
                                     integer=(0, 2**31 - 1))),
    'split': ('test', read_only_descriptor(
        'Part of the split to play: test, train or calibration.')),
    'frame_id': ('camera', read_only_descriptor(
        'Header frame_id of dataset frames (with `dataset`).')),
    'rate_hz': (0.0, read_only_descriptor(
        'Images per second (wall clock); 0 = no fixed rate (with pace_on_topic: as fast as '
        'the detector answers; without: as fast as possible, which makes a busy detector drop '
        'frames).', floating=(0.0, 10000.0))),
    'pace_on_topic': ('', read_only_descriptor(
        'Closed loop: DiagnosticArray topic (the detector ~/detection) to wait on before '
        'sending the next image, matched by header stamp; empty = open loop.')),
    'pace_timeout': (10.0, read_only_descriptor(
        'Seconds to wait for the detection of an image before sending it again.',
        floating=(0.01, 3600.0))),
    'pace_retries': (2, read_only_descriptor(
        'Times an unanswered image is sent again before it is counted as unanswered.',
        integer=(0, 100))),
    'wait_for_subscribers': (1, read_only_descriptor(
        'Matched subscriptions required on `image` and on `label` (if the source has labels) '
        'before playback starts; 0 = start at once.', integer=(0, 1000))),
    'wait_timeout': (0.0, read_only_descriptor(
        'Seconds to wait for subscribers before failing (exit code 1); 0 = wait forever.',
        floating=(0.0, 86400.0))),
    'start_delay': (1.0, read_only_descriptor(
        'Seconds to wait after the subscribers matched, for the remaining discovery '
        'handshakes (e.g. detector -> evaluator) to complete.', floating=(0.0, 600.0))),
    'loop': (False, read_only_descriptor(
        'Play the source again and again with its original stamps (never reaches done).')),
    'label_history': (10000, read_only_descriptor(
        'Labels kept for late-joining subscribers (transient-local depth).',
        integer=(1, 1000000))),
    'progress_period': (5.0, read_only_descriptor(
        'Seconds between progress log lines and ~/status updates.', floating=(0.1, 3600.0))),
    'exit_on_done': (True, read_only_descriptor(
        'Exit (code 0) when the source has been played; otherwise stay idle.')),
}


class AnswerBoard:
    """Header stamps of detections seen on the pace topic, for the closed loop."""

    def __init__(self) -> None:
        """Start with no answers."""
        self._stamps: set[int] = set()
        self._changed = threading.Condition()

    def add(self, stamp_ns: int) -> None:
        """Record a detection stamp (called from the executor thread)."""
        with self._changed:
            self._stamps.add(stamp_ns)
            self._changed.notify_all()

    def wait(self, stamp_ns: int, timeout: float, stopping: threading.Event) -> bool:
        """Wait until ``stamp_ns`` was answered (then forget it); False on timeout/stop."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while stamp_ns not in self._stamps:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or stopping.is_set():
                    return False
                self._changed.wait(min(remaining, 0.1))
            self._stamps.discard(stamp_ns)
            return True


class ReplayNode(Node):
    """Replay node; :meth:`play` runs the playback (in a thread beside the executor)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Declare parameters and open the source; raise ReplayError if it is unusable."""
        super().__init__(node_name, **kwargs)
        self.param = declare_parameters(self, PARAMETERS)
        try:
            self.source = self._open_source()
        except ReplayError as error:
            self.get_logger().fatal(str(error))
            self.destroy_node()
            raise
        reliable = {'reliability': ReliabilityPolicy.RELIABLE,
                    'history': HistoryPolicy.KEEP_LAST}
        self._image_pub = self.create_publisher(
            Image, 'image', QoSProfile(depth=10, durability=DurabilityPolicy.VOLATILE,
                                       **reliable))
        self._label_pub = self.create_publisher(
            DiagnosticArray, 'label', QoSProfile(
                depth=int(self.param['label_history']),
                durability=DurabilityPolicy.TRANSIENT_LOCAL, **reliable))
        self._status_pub = self.create_publisher(
            DiagnosticArray, '~/status', QoSProfile(
                depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, **reliable))
        self.answers = AnswerBoard()
        self._pace_sub = None
        if self.param['pace_on_topic']:
            self._pace_sub = self.create_subscription(
                DiagnosticArray, self.param['pace_on_topic'],
                lambda msg: self.answers.add(stamp_to_ns(msg.header)),
                QoSProfile(depth=10, **reliable))
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self.exit_code = 0
        self.counts = dict.fromkeys(
            ('passes', 'images_published', 'labels_published', 'frames_answered',
             'frames_unanswered', 'resent'), 0)
        self._state = 'waiting'
        self._started = time.monotonic()
        self._publish_status()
        self.get_logger().info(
            f'replaying {self.source.description}: {self.source.image_count} images, '
            f'{self.source.label_count} labels on {self._image_pub.topic_name} and '
            f'{self._label_pub.topic_name}' + (
                f', paced on {self._pace_sub.topic_name}' if self._pace_sub else ', open loop'))

    def _open_source(self) -> ReplaySource:
        return open_source(self.param['bag'], self.param['bag_image_topic'],
                           self.param['bag_label_topic'], self.param['dataset'],
                           self.param['root'], int(self.param['setting']),
                           int(self.param['seed']), self.param['split'],
                           self.param['frame_id'], self.get_logger())

    # ----------------------------------------------------------------- status
    def _publish_status(self) -> None:
        status = DiagnosticStatus(
            level=DiagnosticStatus.ERROR if self._state == 'failed' else DiagnosticStatus.OK,
            name=STATUS_NAME, hardware_id=self.source.description, message=self._state)
        values = dict(self.counts)
        values.update(skipped=self.source.skipped, images_total=self.source.image_count,
                      labels_total=self.source.label_count,
                      elapsed_s=f'{time.monotonic() - self._started:.3f}')
        status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(array)

    def _set_state(self, state: str) -> None:
        self._state = state
        self._publish_status()

    # ----------------------------------------------------------------- playback
    def play(self) -> None:
        """Wait for subscribers, play the source (looping if asked), publish the outcome."""
        try:
            if self._wait_for_subscribers():
                self._set_state('playing')
                self._play_passes()
            if self.stopping.is_set() or not self.context.ok():
                self._state = 'stopped'
                return
            self._set_state('done')
            self._summarise()
            for publisher in (self._label_pub, self._status_pub):
                if not publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT)):
                    self.get_logger().warning(
                        f'not every subscriber acknowledged {publisher.topic_name} within '
                        f'{ACK_TIMEOUT:.0f} s')
        except Exception as error:  # noqa: B902 - report, then end with a failure code
            if self.stopping.is_set() or not self.context.ok():
                return  # shut down while publishing: nothing left to report to
            self.exit_code = 1
            self.get_logger().fatal(str(error) if isinstance(error, ReplayError)
                                    else f'replay failed: {error!r}')
            self._set_state('failed')
        finally:
            self.finished.set()

    def _wait_for_subscribers(self) -> bool:
        """Return True once subscribers (and the pace publisher) matched; raise on timeout."""
        needed = int(self.param['wait_for_subscribers'])
        timeout = float(self.param['wait_timeout'])
        start = last_log = time.monotonic()

        def missing() -> list[str]:
            lacking = []
            publishers = [self._image_pub] + ([self._label_pub] if self.source.label_count
                                              else [])
            for publisher in publishers:
                if publisher.get_subscription_count() < needed:
                    lacking.append(f'{publisher.topic_name} '
                                   f'({publisher.get_subscription_count()}/{needed} subscribers)')
            if self._pace_sub is not None and self._pace_sub.get_publisher_count() < 1:
                lacking.append(f'{self._pace_sub.topic_name} (no publisher)')
            return lacking

        while lacking := missing():
            if self.stopping.is_set():
                return False
            now = time.monotonic()
            if timeout and now - start > timeout:
                raise ReplayError(f'no subscribers after {timeout:.1f} s: waiting for '
                                  f'{", ".join(lacking)}')
            if now - last_log > WAIT_LOG_PERIOD:
                self.get_logger().info(f'waiting for {", ".join(lacking)}')
                last_log = now
            time.sleep(0.05)
        return not self.stopping.wait(float(self.param['start_delay']))

    def _play_passes(self) -> None:
        rate = float(self.param['rate_hz'])
        period = 1.0 / rate if rate > 0 else 0.0
        if self._pace_sub is None and period == 0.0:
            self.get_logger().warning('open loop without rate_hz: a busy detector drops frames '
                                      '(set pace_on_topic for lossless evaluation)')
        next_due = time.monotonic()
        last_log = time.monotonic()
        self._started = time.monotonic()
        while not self.stopping.is_set():
            self.counts['passes'] += 1
            for message in self.source.messages():
                if self.stopping.is_set():
                    return
                if message.kind == 'label':
                    self._label_pub.publish(message.data)
                    self.counts['labels_published'] += 1
                    continue
                delay = next_due - time.monotonic()
                if delay > 0 and self.stopping.wait(delay):
                    return
                next_due = max(next_due + period, time.monotonic())
                self._send_image(message)
                if time.monotonic() - last_log >= float(self.param['progress_period']):
                    last_log = time.monotonic()
                    self._log_progress()
            if not self.param['loop']:
                return

    def _send_image(self, message: ReplayMessage) -> None:
        """Publish one image; in closed loop wait for its detection, resending on timeout."""
        for attempt in range(int(self.param['pace_retries']) + 1):
            self._image_pub.publish(message.data)
            if attempt == 0:
                self.counts['images_published'] += 1
            else:
                self.counts['resent'] += 1
            if self._pace_sub is None:
                return
            if self.answers.wait(message.stamp_ns, float(self.param['pace_timeout']),
                                 self.stopping):
                self.counts['frames_answered'] += 1
                return
            if self.stopping.is_set():
                return
            self.get_logger().warning(
                f'no detection for frame {message.stamp_ns} within '
                f'{self.param["pace_timeout"]:.1f} s (attempt {attempt + 1})')
        self.counts['frames_unanswered'] += 1

    def _log_progress(self) -> None:
        done = self.counts['images_published']
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.param['loop']:
            where = f'pass {self.counts["passes"]}: {done} images'
        else:
            left = self.source.image_count - done
            where = f'{done}/{self.source.image_count} images' + (
                f', {left / rate:.0f} s left' if rate > 0 else '')
        self.get_logger().info(f'{where} ({rate:.1f}/s), '
                               f'{self.counts["labels_published"]} labels, '
                               f'{self.counts["frames_unanswered"]} unanswered')
        self._publish_status()

    def _summarise(self) -> None:
        elapsed = time.monotonic() - self._started
        counts = ', '.join(f'{key} {value}' for key, value in self.counts.items())
        self.get_logger().info(f'{self._state}: {counts} in {elapsed:.1f} s')

    def destroy_node(self) -> None:
        """Stop the playback, then destroy the node."""
        stopping = getattr(self, 'stopping', None)
        if stopping is not None:
            stopping.set()
        super().destroy_node()


def _spin_while_playing(node: ReplayNode) -> None:
    """Play in a thread beside the executor; stay idle afterwards unless exit_on_done."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    player = threading.Thread(target=node.play, name='vad4space_replay', daemon=True)
    player.start()
    try:
        while rclpy.ok() and not node.finished.is_set():
            executor.spin_once(timeout_sec=0.1)
        if rclpy.ok() and not node.param['exit_on_done']:
            node.get_logger().info('playback finished; idle until shut down')
            executor.spin()
    finally:
        node.stopping.set()
        player.join(timeout=ACK_TIMEOUT + 2.0)


def main(args: list[str] | None = None) -> int:
    """Run the replay; return 0 when played, 1 when the source is unusable or playback failed."""
    return run_node(ReplayNode, args, startup_errors=(ReplayError,), spin=_spin_while_playing,
                    exit_code=lambda node: node.exit_code)


if __name__ == '__main__':
    sys.exit(main())
