"""Shape invariants: symbolic shape specs, batch independence, batch invariance, causality.

Plain functions that work without pytest, plus the :class:`ShapeInvariants` fixture class:

* :func:`assert_shape` checks one array or tensor against a spec such as ``"B T C"``
  and returns the bindings (``{"B": 4, "T": 3, "C": 32}``).
* :func:`check_shapes` generates inputs from specs over many sizes, calls ``fn`` and
  checks every output against its spec, with names shared between inputs and outputs.
* :func:`assert_batch_independent` proves output row ``i`` depends only on input row ``i``.
* :func:`assert_batch_invariant` proves a sample's output does not depend on the batch
  it is computed in.
* :func:`assert_causal` proves output step ``t`` depends on no input step after ``t``.

The spec grammar is a space-separated list of dimensions, each one of: an integer; a
name (``B``, ``batch``) that binds on first use; ``_`` (any one dimension); ``*name``
(zero or more dimensions, bound as a tuple); ``...`` (any dimensions, unbound). ``""``
is a scalar. At most one ``*name`` or ``...`` per spec, so matching never guesses.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import inspect
import itertools
import math
import re
from typing import Any, Iterator, Mapping, MutableMapping, Sequence

import numpy as np

from . import arrays
from .report import emit
from .seeding import seeded

#: The seed of every generated input, so a failure reproduces exactly.
GENERATION_SEED = 0

#: Most size combinations :func:`check_shapes` tries as a full product before it
#: switches to varying one name at a time.
MAX_PRODUCT = 27

#: Most batch rows or time steps whose dependencies are checked (spread over the axis).
MAX_CHECKED_INDICES = 8

#: Most time steps :func:`assert_causal` checks (all of them up to this length).
MAX_CHECKED_STEPS = 32

#: The size of ``_`` when an input is generated.
ANY_DIM_SIZE = 3

_GRAMMAR = ("each dimension is an integer, a name (binds on first use), '_' (any one "
            "dimension), '*name' (zero or more dimensions, bound as a tuple) or '...' "
            "(any dimensions)")

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_MISSING = object()


# ---- the spec grammar ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Dim:
    kind: str  # "int", "name", "any", "star" or "ellipsis"
    text: str
    value: Any  # the size of an "int", the name of a "name" or "star"
    col: int  # where the token starts in the spec text


@dataclasses.dataclass(frozen=True)
class _Parsed:
    text: str
    dims: tuple
    head: tuple  # the dimensions before the variadic one
    var: Any  # the "star" or "ellipsis" dimension, or None
    tail: tuple  # the dimensions after it

    @property
    def names(self) -> list[str]:
        return [d.value for d in self.dims if d.kind in ("name", "star")]


def _spec_error(text: str, dim_text: str, col: int, reason: str) -> ValueError:
    pointer = " " * col + "^" * max(1, len(dim_text))
    return ValueError(
        f"bad shape spec {text!r}: {reason}\n    {text!r}\n     {pointer}\n"
        f"  grammar: {_GRAMMAR}; examples: 'B 3 H W', 'B T C', '*batch 10', '' (a scalar)"
    )


@functools.lru_cache(maxsize=1024)
def _parse_text(text: str) -> _Parsed:
    dims: list[_Dim] = []
    for match in re.finditer(r"\S+", text):
        tok, col = match.group(), match.start()
        if tok.isdigit() and tok.isascii():
            dims.append(_Dim("int", tok, int(tok), col))
        elif tok == "_":
            dims.append(_Dim("any", tok, None, col))
        elif tok == "...":
            dims.append(_Dim("ellipsis", tok, None, col))
        elif tok.startswith("*"):
            name = tok[1:]
            if not _NAME_RE.match(name) or name == "_":
                raise _spec_error(text, tok, col, f"{tok!r} is not '*' followed by a name")
            dims.append(_Dim("star", tok, name, col))
        elif _NAME_RE.match(tok):
            dims.append(_Dim("name", tok, tok, col))
        else:
            reason = f"{tok!r} is not a dimension"
            if tok.lstrip("-").isdigit():
                reason = f"{tok!r} is not a non-negative integer"
            elif "," in tok or "(" in tok or ")" in tok:
                reason = f"{tok!r} is not a dimension (separate dimensions with spaces only)"
            raise _spec_error(text, tok, col, reason)
    variadic = [i for i, d in enumerate(dims) if d.kind in ("star", "ellipsis")]
    if len(variadic) > 1:
        second = dims[variadic[1]]
        raise _spec_error(text, second.text, second.col,
                          f"a second variadic dimension {second.text!r}: at most one '*name' "
                          "or '...' per spec, otherwise the match is ambiguous")
    if variadic:
        k = variadic[0]
        return _Parsed(text, tuple(dims), tuple(dims[:k]), dims[k], tuple(dims[k + 1:]))
    return _Parsed(text, tuple(dims), tuple(dims), None, ())


def _parse(spec: Any, what: str = "spec") -> _Parsed:
    if isinstance(spec, Spec):
        spec = spec.shape
    if not isinstance(spec, str):
        raise TypeError(f"{what}: a shape spec must be a string such as 'B T C', "
                        f"got {type(spec).__name__}")
    return _parse_text(spec)


# ---- dtypes ----------------------------------------------------------------------


def _dtype_name(dtype: Any, what: str = "dtype") -> str:
    """Return the canonical name of a dtype given as a string, numpy or torch dtype."""
    torch = arrays.torch_module()
    if torch is not None and isinstance(dtype, torch.dtype):
        return str(dtype).replace("torch.", "")
    if isinstance(dtype, str) and dtype.replace("torch.", "") == "bfloat16":
        return "bfloat16"
    if isinstance(dtype, str) and dtype.startswith("torch."):
        dtype = dtype[len("torch."):]
    try:
        if isinstance(dtype, bool) or dtype is None:
            raise TypeError
        name = np.dtype(dtype).name
    except (TypeError, ValueError):
        raise ValueError(
            f"{what}: unknown dtype {dtype!r}; use a numpy or torch dtype or its name, "
            "such as 'float32', 'float16', 'bfloat16', 'int64', 'uint8' or 'bool'"
        ) from None
    if np.dtype(name).kind not in "biufc":
        raise ValueError(f"{what}: dtype {dtype!r} ({name}) is not numeric or bool")
    return name


def _dtype_kind(name: str) -> str:
    return "f" if name == "bfloat16" else np.dtype(name).kind


# ---- Spec ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Spec:
    """A generated input: its shape spec, dtype and value range.

    Integer dtypes with ``low``/``high`` cover token ids and class labels:
    ``Spec("B T", dtype="int64", low=0, high=vocab_size)`` draws ids in ``[0, vocab_size)``.
    Floats are standard normal, or uniform in ``[low, high)`` when both are given.
    Integers default to ``[0, 10)``; bools are fair coin flips.

    Attributes:
        shape: The shape spec, e.g. ``"B T C"``.
        dtype: A numpy or torch dtype or its name (``bfloat16`` needs torch).
        low: The smallest value (inclusive), or None.
        high: The bound above every value (exclusive), or None.
    """

    shape: str
    dtype: Any = "float32"
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        _parse(self.shape, "Spec.shape")
        name = _dtype_name(self.dtype, f"Spec({self.shape!r}).dtype")
        object.__setattr__(self, "dtype", name)
        for field in ("low", "high"):
            value = getattr(self, field)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                    raise TypeError(f"Spec({self.shape!r}).{field} must be a number or None, "
                                    f"got {type(value).__name__}")
                if not math.isfinite(float(value)):
                    raise ValueError(f"Spec({self.shape!r}).{field} must be finite, got {value}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"Spec({self.shape!r}): low ({self.low}) must be below high "
                             f"({self.high}); high is exclusive")
        if _dtype_kind(name) == "b" and (self.low is not None or self.high is not None):
            raise ValueError(f"Spec({self.shape!r}): a bool input takes no low/high")
        if _dtype_kind(name) in "iu":
            info = np.iinfo(name)
            for field, lo, hi in (("low", info.min, info.max), ("high", info.min + 1,
                                                                 info.max + 1)):
                value = getattr(self, field)
                if value is not None and float(value) != int(value):
                    raise ValueError(f"Spec({self.shape!r}).{field} must be an integer for "
                                     f"dtype {name}, got {value}")
                if value is not None and not lo <= int(value) <= hi:
                    raise ValueError(f"Spec({self.shape!r}).{field}={value} does not fit dtype "
                                     f"{name} ([{info.min}, {info.max}])")


# ---- matching with provenance ----------------------------------------------------


def _fmt_value(value: Any) -> str:
    return str(tuple(value)) if isinstance(value, tuple) else str(value)


def _fmt_bindings(values: Mapping[str, Any], origins: Mapping[str, str]) -> str:
    if not values:
        return "(none)"
    return ", ".join(f"{k}={_fmt_value(v)} ({origins.get(k, 'given in dims')})"
                     for k, v in values.items())


def _match(shape: tuple, parsed: _Parsed, bound: Mapping[str, Any]) -> tuple[dict, str]:
    """Match ``shape`` against ``parsed`` given existing bindings.

    Returns the new bindings and "" on success, or the partial new bindings and the
    reason on failure. Never mutates ``bound``.
    """
    new: dict[str, Any] = {}
    n, h, t = len(shape), len(parsed.head), len(parsed.tail)
    if parsed.var is None and n != h:
        what = "a scalar" if h == 0 else f"{h} dim{'s' if h > 1 else ''}"
        return new, f"rank {n} but the spec has {what}"
    if parsed.var is not None and n < h + t:
        return new, f"rank {n} but the spec needs at least {h + t} dims"

    def lookup(name: str) -> Any:
        return new[name] if name in new else bound.get(name, _MISSING)

    def one(i: int, d: _Dim) -> str:
        size = shape[i]
        if d.kind == "int" and size != d.value:
            return f"dim {i} is {size} but the spec says {d.value}"
        if d.kind == "name":
            have = lookup(d.value)
            if have is _MISSING:
                new[d.value] = size
            elif isinstance(have, tuple):
                return (f"'{d.value}' is bound to several dims {_fmt_value(have)} "
                        f"but is used as one dim here")
            elif have != size:
                return f"dim {i} is {size} but {d.value}={have}{{origin:{d.value}}}"
        return ""

    for i, d in enumerate(parsed.head):
        reason = one(i, d)
        if reason:
            return new, reason
    if parsed.var is not None and parsed.var.kind == "star":
        name, seg = parsed.var.value, tuple(shape[h:n - t])
        have = lookup(name)
        if have is _MISSING:
            new[name] = seg
        elif not isinstance(have, tuple):
            return new, f"'*{name}' is bound to one dim ({have}) but is used as several here"
        elif have != seg:
            where = f"dims {h}..{n - t - 1} are {seg}" if seg else f"no dims at {h}"
            return new, f"{where} but *{name}={_fmt_value(have)}{{origin:{name}}}"
    for k, d in enumerate(parsed.tail):
        reason = one(n - t + k, d)
        if reason:
            return new, reason
    return new, ""


def _explain(reason: str, origins: Mapping[str, str]) -> str:
    return re.sub(r"\{origin:(\w+)\}", lambda m: f" ({origins.get(m.group(1), 'given in dims')})",
                  reason)


class _OriginTable:
    """Remembers who bound each name of a caller's ``dims`` dict, across calls.

    A plain dict cannot carry attributes nor weak references, so we key by ``id`` and
    hold the dict itself: while its entry lives its id cannot be reused by another
    dict. An entry is trusted only while the dict still holds the value we saw bound.
    The table is bounded; the oldest dicts fall back to "given in dims".
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.table: collections.OrderedDict = collections.OrderedDict()

    def get(self, dims: Mapping[str, Any]) -> dict[str, str]:
        held, entry = self.table.get(id(dims), (None, {}))
        if held is not dims:
            return {}
        return {k: origin for k, (value, origin) in entry.items()
                if k in dims and dims[k] == value}

    def remember(self, dims: Mapping[str, Any], name: str, value: Any, origin: str) -> None:
        held, entry = self.table.get(id(dims), (None, {}))
        if held is not dims:
            entry = {}
        entry[name] = (value, origin)
        self.table[id(dims)] = (dims, entry)
        self.table.move_to_end(id(dims))
        while len(self.table) > self.size:
            self.table.popitem(last=False)


