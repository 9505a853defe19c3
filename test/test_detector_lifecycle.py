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

"""The detector as a managed node, its compressed transport under a namespace, and model_dir.

Node processes run on real DDS (rclpy + Fast DDS, loopback); the test process drives the
lifecycle through the standard ``lifecycle_msgs`` services, as a lifecycle manager would.
Models are PaDiM fitted by the CLI on synthetic lunar chips (conftest ``padim_model``).
"""
from __future__ import annotations

from pathlib import Path
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
import numpy as np
import pytest
from rcl_interfaces.srv import GetParameters, SetParametersAtomically
from rclpy.parameter import Parameter
import ros_harness
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from test_detector_node import compressed_msg, grey_chips, image_msg, truncated_jpeg

from vad4space_ros.nodes.model_access import allowed_model_path, ModelAccessError
import yaml

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
NODE_ENV = {'OMP_NUM_THREADS': '1'}
COMMAND = ros_harness.node_command('vad4space_detector', 'vad4space_ros.nodes.detector_node')
NODE = '/managed_detector'
OUTPUTS = {'score': PointStamped, 'detection': DiagnosticArray, 'anomaly_map': Image,
           'heatmap': Image, 'camera_info': CameraInfo}


@pytest.fixture
def model_dir(tmp_path: Path, padim_model: Path) -> Path:
    """Return a model folder holding a copy of the PaDiM model and a corrupt model."""
    folder = tmp_path / 'models'
    folder.mkdir()
    (folder / 'padim.safetensors').write_bytes(padim_model.read_bytes())
    (folder / 'broken.safetensors').write_bytes(b'not a model')
    return folder


class Lifecycle:
    """Client of a remote node's ``~/change_state`` and ``~/get_state`` services."""

    def __init__(self, ros: ros_harness.RosTestNode, node: str,
                 process: ros_harness.NodeProcess) -> None:
        """Talk to ``node`` from ``ros``; fail early if ``process`` exits."""
        self.ros, self.node, self.process = ros, node, process

    def state(self) -> str:
        """Return the label of the node's current state."""
        response = self.ros.call_service(GetState, f'{self.node}/get_state', GetState.Request(),
                                         timeout=60.0, process=self.process)
        return response.current_state.label

    def change(self, transition: int) -> bool:
        """Request a transition; return whether it succeeded."""
        request = ChangeState.Request(transition=Transition(id=transition))
        response = self.ros.call_service(ChangeState, f'{self.node}/change_state', request,
                                         timeout=60.0, process=self.process)
        return response.success


