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

"""Footprint and AUROC of a fitted model before and after ONNX export, per export variant.

Scores a labelled LROC-layout test tree (``test/none`` normal, every other class anomalous)
with the torch artifact and with each exported variant: float32, float16 storage, PaDiM with
fewer channels (``--padim-features``, recalibrated on ``--calibration-dir``) and static int8.
Writes a JSON report and prints one line per variant. Example::

    .venv/bin/python benchmarks/export_accuracy.py models/padim.safetensors
        --test-dir data/lroc/test --calibration-dir data/lroc/val/none --padim-features 48 64

A benchmark, not a test: the figures depend on the data.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from vad4space_ros.cli.fit import image_files
from vad4space_ros.data.samples import load_rgb
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.models.export import export_onnx, ExportOptions, quantize_int8
from vad4space_ros.models.torch_detector import load_artifact


def labelled_images(test_dir: Path, limit: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Load up to ``limit`` images per class folder; label 0 for ``none``, 1 otherwise."""
    images, labels = [], []
    for folder in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        for path in image_files(folder)[:limit]:
            images.append(load_rgb(path))
            labels.append(0 if folder.name == 'none' else 1)
    return images, np.asarray(labels)


def main() -> None:
    """Export the variants, score the test images with each, report AUROC and size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model', type=Path)
    parser.add_argument('--test-dir', type=Path, required=True)
    parser.add_argument('--calibration-dir', type=Path, required=True)
    parser.add_argument('--padim-features', type=int, nargs='*', default=[])
    parser.add_argument('--int8', action='store_true')
    parser.add_argument('--per-class', type=int, default=100, help='images per class folder')
    parser.add_argument('--work-dir', type=Path, default=Path('export_accuracy'))
    parser.add_argument('--output', type=Path, default=Path('export_accuracy.json'))
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    images, labels = labelled_images(args.test_dir, args.per_class)
    calibration = [load_rgb(p) for p in image_files(args.calibration_dir)]
    detector = load_artifact(args.model)
    reference = detector.raw_scores(images, batch_size=8)
    rows = [{'variant': 'torch (safetensors)', 'mb': args.model.stat().st_size / 1e6,
             'auroc': float(roc_auc_score(labels, reference)), 'max_rel_diff': 0.0}]
    print(f'{rows[0]["variant"]:<32} {rows[0]["mb"]:8.1f} MB  AUROC {rows[0]["auroc"]:.4f}')
    stem = args.work_dir / args.model.stem
    variants = [('onnx fp32', ExportOptions()), ('onnx fp16', ExportOptions(weights_fp16=True))]
    if detector.method == 'padim':
        variants += [(f'onnx fp16 padim {k} ch', ExportOptions(weights_fp16=True,
                                                               padim_features=k))
                     for k in args.padim_features]
    for name, options in variants + ([('onnx int8 (conv)', None)] if args.int8 else []):
        start = time.perf_counter()
        path = Path(f'{stem}.{name.replace(" ", "_").replace("(", "").replace(")", "")}.onnx')
        if options is None:
            path = quantize_int8(f'{stem}.onnx_fp32.onnx', path, calibration)
        else:
            path = export_onnx(detector, path, options, calibration)
        scores = load_model(path).raw_scores(images, batch_size=8)
        relative = np.abs(scores - reference) / np.maximum(np.abs(reference), 1e-12)
        row = {'variant': name, 'mb': path.stat().st_size / 1e6,
               'auroc': float(roc_auc_score(labels, scores)),
               'max_rel_diff': float(relative.max()), 'file': str(path),
               'seconds': time.perf_counter() - start}
        rows.append(row)
        print(f'{name:<32} {row["mb"]:8.1f} MB  AUROC {row["auroc"]:.4f}  '
              f'(max rel. score diff vs torch {row["max_rel_diff"]:.1e})', flush=True)
    args.output.write_text(json.dumps({'model': str(args.model), 'method': detector.method,
                                       'model_id': detector.model_id,
                                       'test_images': len(images),
                                       'anomalies': int(labels.sum()), 'rows': rows}, indent=1))


if __name__ == '__main__':
    main()
