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

r"""Evaluate a model on a benchmark bag: replay -> detector -> evaluator, lossless.

The replay waits for each frame's detection before sending the next (closed loop, see
``vad4space_replay``), the evaluator matches detections with the bag's labels by header stamp
and writes the metrics JSON; the launch ends when the evaluator exits. The detector comes from
detector.launch.py (so ``rviz:=true`` shows it at work, ``lifecycle:=true`` makes it wait for
configure/activate, and ``namespace:=...`` puts all three nodes in one namespace).

Example::

    vad4space bag make lroc --setting 1 --root data/lroc --out lroc_s1
    ros2 launch vad4space_ros replay.launch.py bag:=lroc_s1 \
        model_path:=/models/lroc_padim.onnx output:=lroc_s1_metrics.json
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'vad4space_ros'
DETECTION_TOPIC = 'vad4space_detector/detection'
REPLAY_STATUS_TOPIC = 'vad4space_replay/status'


def generate_launch_description() -> LaunchDescription:
    """Return replay, detector and evaluator sharing config/replay.yaml."""
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            'bag', description='rosbag2 folder written by `vad4space bag make`.'),
        DeclareLaunchArgument(
            'model_path', description='Model file written by `vad4space fit` (.onnx, ...).'),
        DeclareLaunchArgument(
            'output', description='Metrics JSON file the evaluator writes.'),
        DeclareLaunchArgument(
            'rate', default_value='0.0',
            description='Images per second; 0 = as fast as the detector answers.'),
        DeclareLaunchArgument(
            'image_topic', default_value='camera/image_raw',
            description='Topic the frames are replayed on and the detector reads (relative).'),
        DeclareLaunchArgument(
            'label_topic', default_value='camera/label',
            description='Topic the ground-truth labels are replayed on (relative).'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the three nodes; topics resolve inside it.'),
        DeclareLaunchArgument(
            'config', default_value=PathJoinSubstitution([share, 'config', 'replay.yaml']),
            description='Parameter file with sections for the three nodes.'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                PathJoinSubstitution([share, 'launch', 'detector.launch.py'])),
            launch_arguments={name: LaunchConfiguration(name) for name in
                              ('image_topic', 'model_path', 'config', 'namespace')}.items()),
        Node(
            package=PACKAGE, executable='vad4space_evaluator', name='vad4space_evaluator',
            namespace=LaunchConfiguration('namespace'),
            parameters=[LaunchConfiguration('config'),
                        {'output': LaunchConfiguration('output')}],
            remappings=[('detection', DETECTION_TOPIC),
                        ('label', LaunchConfiguration('label_topic')),
                        ('replay_status', REPLAY_STATUS_TOPIC)],
            output='screen', emulate_tty=True, on_exit=Shutdown()),
        Node(
            package=PACKAGE, executable='vad4space_replay', name='vad4space_replay',
            namespace=LaunchConfiguration('namespace'),
            parameters=[LaunchConfiguration('config'), {
                'bag': LaunchConfiguration('bag'),
                'rate_hz': ParameterValue(LaunchConfiguration('rate'), value_type=float)}],
            remappings=[('image', LaunchConfiguration('image_topic')),
                        ('label', LaunchConfiguration('label_topic'))],
            output='screen', emulate_tty=True),
    ])