_ORIGINS = _OriginTable()


def _check_dims(dims: Any, what: str = "dims") -> dict[str, Any]:
    if dims is None:
        return {}
    if not isinstance(dims, Mapping):
        raise TypeError(f"{what} must be a dict of name -> size, got {type(dims).__name__}")
    out: dict[str, Any] = {}
    for key, value in dims.items():
        if not isinstance(key, str) or not _NAME_RE.match(key) or key == "_":
            raise ValueError(f"{what}: key {key!r} is not a dimension name")
        if isinstance(value, (tuple, list)):
            if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                       for v in value):
                raise ValueError(f"{what}[{key!r}]: a '*{key}' binding must be a tuple of "
                                 f"non-negative ints, got {value!r}")
            out[key] = tuple(int(v) for v in value)
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
            out[key] = int(value)
        else:
            raise ValueError(f"{what}[{key!r}]: a size must be a non-negative int (or a tuple "
                             f"of them for '*{key}'), got {value!r}")
    return out


def _shape_of(x: Any, what: str) -> tuple[int, ...]:
    if arrays.is_array(x) or (hasattr(x, "shape") and hasattr(x, "dtype")):
        return arrays.shape_of(x)
    raise TypeError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}")


def assert_shape(x: Any, spec: Any, dims: MutableMapping[str, Any] | None = None,
                 dtype: Any = None, *, name: str | None = None) -> dict[str, Any]:
    """Check the shape (and optionally the dtype) of an array or tensor against a spec.

    Example:
        >>> dims = {}
        >>> assert_shape(np.zeros((4, 3, 32)), "B T C", dims)
        {'B': 4, 'T': 3, 'C': 32}
        >>> assert_shape(np.zeros((4, 32)), "B C", dims)  # B and C must agree
        {'B': 4, 'T': 3, 'C': 32}

    Args:
        x: A numpy array or torch tensor.
        spec: A shape spec such as ``"B T C"``, or a :class:`Spec` (whose dtype is then
            checked too unless ``dtype`` is given).
        dims: Existing bindings. New bindings are added to it in place (only when the
            whole shape matches), so consecutive calls share bindings.
        dtype: The expected dtype (name, numpy or torch dtype), or None to skip.
        name: What ``x`` is called in messages and in the provenance of its bindings.

    Returns:
        Every binding after the call (the given ones plus the new ones).

    A failing call adds a ``shape`` record to the session report; a passing one adds
    none, because ``assert_shape`` runs inside loops and hypothesis examples.

    Raises:
        AssertionError: The shape or dtype does not match; the message names the
            failing dimension and every binding with where it was bound.
        ValueError: The spec has bad syntax or the dtype is unknown.
    """
    parsed = _parse(spec)
    if dtype is None and isinstance(spec, Spec):
        dtype = spec.dtype
    want_dtype = None if dtype is None else _dtype_name(dtype)
    if dims is not None and not isinstance(dims, MutableMapping):
        raise TypeError(f"dims must be a dict, got {type(dims).__name__}")
    bound = _check_dims(dims)
    origins = _ORIGINS.get(dims) if dims is not None else {}
    label = repr(name) if name else f"spec {parsed.text!r}"
    shape = _shape_of(x, repr(name) if name else "x")
    new, reason = _match(shape, parsed, bound)
    here = {k: "bound here" for k in new}
    values = {"shape": list(shape), "spec": parsed.text, "dtype": arrays.dtype_name(x)}
    prefix = f"{name}: " if name else ""
    if reason:
        message = (f"{prefix}shape {shape} does not match {parsed.text!r}: "
                   f"{_explain(reason, {**origins, **here})}\n"
                   f"  bindings: {_fmt_bindings({**bound, **new}, {**origins, **here})}")
        hint = _shape_hint(shape, parsed, {**bound, **new}, reason)
        if hint:
            message += "\n  " + hint
        emit("shape", "assert_shape", "FAILED", values, message)
        raise AssertionError(message)
    got = arrays.dtype_name(x)
    if want_dtype is not None and got != want_dtype:
        message = (f"{prefix}dtype {got} does not match the expected {want_dtype} "
                   f"(shape {shape}, spec {parsed.text!r}); cast with .to()/.astype() where "
                   "the data enters, or fix the expected dtype")
        emit("shape", "assert_shape", "FAILED", values, message)
        raise AssertionError(message)
    if dims is not None:
        for k, v in new.items():
            dims[k] = v
            _ORIGINS.remember(dims, k, v, f"bound by {label}")
    result = {**bound, **new}
    for k, v in result.items():
        origin = origins.get(k, "given in dims") if k in bound else f"bound by {label}"
        _ORIGINS.remember(result, k, v, origin)
    return result


def _shape_hint(shape: tuple, parsed: _Parsed, bindings: Mapping[str, Any], reason: str) -> str:
    """Return a 'likely cause' line for a shape mismatch, or ""."""
    want = len(parsed.head) + len(parsed.tail)
    if parsed.var is None and len(shape) == want + 1 and 1 in shape:
        return ("likely cause: an extra dimension of size 1, e.g. a Linear(..., 1) head "
                "returning (B, 1) where (B,) is meant; squeeze(-1) it. Left in, "
                "(B, 1) - (B,) broadcasts silently to (B, B) in a loss.")
    if parsed.var is None and len(shape) < want:
        return ("likely cause: a dimension was dropped, e.g. squeeze() without a dim "
                "removing a size-1 batch or time axis, or a reduction over the wrong dim.")
    m = re.match(r"dim (\d+) is (\d+) but", reason)
    if m:
        size = int(m.group(2))
        others = [k for k, v in bindings.items() if v == size and not isinstance(v, tuple)]
        if others:
            return (f"likely cause: dim {m.group(1)} has the size of {', '.join(others)}: "
                    "axes may be swapped (a view/reshape where permute/transpose was meant, "
                    "or batch_first confusion).")
    return ""


# ---- inputs: spec trees, generation, calling fn ----------------------------------


def _param_names(fn: Any) -> list[str]:
    target = fn.forward if arrays.is_module(fn) else fn
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    names = []
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        else:
            break
    return names


def _is_const(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float))


def _walk_specs(tree: Any, path: str, float_dtype: str) -> Iterator[tuple[str, Spec]]:
    """Yield (path, Spec) for every spec leaf of an input tree; validate the tree.

    A plain string spec takes ``float_dtype`` (the module's own floating dtype), so a
    ``model.double()`` or bfloat16 model gets inputs it accepts.
    """
    if isinstance(tree, Spec):
        yield path, tree
    elif isinstance(tree, str):
        yield path, Spec(tree, dtype=float_dtype)
    elif isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from _walk_specs(v, f"{path}[{k!r}]", float_dtype)
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _walk_specs(v, f"{path}[{i}]", float_dtype)
    elif not _is_const(tree):
        raise TypeError(f"input {path}: expected a shape spec string, a Spec, a list/tuple/"
                        f"dict of them, or a constant (None, bool, int, float), "
                        f"got {type(tree).__name__}")


