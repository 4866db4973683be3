"""The shape spec grammar, :class:`Spec` and :func:`assert_shape`.

A spec is a space-separated list of dimensions, each one of: an integer; a name
(``B``, ``batch``) that binds on first use; ``_`` (any one dimension); ``*name`` (zero
or more dimensions, bound as a tuple); ``...`` (any dimensions, unbound). ``""`` is a
scalar. At most one ``*name`` or ``...`` per spec, so matching never guesses.

These are the public building blocks the other shape modules and
:mod:`pytest_mlcheck.strategies` use: :func:`parse_spec`, :func:`normalize_dtype`,
:func:`dtype_kind`, :func:`check_dims`, :func:`format_bindings`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
from typing import Any, Mapping, MutableMapping

import numpy as np

from .. import arrays, validation
from ..report import emit

_GRAMMAR = ("each dimension is an integer, a name (binds on first use), '_' (any one "
            "dimension), '*name' (zero or more dimensions, bound as a tuple) or '...' "
            "(any dimensions)")

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_MISSING = object()


# ---- the spec grammar ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Dim:
    """One dimension of a parsed spec: its kind, text, value and column."""

    kind: str  # "int", "name", "any", "star" or "ellipsis"
    text: str
    value: Any  # the size of an "int", the name of a "name" or "star"
    col: int  # where the token starts in the spec text


@dataclasses.dataclass(frozen=True)
class ParsedSpec:
    """A parsed spec: all dimensions, and those before, at and after the variadic one."""

    text: str
    dims: tuple
    head: tuple  # the dimensions before the variadic one
    var: Any  # the "star" or "ellipsis" dimension, or None
    tail: tuple  # the dimensions after it

    @property
    def names(self) -> list[str]:
        """Return the names the spec binds (``name`` and ``*name`` dimensions), in order."""
        return [d.value for d in self.dims if d.kind in ("name", "star")]


def _spec_error(text: str, dim_text: str, col: int, reason: str) -> ValueError:
    pointer = " " * col + "^" * max(1, len(dim_text))
    return ValueError(
        f"bad shape spec {text!r}: {reason}\n    {text!r}\n     {pointer}\n"
        f"  grammar: {_GRAMMAR}; examples: 'B 3 H W', 'B T C', '*batch 10', '' (a scalar)"
    )


@functools.lru_cache(maxsize=1024)
def _parse_text(text: str) -> ParsedSpec:
    dims: list[Dim] = []
    for match in re.finditer(r"\S+", text):
        tok, col = match.group(), match.start()
        if tok.isdigit() and tok.isascii():
            dims.append(Dim("int", tok, int(tok), col))
        elif tok == "_":
            dims.append(Dim("any", tok, None, col))
        elif tok == "...":
            dims.append(Dim("ellipsis", tok, None, col))
        elif tok.startswith("*"):
            name = tok[1:]
            if not _NAME_RE.match(name) or name == "_":
                raise _spec_error(text, tok, col, f"{tok!r} is not '*' followed by a name")
            dims.append(Dim("star", tok, name, col))
        elif _NAME_RE.match(tok):
            dims.append(Dim("name", tok, tok, col))
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
        return ParsedSpec(text, tuple(dims), tuple(dims[:k]), dims[k], tuple(dims[k + 1:]))
    return ParsedSpec(text, tuple(dims), tuple(dims), None, ())


def parse_spec(spec: Any, what: str = "spec") -> ParsedSpec:
    """Parse a shape spec (a string or a :class:`Spec`'s shape); cached per text.

    Args:
        spec: ``"B T C"`` or a :class:`Spec`.
        what: What the spec belongs to, for the message.

    Returns:
        The parsed spec.

    Raises:
        TypeError: Not a string or Spec.
        ValueError: Not in the grammar; the message points at the bad dimension.
    """
    if isinstance(spec, Spec):
        spec = spec.shape
    if not isinstance(spec, str):
        raise TypeError(f"{what}: a shape spec must be a string such as 'B T C', "
                        f"got {type(spec).__name__}")
    return _parse_text(spec)


# ---- dtypes ----------------------------------------------------------------------


def normalize_dtype(dtype: Any, what: str = "dtype") -> str:
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


def dtype_kind(name: str) -> str:
    """Return numpy's kind letter of a dtype name (``f`` for bfloat16, which numpy lacks).

    Args:
        name: A canonical dtype name (see :func:`normalize_dtype`).

    Returns:
        ``b``, ``i``, ``u``, ``f`` or ``c``.
    """
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
        parse_spec(self.shape, "Spec.shape")
        name = normalize_dtype(self.dtype, f"Spec({self.shape!r}).dtype")
        object.__setattr__(self, "dtype", name)
        for field in ("low", "high"):
            value = getattr(self, field)
            if value is not None:
                validation.number(value, f"Spec({self.shape!r}).{field}", hint="or None")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"Spec({self.shape!r}): low ({self.low}) must be below high "
                             f"({self.high}); high is exclusive")
        if dtype_kind(name) == "b" and (self.low is not None or self.high is not None):
            raise ValueError(f"Spec({self.shape!r}): a bool input takes no low/high")
        if dtype_kind(name) in "iu":
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


def format_size(value: Any) -> str:
    """Return a bound size as messages show it: ``4`` or ``(2, 3)`` for a ``*name``.

    Args:
        value: An int or a tuple of ints.

    Returns:
        The text.
    """
    return str(tuple(value)) if isinstance(value, tuple) else str(value)


def format_bindings(values: Mapping[str, Any], origins: Mapping[str, str]) -> str:
    """Return ``B=4 (bound by 'x'), C=8 (fixed by dims)``: sizes with where they came from.

    Args:
        values: Name to size.
        origins: Name to where it was bound.

    Returns:
        The text, ``(none)`` when empty.
    """
    if not values:
        return "(none)"
    return ", ".join(f"{k}={format_size(v)} ({origins.get(k, 'given in dims')})"
                     for k, v in values.items())


def match_shape(shape: tuple, parsed: ParsedSpec, bound: Mapping[str, Any]) -> tuple[dict, str]:
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

    def one(i: int, d: Dim) -> str:
        size = shape[i]
        if d.kind == "int" and size != d.value:
            return f"dim {i} is {size} but the spec says {d.value}"
        if d.kind == "name":
            have = lookup(d.value)
            if have is _MISSING:
                new[d.value] = size
            elif isinstance(have, tuple):
                return (f"'{d.value}' is bound to several dims {format_size(have)} "
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
            return new, f"{where} but *{name}={format_size(have)}{{origin:{name}}}"
    for k, d in enumerate(parsed.tail):
        reason = one(n - t + k, d)
        if reason:
            return new, reason
    return new, ""


def explain_mismatch(reason: str, origins: Mapping[str, str]) -> str:
    """Fill the ``{origin:NAME}`` placeholders of a mismatch reason with each name's origin.

    Args:
        reason: A reason from :func:`match_shape`.
        origins: Name to where it was bound.

    Returns:
        The reason in words.
    """
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


ORIGINS = _OriginTable()


def check_dims(dims: Any, what: str = "dims") -> dict[str, Any]:
    """Validate fixed sizes by name (``{"C": 32, "batch": (2, 3)}``) and return them as ints.

    Args:
        dims: ``None`` or a mapping of dimension name to size (a tuple for ``*name``).
        what: The argument's name in messages.

    Returns:
        The sizes (``{}`` for ``None``).

    Raises:
        TypeError: Not a mapping.
        ValueError: A key that is not a dimension name, or a size that is not a
            non-negative int.
    """
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


def array_shape(x: Any, what: str) -> tuple[int, ...]:
    """Return the shape of an array or tensor, or raise ``TypeError`` naming ``what``.

    Args:
        x: A numpy array, torch tensor or array-like with ``shape`` and ``dtype``.
        what: What it is, for the message.

    Returns:
        The shape as ints.
    """
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
        TypeError: ``x`` is not an array or tensor, or ``dims`` is not a dict.
    """
    parsed = parse_spec(spec)
    if dtype is None and isinstance(spec, Spec):
        dtype = spec.dtype
    want_dtype = None if dtype is None else normalize_dtype(dtype)
    if dims is not None and not isinstance(dims, MutableMapping):
        raise TypeError(f"dims must be a dict, got {type(dims).__name__}")
    bound = check_dims(dims)
    origins = ORIGINS.get(dims) if dims is not None else {}
    label = repr(name) if name else f"spec {parsed.text!r}"
    shape = array_shape(x, repr(name) if name else "x")
    new, reason = match_shape(shape, parsed, bound)
    here = {k: "bound here" for k in new}
    values = {"shape": list(shape), "spec": parsed.text, "dtype": arrays.dtype_name(x)}
    prefix = f"{name}: " if name else ""
    if reason:
        message = (f"{prefix}shape {shape} does not match {parsed.text!r}: "
                   f"{explain_mismatch(reason, {**origins, **here})}\n"
                   f"  bindings: {format_bindings({**bound, **new}, {**origins, **here})}")
        hint = shape_hint(shape, parsed, {**bound, **new}, reason)
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
            ORIGINS.remember(dims, k, v, f"bound by {label}")
    result = {**bound, **new}
    for k, v in result.items():
        origin = origins.get(k, "given in dims") if k in bound else f"bound by {label}"
        ORIGINS.remember(result, k, v, origin)
    return result


def shape_hint(shape: tuple, parsed: ParsedSpec, bindings: Mapping[str, Any], reason: str) -> str:
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


