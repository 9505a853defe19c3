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

r"""Launch the VAD4Space detector (and, on request, the downlink queue and RViz).

Shared by rover.launch.py, orbiter.launch.py and replay.launch.py, which include it with their
own config and image topic; usable on its own for any camera::

    ros2 launch vad4space_ros detector.launch.py model_path:=/models/padim.onnx \
        config:=/path/camera.yaml image_topic:=camera/image_raw namespace:=rover1 rviz:=true

Topic names are relative: with ``namespace:=rover1`` the detector reads
``/rover1/camera/image_raw`` and publishes ``/rover1/vad4space_detector/...``, and RViz opens a
copy of config/vad4space.rviz with exactly these topics.

``lifecycle:=true`` starts the detector (and the downlink) as managed nodes that stay
unconfigured (parameter ``autostart`` false) until a lifecycle manager or
``ros2 lifecycle set /rover1/vad4space_detector configure`` (then ``activate``) moves them on;
by default they configure and activate themselves.
"""
import os
import tempfile

from ament_index_python.packages import get_package_prefix, PackageNotFoundError
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, LogInfo, OpaqueFunction
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from vad4space_ros.nodes.rviz_layout import layout_topics, write_layout

PACKAGE = 'vad4space_ros'
DETECTION_TOPIC = 'vad4space_detector/detection'
HEATMAP_TOPIC = 'vad4space_detector/heatmap'


def _rviz(context, *args, **kwargs) -> list:
    """Start RViz on a copy of config/vad4space.rviz with this launch's topics (if installed)."""
    try:
        get_package_prefix('rviz2')
    except PackageNotFoundError:
        return [LogInfo(msg='rviz:=true but rviz2 is not installed (apt install '
                            'ros-$ROS_DISTRO-rviz2): the nodes run without RViz')]
    namespace = LaunchConfiguration('namespace').perform(context)
    topics = layout_topics(namespace, LaunchConfiguration('image_topic').perform(context))
    template = os.path.join(FindPackageShare(PACKAGE).perform(context), 'config',
                            'vad4space.rviz')
    handle, layout = tempfile.mkstemp(prefix='vad4space_', suffix='.rviz')
    os.close(handle)
    write_layout(template, topics, layout)
    return [Node(package='rviz2', executable='rviz2', name='rviz2', namespace=namespace,
                 arguments=['-d', layout])]


def generate_launch_description() -> LaunchDescription:
    """Return the detector reading ``config`` (plain or managed), the downlink and RViz."""
    share = FindPackageShare(PACKAGE)
    namespace = LaunchConfiguration('namespace')
    lifecycle = LaunchConfiguration('lifecycle')
    image_topic = LaunchConfiguration('image_topic')
    detector_parameters = [LaunchConfiguration('config'),
                           {'model_path': LaunchConfiguration('model_path'),
                            'model_dir': LaunchConfiguration('model_dir')}]
    detector_remappings = [('image', image_topic),
                           ('camera_info', LaunchConfiguration('camera_info_topic'))]
    downlink_remappings = [('detection', DETECTION_TOPIC), ('image', image_topic),
                           ('heatmap', HEATMAP_TOPIC)]
    return LaunchDescription([
        DeclareLaunchArgument(
            'image_topic', default_value='camera/image_raw',
            description='sensor_msgs/Image topic of the camera (relative to namespace).'),
        DeclareLaunchArgument(
            'camera_info_topic', default_value='camera/camera_info',
            description='sensor_msgs/CameraInfo of the camera (relative to namespace); passed '
                        'through on ~/camera_info with every map and heatmap.'),
        DeclareLaunchArgument(
            'model_path', description='Model file written by `vad4space fit` (.onnx, ...).'),
        DeclareLaunchArgument(
            'model_dir', default_value='',
            description='Folder that run-time model_path changes must stay in (empty: no '
                        'run-time model changes).'),
        DeclareLaunchArgument(
            'config',
            description='Parameter file with a /**/vad4space_detector ros__parameters section.'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of every node (e.g. rover1); topics resolve inside it.'),
        DeclareLaunchArgument(
            'lifecycle', default_value='false',
            description='true: start managed nodes that wait for configure/activate '
                        '(autostart false); false: they configure and activate themselves.'),
        DeclareLaunchArgument(
            'downlink', default_value='false',
            description='Also start the prioritized downlink queue on the detections.'),
        DeclareLaunchArgument(
            'downlink_config',
            default_value=PathJoinSubstitution([share, 'config', 'downlink.yaml']),
            description='Parameter file of the downlink queue.'),
        DeclareLaunchArgument(
            'rviz', default_value='false',
            description='Also start RViz with input, heatmap and anomaly map side by side.'),
        Node(
            package=PACKAGE, executable='vad4space_detector', name='vad4space_detector',
            namespace=namespace, parameters=detector_parameters,
            remappings=detector_remappings, output='screen', emulate_tty=True,
            condition=UnlessCondition(lifecycle)),
        LifecycleNode(
            package=PACKAGE, executable='vad4space_detector', name='vad4space_detector',
            namespace=namespace, parameters=detector_parameters + [{'autostart': False}],
            remappings=detector_remappings, output='screen', emulate_tty=True,
            condition=IfCondition(lifecycle)),
        GroupAction(condition=IfCondition(LaunchConfiguration('downlink')), actions=[
            Node(
                package=PACKAGE, executable='vad4space_downlink', name='vad4space_downlink',
                namespace=namespace, parameters=[LaunchConfiguration('downlink_config')],
                remappings=downlink_remappings, output='screen', emulate_tty=True,
                condition=UnlessCondition(lifecycle)),
            LifecycleNode(
                package=PACKAGE, executable='vad4space_downlink', name='vad4space_downlink',
                namespace=namespace,
                parameters=[LaunchConfiguration('downlink_config'), {'autostart': False}],
                remappings=downlink_remappings, output='screen', emulate_tty=True,
                condition=IfCondition(lifecycle)),
        ]),
        OpaqueFunction(function=_rviz, condition=IfCondition(LaunchConfiguration('rviz'))),
    ])
