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

"""Fit a VAD method on normal images with anomalib's Lightning training loop, on CPU."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import tempfile
from typing import Any, Callable, Sequence

from anomalib.data import ImageBatch, ImageItem
from anomalib.models.components import MemoryBankMixin
import lightning
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vad4space_ros.data.samples import load_rgb
from vad4space_ros.deploy.calibration import Calibration
from vad4space_ros.deploy.preprocess import DecorrelationStretch, to_model_input
from vad4space_ros.models.backbones import backbone_weights, get_backbone, load_backbone_state
from vad4space_ros.models.backbones import BackboneSpec, state_fingerprint
from vad4space_ros.models.methods import build_method, get_method
from vad4space_ros.models.torch_detector import (
    build_metadata, detached_state, normalisation_metadata, TorchDetector)
from vad4space_ros.training.budget import FitClock
from vad4space_ros.training.colour_stretch import fit_decorrelation_stretch
from vad4space_ros.training.robust import robust_training_set, RobustConfig

ImageSource = str | Path | np.ndarray


@dataclass
class FitConfig:
    """What to fit and how."""

    method: str
    backbone: str = 'mobilenet_v2'
    weights: str = 'imagenet'
    input_size: tuple[int, int] = (256, 256)
    epochs: int | None = None
    batch_size: int = 16
    calibration_fraction: float = 0.2
    false_alarm_rate: float = 0.05
    seed: int = 0
    progress: bool = True
    extra_metadata: dict = field(default_factory=dict)
    robust: RobustConfig | None = None
    method_options: dict[str, Any] = field(default_factory=dict)
    time_budget: float | None = None  # seconds; trainable methods stop early (budget.py)
    decorrelation_stretch: bool = False  # fit one on the training pixels (colour_stretch.py)


class ImageListDataset(Dataset):
    """Images (paths or arrays) as anomalib ``ImageItem``s, resized and normalised."""

    def __init__(self, sources: Sequence[ImageSource], input_size: tuple[int, int],
                 spec: BackboneSpec, loader: Callable[[Path], np.ndarray] = load_rgb,
                 stretch: DecorrelationStretch | None = None) -> None:
        self.sources = list(sources)
        self.input_size = input_size
        self.spec = spec
        self.loader = loader
        self.stretch = stretch

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.sources)

    def load(self, index: int) -> np.ndarray:
        """Return image ``index`` as RGB uint8."""
        source = self.sources[index]
        return source if isinstance(source, np.ndarray) else self.loader(Path(source))

    def __getitem__(self, index: int) -> ImageItem:
        """Return item ``index`` (label 0: training data is treated as normal)."""
        image = torch.from_numpy(to_model_input([self.load(index)], self.input_size,
                                                self.spec.mean, self.spec.std, self.stretch)[0])
        return ImageItem(image=image, gt_label=torch.tensor(0),
                         image_path=str(self.sources[index])[:200])


class ImageListDataModule(lightning.LightningDataModule):
    """Training-only data module (anomalib's CFA reads its train loader at start)."""

    def __init__(self, dataset: ImageListDataset, batch_size: int, seed: int) -> None:
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of training images."""
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True,
                          collate_fn=ImageBatch.collate,
                          generator=torch.Generator().manual_seed(self.seed))


def split_calibration(sources: Sequence[ImageSource], fraction: float,
                      seed: int) -> tuple[list[ImageSource], list[ImageSource]]:
    """Hold out ``fraction`` of the training images (at least 2) for calibration."""
    count = len(sources)
    held_out = max(2, int(round(count * fraction)))
    if count - held_out < 2:
        raise ValueError(f'need at least {held_out + 2} training images, got {count}')
    order = np.random.default_rng(seed).permutation(count)
    train = [sources[i] for i in sorted(order[held_out:])]
    calibration = [sources[i] for i in sorted(order[:held_out])]
    return train, calibration


def fit_detector(train: Sequence[ImageSource], config: FitConfig,
                 calibration: Sequence[ImageSource] | None = None,
                 loader: Callable[[Path], np.ndarray] = load_rgb) -> TorchDetector:
    """Fit ``config.method`` on normal images; calibrate on held-out normal images."""
    method = get_method(config.method)
    spec = get_backbone(config.backbone)
    if calibration is None:
        train, calibration = split_calibration(train, config.calibration_fraction, config.seed)
    dataset = ImageListDataset(train, tuple(config.input_size), spec, loader)
    if config.decorrelation_stretch:  # first: grey images fail before any backbone work
        dataset.stretch = fit_decorrelation_stretch(
            map(dataset.load, range(len(dataset))), len(dataset), config.seed)
    stretch = dataset.stretch
    lightning.seed_everything(config.seed, verbose=False)
    backbone_state = load_backbone_state(spec, config.weights)
    with backbone_weights(backbone_state):
        module = build_method(method.name, spec, tuple(config.input_size),
                              config.method_options)
    screening = {}
    if config.robust is not None:  # drop atypical (likely contaminating) images, see robust.py
        train, report = robust_training_set(train, config, spec, backbone_state, dataset.load,
                                            fit_detector, stretch)
        dataset = ImageListDataset(train, tuple(config.input_size), spec, loader, stretch)
        screening = {'robust': report.to_metadata()}
    epochs = config.epochs or method.default_epochs
    clock = FitClock(method.name, config.time_budget,
                     trainable=not isinstance(module, MemoryBankMixin))
    with tempfile.TemporaryDirectory(prefix='vad4space-fit-') as workdir:
        trainer = lightning.Trainer(
            max_epochs=epochs, accelerator='cpu', devices=1, logger=False,
            enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
            limit_val_batches=0, enable_progress_bar=config.progress, default_root_dir=workdir,
            gradient_clip_val=module.trainer_arguments.get('gradient_clip_val') or None,
            callbacks=[clock])
        trainer.fit(module, datamodule=ImageListDataModule(dataset, config.batch_size,
                                                           config.seed))
    # Rebuild exactly as loading a model file does, so a saved model scores bit-identically.
    options = method.resolve_options(config.method_options)
    base = {'method': method.name, 'backbone': spec.name, 'input_size': list(config.input_size),
            'method_options': options,
            'normalisation': normalisation_metadata(spec, stretch)}
    detector = TorchDetector.from_state(base, detached_state(module.model))
    calibration_images = ImageListDataset(calibration, tuple(config.input_size), spec, loader)
    normal_scores = detector.raw_scores(
        [calibration_images.load(i) for i in range(len(calibration_images))],
        config.batch_size)
    detector.metadata = build_metadata(
        method.name, spec.name, config.weights, state_fingerprint(backbone_state),
        tuple(config.input_size), Calibration.from_normal_scores(normal_scores,
                                                                 config.false_alarm_rate),
        detector.model, stretch,
        {'epochs': epochs, 'train_count': len(train), 'method_options': options,
         'train_image_size': list(dataset.load(0).shape[:2]), 'fit_time': clock.record(),
         **screening, **config.extra_metadata})
    return detector
