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

"""Downlink commands: ``vad4space queue show`` (the ranked queue), ``queue export`` (products)."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vad4space_ros.atomic_files import atomic_write_bytes, atomic_write_text
from vad4space_ros.downlink.downlink_queue import DownlinkQueue
from vad4space_ros.downlink.policy import DownlinkPolicy
from vad4space_ros.downlink.store import DownlinkStore


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``queue`` command group."""
    parser = subparsers.add_parser('queue', help='Inspect the downlink queue database.')
    commands = parser.add_subparsers(dest='queue_command', required=True)
    show = commands.add_parser(
        'show', help='Print the ranked queue as a table (read-only; safe while the node runs).')
    show.add_argument('--database', required=True, help='Queue database (node parameter).')
    show.add_argument('--limit', type=int, default=20, help='Rows to print (default 20).')
    show.set_defaults(func=show_queue)
    export = commands.add_parser(
        'export', help='Write the stored products of one item (frame or region crops, heatmap '
        'thumbnail, record JSON) to files (read-only; safe while the node runs).')
    export.add_argument('--database', required=True, help='Queue database (node parameter).')
    export.add_argument('--item', type=int, required=True, help='Item id (see `queue show`).')
    export.add_argument('--out', default='.', help='Output folder (default: current folder).')
    export.set_defaults(func=export_item)


def show_queue(args: argparse.Namespace) -> int:
    """Print the ranked queue and a summary line."""
    if args.limit < 0:
        raise ValueError('--limit must be >= 0')
    store = DownlinkStore.connect_read_only(args.database)
    try:
        stored_policy = store.get_meta('policy')
        policy = DownlinkPolicy.from_json(stored_policy) if stored_policy else DownlinkPolicy()
        queue = DownlinkQueue(store, policy)
        entries = queue.ranked(args.limit)
        summary = queue.summary()
    finally:
        store.close()
    table = Table(title=f'downlink queue {args.database}')
    for column, justify in [('rank', 'right'), ('item', 'right'), ('frame_id', 'left'),
                            ('stamp_ns', 'right'), ('score', 'right'), ('priority', 'right'),
                            ('bytes', 'right'), ('reason', 'left')]:
        table.add_column(column, justify=justify)
    for entry in entries:
        item = entry.item
        table.add_row(str(entry.rank), str(item.item_id), item.frame_id, str(item.stamp_ns),
                      f'{item.score:.3f}', f'{entry.priority:.3f}', f'{item.product_bytes:,}',
                      entry.reason)
    console = Console(width=160)
    console.print(table)
    console.print(
        f'{len(entries)} of {summary["queued"]} queued item(s) shown, '
        f'{summary["queued_bytes"]:,} bytes queued; '
        f'released {summary["released"]}, evicted {summary["evicted"]}, '
        f'expired {summary["expired"]}; {summary["outbox"]} product(s) awaiting '
        f'acknowledgement; last pass #{summary["last_pass_id"]}: '
        f'{summary["last_pass_products"]} product(s), '
        f'{summary["last_pass_used_bytes"]:,}/{summary["last_pass_budget_bytes"]:,} bytes')
    return 0


def export_item(args: argparse.Namespace) -> int:
    """Write an item's stored parts and its record to ``--out``; print the paths."""
    store = DownlinkStore.connect_read_only(args.database)
    try:
        row = store.connection.execute(
            'SELECT frame_id, state, missing, record_json FROM items WHERE id = ?',
            (args.item,)).fetchone()
        if row is None:
            raise ValueError(f'no item {args.item} in {args.database}')
        parts = DownlinkQueue(store, DownlinkPolicy()).item_parts(args.item)
    finally:
        store.close()
    frame_id, state, missing, record = row
    out = Path(args.out)
    written = []
    for part in parts:
        extension = 'jpg' if part.image_format == 'jpeg' else part.image_format
        written.append(atomic_write_bytes(
            out / f'item{args.item:06d}-{part.kind}-{part.part}.{extension}', part.data))
    written.append(atomic_write_text(out / f'item{args.item:06d}-record.json', record))
    for path in written:
        print(path)
    print(f'item {args.item} ({frame_id}, {state}): {len(parts)} stored part(s)'
          + (f'; never captured: {missing}' if missing else ''))
    return 0
