r"""Launch the VAD4Space detector (and RViz on request) with a given parameter file.

Shared by rover.launch.py, orbiter.launch.py and replay.launch.py, which include it with their
own config and image topic; usable on its own for any camera::

    ros2 launch vad4space_ros detector.launch.py model_path:=/models/padim.v4s \
        config:=/path/camera.yaml image_topic:=/camera/image_raw rviz:=true
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'vad4space_ros'


def generate_launch_description() -> LaunchDescription:
    """Return the detector reading ``config`` (and RViz on request)."""
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/image_raw',
            description='sensor_msgs/Image topic of the camera (its /compressed sibling '
                        'is read too when subscribe_compressed is set).'),
        DeclareLaunchArgument(
            'model_path', description='Model artifact written by `vad4space fit`.'),
        DeclareLaunchArgument(
            'config',
            description='Parameter file with a vad4space_detector ros__parameters section.'),
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
