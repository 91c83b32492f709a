"""The one error type a camera user must act on (no device, serial not found, recording missing,
unsupported profile). A ValueError, so the node's process main and the CLI print it as one line."""


class CameraError(ValueError):
    pass
