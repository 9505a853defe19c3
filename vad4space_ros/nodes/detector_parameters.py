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

"""Parameters of the detector node: names, defaults, descriptions, ranges and value checks.

Kept apart from the node so configuration files can be checked without loading torch.
Parameters marked read-only take effect at start only; the others can change at run time.
"""
from __future__ import annotations

from typing import Any

from vad4space_ros.deploy.image_encoding import DEFAULT_MAX_FRAME_PIXELS, MULTISPECTRAL_BANDS
from vad4space_ros.nodes.parameters import parameter_descriptor, ParameterTable

TRANSPORTS = ('raw', 'compressed')  # values of the transport parameter


def checked_bands(bands: Any) -> tuple[int, int, int]:
    """Return ``multispectral_rgb_bands`` as 3 band indices; raise ValueError if invalid."""
    bands = tuple(int(b) for b in bands)
    if len(bands) != 3 or not all(0 <= b < MULTISPECTRAL_BANDS for b in bands):
        raise ValueError(f'multispectral_rgb_bands must be 3 band indices in '
                         f'0..{MULTISPECTRAL_BANDS - 1}, got {list(bands)}')
    return bands  # type: ignore[return-value]


def checked_transport(transport: str) -> str:
    """Return ``transport`` if it is one of TRANSPORTS; raise ValueError otherwise."""
    if transport not in TRANSPORTS:
        raise ValueError(f'transport must be one of {", ".join(TRANSPORTS)}, got {transport!r}')
    return transport


# name -> (default, descriptor); read_only ones take effect at start only.
PARAMETERS: ParameterTable = {
    'model_path': ('', parameter_descriptor(
        'Model file: written by `vad4space fit` (plain, or fused with --spectral-'
        'fusion), `vad4space export` (.onnx) or `vad4space ensemble` (.json '
        'manifest; members in its folder). Loaded at configure. A run-time '
        'change must name a file under model_dir; it loads the new model first and keeps the '
        'old one if loading fails.')),
    'model_dir': ('', parameter_descriptor(
        'Folder whose files (symlinks resolved, no "..") model_path may be changed to at run '
        'time; empty refuses every run-time model_path change.', read_only=True)),
    'autostart': (True, parameter_descriptor(
        'Configure and activate at start, like a plain node (a model that cannot load is '
        'then fatal); false waits for lifecycle transitions (~/change_state).',
        read_only=True)),
    'spectral_fusion': (True, parameter_descriptor(
        'For a fused model (`vad4space fit --spectral-fusion`): true publishes the fusion of '
        'the RX branch with the RGB branch; false scores the RGB branch only (on the '
        "model's own band view; faster, blind to spectrum-only anomalies). A 6-band fused "
        'model needs 6-band frames (8UC6/16UC6/32FC6) either way, a colour fused model colour '
        'frames. No effect on other models.')),
    'threshold': (0.5, parameter_descriptor(
        'Decision threshold on the calibrated score (0 = typical normal, 0.5 = calibrated '
        'threshold of the model).', floating=(0.0, 100.0))),
    'publish_heatmap': (True, parameter_descriptor('Publish ~/heatmap (rgb8 overlay).')),
    'publish_map': (True, parameter_descriptor('Publish ~/anomaly_map (32FC1 raw map).')),
    'heatmap_alpha': (0.5, parameter_descriptor(
        'Weight of the colour-mapped map in the heatmap overlay.', floating=(0.0, 1.0))),
    'queue_size': (1, parameter_descriptor(
        'Frames waiting for inference; when full the oldest is dropped (newest kept).',
        read_only=True, integer=(1, 100))),
    'diagnostics_period': (1.0, parameter_descriptor(
        'Seconds between /diagnostics statuses.', read_only=True, floating=(0.1, 60.0))),
    'transport': ('raw', parameter_descriptor(
        'Input transport, image_transport style: raw subscribes to <image> '
        '(sensor_msgs/Image); compressed to <image>/compressed (sensor_msgs/CompressedImage, '
        'JPEG/PNG). Exactly one of the two.', read_only=True)),
    'multispectral_rgb_bands': ([0, 1, 2], parameter_descriptor(
        'For 6-band frames (8UC6/16UC6/32FC6) and an RGB-only model: the band indices fed '
        'to R, G, B (a fused model uses the bands stored in it).')),
    'sixteen_bit_max': (65535, parameter_descriptor(
        'Value mapped to 255 for 16-bit encodings (4095 for a 12-bit sensor); to 1.0 in '
        "fused models' band cubes.", integer=(1, 65535))),
    'float_max': (1.0, parameter_descriptor(
        'Value mapped to 255 for float encodings (32FC1/32FC6); to 1.0 in fused '
        "models' band cubes.", floating=(1e-6, 1e9))),
    'tile_size': (-1, parameter_descriptor(
        'Score frames in square tiles of this many pixels at native resolution (docs/'
        "full_frames.md). -1: the size of the model's training images (metadata "
        'train_image_size; whole frame for models without it); 0: resize the whole frame '
        'to the model input. Fused models are tiled in tiles of their bands.', read_only=True,
        integer=(-1, 100000))),
    'tile_stride': (0, parameter_descriptor(
        'Pixels between tile starts (0: the tile size, no overlap; smaller: overlapping '
        'tiles, blended in the map).', read_only=True, integer=(0, 100000))),
    'tile_batch_size': (16, parameter_descriptor(
        'Tiles per model call (one ONNX Runtime run); memory grows with it, not with the '
        'frame.', read_only=True, integer=(1, 1024))),
    'max_frame_pixels': (DEFAULT_MAX_FRAME_PIXELS, parameter_descriptor(
        'Frames with more pixels are rejected (counted, warned) before decoding; compressed '
        'frames are checked from their header. 0: no limit.', read_only=True,
        integer=(0, 2 ** 40))),
    'max_regions': (5, parameter_descriptor(
        'At most this many anomalous regions (best first) per frame on ~/regions, the '
        'heatmap and the detection record.', read_only=True, integer=(0, 1000))),
}
