"""`BackgroundNode`: an rclpy node on its own context, spun on a daemon thread.

The base of the clients that watch or poke a running graph from another program: the session probe, the
test client, benchmarks. rclpy is imported when one is made, not when this module is, so a module can
subclass it without pulling ROS into every importer."""
from __future__ import annotations


class BackgroundNode:
    """Subclasses set their own state after super().__init__(); callbacks only come from subscriptions
    made later, so the spin thread may start first."""

    def __init__(self, name: str, thread_name: str = "spin"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from ros_nodes.common import spin_in_background
        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = spin_in_background(self.executor, self.context, thread_name)

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2)
