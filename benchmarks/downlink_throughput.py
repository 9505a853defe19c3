"""Downlink queue throughput and release latency for queues of 10k and 100k items (core level).

For each queue size N the queue database is pre-filled with N queued items (one bulk
transaction, not timed), then measured at that size:

- accept: records/s for ``--accepts`` more records, each committed in its own transaction
  (exactly what the node does per detection), with ``synchronous=FULL`` and ``NORMAL``;
- rank: ``ranked(50)``, the ranking the node publishes on ``~/queue``;
- pass: ``run_pass(budget)`` latency (expiry sweep + redundancy-aware ranking of the window +
  knapsack + the release transaction) for several budgets, plus publishing bookkeeping
  (``begin_publication`` + ``confirm_sent``) of the released products.

Run: ``.venv/bin/python benchmarks/downlink_throughput.py [--sizes 10000 100000] [--dim 96]``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import tempfile
import time

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from vad4space_ros.deploy.records import DetectionRecord
from vad4space_ros.downlink.downlink_queue import DownlinkQueue
from vad4space_ros.downlink.policy import DownlinkPolicy
from vad4space_ros.downlink.store import encode_embedding

PRODUCT_BYTES = 1_000_000


def random_record(rng: np.random.Generator, index: int, dim: int) -> DetectionRecord:
    """Return a detection with a random score and unit embedding."""
    embedding = rng.standard_normal(dim).astype(np.float32)
    score = float(rng.beta(2, 5))
    return DetectionRecord(
        stamp_ns=10 ** 18 + index, frame_id=f'bench/{index}', score=score, raw_score=score,
        threshold=0.5, is_anomaly=score >= 0.5, method='padim', model_id='bench',
        latency_ms=0.0, embedding=embedding / np.linalg.norm(embedding))


def prefill(queue: DownlinkQueue, size: int, dim: int, rng: np.random.Generator) -> None:
    """Insert ``size`` queued items in one transaction."""
    now = time.time_ns()
    with queue.store.transaction():
        for index in track(range(size), description=f'pre-filling {size:,} items',
                           transient=True):
            rec = random_record(rng, index, dim)
            queue.store.connection.execute(
                'INSERT INTO items (frame_id, stamp_ns, score, is_anomaly, method, model_id, '
                'embedding, product_bytes, thumbnail_bytes, accepted_ns) '
                'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                (rec.frame_id, rec.stamp_ns, rec.score, int(rec.is_anomaly), rec.method,
                 rec.model_id, encode_embedding(rec.embedding), PRODUCT_BYTES, 20_000, now))
    queue.queued_count, queue.queued_bytes = queue.store.queued_totals()


def timed(function, repeats: int) -> float:
    """Return the median wall time of ``function()`` in milliseconds."""
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        durations.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(durations)


def measure(size: int, args: argparse.Namespace, folder: Path) -> list[list[str]]:
    """Return table rows for one queue size."""
    rng = np.random.default_rng(size)
    policy = DownlinkPolicy(capacity_items=size + 10 * args.accepts,
                            capacity_bytes=10 ** 15)
    rows = []
    path = folder / f'queue_{size}.db'
    queue = DownlinkQueue.connect(path, policy, 'NORMAL')
    prefill(queue, size, args.dim, rng)
    next_index = size
    for mode in ('FULL', 'NORMAL'):
        queue.store.connection.execute(f'PRAGMA synchronous={mode}')
        records = [random_record(rng, next_index + k, args.dim) for k in range(args.accepts)]
        next_index += args.accepts
        started = time.perf_counter()
        for rec in records:
            queue.accept(rec)
        elapsed = time.perf_counter() - started
        rows.append([f'{size:,}', f'accept ({mode})', f'{args.accepts / elapsed:,.0f} rec/s',
                     f'{1000 * elapsed / args.accepts:.2f} ms/rec'])
    rows.append([f'{size:,}', 'ranked(50) for ~/queue',
                 f'{timed(lambda: queue.ranked(50), 3):.0f} ms', 'median of 3'])
    queue.store.connection.execute('PRAGMA synchronous=FULL')
    for budget in args.budgets:
        started = time.perf_counter()
        result = queue.run_pass(budget)
        pass_ms = (time.perf_counter() - started) * 1000.0
        started = time.perf_counter()
        queue.confirm_sent(queue.begin_publication(queue.outbox()))
        publish_ms = (time.perf_counter() - started) * 1000.0
        full = sum(1 for p in result.products if p.product == 'full')
        rows.append([f'{size:,}', f'pass {budget / 1e6:,.0f} MB',
                     f'{pass_ms:.0f} ms',
                     f'{full} full + {len(result.products) - full} thumbnails, '
                     f'{result.used_bytes / 1e6:.2f} MB; outbox bookkeeping {publish_ms:.0f} ms'])
    queue.close()
    rows.append([f'{size:,}', 'database size', f'{path.stat().st_size / 1e6:.1f} MB', ''])
    return rows


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[10_000, 100_000])
    parser.add_argument('--dim', type=int, default=96,
                        help='Embedding length (96 = deepest MobileNetV2 stage used by PaDiM).')
    parser.add_argument('--accepts', type=int, default=500,
                        help='Records accepted (one transaction each) per measurement.')
    parser.add_argument('--budgets', type=int, nargs='+',
                        default=[10_000_000, 100_000_000, 1_000_000_000])
    args = parser.parse_args()
    table = Table(title=f'downlink queue (embedding dim {args.dim}, {PRODUCT_BYTES:,} B products,'
                  ' ranking window 512, 4096 knapsack buckets)')
    for column in ('queue size', 'operation', 'result', 'detail'):
        table.add_column(column)
    with tempfile.TemporaryDirectory(prefix='downlink_bench_', dir=Path.cwd()) as folder:
        for size in args.sizes:
            for row in measure(size, args, Path(folder)):
                table.add_row(*row)
    Console(width=150).print(table)


if __name__ == '__main__':
    main()
