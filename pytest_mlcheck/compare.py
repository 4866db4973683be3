"""The one comparison core: flatten output trees into leaves and diff two trees.

Every check that compares outputs goes through here: ``metric_regression.check_array``
(a snapshot against the current array), the determinism checks (run against run),
``batch_invariance`` (a batch against its chunks) and ``device_consistency`` (one
device against another). So a difference reads the same wherever it is found:

* the leaf's path (``output[1]['logits']``, ``output.hidden``);
* a changed type, shape or dtype, or a changed container structure;
* how many elements differ, the max absolute and relative error, the first
  mismatching indices with both values, and NaN/Inf appearing on one side only.

Rules that hold everywhere:

* float and complex elements match when ``|a - b| <= atol + rtol * |a|`` (``a`` is the
  first, reference tree); NaN matches NaN and an infinity the same infinity at the same
  place; at zero tolerance the comparison is bitwise (``-0.0`` differs from ``0.0``);
* integer and bool elements compare exactly unless the caller says its tolerance is
  meant for them too (``integer_tolerance=True``): token id 120000 is never 120001;
* dict keys are compared as sets and walked in sorted order, so key order is no
  difference; objects that cannot be compared raise :class:`UncomparableOutputError`
  naming their path.

Arrays and tensors are copied when flattened, so a function that later overwrites a
buffer it returned cannot make two runs look equal. torch is never imported here.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import numbers
import pathlib
from typing import Any, Callable

import numpy as np

from .arrays import dtype_name, is_tensor, shape_of, to_numpy, torch_module
from .validation import format_value

#: Values compared with ``==`` as a whole (not element-wise).
_ATOMS = (str, bytes, type(None), enum.Enum, fractions.Fraction, decimal.Decimal,
          pathlib.PurePath, datetime.date, datetime.time, datetime.timedelta, range, np.dtype)

#: How many mismatching elements a difference lists with both values.
SHOWN_ELEMENTS = 5


class UncomparableOutputError(TypeError):
    """An output contains an object that cannot be compared between runs."""


@dataclasses.dataclass
class Leaf:
    """One comparable piece of an output tree.

    Attributes:
        path: Where it is, e.g. ``output[1]['logits']``.
        kind: ``array``, ``scalar``, ``atom`` or ``container``.
        value: A numpy copy for arrays and scalars; the object for atoms; for
            containers, their type name and length or field/key names.
        meta: For arrays ``(type name, dtype name, shape, device type)``; for
            scalars and atoms ``(type name,)``.
    """

    path: str
    kind: str
    value: Any
    meta: tuple = ()

    def describe(self) -> str:
        """Return the leaf's type in words (``numpy.ndarray of shape (2, 3), dtype float32``)."""
        if self.kind == "array":
            kind, dtype, shape, device = self.meta
            where = "" if device == "cpu" else f" on {device}"
            return f"{kind} of shape {shape}, dtype {dtype}{where}"
        if self.kind == "container":
            return str(self.value[0])
        return str(self.meta[0])


@dataclasses.dataclass
class Difference:
    """One difference between two output trees.

    Attributes:
        path: Where it is, e.g. ``output[1]['logits']``.
        what: ``values``, ``dtype``, ``shape``, ``type`` or ``structure``.
        text: A multi-line human description (shape, dtype, counts, indices, errors).
        values: The same facts as JSON-serialisable values, for the report: ``n_diff``,
            ``n_total``, ``max_abs_diff``, ``max_rel_diff``, ``first_index``,
            ``first_values``, ``mismatches`` (index and both values, a few),
            ``nonfinite`` and ``became_nonfinite`` for value differences.
    """

    path: str
    what: str
    text: str
    values: dict


