"""policy_stack core: never imports rclpy, robosuite, MuJoCo or pyrealsense2; heavy optional libraries
(ONNX Runtime, PyAV, matplotlib, TensorBoard, h5py) are imported lazily, where they are used.

`policy_stack.load_policy(path=None, device="auto")` is policy_stack.checkpoint.load_policy, resolved
on first use so that `import policy_stack` stays cheap (no torch until a policy is needed)."""
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load_policy":
        from policy_stack.checkpoint import load_policy
        return load_policy
    raise AttributeError(f"module 'policy_stack' has no attribute {name!r}")


__all__ = ["__version__", "load_policy"]
