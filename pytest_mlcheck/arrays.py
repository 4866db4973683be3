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
            "install it with `pip install 'pytest-mlcheck[torch]'` (torch>=2.1; pick the CPU "
            "or CUDA build from https://pytorch.org/get-started/locally/)"
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


class TensorConversionError(TypeError):
    """A tensor that has no numpy form: the message names it and says why, and what to do."""


#: Float dtypes numpy cannot hold, widened to float32 (exact for all of them).
_WIDEN_TO_FLOAT32 = ("bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                     "float8_e5m2fnuz", "float8_e8m0fnu")


def _describe(t: Any) -> str:
    try:
        shape = f"shape {tuple(int(d) for d in t.shape)}, "
    except Exception:  # nested tensors have no single shape (or a symbolic one)
        shape = ""
    return (f"{shape}dtype {str(t.dtype).replace('torch.', '')}, layout "
            f"{str(t.layout).replace('torch.', '')}, device {t.device}")


def _tensor_to_numpy(x: Any, what: str) -> np.ndarray:
    torch = torch_module()
    if x.is_nested:
        raise TensorConversionError(
            f"{what} is a nested (ragged) tensor ({_describe(x)}), whose parts have no "
            f"single shape; pass its parts (`t.unbind()`) or a padded tensor "
            f"(`torch.nested.to_padded_tensor(t, 0.0)`)")
    if x.device.type == "meta":
        raise TensorConversionError(
            f"{what} is a tensor on the meta device ({_describe(x)}), which holds no "
            f"values; materialise it on a real device first (e.g. "
            f"`module.to_empty(device='cpu')` and load its weights)")
    try:
        t = x.detach()
        if t.layout != torch.strided:  # sparse COO/CSR/CSC/BSR/BSC, mkldnn
            t = t.to_dense()
        if t.device.type != "cpu":
            t = t.cpu()
        if t.is_quantized:
            t = t.dequantize()
        name = str(t.dtype).replace("torch.", "")
        if name in _WIDEN_TO_FLOAT32:
            t = t.float()
        elif name == "complex32":
            t = t.to(torch.complex64)
        if t.is_conj():
            t = t.resolve_conj()
        if t.is_neg():
            t = t.resolve_neg()
        if type(t) is not torch.Tensor:  # a subclass (torchvision's tv_tensors, say)
            t = t.as_subclass(torch.Tensor)
        return t.numpy()
    except (TypeError, RuntimeError, NotImplementedError, ValueError) as exc:
        raise TensorConversionError(
            f"{what} ({_describe(x)}) cannot be converted to a numpy array: {exc}") from None


def to_numpy(x: Any, what: str = "tensor") -> np.ndarray:
    """Return ``x`` as a numpy array, copying tensors to the CPU and detaching them.

    Sparse tensors (COO, CSR, CSC, BSR, BSC) become dense; quantized ones are
    dequantized; bfloat16 and float8 tensors, which numpy cannot hold, become float32,
    and complex32 complex64. Tensors that requires grad are detached first, and ones
    on an accelerator are copied to the CPU; a tensor subclass is read as a plain
    tensor.

    Args:
        x: A numpy array, a torch tensor, or anything ``numpy.asarray`` takes.
        what: How to name ``x`` in an error (``"array 'logits'"``).

    Raises:
        TensorConversionError: ``x`` is a tensor with no numpy form (a meta tensor, a
            nested tensor, an unsupported dtype, a subclass without storage); the
            message names ``what``
            and the reason.
    """
    if isinstance(x, np.ndarray):
        return x
    if is_tensor(x):
        return _tensor_to_numpy(x, what)
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
        if is_tensor(value) and value.is_nested:
            raise TypeError(f"{what}: expected a scalar, got a nested tensor")
        if len(shape_of(value)) != 0 and int(np.prod(shape_of(value))) != 1:
            raise TypeError(
                f"{what}: expected a scalar, got an array of shape {shape_of(value)}"
            )
        arr = to_numpy(value, what).reshape(())
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
