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

r"""Launch the VAD4Space detector on a rover mast camera (Mastcam-like, Mars).

Includes detector.launch.py (its namespace, lifecycle, downlink and rviz arguments apply
too) with config/rover.yaml. Example::

    ros2 launch vad4space_ros rover.launch.py model_path:=/models/mastcam_padim.onnx \
        image_topic:=mastcam/left/image_raw rviz:=true
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'vad4space_ros'


def generate_launch_description() -> LaunchDescription:
    """Return the rover detector with config/rover.yaml (and RViz on request)."""
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            'image_topic', default_value='mastcam/image_raw',
            description='sensor_msgs/Image topic of the mast camera (relative to namespace).'),
        DeclareLaunchArgument(
            'model_path', description='Model file written by `vad4space fit` (.onnx, ...).'),
        DeclareLaunchArgument(
            'config', default_value=PathJoinSubstitution([share, 'config', 'rover.yaml']),
            description='Parameter file (ros__parameters) of the detector.'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                PathJoinSubstitution([share, 'launch', 'detector.launch.py'])),
            launch_arguments={name: LaunchConfiguration(name) for name in
                              ('image_topic', 'model_path', 'config')}.items()),
    ])
