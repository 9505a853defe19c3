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

"""End-to-end latency and memory of the detector node, one node process per model file.

For each model the node is started as a subprocess (loopback-only DDS, private domain, as in the
tests); frames are published one at a time from this process and each is timed from publish to
the arrival of its ``~/score`` (published after the map and heatmap). Reported per
model: start-up time (process start to first answer), inference time (from the detection
records), the node's own receive->publish latency (``/diagnostics`` mean), end-to-end latency
(median and 95th percentile) and the node's peak resident memory (``VmHWM``). Example::

    .venv/bin/python benchmarks/detector_latency.py models/*.safetensors --frames 50

Frames are synthetic LROC-like chips (``--size`` px square, mono8 by default), or generated
Mastcam-like 6-band tiles with ``--encoding 8UC6`` (resized to ``--size``). **Fusion cost:** a
fused model (``vad4space fit --spectral-fusion``) needs 8UC6 frames; after its row, one more
node runs it while the node parameter ``spectral_fusion`` alternates between false (RGB branch
only) and true (fused) for every frame, each frame sent once each way (order alternating), so
the paired figures differ only by the spectral branch (same model, frames and RGB input size,
same moment of a changing machine load)::

    .venv/bin/python benchmarks/detector_latency.py fused.safetensors --encoding 8UC6 --size 64

This is a benchmark, not a test: figures depend on the machine and its load.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
import os
from pathlib import Path
import sys
import tempfile
import time

import numpy as np

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACKAGE_ROOT / 'test'))

import ros_harness  # noqa: E402  (sets the isolated ROS environment before rclpy is used)

from vad4space_ros.evaluation.resources import process_memory_mb  # noqa: E402


@dataclass
class Result:
    """Figures for one model file."""

    model: Path
    label: str
    model_mb: float
    startup_s: float
    inference_ms: list[float]
    node_latency_ms: float
    end_to_end_ms: list[float]
    peak_rss_mb: float
    idle_rss_mb: float
    burst_sent: int = 0
    burst_processed: int = 0
    burst_dropped: int = 0
    burst_latency_ms: list[float] | None = None


@dataclass
class FusionCost:
    """Per-frame figures of one fused model, RGB branch only vs fused, paired by frame."""

    model: Path
    inference_ms: dict[bool, list[float]]
    end_to_end_ms: dict[bool, list[float]]


def is_fused_model(path: Path) -> bool:
    """Whether a model file holds a spectral branch (reads the safetensors header only)."""
    if path.suffix.lower() == '.onnx':
        return False
    from safetensors import safe_open

    with safe_open(str(path), framework='numpy') as artifact:
        return 'spectral' in json.loads((artifact.metadata() or {}).get('vad4space', '{}'))


def make_frames(count: int, size: int, encoding: str) -> list[np.ndarray]:
    """Render ``count`` synthetic lunar chips (normal and fresh-crater) at ``size`` px.

    ``8UC6``: generated Mastcam-like 6-band tiles (typical, every fifth with veins) instead.
    """
    import cv2

    rng = np.random.default_rng(0)
    if encoding == '8UC6':
        from vad4space_ros.data.synthetic_mars import render_tile
        tiles = [render_tile(rng, 'veins' if index % 5 == 4 else 'typical').astype(np.uint8)
                 for index in range(count)]
        return [tile if tile.shape[0] == size else np.dstack([
            cv2.resize(np.ascontiguousarray(tile[:, :, band]), (size, size),
                       interpolation=cv2.INTER_LINEAR) for band in range(tile.shape[2])])
                for tile in tiles]
    from vad4space_ros.data.synthetic_lunar import render_chip

    frames = []
    for index in range(count):
        chip = render_chip(rng, 'ejecta' if index % 5 == 4 else 'none')
        chip = cv2.resize(chip, (size, size), interpolation=cv2.INTER_LINEAR)
        frames.append(np.repeat(chip[:, :, None], 3, axis=2) if encoding == 'rgb8' else chip)
    return frames


def mean_node_latency(statuses: list) -> float:
    """Average the node's receive->publish latency over /diagnostics windows, frame-weighted."""
    weighted, frames, previous = 0.0, 0, None
    for message in statuses:
        values = {pair.key: pair.value for pair in message.status[0].values}
        processed = int(values['processed'])
        if previous is not None and processed > previous:
            weighted += float(values['mean_latency_ms']) * (processed - previous)
            frames += processed - previous
        previous = processed
    return weighted / frames if frames else float('nan')


