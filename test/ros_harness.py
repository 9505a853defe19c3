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

r"""Shared harness for tests that talk to node processes over real DDS (rclpy + Fast DDS).

Importing this module isolates the test session on the ROS graph before rclpy is initialised:

- ``ROS_DOMAIN_ID`` is derived from the pid (1..100) and claimed with a lock file, so concurrent
  test sessions on this machine never share a domain;
- ``FASTDDS_DEFAULT_PROFILES_FILE`` points at ``config/fastdds_localhost.xml`` (loopback UDP only);
- ``RMW_IMPLEMENTATION`` is ``rmw_fastrtps_cpp``; ``ROS_LOG_DIR`` is a per-session temp folder.

Node processes started with :func:`run_node` inherit that environment; the test process talks to
them through a :class:`RosTestNode`. Typical use::

    import ros_harness
    with ros_harness.run_node(ros_harness.node_command('vad4space_detector'),
                              parameters={'model_path': str(model)}) as node_process, \\
            ros_harness.RosTestNode() as ros:
        publisher = ros.node.create_publisher(Image, '/vad4space_detector/image', 10)
        scores = ros.collect(PointStamped, '/vad4space_detector/score')
        ros.wait_for_subscribers(publisher, timeout=15.0)
        publisher.publish(msg)
        scores.wait_for(1, timeout=10.0, process=node_process)
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
import fcntl
import os
from pathlib import Path
import tempfile
import threading
import time
from typing import Any

# node_command is re-exported for the tests.
from vad4space_ros.nodes.processes import node_command, NodeProcess  # noqa: F401
from vad4space_ros.nodes.processes import package_share, ros_arguments

TEST_DIR = Path(__file__).resolve().parent
FASTDDS_PROFILE = package_share('config', 'fastdds_localhost.xml')
DOMAIN_RANGE = range(1, 101)
DISCOVERY_TIMEOUT = 20.0

_domain_lock_file = None  # kept open for the whole session: the lock marks the domain as taken


def _claim_domain_id() -> int:
    """Lock and return a free domain id, starting from one derived from the pid."""
    global _domain_lock_file
    start = os.getpid() % len(DOMAIN_RANGE)
    lock_dir = Path(tempfile.gettempdir())
    for offset in range(len(DOMAIN_RANGE)):
        domain_id = DOMAIN_RANGE[(start + offset) % len(DOMAIN_RANGE)]
        handle = open(lock_dir / f'vad4space_ros_domain_{domain_id}.lock', 'w')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _domain_lock_file = handle
        return domain_id
    raise RuntimeError(f'every ROS domain id in {DOMAIN_RANGE} is locked by another session')


def configure_ros_environment() -> dict[str, str]:
    """Set (once per process) and return the ROS environment variables of this test session.

    A session that already chose a domain (for instance the parent of an xdist worker or a test
    runner that exported ``VAD4SPACE_TEST_DOMAIN_ID``) keeps it.
    """
    if 'VAD4SPACE_TEST_DOMAIN_ID' not in os.environ:
        os.environ['VAD4SPACE_TEST_DOMAIN_ID'] = str(_claim_domain_id())
    log_dir = Path(tempfile.gettempdir()) / f'vad4space_ros_logs_{os.getpid()}'
    settings = {
        'ROS_DOMAIN_ID': os.environ['VAD4SPACE_TEST_DOMAIN_ID'],
        'FASTDDS_DEFAULT_PROFILES_FILE': str(FASTDDS_PROFILE),
        'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SYSTEM_DEFAULT',  # the XML profile decides
        'ROS_LOG_DIR': os.environ.get('ROS_LOG_DIR', str(log_dir)),
        'RCUTILS_COLORIZED_OUTPUT': '0',
        'PYTHONUNBUFFERED': '1',
    }
    os.environ.update(settings)
    return settings


ROS_ENV = configure_ros_environment()


@contextmanager
def run_node(command: Sequence[str], parameters: dict[str, Any] | None = None,
             remappings: dict[str, str] | None = None,
             params_file: str | os.PathLike | None = None, name: str | None = None,
             log_path: Path | None = None, env: dict[str, str] | None = None,
             log_level: str | None = None) -> Iterator[NodeProcess]:
    """Run a node subprocess for the duration of the block; it is always stopped afterwards.

    If the block raises, the node's log is appended to the exception notes.
    """
    if log_path is None:
        log_dir = Path(ROS_ENV['ROS_LOG_DIR'])
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = Path(tempfile.mkstemp(prefix='node_', suffix='.log', dir=log_dir)[1])
    full_command = list(command) + ros_arguments(
        parameters, remappings, params_file, name, log_level)
    process = NodeProcess(full_command, log_path, env)
    try:
        yield process
    except BaseException as error:
        process.stop()
        error.add_note(f'--- node log ({" ".join(full_command)}) ---\n{process.log()}')
        raise
    finally:
        process.stop()


class MessageCollector:
    """Messages received on one topic, in arrival order, with their arrival times."""

    def __init__(self, ros: 'RosTestNode', msg_type: type, topic: str, qos: Any) -> None:
        """Subscribe ``ros.node`` to ``topic``."""
        self.ros = ros
        self.topic = topic
        self.messages: list[Any] = []
        self.arrival_times: list[float] = []
        self.subscription = ros.node.create_subscription(msg_type, topic, self._receive, qos)

    def _receive(self, message: Any) -> None:
        self.messages.append(message)
        self.arrival_times.append(time.monotonic())

    def wait_for(self, count: int, timeout: float,
                 process: NodeProcess | None = None) -> list[Any]:
        """Spin until at least ``count`` messages arrived; return them or raise AssertionError."""
        self.ros.spin_until(lambda: len(self.messages) >= count, timeout, process,
                            what=f'{count} message(s) on {self.topic}')
        return self.messages

    def wait_for_publishers(self, count: int = 1, timeout: float = DISCOVERY_TIMEOUT,
                            process: NodeProcess | None = None) -> None:
        """Spin until ``count`` publishers have matched this subscription."""
        self.ros.wait_for_publishers(self.subscription, count, timeout, process)

    def clear(self) -> None:
        """Forget what was collected so far."""
        self.messages.clear()
        self.arrival_times.clear()


class RosTestNode:
    """An rclpy context, node and executor in the test process (context manager)."""

    def __init__(self, name: str = 'vad4space_test_client') -> None:
        """Initialise rclpy in a private context (environment set by this module)."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()

    def __enter__(self) -> 'RosTestNode':
        """Return self."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Shut the context down."""
        self.close()

    def close(self) -> None:
        """Destroy the node and shut the context down (idempotent)."""
        if self.context.ok():
            self.executor.shutdown()
            self.node.destroy_node()
            self.context.try_shutdown()

    def spin_once(self, timeout: float = 0.02) -> None:
        """Process pending callbacks for at most ``timeout`` seconds."""
        with self._lock:
            self.executor.spin_once(timeout_sec=timeout)

    def spin_for(self, seconds: float) -> None:
        """Process callbacks for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.spin_once(min(0.02, max(0.0, deadline - time.monotonic())))

    def spin_until(self, condition: Callable[[], bool], timeout: float,
                   process: NodeProcess | None = None, what: str = 'condition') -> None:
        """Spin until ``condition()`` holds; raise AssertionError on timeout or node exit."""
        deadline = time.monotonic() + timeout
        while not condition():
            if process is not None:
                process.assert_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f'timed out after {timeout:.1f} s waiting for {what}')
            self.spin_once()

    def wait_for_subscribers(self, publisher: Any, count: int = 1,
                             timeout: float = DISCOVERY_TIMEOUT,
                             process: NodeProcess | None = None) -> None:
        """Spin until ``publisher`` has matched ``count`` subscriptions."""
        self.spin_until(lambda: publisher.get_subscription_count() >= count, timeout, process,
                        what=f'{count} subscriber(s) on {publisher.topic_name}')

    def wait_for_publishers(self, subscription: Any, count: int = 1,
                            timeout: float = DISCOVERY_TIMEOUT,
                            process: NodeProcess | None = None) -> None:
        """Spin until ``subscription`` has matched ``count`` publishers."""
        self.spin_until(lambda: subscription.get_publisher_count() >= count, timeout, process,
                        what=f'{count} publisher(s) on {subscription.topic_name}')

    def wait_for_node(self, node_name: str, timeout: float = DISCOVERY_TIMEOUT,
                      process: NodeProcess | None = None) -> None:
        """Spin until a node called ``node_name`` (no namespace) is visible in the graph."""
        self.spin_until(lambda: node_name in self.node.get_node_names(), timeout, process,
                        what=f'node {node_name}')

    def publish_until_answered(self, publisher: Any, message: Any,
                               collectors: Sequence[MessageCollector],
                               timeout: float = DISCOVERY_TIMEOUT, period: float = 0.5,
                               process: NodeProcess | None = None) -> int:
        """Publish ``message`` every ``period`` s until each collector got a message.

        Discovery is asymmetric: a publisher may count a subscription as matched before the
        remote reader has matched it back, so the first messages can be lost. Use this as a
        handshake before the real test traffic; return how many times it published.
        """
        self.wait_for_subscribers(publisher, timeout=timeout, process=process)
        deadline = time.monotonic() + timeout
        published = 0
        while not all(collector.messages for collector in collectors):
            if time.monotonic() > deadline:
                silent = [c.topic for c in collectors if not c.messages]
                raise AssertionError(f'no answer on {silent} after {published} message(s) '
                                     f'on {publisher.topic_name}')
            publisher.publish(message)
            published += 1
            end = min(time.monotonic() + period, deadline)
            while time.monotonic() < end and not all(c.messages for c in collectors):
                if process is not None:
                    process.assert_alive()
                self.spin_once()
        return published

    def collect(self, msg_type: type, topic: str, qos: Any = 10) -> MessageCollector:
        """Subscribe to ``topic`` and return the collector that stores its messages."""
        return MessageCollector(self, msg_type, topic, qos)

    def call_service(self, srv_type: type, name: str, request: Any, timeout: float = 10.0,
                     process: NodeProcess | None = None) -> Any:
        """Call a service once it is available and return the response."""
        client = self.node.create_client(srv_type, name)
        try:
            self.spin_until(client.service_is_ready, timeout, process, what=f'service {name}')
            future = client.call_async(request)
            self.spin_until(future.done, timeout, process, what=f'response from {name}')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node_name: str, values: dict[str, Any], timeout: float = 10.0,
                       process: NodeProcess | None = None) -> list[Any]:
        """Set parameters on a remote node; return the SetParametersResult list."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request()
        request.parameters = [Parameter(key, value=value).to_parameter_msg()
                              for key, value in values.items()]
        response = self.call_service(SetParameters, f'{node_name}/set_parameters', request,
                                     timeout, process)
        return list(response.results)
