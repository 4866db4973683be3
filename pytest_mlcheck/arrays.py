"""The one adapter between numpy and torch.

Every check handles arrays through these functions, so no check needs an ``if torch``
branch and numpy alone always works. torch is never imported here: a tensor can only
exist if its caller already imported torch, so we look torch up in ``sys.modules``.
"""

from __future__ import annotations

import numbers
import sys
from typing import Any

import numpy as np


def torch_module():
    """Return the torch module if it is already imported, else ``None``."""
    return sys.modules.get("torch")


def require_torch(feature: str):
    """Import and return torch, or raise ``ImportError`` saying which feature needs it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised in torch-free sessions
        raise ImportError(
            f"{feature} needs torch, which is not installed; "
            "install it with `pip install 'pytest-mlcheck[torch]'` (torch==2.13.0 CPU build)"
        ) from exc
    return torch


def is_tensor(x: Any) -> bool:
    """Return whether ``x`` is a torch tensor (without importing torch)."""
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def is_module(x: Any) -> bool:
    """Return whether ``x`` is a torch ``nn.Module`` (without importing torch)."""
    torch = torch_module()
    return torch is not None and isinstance(x, torch.nn.Module)


def is_array(x: Any) -> bool:
    """Return whether ``x`` is a numpy array or a torch tensor."""
    return isinstance(x, np.ndarray) or is_tensor(x)


def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array, copying tensors to the CPU and detaching them.

    bfloat16 tensors, which numpy cannot hold, become float32.
    """
    if isinstance(x, np.ndarray):
        return x
    if is_tensor(x):
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        torch = torch_module()
        if t.dtype == torch.bfloat16:
            t = t.float()
        if t.is_conj():
            t = t.resolve_conj()
        return t.numpy()
    return np.asarray(x)


def shape_of(x: Any) -> tuple[int, ...]:
    """Return the shape of an array or tensor as a tuple of ints."""
    return tuple(int(d) for d in x.shape)


def dtype_name(x: Any) -> str:
    """Return a backend-neutral dtype name such as ``float32`` or ``int64``."""
    if is_tensor(x):
        return str(x.dtype).replace("torch.", "")
    return str(np.asarray(x).dtype) if not isinstance(x, np.ndarray) else str(x.dtype)


def as_scalar(value: Any, what: str) -> float | int:
    """Return a Python number from an int, float, numpy scalar, 0-d array or 1-element tensor.

    Raises ``TypeError`` naming ``what`` for anything else (strings, lists, bools are
    accepted as ints only when they are real numbers: ``True`` is rejected as ambiguous).
    """
    if isinstance(value, bool) or isinstance(value, np.bool_):
        raise TypeError(f"{what}: expected a number, got a bool ({value!r})")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray) or is_tensor(value):
        if len(shape_of(value)) != 0 and int(np.prod(shape_of(value))) != 1:
            raise TypeError(
                f"{what}: expected a scalar, got an array of shape {shape_of(value)}"
            )
        arr = to_numpy(value).reshape(())
        if arr.dtype.kind == "b":
            raise TypeError(f"{what}: expected a number, got a bool array")
        if arr.dtype.kind in "iu":
            return int(arr)
        if arr.dtype.kind == "f":
            return float(arr)
        raise TypeError(f"{what}: expected a real number, got dtype {arr.dtype}")
    raise TypeError(
        f"{what}: expected a number (int, float, numpy scalar, 0-d array or tensor), "
        f"got {type(value).__name__}"
    )
