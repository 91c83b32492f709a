"""policy_stack core: never imports rclpy, robosuite, MuJoCo or pyrealsense2; heavy optional libraries
(ONNX Runtime, PyAV, matplotlib, TensorBoard, h5py) are imported lazily, where they are used."""
__version__ = "0.1.0"


def load_policy(path=None, device: str = "auto"):
    """Load a policy checkpoint folder (default: the shipped Lift low-dim diffusion policy).

    Imported lazily so that `import policy_stack` stays cheap (no torch until a policy is needed)."""
    from policy_stack.checkpoint import load_policy as _load_policy
    return _load_policy(path, device)


__all__ = ["__version__", "load_policy"]
