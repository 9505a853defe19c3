r"""Launch the VAD4Space detector on a rover mast camera (Mastcam-like, Mars).

Example::

    ros2 launch vad4space_ros rover.launch.py model_path:=/models/mastcam_padim.v4s \
        image_topic:=/mastcam/left/image_raw rviz:=true
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'vad4space_ros'


def generate_launch_description() -> LaunchDescription:
    """Return the rover detector with config/rover.yaml (and RViz on request)."""
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            'image_topic', default_value='/mastcam/image_raw',
            description='sensor_msgs/Image topic of the mast camera (its /compressed sibling '
                        'is read too when subscribe_compressed is set).'),
        DeclareLaunchArgument(
            'model_path', description='Model artifact written by `vad4space fit`.'),
        DeclareLaunchArgument(
            'config', default_value=PathJoinSubstitution([share, 'config', 'rover.yaml']),
            description='Parameter file (ros__parameters) of the detector.'),
        DeclareLaunchArgument(
            'rviz', default_value='false',
            description='Also start RViz with input, heatmap and anomaly map side by side.'),
        Node(
            package=PACKAGE, executable='vad4space_detector', name='vad4space_detector',
            parameters=[LaunchConfiguration('config'),
                        {'model_path': LaunchConfiguration('model_path')}],
            remappings=[('image', LaunchConfiguration('image_topic'))],
            output='screen', emulate_tty=True),
        Node(
            package='rviz2', executable='rviz2', name='rviz2',
            arguments=['-d', PathJoinSubstitution([share, 'config', 'vad4space.rviz'])],
            condition=IfCondition(LaunchConfiguration('rviz'))),
    ])