class _Inputs:
    """The input specs of one check: positional and keyword trees, with paths."""

    def __init__(self, fn: Any, inputs: Any, what: str = "inputs") -> None:
        if isinstance(inputs, (str, Spec)):
            args, kwargs = [inputs], {}
        elif isinstance(inputs, Mapping):
            args, kwargs = [], dict(inputs)
            for k in kwargs:
                if not isinstance(k, str):
                    raise TypeError(f"{what}: a mapping gives keyword arguments, so its keys "
                                    f"must be strings, got {k!r}")
        elif isinstance(inputs, (list, tuple)):
            args, kwargs = list(inputs), {}
        else:
            raise TypeError(f"{what}: expected a spec string, a Spec, a sequence of them "
                            f"(positional arguments) or a mapping (keyword arguments), "
                            f"got {type(inputs).__name__}")
        names = _param_names(fn)
        self.arg_paths = [names[i] if i < len(names) else f"args[{i}]" for i in range(len(args))]
        self.args, self.kwargs = args, kwargs
        float_dtype = _module_float_dtype(fn)
        self.leaves: list[tuple[str, Spec]] = []
        for path, tree in zip(self.arg_paths, args):
            self.leaves += list(_walk_specs(tree, path, float_dtype))
        for k, tree in kwargs.items():
            self.leaves += list(_walk_specs(tree, k, float_dtype))
        self.spec_at = dict(self.leaves)
        if not self.leaves:
            raise ValueError(f"{what}: no input spec given; pass e.g. 'B T C' or Spec(...)")
        self.parsed = {path: _parse(spec.shape, f"input {path}") for path, spec in self.leaves}

    def names(self) -> list[str]:
        """Return every dimension name of the inputs in order of first use."""
        seen: dict[str, None] = {}
        for parsed in self.parsed.values():
            for n in parsed.names:
                seen.setdefault(n, None)
        return list(seen)

    def star_names(self) -> set[str]:
        """Return the names used as ``*name``."""
        return {d.value for p in self.parsed.values() for d in p.dims if d.kind == "star"}

    def first_use(self) -> dict[str, str]:
        """Return, per name, the path of the first input that uses it."""
        out: dict[str, str] = {}
        for path, parsed in self.parsed.items():
            for n in parsed.names:
                out.setdefault(n, path)
        return out

    def validate_names(self) -> None:
        """Reject a name used both as ``name`` and ``*name``, and ``...`` in an input."""
        stars = self.star_names()
        for path, parsed in self.parsed.items():
            for d in parsed.dims:
                if d.kind == "ellipsis":
                    raise ValueError(
                        f"input {path}: spec {parsed.text!r} has '...', whose size the check "
                        "cannot choose; use '*name' and give dims={'name': (2, 3)} instead")
                if d.kind == "name" and d.value in stars:
                    raise ValueError(f"input {path}: {d.value!r} is used both as one dim and "
                                     f"as '*{d.value}'")

    def concrete_shape(self, path: str, sizes: Mapping[str, Any]) -> tuple[int, ...]:
        """Return the shape of input ``path`` under ``sizes``."""
        shape: list[int] = []
        for d in self.parsed[path].dims:
            if d.kind == "int":
                shape.append(d.value)
            elif d.kind == "any":
                shape.append(ANY_DIM_SIZE)
            elif d.kind == "name":
                shape.append(sizes[d.value])
            elif d.kind == "star":
                shape.extend(sizes[d.value])
        return tuple(shape)

    def generate(self, sizes: Mapping[str, Any], backend: str, device: Any,
                 rng: np.random.Generator) -> tuple[list, dict, dict[str, Any]]:
        """Return (args, kwargs, {path: array}) generated for ``sizes``."""
        made: dict[str, Any] = {}

        def build(tree: Any, path: str) -> Any:
            if isinstance(tree, (str, Spec)):
                spec = self.spec_at[path]
                made[path] = _make_array(spec, self.concrete_shape(path, sizes), backend,
                                         device, rng, path)
                return made[path]
            if isinstance(tree, Mapping):
                return {k: build(v, f"{path}[{k!r}]") for k, v in tree.items()}
            if isinstance(tree, (list, tuple)):
                return _rebuild(tree, [build(v, f"{path}[{i}]") for i, v in enumerate(tree)])
            return tree

        args = [build(t, p) for p, t in zip(self.arg_paths, self.args)]
        kwargs = {k: build(t, k) for k, t in self.kwargs.items()}
        return args, kwargs, made


def _rebuild(tree: Any, items: list) -> Any:
    """Return a list, tuple or namedtuple like ``tree`` holding ``items``."""
    if hasattr(tree, "_fields"):
        return type(tree)(*items)
    return type(tree)(items)


def _random_values(spec: Spec, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    kind = _dtype_kind(spec.dtype)
    if kind == "b":
        return rng.random(shape) < 0.5
    if kind in "iu":
        low = 0 if spec.low is None else int(spec.low)
        high = low + 10 if spec.high is None else int(spec.high)
        return rng.integers(low, high, size=shape, dtype=np.int64)
    if spec.low is not None and spec.high is not None:
        values = rng.uniform(spec.low, spec.high, size=shape)
    else:
        values = rng.standard_normal(shape)
        if spec.low is not None:
            values = spec.low + np.abs(values)
        elif spec.high is not None:
            values = spec.high - np.abs(values) - 1e-3
    if kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values


def _to_backend(values: np.ndarray, dtype: str, backend: str, device: Any, path: str) -> Any:
    if backend == "torch":
        torch = arrays.require_torch(f"generating torch input {path}")
        if dtype == "bfloat16":
            t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).to(torch.bfloat16)
        else:
            t = torch.from_numpy(np.ascontiguousarray(values.astype(dtype)))
        return t.to(device) if device is not None else t
    if dtype == "bfloat16":
        raise ValueError(f"input {path}: numpy has no bfloat16; use backend='torch' or "
                         "another dtype")
    return np.ascontiguousarray(values.astype(dtype))


def _make_array(spec: Spec, shape: tuple, backend: str, device: Any,
                rng: np.random.Generator, path: str) -> Any:
    return _to_backend(_random_values(spec, shape, rng), spec.dtype, backend, device, path)


def _resolve_backend(fn: Any, backend: Any) -> str:
    if backend not in (None, "numpy", "torch"):
        raise ValueError(f"backend must be None, 'numpy' or 'torch', got {backend!r}")
    if backend == "numpy" and arrays.is_module(fn):
        raise ValueError("backend='numpy' cannot drive an nn.Module; leave backend=None")
    if backend is None:
        return "torch" if arrays.is_module(fn) else "numpy"
    if backend == "torch":
        arrays.require_torch("backend='torch'")
    return backend


def _module_float_dtype(fn: Any) -> str:
    """Return the floating dtype of a module's parameters, or float32."""
    if arrays.is_module(fn):
        for t in fn.parameters():
            if t.is_floating_point():
                return arrays.dtype_name(t)
    return "float32"


def _module_device(fn: Any) -> Any:
    if not arrays.is_module(fn):
        return None
    for t in itertools.chain(fn.parameters(), fn.buffers()):
        return t.device
    return None


def _fn_name(fn: Any) -> str:
    if arrays.is_module(fn):
        return type(fn).__name__
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


