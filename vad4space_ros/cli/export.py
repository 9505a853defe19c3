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

"""``vad4space export``: write a fitted model as one ONNX file (ONNX Runtime / OpenVINO)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vad4space_ros.deploy.detector import Detector
    from vad4space_ros.deploy.loading import Model


def run_export(args: argparse.Namespace) -> int:
    """Export, optionally quantise, then compare the exported scores with torch."""
    from vad4space_ros.cli.fit import image_files
    from vad4space_ros.data.samples import load_bands, load_rgb
    from vad4space_ros.deploy.loading import load_model
    from vad4space_ros.deploy.spectral import FusedDetector
    from vad4space_ros.models.export import export_onnx, ExportOptions
    from vad4space_ros.models.quantize import quantize_int8, quantize_search_int8
    from vad4space_ros.models.torch_detector import load_artifact

    needs_calibration = (args.padim_features is not None or args.bank_entries is not None
                         or args.int8 or args.int8_search)
    if needs_calibration and not args.calibration_dir:
        raise ValueError('--padim-features, --bank-entries, --int8 and --int8-search need '
                         '--calibration-dir (normal images)')
    detector = load_artifact(args.model)
    read = (load_bands if isinstance(detector, FusedDetector) and detector.bands != 3
            else load_rgb)  # band cubes for a 6-band fused model's recalibration
    calibration = ([read(p) for p in image_files(args.calibration_dir)]
                   if args.calibration_dir else None)
    options = ExportOptions(dynamic_batch=not args.fixed_batch, weights_fp16=args.fp16,
                            padim_features=args.padim_features,
                            bank_entries=args.bank_entries, seed=args.seed)
    output = Path(args.output)
    path = export_onnx(detector, output, options, calibration)
    if args.int8:
        path = quantize_int8(path, path, calibration)
    if args.int8_search:
        path = quantize_search_int8(path, path, calibration)
    exported = load_model(path)
    source_mb = Path(args.model).stat().st_size / 1e6
    print(f'wrote {path} ({path.stat().st_size / 1e6:.1f} MB; source {source_mb:.1f} MB), '
          f'model_id {exported.model_id}')
    if args.check_dir:
        images = [load_rgb(p) for p in image_files(args.check_dir)[:args.check_count]]
        # a fused model's RX branch is the same NumPy code in both files: compare RGB branches
        reference = rgb_branch(detector).raw_scores(images, batch_size=8)
        scores = rgb_branch(exported).raw_scores(images, batch_size=8)
        relative = np.abs(scores - reference) / np.maximum(np.abs(reference), 1e-12)
        ranks = np.corrcoef(np.argsort(np.argsort(scores)), np.argsort(np.argsort(reference)))
        print(f'raw scores vs torch on {len(images)} images: max relative difference '
              f'{relative.max():.2e}, rank correlation {ranks[0, 1]:.4f}')
    return 0


def rgb_branch(model: Model) -> Detector:
    """Return a fused model's RGB branch, or the model itself."""
    from vad4space_ros.deploy.spectral import FusedDetector
    return model.rgb if isinstance(model, FusedDetector) else model


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export``."""
    parser = subparsers.add_parser(
        'export', help='export a fitted model to ONNX (runs in ONNX Runtime or OpenVINO)')
    parser.add_argument('--model', required=True, help='fitted model (.safetensors)')
    parser.add_argument('--output', required=True, help='ONNX file to write (.onnx)')
    parser.add_argument('--fixed-batch', action='store_true',
                        help='batch axis fixed at 1 (default: dynamic batch)')
    parser.add_argument('--fp16', action='store_true',
                        help='store large weights as float16 (computed in float32)')
    parser.add_argument('--padim-features', type=int,
                        help='PaDiM: keep this many random channels (needs --calibration-dir)')
    parser.add_argument('--bank-entries', type=int,
                        help='PatchCore: keep the first N memory-bank entries, the coreset of '
                             'a smaller ratio (needs --calibration-dir)')
    parser.add_argument('--int8', action='store_true',
                        help='static int8 quantisation of convolutions (needs --calibration-dir)')
    parser.add_argument('--int8-search', action='store_true',
                        help='PatchCore: nearest-neighbour search in int8, ~1.8x faster '
                             'tiled frames (needs --calibration-dir)')
    parser.add_argument('--calibration-dir',
                        help='held-out normal images to recalibrate the threshold')
    parser.add_argument('--check-dir', help='images to compare exported and torch scores on')
    parser.add_argument('--check-count', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0, help='seed of the channel selection')
    parser.set_defaults(func=run_export)
