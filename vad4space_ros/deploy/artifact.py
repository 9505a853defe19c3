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

"""What every model file carries: the ``vad4space`` JSON metadata, validated without torch.

A ``.safetensors`` model (``vad4space fit``) keeps it in the safetensors header, an exported
``.onnx`` model (``vad4space export``) in the ONNX ``metadata_props``; both under the key
:data:`METADATA_KEY`. :func:`parse_metadata` refuses metadata that cannot describe a usable
model, so a bad file fails at load with a clear reason rather than on every frame.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vad4space_ros.catalog import BACKBONE_NAMES, METHOD_NAMES
from vad4space_ros.deploy.calibration import Calibration
from vad4space_ros.deploy.preprocess import DecorrelationStretch

ARTIFACT_FORMAT = 'vad4space-model/1'
EXPORT_FORMAT = 'vad4space-onnx/1'
METADATA_KEY = 'vad4space'
REQUIRED_KEYS = ('method', 'backbone', 'input_size', 'normalisation', 'calibration', 'model_id')


class ArtifactError(ValueError):
    """A model file is missing, truncated, corrupt or does not match its metadata."""


def parse_metadata(path: Path, header: dict[str, str]) -> dict[str, Any]:
    """Validate the JSON metadata of a model file's header; raise ArtifactError when unusable."""
    try:
        metadata = json.loads(header[METADATA_KEY])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ArtifactError(f'{path} has no vad4space metadata') from None
    if not isinstance(metadata, dict) or metadata.get('format') != ARTIFACT_FORMAT:
        found = metadata.get('format') if isinstance(metadata, dict) else None
        raise ArtifactError(f'{path}: unsupported format {found!r}, expected {ARTIFACT_FORMAT}')
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ArtifactError(f'{path}: metadata lacks {", ".join(map(repr, missing))}')
    if metadata['method'] not in METHOD_NAMES:
        raise ArtifactError(f'{path}: unknown method {metadata["method"]!r}')
    if metadata['backbone'] not in BACKBONE_NAMES:
        raise ArtifactError(f'{path}: unknown backbone {metadata["backbone"]!r}')
    size = metadata['input_size']
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(side, int) and side > 0 for side in size)):
        raise ArtifactError(f'{path}: input_size must be [height, width], got {size!r}')
    normalisation = metadata['normalisation']
    try:
        if not all(len(normalisation[key]) == 3 for key in ('mean', 'std')):
            raise ValueError('mean and std need 3 values')
        [float(value) for key in ('mean', 'std') for value in normalisation[key]]
        DecorrelationStretch.from_normalisation(normalisation)
        calibration = Calibration(**metadata['calibration'])
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactError(f'{path}: bad normalisation or calibration: {error}') from None
    if not calibration.threshold > calibration.center:
        raise ArtifactError(f'{path}: calibration threshold must exceed its centre')
    return metadata
