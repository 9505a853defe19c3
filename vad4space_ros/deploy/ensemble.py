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

"""Several fitted models as one detector: the mean of their calibrated scores (numpy only).

Models fail on different things (on generated Mars tiles CFA separates bedrock, PatchCore
float and drill holes; ``benchmarks/tile_tail.py``), so the mean of their calibrated scores
ranks novel tiles above more of the typical ones than either does. Each image goes through
every member (the cost is the sum of theirs):

- **score**: the mean of the members' calibrated scores (their own calibrations put each
  threshold at 0.5); the ensemble has its own calibration of that mean, fitted on held-out
  normal images when it is built (``vad4space ensemble``);
- **map**: the mean of the members' calibrated maps at the largest member map size;
- **embedding**: the members' embeddings, each scaled to unit length, side by side.

An ensemble is a small JSON manifest (:data:`ENSEMBLE_FORMAT`, suffix ``.json``) naming its
member model files with the ensemble's calibration; it is read with ``json`` only. Members lie
in the manifest's folder or below (relative names, no ``..``), so a node that accepts model
files only under ``model_dir`` cannot be led elsewhere by a manifest. Members are plain models
(no fused or nested ensembles) fitted on images of the same size.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vad4space_ros.deploy.artifact import ArtifactError
from vad4space_ros.deploy.calibration import Calibration
from vad4space_ros.deploy.detector import Detector, Outputs
from vad4space_ros.deploy.preprocess import resize_map

ENSEMBLE_FORMAT = 'vad4space-ensemble/1'
ENSEMBLE_SUFFIX = '.json'
# metadata an EnsembleDetector computes from its members (not stored in the manifest)
DERIVED_KEYS = ('method', 'backbone', 'model_id', 'members', 'input_size', 'train_image_size',
                'calibration', 'format')


class EnsembleDetector(Detector):
    """The mean of several detectors' calibrated outputs, with its own calibration."""

    def __init__(self, members: Sequence[Detector], calibration: Calibration | None,
                 extra: dict[str, Any] | None = None) -> None:
        """Combine ``members``; ``calibration`` of the mean score (None while building)."""
        if len(members) < 2:
            raise ValueError('an ensemble needs at least two member models')
        if not all(isinstance(m, Detector) and not isinstance(m, EnsembleDetector)
                   for m in members):
            raise ValueError('ensemble members must be plain models (no 6-band fused model '
                             'or ensemble)')
        sizes = {tuple(m.metadata.get('train_image_size') or ()) for m in members}
        if len(sizes) != 1:
            raise ValueError(f'ensemble members were fitted on images of different sizes '
                             f'{sorted(sizes)}')
        self.members = list(members)
        ids = ','.join(m.model_id for m in members)
        super().__init__({
            **(extra or {}),
            'method': '+'.join(m.method for m in members),
            'backbone': '+'.join(dict.fromkeys(m.backbone for m in members)),
            'model_id': 'ensemble-' + hashlib.sha256(ids.encode()).hexdigest()[:10],
            'members': [m.model_id for m in members],
            'input_size': list(max(m.input_size for m in members)),
            'train_image_size': list(sizes.pop()) or None,
            'calibration': (calibration or Calibration(0.5, 0.0, 0.05, 0)).to_dict()})

    def infer(self, images: Sequence[np.ndarray]) -> Outputs:
        """Return mean calibrated scores (B), mean calibrated maps (BxHxW), joined embeddings."""
        outputs = [m.infer(images) for m in self.members]
        height = max(maps.shape[1] for _, maps, _ in outputs)
        width = max(maps.shape[2] for _, maps, _ in outputs)
        calibrations = [m.calibration for m in self.members]
        scores = np.mean([c.normalise(s) for c, (s, _, _) in zip(calibrations, outputs)], axis=0)
        maps = np.mean([[resize_map(one, (height, width)) for one in c.normalise(member_maps)]
                        for c, (_, member_maps, _) in zip(calibrations, outputs)], axis=0)
        embeddings = np.concatenate([e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True),
                                                    1e-12) for _, _, e in outputs], axis=1)
        return (scores.astype(np.float32), maps.astype(np.float32),
                embeddings.astype(np.float32))


def member_names(members: Sequence[Path], manifest: Path) -> list[str]:
    """Return the members' paths relative to the manifest's folder; refuse any outside it."""
    base = manifest.resolve().parent
    outside = [str(m) for m in members if not Path(m).resolve().is_relative_to(base)]
    if outside:
        raise ValueError(f'ensemble members must lie in the folder of the manifest, {base}, or '
                         f'below (so a node restricted to model_dir loads nothing else): '
                         f'{outside}')
    return [str(Path(m).resolve().relative_to(base)) for m in members]


def manifest_text(members: Sequence[Path], calibration: Calibration, manifest: Path,
                  extra: dict[str, Any] | None = None) -> str:
    """Return the JSON manifest of an ensemble written at ``manifest``."""
    return json.dumps({**(extra or {}), 'format': ENSEMBLE_FORMAT,
                       'members': member_names(members, manifest),
                       'calibration': calibration.to_dict()}, indent=1) + '\n'


def rewritten_manifest(source: Path, target: Path, metadata: dict[str, Any]) -> str:
    """Return the manifest of ``source`` for ``target``, keeping ``metadata``'s stored keys."""
    manifest = json.loads(source.read_text())
    members = [source.parent / name for name in manifest['members']]
    stored = {key: value for key, value in metadata.items() if key not in DERIVED_KEYS}
    return manifest_text(members, Calibration(**manifest['calibration']), target, stored)


def load_ensemble(path: Path, load_member: Callable[[Path], Any]) -> EnsembleDetector:
    """Read an ensemble manifest and load its members with ``load_member``."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f'{path} is not a readable ensemble manifest: {error}') from None
    if not isinstance(manifest, dict) or manifest.get('format') != ENSEMBLE_FORMAT:
        raise ArtifactError(f'{path}: not a vad4space ensemble (format {ENSEMBLE_FORMAT})')
    try:
        names, calibration = manifest['members'], Calibration(**manifest['calibration'])
    except (KeyError, TypeError) as error:
        raise ArtifactError(f'{path}: bad ensemble manifest: {error}') from None
    if not isinstance(names, list) or any(
            not isinstance(name, str) or Path(name).is_absolute() or '..' in Path(name).parts
            for name in names):
        raise ArtifactError(f'{path}: members must be paths inside the manifest folder')
    members = [load_member(path.parent / name) for name in names]
    extra = {key: value for key, value in manifest.items() if key not in DERIVED_KEYS}
    try:
        return EnsembleDetector(members, calibration, extra)
    except ValueError as error:
        raise ArtifactError(f'{path}: {error}') from None