def test_transitions_over_dds_bad_model_inactive_silence_and_active_scoring(
        model_dir: Path, lunar_chips: Path) -> None:
    chip = grey_chips(lunar_chips, 'none', 1)[0]
    parameters = {'autostart': False, 'model_path': str(model_dir / 'broken.safetensors'),
                  'model_dir': str(model_dir), 'diagnostics_period': 0.3,
                  'qos_overrides./camera/image.subscription.reliability': 'reliable'}
    with ros_harness.run_node(COMMAND, parameters, name='managed_detector',
                              remappings={'image': '/camera/image',
                                          'camera_info': '/camera/camera_info'},
                              env=NODE_ENV) as process, ros_harness.RosTestNode() as ros:
        lifecycle = Lifecycle(ros, NODE, process)
        outputs = {name: ros.collect(msg_type, f'{NODE}/{name}')
                   for name, msg_type in OUTPUTS.items()}
        diagnostics = ros.collect(DiagnosticArray, '/diagnostics')
        image_pub = ros.node.create_publisher(Image, '/camera/image', 10)
        camera_pub = ros.node.create_publisher(CameraInfo, '/camera/camera_info', 10)
        frame = image_msg(chip, 'mono8', Header(frame_id='frame'))
        camera_info = CameraInfo(height=chip.shape[0], width=chip.shape[1])

        def silent_while_publishing(seconds: float) -> None:
            """Publish frames and camera info for ``seconds``; assert nothing came back."""
            for collector in (*outputs.values(), diagnostics):
                collector.clear()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                image_pub.publish(frame)
                camera_pub.publish(camera_info)
                ros.spin_for(0.2)
            assert image_pub.get_subscription_count() == 0
            assert {name: len(c.messages) for name, c in outputs.items()} == dict.fromkeys(
                OUTPUTS, 0)
            assert not [m for m in diagnostics.messages
                        if m.status and m.status[0].name.startswith('managed_detector')]

        assert lifecycle.state() == 'unconfigured'
        # A corrupt model: configure fails, the node stays alive and unconfigured.
        assert not lifecycle.change(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == 'unconfigured'
        process.assert_alive()
        log = process.log()
        assert 'cannot configure' in log and 'cannot load model' in log
        assert str(model_dir / 'broken.safetensors') in log and 'Traceback' not in log
        results = ros.set_parameters(NODE, {'model_path': str(model_dir / 'padim.safetensors')},
                                     process=process)
        assert results[0].successful, results[0].reason

        assert lifecycle.change(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == 'inactive'
        # The publishers exist (matched) but stay silent while inactive; no input subscription.
        ros.wait_for_publishers(outputs['score'].subscription, process=process)
        silent_while_publishing(2.0)

        assert lifecycle.change(Transition.TRANSITION_ACTIVATE)
        assert lifecycle.state() == 'active'
        ros.publish_until_answered(image_pub, frame, [outputs['score'], outputs['heatmap']],
                                   timeout=60.0, process=process)
        assert outputs['score'].messages[0].header.frame_id == 'frame'
        assert np.isfinite(outputs['score'].messages[0].point.x)

        assert lifecycle.change(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.state() == 'inactive'
        ros.spin_until(lambda: image_pub.get_subscription_count() == 0, 10.0, process,
                       what='the image subscription to go away')
        silent_while_publishing(2.0)

        # Re-activation works, then cleanup and shutdown end the executable cleanly.
        assert lifecycle.change(Transition.TRANSITION_ACTIVATE)
        ros.publish_until_answered(image_pub, frame, [outputs['score']], timeout=60.0,
                                   process=process)
        assert lifecycle.change(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.change(Transition.TRANSITION_CLEANUP)
        assert lifecycle.state() == 'unconfigured'
        assert lifecycle.change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert process.wait(timeout=30) == 0, process.log()
        assert 'finalized' in process.log()


def test_run_time_model_path_is_limited_to_model_dir(model_dir: Path, padim_model: Path,
                                                     tmp_path: Path) -> None:
    outside = tmp_path / 'outside.safetensors'
    outside.write_bytes(padim_model.read_bytes())
    (model_dir / 'link_out.safetensors').symlink_to(outside)
    (model_dir / 'sub').mkdir()
    (model_dir / 'sub' / 'link_in.safetensors').symlink_to(model_dir / 'padim.safetensors')
    refusals = {
        str(outside): 'outside model_dir',
        str(model_dir / '..' / 'outside.safetensors'): 'contains ".."',
        str(model_dir / 'sub' / '..' / 'padim.safetensors'): 'contains ".."',
        str(model_dir / 'link_out.safetensors'): 'outside model_dir',
        str(model_dir / 'absent.safetensors'): 'is not a file',
        str(model_dir / 'sub'): 'is not a file',
    }
    for requested, reason in refusals.items():
        with pytest.raises(ModelAccessError, match=reason):
            allowed_model_path(str(model_dir), requested)
    with pytest.raises(ModelAccessError, match='model_dir is empty'):
        allowed_model_path('', str(model_dir / 'padim.safetensors'))
    assert allowed_model_path(str(model_dir), str(model_dir / 'sub' / 'link_in.safetensors')) \
        == (model_dir / 'padim.safetensors').resolve()

    # Over DDS: refused with the reason, the node keeps the model it has.
    command_parameters = {'model_path': str(padim_model), 'model_dir': str(model_dir)}
    with ros_harness.run_node(COMMAND, command_parameters, name='guarded_detector',
                              env=NODE_ENV) as process, ros_harness.RosTestNode() as ros:
        node = '/guarded_detector'
        for requested, reason in list(refusals.items())[:4]:
            result = ros.set_parameters(node, {'model_path': requested}, timeout=60.0,
                                        process=process)[0]
            assert not result.successful and reason in result.reason, (requested, result)
        # set_parameters_atomically: a refused model_path also keeps the threshold unchanged.
        request = SetParametersAtomically.Request(parameters=[
            Parameter('threshold', value=0.01).to_parameter_msg(),
            Parameter('model_path', value=str(outside)).to_parameter_msg()])
        result = ros.call_service(SetParametersAtomically, f'{node}/set_parameters_atomically',
                                  request, process=process).result
        assert not result.successful and 'outside model_dir' in result.reason
        threshold = ros.call_service(GetParameters, f'{node}/get_parameters',
                                     GetParameters.Request(names=['threshold']),
                                     process=process).values[0].double_value
        assert threshold == 0.5
        link_in = model_dir / 'sub' / 'link_in.safetensors'
        accepted = ros.set_parameters(node, {'model_path': str(link_in)}, process=process)[0]
        assert accepted.successful, accepted.reason
        ros.spin_until(lambda: f'loaded from {link_in}' in process.log(), 10.0, process,
                       what='the model switch in the log')
    unguarded = {'model_path': str(padim_model)}  # no model_dir: every change is refused
    with ros_harness.run_node(COMMAND, unguarded, name='unguarded_detector',
                              env=NODE_ENV) as process, ros_harness.RosTestNode() as ros:
        result = ros.set_parameters('/unguarded_detector',
                                    {'model_path': str(model_dir / 'padim.safetensors')},
                                    timeout=60.0, process=process)[0]
        assert not result.successful and 'model_dir is empty' in result.reason


def test_namespaced_node_loads_rover_yaml_and_scores_the_compressed_transport(
        padim_model: Path, lunar_chips: Path) -> None:
    from vad4space_ros.deploy.loading import load_model

    rover = yaml.safe_load((PACKAGE_ROOT / 'config' / 'rover.yaml').read_text())
    expected = rover['/**/vad4space_detector']['ros__parameters']
    assert expected['transport'] == 'compressed'
    node = '/rover1/vad4space_detector'
    parameters = {'model_path': str(padim_model),
                  'qos_overrides./rover1/image/compressed.subscription.reliability': 'reliable'}
    with ros_harness.run_node(COMMAND, parameters, remappings={'__ns': '/rover1'},
                              params_file=PACKAGE_ROOT / 'config' / 'rover.yaml',
                              env=NODE_ENV) as process, ros_harness.RosTestNode() as ros:
        names = sorted(expected)
        values = ros.call_service(GetParameters, f'{node}/get_parameters',
                                  GetParameters.Request(names=names), timeout=60.0,
                                  process=process).values
        loaded = dict(zip(names, values))
        assert loaded['transport'].string_value == 'compressed'
        assert loaded['heatmap_alpha'].double_value == expected['heatmap_alpha'] == 0.45
        assert loaded['sixteen_bit_max'].integer_value == expected['sixteen_bit_max'] == 4095
        assert loaded['queue_size'].integer_value == expected['queue_size']

        # Relative topics resolve in the namespace; only image/compressed is subscribed.
        scores = ros.collect(PointStamped, f'{node}/score')
        camera_infos = ros.collect(CameraInfo, f'{node}/camera_info')
        compressed_pub = ros.node.create_publisher(CompressedImage, '/rover1/image/compressed',
                                                   10)
        raw_pub = ros.node.create_publisher(Image, '/rover1/image', 10)
        camera_pub = ros.node.create_publisher(CameraInfo, '/rover1/camera_info', 10)
        chip = grey_chips(lunar_chips, 'none', 1)[0]
        rgb = np.repeat(chip[:, :, None], 3, axis=2)
        ros.publish_until_answered(compressed_pub, compressed_msg(rgb, '.png', Header()),
                                   [scores], timeout=120.0, process=process)
        ros.wait_for_subscribers(camera_pub, process=process)
        assert raw_pub.get_subscription_count() == 0
        camera_pub.publish(CameraInfo(height=chip.shape[0], width=chip.shape[1]))
        ros.spin_for(0.5)

        offline = load_model(padim_model).predict(rgb)
        answers = {}
        for label, extension in (('png', '.png'), ('jpeg', '.jpg')):
            compressed_pub.publish(compressed_msg(rgb, extension, Header(frame_id=label)))
            ros.spin_until(lambda: any(m.header.frame_id == label for m in scores.messages),
                           30.0, process, what=f'the {label} score')
            answers[label] = next(m for m in scores.messages if m.header.frame_id == label)
        assert answers['png'].point.x == pytest.approx(offline.score, rel=1e-4, abs=1e-5)
        assert answers['jpeg'].point.x == pytest.approx(offline.score, abs=0.5)
        assert any(m.header.frame_id in answers for m in camera_infos.messages)

        # queue_size 1 (rover.yaml) keeps only the newest frame: let the corrupt one be
        # rejected before the next frame can replace it in the queue
        compressed_pub.publish(truncated_jpeg(Header(frame_id='corrupt')))
        ros.spin_until(lambda: 'rejected frame' in process.log(), 30.0, process,
                       what='the corrupt frame rejected')
        compressed_pub.publish(compressed_msg(rgb, '.png', Header(frame_id='after')))
        ros.spin_until(lambda: any(m.header.frame_id == 'after' for m in scores.messages),
                       30.0, process, what='a score after the corrupt frame')
        assert 'rejected frame' in process.log()
