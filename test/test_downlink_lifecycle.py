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

"""The downlink as a managed node: transitions driven over DDS through lifecycle_msgs services."""
from __future__ import annotations

from pathlib import Path
import sqlite3

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import GetParameters
import ros_harness
from test_downlink_core import basis, record
from test_downlink_node import detection_msg, LATCHED, NODE, parameters, RELIABLE

from vad4space_ros.downlink.store import DownlinkStore
import yaml

COMMAND = ros_harness.node_command('vad4space_downlink', 'vad4space_ros.nodes.downlink_node')
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def change(ros: ros_harness.RosTestNode, transition: int, process) -> bool:
    """Request a transition; return whether it succeeded."""
    request = ChangeState.Request()
    request.transition.id = transition
    return ros.call_service(ChangeState, f'{NODE}/change_state', request, 20.0, process).success


def state(ros: ros_harness.RosTestNode, process) -> str:
    """Return the node's current state label."""
    return ros.call_service(GetState, f'{NODE}/get_state', GetState.Request(), 20.0,
                            process).current_state.label


def stored(database: Path) -> int:
    """Return the number of items in the database."""
    with sqlite3.connect(f'file:{database}?mode=ro', uri=True) as connection:
        return connection.execute('SELECT count(*) FROM items').fetchone()[0]


def test_transitions_open_the_database_gate_intake_and_release_it(tmp_path: Path) -> None:
    database = tmp_path / 'queue.db'
    with ros_harness.run_node(COMMAND, parameters(database, autostart=False),
                              remappings={'detection': '/detection'}) as node, \
            ros_harness.RosTestNode() as ros:
        queue = ros.collect(DiagnosticArray, f'{NODE}/queue', LATCHED)
        detections = ros.node.create_publisher(DiagnosticArray, '/detection', RELIABLE)
        assert state(ros, node) == 'unconfigured'
        assert not database.exists()  # nothing opened before configure
        assert change(ros, Transition.TRANSITION_CONFIGURE, node)
        assert state(ros, node) == 'inactive' and database.exists()
        detections.publish(detection_msg(record(1, 0.9, basis(1))))
        ros.spin_for(1.5)
        assert stored(database) == 0 and not queue.messages  # inactive: no intake, no output
        assert change(ros, Transition.TRANSITION_ACTIVATE, node)
        ros.wait_for_subscribers(detections, process=node)
        ros.publish_until_answered(detections, detection_msg(record(2, 0.8, basis(2))), [queue],
                                   process=node)
        ros.spin_until(lambda: stored(database) == 1, 10.0, node, what='one accepted item')
        assert change(ros, Transition.TRANSITION_DEACTIVATE, node)
        detections.publish(detection_msg(record(3, 0.7, basis(3))))
        ros.spin_for(1.5)
        assert stored(database) == 1
        assert change(ros, Transition.TRANSITION_CLEANUP, node)
        DownlinkStore.connect(database).close()  # the writer lock was released
        assert change(ros, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN, node)
        assert node.wait(timeout=20) == 0


def test_a_bad_database_at_configure_leaves_the_node_alive_and_unconfigured(
        tmp_path: Path) -> None:
    database = tmp_path / 'queue.db'
    database.write_bytes(b'not a database' * 500)
    with ros_harness.run_node(COMMAND, parameters(database, autostart=False)) as node, \
            ros_harness.RosTestNode() as ros:
        assert not change(ros, Transition.TRANSITION_CONFIGURE, node)
        assert state(ros, node) == 'unconfigured'
        node.assert_alive()
        assert 'cannot configure' in node.log() and str(database) in node.log()
    assert database.read_bytes() == b'not a database' * 500


def test_namespaced_downlink_loads_its_yaml_and_connects(tmp_path: Path) -> None:
    """Under /rover1 the /**/ key of config/downlink.yaml applies and relative topics resolve."""
    config = yaml.safe_load((PACKAGE_ROOT / 'config' / 'downlink.yaml').read_text())
    config['/**/vad4space_downlink']['ros__parameters']['jpeg_quality'] = 77  # not the default
    params_file = tmp_path / 'downlink.yaml'
    params_file.write_text(yaml.safe_dump(config))
    database = tmp_path / 'queue.db'
    node = '/rover1/vad4space_downlink'
    with ros_harness.run_node(COMMAND, parameters(database), remappings={'__ns': '/rover1'},
                              params_file=params_file) as process, \
            ros_harness.RosTestNode() as ros:
        values = ros.call_service(GetParameters, f'{node}/get_parameters',
                                  GetParameters.Request(names=['jpeg_quality', 'database']),
                                  timeout=60.0, process=process).values
        assert values[0].integer_value == 77 and values[1].string_value == str(database)
        queue = ros.collect(DiagnosticArray, f'{node}/queue', LATCHED)
        detections = ros.node.create_publisher(DiagnosticArray, '/rover1/detection', RELIABLE)
        ros.publish_until_answered(detections, detection_msg(record(1, 0.9, basis(1))), [queue],
                                   process=process)
        ros.spin_until(lambda: stored(database) == 1, 10.0, process, what='one accepted item')
