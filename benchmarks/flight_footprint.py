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

"""Detector-node footprint on the flight path: resident memory, start-up time, per-frame latency.

One node process (loopback-only DDS on a private domain, as in the tests) runs one model file;
this process publishes 256x256 frames. Two runs per code tree:

- **start-up and load**: frames are published at ``--rate`` Hz from the moment the process is
  started; reported: time from process start to the first ``~/score``, then after
  ``--seconds`` of frames the node's resident memory (``VmRSS``) and its peak (``VmHWM``), and
  the inference time of every frame (from the detection records);
- **idle**: the node is started, discovery completes, and nothing is published for
  ``--idle-seconds``; reported: ``VmRSS`` then.

``--tree DIR`` runs the node from another checkout of the package (``PYTHONPATH=DIR``), e.g. a
``git worktree`` of an older commit, so before and after are measured on the same machine in the
same session::

    .venv/bin/python benchmarks/flight_footprint.py model.onnx --tree /tmp/before --label before
    .venv/bin/python benchmarks/flight_footprint.py model.onnx --label after

Results are appended to ``benchmarks/results/flight_footprint.json``. A benchmark, not a test:
figures depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import tempfile
import time

import numpy as np

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACKAGE_ROOT / 'test'))

import ros_harness  # noqa: E402  (sets the isolated ROS environment before rclpy is used)

from vad4space_ros.evaluation.resources import process_memory_mb  # noqa: E402,I100


def frames(count: int, size: int) -> list[np.ndarray]:
    """Render ``count`` synthetic lunar chips at ``size`` px as rgb8 (every fifth anomalous)."""
    import cv2

    from vad4space_ros.data.synthetic_lunar import render_chip

    rng = np.random.default_rng(0)
    chips = [render_chip(rng, 'ejecta' if index % 5 == 4 else 'none') for index in range(count)]
    return [np.repeat(cv2.resize(chip, (size, size))[:, :, None], 3, axis=2) for chip in chips]


def start_node(model: Path, tree: Path | None, threads: int, tag: str):
    """Start the detector node process from ``tree`` (default: this checkout)."""
    command = ros_harness.node_command('vad4space_detector', 'vad4space_ros.nodes.detector_node')
    env = {'OMP_NUM_THREADS': str(threads)}
    if tree is not None:
        env['PYTHONPATH'] = str(tree)
    log = Path(tempfile.mkstemp(prefix=f'flight_{tag}_', suffix='.log')[1])
    parameters = {'model_path': str(model),
                  'qos_overrides./image.subscription.reliability': 'reliable'}
    return ros_harness.run_node(command, parameters, log_path=log, env=env)


def loaded_run(model: Path, tree: Path | None, args: argparse.Namespace) -> dict:
    """Publish at ``args.rate`` Hz from process start; time the first score, then measure."""
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PointStamped
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from vad4space_ros.deploy.image_encoding import array_to_image
    from vad4space_ros.nodes.ros_conversions import msg_to_record, raw_to_image_msg

    images = frames(50, args.size)
    with ros_harness.RosTestNode('flight_footprint') as ros:
        publisher = ros.node.create_publisher(Image, '/image', 10)
        scores = ros.collect(PointStamped, '/vad4space_detector/score')
        detections = ros.collect(DiagnosticArray, '/vad4space_detector/detection')
        started = time.monotonic()
        with start_node(model, tree, args.threads, 'loaded') as process:
            first_score_s = None
            index = 0
            deadline = None
            while deadline is None or time.monotonic() < deadline:
                message = raw_to_image_msg(array_to_image(images[index % len(images)], 'rgb8'),
                                           Header(frame_id=f'frame-{index}'))
                publisher.publish(message)
                index += 1
                tick = started + index / args.rate
                while time.monotonic() < tick:
                    ros.spin_once(0.005)
                if first_score_s is None and scores.messages:
                    first_score_s = scores.arrival_times[0] - started
                    deadline = time.monotonic() + args.seconds
                    sent_after_first = index
                if first_score_s is None and time.monotonic() - started > 300:
                    process.assert_alive()
                    raise TimeoutError('no score within 300 s')
            ros.spin_for(1.0)
            rss = process_memory_mb(process.pid, 'VmRSS')
            peak = process_memory_mb(process.pid, 'VmHWM')
        inference = [msg_to_record(m).latency_ms for m in detections.messages]
    return {'first_score_s': first_score_s, 'rss_after_mb': rss, 'peak_rss_mb': peak,
            'frames_sent': index - sent_after_first, 'frames_scored': len(inference),
            'inference_ms_median': float(np.median(inference)),
            'inference_ms_p95': float(np.percentile(inference, 95))}


def idle_run(model: Path, tree: Path | None, args: argparse.Namespace) -> float:
    """Start the node, let discovery finish, publish nothing; return its VmRSS in MB."""
    from sensor_msgs.msg import Image

    with ros_harness.RosTestNode('flight_footprint_idle') as ros:
        publisher = ros.node.create_publisher(Image, '/image', 10)
        with start_node(model, tree, args.threads, 'idle') as process:
            ros.wait_for_subscribers(publisher, timeout=120.0)
            ros.spin_for(args.idle_seconds)
            process.assert_alive()
            return process_memory_mb(process.pid, 'VmRSS')


def main() -> int:
    """Measure one code tree on one model file and append the figures to the results."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', type=Path, help='model file (the onboard .onnx)')
    parser.add_argument('--tree', type=Path, help='run the node from this checkout')
    parser.add_argument('--label', default='current')
    parser.add_argument('--rate', type=float, default=10.0, help='frames per second')
    parser.add_argument('--seconds', type=float, default=60.0, help='loaded period')
    parser.add_argument('--idle-seconds', type=float, default=5.0)
    parser.add_argument('--size', type=int, default=256, help='frame side in pixels')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--output', type=Path,
                        default=PACKAGE_ROOT / 'benchmarks' / 'results' / 'flight_footprint.json')
    args = parser.parse_args()
    print(f'[{args.label}] idle run ...', flush=True)
    idle = idle_run(args.model, args.tree, args)
    print(f'[{args.label}] idle RSS {idle:.0f} MB; loaded run ({args.seconds:.0f} s at '
          f'{args.rate:g} Hz) ...', flush=True)
    row = {'label': args.label, 'model': args.model.name,
           'model_mb': args.model.stat().st_size / 1e6, 'idle_rss_mb': idle,
           **loaded_run(args.model, args.tree, args), 'rate_hz': args.rate,
           'seconds': args.seconds, 'size': args.size, 'threads': args.threads}
    print(json.dumps(row, indent=1))
    rows = json.loads(args.output.read_text()) if args.output.exists() else []
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows + [row], indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
