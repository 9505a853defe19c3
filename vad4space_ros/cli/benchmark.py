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

"""``vad4space benchmark``: the paper's tables, curves and heatmap gallery for one dataset."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING
import warnings

from vad4space_ros.catalog import BACKBONE_NAMES, METHOD_NAMES

if TYPE_CHECKING:
    from vad4space_ros.evaluation.runner import FitOptions
    from vad4space_ros.training.robust import RobustConfig

SETTING_NAMES = ('1', '2', '3')
DEFAULT_CELL_BUDGET = 1200.0  # seconds: the 20 minutes per cell


def parse_methods(text: str) -> list[str]:
    """Parse ``all`` or a comma-separated list of method names."""
    if text.strip() == 'all':
        return list(METHOD_NAMES)
    methods = [name.strip() for name in text.split(',') if name.strip()]
    unknown = [name for name in methods if name not in METHOD_NAMES]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(
            f'unknown methods {unknown}: use all or a comma list of {", ".join(METHOD_NAMES)}')
    return methods


def parse_settings(text: str) -> list[int]:
    """Parse a comma-separated list of settings (1, 2, 3)."""
    settings = [name.strip() for name in text.split(',') if name.strip()]
    if not settings or any(name not in SETTING_NAMES for name in settings):
        raise argparse.ArgumentTypeError(f'settings must be a comma list of 1, 2, 3: {text!r}')
    return sorted({int(name) for name in settings})


def resolve_root(args: argparse.Namespace) -> Path:
    """Return the dataset root; without --root generate a synthetic one into the output dir."""
    if args.root:
        return Path(args.root)
    root = Path(args.out) / f'synthetic-{args.dataset}-{args.size}-seed{args.seed}'
    if (root / 'SYNTHETIC.md').is_file():
        print(f'using the SYNTHETIC {args.dataset} benchmark already generated at {root}')
        return root
    from vad4space_ros.data import synthetic
    print(f'no --root given: generating a SYNTHETIC {args.size} {args.dataset} benchmark '
          f'(seed {args.seed}) at {root}; results on it are not results on the real data')
    synthetic.generate(args.dataset, root, seed=args.seed, size=args.size)
    return root


def robust_config(args: argparse.Namespace) -> RobustConfig | None:
    """Return the robust-fitting options of ``--robust`` and its rule options (None without)."""
    from vad4space_ros.training.robust import RobustConfig

    if not args.robust:
        return None
    return RobustConfig(rule=args.robust, z_threshold=args.z_threshold,
                        max_drop_fraction=args.max_drop_fraction,
                        trim_fraction=args.trim_fraction)


def parse_levels(text: str) -> list[float]:
    """Parse a comma-separated list of subtlety levels in [0, 1]."""
    try:
        levels = sorted({float(value) for value in text.split(',') if value.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f'levels must be numbers: {text!r}') from None
    if not levels or levels[0] < 0.0 or levels[-1] > 1.0:
        raise argparse.ArgumentTypeError(f'levels must lie in [0, 1]: {text!r}')
    return levels


def fit_options(args: argparse.Namespace) -> FitOptions:
    """Return the fit options of the command line."""
    from vad4space_ros.evaluation.runner import FitOptions

    return FitOptions(backbone=args.backbone, weights=args.weights, input_size=args.input_size,
                      epochs=args.epochs, max_epochs=args.max_epochs,
                      batch_size=args.batch_size, robust=robust_config(args),
                      profile=args.profile, time_budget=args.time_budget)


def _assemble(args: argparse.Namespace) -> int:
    from vad4space_ros.atomic_files import atomic_write_text
    from vad4space_ros.evaluation.cells import load_cells
    from vad4space_ros.evaluation.report import cell_tables_markdown

    records = load_cells(args.out)
    if not records:
        raise SystemExit(f'no cell files under {Path(args.out) / "cells"}')
    path = atomic_write_text(Path(args.out) / 'tables.md', cell_tables_markdown(records))
    print(f'wrote {path} from {len(records)} cell files')
    return 0


def _cells(args: argparse.Namespace) -> int:
    from vad4space_ros.evaluation.cells import run_cell, run_cells

    budget = args.time_budget or DEFAULT_CELL_BUDGET
    fit = fit_options(args)
    if args.one_cell:
        record = run_cell(args.dataset, resolve_root(args), args.methods[0], args.settings[0],
                          args.out, budget, fit, args.seed, args.max_train, args.model_cache)
        return 0 if record['status'] != 'failed' else 1
    records = run_cells(args.dataset, resolve_root(args), args.out, args.methods,
                        args.settings, budget, fit, args.seed, args.resume, args.max_train,
                        args.model_cache)
    for record in records:
        print(f'{record["dataset"]} {record["method"]} S{record["setting"]}: '
              f'{record["status"]}, AUROC {record.get("img_auroc", "-")}, '
              f'{record.get("seconds", 0):.0f} s')
    return _assemble(args)


def _sweep(args: argparse.Namespace) -> int:
    from vad4space_ros.evaluation.sweep import breakdown_levels, run_sweep

    result = run_sweep(args.dataset, args.out, args.methods, args.levels, args.size, args.seed,
                       fit_options(args), progress=not args.no_progress)
    for method, classes in breakdown_levels(result).items():
        print(f'{method}: first subtlety with AUROC < 0.7 per class: '
              + ', '.join(f'{name} {level if level is not None else "never"}'
                          for name, level in classes.items()))
    print(f'wrote {Path(args.out) / f"sweep_{args.dataset}.png"} and .json (SYNTHETIC data)')
    return 0


def run_benchmark_command(args: argparse.Namespace) -> int:
    """Run the benchmark (or its cells, sweep or table assembly); print the tables."""
    from vad4space_ros.evaluation.report import print_tables
    from vad4space_ros.evaluation.runner import ResourceOptions, run_benchmark

    # Lightning's advice (no val loop, eval-mode modules, litlogger) does not apply here.
    warnings.filterwarnings('ignore', module='lightning')
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s', datefmt='%H:%M:%S')
    if args.assemble:
        return _assemble(args)
    if not args.dataset:
        raise SystemExit('vad4space benchmark: --dataset is required (except with --assemble)')
    if args.cells or args.one_cell:
        return _cells(args)
    if args.sweep:
        return _sweep(args)
    root = resolve_root(args)
    result = run_benchmark(
        args.dataset, root, Path(args.out), methods=args.methods, settings=args.settings,
        seed=args.seed, fit=fit_options(args),
        resources=ResourceOptions(images=args.latency_images, threads=args.threads),
        progress=not args.no_progress, plots=not args.no_plots, max_train=args.max_train)
    print_tables(result)
    if result.synthetic:
        print('NOTE: these numbers are on the SYNTHETIC generated benchmark, not the real data; '
              "values in parentheses are the paper's (real data).")
    for name, path in sorted(result.files.items()):
        print(f'wrote {name}: {path}')
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``benchmark``."""
    parser = subparsers.add_parser(
        'benchmark', help="run the paper's benchmark (tables I-III, curves, heatmap gallery)")
    parser.add_argument('--dataset', choices=('lroc', 'mastcam'),
                        help='required except with --assemble')
    parser.add_argument('--root', help='dataset root in the published layout (default: '
                        'generate a SYNTHETIC one into --out)')
    parser.add_argument('--size', choices=('tiny', 'small', 'full'), default='small',
                        help='size of the generated benchmark when --root is not given')
    parser.add_argument('--methods', type=parse_methods, default=list(METHOD_NAMES),
                        help='all or a comma list (default all)')
    parser.add_argument('--settings', type=parse_settings, default=[1, 2, 3],
                        help='comma list of 1,2,3 (default all)')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--backbone', choices=BACKBONE_NAMES, default='mobilenet_v2')
    parser.add_argument('--weights', default='imagenet')
    parser.add_argument('--input-size', type=int, default=128, help='square model input side')
    parser.add_argument('--epochs', type=int, help='epochs for every method (default: each '
                        "method's own default)")
    parser.add_argument('--max-epochs', type=int,
                        help="cap on each method's default epochs (ignored with --epochs)")
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--profile', choices=('default', 'edge'), default='default',
                        help="'edge': fit PaDiM/PatchCore with methods.EDGE_OPTIONS")
    parser.add_argument('--max-train', type=int,
                        help='use at most N normal training images (seeded subset; a '
                        'documented deviation for slow machines)')
    parser.add_argument('--seed', type=int, default=0)
    robust = parser.add_argument_group(
        'contamination-robust fitting (core/robust.py): settings 2 and 3 are fitted without '
        'and with it and compared in a robust table')
    robust.add_argument('--robust', choices=('mad', 'fraction'),
                        help='also fit settings 2/3 with robust screening and this trimming rule')
    robust.add_argument('--z-threshold', type=float, default=3.5,
                        help='mad rule: drop robust z-scores above this')
    robust.add_argument('--max-drop-fraction', type=float, default=0.15,
                        help='mad rule: drop at most this share of the training images')
    robust.add_argument('--trim-fraction', type=float, default=0.05,
                        help='fraction rule: drop exactly this share')
    parser.add_argument('--latency-images', type=int, default=20,
                        help='test images for latency/memory (0 = skip)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads for latency')
    parser.add_argument('--time-budget', type=float,
                        help='seconds per fit: trainable methods stop early when exceeded '
                        f'(recorded); with --cells the cell budget (default '
                        f'{DEFAULT_CELL_BUDGET:.0f})')
    full = parser.add_argument_group(
        'resumable full-size benchmark (evaluation/cells.py): one process and one JSON file '
        'per dataset/method/setting cell under OUT/cells/, tables assembled from those files')
    full.add_argument('--cells', action='store_true', help='run the cells one by one')
    full.add_argument('--resume', action='store_true', help='skip cells already finished')
    full.add_argument('--assemble', action='store_true',
                      help='only write OUT/tables.md from the cell files present')
    full.add_argument('--model-cache', type=Path,
                      help='keep fitted models here; a cell with the same training set and '
                           'options (settings 1 and 2) loads the model instead of refitting')
    full.add_argument('--one-cell', action='store_true', help=argparse.SUPPRESS)
    sweep = parser.add_argument_group(
        'difficulty sweep (evaluation/sweep.py, SYNTHETIC data generated at --size)')
    sweep.add_argument('--sweep', choices=('subtlety',),
                       help='AUROC per class against generator subtlety, one PNG per dataset')
    sweep.add_argument('--levels', type=parse_levels, default=[0.0, 0.25, 0.5, 0.75, 1.0],
                       help='comma list of subtlety levels in [0, 1]')
    parser.add_argument('--no-plots', action='store_true')
    parser.add_argument('--no-progress', action='store_true')
    parser.set_defaults(func=run_benchmark_command)
