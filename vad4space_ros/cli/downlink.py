"""Downlink commands: ``vad4space queue show`` prints the queue, ranked as the node ranks it."""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

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
