"""``vad4space bench latency``: wires the latency bench of :mod:`vad4space_ros.core.benchmark`."""
from __future__ import annotations

import argparse
import os

from vad4space_ros.core.benchmark.latency import BACKENDS, run_latency


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench latency``."""
    bench = subparsers.add_parser('bench', help='benchmarks')
    commands = bench.add_subparsers(dest='bench_command', required=True)
    latency = commands.add_parser(
        'latency', help="latency/memory/footprint: our paths vs anomalib's inferencers")
    latency.add_argument('--models', nargs='+', required=True,
                         help='model files (.safetensors/.onnx) or folders of them')
    latency.add_argument('--images', type=int, default=50, help='timed images per backend')
    latency.add_argument('--warmup', type=int, default=5)
    latency.add_argument('--size', type=int, default=256, help='image side in pixels')
    latency.add_argument('--threads', default=f'1,{os.cpu_count()}',
                         help='comma-separated thread counts')
    latency.add_argument('--backends', default=','.join(BACKENDS))
    latency.add_argument('--work-dir', default='bench_latency',
                         help='exports, images and scratch files go here')
    latency.add_argument('--output', default='latency.json')
    latency.add_argument('--timeout', type=float, default=1800, help='per worker, seconds')
    latency.set_defaults(func=run_latency)
