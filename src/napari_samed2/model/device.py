"""Device and dtype policy: one place decides where a network runs and in what precision."""

from __future__ import annotations

import contextlib

import torch

from .errors import DeviceUnavailableError, InvalidDeviceError, UnsupportedPrecisionError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
# None: the device's default; "auto": bf16 where it is measured faster on this machine and keeps
# the masks, else fp32 (measured once per machine and architecture, `model.precision`)
PRECISION_CHOICES = (None, "auto", "fp32", "bf16")
# bf16 autocast on CUDA; on CPUs measured: about 2x faster with bf16 units (AVX-512 BF16, AMX),
# several times slower without; fp32 on MPS
DEFAULT_PRECISION = {"cuda": "bf16", "cpu": "auto", "mps": "fp32"}


def available_devices() -> list[str]:
    """Devices usable on this machine, best first (always ends with ``"cpu"``)."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Turn ``None``/``"auto"``/a name into a device that exists here.

    ``None`` and ``"auto"`` pick cuda, then mps, then cpu. A device asked for by name that is
    not available raises `DeviceUnavailableError`; there is no silent fallback.

    Raises
    ------
    InvalidDeviceError
        ``device`` is not a device name (also a `ValueError`).
    DeviceUnavailableError
        A real device this machine does not have.
    """
    if device is None or device == "auto":
        return torch.device(available_devices()[0])
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise InvalidDeviceError(
            f"device {device!r} is not a device name; expected one of {DEVICE_CHOICES} "
            "(or cuda:N for the N-th GPU)"
        ) from error
    if wanted.type not in DEVICE_CHOICES:
        raise InvalidDeviceError(
            f"device {device!r} is not supported; expected one of {DEVICE_CHOICES} "
            "(or cuda:N for the N-th GPU)"
        )
    if wanted.type not in available_devices():
        raise DeviceUnavailableError(
            f"device {device!r} is not available on this machine; available: {available_devices()}"
        )
    if wanted.type == "cuda" and wanted.index is not None:
        if wanted.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return wanted


def check_precision(precision: object) -> None:
    """Raise `UnsupportedPrecisionError` (a `ValueError`) unless ``precision`` is supported."""
    if not isinstance(precision, (str, type(None))) or precision not in PRECISION_CHOICES:
        raise UnsupportedPrecisionError(
            f"precision {precision!r} is not supported; expected one of {PRECISION_CHOICES} "
            "(None: bf16 on CUDA, auto on CPU, fp32 on MPS; auto: bf16 where it is measured "
            "faster on this machine and keeps the masks, else fp32)"
        )


def requested_precision(device: torch.device, precision: str | None = None) -> str:
    """``"auto"``, ``"fp32"`` or ``"bf16"``: ``precision`` itself, or for ``None`` the
    device's default (`DEFAULT_PRECISION`: bf16 on CUDA, auto on CPU, fp32 on MPS)."""
    check_precision(precision)
    return DEFAULT_PRECISION.get(device.type, "fp32") if precision is None else precision


def compute_dtype(device: torch.device, precision: str | None = None) -> torch.dtype:
    """The dtype a network computes in on ``device`` for a precision that needs no measurement.

    Raises
    ------
    UnsupportedPrecisionError
        An unknown value, or ``"auto"`` (asked for, or the device's default): that one is
        chosen by measuring the network (`model.precision.choose`, as `load_model` does).
    """
    requested = requested_precision(device, precision)
    if requested == "auto":
        raise UnsupportedPrecisionError(
            f"precision {precision!r} on {device.type} is 'auto', chosen by measuring the "
            "network (model.precision.choose, as load_model does); expected 'fp32' or 'bf16' "
            "here"
        )
    return DTYPES[requested]


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast context for ``dtype`` on ``device`` (a no-op for float32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
