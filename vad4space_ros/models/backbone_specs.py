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

"""The backbones the methods can use: timm architecture, feature levels, normalisation.

Torch-free, so the weight cache (:mod:`.weights`) and the onboard runtime can look a backbone up
without importing timm; :mod:`.backbones` registers these specs with timm.
"""
from __future__ import annotations

from dataclasses import dataclass

from vad4space_ros.catalog import BACKBONE_NAMES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone: its timm architecture and the three feature levels the methods use."""

    name: str
    timm_name: str
    layers: tuple[str, str, str]
    channels: tuple[int, int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def registered_name(self) -> str:
        """Name under which timm builds this backbone with vad4space weights."""
        return f'vad4space_{self.name}'


BACKBONES: dict[str, BackboneSpec] = {
    'mobilenet_v2': BackboneSpec(
        'mobilenet_v2', 'mobilenetv2_100', ('blocks.1', 'blocks.2', 'blocks.4'), (24, 32, 96)),
    # TF-ported weights: TF 'SAME' padding, BN eps 1e-3 and inputs in [-1, 1].
    'efficientnet_lite0': BackboneSpec(
        'efficientnet_lite0', 'tf_efficientnet_lite0', ('blocks.1', 'blocks.2', 'blocks.4'),
        (24, 40, 112), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
}
if tuple(BACKBONES) != BACKBONE_NAMES:
    raise ImportError('backbone_specs.BACKBONES and catalog.BACKBONE_NAMES disagree')


def get_backbone(name: str) -> BackboneSpec:
    """Return the spec of a known backbone or raise ValueError listing the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f'unknown backbone {name!r}; choose one of {sorted(BACKBONES)}') from None
