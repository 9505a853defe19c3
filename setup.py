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

"""ament_python package set-up for vad4space_ros."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'vad4space_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml', 'LICENSE']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config',
         glob('config/*.yaml') + glob('config/*.rviz') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='vad4space maintainers',
    maintainer_email='vad4space@example.com',
    description='Visual anomaly detection for planetary imagery on ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'vad4space = vad4space_ros.cli:main',
            'vad4space_detector = vad4space_ros.nodes.detector_node:main',
            'vad4space_strip_detector = vad4space_ros.nodes.strip_detector_node:main',
            'vad4space_replay = vad4space_ros.nodes.replay_node:main',
            'vad4space_evaluator = vad4space_ros.nodes.evaluator_node:main',
            'vad4space_downlink = vad4space_ros.nodes.downlink_node:main',
            'vad4space_ground = vad4space_ros.nodes.ground_node:main',
        ],
    },
)
