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

"""Publication of the downlink outbox: batches of released products, acknowledged or retried.

A batch of ``batch`` releases is published on ``~/downlink`` (descriptions) and
``~/downlink/image`` (image bytes); :meth:`OutboxPublisher.check_acks`, called from a timer,
checks without blocking whether both topics were acknowledged (then ``sent`` is committed and the
next batch goes) or ``ack_timeout_s`` passed (the batch stays in the outbox and is published
again, ``attempt`` + 1). Delivery semantics: :mod:`vad4space_ros.downlink.downlink_queue`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import threading
import time

from rclpy.duration import Duration
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.lifecycle import LifecyclePublisher

from vad4space_ros.downlink.downlink_queue import DownlinkQueue
from vad4space_ros.downlink.stored_rows import Release
from vad4space_ros.nodes.downlink_messages import product_msgs


@dataclass
class InFlight:
    """A published batch waiting for acknowledgement."""

    releases: list[Release]
    deadline: float


class OutboxPublisher:
    """Publish unacknowledged releases one batch at a time; database access under ``lock``."""

    def __init__(self, downlink_queue: DownlinkQueue, lock: threading.Lock,
                 descriptions: LifecyclePublisher, images: LifecyclePublisher, batch: int,
                 ack_timeout_s: float, logger: RcutilsLogger,
                 on_sent: Callable[[int], None]) -> None:
        """Publish on ``descriptions`` and ``images``; ``on_sent(n)`` after n are confirmed."""
        self.queue = downlink_queue
        self.lock = lock
        self.descriptions = descriptions
        self.images = images
        self.batch = batch
        self.ack_timeout_s = ack_timeout_s
        self.logger = logger
        self.on_sent = on_sent
        self.in_flight: InFlight | None = None  # None also abandons a batch (published again)

    def flush(self) -> None:
        """Publish the next batch of unacknowledged releases unless one is in flight."""
        if self.in_flight is not None:
            return
        with self.lock:
            pending = self.queue.outbox(self.batch)
            if not pending:
                return
            if not (self.descriptions.get_subscription_count()
                    and self.images.get_subscription_count()):
                self.logger.warning(
                    f'{self.queue.store.outbox_size()} released product(s) held in the outbox: '
                    'no subscriber on ~/downlink and ~/downlink/image',
                    throttle_duration_sec=30.0)
                return
            batch = self.queue.begin_publication(pending)
            messages = [message for release in batch for message in
                        product_msgs(release, self.queue.release_parts(release))]
        for description, image in messages:
            if image is not None:
                self.images.publish(image)
            self.descriptions.publish(description)
        self.in_flight = InFlight(batch, time.monotonic() + self.ack_timeout_s)

    def check_acks(self) -> None:
        """Commit an acknowledged batch and send the next; give up on it after the timeout."""
        flight = self.in_flight
        if flight is None:
            return
        now = Duration(seconds=0)
        if self.descriptions.wait_for_all_acked(now) and self.images.wait_for_all_acked(now):
            with self.lock:
                self.queue.confirm_sent(flight.releases)
            self.on_sent(len(flight.releases))
            self.in_flight = None
            self.flush()
        elif time.monotonic() > flight.deadline:
            self.logger.warning(
                f'downlink consumer did not acknowledge {len(flight.releases)} product(s) '
                f'within {self.ack_timeout_s} s; they will be published again')
            self.in_flight = None
