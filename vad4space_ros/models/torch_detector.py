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

"""The torch detector: a fitted anomalib model in one ``.safetensors`` file, with its metadata.

The file holds tensors only (no pickle, so loading an untrusted file cannot execute code). Its
header metadata key ``vad4space`` holds the JSON described in :mod:`vad4space_ros.deploy.artifact`.
Loading rebuilds the anomalib architecture with random backbone weights, loads the full
state_dict strictly and runs one test inference. A fused file adds ``spectral.*``
tensors and a ``spectral`` metadata section (:mod:`vad4space_ros.deploy.spectral`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open, SafetensorError
from safetensors.torch import save_file
import torch
from torch import nn
from torch.nn import functional as F

from vad4space_ros.atomic_files import atomic_output
from vad4space_ros.deploy.artifact import (
    ARTIFACT_FORMAT, ArtifactError, METADATA_KEY, parse_metadata)
from vad4space_ros.deploy.calibration import Calibration
from vad4space_ros.deploy.detector import Detector, Outputs
from vad4space_ros.deploy.preprocess import DecorrelationStretch
from vad4space_ros.deploy.spectral import (
    fused_from_metadata, FusedDetector, rgb_branch_metadata, SPECTRAL_PREFIX)
from vad4space_ros.models.backbones import (
    backbone_weights, BackboneSpec, get_backbone, state_fingerprint)
from vad4space_ros.models.methods import build_method


class TorchDetector(Detector):
    """A fitted anomalib torch model with calibration, ready for inference on RGB images."""

    def __init__(self, model: nn.Module, metadata: dict[str, Any]) -> None:
        super().__init__(metadata)
        self.model = model.eval()
        self._embedding: torch.Tensor | None = None
        feature_backbone(model).register_forward_hook(self._keep_embedding)

    def _keep_embedding(self, _module: nn.Module, _inputs: Any, outputs: Any) -> None:
        deepest = list(outputs.values())[-1] if isinstance(outputs, dict) else outputs[-1]
        self._embedding = F.normalize(deepest.mean(dim=(2, 3)), dim=1)

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> Outputs:
        """Run the torch model on a normalised Bx3xHxW batch."""
        output = self.model(torch.tensor(batch))  # a torch-allocated (aligned) copy
        return (output.pred_score.float().numpy(), output.anomaly_map.float().numpy(),
                self._embedding.float().numpy())

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None,
             extra_arrays: dict[str, np.ndarray] | None = None) -> Path:
        """Write the model file atomically; return its path.

        ``metadata`` replaces this model's and ``extra_arrays`` are stored beside its tensors
        (both used by :meth:`vad4space_ros.deploy.spectral.FusedDetector.save`).
        """
        tensors = detached_state(self.model)
        tensors.update({name: torch.from_numpy(np.ascontiguousarray(array))
                        for name, array in (extra_arrays or {}).items()})
        header = {METADATA_KEY: json.dumps(metadata or self.metadata)}
        with atomic_output(path) as temporary:
            save_file(tensors, str(temporary), metadata=header)
        return Path(path)

    @classmethod
    def from_state(cls, metadata: dict[str, Any],
                   state: dict[str, torch.Tensor]) -> 'TorchDetector':
        """Rebuild the architecture named in ``metadata`` and load ``state`` strictly."""
        with backbone_weights(None):
            module = build_method(metadata['method'], get_backbone(metadata['backbone']),
                                  tuple(metadata['input_size']), metadata.get('method_options'))
        module.model.load_state_dict(state, strict=True)
        return cls(module.model, metadata)


def load_artifact(path: str | Path) -> TorchDetector | FusedDetector:
    """Load a ``.safetensors`` model file (plain or fused); raise ArtifactError when unusable."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f'model file not found: {path}')
    try:
        with safe_open(str(path), framework='pt') as artifact:
            metadata = parse_metadata(path, artifact.metadata() or {})
            state = {key: artifact.get_tensor(key) for key in artifact.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        if isinstance(error, ArtifactError):
            raise
        raise ArtifactError(f'{path} is not a readable vad4space model: {error}') from None
    statistics = {key: state.pop(key).numpy() for key in list(state)
                  if key.startswith(SPECTRAL_PREFIX)}
    fused = 'spectral' in metadata
    try:
        rgb = TorchDetector.from_state(rgb_branch_metadata(metadata) if fused else metadata,
                                       state)
    except (RuntimeError, ValueError, KeyError) as error:
        raise ArtifactError(f'{path} does not match its metadata: {error}') from None
    rgb.verify(path)
    return fused_from_metadata(rgb, metadata, statistics, path) if fused else rgb


def detached_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a contiguous CPU copy of a model's state_dict, as stored in model files."""
    return {key: value.detach().cpu().contiguous().clone()
            for key, value in model.state_dict().items()}


def feature_backbone(model: nn.Module) -> nn.Module:
    """Return the first (pretrained) timm feature extractor inside an anomalib model."""
    for module in model.modules():
        if hasattr(module, 'feature_info') and not hasattr(module, 'feature_extractor'):
            return module
    raise ValueError(f'{type(model).__name__} has no timm feature extractor')


def normalisation_metadata(spec: BackboneSpec,
                           stretch: DecorrelationStretch | None) -> dict[str, Any]:
    """Return the ``normalisation`` metadata: the backbone's mean/std and any colour stretch."""
    normalisation: dict[str, Any] = {'mean': list(spec.mean), 'std': list(spec.std)}
    if stretch is not None:
        normalisation[DecorrelationStretch.METADATA_KEY] = stretch.to_metadata()
    return normalisation


def build_metadata(method: str, backbone: str, weights: str, weights_fingerprint: str,
                   input_size: tuple[int, int], calibration: Calibration, model: nn.Module,
                   stretch: DecorrelationStretch | None, extra: dict[str, Any]) -> dict[str, Any]:
    """Assemble the model-file metadata for a freshly fitted model."""
    import anomalib
    digest = state_fingerprint(model.state_dict())[:10]
    spec = get_backbone(backbone)
    return {
        'format': ARTIFACT_FORMAT,
        'method': method,
        'backbone': backbone,
        'weights': weights,
        'weights_fingerprint': weights_fingerprint,
        'input_size': list(input_size),
        'normalisation': normalisation_metadata(spec, stretch),
        'calibration': calibration.to_dict(),
        'model_id': f'{method}-{backbone}-{digest}',
        'anomalib_version': anomalib.__version__,
        'torch_version': torch.__version__,
        **extra,
    }