def counters(statuses: list) -> dict[str, int]:
    """Return the cumulative frame counters of the newest /diagnostics status."""
    values = {pair.key: pair.value for pair in statuses[-1].status[0].values}
    return {key: int(values[key]) for key in ('received', 'processed', 'dropped')}


def benchmark_model(model: Path, frames: list[np.ndarray], encoding: str,
                    threads: int, burst_hz: float) -> Result:
    """Run the node on one model and time every frame."""
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PointStamped
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from tqdm import tqdm

    from vad4space_ros.deploy.image_encoding import array_to_image
    from vad4space_ros.nodes.ros_conversions import msg_to_record, raw_to_image_msg

    command = ros_harness.node_command('vad4space_detector', 'vad4space_ros.nodes.detector_node')
    parameters = {'model_path': str(model), 'diagnostics_period': 0.5,
                  'qos_overrides./image.subscription.reliability': 'reliable'}
    log_path = Path(tempfile.mkstemp(prefix=f'bench_{model.stem}_', suffix='.log')[1])
    started = time.monotonic()
    with ros_harness.run_node(command, parameters, log_path=log_path,
                              env={'OMP_NUM_THREADS': str(threads)}) as process, \
            ros_harness.RosTestNode('vad4space_benchmark') as ros:
        publisher = ros.node.create_publisher(Image, '/image', 10)
        scores = ros.collect(PointStamped, '/vad4space_detector/score')
        detections = ros.collect(DiagnosticArray, '/vad4space_detector/detection')
        diagnostics = ros.collect(DiagnosticArray, '/diagnostics')
        warmup = raw_to_image_msg(array_to_image(frames[0], encoding), Header(frame_id='warmup'))
        ros.publish_until_answered(publisher, warmup, [scores, detections], timeout=300.0,
                                   process=process)
        startup_s = time.monotonic() - started
        idle_rss = process_memory_mb(process.pid, 'VmRSS')
        scores.clear()
        detections.clear()
        ros.spin_for(1.0)  # let the warm-up frames' diagnostics window pass
        diagnostics.clear()
        end_to_end = []
        for index, pixels in enumerate(tqdm(frames, desc=model.name, unit='frame')):
            message = raw_to_image_msg(array_to_image(pixels, encoding),
                                       Header(frame_id=f'frame-{index}'))
            sent = time.monotonic()
            publisher.publish(message)
            ros.spin_until(lambda: any(m.header.frame_id == f'frame-{index}'
                                       for m in scores.messages), 60.0, process,
                           what=f'score of frame {index}')
            end_to_end.append((scores.arrival_times[-1] - sent) * 1000.0)
        ros.spin_until(lambda: len(detections.messages) >= len(frames), 10.0, process,
                       what='all detection records')
        ros.spin_for(1.0)  # the last frames' diagnostics window
        records = [msg_to_record(message) for message in detections.messages]
        label = records[0].method + (' fused' if records[0].model_id.endswith('+rx') else '')
        result = Result(model=model, label=label,
                        model_mb=model.stat().st_size / 1e6, startup_s=startup_s,
                        inference_ms=[r.latency_ms for r in records],
                        node_latency_ms=mean_node_latency(diagnostics.messages),
                        end_to_end_ms=end_to_end, peak_rss_mb=0.0, idle_rss_mb=idle_rss)
        if burst_hz > 0:
            before = counters(diagnostics.messages)
            sent_at = {}
            start = time.monotonic()
            for index, pixels in enumerate(frames):
                frame_id = f'burst-{index}'
                publisher.publish(raw_to_image_msg(array_to_image(pixels, encoding),
                                                   Header(frame_id=frame_id)))
                sent_at[frame_id] = time.monotonic()
                while time.monotonic() < start + (index + 1) / burst_hz:
                    ros.spin_once(0.002)
            ros.spin_for(3.0 + 2 * np.median(result.inference_ms) / 1000.0)
            after = counters(diagnostics.messages)
            result.burst_sent = len(frames)
            result.burst_processed = after['processed'] - before['processed']
            result.burst_dropped = after['dropped'] - before['dropped']
            result.burst_latency_ms = [
                (arrived - sent_at[m.header.frame_id]) * 1000.0
                for m, arrived in zip(scores.messages, scores.arrival_times)
                if m.header.frame_id in sent_at]
        result.peak_rss_mb = process_memory_mb(process.pid, 'VmHWM')
    return result


