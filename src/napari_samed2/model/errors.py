"""Exceptions of the model layer; each message names the bad value and what is accepted.

Each class also derives from the built-in that describes it, so callers that catch the
built-ins catch ours: bad values and file contents are `ValueError`, a missing file is
`FileNotFoundError`, a failed download is `OSError`, a missing device is `RuntimeError`.
"""


class ModelError(Exception):
    """Base class for model-layer errors."""


class ModelConfigError(ModelError, ValueError):
    """A network configuration that sam2 cannot build."""


class UnknownModelError(ModelError, KeyError, ValueError):
    """A model name that is neither in the registry nor an existing file.

    Also a `KeyError` (what a registry lookup raised before), and a `ValueError`: the name is
    a bad value.
    """

    def __str__(self) -> str:
        # KeyError's str() is the repr of its message; the sentence reads better.
        return str(self.args[0]) if self.args else ""


class CheckpointError(ModelError, ValueError):
    """A checkpoint file that cannot be used (its contents are not what is needed)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that does not exist or is not a file."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose keys or shapes do not fit the network."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that would run code when read, or whose network config is refused.

    Raised for pickles that reference code and for network configs (from a file or given
    directly) that name a class outside the allow-list, use hydra's special keys or
    interpolations, or ask for sizes beyond the limits (`safe_config`).
    """


class DownloadError(ModelError, OSError):
    """A download that failed (offline, server error, wrong size or checksum).

    An `OSError`: like a failed read, it is a problem of the machine's files and network
    (never of the caller's arguments), and ``except OSError`` is what callers write around
    I/O. Not a `ConnectionError`, since a wrong checksum or a missing manual download is not
    a connection failure.
    """


class DeviceUnavailableError(ModelError, RuntimeError):
    """A device asked for by name that this machine does not have."""


class InvalidDeviceError(DeviceUnavailableError, ValueError):
    """A device value that is not a device name at all (e.g. ``"gpu0"``, ``"banana"``).

    A `ValueError` (the value is wrong), and a `DeviceUnavailableError` as before.
    """


class UnsupportedPrecisionError(ModelError, ValueError):
    """A ``precision`` value other than the supported ones."""
