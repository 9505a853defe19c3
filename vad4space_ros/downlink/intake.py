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

"""Intake off the executor: capture and commit detections in a worker thread, in groups.

The node's callbacks only put tasks into a bounded FIFO (never blocking; a full buffer is counted
and logged, never silent). One worker thread encodes the products (OpenCV releases the GIL) and
commits up to ``group`` detections per transaction (one fsync for the group with
``synchronous=FULL``), so neither encoding, fsync nor a pass holding the database delays the
callbacks. A detection counts as accepted only once its group is committed; a SIGKILL loses what
is still in the buffer, exactly like messages still in a subscription queue (never accepted).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
import queue
import sqlite3
import threading

import numpy as np

from vad4space_ros.deploy.records import DetectionRecord, Region
from vad4space_ros.downlink.downlink_queue import AcceptResult, DownlinkQueue
from vad4space_ros.downlink.products import (
    capture_frame, capture_thumbnail, CaptureSettings, ProductPart)

Key = tuple[int, str]  # (stamp_ns, frame_id)


@dataclass
class IntakeTask:
    """A detection to accept (``record`` set) or a late frame/heatmap for one (``record`` None)."""

    key: Key
    record: DetectionRecord | None
    regions: list[Region] = field(default_factory=list)
    frame: np.ndarray | None = None
    thumbnail: np.ndarray | None = None


class IntakeWorker:
    """Accept detections from a FIFO in a thread; database access under ``lock``."""

    def __init__(self, downlink_queue: DownlinkQueue, capture: CaptureSettings,
                 lock: threading.Lock, buffer: int, group: int,
                 log: Callable[[str, str], None],
                 on_change: Callable[[], None] = lambda: None) -> None:
        """Start the thread; ``log(level, text)`` reports problems (level: warning/error)."""
        self.queue = downlink_queue
        self.capture = capture
        self.lock = lock
        self.group = group
        self.log = log
        self.on_change = on_change
        self.counters: Counter[str] = Counter()
        self._tasks: queue.Queue[IntakeTask] = queue.Queue(maxsize=buffer)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name='downlink_intake', daemon=True)
        self._thread.start()

    def submit(self, task: IntakeTask) -> bool:
        """Queue a task without blocking; False (counted, logged) if the buffer is full."""
        try:
            self._tasks.put_nowait(task)
        except queue.Full:
            self.counters['intake_overflow'] += 1
            self.log('error', f'intake buffer full ({self._tasks.maxsize}): detection of '
                     f'{task.key[1]} @{task.key[0]} dropped, NOT accepted '
                     f'({self.counters["intake_overflow"]} so far)')
            return False
        return True

    @property
    def pending(self) -> int:
        """Return the number of tasks waiting in the buffer."""
        return self._tasks.qsize()

    def stop(self) -> None:
        """Process what is buffered, then end the thread."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                tasks = [self._tasks.get(timeout=0.1)]
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            while len(tasks) < self.group:
                try:
                    tasks.append(self._tasks.get_nowait())
                except queue.Empty:
                    break
            self.process(tasks)

    def process(self, tasks: list[IntakeTask]) -> None:
        """Encode and commit a group of tasks (detections first, then late images, in order)."""
        encoded = [(task, self._encode(task)) for task in tasks]
        detections = [(task.record, parts) for task, parts in encoded if task.record is not None]
        if detections:
            self._accept(detections)
        for task, parts in encoded:
            if task.record is None:
                self._attach(task, parts)
        self.on_change()

    def _encode(self, task: IntakeTask) -> list[ProductPart]:
        parts: list[ProductPart] = []
        try:
            if task.frame is not None:
                parts += capture_frame(task.frame, task.regions, self.capture)
            if task.thumbnail is not None:
                parts.append(capture_thumbnail(task.thumbnail, self.capture))
        except ValueError as error:
            self.counters['bad_images'] += 1
            self.log('warning', f'cannot encode products of {task.key[1]}: {error}')
        return parts

    def _accept(self, batch: list[tuple[DetectionRecord, list[ProductPart]]]) -> None:
        try:
            with self.lock:
                results = self.queue.accept_many(batch)
        except sqlite3.Error:
            results = [self._accept_one(record, parts) for record, parts in batch]
        for result in results:
            if result is None:
                continue
            self.counters[result.status] += 1
            self.counters['evicted'] += len(result.evicted)
            if result.evicted:
                self.log('info', f'capacity reached: evicted item(s) {list(result.evicted)}')

    def _accept_one(self, record: DetectionRecord,
                    parts: list[ProductPart]) -> AcceptResult | None:
        try:
            with self.lock:
                return self.queue.accept(record, parts)
        except sqlite3.Error as error:
            self.counters['store_errors'] += 1
            self.log('error', f'could not store detection of {record.frame_id} '
                     f'@{record.stamp_ns} ({sum(len(p.data) for p in parts)} product bytes): '
                     f'{error}; NOT accepted (items accepted before are unaffected)')
            return None

    def _attach(self, task: IntakeTask, parts: list[ProductPart]) -> None:
        try:
            with self.lock:
                still_missing = self.queue.attach(task.key[1], task.key[0], parts)
        except sqlite3.Error as error:
            self.counters['store_errors'] += 1
            self.log('error', f'could not store the late image of {task.key[1]}: {error}')
            return
        self.counters['late_images' if still_missing is not None else 'images_unused'] += 1
