"""Hypothesis strategies for arrays and tensors whose shapes satisfy shape specs.

* :func:`arrays` draws numpy arrays, :func:`tensors` torch tensors, for one spec such as
  ``"B T C"``; a name used twice (``"N N"``) is drawn once.
* :func:`shaped` draws a dict of arrays whose specs share names:
  ``shaped(x="B T C", mask=Spec("B T", dtype="bool"))``.

Sizes shrink towards ``min_side`` and ``*name`` towards no dimensions, so a failing
example shrinks towards the smallest shapes. This module imports hypothesis; the
plugin never imports it at start-up.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as exc:  # hypothesis is an extra: the plugin itself never needs it
    raise ImportError(
        "pytest_mlcheck.strategies needs hypothesis, which is not installed; install "
        "the extra: pip install 'pytest-mlcheck[hypothesis]'"
    ) from exc

from . import arrays as _arrays
from . import validation
from .shapes.spec import Spec, check_dims, dtype_kind, normalize_dtype, parse_spec

#: Most dimensions drawn for one ``*name`` or ``...``.
MAX_VARIADIC_DIMS = 3


def _elements(dtype: str, low: Any, high: Any) -> st.SearchStrategy | None:
    """Finite values by default: NaN and inf belong in tests that ask for them."""
    kind = dtype_kind(dtype)
    if kind == "f":
        width = {"float16": 16, "float32": 32, "bfloat16": 32}.get(dtype, 64)
        lo = -1e3 if low is None else float(low)
        hi = 1e3 if high is None else float(high)
        return st.floats(lo, hi, width=width, allow_nan=False, allow_infinity=False,
                         exclude_max=high is not None)
    if kind in "iu" and (low is not None or high is not None):
        lo = 0 if low is None else int(low)
        hi = lo + 10 if high is None else int(high)
        return st.integers(lo, hi - 1)
    return None


class _Item:
    """One array to draw: its key, parsed spec, dtype and element strategy."""

    def __init__(self, key: str, spec: Any, dtype: Any, elements: Any, numpy_only: bool) -> None:
        if isinstance(spec, Spec):
            low, high = spec.low, spec.high
            dtype = spec.dtype if dtype is None else dtype
        else:
            low = high = None
        self.key = key
        self.parsed = parse_spec(spec, key)
        self.dtype = normalize_dtype("float32" if dtype is None else dtype, f"{key} dtype")
        if numpy_only and self.dtype == "bfloat16":
            raise ValueError(f"{key}: numpy has no bfloat16; use tensors() for bfloat16")
        if elements is not None and not isinstance(elements, st.SearchStrategy):
            raise TypeError(f"{key}: elements must be a hypothesis strategy, got "
                            f"{type(elements).__name__}")
        self.elements = elements if elements is not None else _elements(self.dtype, low, high)


def _validate_names(items: list[_Item], dims: Mapping[str, Any]) -> None:
    kinds: dict[str, str] = {k: ("star" if isinstance(v, tuple) else "name")
                             for k, v in dims.items()}
    for item in items:
        for d in item.parsed.dims:
            if d.kind in ("name", "star"):
                seen = kinds.setdefault(d.value, d.kind)
                if seen != d.kind:
                    raise ValueError(f"{item.key}: {d.value!r} is used both as one dimension "
                                     f"and as '*{d.value}' (or bound so in dims)")


@st.composite
def _draw(draw: Any, items: list[_Item], dims: Mapping[str, Any], min_side: int,
          max_side: int) -> dict[str, np.ndarray]:
    side = st.integers(min_side, max_side)
    several = st.lists(side, max_size=MAX_VARIADIC_DIMS).map(tuple)
    sizes: dict[str, Any] = dict(dims)
    out: dict[str, np.ndarray] = {}
    for item in items:
        shape: list[int] = []
        for d in item.parsed.dims:
            if d.kind == "int":
                shape.append(d.value)
            elif d.kind == "any":
                shape.append(draw(side))
            elif d.kind == "ellipsis":
                shape.extend(draw(several))
            elif d.kind == "name":
                if d.value not in sizes:
                    sizes[d.value] = draw(side)
                shape.append(sizes[d.value])
            else:
                if d.value not in sizes:
                    sizes[d.value] = draw(several)
                shape.extend(sizes[d.value])
        np_dtype = np.dtype("float32" if item.dtype == "bfloat16" else item.dtype)
        out[item.key] = draw(hnp.arrays(np_dtype, tuple(shape), elements=item.elements))
    return out


def _check_sides(min_side: Any, max_side: Any) -> None:
    for name, value in (("min_side", min_side), ("max_side", max_side)):
        validation.integer(value, name, low=0)
    if min_side > max_side:
        raise ValueError(f"min_side ({min_side}) must not exceed max_side ({max_side})")


def arrays(spec: Any, *, dims: Mapping[str, Any] | None = None, dtype: Any = "float32",
           elements: st.SearchStrategy | None = None, min_side: int = 1,
           max_side: int = 5) -> st.SearchStrategy:
    """A strategy for numpy arrays whose shape satisfies ``spec``.

    Example:
        >>> @given(arrays("N N"))           # square matrices
        ... def test_inverse(m): ...

    Args:
        spec: A shape spec such as ``"B T C"``, or a :class:`~pytest_mlcheck.Spec`
            (whose dtype and ``low``/``high`` are used unless ``dtype`` is given).
        dims: Fixed sizes by name; other names are drawn once per example.
        dtype: The dtype (ignored for a Spec, which carries its own).
        elements: A strategy for the values; by default finite floats in
            ``[-1000, 1000]`` (or the Spec's range) and hypothesis' defaults otherwise.
        min_side: The smallest size drawn for a name or ``_`` (shrinks towards it).
        max_side: The largest size drawn.

    Returns:
        A hypothesis strategy of numpy arrays.
    """
    _check_sides(min_side, max_side)
    fixed = check_dims(dims)
    item = _Item("spec", spec, None if isinstance(spec, Spec) else dtype, elements, True)
    _validate_names([item], fixed)
    return _draw([item], fixed, min_side, max_side).map(lambda d: d["spec"])


def tensors(spec: Any, *, dims: Mapping[str, Any] | None = None, dtype: Any = "float32",
            elements: st.SearchStrategy | None = None, min_side: int = 1,
            max_side: int = 5) -> st.SearchStrategy:
    """A strategy for torch tensors whose shape satisfies ``spec`` (needs torch).

    Args:
        spec: A shape spec or :class:`~pytest_mlcheck.Spec`, as for :func:`arrays`.
        dims: Fixed sizes by name.
        dtype: The dtype: a name such as ``"bfloat16"`` or a torch dtype.
        elements: A strategy for the values.
        min_side: The smallest size drawn for a name or ``_``.
        max_side: The largest size drawn.

    Returns:
        A hypothesis strategy of CPU torch tensors.

    Raises:
        ImportError: torch is not installed.
    """
    torch = _arrays.require_torch("pytest_mlcheck.strategies.tensors()")
    _check_sides(min_side, max_side)
    fixed = check_dims(dims)
    item = _Item("spec", spec, None if isinstance(spec, Spec) else dtype, elements, False)
    _validate_names([item], fixed)
    target = getattr(torch, item.dtype)

    def to_tensor(d: dict) -> Any:
        return torch.from_numpy(np.ascontiguousarray(d["spec"])).to(target)

    return _draw([item], fixed, min_side, max_side).map(to_tensor)


def shaped(**specs: Any) -> st.SearchStrategy:
    """A strategy for a dict of numpy arrays drawn with shared dimension sizes.

    Example:
        >>> @given(shaped(x="B T C", mask=Spec("B T", dtype="bool")))
        ... def test_masked_mean(batch): ...

    Args:
        **specs: Keyword name -> a shape spec string or a :class:`~pytest_mlcheck.Spec`.

    Returns:
        A hypothesis strategy of dicts with the same keys.
    """
    if not specs:
        raise ValueError("shaped() needs at least one keyword, e.g. shaped(x='B T C')")
    items = [_Item(k, v, None if isinstance(v, Spec) else "float32", None, True)
             for k, v in specs.items()]
    _validate_names(items, {})
    return _draw(items, {}, 1, 5)
