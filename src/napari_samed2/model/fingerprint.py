"""Network fingerprints: a digest of everything a network's image features depend on (features
stored on disk are only reused for the same encoder), and one of all its weights (checks made
for some weights, such as bf16's masks, are redone for others)."""

from __future__ import annotations

import hashlib
import json
import threading
import weakref

import torch
from sam2.modeling.sam2_base import SAM2Base

# net -> {kind: (state token, digest)}: hashing SAM2.1-T's encoder weights takes about 0.2 s
# on a CPU, so a net whose weights did not change since (same tensors, same version counters)
# is not hashed again
_known: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def feature_modules(net: SAM2Base) -> dict[str, torch.nn.Module]:
    """The modules `SAM2Base.forward_image` runs: the image encoder and, with
    ``use_high_res_features_in_sam``, the decoder's projections of the high-resolution levels
    (``conv_s0``, ``conv_s1``)."""
    modules = {"image_encoder": net.image_encoder}
    if net.use_high_res_features_in_sam:
        modules["conv_s0"] = net.sam_mask_decoder.conv_s0
        modules["conv_s1"] = net.sam_mask_decoder.conv_s1
    return modules


def encoder_fingerprint(net: SAM2Base) -> str:
    """blake2b of ``net``'s image features' ingredients: the weights and buffers of
    `feature_modules` (names, dtypes, shapes, values) and their architecture (each submodule's
    class and plain attributes, e.g. window sizes and head counts, which no weight shape
    shows), plus the feature levels the tracking step takes.

    Fine-tuning that leaves the image encoder frozen (the default) keeps the fingerprint, so
    features stored for the base model serve the tuned one.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    return _fingerprint(net, feature_modules(net), "encoder")


def weights_fingerprint(net: SAM2Base) -> str:
    """blake2b of all of ``net``'s weights and buffers and its architecture (64 hexadecimal
    digits); computed once per net while its weights stay the same tensors."""
    return _fingerprint(net, {"net": net}, "weights")


def _fingerprint(net: SAM2Base, modules: dict[str, torch.nn.Module], kind: str) -> str:
    state = {
        f"{prefix}.{name}": tensor
        for prefix, module in modules.items()
        for name, tensor in module.state_dict(keep_vars=True).items()
    }
    token = _state_token(state)
    with _lock:
        known = _known.get(net, {}).get(kind)
        if token is not None and known is not None and known[0] == token:
            return known[1]
    digest = hashlib.blake2b(digest_size=32)
    digest.update(_architecture(net, modules).encode())
    for name in sorted(state):
        _update(digest, name, state[name])
    fingerprint = digest.hexdigest()
    if token is not None:
        with _lock:
            _known.setdefault(net, {})[kind] = (token, fingerprint)
    return fingerprint


def _state_token(state: dict) -> tuple | None:
    """Identity and in-place version of every tensor (None where torch keeps no version, for
    tensors made in inference mode: then the weights are hashed every time)."""
    try:
        return tuple(
            (name, id(t), t._version) for name, t in sorted(state.items()) if torch.is_tensor(t)
        )
    except RuntimeError:
        return None


def _update(digest, name: str, value) -> None:
    if not torch.is_tensor(value):  # e.g. packed parameters of a quantised module
        digest.update(f"{name}={value!r};".encode())
        return
    tensor = value.detach()
    if tensor.is_quantized:
        tensor = tensor.dequantize()
    tensor = tensor.to("cpu").contiguous().reshape(-1)
    digest.update(f"{name}:{tensor.dtype}:{tuple(value.shape)};".encode())
    digest.update(tensor.view(torch.uint8).numpy())


def _architecture(net: SAM2Base, modules: dict[str, torch.nn.Module]) -> str:
    described = {"num_feature_levels": int(net.num_feature_levels)}
    for prefix, module in modules.items():
        for name, sub in module.named_modules(prefix=prefix):
            plain = {
                key: value
                for key, value in sorted(vars(sub).items())
                if not key.startswith("_") and key != "training" and _is_plain(value)
            }
            described[name] = [type(sub).__qualname__, plain]
    return json.dumps(described, sort_keys=True)


def _is_plain(value) -> bool:
    """Numbers, text, None and sequences of them: settings, not state (tensors, modules and
    caches, such as the positional encoding's, which fills as it is used, are left out)."""
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    return value is None or isinstance(value, (bool, int, float, str))
