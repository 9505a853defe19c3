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

"""Captured products (ROS-free): capture, storage, start-up faults, export, ground folder."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
import sqlite3
import subprocess
import threading
import time

import numpy as np
import pytest
from test_downlink_core import accept, basis, open_queue, record

from vad4space_ros.cli import main as cli_main
from vad4space_ros.deploy.records import Region
from vad4space_ros.downlink.database import StoreError
from vad4space_ros.downlink.ground import GroundFolder, read_products, write_report
from vad4space_ros.downlink.image_matching import ImageMatcher
from vad4space_ros.downlink.intake import IntakeTask, IntakeWorker
from vad4space_ros.downlink.products import (
    capture_frame, capture_thumbnail, CaptureSettings, decode_image, record_json)
from vad4space_ros.downlink.store import DownlinkStore

SETTINGS = CaptureSettings()


def scene(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """Return a random RGB frame."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def digest(path: Path) -> str:
    """SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_capture_is_lossless_png_and_crops_regions():
    frame = scene()
    [whole] = capture_frame(frame, [], SETTINGS)
    assert whole.kind == 'frame' and whole.box == (0, 0, 128, 96)
    assert np.array_equal(decode_image(whole.data), frame)
    regions = [Region(10, 20, 30, 16, 0.9), Region(120, 90, 40, 40, 0.7),
               Region(500, 500, 5, 5, 0.6)]  # the second is clipped, the third is outside
    crops = capture_frame(frame, regions, SETTINGS)
    assert [(c.kind, c.part, c.box) for c in crops] == [
        ('region', 0, (10, 20, 30, 16)), ('region', 1, (120, 90, 8, 6))]
    assert np.array_equal(decode_image(crops[0].data), frame[20:36, 10:40])
    assert crops[0].region_score == 0.9
    jpeg = capture_frame(frame, [], CaptureSettings(image_format='jpeg', jpeg_quality=50))[0]
    assert jpeg.image_format == 'jpeg' and len(jpeg.data) < len(whole.data)
    thumbnail = capture_thumbnail(frame, SETTINGS)
    assert decode_image(thumbnail.data).shape == (96, 128, 3)  # already small: not enlarged
    assert decode_image(capture_thumbnail(scene(600, 800), SETTINGS).data).shape == (96, 128, 3)
    with pytest.raises(ValueError, match='image_format'):
        CaptureSettings(image_format='tiff')


def test_stored_sizes_are_the_real_bytes_and_missing_images_are_reported(tmp_path):
    queue = open_queue(tmp_path / 'q.db', send_thumbnails=True)
    rec = record(1, 0.9)
    parts = capture_frame(scene(), [], SETTINGS) + [capture_thumbnail(scene(seed=1), SETTINGS)]
    item = queue.accept(rec, parts).item_id
    blind = queue.accept(record(2, 0.8, basis(2))).item_id  # its image never arrived
    late = queue.accept(record(3, 0.7, basis(3))).item_id
    assert queue.attach('cam/3', record(3, 0.7).stamp_ns, parts[:1]) == 'heatmap'
    summary = queue.summary()
    assert (summary['without_frame'], summary['without_heatmap']) == (1, 2)
    record_bytes = len(record_json(rec).encode())
    sizes = {entry.item.item_id: (entry.item.product_bytes, entry.item.thumbnail_bytes)
             for entry in queue.ranked()}
    assert sizes[item] == (len(parts[0].data) + record_bytes, len(parts[1].data))
    assert sizes[blind][1] == 0 and sizes[blind][0] < 1000  # the record alone
    budget = sizes[item][0] + sizes[blind][0]
    result = queue.run_pass(budget)
    assert {r.item_id for r in result.products} == {item, blind}
    assert result.used_bytes == budget
    by_item = {r.item_id: r for r in result.products}
    assert [p.data for p in queue.release_parts(by_item[item])] == [parts[0].data]
    assert queue.release_parts(by_item[blind]) == []
    assert by_item[blind].missing == 'frame,heatmap'
    assert json.loads(by_item[item].record_json)['frame_id'] == 'cam/1'
    assert queue.attach('cam/1', rec.stamp_ns, parts) is None  # released: no longer queued
    assert late in {entry.item.item_id for entry in queue.ranked()}


def test_an_empty_file_is_refused_but_a_new_database_is_created(tmp_path):
    empty = tmp_path / 'empty.db'
    empty.touch()
    with pytest.raises(StoreError, match='0-byte'):
        DownlinkStore.connect(empty)
    assert empty.stat().st_size == 0
    DownlinkStore.connect(tmp_path / 'new.db').close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['empty.db', 'empty.db.lock',
                                                          'new.db', 'new.db.lock']


@pytest.mark.parametrize('damage', ['truncated', 'overwritten page'])
def test_a_damaged_database_is_refused_and_left_unchanged(tmp_path, damage):
    path = tmp_path / 'q.db'
    queue = open_queue(path)
    for index in range(40):
        accept(queue, record(index, 0.5), 20_000)
    queue.close()
    data = path.read_bytes()
    if damage == 'truncated':
        path.write_bytes(data[:len(data) // 2])
    else:
        path.write_bytes(data[:8192] + b'\xff' * 4096 + data[12288:])
    before = digest(path)
    with pytest.raises(StoreError, match='not usable|integrity'):
        DownlinkStore.connect(path)
    assert digest(path) == before


def mount_tmpfs(folder: Path, size: str) -> bool:
    """Mount a small tmpfs (needs root); return False when this machine does not allow it."""
    folder.mkdir()
    return subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(folder)],
                          capture_output=True).returncode == 0


def test_a_full_disk_rejects_the_item_and_keeps_everything_accepted(tmp_path):
    disk = tmp_path / 'disk'
    if not mount_tmpfs(disk, '2m'):
        pytest.skip('cannot mount a tmpfs here (needs root)')
    try:
        queue = open_queue(disk / 'q.db')
        accepted = [accept(queue, record(i, 0.5 + i / 100), 100_000).item_id for i in range(5)]
        filler = disk / 'filler'
        with pytest.raises(OSError):
            with open(filler, 'wb') as handle:
                while True:
                    handle.write(bytes(64 * 1024))
                    handle.flush()
        with pytest.raises(sqlite3.OperationalError, match='full'):
            accept(queue, record(99, 0.99), 300_000)
        assert queue.store.items_in_state('queued') == accepted
        filler.unlink()
        assert accept(queue, record(99, 0.99), 300_000).status == 'accepted'
        queue.close()
        queue = open_queue(disk / 'q.db')
        assert len(queue.store.items_in_state('queued')) == 6
        queue.close()
    finally:
        subprocess.run(['umount', str(disk)], check=True)


def test_queue_export_writes_the_stored_products(tmp_path, capsys):
    queue = open_queue(tmp_path / 'q.db')
    parts = capture_frame(scene(), [Region(0, 0, 8, 8, 0.9), Region(8, 8, 16, 8, 0.8)],
                          SETTINGS) + [capture_thumbnail(scene(), SETTINGS)]
    item = queue.accept(record(1, 0.9), parts).item_id
    queue.close()
    out = tmp_path / 'export'
    assert cli_main(['queue', 'export', '--database', str(tmp_path / 'q.db'), '--item',
                     str(item), '--out', str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ['item000001-heatmap-0.jpg', 'item000001-record.json',
                     'item000001-region-0.png', 'item000001-region-1.png']
    assert (out / 'item000001-region-1.png').read_bytes() == parts[1].data
    assert json.loads((out / 'item000001-record.json').read_text())['frame_id'] == 'cam/1'
    assert cli_main(['queue', 'export', '--database', str(tmp_path / 'q.db'), '--item',
                     '7']) == 2
    assert 'no item 7' in capsys.readouterr().err


def description(release_id: int, part: int, data: bytes | None, score: float = 0.9,
                frame: str = 'cam/1') -> dict:
    """Return a product description as the ground node builds it from ~/downlink."""
    return {'release_id': str(release_id), 'part': str(part),
            'kind': 'frame' if data else 'record', 'format': 'png',
            'sha256': hashlib.sha256(data).hexdigest() if data else '', 'frame_id': frame,
            'stamp_ns': 5, 'score': repr(score), 'is_anomaly': 'true', 'model_id': 'm',
            'missing': '' if data else 'frame,heatmap', 'record': '{}'}


def test_ground_folder_pairs_writes_once_and_reports(tmp_path):
    image = capture_frame(scene(), [], SETTINGS)[0].data
    ground = GroundFolder(tmp_path / 'g')
    assert ground.receive_image('cam/1', 5, image).written == ()  # bytes first, then description
    written = ground.receive_description(description(1, 0, image)).written
    assert [p.name for p in written] == ['000001-0-frame.png', '000001-0-frame.json']
    assert written[0].read_bytes() == image
    assert ground.receive_description(description(1, 0, image)).repeat  # attempt 2
    assert ground.receive_image('cam/1', 5, image).repeat
    assert ground.receive_image('cam/1', 5, image[:-1] + b'x').written == ()  # wrong hash
    assert ground.receive_description(description(2, 0, None, 0.95, 'cam/2')).written
    restarted = GroundFolder(tmp_path / 'g')
    assert restarted.receive_description(description(1, 0, image)).repeat
    items = read_products(tmp_path / 'g')
    assert [item['frame_id'] for item in items] == ['cam/2', 'cam/1']
    sheet, page, count = write_report(tmp_path / 'g')
    assert count == 2 and sheet.read_bytes()[:4] == b'\x89PNG'
    assert '000001-0-frame.png' in page.read_text()
    assert cli_main(['ground', 'report', str(tmp_path / 'missing')]) == 2


def test_intake_worker_commits_everything_submitted_and_counts_overflow(tmp_path):
    queue = open_queue(tmp_path / 'q.db')
    lock, logs = threading.Lock(), []
    frame = scene(32, 32)
    tasks = [IntakeTask((record(i, 0.6).stamp_ns, f'cam/{i}'), record(i, 0.6, basis(i % 16)),
                        [], frame if i % 2 else None, frame) for i in range(12)]
    with lock:  # the database is busy (a pass): submitting must not block
        worker = IntakeWorker(queue, SETTINGS, lock, buffer=3, group=8,
                              log=lambda level, text: logs.append((level, text)))
        submitted = [worker.submit(task) for task in tasks]
    assert not all(submitted) and worker.counters['intake_overflow'] == submitted.count(False)
    assert any('intake buffer full' in text for level, text in logs if level == 'error')
    late = next(task for task, ok in zip(tasks, submitted) if ok and task.frame is None)
    deadline = time.monotonic() + 30.0
    while worker.pending and time.monotonic() < deadline:  # the buffer drains
        time.sleep(0.01)
    assert worker.submit(IntakeTask(late.key, None, [], frame, None))
    worker.stop()  # processes what is buffered
    stored = {entry.item.frame_id: entry.item for entry in queue.ranked()}
    assert set(stored) == {t.record.frame_id for t, ok in zip(tasks, submitted) if ok}
    assert worker.counters['accepted'] == len(stored) and worker.counters['late_images'] == 1
    assert queue.summary()['without_frame'] == sum(
        1 for t, ok in zip(tasks, submitted) if ok and t.frame is None) - 1


def test_image_matcher_pairs_records_with_images_arriving_before_or_after_them():
    matcher = ImageMatcher(cache_limit=2, thumbnail_from_frame=False)
    frame, heatmap = scene(32, 32), scene(16, 16)
    early, late, evicted = record(1, 0.9), record(2, 0.9), record(3, 0.9)
    key_of = {rec.frame_id: (rec.stamp_ns, rec.frame_id) for rec in (early, late, evicted)}
    assert matcher.image_task(key_of['cam/1'], frame, is_frame=True) is None  # cached
    assert matcher.image_task(key_of['cam/1'], heatmap, is_frame=False) is None
    task = matcher.detection_task(early)
    assert task.frame is frame and task.thumbnail is heatmap and task.record is early
    matcher.await_images(task)  # complete: nothing awaited
    assert matcher.image_task(key_of['cam/1'], frame, is_frame=True) is None  # cached again
    task = matcher.detection_task(late)
    assert task.frame is None and task.thumbnail is None
    matcher.await_images(task)
    frame_task = matcher.image_task(key_of['cam/2'], frame, is_frame=True)
    assert frame_task.record is None and frame_task.frame is frame
    assert frame_task.thumbnail is None
    matcher.attached(frame_task)
    assert matcher.image_task(key_of['cam/2'], frame, is_frame=True) is None  # not needed now
    heatmap_task = matcher.image_task(key_of['cam/2'], heatmap, is_frame=False)
    assert heatmap_task.frame is None and heatmap_task.thumbnail is heatmap
    matcher.attached(heatmap_task)
    for frame_number in (4, 5):  # the cache keeps the newest two frames only
        matcher.image_task((record(frame_number, 0.9).stamp_ns, f'cam/{frame_number}'), frame,
                           is_frame=True)
    matcher.image_task(key_of['cam/3'], frame, is_frame=True)
    assert matcher.detection_task(evicted).frame is frame
    assert matcher.detection_task(record(4, 0.9)).frame is None  # evicted by cam/5, cam/3
