"""``vad4space benchmark``: the paper's tables, curves and heatmap gallery for one dataset."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING
import warnings

from vad4space_ros.catalog import BACKBONE_NAMES, METHOD_NAMES

if TYPE_CHECKING:
    from vad4space_ros.training.robust import RobustConfig

SETTING_NAMES = ('1', '2', '3')


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


def run_benchmark_command(args: argparse.Namespace) -> int:
    """Run the benchmark, print the tables and list the written files."""
    from vad4space_ros.evaluation.report import print_tables
    from vad4space_ros.evaluation.runner import FitOptions, ResourceOptions, run_benchmark

    # Lightning's advice (no val loop, eval-mode modules, litlogger) does not apply here.
    warnings.filterwarnings('ignore', module='lightning')
    root = resolve_root(args)
    result = run_benchmark(
        args.dataset, root, Path(args.out), methods=args.methods, settings=args.settings,
        seed=args.seed,
        fit=FitOptions(backbone=args.backbone, weights=args.weights,
                       input_size=args.input_size, epochs=args.epochs,
                       max_epochs=args.max_epochs, batch_size=args.batch_size,
                       robust=robust_config(args), profile=args.profile),
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
    parser.add_argument('--dataset', choices=('lroc', 'mastcam'), required=True)
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
    parser.add_argument('--no-plots', action='store_true')
    parser.add_argument('--no-progress', action='store_true')
    parser.set_defaults(func=run_benchmark_command)