def print_table(results: list[Result], size: int, encoding: str, burst_hz: float) -> None:
    """Print one row per model."""
    print(f'\nframes {size}x{size} {encoding}; latencies in ms (median / p95); memory in MB')
    header = (f'{"model":<16} {"file MB":>8} {"start s":>8} {"inference":>15} '
              f'{"receive->publish":>17} {"end-to-end":>15} {"peak RSS":>9} {"idle RSS":>9}')
    print(header)
    print('-' * len(header))
    for result in results:
        inference = np.percentile(result.inference_ms, [50, 95])
        end_to_end = np.percentile(result.end_to_end_ms, [50, 95])
        print(f'{result.label:<16} {result.model_mb:8.1f} {result.startup_s:8.1f} '
              f'{inference[0]:7.1f} /{inference[1]:6.1f} {result.node_latency_ms:17.1f} '
              f'{end_to_end[0]:7.1f} /{end_to_end[1]:6.1f} '
              f'{result.peak_rss_mb:9.0f} {result.idle_rss_mb:9.0f}')
    bursts = [result for result in results if result.burst_latency_ms]
    if bursts:
        print(f'\nburst of {bursts[0].burst_sent} frames at {burst_hz:g} Hz '
              '(queue_size 1): latency of the published frames in ms')
        header = f'{"model":<16} {"processed":>9} {"dropped":>8} {"median":>8} {"max":>8}'
        print(header)
        print('-' * len(header))
        for result in bursts:
            print(f'{result.label:<16} {result.burst_processed:9d} {result.burst_dropped:8d} '
                  f'{np.median(result.burst_latency_ms):8.1f} '
                  f'{max(result.burst_latency_ms):8.1f}')


