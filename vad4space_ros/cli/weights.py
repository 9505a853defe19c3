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

"""``vad4space weights``: convert and list the offline ImageNet backbone weights."""
from __future__ import annotations

import argparse

from vad4space_ros.catalog import BACKBONE_NAMES, CACHE_ENV, ONNX_ENV


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``weights`` command group."""
    parser = subparsers.add_parser('weights', help='Offline ImageNet backbone weights.')
    commands = parser.add_subparsers(dest='weights_command', required=True)
    convert = commands.add_parser(
        'convert', help='Convert a backbone checkpoint into the weights cache.')
    convert.add_argument('--backbone', choices=BACKBONE_NAMES,
                         default='mobilenet_v2',
                         help='Backbone to convert (default mobilenet_v2).')
    convert.add_argument('--onnx', help='mobilenetv2-12-int8.onnx (ONNX Model Zoo int8 '
                         f'MobileNetV2-1.0); default ${ONNX_ENV}.')
    convert.add_argument('--cache-dir', help=f'Cache root (default ${CACHE_ENV} or '
                         '~/.cache/vad4space).')
    convert.set_defaults(func=convert_weights)
    show = commands.add_parser('show', help='List the converted backbones in the cache.')
    show.add_argument('--cache-dir', help='Cache root (default as for convert).')
    show.set_defaults(func=show_weights)


def convert_weights(args: argparse.Namespace) -> int:
    """Convert the chosen backbone (always rewrites its cache folder)."""
    from vad4space_ros.models import weights
    if args.backbone == 'mobilenet_v2':
        source = weights.mobilenetv2_onnx_source(args.onnx)
        if source is None:
            raise FileNotFoundError(f'give --onnx FILE (or set {ONNX_ENV}) pointing at '
                                    'mobilenetv2-12-int8.onnx')
    else:
        if args.onnx:
            raise ValueError('--onnx applies to --backbone mobilenet_v2 only')
        source = weights.efficientnet_lite0_source()
    folder = weights.write_backbone_weights(args.backbone, source, args.cache_dir, log=print)
    print(f'use it with: --backbone {args.backbone} --weights imagenet  '
          f"(timm: timm.create_model('local-dir:{folder}', pretrained=True))")
    return 0


def show_weights(args: argparse.Namespace) -> int:
    """Print one line per converted backbone in the cache."""
    from vad4space_ros.models import weights
    root = weights.backbone_cache_path('mobilenet_v2', args.cache_dir).parent
    entries = weights.list_cached_backbones(args.cache_dir)
    print(f'weights cache {root}: {len(entries)} backbone(s)')
    for entry in entries:
        source = entry['source']
        print(f"  {entry['backbone']:<18} {entry['architecture']:<22} "
              f"{entry['bytes'] / 1e6:6.1f} MB  source {source.get('file')} "
              f"sha256 {source.get('sha256', '')[:12]}  {entry['path']}")
    return 0