@contextlib.contextmanager
def _preserve_buffers(fn: Any) -> Iterator[None]:
    """Restore a module's buffers (BatchNorm running stats) after the check's calls."""
    if not arrays.is_module(fn):
        yield
        return
    torch = arrays.require_torch("module checks")
    saved = [(b, b.detach().clone()) for b in fn.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, copy in saved:
                b.copy_(copy)


def _describe_inputs(made: Mapping[str, Any]) -> str:
    return ", ".join(f"{p}: {arrays.shape_of(a)} {arrays.dtype_name(a)}" for p, a in made.items())


def _annotate(exc: BaseException, fn: Any, made: Mapping[str, Any], sizes: Mapping[str, Any],
              origins: Mapping[str, str], chosen: Sequence[str]) -> None:
    """Attach the generated shapes and bindings to an exception raised by ``fn``."""
    note = (f"pytest-mlcheck: {_fn_name(fn)} raised {type(exc).__name__} on generated inputs\n"
            f"  inputs: {_describe_inputs(made)}\n"
            f"  bindings: {_fmt_bindings(sizes, origins)}")
    if chosen:
        note += (f"\n  the check chose {', '.join(chosen)}; if the code needs particular sizes "
                 f"(e.g. a model width), fix them with dims={{{chosen[0]!r}: ...}}")
    train = _train_mode_modules(fn)
    if train and any(isinstance(v, int) and v == 1 for v in sizes.values()):
        note += (f"\n  modules in training mode: {', '.join(train)}; BatchNorm cannot "
                 "train on one sample: call model.eval(), or vary the batch over sizes > 1")
    # For programmatic access; setattr keeps type checkers quiet about new attributes.
    setattr(exc, "mlcheck_inputs", {p: arrays.shape_of(a) for p, a in made.items()})
    setattr(exc, "mlcheck_bindings", dict(sizes))
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    elif exc.args and isinstance(exc.args[0], str):  # Python 3.10 has no notes
        exc.args = (f"{exc.args[0]}\n{note}",) + tuple(exc.args[1:])
    else:
        exc.args = tuple(exc.args) + (note,)


def _leaves(tree: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from _leaves(v, f"{path}[{k!r}]")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, tree


def _grad_mode(fn: Any):
    torch = arrays.torch_module()
    if torch is not None and arrays.is_module(fn):
        return torch.no_grad()
    return contextlib.nullcontext()


# ---- check -----------------------------------------------------------------------


def _default_candidates(names: Sequence[str], stars: set[str]) -> dict[str, list]:
    plain = [n for n in names if n not in stars]
    out: dict[str, list] = {}
    for i, n in enumerate(plain):
        base = 2 + i
        out[n] = [1, base, base + len(plain) + 1]
    for n in names:
        if n in stars:
            out[n] = [(), (2,), (2, 3)]
    return out


def _combinations(candidates: Mapping[str, list]) -> list[dict[str, Any]]:
    names = list(candidates)
    if not names:
        return [{}]
    total = math.prod(len(v) for v in candidates.values())
    if total <= MAX_PRODUCT:
        return [dict(zip(names, vals)) for vals in itertools.product(*candidates.values())]
    # Too many for a product: move one name at a time away from a middle assignment,
    # plus every name at its smallest.
    base = {n: v[len(v) // 2] for n, v in candidates.items()}
    combos = [base, {n: min(v, key=_size_weight) for n, v in candidates.items()}]
    for n, vals in candidates.items():
        combos += [{**base, n: v} for v in vals]
    unique: dict[tuple, dict] = {}
    for c in combos:
        unique.setdefault(tuple(c[n] for n in names), c)
    return list(unique.values())


def _size_weight(v: Any) -> int:
    return math.prod(v) if isinstance(v, tuple) else v


def _check_vary(vary: Any, names: Sequence[str], stars: set[str], fixed: Mapping) -> dict:
    if vary is None:
        return {}
    if not isinstance(vary, Mapping):
        raise TypeError(f"vary must be a dict of name -> sizes, got {type(vary).__name__}")
    out: dict[str, list] = {}
    for name, sizes in vary.items():
        if name not in names:
            raise ValueError(f"vary[{name!r}]: no input spec uses {name!r} "
                             f"(input names: {', '.join(names) or 'none'})")
        if name in fixed:
            raise ValueError(f"{name!r} is both fixed by dims and varied by vary; pick one")
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise TypeError(f"vary[{name!r}] must be a list of sizes, got {sizes!r}")
        checked = list(_check_dims({name: s}, "vary")[name] for s in sizes)
        if not checked:
            raise ValueError(f"vary[{name!r}] is empty")
        if any(isinstance(s, tuple) != (name in stars) for s in checked):
            kind = "tuples of sizes" if name in stars else "ints"
            raise ValueError(f"vary[{name!r}] must hold {kind}")
        out[name] = checked
    return out


class _StructureError(TypeError):
    pass


def _match_output(out: Any, spec: Any, path: str, bound: dict, origins: dict,
                  failures: list[str]) -> None:
    if spec is None:
        return
    if isinstance(spec, (str, Spec)):
        # numpy reductions to a scalar return np.float32 etc.: 0-d arrays in all but name.
        if not (arrays.is_array(out) or isinstance(out, np.generic)):
            shown = repr(out)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise _StructureError(
                f"{path}: expected an array matching {_parse(spec).text!r}, got "
                f"{type(out).__name__} ({shown})")
        parsed = _parse(spec, path)
        shape = arrays.shape_of(out)
        new, reason = _match(shape, parsed, bound)
        if reason:
            show = {**bound, **new}
            shown = {**origins, **{k: f"bound by {path!r}" for k in new}}
            msg = (f"{path}: shape {shape} does not match {parsed.text!r}: "
                   f"{_explain(reason, shown)}")
            hint = _shape_hint(shape, parsed, show, reason)
            failures.append(msg + (f"\n    {hint}" if hint else ""))
            return
        for k, v in new.items():
            bound[k] = v
            origins[k] = f"bound by {path!r}"
        if isinstance(spec, Spec) and arrays.dtype_name(out) != spec.dtype:
            failures.append(f"{path}: dtype {arrays.dtype_name(out)} but the spec expects "
                            f"{spec.dtype}")
        return
    if isinstance(spec, Mapping):
        if not isinstance(out, Mapping):
            raise _StructureError(f"{path}: the output spec is a dict with keys "
                                  f"{list(spec)}, but fn returned {type(out).__name__}")
        for k, sub in spec.items():
            if k not in out:
                raise _StructureError(f"{path}: key {k!r} is missing from the output "
                                      f"(it has {list(out)})")
            _match_output(out[k], sub, f"{path}[{k!r}]", bound, origins, failures)
        return
    if isinstance(spec, (list, tuple)):
        if not isinstance(out, (list, tuple)):
            raise _StructureError(f"{path}: the output spec is a {type(spec).__name__} of "
                                  f"{len(spec)}, but fn returned {type(out).__name__}")
        if len(out) != len(spec):
            raise _StructureError(f"{path}: the output spec has {len(spec)} elements, but fn "
                                  f"returned {len(out)}")
        for i, (o, s) in enumerate(zip(out, spec)):
            _match_output(o, s, f"{path}[{i}]", bound, origins, failures)
        return
    raise TypeError(f"output spec at {path}: expected a spec string, Spec, None, or a "
                    f"tuple/list/dict of them, got {type(spec).__name__}")


def _validate_output_spec(spec: Any, path: str = "output") -> None:
    if spec is None:
        return
    if isinstance(spec, (str, Spec)):
        _parse(spec, f"output spec {path}")
    elif isinstance(spec, Mapping):
        for k, v in spec.items():
            _validate_output_spec(v, f"{path}[{k!r}]")
    elif isinstance(spec, (list, tuple)):
        for i, v in enumerate(spec):
            _validate_output_spec(v, f"{path}[{i}]")
    else:
        raise TypeError(f"output spec at {path}: expected a spec string, Spec, None, or a "
                        f"tuple/list/dict of them, got {type(spec).__name__}")


def _fail(name: str, values: dict, message: str) -> None:
    emit("shape", name, "FAILED", values, message)
    raise AssertionError(message)


def check_shapes(fn: Any, inputs: Any, output: Any, *, dims: Mapping[str, Any] | None = None,
                 vary: Mapping[str, Sequence[Any]] | None = None,
                 backend: str | None = None) -> None:
    """Call ``fn`` on generated inputs of many sizes and check every output's shape.

    Example:
        >>> check_shapes(model, Spec("B T", dtype="int64", high=100), "B T V", dims={"V": 100})

    Names bind across inputs and outputs, so ``"B T" -> "B T V"`` must hold at every
    size tried. Names used only by outputs bind at the smallest sizes and must keep
    their value at every other size (they are properties of ``fn``).

    Args:
        fn: A function or an ``nn.Module`` (called in its current mode, under no_grad).
        inputs: A spec string or :class:`Spec` (one positional argument), a list or
            tuple of them (positional arguments) or a dict (keyword arguments). An
            element may itself be a list or dict of specs (passed as such), or a
            constant (None, bool, int, float) passed unchanged.
        output: A spec, or a tuple/list/dict of specs mirroring ``fn``'s output, with
            None to skip an element (e.g. ``("B V", None)`` for ``(logits, loss)``).
        dims: Fixed sizes by name, e.g. ``{"C": 32}`` (``*name`` takes a tuple).
        vary: Per name, the sizes to try. By default every name not in ``dims`` varies
            over three small sizes, one of them 1, different for each name.
        backend: ``"numpy"`` or ``"torch"``; by default torch for an ``nn.Module``,
            numpy otherwise.

    Raises:
        AssertionError: An output does not match its spec; the message gives the
            smallest failing sizes and all bindings.
        TypeError: An output is not an array where a spec expects one, or the output
            structure does not mirror the spec; names the output path.
        ValueError: Bad specs, dtypes, dims or vary.
    """
    backend = _resolve_backend(fn, backend)
    spec_inputs = _Inputs(fn, inputs)
    spec_inputs.validate_names()
    _validate_output_spec(output)
    fixed = _check_dims(dims)
    names = spec_inputs.names()
    stars = spec_inputs.star_names()
    chosen_vary = _check_vary(vary, names, stars, fixed)
    defaults = _default_candidates([n for n in names if n not in fixed], stars)
    candidates = {n: chosen_vary.get(n, defaults.get(n)) for n in names if n not in fixed}
    first_use = spec_inputs.first_use()
    device = _module_device(fn)
    combos = []
    for combo in _combinations(candidates):
        sizes = {**fixed, **combo}
        numel = sum(math.prod(spec_inputs.concrete_shape(p, sizes)) for p, _ in spec_inputs.leaves)
        combos.append((numel, sum(_size_weight(v) for v in combo.values()), combo))
    combos.sort(key=lambda c: (c[0], c[1]))
    fn_name = _fn_name(fn)
    output_only: dict[str, Any] = {}
    output_origins: dict[str, str] = {}
    failures: list[tuple[dict, dict, dict, list[str]]] = []
    values: dict[str, Any] = {"fn": fn_name, "backend": backend, "combinations": len(combos),
                              "names": names, "fixed": dict(fixed)}
    with _preserve_buffers(fn):
        for index, (_, _, combo) in enumerate(combos):
            sizes = {**fixed, **combo}
            origins = {n: ("fixed by dims" if n in fixed else
                           f"bound by {first_use[n]!r}") for n in sizes}
            rng = np.random.default_rng([GENERATION_SEED, index])
            args, kwargs, made = spec_inputs.generate(sizes, backend, device, rng)
            try:
                with _grad_mode(fn):
                    out = fn(*args, **kwargs)
            except Exception as exc:
                _annotate(exc, fn, made, sizes, origins, [n for n in names if n not in fixed])
                emit("shape", "check", "ERROR", {**values, "bindings": sizes},
                     f"{fn_name} raised {type(exc).__name__}: {exc}")
                raise
            bound = {**sizes, **output_only}
            all_origins = {**origins, **output_origins}
            before = set(bound)
            mismatches: list[str] = []
            try:
                _match_output(out, output, "output", bound, all_origins, mismatches)
            except _StructureError as exc:
                message = (f"check_shapes: {fn_name}'s output does not have the structure of "
                           f"the output spec: {exc}\n  at sizes {_fmt_bindings(sizes, origins)}\n"
                           f"  inputs: {_describe_inputs(made)}")
                emit("shape", "check", "ERROR", {**values, "bindings": sizes}, message)
                raise TypeError(message) from None
            where = ", ".join(f"{n}={_fmt_value(v)}" for n, v in combo.items())
            for k in set(bound) - before:
                output_only[k] = bound[k]
                output_origins[k] = f"{all_origins[k]} at {where or 'the fixed sizes'}"
            if mismatches:
                failures.append((sizes, {**all_origins},
                                 {p: arrays.shape_of(a) for p, a in made.items()}, mismatches))
    if not failures:
        emit("shape", "check", "ok", values)
        return
    sizes, origins, shapes, mismatches = failures[0]
    lines = [f"check_shapes failed for {fn_name}: {mismatches[0].splitlines()[0]}",
             f"The output does not match its spec at {len(failures)} of {len(combos)} size "
             f"combinations; smallest failing sizes: {_fmt_bindings(sizes, origins)}"]
    if output_only:
        lines.append(f"Bound by outputs: {_fmt_bindings(output_only, output_origins)}")
    lines.append("Inputs: " + ", ".join(f"{p}: {s}" for p, s in shapes.items()))
    lines += [f"  {m}" for m in mismatches]
    only_ones = all(any(v == 1 for k, v in f[0].items() if k not in fixed) for f in failures)
    if only_ones and len(failures) < len(combos):
        lines.append("It fails only when some size is 1: look for squeeze() without a dim, "
                     "or broadcasting that hides a missing dimension at other sizes.")
    lines.append(f"Reproduce: check_shapes(fn, ..., dims={dict(sizes)!r}).")
    values.update({"failed": len(failures), "smallest_failing": sizes,
                   "mismatches": mismatches})
    _fail("check", values, "\n".join(lines))


# ---- dependence along an axis (batch rows, time steps) ---------------------------


def _spread(size: int, limit: int) -> list[int]:
    if size <= limit:
        return list(range(size))
    if limit == 1:
        return [0]
    return sorted({round(k * (size - 1) / (limit - 1)) for k in range(limit)})


def _axis_of(shape: tuple, axis: int) -> int | None:
    n = len(shape)
    a = axis + n if axis < 0 else axis
    return a if 0 <= a < n else None


def _carries(x: Any, axis: int, size: int) -> bool:
    if not arrays.is_array(x):
        return False
    a = _axis_of(arrays.shape_of(x), axis)
    return a is not None and arrays.shape_of(x)[a] == size


def _per_index_max(diff: np.ndarray, axis: int) -> np.ndarray:
    a = _axis_of(diff.shape, axis)
    moved = np.moveaxis(diff, a, 0)
    if moved.size == 0:
        return np.zeros(moved.shape[0])
    flat = moved.reshape(moved.shape[0], -1)
    flat = np.where(np.isnan(flat), np.inf, flat)
    return flat.max(axis=1)


class _Setup:
    """Generated inputs for a single-size check along one axis (batch or time)."""

    def __init__(self, fn: Any, input: Any, dims: Any, backend: Any, axis: int, axis_arg: str,
                 preferred: int, check: str, exact: bool = False) -> None:
        self.fn = fn
        self.backend = _resolve_backend(fn, backend)
        self.inputs = _Inputs(fn, input, "input")
        self.inputs.validate_names()
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{axis_arg} must be an int, got {type(axis).__name__}")
        self.axis = int(axis)
        fixed = _check_dims(dims)
        names = self.inputs.names()
        stars = self.inputs.star_names()
        first_path, first = self.inputs.leaves[0][0], self.inputs.parsed[self.inputs.leaves[0][0]]
        axis_name = None
        if first.var is None:
            if _axis_of(tuple(first.dims), self.axis) is None:
                raise ValueError(
                    f"{axis_arg}={self.axis} is out of range for input {first_path!r} with "
                    f"spec {first.text!r} (rank {len(first.dims)})")
            tok = first.dims[_axis_of(tuple(first.dims), self.axis)]
            axis_name = tok.value if tok.kind == "name" else None
        elif 0 <= self.axis < len(first.head) and first.head[self.axis].kind == "name":
            axis_name = first.head[self.axis].value
        elif (self.axis < 0 and -self.axis <= len(first.tail)
              and first.tail[self.axis].kind == "name"):
            axis_name = first.tail[self.axis].value
        self.axis_name = axis_name
        sizes: dict[str, Any] = dict(fixed)
        if axis_name is not None and axis_name not in fixed:
            # Keep the axis size unlike every fixed size, so no other axis is mistaken for it.
            taken = {v for v in fixed.values() if not isinstance(v, tuple)}
            while preferred in taken and not exact:
                preferred += 1
            sizes[axis_name] = preferred
        pool = itertools.chain([3, 5, 6, 7, 2], itertools.count(8))
        used = {v for v in sizes.values() if not isinstance(v, tuple)}
        for n in names:
            if n in sizes:
                continue
            if n in stars:
                sizes[n] = (2,)
                continue
            v = next(pool)
            while v in used:
                v = next(pool)
            used.add(v)
            sizes[n] = v
        self.sizes = {n: sizes[n] for n in names if n in sizes} | {
            k: v for k, v in fixed.items() if k not in names}
        first_use = self.inputs.first_use()
        self.origins = {n: ("fixed by dims" if n in fixed else
                            f"bound by {first_use.get(n, '?')!r}")
                        for n in self.sizes}
        self.chosen = [n for n in names if n not in fixed]
        self.device = _module_device(fn)
        rng = np.random.default_rng([GENERATION_SEED, 1])
        self.rng = rng
        self.args, self.kwargs, self.made = self.inputs.generate(self.sizes, self.backend,
                                                                 self.device, rng)
        first_arr = self.made[first_path]
        a = _axis_of(arrays.shape_of(first_arr), self.axis)
        if a is None:
            raise ValueError(f"{axis_arg}={self.axis} is out of range for input {first_path!r} "
                             f"of shape {arrays.shape_of(first_arr)}")
        self.size = arrays.shape_of(first_arr)[a]
        self.carrying = [p for p, arr in self.made.items() if self._input_carries(p, arr)]
        self.specs = dict(self.inputs.leaves)
        self.check = check

    def _input_carries(self, path: str, arr: Any) -> bool:
        """Whether an input has the checked axis: by its spec's name there, else by size."""
        if not _carries(arr, self.axis, self.size):
            return False
        parsed = self.inputs.parsed[path]
        if self.axis_name is None or parsed.var is not None:
            return True
        d = parsed.dims[_axis_of(tuple(parsed.dims), self.axis)]
        return d.kind == "name" and d.value == self.axis_name

    def call(self, args: list, kwargs: dict, grad: bool = False, annotate: bool = True) -> Any:
        """Call fn with a fixed RNG seed (identical dropout masks), annotating errors."""
        torch = arrays.torch_module()
        mode = (torch.enable_grad() if grad else _grad_mode(self.fn)) if torch is not None \
            else contextlib.nullcontext()
        try:
            with seeded(GENERATION_SEED), mode:
                return self.fn(*args, **kwargs)
        except Exception as exc:
            if not annotate:
                raise
            _annotate(exc, self.fn, self.made, self.sizes, self.origins, self.chosen)
            emit("shape", self.check, "ERROR", self.values(),
                 f"{_fn_name(self.fn)} raised {type(exc).__name__}: {exc}")
            raise

    def values(self) -> dict[str, Any]:
        """Return the record values common to every outcome."""
        return {"fn": _fn_name(self.fn), "backend": self.backend,
                "bindings": {k: list(v) if isinstance(v, tuple) else v
                             for k, v in self.sizes.items()},
                "inputs": {p: list(arrays.shape_of(a)) for p, a in self.made.items()}}

    def replace(self, replacements: Mapping[str, Any]) -> tuple[list, dict]:
        """Return args/kwargs with the generated arrays at some paths replaced.

        Every array is a fresh copy, so a ``fn`` that modifies its inputs in place
        cannot change the inputs of the next call.
        """
        def build(tree: Any, path: str) -> Any:
            if isinstance(tree, (str, Spec)):
                return _copy(replacements.get(path, self.made[path]))
            if isinstance(tree, Mapping):
                return {k: build(v, f"{path}[{k!r}]") for k, v in tree.items()}
            if isinstance(tree, (list, tuple)):
                return _rebuild(tree, [build(v, f"{path}[{i}]") for i, v in enumerate(tree)])
            return tree

        args = [build(t, p) for p, t in zip(self.inputs.arg_paths, self.inputs.args)]
        kwargs = {k: build(t, k) for k, t in self.inputs.kwargs.items()}
        return args, kwargs

    def output_leaves(self, out: Any, size: int) -> tuple[list, list]:
        """Split output leaves into those carrying the axis and the others (by path)."""
        carry, other = [], []
        for path, leaf in _leaves(out, "output"):
            (carry if _carries(leaf, self.axis, size) else other).append((path, leaf))
        return carry, other


def _copy(x: Any) -> Any:
    """Copy an input; a leaf that requires grad becomes a differentiable clone of it."""
    if arrays.is_tensor(x):
        return x.clone()
    return np.array(x, copy=True) if isinstance(x, np.ndarray) else x


def _perturb(setup: _Setup, path: str, index: int, rng: np.random.Generator) -> Any:
    """Return input ``path`` with position ``index`` along the axis given fresh values."""
    x = setup.made[path]
    spec = setup.specs[path]
    a = _axis_of(arrays.shape_of(x), setup.axis)
    old = arrays.to_numpy(x)
    sl = (slice(None),) * a + (index,)
    kind = _dtype_kind(spec.dtype)
    block = np.array(old[sl], copy=True)
    if kind == "b":
        block = ~block
    elif kind in "iu":
        low = 0 if spec.low is None else int(spec.low)
        high = low + 10 if spec.high is None else int(spec.high)
        if high - low > 1:
            shift = rng.integers(1, high - low, size=block.shape)
            block = (block.astype(np.int64) - low + shift) % (high - low) + low
    else:
        fresh = np.asarray(_random_values(dataclasses.replace(spec, shape=""), block.shape, rng))
        block = np.where(block == fresh, fresh + 1, fresh)
    new = np.array(old, copy=True)
    new[sl] = block.astype(new.dtype) if spec.dtype != "bfloat16" else block
    return _to_backend(new, spec.dtype, setup.backend, setup.device, path)


def _check_method(method: Any) -> str:
    if method not in ("auto", "autograd", "perturbation"):
        raise ValueError(f"method must be 'auto', 'autograd' or 'perturbation', got {method!r}")
    return method


def _dependence(setup: _Setup, indices: list[int], perturb_indices: list[int],
                atol: float, method: str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
    """Measure how output positions along the axis depend on input positions.

    Returns a matrix ``M`` (``size x size``) where ``M[i, j]`` is the largest gradient
    (autograd path) or output change (perturbation path) of output position ``i`` with
    respect to input position ``j``; NaN where not measured. Also returns details.
    """
    size, axis = setup.size, setup.axis
    M = np.full((size, size), np.nan)
    info: dict[str, Any] = {"autograd": [], "perturbation": [], "skipped_outputs": [],
                            "not_carrying": [p for p in setup.made if p not in setup.carrying]}
    float_paths = [p for p in setup.carrying if _dtype_kind(setup.specs[p].dtype) in "fc"]
    other_paths = [p for p in setup.carrying if p not in float_paths]
    torch = arrays.torch_module()
    if method == "autograd" and (setup.backend != "torch" or not float_paths or other_paths):
        raise ValueError(
            f"{setup.check}: method='autograd' needs torch and floating-point inputs only; "
            f"inputs here: {_describe_inputs(setup.made)} (backend {setup.backend}). Token ids "
            "and masks cannot carry gradients: use method='auto' to perturb them instead.")
    if setup.backend == "torch" and float_paths and method != "perturbation":
        leaves = {p: setup.made[p].detach().clone().requires_grad_(True) for p in float_paths}
        args, kwargs = setup.replace(leaves)
        out = setup.call(args, kwargs, grad=True)
        carry, other = setup.output_leaves(out, size)
        info["skipped_outputs"] = [p for p, _ in other]
        if not carry:
            raise _no_axis_output(setup, other)
        differentiable = all(t.requires_grad and (t.is_floating_point() or t.is_complex())
                             for _, t in carry)
        if differentiable:
            gen = torch.Generator(device="cpu").manual_seed(GENERATION_SEED)
            weights = [torch.randn(t.shape, generator=gen, dtype=torch.float32).to(
                dtype=t.dtype, device=t.device) for _, t in carry]
            inputs = list(leaves.values())
            for i in indices:
                loss = sum((w.select(_axis_of(t.shape, axis), i) *
                            t.select(_axis_of(t.shape, axis), i)).real.sum()
                           for w, (_, t) in zip(weights, carry))
                grads = torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
                row = np.zeros(size)
                for g in grads:
                    if g is not None:
                        row = np.maximum(row, _per_index_max(arrays.to_numpy(g.abs()).astype(
                            np.float64), axis))
                M[i] = row
            info["autograd"] = float_paths
            info["backward_passes"] = len(indices)
            del out
        else:
            reason = ("an output does not require grad (fn detaches, runs under no_grad, or "
                      "returns integers)")
            if method == "autograd":
                raise ValueError(f"{setup.check}: method='autograd' impossible: {reason}")
            info["autograd_unavailable"] = reason
            other_paths = setup.carrying
    else:
        other_paths = setup.carrying
    if other_paths:
        base = setup.call(*setup.replace({}))
        again = setup.call(*setup.replace({}))
        carry, other = setup.output_leaves(base, size)
        info["skipped_outputs"] = [p for p, _ in other]
        if not carry:
            raise _no_axis_output(setup, other)
        base_np = [arrays.to_numpy(t).astype(np.float64) for _, t in carry]
        again_np = [arrays.to_numpy(t).astype(np.float64)
                    for _, t in setup.output_leaves(again, size)[0]]
        for (path, _), b, c in zip(carry, base_np, again_np):
            if b.shape != c.shape or not np.allclose(b, c, atol=atol, rtol=0, equal_nan=True):
                emit("shape", setup.check, "ERROR", setup.values(),
                     f"{_fn_name(setup.fn)} is not deterministic, so {setup.check} cannot run")
                raise AssertionError(
                    f"{setup.check}: {_fn_name(setup.fn)} gives different outputs ({path}) for "
                    "the same inputs and the same seed, so the perturbation check cannot "
                    "tell leaks from noise. Make fn deterministic (dropout in training mode "
                    "with a fixed seed is fine; nondeterministic GPU kernels are not) or "
                    "raise atol.")
        rng = np.random.default_rng([GENERATION_SEED, 2])
        for j in perturb_indices:
            replaced = {p: _perturb(setup, p, j, rng) for p in other_paths}
            out = setup.call(*setup.replace(replaced))
            changed = np.zeros(size)
            leaves_now = setup.output_leaves(out, size)[0]
            if [p for p, _ in leaves_now] != [p for p, _ in carry]:
                changed[:] = np.inf
            else:
                for b, (_, t) in zip(base_np, leaves_now):
                    now = arrays.to_numpy(t).astype(np.float64)
                    if now.shape != b.shape:
                        changed[:] = np.inf
                        continue
                    # Outputs may hold inf (masked logits): inf - inf is NaN, not a warning.
                    with np.errstate(invalid="ignore", over="ignore"):
                        diff = np.abs(now - b)
                    diff[(np.isnan(now) & np.isnan(b)) | (now == b)] = 0.0
                    changed = np.maximum(changed, _per_index_max(diff, axis))
            col = M[:, j]
            M[:, j] = np.where(np.isnan(col), changed, np.maximum(col, changed))
        info["perturbation"] = other_paths
        info["forward_passes"] = len(perturb_indices) + 2
    return M, info


def _no_axis_output(setup: _Setup, other: list) -> ValueError:
    shapes = ", ".join(f"{p}: {arrays.shape_of(t) if arrays.is_array(t) else type(t).__name__}"
                       for p, t in other) or "nothing"
    return ValueError(
        f"{setup.check}: no output of {_fn_name(setup.fn)} has the axis being checked "
        f"(dim {setup.axis} of size {setup.size}); outputs: {shapes}. Pass the axis of the "
        "output rows, or check a function that returns per-sample outputs.")


def _train_mode_modules(fn: Any) -> list[str]:
    if not arrays.is_module(fn):
        return []
    torch = arrays.require_torch("module checks")
    # Layers whose output depends on the batch or on the RNG only in training mode.
    suspects = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd)
    return [f"{name or '(root)'!r} ({type(m).__name__})" for name, m in fn.named_modules()
            if m.training and isinstance(m, suspects)]


def assert_batch_independent(fn: Any, input: Any, *, dims: Mapping[str, Any] | None = None,
                             batch_dim: int = 0, atol: float = 0.0, backend: str | None = None,
                             rows: int | None = None, method: str = "auto") -> None:
    """Check that output row ``i`` depends only on input row ``i``.

    With torch and floating-point inputs it backpropagates a randomly weighted sum of
    output row ``i`` (``(w * out[i]).sum()``, so a row that always sums to a constant,
    like a softmax, still shows its dependencies) and requires the input gradient to be
    zero outside row ``i``: one forward pass plus one backward pass per checked row.
    Integer or bool inputs (token ids, masks), numpy functions and outputs that carry
    no gradient are checked by perturbation instead: row ``j`` of the inputs gets fresh
    values and every other output row must stay unchanged (one forward per row).

    Args:
        fn: A function or ``nn.Module``, called in its current mode (buffers such as
            BatchNorm running statistics are restored afterwards).
        input: Input specs, as for :func:`check_shapes`.
        dims: Fixed sizes by name; the batch defaults to 4 and other names to small
            sizes that all differ.
        batch_dim: The batch axis of the inputs and outputs.
        atol: The largest tolerated gradient (autograd) or output change (perturbation)
            across rows; 0 means exactly none.
        backend: ``"numpy"`` or ``"torch"``, as for :func:`check_shapes`.
        rows: How many rows to check (spread over the batch); default all rows up to 8.
        method: ``"auto"`` (autograd where it can, perturbation elsewhere),
            ``"autograd"`` or ``"perturbation"`` (also catches dependencies hidden by a
            zero gradient, such as argmax or dead ReLUs, at one forward pass per row).

    Raises:
        AssertionError: A row depends on another row; names the pair.
        ValueError: Bad specs, or ``batch_dim`` out of range.
    """
    _check_atol(atol)
    _check_method(method)
    setup = _Setup(fn, input, dims, backend, batch_dim, "batch_dim", 4, "batch_independence")
    indices = _spread(setup.size, _check_rows(rows))
    with _preserve_buffers(fn):
        M, info = _dependence(setup, indices, indices, atol, method)
    values = {**setup.values(), "batch_dim": setup.axis, "rows_checked": indices,
              "paths": {"autograd": info["autograd"], "perturbation": info["perturbation"]},
              "backward_passes": info.get("backward_passes", 0),
              "forward_passes": info.get("forward_passes", 0) + (1 if info["autograd"] else 0),
              "skipped_outputs": info["skipped_outputs"]}
    leaks = [(i, j, float(M[i, j])) for i in range(setup.size) for j in range(setup.size)
             if i != j and not np.isnan(M[i, j]) and M[i, j] > atol]
    if not leaks:
        emit("shape", "batch_independence", "ok", values)
        return
    i, j, mag = max(leaks, key=lambda leak: (leak[2], -leak[0], -leak[1]))
    how = ("autograd: max |d output[{i}] / d input[{j}]| = {mag:.3g}" if info["autograd"]
           and not np.isnan(M[i, j]) and i in indices else
           "perturbation: changing input row {j} changed output row {i} by up to {mag:.3g}")
    by_out: dict[int, list[int]] = {}
    for a, b, _ in sorted(leaks):
        by_out.setdefault(a, []).append(b)
    pairs = "; ".join(f"{a} <- {', '.join(map(str, bs))}" for a, bs in by_out.items())
    lines = [f"batch_independence failed for {_fn_name(fn)}: output row {i} depends on input "
             f"row {j}.",
             f"  input row {j} leaks into output row {i} ({how.format(i=i, j=j, mag=mag)})",
             f"  leaking pairs (output row <- input rows): {pairs}",
             f"  checked rows {indices} of a batch of {setup.size} along batch_dim="
             f"{setup.axis}, atol={atol}",
             f"  inputs: {_describe_inputs(setup.made)}",
             f"  bindings: {_fmt_bindings(setup.sizes, setup.origins)}",
             "Likely causes:",
             "  - a view/reshape that reorders axes and so mixes samples (x.view(T, B, C) where "
             "x.transpose(0, 1) was meant; batch_first confusion);",
             "  - a softmax, mean or normalisation over the batch dim (dim=0);",
             "  - batch statistics: BatchNorm in training mode; call model.eval() for inference."]
    train = _train_mode_modules(fn)
    if train:
        lines.append(f"  modules in training mode here: {', '.join(train)}")
    lines.append("If the mixing is intended (contrastive losses, in-batch negatives), do not "
                 "assert batch independence for this function.")
    values.update({"leaks": [[a, b] for a, b, _ in leaks[:50]], "pair": [i, j],
                   "magnitude": mag})
    _fail("batch_independence", values, "\n".join(lines))


def _check_atol(atol: Any, what: str = "atol") -> float:
    if isinstance(atol, bool) or not isinstance(atol, (int, float, np.floating)) \
            or not atol >= 0 or not math.isfinite(atol):
        raise ValueError(f"{what} must be a finite number >= 0, got {atol!r}")
    return float(atol)


def _check_rows(rows: Any) -> int:
    if rows is None:
        return MAX_CHECKED_INDICES
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"rows must be a positive int or None, got {rows!r}")
    return int(rows)


def assert_causal(fn: Any, input: Any, *, dims: Mapping[str, Any] | None = None,
                  time_dim: int = 1, atol: float = 0.0, backend: str | None = None,
                  method: str = "auto") -> None:
    """Check that output step ``t`` depends on no input step after ``t``.

    The check for autoregressive and causal models: it catches a missing or off-by-one
    causal mask, a bidirectional layer, or a normalisation over time. Floating-point
    torch inputs use autograd (one backward pass per checked step); token ids and
    numpy functions use perturbation (one forward pass per future step). Every step
    is checked up to a length of 32.

    Args:
        fn: A function or ``nn.Module``, called in its current mode.
        input: Input specs, as for :func:`check_shapes`.
        dims: Fixed sizes by name; the time axis defaults to 6 steps.
        time_dim: The time axis of the inputs and outputs.
        atol: The largest tolerated gradient or output change; 0 means exactly none.
        backend: ``"numpy"`` or ``"torch"``, as for :func:`check_shapes`.
        method: ``"auto"``, ``"autograd"`` or ``"perturbation"``, as for
            :func:`assert_batch_independent`.

    Raises:
        AssertionError: A step sees the future; names the earliest such step and the
            future step it sees.
        ValueError: Bad specs, or ``time_dim`` out of range.
    """
    _check_atol(atol)
    _check_method(method)
    setup = _Setup(fn, input, dims, backend, time_dim, "time_dim", 6, "causality")
    steps = _spread(setup.size, MAX_CHECKED_STEPS)
    with _preserve_buffers(fn):
        M, info = _dependence(setup, steps, [s for s in steps if s > 0], atol, method)
    values = {**setup.values(), "time_dim": setup.axis, "steps_checked": steps,
              "paths": {"autograd": info["autograd"], "perturbation": info["perturbation"]},
              "backward_passes": info.get("backward_passes", 0),
              "forward_passes": info.get("forward_passes", 0) + (1 if info["autograd"] else 0),
              "skipped_outputs": info["skipped_outputs"]}
    leaks = [(t, s, float(M[t, s])) for t in range(setup.size) for s in range(t + 1, setup.size)
             if not np.isnan(M[t, s]) and M[t, s] > atol]
    if not leaks:
        emit("shape", "causality", "ok", values)
        return
    t, s, mag = min(leaks, key=lambda leak: (leak[0], leak[1]))
    by_t: dict[int, list[int]] = {}
    for a, b, _ in leaks:
        by_t.setdefault(a, []).append(b)
    seen = "; ".join(f"t={a} sees {', '.join(map(str, bs))}" for a, bs in sorted(by_t.items()))
    ahead = s - t
    lines = [f"causality failed for {_fn_name(fn)}: output at t={t} depends on input at "
             f"t={s}, {ahead} step{'s' if ahead > 1 else ''} in the future.",
             f"  max {'gradient' if info['autograd'] else 'output change'} of step {t} with "
             f"respect to step {s}: {mag:.3g} (atol={atol})",
             f"  every step that sees the future: {seen}",
             f"  {setup.size} steps along time_dim={setup.axis}; inputs: "
             f"{_describe_inputs(setup.made)}",
             f"  bindings: {_fmt_bindings(setup.sizes, setup.origins)}",
             "Likely causes:"]
    if all(b - a == 1 for a, bs in by_t.items() for b in bs):
        lines.append("  - every leak is exactly one step ahead: an off-by-one causal mask, e.g. "
                     "torch.tril(ones(T, T), diagonal=1) where diagonal=0 was meant, or "
                     "targets not shifted against the inputs;")
    lines += ["  - a missing causal mask (is_causal=True not passed, attn_mask=None);",
              "  - a bidirectional RNN, a centred (unpadded-left) convolution, or a "
              "normalisation/pooling over the time axis."]
    values.update({"leaks": [[a, b] for a, b, _ in leaks[:50]], "earliest": [t, s],
                   "magnitude": mag})
    _fail("causality", values, "\n".join(lines))


def assert_batch_invariant(fn: Any, input: Any, *, dims: Mapping[str, Any] | None = None,
                           batch_sizes: Sequence[int] = (1, 4), atol: float = 1e-6,
                           rtol: float = 1e-5, batch_dim: int = 0,
                           backend: str | None = None) -> None:
    """Check that a sample's output does not depend on the batch it is computed in.

    The inputs are generated once at the largest batch size; the output of the whole
    batch is compared, sample by sample, with the outputs of the same samples computed
    in chunks of each smaller batch size. It catches models left in training mode at
    inference (BatchNorm batch statistics, dropout), and padding or masking that
    depends on the other samples.

    Args:
        fn: A function or ``nn.Module``, called in its current mode.
        input: Input specs, as for :func:`check_shapes`.
        dims: Fixed sizes by name (not the batch's: ``batch_sizes`` sets it).
        batch_sizes: At least two different batch sizes.
        atol: Absolute tolerance of the comparison.
        rtol: Relative tolerance of the comparison.
        batch_dim: The batch axis of the inputs and outputs.
        backend: ``"numpy"`` or ``"torch"``, as for :func:`check_shapes`.

    Raises:
        AssertionError: A sample's output changes with the batch; names the sample,
            the batch sizes and the difference.
        ValueError: Bad specs, tolerances or batch sizes, or ``batch_dim`` out of range.
    """
    _check_atol(atol)
    _check_atol(rtol, "rtol")
    if isinstance(batch_sizes, (str, bytes)) or not hasattr(batch_sizes, "__iter__"):
        raise ValueError(f"batch_sizes must be a sequence of ints, got {batch_sizes!r}")
    sizes = list(batch_sizes)
    if any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1 for b in sizes):
        raise ValueError(f"batch_sizes must hold positive ints, got {batch_sizes!r}")
    sizes = sorted(set(int(b) for b in sizes))
    if len(sizes) < 2:
        raise ValueError(f"batch_sizes needs at least two different sizes to compare, got "
                         f"{batch_sizes!r}")
    big = sizes[-1]
    setup = _Setup(fn, input, dims, backend, batch_dim, "batch_dim", big, "batch_invariance",
                   exact=True)
    if setup.size != big:
        raise ValueError(
            f"batch_invariance: the batch dim of input {setup.inputs.leaves[0][0]!r} is "
            f"{setup.size}, not the largest batch size {big}; name the batch dim in the spec "
            "(e.g. 'B T C') and do not fix it in dims")
    values = {**setup.values(), "batch_dim": setup.axis, "batch_sizes": sizes}
    with _preserve_buffers(fn):
        full = setup.call(*setup.replace({}))
        carry, other = setup.output_leaves(full, big)
        if not carry:
            raise _no_axis_output(setup, other)
        full_np = {p: arrays.to_numpy(t).astype(np.float64) for p, t in carry}
        worst: dict[str, Any] | None = None
        for b in sizes[:-1]:
            pieces: dict[str, list] = {p: [] for p in full_np}
            for start in range(0, big, b):
                stop = min(start + b, big)
                replaced = {}
                for p in setup.carrying:
                    x = setup.made[p]
                    a = _axis_of(arrays.shape_of(x), setup.axis)
                    replaced[p] = x[(slice(None),) * a + (slice(start, stop),)]
                try:
                    out = setup.call(*setup.replace(replaced), annotate=False)
                except Exception as exc:
                    train = _train_mode_modules(fn)
                    message = (
                        f"batch_invariance failed for {_fn_name(fn)}: it works on a batch of "
                        f"{big} but raises {type(exc).__name__} on a batch of {stop - start} "
                        f"(samples {start}..{stop - 1}): {exc}\n"
                        f"  inputs: {_describe_inputs(setup.made)}\n"
                        f"  bindings: {_fmt_bindings(setup.sizes, setup.origins)}\n"
                        "Likely cause: the model is in training mode (BatchNorm needs more "
                        "than one value per channel to compute batch statistics); call "
                        "model.eval() for inference."
                        + (f"\n  modules in training mode here: {', '.join(train)}"
                           if train else ""))
                    values.update({"raised": f"{type(exc).__name__}: {exc}",
                                   "batch": stop - start})
                    emit("shape", "batch_invariance", "FAILED", values, message)
                    raise AssertionError(message) from exc
                got = dict(setup.output_leaves(out, stop - start)[0])
                for p in full_np:
                    if p not in got:
                        _fail("batch_invariance", values,
                              f"batch_invariance failed for {_fn_name(fn)}: {p} has the batch "
                              f"axis for a batch of {big} but not for a batch of "
                              f"{stop - start}; a squeeze() without a dim drops a batch of 1.")
                    pieces[p].append(arrays.to_numpy(got[p]).astype(np.float64))
            for p, ref in full_np.items():
                a = _axis_of(ref.shape, setup.axis)
                now = np.concatenate(pieces[p], axis=a)
                if now.shape != ref.shape:
                    _fail("batch_invariance", values,
                          f"batch_invariance failed for {_fn_name(fn)}: {p} has shape "
                          f"{now.shape} when computed in batches of {b}, {ref.shape} in one "
                          "batch; its non-batch dims depend on the batch (padding to the "
                          "longest sample?).")
                with np.errstate(invalid="ignore", over="ignore"):
                    bad = ~np.isclose(now, ref, atol=atol, rtol=rtol, equal_nan=True)
                    diff = np.where(bad, np.abs(now - ref), 0.0)
                if bad.any():
                    diff = np.where(np.isnan(diff), np.inf, diff)
                    per_row = _per_index_max(diff, setup.axis)
                    row = int(np.argmax(per_row))
                    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
                    bad_rows = [int(r) for r in np.flatnonzero(per_row > 0)]
                    if worst is None or per_row[row] > worst["diff"]:
                        worst = {"path": p, "batch": b, "row": row, "diff": float(per_row[row]),
                                 "index": tuple(int(w) for w in where),
                                 "alone": float(now[where]), "batched": float(ref[where]),
                                 "rows": bad_rows}
    if worst is None:
        emit("shape", "batch_invariance", "ok", values)
        return
    w = worst
    lines = [f"batch_invariance failed for {_fn_name(fn)}: sample {w['row']}'s {w['path']} "
             f"changes between a batch of {w['batch']} and a batch of {big}.",
             f"  computed in a batch of {w['batch']} vs a batch of {big}: max abs diff "
             f"{w['diff']:.3g} at {w['path']}{list(w['index'])} ({w['alone']:.6g} vs "
             f"{w['batched']:.6g}; atol={atol}, rtol={rtol})",
             f"  samples that change: {w['rows']} of {big}",
             f"  inputs: {_describe_inputs(setup.made)}",
             f"  bindings: {_fmt_bindings(setup.sizes, setup.origins)}",
             "Likely causes:",
             "  - the model is in training mode at inference: BatchNorm uses batch statistics "
             "and dropout is active; call model.eval();",
             "  - padding or masking that depends on the longest sample in the batch, or a "
             "normalisation over the batch dim;",
             "  - numerical noise from different kernel paths per batch size: raise atol/rtol "
             "if the difference is tiny."]
    train = _train_mode_modules(fn)
    if train:
        lines.insert(5, f"  modules in training mode here: {', '.join(train)}")
    values.update({"worst": w})
    _fail("batch_invariance", values, "\n".join(lines))


# ---- the fixture class -----------------------------------------------------------


class ShapeInvariants:
    """The ``shape_invariants`` fixture: shape, batch and causality checks for one test.

    Each method is also a plain function (:func:`check_shapes`,
    :func:`assert_batch_independent`, :func:`assert_batch_invariant`,
    :func:`assert_causal`); every call adds a ``shape`` record to the session report.

    Args:
        request: The pytest fixture request of the test.
    """

    def __init__(self, request: Any) -> None:
        self.request = request

    def check(self, fn: Any, inputs: Any, output: Any, *, dims: Mapping[str, Any] | None = None,
              vary: Mapping[str, Sequence[Any]] | None = None,
              backend: str | None = None) -> None:
        """Check ``fn``'s output shapes over many generated input sizes (see :func:`check_shapes`).

        Args:
            fn: A function or ``nn.Module``.
            inputs: Input specs (a spec, or a sequence or mapping of them).
            output: The output spec, or a tuple/list/dict of them with None to skip.
            dims: Fixed sizes by name.
            vary: Per name, the sizes to try.
            backend: ``"numpy"`` or ``"torch"``; by default from ``fn``.
        """
        check_shapes(fn, inputs, output, dims=dims, vary=vary, backend=backend)

    def batch_independence(self, fn: Any, input: Any, *, dims: Mapping[str, Any] | None = None,
                           batch_dim: int = 0, atol: float = 0.0, backend: str | None = None,
                           rows: int | None = None, method: str = "auto") -> None:
        """Check output row ``i`` depends only on input row ``i`` (:func:`assert_batch_independent`).

        Args:
            fn: A function or ``nn.Module``.
            input: Input specs.
            dims: Fixed sizes by name.
            batch_dim: The batch axis.
            atol: The largest tolerated cross-row gradient or change.
            backend: ``"numpy"`` or ``"torch"``; by default from ``fn``.
            rows: How many rows to check; default all up to 8.
            method: ``"auto"``, ``"autograd"`` or ``"perturbation"``.
        """
        assert_batch_independent(fn, input, dims=dims, batch_dim=batch_dim, atol=atol,
                                 backend=backend, rows=rows, method=method)

    def batch_invariance(self, fn: Any, input: Any, *, dims: Mapping[str, Any] | None = None,
                         batch_sizes: Sequence[int] = (1, 4), atol: float = 1e-6,
                         rtol: float = 1e-5, batch_dim: int = 0,
                         backend: str | None = None) -> None:
        """Check outputs do not depend on the batch size (see :func:`assert_batch_invariant`).

        Args:
            fn: A function or ``nn.Module``.
            input: Input specs.
            dims: Fixed sizes by name.
            batch_sizes: At least two batch sizes to compare.
            atol: Absolute tolerance.
            rtol: Relative tolerance.
            batch_dim: The batch axis.
            backend: ``"numpy"`` or ``"torch"``; by default from ``fn``.
        """
        assert_batch_invariant(fn, input, dims=dims, batch_sizes=batch_sizes, atol=atol,
                               rtol=rtol, batch_dim=batch_dim, backend=backend)

    def causality(self, fn: Any, input: Any, *, dims: Mapping[str, Any] | None = None,
                  time_dim: int = 1, atol: float = 0.0, backend: str | None = None,
                  method: str = "auto") -> None:
        """Check output step ``t`` sees no input after ``t`` (see :func:`assert_causal`).

        Args:
            fn: A function or ``nn.Module``.
            input: Input specs.
            dims: Fixed sizes by name.
            time_dim: The time axis.
            atol: The largest tolerated dependence on the future.
            backend: ``"numpy"`` or ``"torch"``; by default from ``fn``.
            method: ``"auto"``, ``"autograd"`` or ``"perturbation"``.
        """
        assert_causal(fn, input, dims=dims, time_dim=time_dim, atol=atol, backend=backend,
                      method=method)