def measure_fusion_cost(model: Path, frames: list[np.ndarray], threads: int) -> FusionCost:
    """Time every 8UC6 frame with ``spectral_fusion`` false and true in one node, paired."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from tqdm import tqdm

    from vad4space_ros.deploy.image_encoding import array_to_image
    from vad4space_ros.nodes.ros_conversions import msg_to_record, raw_to_image_msg

    command = ros_harness.node_command('vad4space_detector', 'vad4space_ros.nodes.detector_node')
    parameters = {'model_path': str(model),
                  'qos_overrides./image.subscription.reliability': 'reliable'}
    log_path = Path(tempfile.mkstemp(prefix=f'fusion_{model.stem}_', suffix='.log')[1])
    cost = FusionCost(model, {False: [], True: []}, {False: [], True: []})
    with ros_harness.run_node(command, parameters, log_path=log_path,
                              env={'OMP_NUM_THREADS': str(threads)}) as process, \
            ros_harness.RosTestNode('vad4space_benchmark') as ros:
        publisher = ros.node.create_publisher(Image, '/image', 10)
        detections = ros.collect(DiagnosticArray, '/vad4space_detector/detection')
        warmup = raw_to_image_msg(array_to_image(frames[0], '8UC6'), Header(frame_id='warmup'))
        ros.publish_until_answered(publisher, warmup, [detections], timeout=300.0,
                                   process=process)
        for index, pixels in enumerate(tqdm(frames, desc=f'{model.name} off/on', unit='frame')):
            for fusion in ((False, True) if index % 2 == 0 else (True, False)):
                results = ros.set_parameters('/vad4space_detector', {'spectral_fusion': fusion},
                                             process=process)
                assert results[0].successful, results[0].reason
                frame_id = f'frame-{index}-{fusion}'
                message = raw_to_image_msg(array_to_image(pixels, '8UC6'),
                                           Header(frame_id=frame_id))
                sent = time.monotonic()
                publisher.publish(message)
                ros.spin_until(lambda: detections.messages[-1].header.frame_id == frame_id,
                               60.0, process, what=f'detection of {frame_id}')
                cost.end_to_end_ms[fusion].append((detections.arrival_times[-1] - sent) * 1e3)
                record = msg_to_record(detections.messages[-1])
                assert record.model_id.endswith('+rx') == fusion, record.model_id
                cost.inference_ms[fusion].append(record.latency_ms)
    return cost


def print_fusion_cost(costs: list[FusionCost], size: int) -> None:
    """Print the paired RGB-only vs fused medians and the median per-frame difference."""
    print(f'\nfusion cost in the node, {size}x{size} 8UC6 frames, each frame sent with '
          'spectral_fusion false and true (paired); medians in ms')
    header = (f'{"model file":<28} {"frames":>6} {"inference RGB":>13} {"fused":>7} '
              f'{"+ms":>6} {"end-to-end RGB":>14} {"fused":>7} {"+ms":>6}')
    print(header)
    print('-' * len(header))
    for cost in costs:
        inference = {mode: np.median(v) for mode, v in cost.inference_ms.items()}
        end_to_end = {mode: np.median(v) for mode, v in cost.end_to_end_ms.items()}
        added_inference = np.median(np.subtract(cost.inference_ms[True],
                                                cost.inference_ms[False]))
        added_end_to_end = np.median(np.subtract(cost.end_to_end_ms[True],
                                                 cost.end_to_end_ms[False]))
        print(f'{cost.model.name[:28]:<28} {len(cost.inference_ms[True]):6d} '
              f'{inference[False]:13.1f} {inference[True]:7.1f} {added_inference:+6.1f} '
              f'{end_to_end[False]:14.1f} {end_to_end[True]:7.1f} {added_end_to_end:+6.1f}')
    print('(+ms: median of the per-frame differences fused - RGB-only)')


def main(argv: list[str] | None = None) -> int:
    """Benchmark every model file given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('models', nargs='+', type=Path, help='model files from `vad4space fit`')
    parser.add_argument('--frames', type=int, default=50, help='timed frames per model')
    parser.add_argument('--size', type=int, default=256, help='frame side in pixels')
    parser.add_argument('--encoding', choices=('mono8', 'rgb8', '8UC6'), default='mono8',
                        help='8UC6: generated Mastcam-like 6-band tiles (needed by fused models)')
    parser.add_argument('--burst-hz', type=float, default=30.0,
                        help='after the paced run, publish the frames again at this rate '
                             '(0 = no burst)')
    parser.add_argument('--threads', type=int, default=int(os.environ.get('OMP_NUM_THREADS', 2)),
                        help='torch threads of the node (OMP_NUM_THREADS)')
    args = parser.parse_args(argv)
    missing = [str(model) for model in args.models if not model.is_file()]
    if missing:
        parser.error(f'no such model file: {", ".join(missing)}')
    fused = [model for model in args.models if is_fused_model(model)]
    if fused and args.encoding != '8UC6':
        parser.error(f'fused models need --encoding 8UC6: {", ".join(map(str, fused))}')
    frames = make_frames(args.frames, args.size, args.encoding)
    results = [benchmark_model(model, frames, args.encoding, args.threads, args.burst_hz)
               for model in args.models]
    costs = [measure_fusion_cost(model, frames, args.threads) for model in fused]
    print_table(results, args.size, args.encoding, args.burst_hz)
    if costs:
        print_fusion_cost(costs, args.size)
    return 0


if __name__ == '__main__':
    sys.exit(main())
