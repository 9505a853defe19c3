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

"""What the managed (lifecycle) nodes share: autostart, teardown, spinning to the end.

A subclass stops its inputs (subscriptions, timers, worker threads) in ``_stop_input`` and frees
what configure created (model, database, publishers) in ``_release``; this base runs them in the
order each transition needs and logs the new state. With ``autostart`` a node configures and
activates itself from its constructor (:meth:`ManagedNode.autostart`); a configure that fails
(:meth:`ManagedNode.refuse_configure`) then raises :class:`StartupError`.
"""
from __future__ import annotations

from rclpy.executors import Executor, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import (
    LifecycleNode, LifecyclePublisher, LifecycleState, TransitionCallbackReturn)


class StartupError(RuntimeError):
    """``autostart`` could not configure the node (for example a missing or corrupt model)."""


class ManagedNode(LifecycleNode):
    """A lifecycle node with the project's deactivate/cleanup/shutdown/error behaviour."""

    released = 'unconfigured'  # the log line after cleanup; subclasses say what was released
    _configure_error = ''

    def autostart(self, enabled: bool) -> None:
        """Configure and activate now if ``enabled`` (raise StartupError), else wait."""
        if not enabled:
            self.get_logger().info('unconfigured (autostart false): waiting for the configure '
                                   'and activate transitions on ~/change_state')
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().fatal(f'cannot start: {self._configure_error}')
            self.destroy_node()
            raise StartupError(self._configure_error)
        self.trigger_activate()

    def refuse_configure(self, error: Exception) -> TransitionCallbackReturn:
        """Log why configure failed and stay unconfigured."""
        self._configure_error = str(error)
        self.get_logger().error(f'cannot configure: {error} (still unconfigured)')
        return TransitionCallbackReturn.FAILURE

    def destroy_publishers(self) -> None:
        """Destroy every lifecycle publisher (they are created again by configure)."""
        for entity in list(self._managed_entities):
            if isinstance(entity, LifecyclePublisher):
                self.destroy_lifecycle_publisher(entity)

    @property
    def lifecycle_state(self) -> str:
        """Return the label of the current lifecycle state ('unconfigured', 'active', ...)."""
        return self._state_machine.current_state[1]

    def _stop_input(self) -> None:
        """Stop everything that takes input or publishes on its own (idempotent)."""
        raise NotImplementedError

    def _release(self) -> None:
        """Free what configure created (idempotent)."""
        raise NotImplementedError

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the inputs and disable the publishers."""
        self._stop_input()
        self.get_logger().info('inactive: not subscribed, publishing nothing')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release what configure created."""
        self._release()
        self.get_logger().info(self.released)
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from any primary state."""
        self._stop_input()
        self._release()
        self.get_logger().info('finalized')
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything after a transition raised; the node becomes unconfigured."""
        self._stop_input()
        self._release()
        self.get_logger().error(f'a transition from {state.label} raised; now unconfigured')
        return super().on_error(state)


def spin_until_finalized(node: ManagedNode, threads: int = 1) -> None:
    """Spin ``node`` until rclpy shuts down or the node is finalized (shutdown transition)."""
    executor: Executor = (SingleThreadedExecutor(context=node.context) if threads == 1 else
                          MultiThreadedExecutor(num_threads=threads, context=node.context))
    executor.add_node(node)
    try:
        while node.context.ok() and node.lifecycle_state != 'finalized':
            executor.spin_once(timeout_sec=0.5)
        if node.context.ok():
            executor.spin_once(timeout_sec=0.2)  # let the shutdown response go out
    finally:
        executor.remove_node(node)
        executor.shutdown()
