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

"""AUROC with the torch-free preprocessing against the torch resize it replaced.

The onboard runtime resizes images with Pillow (antialiased bilinear) and anomaly maps with
OpenCV, instead of torch's ``interpolate``. This script scores the same labelled images with one
fitted model both ways and prints the AUROC of each and the largest raw-score difference::

    .venv/bin/python benchmarks/preprocess_parity.py models/padim.safetensors data/lroc/test

The reference path is torch's ``interpolate(mode='bilinear', antialias=True)`` followed by the
same normalisation, fed to the same network (``TorchDetector.run``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

import numpy as np
from sklearn.metrics import roc_auc_score
import torch
from torch.nn import functional as F

from vad4space_ros.cli.fit import image_files
from vad4space_ros.data.samples import load_rgb
from vad4space_ros.models.torch_detector import load_artifact


def torch_input(images: list[np.ndarray], size: tuple[int, int], mean: list[float],
                std: list[float]) -> np.ndarray:
    """Prepare a batch the way the torch path did: antialiased bilinear, then normalise."""
    batch = torch.stack([torch.from_numpy(i).permute(2, 0, 1).float() / 255.0 for i in images])
    batch = F.interpolate(batch, size=size, mode='bilinear', align_corners=False, antialias=True)
    batch = (batch - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return batch.numpy()


def main() -> int:
    """Score the test folder both ways and print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', type=Path, help='fitted .safetensors model')
    parser.add_argument('test_dir', type=Path, help='folder with none/ and anomaly subfolders')
    parser.add_argument('--per-class', type=int, default=100)
    args = parser.parse_args()
    detector = load_artifact(args.model)
    images, labels = [], []
    for folder in sorted(p for p in args.test_dir.iterdir() if p.is_dir()):
        files = image_files(folder)[:args.per_class]
        images += [load_rgb(p) for p in files]
        labels += [int(folder.name != 'none')] * len(files)
    current = detector.raw_scores(images, batch_size=8)
    normalisation = detector.metadata['normalisation']
    reference = np.concatenate([
        detector.run(torch_input(images[i:i + 8], detector.input_size, normalisation['mean'],
                                 normalisation['std']))[0].reshape(-1)
        for i in range(0, len(images), 8)])
    result = {'images': len(images), 'auroc_torch_resize': roc_auc_score(labels, reference),
              'auroc_pillow_resize': roc_auc_score(labels, current),
              'max_abs_score_difference': float(np.abs(current - reference).max()),
              'max_relative_score_difference': float(
                  (np.abs(current - reference) / np.abs(reference)).max())}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
