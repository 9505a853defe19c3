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

"""``vad4space data``: generate synthetic benchmarks, download the real ones, inspect a root."""
from __future__ import annotations

import argparse

from vad4space_ros.data import load_dataset, lroc, synthetic
from vad4space_ros.data.protocols import make_setting, SETTINGS

DATASETS = ('lroc', 'mastcam')


def _generate(args: argparse.Namespace) -> int:
    report = synthetic.generate(args.dataset, args.root, seed=args.seed, size=args.size,
                                tile_dtype=args.tile_dtype, subtlety=args.subtlety,
                                spectral_only=args.spectral_only)
    print(f'wrote {report.files} SYNTHETIC {args.dataset} files '
          f'({report.size_bytes / 1e6:.1f} MB) to {report.root} in {report.seconds:.1f} s')
    return 0


def _download(args: argparse.Namespace) -> int:
    from vad4space_ros.data.download import download_dataset
    dataset = download_dataset(args.dataset, args.root, url_base=args.url_base,
                               keep_archives=args.keep_archives)
    print(f'{args.dataset}: {len(dataset.samples)} samples in {dataset.root}')
    return 0


def _info(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, args.root)
    print(f'{args.dataset} at {dataset.root}: {len(dataset.samples)} samples')
    for (split, category), count in sorted(dataset.counts().items()):
        print(f'  {split:6s} {category:24s} {count:6d}')
    for path, reason in dataset.skipped:
        print(f'  skipped {path}: {reason}')
    for setting in SETTINGS:
        split = make_setting(dataset, setting, seed=args.seed)
        print(f'  setting {setting}: train {len(split.train)} '
              f'({sum(s.label for s in split.train)} anomalies), test {len(split.test)} '
              f'({sum(s.label for s in split.test)} anomalies), '
              f'calibration {len(split.calibration)}')
        for note in split.notes:
            print(f'    note: {note}')
    if args.manifest:
        diff = lroc.compare_with_manifest(dataset, lroc.read_manifest(args.manifest))
        print(f'  manifest: {len(diff["missing"])} missing, {len(diff["unexpected"])} unexpected')
        return 0 if not any(diff.values()) else 1
    return 0


def register(subparsers) -> None:
    """Add the ``data`` command group."""
    parser = subparsers.add_parser('data', help='benchmark datasets: generate, download, info')
    commands = parser.add_subparsers(dest='data_command', required=True)

    generate = commands.add_parser(
        'generate', help='write a SYNTHETIC benchmark in the published layout')
    generate.add_argument('dataset', choices=DATASETS)
    generate.add_argument('--root', required=True, help='new (or empty) output folder')
    generate.add_argument('--seed', type=int, default=0)
    generate.add_argument('--size', choices=synthetic.SIZES, default='small',
                          help='tiny: unit tests; small: demo set; full: the real split sizes')
    generate.add_argument('--tile-dtype', choices=('float32', 'float64'), default='float32',
                          help='Mastcam tile dtype (the real tiles are float64)')
    generate.add_argument('--subtlety', type=float, default=0.0,
                          help='0 (default look) .. 1 (anomalies barely visible); see '
                          'docs/benchmarks.md')
    generate.add_argument('--spectral-only', action='store_true',
                          help='Mastcam: novelties differ from the terrain in band ratios only')
    generate.set_defaults(func=_generate)

    download = commands.add_parser(
        'download', help='fetch the real dataset from Zenodo (resumable, md5-checked)')
    download.add_argument('dataset', choices=DATASETS)
    download.add_argument('--root', required=True)
    download.add_argument('--url-base', default='https://zenodo.org',
                          help='Zenodo (or mirror) base URL')
    download.add_argument('--keep-archives', action='store_true')
    download.set_defaults(func=_download)

    info = commands.add_parser('info', help='count samples and the three settings of a root')
    info.add_argument('dataset', choices=DATASETS)
    info.add_argument('--root', required=True)
    info.add_argument('--seed', type=int, default=0)
    info.add_argument('--manifest', help='LROC split manifest CSV to compare file names with')
    info.set_defaults(func=_info)
