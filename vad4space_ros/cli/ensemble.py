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

"""``vad4space ensemble``: combine fitted models into one detector (deploy/ensemble.py).

Loads the member model files, scores held-out normal images with the mean of their calibrated
scores, fits the ensemble's threshold on those scores and writes the JSON manifest that the
detector node, ``vad4space score`` and ``calibrate-frames`` take as a model file.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from vad4space_ros.atomic_files import atomic_output
from vad4space_ros.cli.fit import image_files
from vad4space_ros.data.samples import load_rgb


def run_ensemble(args: argparse.Namespace) -> int:
    """Calibrate the mean of the members' calibrated scores; write the manifest."""
    from vad4space_ros.deploy.calibration import Calibration
    from vad4space_ros.deploy.ensemble import (
        ENSEMBLE_SUFFIX, EnsembleDetector, manifest_text, member_names)
    from vad4space_ros.deploy.loading import load_model

    output = Path(args.output)
    if output.suffix.lower() != ENSEMBLE_SUFFIX:
        raise ValueError(f'--output must be a {ENSEMBLE_SUFFIX} file (the ensemble manifest)')
    members = [Path(member) for member in args.members]
    member_names(members, output)  # refuse members outside the manifest's folder up front
    ensemble = EnsembleDetector([load_model(member) for member in members], None)
    images = [load_rgb(path) for path in image_files(args.calibration_dir)]
    calibration = Calibration.from_normal_scores(ensemble.raw_scores(images, args.batch_size),
                                                 args.false_alarm_rate)
    with atomic_output(output) as temporary:
        temporary.write_text(manifest_text(members, calibration, output))
    print(f'wrote {output}: {ensemble.method} on {len(images)} normal images, threshold '
          f'{calibration.threshold:.4g} (mean calibrated member score) at a false-alarm rate '
          f'of {args.false_alarm_rate}')
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ensemble``."""
    parser = subparsers.add_parser(
        'ensemble', help='combine fitted models (mean of calibrated scores) into one detector')
    parser.add_argument('--members', nargs='+', required=True,
                        help='two or more model files (.onnx or .safetensors)')
    parser.add_argument('--calibration-dir', required=True,
                        help='held-out normal images for the ensemble threshold')
    parser.add_argument('--output', required=True, help='ensemble manifest to write (.json)')
    parser.add_argument('--false-alarm-rate', type=float, default=0.05)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.set_defaults(func=run_ensemble)
