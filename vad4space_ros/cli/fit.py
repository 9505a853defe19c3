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

"""``vad4space fit`` and ``vad4space score``: fit a method on a folder, score images.

``vad4space score --model M --tile 64 --json big.png`` scores a frame of any size in tiles at
native resolution (docs/full_frames.md) and prints one JSON object per image.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any

from vad4space_ros.catalog import BACKBONE_NAMES, METHOD_NAMES, WEIGHT_SOURCES
from vad4space_ros.data.samples import BANDS_SUFFIX, IMAGE_SUFFIXES, load_rgb
from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD
from vad4space_ros.deploy.image_encoding import DEFAULT_MAX_FRAME_PIXELS
from vad4space_ros.deploy.spectral import SpectralConfig

IMAGE_FILES = IMAGE_SUFFIXES + (BANDS_SUFFIX,)


def image_files(folder: str | Path) -> list[Path]:
    """All image files below ``folder`` (recursive, sorted); raise when there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f'{root} is not a directory')
    files = sorted(p for p in root.rglob('*') if p.suffix.lower() in IMAGE_FILES)
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_FILES)}) below {root}')
    return files


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that fits a model."""
    parser.add_argument('--method', choices=METHOD_NAMES, default='padim')
    parser.add_argument('--backbone', choices=BACKBONE_NAMES, default='mobilenet_v2')
    parser.add_argument('--weights', default='imagenet',
                        help=f'one of {WEIGHT_SOURCES} or a .safetensors/local-dir path')
    parser.add_argument('--input-size', type=int, default=256, help='square model input side')
    parser.add_argument('--epochs', type=int, help='training epochs (default: per method)')
    parser.add_argument('--time-budget', type=float, metavar='SECONDS',
                        help='trainable methods stop after this many seconds of training with '
                             'the weights reached (recorded in the model metadata)')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--false-alarm-rate', type=float, default=0.05,
                        help='target false-alarm rate on held-out normal images')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--robust', choices=('mad', 'fraction'),
                        help='screen the training set for contamination first and drop the '
                             'most atypical images by this rule (see training/robust.py)')
    parser.add_argument('--decorrelation-stretch', action='store_true',
                        help='fit a colour decorrelation stretch on the training pixels and '
                             'apply it before the backbone (brings out colour differences; '
                             'colour images only, see training/colour_stretch.py)')
    parser.add_argument('--profile', choices=('default', 'edge'), default='default',
                        help="'edge': the onboard options of models/methods.py EDGE_OPTIONS "
                             '(compact PaDiM, 1%% PatchCore coreset)')
    parser.add_argument('--method-option', action='append', default=[], metavar='KEY=JSON',
                        help='set a method option, e.g. n_features=64 or levels=[2,3] '
                             '(repeatable; applied after --profile)')


def method_options(method: str, profile: str, assignments: list[str]) -> dict[str, Any]:
    """Merge the profile's options for ``method`` with ``KEY=JSON`` assignments."""
    from vad4space_ros.models.methods import EDGE_OPTIONS
    options = dict(EDGE_OPTIONS.get(method, {})) if profile == 'edge' else {}
    for assignment in assignments:
        key, separator, text = assignment.partition('=')
        if not separator or not key:
            raise ValueError(f'--method-option expects KEY=JSON, got {assignment!r}')
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f'--method-option {key}: {text!r} is not JSON ({error})') from None
    return options


def fit_config(args: argparse.Namespace):
    """Build a FitConfig from parsed options."""
    from vad4space_ros.training.fitting import FitConfig
    from vad4space_ros.training.robust import RobustConfig
    return FitConfig(method=args.method, backbone=args.backbone, weights=args.weights,
                     input_size=(args.input_size, args.input_size), epochs=args.epochs,
                     batch_size=args.batch_size, false_alarm_rate=args.false_alarm_rate,
                     seed=args.seed, time_budget=args.time_budget,
                     robust=RobustConfig(rule=args.robust) if args.robust else None,
                     decorrelation_stretch=args.decorrelation_stretch,
                     method_options=method_options(args.method, args.profile,
                                                   args.method_option))


