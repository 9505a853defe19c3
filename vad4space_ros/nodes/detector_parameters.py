"""Parameters of the detector node: names, defaults, descriptions and ranges.

Kept apart from the node so configuration files can be checked without loading torch.
Parameters marked read-only take effect at start only; the others can change at run time.
"""
from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


def _descriptor(description: str, read_only: bool = False, *,
                floating: tuple[float, float] | None = None,
                integer: tuple[int, int] | None = None) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if floating is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=floating[0], to_value=floating[1], step=0.0)]
    if integer is not None:
        descriptor.integer_range = [
            IntegerRange(from_value=integer[0], to_value=integer[1], step=1)]
    return descriptor


# name -> (default, descriptor); read_only ones take effect at start only.
PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = {
    'model_path': ('', _descriptor(
        'Model artifact written by `vad4space fit`. Changing it at run time loads the new '
        'model first and keeps the old one if loading fails.')),
    'threshold': (0.5, _descriptor(
        'Decision threshold on the calibrated score (0 = typical normal, 0.5 = calibrated '
        'threshold of the model).', floating=(0.0, 100.0))),
    'publish_heatmap': (True, _descriptor('Publish ~/heatmap (rgb8 overlay).')),
    'publish_map': (True, _descriptor('Publish ~/anomaly_map (32FC1 raw map).')),
    'heatmap_alpha': (0.5, _descriptor(
        'Weight of the colour-mapped map in the heatmap overlay.', floating=(0.0, 1.0))),
    'queue_size': (1, _descriptor(
        'Frames waiting for inference; when full the oldest is dropped (newest kept).',
        read_only=True, integer=(1, 100))),
    'diagnostics_period': (1.0, _descriptor(
        'Seconds between /diagnostics statuses.', read_only=True, floating=(0.1, 60.0))),
    'subscribe_compressed': (False, _descriptor(
        'Also subscribe to <image topic>/compressed (sensor_msgs/CompressedImage, JPEG/PNG).',
        read_only=True)),
    'multispectral_rgb_bands': ([0, 1, 2], _descriptor(
        'For 6-band frames (8UC6/16UC6/32FC6): the band indices fed to R, G, B.')),
    'sixteen_bit_max': (65535, _descriptor(
        'Value mapped to 255 for 16-bit encodings (4095 for a 12-bit sensor).',
        integer=(1, 65535))),
    'float_max': (1.0, _descriptor(
        'Value mapped to 255 for float encodings (32FC1/32FC6).', floating=(1e-6, 1e9))),
}
