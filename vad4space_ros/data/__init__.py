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
