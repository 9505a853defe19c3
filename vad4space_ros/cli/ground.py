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

"""Ground commands: ``vad4space ground receive`` (the receiver node) and ``ground report``."""
from __future__ import annotations

import argparse

from vad4space_ros.downlink.ground import write_report


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ground`` command group."""
    parser = subparsers.add_parser('ground', help='Receive and review downlinked products.')
    commands = parser.add_subparsers(dest='ground_command', required=True)
    receive = commands.add_parser(
        'receive', help='Run the ground receiver node: write every product on the downlink '
        'topics into a folder (once each) until Ctrl-C.')
    receive.add_argument('--out', required=True, help='Output folder (created if missing).')
    receive.add_argument('--topic', default='/vad4space_downlink/downlink',
                         help='Description topic; the bytes come on <topic>/image '
                         '(default /vad4space_downlink/downlink).')
    receive.set_defaults(func=receive_products)
    report = commands.add_parser(
        'report', help='Write contact_sheet.png and index.html (ranked by score) into a '
        'folder written by `ground receive`.')
    report.add_argument('folder', help='Ground folder.')
    report.set_defaults(func=report_products)


def receive_products(args: argparse.Namespace) -> int:
    """Run the ground node in this process."""
    from vad4space_ros.nodes import ground_node

    return ground_node.main(['vad4space_ground', '--ros-args', '-p', f'output:={args.out}',
                             '-r', f'downlink:={args.topic}',
                             '-r', f'downlink/image:={args.topic}/image'])


def report_products(args: argparse.Namespace) -> int:
    """Write the contact sheet and the HTML index."""
    sheet, page, count = write_report(args.folder)
    print(f'{count} detection(s): {sheet} and {page}')
    return 0
