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

"""The detector node's work queue and frame counters (no rclpy, no model code)."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import threading
import time

import numpy as np
from sensor_msgs.msg import CompressedImage, Image


@dataclass
class Frame:
    """One received message waiting for the worker."""

    message: Image | CompressedImage
    received: float  # time.monotonic() at the subscription callback


class NewestFrameQueue:
    """Bounded FIFO that drops the oldest frame when full, so the newest are processed."""

    def __init__(self, capacity: int) -> None:
        """Create an empty queue holding at most ``capacity`` frames."""
        if capacity < 1:
            raise ValueError(f'queue capacity must be >= 1, got {capacity}')
        self._frames: deque[Frame] = deque()
        self._capacity = capacity
        self._ready = threading.Condition()
        self._closed = False

    @property
    def capacity(self) -> int:
        """Return the maximum number of queued frames."""
        return self._capacity

    def put(self, frame: Frame) -> int:
        """Add a frame; return how many old frames were dropped to make room (0 once closed)."""
        with self._ready:
            if self._closed:
                return 0
            dropped = 0
            while len(self._frames) >= self._capacity:
                self._frames.popleft()
                dropped += 1
            self._frames.append(frame)
            self._ready.notify()
            return dropped

    def get(self, timeout: float) -> Frame | None:
        """Take the oldest queued frame; None after ``timeout`` seconds or once closed."""
        with self._ready:
            if not self._frames and not self._closed:
                self._ready.wait(timeout)
            return self._frames.popleft() if self._frames and not self._closed else None

    def __len__(self) -> int:
        """Return the number of queued frames."""
        with self._ready:
            return len(self._frames)

    def close(self) -> None:
        """Wake the consumer and refuse further frames."""
        with self._ready:
            self._closed = True
            self._frames.clear()
            self._ready.notify_all()


class Counters:
    """Thread-safe frame counters and latencies for the diagnostics status."""

    FIELDS = ('received', 'processed', 'dropped', 'rejected', 'failed')

    def __init__(self) -> None:
        """Start all counters at zero."""
        self._lock = threading.Lock()
        self.totals = dict.fromkeys(self.FIELDS, 0)
        self._period = dict.fromkeys(self.FIELDS, 0)
        self._inference_ms: list[float] = []
        self._latency_ms: list[float] = []
        self._period_start = time.monotonic()

    def add(self, field: str, count: int = 1) -> None:
        """Increase one counter."""
        with self._lock:
            self.totals[field] += count
            self._period[field] += count

    def add_processed(self, inference_ms: float, latency_ms: float) -> None:
        """Count a published frame with its inference and receive-to-publish latency."""
        with self._lock:
            self.totals['processed'] += 1
            self._period['processed'] += 1
            self._inference_ms.append(inference_ms)
            self._latency_ms.append(latency_ms)

    def snapshot(self) -> tuple[dict[str, int], dict[str, float]]:
        """Return (totals, figures of the period since the last snapshot); start a new period."""
        with self._lock:
            now = time.monotonic()
            elapsed = max(now - self._period_start, 1e-9)
            latency = np.array(self._latency_ms) if self._latency_ms else np.full(1, np.nan)
            inference = np.array(self._inference_ms) if self._inference_ms else np.full(1, np.nan)
            period = {
                'period_s': elapsed,
                'period_rejected': self._period['rejected'],
                'period_failed': self._period['failed'],
                'input_rate_hz': self._period['received'] / elapsed,
                'processed_rate_hz': self._period['processed'] / elapsed,
                'mean_inference_ms': float(inference.mean()),
                'mean_latency_ms': float(latency.mean()),
                'max_latency_ms': float(latency.max()),
            }
            self._period = dict.fromkeys(self.FIELDS, 0)
            self._period_start = now
            self._inference_ms.clear()
            self._latency_ms.clear()
            return dict(self.totals), period
