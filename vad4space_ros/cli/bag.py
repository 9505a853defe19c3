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

"""``vad4space bag``: write a benchmark setting as a rosbag2 and summarise a bag."""
from __future__ import annotations

import argparse
from collections import Counter

from vad4space_ros.data import bags
from vad4space_ros.data import load_dataset
from vad4space_ros.data.protocols import make_setting, SETTINGS


def _make(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, args.root)
    split = make_setting(dataset, args.setting, seed=args.seed)
    for note in split.notes:
        print(f'note: {note}')
    samples = split.part(args.split)
    bands_topic = args.bands_topic if args.bands else None
    report = bags.write_benchmark_bag(
        samples, args.out, dataset=args.dataset, image_topic=args.image_topic,
        label_topic=args.label_topic, bands_topic=bands_topic, frame_id=args.frame_id,
        rate_hz=args.rate_hz, storage=args.storage)
    anomalies = sum(s.label for s in samples if s.path not in {p for p, _ in report.skipped})
    print(f'wrote {report.frames} frames ({anomalies} anomalies) of {args.dataset} setting '
          f'{args.setting} {args.split} to {report.path} ({report.size_bytes / 1e6:.1f} MB, '
          f'{args.storage})')
    for path, reason in report.skipped:
        print(f'skipped {path}: {reason}')
    return 0


def _info(args: argparse.Namespace) -> int:
    labels: Counter = Counter()
    categories: Counter = Counter()
    first = last = None
    for frame in bags.read_benchmark_bag(args.bag, args.image_topic, args.label_topic):
        labels[frame.label.label] += 1
        categories[frame.label.category] += 1
        first = frame.stamp_ns if first is None else first
        last = frame.stamp_ns
    total = sum(labels.values())
    print(f'{args.bag}: {total} labelled frames, {labels[1]} anomalies')
    if total:
        print(f'  stamps {first} .. {last} ns')
    for category, count in sorted(categories.items()):
        print(f'  {category:24s} {count:6d}')
    return 0


def register(subparsers) -> None:
    """Add the ``bag`` command group."""
    parser = subparsers.add_parser('bag', help='benchmark rosbag2 files')
    commands = parser.add_subparsers(dest='bag_command', required=True)

    make = commands.add_parser('make', help='write one setting of a benchmark as a bag')
    make.add_argument('dataset', choices=('lroc', 'mastcam'))
    make.add_argument('--setting', type=int, choices=SETTINGS, required=True)
    make.add_argument('--root', required=True, help='dataset root in its published layout')
    make.add_argument('--out', required=True, help='new bag folder')
    make.add_argument('--seed', type=int, default=0)
    make.add_argument('--split', choices=('test', 'train', 'calibration'), default='test')
    make.add_argument('--storage', choices=sorted(bags.STORAGES), default='sqlite3')
    make.add_argument('--rate-hz', type=float, default=10.0)
    make.add_argument('--frame-id', default='camera')
    make.add_argument('--image-topic', default=bags.IMAGE_TOPIC)
    make.add_argument('--label-topic', default=bags.LABEL_TOPIC)
    make.add_argument('--bands', action='store_true',
                      help='also write all bands (32FC<n>) on --bands-topic (Mastcam)')
    make.add_argument('--bands-topic', default=bags.BANDS_TOPIC)
    make.set_defaults(func=_make)

    info = commands.add_parser('info', help='count the labelled frames of a benchmark bag')
    info.add_argument('bag')
    info.add_argument('--image-topic', default=bags.IMAGE_TOPIC)
    info.add_argument('--label-topic', default=bags.LABEL_TOPIC)
    info.set_defaults(func=_info)