# ---- flattening -------------------------------------------------------------------------


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _is_torch_atom(x: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(x, (torch.dtype, torch.device))


def _array_copy(x: Any, path: str) -> tuple[np.ndarray, tuple[str, str]]:
    if is_tensor(x):
        t = x
        torch = torch_module()
        if t.is_nested:
            raise UncomparableOutputError(
                f"{path} is a nested tensor, whose ragged parts have no single shape; "
                "return `t.unbind()` (a list of tensors) instead")
        if t.device.type == "meta":
            raise UncomparableOutputError(
                f"{path} is a tensor on the meta device, which holds no values to compare; "
                "materialise it (e.g. `module.to_empty(device='cpu')`) first")
        if t.layout != torch.strided:
            t = t.to_dense()
        try:
            arr = to_numpy(t)
        except TypeError:  # dtypes numpy cannot hold (float8...): compare as float64
            arr = to_numpy(t.detach().cpu().double())
        return np.array(arr, copy=True), ("torch.Tensor", str(x.device.type))
    if x.dtype.kind in "OV":
        raise UncomparableOutputError(
            f"{path} is a numpy array of dtype {x.dtype}, whose elements cannot be compared "
            "reliably between runs; return numeric or string arrays (or lists of them) instead")
    return np.array(x, copy=True), ("numpy.ndarray", "cpu")


def flatten(tree: Any, root: str = "output") -> list[Leaf]:
    """Flatten an output tree into comparable leaves, copying every array and tensor.

    Args:
        tree: Arrays, tensors, numbers, strings, ``None`` and tuples, lists, dicts,
            dataclasses and namedtuples of them, nested to any depth.
        root: The name of the root in paths and messages.

    Returns:
        The leaves in a canonical order (dict keys sorted), containers included as
        structural entries ahead of their children.

    Raises:
        UncomparableOutputError: When an object cannot be compared; the message names its path.
    """
    leaves: list[Leaf] = []
    _flatten(tree, root, leaves, set())
    return leaves


def _flatten(x: Any, path: str, out: list[Leaf], active: set[int]) -> None:
    if isinstance(x, np.ndarray) or is_tensor(x):
        arr, (kind, device) = _array_copy(x, path)
        out.append(Leaf(path, "array", arr, (kind, dtype_name(x), shape_of(x), device)))
        return
    if isinstance(x, (bool, np.bool_)):
        out.append(Leaf(path, "scalar", np.asarray(x), (type(x).__name__,)))
        return
    if isinstance(x, _ATOMS) or _is_torch_atom(x):
        out.append(Leaf(path, "atom", x, (type(x).__name__,)))
        return
    if isinstance(x, (numbers.Number, np.generic)):
        kind = "scalar" if isinstance(x, (numbers.Complex, np.number)) else "atom"
        out.append(Leaf(path, kind, np.asarray(x) if kind == "scalar" else x, (type(x).__name__,)))
        return
    if id(x) in active:
        raise UncomparableOutputError(f"{path} contains itself (a reference cycle); "
                                      "return a tree of arrays, numbers and containers")
    active.add(id(x))
    try:
        _flatten_container(x, path, out, active)
    finally:
        active.discard(id(x))


def _flatten_container(x: Any, path: str, out: list[Leaf], active: set[int]) -> None:
    name = type(x).__qualname__
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        fields = [f.name for f in dataclasses.fields(x)]
        out.append(Leaf(path, "container", (name, tuple(fields))))
        for field in fields:
            _flatten(getattr(x, field), f"{path}.{field}", out, active)
    elif _is_namedtuple(x):
        out.append(Leaf(path, "container", (name, tuple(x._fields))))
        for field, value in zip(x._fields, x):
            _flatten(value, f"{path}.{field}", out, active)
    elif isinstance(x, (tuple, list)):
        out.append(Leaf(path, "container", (name, len(x))))
        for i, value in enumerate(x):
            _flatten(value, f"{path}[{i}]", out, active)
    elif isinstance(x, dict):
        keys = sorted(x, key=repr)
        out.append(Leaf(path, "container", (name, tuple(repr(k) for k in keys))))
        for key in keys:
            _flatten(x[key], f"{path}[{key!r}]", out, active)
    elif isinstance(x, (set, frozenset)):
        for item in x:
            if not isinstance(item, (_ATOMS, numbers.Number)):
                raise UncomparableOutputError(
                    f"{path} is a set holding a {type(item).__name__}; sets of numbers "
                    "and strings only can be compared")
        out.append(Leaf(path, "atom", frozenset(x), (type(x).__name__,)))
    else:
        raise UncomparableOutputError(
            f"{path} is a {type(x).__module__}.{type(x).__qualname__}, which cannot be compared "
            "between runs (only arrays, tensors, numbers, strings, None and tuples, lists, "
            "dicts, dataclasses and namedtuples of them can). Return the values that matter "
            "instead, e.g. `dataclasses.asdict(obj)`, `vars(obj)` or a tuple of its arrays.")


# ---- element-wise comparison -------------------------------------------------------------


def _bits_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise equality of float arrays, with NaN equal to NaN in the same position."""
    if a.dtype == b.dtype and a.dtype.itemsize in (2, 4, 8):
        ua = np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")
        ub = np.ascontiguousarray(b).view(f"u{b.dtype.itemsize}")
        equal = ua == ub
    else:
        equal = (a == b) & (np.signbit(a) == np.signbit(b))
    return equal | (np.isnan(a) & np.isnan(b))


def equal_mask(first: np.ndarray, second: np.ndarray, atol: float = 0.0, rtol: float = 0.0,
               integer_tolerance: bool = False) -> np.ndarray:
    """Return where two same-shape arrays match, element by element.

    Args:
        first: The reference array (the relative tolerance scales with it).
        second: The array compared with it.
        atol: Absolute tolerance for floats.
        rtol: Relative tolerance for floats.
        integer_tolerance: Apply ``atol``/``rtol`` to integer and bool elements too;
            by default they compare exactly.

    Returns:
        A bool array of the common shape.
    """
    exact = atol == 0 and rtol == 0
    kinds = first.dtype.kind + second.dtype.kind
    with np.errstate(all="ignore"):
        if set(kinds) <= set("biu"):
            if exact or not integer_tolerance:
                return np.asarray(first == second)
            a, b = first.astype(np.float64), second.astype(np.float64)
            return np.abs(b - a) <= atol + rtol * np.abs(a)
        if set(kinds) <= set("biufc"):
            if exact:
                if "c" in kinds:
                    a, b = first.astype(np.complex128), second.astype(np.complex128)
                    return _bits_equal(a.real, b.real) & _bits_equal(a.imag, b.imag)
                return _bits_equal(first, second)
            return np.isclose(second, first, rtol=rtol, atol=atol, equal_nan=True)
        return np.asarray(first == second)


def _item(x: np.ndarray, index: tuple) -> Any:
    value = x[index]
    return value.item() if isinstance(value, np.generic) else value


def diff_arrays(first: np.ndarray, second: np.ndarray, *, path: str = "array",
                labels: tuple[str, str] = ("expected", "actual"), atol: float = 0.0,
                rtol: float = 0.0, integer_tolerance: bool = False,
                header: str | None = None) -> Difference | None:
    """Return how two same-shape numpy arrays differ in value, or ``None`` when they match.

    Args:
        first: The reference array.
        second: The array compared with it.
        path: The name used in the message.
        labels: How to name the two arrays (``baseline``/``current``, ``run 1``/``run 2``).
        atol: Absolute tolerance for floats (and integers with ``integer_tolerance``).
        rtol: Relative tolerance, scaled by ``|first|``.
        integer_tolerance: Whether ``atol``/``rtol`` apply to integer and bool elements.
        header: The first line's description of the array; default its shape and dtype.

    Returns:
        A :class:`Difference` with ``what="values"``, or ``None``.

    Raises:
        ValueError: The shapes differ (compare shapes first; :func:`diff_trees` does).
    """
    if first.shape != second.shape:
        raise ValueError(f"{path}: cannot compare values of shapes {first.shape} and {second.shape}")
    equal = equal_mask(first, second, atol, rtol, integer_tolerance)
    if bool(np.all(equal)):
        return None
    differs = ~np.asarray(equal)
    n_diff = int(np.count_nonzero(differs))
    total = int(first.size)
    where = [tuple(int(i) for i in idx) for idx in np.argwhere(differs)[:SHOWN_ELEMENTS]] \
        if first.ndim else [()]
    shown = [(idx, _item(first, idx), _item(second, idx)) for idx in where]
    max_abs = max_rel = None
    nonfinite = became = 0
    numeric = set(first.dtype.kind + second.dtype.kind) <= set("biufc")
    if numeric:
        wide = np.complex128 if "c" in first.dtype.kind + second.dtype.kind else np.float64
        with np.errstate(all="ignore"):
            a = np.atleast_1d(first)[np.atleast_1d(differs)].astype(wide)
            b = np.atleast_1d(second)[np.atleast_1d(differs)].astype(wide)
            gaps = np.abs(b - a)
            finite = np.isfinite(gaps)
            if finite.any():
                max_abs = float(gaps[finite].max())
                scale = np.abs(a)[finite]
                rel = np.where(scale > 0, gaps[finite] / np.where(scale > 0, scale, 1), np.inf)
                max_rel = float(rel.max())
            fin_a, fin_b = np.isfinite(a), np.isfinite(b)
            nonfinite = int(np.count_nonzero(fin_a != fin_b))
            became = int(np.count_nonzero(fin_a & ~fin_b))
    lines = [f"{path}: {header or f'array of shape {first.shape}, dtype {first.dtype}'}",
             f"  {n_diff} of {total} elements differ ({100.0 * n_diff / total:.3g}%)"
             + (f" beyond atol {atol:g} + rtol {rtol:g}·|{labels[0]}|" if atol or rtol else "")]
    if max_abs is not None:
        note = " (the bit patterns differ, e.g. -0.0 vs 0.0)" if max_abs == 0 and not nonfinite else ""
        lines.append(f"  max abs diff {max_abs:.6g}, max rel diff {max_rel:.6g}{note}")
    idx0, a0, b0 = shown[0]
    at = f"at index {idx0}" if idx0 else "(a scalar)"
    lines.append(f"  first {at}: {format_value(a0)} ({labels[0]}) vs {format_value(b0)} ({labels[1]})")
    if len(shown) > 1:
        lines.append("  next: " + "; ".join(f"{list(i)}: {format_value(x)} vs {format_value(y)}"
                                            for i, x, y in shown[1:]))
    if nonfinite:
        lines.append(f"  {nonfinite} differing elements are NaN/Inf on one side only "
                     f"({became} became NaN/Inf in {labels[1]})")
    values = {"path": path, "what": "values", "shape": list(first.shape),
              "dtype": str(first.dtype), "n_diff": n_diff, "n_total": total,
              "first_index": list(idx0), "first_values": [format_value(a0), format_value(b0)],
              "mismatches": [[list(i), format_value(x), format_value(y)] for i, x, y in shown],
              "max_abs_diff": max_abs, "max_rel_diff": max_rel, "nonfinite": nonfinite,
              "became_nonfinite": became}
    return Difference(path, "values", "\n".join(lines), values)


# ---- trees ----------------------------------------------------------------------------------


def _structural(leaf: Leaf, what: str, detail: str) -> Difference:
    return Difference(leaf.path, what, f"{leaf.path}: {detail}",
                      {"path": leaf.path, "what": what, "detail": detail})


def _describe_items(items: Any) -> str:
    if isinstance(items, int):
        return f"{items} items"
    return "fields/keys (" + ", ".join(str(s) for s in items) + ")"


def _atom_equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. Decimal signalling NaN
        return False


#: ``tolerance(leaf_first, leaf_second) -> (atol, rtol)``: per-leaf tolerances.
ToleranceFn = Callable[[Leaf, Leaf], "tuple[float, float]"]


def _diff_leaf(a: Leaf, b: Leaf, labels: tuple[str, str], atol: float, rtol: float,
               integer_tolerance: bool, check_dtype: bool) -> Difference | None:
    la, lb = labels
    if a.kind != b.kind or (a.kind not in ("array", "container") and a.meta != b.meta):
        return _structural(a, "type", f"{a.describe()} ({la}) vs {b.describe()} ({lb})")
    if a.kind == "container":
        if a.value[0] != b.value[0]:
            return _structural(a, "type", f"{a.value[0]} ({la}) vs {b.value[0]} ({lb})")
        if a.value != b.value:
            return _structural(a, "structure",
                               f"{a.value[0]} with {_describe_items(a.value[1])} ({la}) vs "
                               f"{b.value[0]} with {_describe_items(b.value[1])} ({lb})")
        return None
    if a.kind == "atom":
        if _atom_equal(a.value, b.value):
            return None
        return _structural(a, "values", f"{a.value!r} ({la}) vs {b.value!r} ({lb})")
    header = a.describe() if a.kind == "array" else f"{a.meta[0]}"
    if a.kind == "array":
        (ka, da, sa, _), (kb, db, sb, _) = a.meta, b.meta
        if ka != kb:
            return _structural(a, "type", f"{ka} ({la}) vs {kb} ({lb})")
        if sa != sb:
            return _structural(a, "shape", f"shape {sa} ({la}) vs shape {sb} ({lb})")
        if da != db and check_dtype:
            return _structural(a, "dtype",
                               f"dtype {da} ({la}) vs dtype {db} ({lb}); a dtype that changes "
                               "is itself a bug (e.g. type promotion that depends on data, or "
                               "float64 numpy input on one path)")
    return diff_arrays(a.value, b.value, path=a.path, labels=labels, atol=atol, rtol=rtol,
                       integer_tolerance=integer_tolerance, header=header)


def diff_leaves(first: list[Leaf], second: list[Leaf], *,
                labels: tuple[str, str] = ("run 1", "run 2"), atol: float = 0.0,
                rtol: float = 0.0, integer_tolerance: bool = False, check_dtype: bool = True,
                tolerance: ToleranceFn | None = None, first_only: bool = False) -> list[Difference]:
    """Return every difference between two flattened trees, in the first tree's order.

    Leaves are matched by path, so after a structural difference (a key added, a list
    grown) the leaves both trees still share are compared too.

    Args:
        first: :func:`flatten` of the reference tree.
        second: :func:`flatten` of the tree compared with it.
        labels: How to name the two trees in messages.
        atol: Absolute tolerance for floats (0 with ``rtol`` 0: bitwise).
        rtol: Relative tolerance, scaled by the reference value.
        integer_tolerance: Whether ``atol``/``rtol`` apply to integer and bool leaves.
        check_dtype: Whether a changed dtype is a difference; without it values of
            different dtypes are compared as numbers.
        tolerance: Per-leaf ``(atol, rtol)``, overriding ``atol`` and ``rtol``.
        first_only: Stop at the first difference.

    Returns:
        The differences; empty when the trees agree.
    """
    by_path = {leaf.path: leaf for leaf in second}
    out: list[Difference] = []
    for a in first:
        b = by_path.get(a.path)
        if b is None:  # its container's structure difference already names it
            continue
        tol_a, tol_r = (atol, rtol) if tolerance is None else tolerance(a, b)
        diff = _diff_leaf(a, b, labels, tol_a, tol_r, integer_tolerance, check_dtype)
        if diff is not None:
            out.append(diff)
            if first_only:
                break
    return out


def diff_trees(first: Any, second: Any, **options: Any) -> list[Difference]:
    """Flatten two output trees and return every difference between them.

    Args:
        first: The reference tree.
        second: The tree compared with it.
        **options: ``root`` (the root's name, default ``output``) and the options of
            :func:`diff_leaves`.

    Returns:
        The differences; empty when the trees agree.

    Raises:
        UncomparableOutputError: A tree holds an object that cannot be compared.
    """
    root = options.pop("root", "output")
    return diff_leaves(flatten(first, root), flatten(second, root), **options)


def compare(first: Any, second: Any, atol: float = 0.0, rtol: float = 0.0,
            labels: tuple[str, str] = ("run 1", "run 2"), **options: Any) -> Difference | None:
    """Compare two output trees and return their first difference, or ``None``.

    Args:
        first: The reference tree.
        second: The tree compared with it.
        atol: Absolute tolerance for floats (0 with ``rtol`` 0: bitwise).
        rtol: Relative tolerance.
        labels: How to name the two trees in the message.
        **options: Further options of :func:`diff_leaves` (``integer_tolerance``,
            ``check_dtype``, ``tolerance``) and ``root``.

    Returns:
        The first :class:`Difference` in output order, or ``None`` when they agree.

    Raises:
        UncomparableOutputError: A tree holds an object that cannot be compared.
    """
    found = diff_trees(first, second, atol=atol, rtol=rtol, labels=labels, first_only=True,
                       **options)
    return found[0] if found else None


def summarize(differences: list[Difference], limit: int = 5) -> str:
    """Return the text of several differences, the first ``limit`` in full.

    Args:
        differences: What :func:`diff_trees` returned.
        limit: How many to show in full; the rest are counted by path.

    Returns:
        The text (empty for no differences).
    """
    parts = [d.text for d in differences[:limit]]
    rest = differences[limit:]
    if rest:
        parts.append(f"... and {len(rest)} more differing leaves: "
                     + ", ".join(d.path for d in rest[:10]) + (" ..." if len(rest) > 10 else ""))
    return "\n".join(parts)
