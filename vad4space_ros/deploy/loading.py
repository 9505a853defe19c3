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

"""Open any model file and return the detector that scores frames with it.

- ``.onnx`` (``vad4space export``, or ``vad4space fit --export``): the onboard artifact, run by
  ONNX Runtime (or OpenVINO, ``VAD4SPACE_RUNTIME``), with NumPy/OpenCV around it. Torch is never
  imported. A fused export carries the RX statistics in its metadata.
- ``.json`` (``vad4space ensemble``): an ensemble manifest; its member files are loaded as
  below and combined (:mod:`.ensemble`).
- anything else (``.safetensors`` from ``vad4space fit``): the torch stack is imported here, only
  then, and rebuilds the anomalib model (plain or fused).

Each file is opened once. Every detector runs one test inference at load, so a file whose
metadata disagrees with its tensors or graph is refused with :class:`~.artifact.ArtifactError`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vad4space_ros.deploy.artifact import ArtifactError
from vad4space_ros.deploy.detector import Detector
from vad4space_ros.deploy.ensemble import ENSEMBLE_SUFFIX, load_ensemble
from vad4space_ros.deploy.onnx_detector import OnnxDetector, open_onnx
from vad4space_ros.deploy.spectral import (
    fused_from_metadata, FusedDetector, rgb_branch_metadata, SPECTRAL_PREFIX)

Model = Detector | FusedDetector


def load_model(path: str | Path, runtime: str | None = None,
               threads: int | None = None) -> Model:
    """Load a model file; ``runtime`` and ``threads`` apply to ``.onnx`` files."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f'model file not found: {path}')
    if path.suffix.lower() == ENSEMBLE_SUFFIX:
        return load_ensemble(path, lambda member: load_model(member, runtime, threads))
    if path.suffix.lower() != '.onnx':
        from vad4space_ros.models.torch_detector import load_artifact
        return load_artifact(path)
    return load_onnx(path, runtime, threads)


def load_onnx(path: str | Path, runtime: str | None = None,
              threads: int | None = None) -> Model:
    """Load an exported model file (plain or fused), whatever its name."""
    path = Path(path)
    run, metadata, runtime = open_onnx(path, runtime, threads)
    if 'spectral' not in metadata:
        detector = OnnxDetector(run, metadata, runtime)
        detector.verify(path)
        return detector
    rgb = OnnxDetector(run, rgb_branch_metadata(metadata), runtime)
    rgb.verify(path)
    statistics = {name: np.asarray(metadata['spectral'].get(name, ()), np.float64)
                  for name in (SPECTRAL_PREFIX + 'mean', SPECTRAL_PREFIX + 'inverse_covariance')}
    return fused_from_metadata(rgb, metadata, statistics, path)