def run_fit(args: argparse.Namespace) -> int:
    """Fit on a folder of normal images and write the model file."""
    from vad4space_ros.training.fitting import fit_detector
    from vad4space_ros.training.spectral_fitting import fit_fused_detector
    spectral_options = {name: value for name, value in (
        ('smoothing', args.spectral_smoothing), ('quantile', args.spectral_quantile),
        ('components', args.spectral_components), ('line_length', args.spectral_line_length))
        if value is not None}
    if spectral_options and not args.spectral_fusion:
        raise ValueError('--spectral-smoothing, --spectral-quantile, --spectral-components and '
                         '--spectral-line-length need --spectral-fusion')
    spectral = SpectralConfig(**spectral_options)
    train = image_files(args.train_dir)
    calibration = image_files(args.calibration_dir) if args.calibration_dir else None
    print(f'fitting {args.method} on {len(train)} images from {args.train_dir}'
          + (' with the spectral (RX) branch on their bands' if args.spectral_fusion else ''))
    if args.spectral_fusion:
        detector = fit_fused_detector(train, fit_config(args), calibration, spectral)
    else:
        detector = fit_detector(train, fit_config(args), calibration)
    path = detector.save(args.output)
    calibration_info = detector.metadata['calibration']
    print(f'wrote {path} ({path.stat().st_size / 1e6:.1f} MB), model_id {detector.model_id}, '
          f'RGB raw threshold {calibration_info["threshold"]:.4g} '
          f'(false-alarm rate {calibration_info["false_alarm_rate"]})')
    if args.export:
        from vad4space_ros.deploy.loading import load_onnx
        from vad4space_ros.models.export import export_onnx, ExportOptions
        onboard = export_onnx(detector, args.export, ExportOptions(weights_fp16=args.fp16))
        print(f'wrote the onboard model {onboard} ({onboard.stat().st_size / 1e6:.1f} MB, '
              f'model_id {load_onnx(onboard).model_id}): run it with vad4space_detector '
              f'-p model_path:={onboard}')
    return 0


def _checked_size(path: Path, max_pixels: int) -> None:
    """Refuse an image above ``max_pixels`` from its header, before reading its pixels."""
    from vad4space_ros.deploy.image_encoding import check_frame_size, compressed_dimensions
    if path.suffix.lower() == BANDS_SUFFIX:
        import numpy as np
        height, width = np.load(path, mmap_mode='r').shape[:2]
    else:
        width, height = compressed_dimensions(path)
    check_frame_size(width, height, max_pixels)


def score_file(scorer, path: Path, threshold: float = CALIBRATED_THRESHOLD):
    """Score one image file with a FrameScorer: 6-band ``.npy`` bands for 6-band fused models."""
    from vad4space_ros.data.samples import load_bands
    if scorer.is_fused_model and scorer.model.bands != 3:  # anything but 6 bands is refused
        bands = load_bands(path)
        return scorer.score(bands, f'32FC{bands.shape[2]}', threshold)
    return scorer.score(load_rgb(path), 'rgb8', threshold)


