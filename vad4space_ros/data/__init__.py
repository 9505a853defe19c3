"""Benchmark data: samples, loaders for the real LROC/Mastcam layouts, generators, protocols.

``samples`` defines the common :class:`~vad4space_ros.data.samples.Sample` type and image
loading; ``lroc`` and ``mastcam`` read the published folder layouts; ``synthetic`` writes
procedurally generated stand-ins in exactly those layouts; ``protocols`` builds the paper's
three evaluation settings; ``download`` fetches the real archives from Zenodo.
"""
from vad4space_ros.data.datasets import load_dataset
from vad4space_ros.data.files import DatasetError, load_bands, load_rgb
from vad4space_ros.data.samples import ANOMALY, Dataset, NORMAL, Sample

__all__ = [
    'ANOMALY', 'NORMAL', 'Dataset', 'DatasetError', 'Sample', 'load_bands', 'load_dataset',
    'load_rgb',
]
