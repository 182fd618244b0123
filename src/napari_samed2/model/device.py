"""Device and dtype policy: one place decides where a network runs and in what precision."""

from __future__ import annotations

import contextlib

import torch

from .errors import DeviceUnavailableError, InvalidDeviceError, UnsupportedPrecisionError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
# None: the device's default (bf16 on CUDA, fp32 elsewhere); "auto": measured once per machine
# and architecture (`model.precision`)
PRECISION_CHOICES = (None, "auto", "fp32", "bf16")


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
            "(None: bf16 on CUDA, fp32 elsewhere; auto: the faster one that keeps the masks, "
            "measured on this machine)"
        )


def default_precision(device: torch.device, precision: str | None = None) -> str:
    """``"fp32"`` or ``"bf16"``: ``precision`` itself, or the device's default for ``None``
    (bf16 on CUDA, fp32 on CPU and MPS).

    Raises
    ------
    UnsupportedPrecisionError
        An unknown value, or ``"auto"``: it needs a measurement (`model.precision.choose`).
    """
    check_precision(precision)
    if precision == "auto":
        raise UnsupportedPrecisionError(
            "precision 'auto' is chosen by measuring the network (model.precision.choose); "
            "expected 'fp32', 'bf16' or None here"
        )
    if precision is None:
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def compute_dtype(device: torch.device, precision: str | None = None) -> torch.dtype:
    """The dtype networks compute in on ``device``: `default_precision` as a torch dtype.

    bfloat16 autocast on CUDA, float32 on CPU and MPS unless ``precision="bf16"`` is asked for.
    """
    return DTYPES[default_precision(device, precision)]


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast context for ``dtype`` on ``device`` (a no-op for float32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