def score_image(scorer, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Score one image file; return its JSON-ready result (score, regions best first)."""
    from dataclasses import asdict
    _checked_size(path, args.max_frame_pixels)
    scored = score_file(scorer, path, args.threshold)
    prediction, regions = scored.prediction, scored.regions
    height, width = scored.display.shape[:2]
    grid = scorer.tile_grid
    return {'image': str(path), 'width': width, 'height': height,
            'score': round(prediction.score, 6), 'raw_score': round(prediction.raw_score, 6),
            'is_anomaly': bool(prediction.is_anomaly), 'threshold': args.threshold,
            'tile_size': grid[0] if grid else 0, 'tile_stride': grid[1] if grid else 0,
            'model_id': scorer.detector.model_id,
            'regions': [{key: round(value, 6) if isinstance(value, float) else value
                         for key, value in asdict(region).items()} for region in regions]}


def run_score(args: argparse.Namespace) -> int:
    """Print the calibrated score of each image (file or folder); 1 if any image failed."""
    from vad4space_ros.deploy.frame_scoring import FrameScorer
    from vad4space_ros.deploy.loading import load_model
    from vad4space_ros.deploy.tiling import TileOptions
    scorer = FrameScorer(load_model(args.model),
                         tiling=TileOptions(args.tile, args.stride, args.tile_batch),
                         max_regions=args.max_regions)
    warning = scorer.frame_threshold_warning()
    if warning:
        print(f'warning: {warning}', file=sys.stderr)
    files = [f for target in args.images
             for f in (image_files(target) if Path(target).is_dir() else [Path(target)])]
    if not args.json:
        print(f'{"score":>8} {"anomaly":>7} {"regions":>7}  image')
    failed = 0
    for path in files:
        try:
            result = score_image(scorer, path, args)
        except (OSError, ValueError) as error:  # unreadable, too big, bad layout: next image
            failed += 1
            result = {'image': str(path), 'error': str(error)}
        if args.json:
            print(json.dumps(result), flush=True)
        elif 'error' in result:
            print(f'{"-":>8} {"-":>7} {"-":>7}  {path}: {result["error"]}')
        else:
            print(f'{result["score"]:8.3f} {str(result["is_anomaly"]):>7} '
                  f'{len(result["regions"]):7d}  {path}')
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fit`` and ``score``."""
    fit = subparsers.add_parser('fit', help='fit a VAD method on normal images')
    fit.add_argument('--train-dir', required=True, help='folder of normal training images')
    fit.add_argument('--calibration-dir',
                     help='held-out normal images for the threshold (default: 20%% of train)')
    fit.add_argument('--output', required=True, help='model file to write (.safetensors)')
    fit.add_argument('--export', metavar='MODEL.onnx',
                     help='also write the onboard model: one ONNX file the detector node runs '
                          'with ONNX Runtime, without torch (see `vad4space export`)')
    fit.add_argument('--fp16', action='store_true',
                     help='with --export: store large weights as float16 (half the file)')
    fit.add_argument('--spectral-fusion', action='store_true',
                     help='also fit the per-pixel RX branch on all bands of the images (the '
                          'six of 6-band .npy tiles, or R, G, B of colour images) and fuse it '
                          'with the RGB score (see deploy/spectral.py)')
    fit.add_argument('--spectral-smoothing', type=float, metavar='SIGMA',
                     help='with --spectral-fusion: Gaussian smoothing of the RX map in pixels '
                          '(about the radius of the smallest novelty to find; default '
                          f'{SpectralConfig.smoothing:g})')
    fit.add_argument('--spectral-quantile', type=float, metavar='Q',
                     help='with --spectral-fusion: quantile of the RX map that scores an image '
                          '(1 - Q is the image fraction a novelty must cover; default '
                          f'{SpectralConfig.quantile:g})')
    fit.add_argument('--spectral-components', type=int, metavar='K',
                     help='with --spectral-fusion: model the normal pixels with K Gaussians '
                          '(one per surface material, roughly) instead of one; a pixel scores '
                          'its distance to the nearest (default '
                          f'{SpectralConfig.components}; costs K times the RX time)')
    fit.add_argument('--spectral-line-length', type=int, metavar='L',
                     help='with --spectral-fusion: after smoothing, average the RX map along '
                          'lines of L pixels (odd, >= 3) in 8 directions and keep the best, so '
                          'thin veins and fractures add up (default 0: off)')
    add_fit_arguments(fit)
    fit.set_defaults(func=run_fit)
    score = subparsers.add_parser('score', help='score images with a fitted model')
    score.add_argument('--model', required=True)
    score.add_argument('--threshold', type=float, default=0.5, help='calibrated threshold')
    score.add_argument('--tile', type=int, default=-1,
                       help="tile side in pixels at native resolution; -1: the model's "
                            'training image size (whole image if unknown); 0: resize the '
                            'whole image (see docs/full_frames.md)')
    score.add_argument('--stride', type=int, default=0,
                       help='pixels between tiles (0: the tile side, no overlap)')
    score.add_argument('--tile-batch', type=int, default=16, help='tiles per model call')
    score.add_argument('--max-regions', type=int, default=5,
                       help='regions listed per image, best first')
    score.add_argument('--max-frame-pixels', type=int, default=DEFAULT_MAX_FRAME_PIXELS,
                       help='refuse larger images, read from the file header before decoding '
                            '(0: no limit)')
    score.add_argument('--json', action='store_true',
                       help='one JSON object per image: score, regions [{x, y, width, height, '
                            'score}] best first')
    score.add_argument('images', nargs='+', help='image files or folders')
    score.set_defaults(func=run_score)
