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

r"""Launch the VAD4Space detector on an orbiter camera (LROC NAC-like, Moon).

Includes detector.launch.py (its lifecycle, downlink and rviz arguments apply too) with
config/orbiter.yaml. Example::

    ros2 launch vad4space_ros orbiter.launch.py model_path:=/models/lroc_padim.onnx \
        image_topic:=lroc/nac_left/image_raw rviz:=true

With ``strips:=true`` the camera delivers each long image as strips of rows (push-broom; the
row offset in the paired camera info's ``roi.y_offset``, docs/full_frames.md) and
``vad4space_strip_detector`` scores them as whole images instead::

    ros2 launch vad4space_ros orbiter.launch.py model_path:=/models/lroc_padim.onnx \
        strips:=true image_topic:=lroc/nac_left/strips camera_info_topic:=lroc/nac_left/info
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'vad4space_ros'


def generate_launch_description() -> LaunchDescription:
    """Return the orbiter detector (frames or strips) with config/orbiter.yaml."""
    share = FindPackageShare(PACKAGE)
    strips = LaunchConfiguration('strips')
    return LaunchDescription([
        DeclareLaunchArgument(
            'image_topic', default_value='lroc/image_raw',
            description='sensor_msgs/Image topic of the orbital camera (relative to namespace).'),
        DeclareLaunchArgument(
            'model_path', description='Model file written by `vad4space fit` (.onnx, ...).'),
        DeclareLaunchArgument(
            'config', default_value=PathJoinSubstitution([share, 'config', 'orbiter.yaml']),
            description='Parameter file (ros__parameters) of the detector.'),
        DeclareLaunchArgument(
            'camera_info_topic', default_value='lroc/camera_info',
            description='sensor_msgs/CameraInfo of the camera (relative to namespace).'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of every node (e.g. lro); topics resolve inside it.'),
        DeclareLaunchArgument(
            'strips', default_value='false',
            description='true: images arrive as push-broom strips; start '
                        'vad4space_strip_detector instead of vad4space_detector.'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                PathJoinSubstitution([share, 'launch', 'detector.launch.py'])),
            launch_arguments={name: LaunchConfiguration(name) for name in
                              ('image_topic', 'camera_info_topic', 'model_path', 'config',
                               'namespace')}.items(),
            condition=UnlessCondition(strips)),
        Node(
            package=PACKAGE, executable='vad4space_strip_detector',
            name='vad4space_strip_detector', namespace=LaunchConfiguration('namespace'),
            parameters=[LaunchConfiguration('config'),
                        {'model_path': LaunchConfiguration('model_path')}],
            remappings=[('image', LaunchConfiguration('image_topic')),
                        ('camera_info', LaunchConfiguration('camera_info_topic'))],
            output='screen', emulate_tty=True, condition=IfCondition(strips)),
    ])
