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

"""The RViz layout with the topics of one launch (used by launch/detector.launch.py).

``config/vad4space.rviz`` names its topics relative to a namespace (``camera/image_raw``,
``vad4space_detector/heatmap``, ``vad4space_detector/anomaly_map``). A launch resolves them for
its ``namespace`` and ``image_topic`` arguments and writes a copy for RViz to open. ROS-free.
"""
from __future__ import annotations

import os
from pathlib import Path

from vad4space_ros.atomic_files import atomic_write_text
import yaml

DETECTOR_NODE = 'vad4space_detector'
INPUT_DISPLAY = 'Input'
DETECTOR_DISPLAYS = {'Heatmap': 'heatmap', 'Anomaly map': 'anomaly_map'}


def resolve_topic(namespace: str, name: str) -> str:
    """Return the absolute name of topic ``name`` in ``namespace`` (absolute names stay)."""
    if not name or name.startswith('~'):
        raise ValueError(f'cannot resolve topic {name!r}: give a relative or absolute name')
    if name.startswith('/'):
        return name
    prefix = '/'.join(part for part in namespace.split('/') if part)
    return f'/{prefix}/{name}' if prefix else f'/{name}'


def layout_topics(namespace: str, image_topic: str) -> dict[str, str]:
    """Return display name -> absolute topic for the input camera and the detector outputs."""
    topics = {INPUT_DISPLAY: resolve_topic(namespace, image_topic)}
    topics.update({display: resolve_topic(namespace, f'{DETECTOR_NODE}/{output}')
                   for display, output in DETECTOR_DISPLAYS.items()})
    return topics


def write_layout(template: str | os.PathLike, topics: dict[str, str],
                 output: str | os.PathLike) -> Path:
    """Write ``template`` with the ``Topic`` of each named display replaced; return the path.

    Raise KeyError when the template has no display of one of the names.
    """
    layout = yaml.safe_load(Path(template).read_text())
    displays = {display['Name']: display
                for display in layout['Visualization Manager']['Displays']}
    for name, topic in topics.items():
        if name not in displays:
            raise KeyError(f'{template} has no display named {name!r}')
        displays[name]['Topic']['Value'] = topic
    return atomic_write_text(output, yaml.safe_dump(layout, sort_keys=False))
