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

"""``vad4space calibrate-frames``: fit the frame threshold of tiled scoring on normal frames.

The derived frame calibration (deploy/tiling.py) extrapolates the per-tile one to the maximum
over a frame's tiles and is only as good as the tile calibration's tail. With normal frames at
hand, this command scores them in tiles, fits the threshold of their max-over-tiles scores at
the false-alarm rate (empirical quantile) and writes a copy of the model whose metadata stores
it for that tile side and tile count. The detector node, ``vad4space score`` and the strip node
then use it for frames cut into that many tiles, and the derived one otherwise. A fused model
(6-band ``.npy`` frames, or colour images for a colour fused model) stores the threshold of its
fused score (used while ``spectral_fusion`` is on; its RGB branch alone keeps the derived one).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vad4space_ros.cli.fit import image_files, score_file


def run_calibrate_frames(args: argparse.Namespace) -> int:
    """Score the normal frames in tiles, fit the frame threshold, write the model copy."""
    from vad4space_ros.deploy.frame_scoring import FrameScorer
    from vad4space_ros.deploy.loading import load_model
    from vad4space_ros.deploy.tiling import (
        calibrate_on_frames, derived_frame_calibration, tile_count, TileOptions,
        with_frame_calibration)
    from vad4space_ros.models.export import write_with_metadata

    if Path(args.output).suffix.lower() != Path(args.model).suffix.lower():
        raise ValueError(f'--output must end like the model file ({Path(args.model).suffix})')
    scorer = FrameScorer(load_model(args.model),
                         tiling=TileOptions(args.tile, args.stride, args.tile_batch))
    grid = scorer.tile_grid
    if grid is None:
        raise ValueError('frames are scored whole with this tile setting (and the whole-frame '
                         'score already has the model calibration): give --tile')
    files = [f for target in args.frames
             for f in (image_files(target) if Path(target).is_dir() else [Path(target)])]
    scores, shapes = [], set()
    for path in tqdm(files, desc='scoring normal frames', unit='frame'):
        scored = score_file(scorer, path)
        shapes.add(scored.display.shape[:2])
        scores.append(scored.prediction.raw_score)
    if len(shapes) != 1:
        raise ValueError(f'the frames have {len(shapes)} sizes {sorted(shapes)}: calibrate '
                         'each frame size on its own')
    (height, width), = shapes
    tile, stride = grid
    count = tile_count(height, width, tile, stride)
    calibration = calibrate_on_frames(np.asarray(scores), args.false_alarm_rate)
    model = scorer.model
    output = write_with_metadata(
        args.model, args.output,
        with_frame_calibration(model.metadata, tile, count, calibration, len(files)))
    derived = derived_frame_calibration(model.calibration, count, model.metadata,
                                        args.false_alarm_rate)
    print(f'{len(files)} normal {width}x{height} frames, {count} tiles of {tile} px: frame '
          f'threshold {calibration.threshold:.4g} raw (derived: {derived.threshold:.4g}) at a '
          f'false-alarm rate of {args.false_alarm_rate}; wrote {output}')
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``calibrate-frames``."""
    parser = subparsers.add_parser(
        'calibrate-frames', help='fit the tiled frame threshold on normal frames and store it '
                                 'in a copy of the model')
    parser.add_argument('--model', required=True, help='model file (.onnx or .safetensors)')
    parser.add_argument('--output', required=True, help='model copy to write (same format)')
    parser.add_argument('--tile', type=int, default=-1,
                        help="tile side; -1: the model's training image size")
    parser.add_argument('--stride', type=int, default=0, help='0: the tile side, no overlap')
    parser.add_argument('--tile-batch', type=int, default=16, help='tiles per model call')
    parser.add_argument('--false-alarm-rate', type=float, default=0.05,
                        help='share of normal frames allowed above the threshold')
    parser.add_argument('frames', nargs='+', help='normal frames: image files or folders '
                                                  '(6-band .npy files for a 6-band fused '
                                                  'model)')
    parser.set_defaults(func=run_calibrate_frames)
