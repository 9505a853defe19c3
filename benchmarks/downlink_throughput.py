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

"""Downlink with real product bytes: accept rate, pass time, storage, intake during passes.

All frames are SYNTHETIC (smooth random terrain with sensor-like noise), so PNG sizes are those of
textured images, not of real Mars/Moon frames. Figures (printed, and written to
``benchmarks/results/downlink.json``):

- accept: records/s when each detection's products (frame PNG + heatmap JPEG thumbnail) are
  encoded and committed in its own transaction, for 256x256 and 1600x1200 frames, with
  ``synchronous`` FULL and NORMAL (encoding and commit timed separately);
- pass: ``run_pass`` time with ``--queued`` items holding real products (256x256 JPEG frames and
  thumbnails), and reading the released parts back as the node does before publishing;
- storage: database (+ WAL) bytes against the raw product bytes stored in it;
- intake (DDS, node process): detection records + 256x256 frames offered at ``--rate`` Hz
  before and during passes (one per second, served to a consumer that acknowledges); the share
  committed to the queue. The issue's target is >= 99 % at 50 Hz.

Run: ``PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/downlink_throughput.py``
(``--skip-intake`` for the storage figures only).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sqlite3
import sys
import tempfile
import time

import cv2
import numpy as np

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACKAGE_ROOT / 'test'))

import ros_harness  # noqa: E402  (sets the isolated ROS environment before rclpy is used)

from vad4space_ros.deploy.records import DetectionRecord  # noqa: E402
from vad4space_ros.downlink.downlink_queue import DownlinkQueue  # noqa: E402
from vad4space_ros.downlink.policy import DownlinkPolicy  # noqa: E402
from vad4space_ros.downlink.products import (  # noqa: E402
    capture_frame, capture_thumbnail, CaptureSettings, record_json)

RESULTS = PACKAGE_ROOT / 'benchmarks' / 'results' / 'downlink.json'
NODE = '/vad4space_downlink'


def terrain(height: int, width: int, seed: int) -> np.ndarray:
    """Return a SYNTHETIC textured RGB frame (smooth relief + noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(128, 40, (max(2, height // 32), max(2, width // 32))).astype(np.float32)
    relief = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grey = np.clip(relief + rng.normal(0, 6, (height, width)), 0, 255).astype(np.uint8)
    return np.stack([grey, (grey * 0.9).astype(np.uint8), (grey * 0.8).astype(np.uint8)], -1)


def detection(index: int, rng: np.random.Generator, dim: int = 96) -> DetectionRecord:
    """Return a detection record with a random score and unit embedding."""
    embedding = rng.standard_normal(dim).astype(np.float32)
    score = float(rng.beta(2, 5))
    return DetectionRecord(
        stamp_ns=10 ** 18 + index, frame_id=f'bench/{index}', score=score, raw_score=score,
        threshold=0.5, is_anomaly=score >= 0.5, method='padim', model_id='bench',
        latency_ms=0.0, embedding=embedding / np.linalg.norm(embedding))


def storage(path: Path, queue: DownlinkQueue) -> dict:
    """Database bytes against the raw product bytes stored."""
    parts, part_bytes = queue.store.stored_bytes()
    record_bytes = queue.store.connection.execute(
        'SELECT coalesce(sum(length(CAST(record_json AS BLOB))), 0) FROM items').fetchone()[0]
    raw = part_bytes + record_bytes
    on_disk = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(
        path.name + '-wal'))
    return {'parts': parts, 'raw_product_bytes': raw, 'database_bytes': on_disk,
            'overhead_percent': round(100.0 * (on_disk - raw) / raw, 1)}


def measure_accept(folder: Path, size: tuple[int, int], mode: str, count: int) -> dict:
    """Encode + commit ``count`` detections with products of one frame size."""
    rng = np.random.default_rng(0)
    path = folder / f'accept_{size[0]}x{size[1]}_{mode}.db'
    queue = DownlinkQueue.connect(path, DownlinkPolicy(), mode)
    frames = [terrain(*size, seed) for seed in range(4)]
    heatmap = terrain(*size, 99)
    settings = CaptureSettings()
    encode_s = commit_s = 0.0
    for index in range(count):
        started = time.perf_counter()
        parts = (capture_frame(frames[index % len(frames)], [], settings)
                 + [capture_thumbnail(heatmap, settings)])
        encoded = time.perf_counter()
        queue.accept(detection(index, rng), parts)
        committed = time.perf_counter()
        encode_s += encoded - started
        commit_s += committed - encoded
    result = {'frame': f'{size[1]}x{size[0]}', 'synchronous': mode, 'records': count,
              'accept_per_s': round(count / (encode_s + commit_s), 1),
              'encode_ms': round(1000 * encode_s / count, 2),
              'commit_ms': round(1000 * commit_s / count, 2),
              'product_bytes_mean': round(queue.queued_bytes / count),
              'storage': storage(path, queue)}
    queue.close()
    return result


def measure_passes(folder: Path, queued: int, budgets: list[int]) -> dict:
    """Prefill ``queued`` items with real 256x256 products; time passes and part reads."""
    rng = np.random.default_rng(1)
    path = folder / 'passes.db'
    policy = DownlinkPolicy(capacity_items=queued + 1, capacity_bytes=10 ** 15)
    queue = DownlinkQueue.connect(path, policy, 'NORMAL')
    settings = CaptureSettings(image_format='jpeg')
    variants = [capture_frame(terrain(256, 256, seed), [], settings)
                + [capture_thumbnail(terrain(256, 256, 50 + seed), settings)]
                for seed in range(8)]
    started = time.perf_counter()
    for first in range(0, queued, 100):  # group commits of 100 (not timed as accepts)
        queue.accept_many([(detection(index, rng), variants[index % len(variants)])
                           for index in range(first, min(queued, first + 100))])
        if first and first % 2000 == 0:
            print(f'  pre-filled {first:,}/{queued:,} items', flush=True)
    fill_s = time.perf_counter() - started
    rows = []
    for budget in budgets:
        started = time.perf_counter()
        result = queue.run_pass(budget)
        pass_ms = 1000 * (time.perf_counter() - started)
        started = time.perf_counter()
        part_bytes = sum(len(part.data) for release in result.products
                         for part in queue.release_parts(release))
        read_ms = 1000 * (time.perf_counter() - started)
        queue.confirm_sent(queue.begin_publication(list(result.products)))
        rows.append({'budget_bytes': budget, 'pass_ms': round(pass_ms, 1),
                     'products': len(result.products), 'used_bytes': result.used_bytes,
                     'read_parts_ms': round(read_ms, 1), 'part_bytes': part_bytes})
    summary = {'queued': queued, 'prefill_s': round(fill_s, 1), 'passes': rows,
               'storage': storage(path, queue)}
    queue.close()
    return summary


def measure_intake(folder: Path, rate: float, count: int, budget: int) -> dict:
    """Offer detections + 256x256 frames at ``rate`` Hz before and during passes (DDS)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header, UInt64

    from vad4space_ros.nodes.ros_conversions import record_to_msg

    database = folder / 'intake.db'
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    keep_all = QoSProfile(depth=1, history=HistoryPolicy.KEEP_ALL,
                          reliability=ReliabilityPolicy.RELIABLE)
    command = ros_harness.node_command('vad4space_downlink', 'vad4space_ros.nodes.downlink_node')
    rng = np.random.default_rng(2)
    frames = [terrain(256, 256, seed).tobytes() for seed in range(4)]
    phases = {}
    with ros_harness.run_node(command, {'database': str(database), 'synchronous': 'FULL',
                                        'send_thumbnails': False},
                              remappings={'detection': '/detection', 'image': '/image'}) as node, \
            ros_harness.RosTestNode('vad4space_benchmark') as ros:
        detections = ros.node.create_publisher(DiagnosticArray, '/detection', reliable)
        images = ros.node.create_publisher(Image, '/image', 10)
        passes = ros.node.create_publisher(UInt64, f'{NODE}/pass', reliable)
        received = ros.collect(DiagnosticArray, f'{NODE}/downlink', keep_all)
        summaries = ros.collect(DiagnosticArray, f'{NODE}/queue', QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        ros.collect(CompressedImage, f'{NODE}/downlink/image', keep_all)
        for publisher in (detections, images, passes):
            ros.wait_for_subscribers(publisher, process=node)
        ros.spin_for(1.0)
        index = 0
        for phase in ('before passes', 'during passes'):
            committed_before = _count(database)
            started = time.monotonic()
            pass_times = []
            for k in range(count):
                due = started + k / rate
                while time.monotonic() < due:
                    ros.spin_once(max(0.0, min(0.005, due - time.monotonic())))
                rec = detection(index, rng)
                header = Header(frame_id=rec.frame_id)
                header.stamp.sec, header.stamp.nanosec = divmod(rec.stamp_ns, 10 ** 9)
                image = Image(header=header, height=256, width=256, encoding='rgb8', step=768)
                image.data = frames[index % len(frames)]
                images.publish(image)
                detections.publish(record_to_msg(rec, header))
                index += 1
                if phase == 'during passes' and k % int(rate) == 0:
                    passes.publish(UInt64(data=budget))
                    pass_times.append(time.monotonic())
            offered_s = time.monotonic() - started
            accepted = _drained(ros, database) - committed_before
            phases[phase] = {'offered': count, 'accepted': accepted,
                             'accepted_percent': round(100.0 * accepted / count, 2),
                             'offered_hz': round(count / offered_s, 1),
                             'passes': len(pass_times)}
            print(f'  intake {phase}: {accepted}/{count} accepted', flush=True)
        ros.spin_for(3.0)
        node.assert_alive()
        phases['downlink_messages_received'] = len(received.messages)
        if summaries.messages:
            phases['node_counters'] = {
                pair.key: pair.value for pair in summaries.messages[-1].status[0].values
                if pair.key.startswith('session_')}
        with sqlite3.connect(f'file:{database}?mode=ro', uri=True) as connection:
            phases['items_without_frame'] = connection.execute(
                "SELECT count(*) FROM items WHERE missing LIKE '%frame%'").fetchone()[0]
    return {'rate_hz': rate, 'frame': '256x256 rgb8 + record', 'pass_budget_bytes': budget,
            **phases}


def _drained(ros: ros_harness.RosTestNode, database: Path, quiet_s: float = 2.0) -> int:
    """Spin until the number of stored items stopped changing for ``quiet_s``; return it."""
    count, since = _count(database), time.monotonic()
    deadline = since + 120.0
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        ros.spin_for(0.2)
        latest = _count(database)
        if latest != count:
            count, since = latest, time.monotonic()
    return count


def _count(database: Path) -> int:
    with sqlite3.connect(f'file:{database}?mode=ro', uri=True, timeout=10.0) as connection:
        return connection.execute('SELECT count(*) FROM items').fetchone()[0]


def main() -> None:
    """Run the measurements, print them and write the JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--accepts', type=int, default=200, help='Records per 256x256 run.')
    parser.add_argument('--large-accepts', type=int, default=20,
                        help='Records per 1600x1200 run.')
    parser.add_argument('--queued', type=int, default=10_000)
    parser.add_argument('--budgets', type=int, nargs='+', default=[10_000_000, 100_000_000])
    parser.add_argument('--rate', type=float, default=50.0)
    parser.add_argument('--intake', type=int, default=400, help='Records offered per phase.')
    parser.add_argument('--skip-intake', action='store_true')
    parser.add_argument('--only-intake', action='store_true',
                        help='Measure intake only and update that entry of the JSON file.')
    args = parser.parse_args()
    results: dict = {'note': 'SYNTHETIC frames; 2-core machine shared with other jobs',
                     'record_bytes_example': len(record_json(detection(0, np.random.default_rng(
                         0))).encode())}
    if args.only_intake and RESULTS.is_file():
        results = json.loads(RESULTS.read_text())
    with tempfile.TemporaryDirectory(prefix='downlink_bench_', dir=PACKAGE_ROOT) as folder:
        folder = Path(folder)
        if not args.only_intake:
            measure_storage(folder, args, results)
        if not args.skip_intake:
            results['intake'] = measure_intake(folder, args.rate, args.intake, 2_000_000)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + '\n')
    print(f'wrote {RESULTS}')


def measure_storage(folder: Path, args: argparse.Namespace, results: dict) -> None:
    """Run the accept and pass measurements into ``results``."""
    results['accept'] = []
    for size, count in (((256, 256), args.accepts), ((1200, 1600), args.large_accepts)):
        for mode in ('FULL', 'NORMAL'):
            row = measure_accept(folder, size, mode, count)
            results['accept'].append(row)
            print(f'accept {row["frame"]} {mode}: {row["accept_per_s"]} rec/s (encode '
                  f'{row["encode_ms"]} ms, commit {row["commit_ms"]} ms, '
                  f'{row["product_bytes_mean"]:,} B/product; storage overhead '
                  f'{row["storage"]["overhead_percent"]} %)', flush=True)
    results['pass'] = measure_passes(folder, args.queued, args.budgets)
    for row in results['pass']['passes']:
        print(f'pass with {args.queued:,} queued, budget {row["budget_bytes"]:,}: '
              f'{row["pass_ms"]} ms, {row["products"]} products; reading their parts '
              f'{row["read_parts_ms"]} ms', flush=True)
    print(f'storage with {args.queued:,} items: {results["pass"]["storage"]}')


if __name__ == '__main__':
    main()
