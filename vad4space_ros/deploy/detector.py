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

"""The detector interface shared by every model file, implemented without torch.

:class:`Detector` holds a model's metadata (see :mod:`.artifact`) and turns RGB images into
calibrated predictions. Subclasses only run the network on a prepared batch (:meth:`run`):
:class:`~.onnx_detector.OnnxDetector` with ONNX Runtime or OpenVINO on the vehicle, and
``vad4space_ros.models.torch_detector.TorchDetector`` with torch for fitting and ``.safetensors``
files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import time
from typing import Any, Sequence

import numpy as np

from vad4space_ros.deploy.artifact import ArtifactError
from vad4space_ros.deploy.calibration import CALIBRATED_THRESHOLD, Calibration
from vad4space_ros.deploy.preprocess import as_rgb, model_input, resize_map

Outputs = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Prediction:
    """The detector's output for one image."""

    score: float
    raw_score: float
    is_anomaly: bool
    anomaly_map: np.ndarray
    embedding: np.ndarray
    latency_ms: float


class Detector:
    """A fitted, calibrated model that scores RGB images; subclasses implement :meth:`run`."""

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.metadata = metadata

    @property
    def calibration(self) -> Calibration:
        """Threshold and score scale fitted on held-out normal images."""
        return Calibration(**self.metadata['calibration'])

    @property
    def method(self) -> str:
        """Name of the VAD method."""
        return self.metadata['method']

    @property
    def backbone(self) -> str:
        """Name of the backbone."""
        return self.metadata['backbone']

    @property
    def model_id(self) -> str:
        """Identifier of this fitted model (method, backbone and a hash of its tensors)."""
        return self.metadata['model_id']

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input (height, width)."""
        return tuple(self.metadata['input_size'])

    def run(self, batch: np.ndarray) -> Outputs:
        """Run the network on a normalised Bx3xHxW batch; return scores, maps, embeddings."""
        raise NotImplementedError

    def infer(self, images: Sequence[np.ndarray]) -> Outputs:
        """Return raw scores (B), maps at model resolution (BxHxW) and embeddings (BxD)."""
        scores, maps, embeddings = self.run(model_input(images, self.metadata))
        maps = np.asarray(maps, np.float32)
        return (np.asarray(scores, np.float32).reshape(-1),
                maps[:, 0] if maps.ndim == 4 else maps, np.asarray(embeddings, np.float32))

    def raw_scores(self, images: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """Raw scores of many images, in batches."""
        chunks = [self.infer(images[i:i + batch_size])[0]
                  for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    def predict(self, image: np.ndarray,
                threshold: float = CALIBRATED_THRESHOLD) -> Prediction:
        """Score one HxWx3 (or HxW) uint8 image; ``threshold`` is on the calibrated scale."""
        rgb = as_rgb(image)
        start = time.perf_counter()
        raw, maps, embeddings = self.infer([rgb])
        anomaly_map = resize_map(maps[0], rgb.shape[:2])
        latency_ms = (time.perf_counter() - start) * 1000.0
        score = float(self.calibration.normalise(float(raw[0])))
        return Prediction(score=score, raw_score=float(raw[0]), is_anomaly=score >= threshold,
                          anomaly_map=anomaly_map, embedding=embeddings[0],
                          latency_ms=latency_ms)

    def verify(self, path: Path) -> None:
        """Run one blank image through the model; raise ArtifactError unless outputs fit.

        Catches a file whose metadata disagrees with its tensors or graph (for example an
        edited ``input_size``) at load, instead of failing on every frame afterwards.
        """
        height, width = self.input_size
        try:
            scores, maps, embeddings = self.infer([np.zeros((height, width, 3), np.uint8)])
        except Exception as error:  # the runtimes raise their own (non-standard) error types
            raise ArtifactError(f'{path}: a test inference at the stated input size '
                                f'{height}x{width} failed: {error}') from None
        if scores.shape != (1,) or not np.isfinite(scores).all():
            raise ArtifactError(f'{path}: the model returned scores of shape {scores.shape}')
        if maps.ndim != 3 or maps.shape[0] != 1 or embeddings.ndim != 2:
            raise ArtifactError(f'{path}: the model returned maps {maps.shape} and '
                                f'embeddings {embeddings.shape}, expected 1xHxW and 1xD')
