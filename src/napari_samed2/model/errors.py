"""Exceptions of the model layer; each message names the bad value and what is accepted."""


class ModelError(Exception):
    """Base class for model-layer errors."""


class ModelConfigError(ModelError, ValueError):
    """A network configuration that sam2 cannot build."""


class CheckpointError(ModelError):
    """A checkpoint file that cannot be used."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose keys or shapes do not fit the network."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that would run code when unpickled."""


class DownloadError(ModelError):
    """A download that failed (offline, server error, wrong size or checksum)."""


class DeviceUnavailableError(ModelError, RuntimeError):
    """A device asked for by name that this machine does not have."""


class InvalidDeviceError(DeviceUnavailableError, ValueError):
    """A device value that is not a device name at all (e.g. ``"gpu0"``, ``"banana"``).

    A `ValueError` (the value is wrong), and a `DeviceUnavailableError` as before.
    """


class UnsupportedPrecisionError(ModelError, ValueError):
    """A ``precision`` value other than the supported ones."""
