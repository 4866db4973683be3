"""Determinism checks: same seed, same output; eval code ignores the seed; samplers use it.

Plain functions, usable outside pytest:

* :func:`assert_deterministic` calls ``fn`` several times, each after seeding every
  global RNG with the same seed, and requires identical outputs.
* :func:`assert_seed_invariant` requires identical outputs under *different* seeds
  (evaluation and inference code must not consume randomness).
* :func:`assert_seed_sensitive` requires different outputs under different seeds and
  identical outputs under the same seed (sampling and augmentation really wired to the
  seed).

While ``fn`` runs, torch's deterministic-algorithms mode is on in warn-only form, so a
nondeterministic kernel is named in the failure. Every call also fails when ``fn``
modified one of its array or tensor arguments (or a module's parameters or buffers) in
place. The :class:`Determinism` fixture class wraps the same functions. Outputs are
compared structurally (:func:`compare`): nested tuples, lists, dicts, dataclasses and
namedtuples of arrays, tensors, numbers and strings; bitwise at zero tolerance, with
NaN equal to NaN in the same position.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import fractions
import decimal
import inspect
import numbers
import pathlib
import random
import re
import warnings
from typing import Any, Callable, Iterator

import numpy as np

from . import report
from .arrays import dtype_name, is_module, is_tensor, shape_of, to_numpy, torch_module
from .seeding import seeded

_ATOMS = (str, bytes, type(None), bool, enum.Enum, fractions.Fraction, decimal.Decimal,
          pathlib.PurePath, datetime.date, datetime.time, datetime.timedelta, range, np.dtype)

_NONDET = re.compile(r"^(?P<op>\S+) does not have a deterministic implementation|"
                     r"(?P<cublas>this operation is not deterministic because it uses CuBLAS)")
_NONDET_FILTER = r".*(does not have a deterministic implementation|is not deterministic because)"


class UncomparableOutputError(TypeError):
    """An output contains an object that cannot be compared between runs."""


# ---- structural comparison ----------------------------------------------------------


@dataclasses.dataclass
class _Leaf:
    path: str
    kind: str  # "array", "scalar", "atom", "container"
    value: Any
    meta: tuple = ()


@dataclasses.dataclass
class Difference:
    """The first difference between two outputs.

    Attributes:
        path: Where it is, e.g. ``output[1]['logits']``.
        what: ``values``, ``dtype``, ``shape``, ``type`` or ``structure``.
        text: A multi-line human description (shape, dtype, counts, first index, max diff).
        values: The same facts as JSON-serialisable values, for the report.
    """

    path: str
    what: str
    text: str
    values: dict


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _is_torch_atom(x: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(x, (torch.dtype, torch.device))


def _array_copy(x: Any, path: str) -> tuple[np.ndarray, tuple]:
    if is_tensor(x):
        t = x
        if t.layout != torch_module().strided:
            t = t.to_dense()
        kind = ("torch.Tensor", str(t.device.type))
        try:
            arr = to_numpy(t)
        except TypeError:  # dtypes numpy cannot hold (float8...): compare as float64
            arr = to_numpy(t.detach().cpu().double())
        return np.array(arr, copy=True), kind
    if x.dtype.kind in "OV":
        raise UncomparableOutputError(
            f"{path} is a numpy array of dtype {x.dtype}, whose elements cannot be compared "
            "reliably between runs; return numeric or string arrays (or lists of them) instead")
    return np.array(x, copy=True), ("numpy.ndarray", "cpu")


def flatten(output: Any, path: str = "output") -> list[_Leaf]:
    """Flatten an output into comparable leaves, copying every array and tensor.

    Copies are taken at once, so a function that later overwrites a buffer it returned
    cannot make two runs look equal.

    Args:
        output: What the function returned.
        path: The name of the root in messages.

    Returns:
        The leaves in a canonical order (dict keys sorted), containers included as
        structural entries.

    Raises:
        UncomparableOutputError: When an object cannot be compared; the message names its path.
    """
    leaves: list[_Leaf] = []
    _flatten(output, path, leaves, set())
    return leaves


def _flatten(x: Any, path: str, out: list[_Leaf], active: set[int]) -> None:
    if isinstance(x, np.ndarray) or is_tensor(x):
        arr, kind = _array_copy(x, path)
        out.append(_Leaf(path, "array", arr, (kind[0], dtype_name(x), shape_of(x), kind[1])))
        return
    if isinstance(x, (bool, np.bool_)) or isinstance(x, _ATOMS) or _is_torch_atom(x):
        if isinstance(x, (bool, np.bool_)):
            out.append(_Leaf(path, "scalar", np.asarray(x), (type(x).__name__,)))
        else:
            out.append(_Leaf(path, "atom", x, (type(x).__name__,)))
        return
    if isinstance(x, (numbers.Number, np.generic)):
        if isinstance(x, (numbers.Complex, np.number)):
            out.append(_Leaf(path, "scalar", np.asarray(x), (type(x).__name__,)))
        else:
            out.append(_Leaf(path, "atom", x, (type(x).__name__,)))
        return
    if id(x) in active:
        raise UncomparableOutputError(f"{path} contains itself (a reference cycle); "
                                      "return a tree of arrays, numbers and containers")
    active.add(id(x))
    try:
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            fields = [f.name for f in dataclasses.fields(x)]
            out.append(_Leaf(path, "container", (type(x).__qualname__, tuple(fields))))
            for name in fields:
                _flatten(getattr(x, name), f"{path}.{name}", out, active)
        elif _is_namedtuple(x):
            out.append(_Leaf(path, "container", (type(x).__qualname__, tuple(x._fields))))
            for name, value in zip(x._fields, x):
                _flatten(value, f"{path}.{name}", out, active)
        elif isinstance(x, (tuple, list)):
            out.append(_Leaf(path, "container", (type(x).__qualname__, len(x))))
            for i, value in enumerate(x):
                _flatten(value, f"{path}[{i}]", out, active)
        elif isinstance(x, dict):
            keys = sorted(x, key=repr)
            out.append(_Leaf(path, "container", (type(x).__qualname__, tuple(repr(k) for k in keys))))
            for key in keys:
                _flatten(x[key], f"{path}[{key!r}]", out, active)
        elif isinstance(x, (set, frozenset)):
            items = sorted(x, key=repr)
            for item in items:
                if not (isinstance(item, _ATOMS) or isinstance(item, numbers.Number)):
                    raise UncomparableOutputError(
                        f"{path} is a set holding a {type(item).__name__}; sets of numbers "
                        "and strings only can be compared")
            out.append(_Leaf(path, "atom", frozenset(x), (type(x).__name__,)))
        else:
            raise UncomparableOutputError(
                f"{path} is a {type(x).__module__}.{type(x).__qualname__}, which cannot be compared "
                "between runs (only arrays, tensors, numbers, strings, None and tuples, lists, "
                "dicts, dataclasses and namedtuples of them can). Return the values that matter "
                "instead, e.g. `dataclasses.asdict(obj)`, `vars(obj)` or a tuple of its arrays.")
    finally:
        active.discard(id(x))


def _bits_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise equality of float arrays, with NaN equal to NaN in the same position."""
    if a.dtype.itemsize in (2, 4, 8):
        ua = np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")
        ub = np.ascontiguousarray(b).view(f"u{b.dtype.itemsize}")
        equal = ua == ub
    else:
        equal = a == b
    return equal | (np.isnan(a) & np.isnan(b))


def _equal_mask(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    exact = atol == 0 and rtol == 0
    kind = a.dtype.kind
    with np.errstate(all="ignore"):
        if kind == "f":
            return _bits_equal(a, b) if exact else np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        if kind == "c":
            if exact:
                return _bits_equal(a.real, b.real) & _bits_equal(a.imag, b.imag)
            return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        if kind in "iu" and not exact:
            return np.isclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol)
        return np.asarray(a == b)


def _fmt_value(v: Any) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    return repr(v)


def _type_text(leaf: _Leaf) -> str:
    if leaf.kind == "array":
        kind, dtype, shape, device = leaf.meta
        where = "" if device == "cpu" else f" on {device}"
        return f"{kind} of shape {shape}, dtype {dtype}{where}"
    if leaf.kind == "container":
        return f"{leaf.value[0]}"
    return f"{leaf.meta[0]}"


def _diff_values(a: _Leaf, b: _Leaf, labels: tuple[str, str], atol: float, rtol: float) -> Difference | None:
    x, y = a.value, b.value
    equal = _equal_mask(x, y, atol, rtol)
    if bool(np.all(equal)):
        return None
    differs = ~np.asarray(equal)
    n_diff = int(np.count_nonzero(differs))
    total = int(x.size)
    index = tuple(int(i) for i in np.argwhere(differs)[0]) if x.ndim else ()
    va, vb = x[index] if x.ndim else x[()], y[index] if y.ndim else y[()]
    max_abs: float | None = None
    nonfinite = 0
    if x.dtype.kind in "fciub":
        with np.errstate(all="ignore"):
            wide = np.complex128 if x.dtype.kind == "c" else np.float64
            mask = np.atleast_1d(differs)
            dx, dy = np.atleast_1d(x)[mask].astype(wide), np.atleast_1d(y)[mask].astype(wide)
            gaps = np.abs(dx - dy)
            finite = np.isfinite(gaps)
            nonfinite = int(np.count_nonzero(~finite))
            max_abs = float(gaps[finite].max()) if finite.any() else None
    where = f"at index {index}" if index else "(a scalar)"
    lines = [
        f"{a.path}: {_type_text(a)}",
        f"  {n_diff} of {total} elements differ ({100.0 * n_diff / total:.3g}%)",
        f"  first {where}: {_fmt_value(va)} ({labels[0]}) vs {_fmt_value(vb)} ({labels[1]})",
    ]
    if max_abs is not None:
        note = " (the bit patterns differ, e.g. -0.0 vs 0.0)" if max_abs == 0 and not nonfinite else ""
        lines.append(f"  max abs diff {max_abs:.6g}{note}")
    if nonfinite:
        lines.append(f"  {nonfinite} differing elements are NaN/Inf in one run only")
    if atol or rtol:
        lines.append(f"  tolerance: |a - b| <= atol + rtol * |b| with atol={atol:g}, rtol={rtol:g}")
    values = {"path": a.path, "shape": list(a.meta[2]) if a.kind == "array" else [],
              "dtype": a.meta[1] if a.kind == "array" else a.meta[0],
              "n_diff": n_diff, "n_total": total, "first_index": list(index),
              "first_values": [_fmt_value(va), _fmt_value(vb)], "max_abs_diff": max_abs}
    return Difference(a.path, "values", "\n".join(lines), values)


def compare_leaves(first: list[_Leaf], second: list[_Leaf], labels: tuple[str, str] = ("run 1", "run 2"),
                   atol: float = 0.0, rtol: float = 0.0) -> Difference | None:
    """Return the first difference between two flattened outputs, or ``None``.

    Args:
        first: :func:`flatten` of the first output.
        second: :func:`flatten` of the second output.
        labels: How to name the two outputs in the message (``run 1``, ``seed 0``...).
        atol: Absolute tolerance for numbers (0 with ``rtol`` 0: bitwise).
        rtol: Relative tolerance for numbers.

    Returns:
        The first :class:`Difference` in output order, or ``None`` when they agree.
    """
    for a, b in zip(first, second):
        if a.path != b.path:  # only after a structural difference, which returned already
            break
        if a.kind != b.kind or (a.kind != "array" and a.meta != b.meta):
            return _structural(a, b, labels, "type", f"{_type_text(a)} ({labels[0]}) vs "
                                                     f"{_type_text(b)} ({labels[1]})")
        if a.kind == "container":
            if a.value[0] != b.value[0]:
                return _structural(a, b, labels, "type", f"{a.value[0]} ({labels[0]}) vs "
                                                         f"{b.value[0]} ({labels[1]})")
            if a.value != b.value:
                return _structural(a, b, labels, "structure",
                                   f"{a.value[0]} with {_describe_shape(a.value[1])} ({labels[0]}) vs "
                                   f"{b.value[0]} with {_describe_shape(b.value[1])} ({labels[1]})")
            continue
        if a.kind == "atom":
            if not _atom_equal(a.value, b.value):
                return _structural(a, b, labels, "values",
                                   f"{a.value!r} ({labels[0]}) vs {b.value!r} ({labels[1]})")
            continue
        if a.kind == "array":
            (ka, da, sa, dev_a), (kb, db, sb, dev_b) = a.meta, b.meta
            if ka != kb:
                return _structural(a, b, labels, "type", f"{ka} ({labels[0]}) vs {kb} ({labels[1]})")
            if da != db:
                return _structural(a, b, labels, "dtype",
                                   f"dtype {da} ({labels[0]}) vs dtype {db} ({labels[1]}); a dtype that "
                                   "changes between runs is itself a bug (e.g. type promotion that "
                                   "depends on data, or float64 numpy input on one path)")
            if sa != sb:
                return _structural(a, b, labels, "shape",
                                   f"shape {sa} ({labels[0]}) vs shape {sb} ({labels[1]})")
        diff = _diff_values(a, b, labels, atol, rtol)
        if diff is not None:
            return diff
    if len(first) != len(second):  # defensive: structure entries make this unreachable
        return Difference("output", "structure", "the outputs have different structures", {})
    return None


def _describe_shape(shape: Any) -> str:
    if isinstance(shape, int):
        return f"{shape} items"
    return "fields/keys (" + ", ".join(str(s) for s in shape) + ")"


def _atom_equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. Decimal signalling NaN
        return False


def _structural(a: _Leaf, b: _Leaf, labels: tuple[str, str], what: str, detail: str) -> Difference:
    return Difference(a.path, what, f"{a.path}: {detail}", {"path": a.path, "what": what, "detail": detail})


def compare(first: Any, second: Any, atol: float = 0.0, rtol: float = 0.0,
            labels: tuple[str, str] = ("run 1", "run 2")) -> Difference | None:
    """Compare two outputs structurally and return their first difference, or ``None``.

    Args:
        first: One output.
        second: Another output.
        atol: Absolute tolerance for numbers (0 with ``rtol`` 0: bitwise).
        rtol: Relative tolerance for numbers.
        labels: How to name the two outputs in the message.

    Returns:
        The first :class:`Difference`, or ``None`` when they agree.

    Raises:
        UncomparableOutputError: When an output holds an object that cannot be compared.
    """
    return compare_leaves(flatten(first), flatten(second), labels, atol, rtol)


# ---- the runs: seeding, RNG consumption, mutation, nondeterministic kernels -----------


def _rng_fingerprint() -> dict[str, Any]:
    fp: dict[str, Any] = {"random": hash(random.getstate())}
    _, keys, pos, has_gauss, cached = np.random.get_state()
    fp["numpy"] = (hash(keys.tobytes()), pos, has_gauss, cached)
    torch = torch_module()
    if torch is not None:
        fp["torch"] = hash(torch.random.get_rng_state().numpy().tobytes())
    return fp


@contextlib.contextmanager
def _deterministic_mode(ops: list[str]) -> Iterator[None]:
    """Turn torch's deterministic algorithms on (warn-only) and collect the ops it names.

    Other warnings raised meanwhile are replayed afterwards to the enclosing handler
    (pytest's, or the --mlcheck warnings guard), so none is lost.
    """
    torch = torch_module()
    previous = None
    log: list = []
    try:
        with warnings.catch_warnings(record=True) as log:
            warnings.filterwarnings("always", message=_NONDET_FILTER)
            if torch is not None:
                previous = (torch.are_deterministic_algorithms_enabled(),
                            torch.is_deterministic_algorithms_warn_only_enabled())
                if not (previous[0] and not previous[1]):  # keep a user's strict mode strict
                    torch.use_deterministic_algorithms(True, warn_only=True)
            try:
                yield
            finally:
                if previous is not None:
                    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    finally:
        others = []
        for w in log:
            match = _NONDET.search(str(w.message))
            if match is None:
                others.append(w)
            else:
                op = match.group("op") or "a cuBLAS matmul (set CUBLAS_WORKSPACE_CONFIG=:4096:8)"
                if op not in ops:
                    ops.append(op)
        replay_warnings(others)


def replay_warnings(messages: list) -> None:
    """Send recorded warnings to the enclosing warnings handler, as if never caught.

    Args:
        messages: ``warnings.WarningMessage`` objects recorded by ``catch_warnings``.
    """
    seen = set()
    for w in messages:
        key = (w.category, str(w.message), w.filename, w.lineno)
        if key in seen:
            continue
        seen.add(key)
        show = getattr(warnings, "_showwarnmsg", None)
        if show is not None:
            show(w)
        else:  # pragma: no cover - future Pythons
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _argument_labels(fn: Callable, args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
    names: list[str] = []
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for i in range(len(args)):
        name = positional[i].name if i < len(positional) else None
        names.append(f"argument '{name}' (args[{i}])" if name else f"args[{i}]")
    labelled = list(zip(names, args))
    labelled += [(f"argument '{k}'", v) for k, v in kwargs.items()]
    owner = getattr(fn, "__self__", None)
    if is_module(fn):
        labelled.insert(0, (f"fn ({type(fn).__name__})", fn))
    elif is_module(owner):
        labelled.insert(0, (f"the module {type(owner).__name__} of fn", owner))
    return labelled


def _collect_arrays(label: str, x: Any, out: list, seen: set[int], depth: int = 0) -> None:
    if id(x) in seen or depth > 4:
        return
    if isinstance(x, np.ndarray) or is_tensor(x):
        seen.add(id(x))
        try:
            copy = to_numpy(x).copy() if not is_tensor(x) or x.layout == torch_module().strided else None
        except (TypeError, RuntimeError):
            copy = None
        if copy is not None:
            out.append((label, x, copy))
        return
    if is_module(x):
        seen.add(id(x))
        for name, t in list(x.named_parameters()) + list(x.named_buffers()):
            _collect_arrays(f"{label}: {'parameter' if isinstance(t, torch_module().nn.Parameter) else 'buffer'} "
                            f"'{name}'", t, out, seen, depth + 1)
        return
    if isinstance(x, (list, tuple)):
        seen.add(id(x))
        for i, v in enumerate(x):
            _collect_arrays(f"{label}[{i}]", v, out, seen, depth + 1)
    elif isinstance(x, dict):
        seen.add(id(x))
        for k, v in x.items():
            _collect_arrays(f"{label}[{k!r}]", v, out, seen, depth + 1)


def _mutations(snapshot: list) -> list[str]:
    changed = []
    for label, obj, before in snapshot:
        now = to_numpy(obj)
        if now.shape != before.shape or now.dtype != before.dtype:
            changed.append(f"{label}: shape/dtype changed from {before.shape} {before.dtype} "
                           f"to {now.shape} {now.dtype}")
            continue
        if before.dtype.kind in "OV":
            continue
        same = _equal_mask(before, now, 0.0, 0.0)
        n = int(np.size(same) - np.count_nonzero(same))
        if n:
            changed.append(f"{label}: {n} of {before.size} elements changed")
    return changed


def _training_dropouts(fn: Callable, args: tuple, kwargs: dict) -> list[str]:
    found = []
    candidates = [fn, getattr(fn, "__self__", None), *args, *kwargs.values()]
    for obj in candidates:
        if not is_module(obj):
            continue
        root = type(obj).__name__
        for name, m in obj.named_modules():
            if m.training and "Dropout" in type(m).__name__:
                found.append(f"{root}.{name}" if name else root)
    return found


def _fn_name(fn: Callable) -> str:
    if is_module(fn):
        return type(fn).__name__
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None and hasattr(fn, "func"):  # functools.partial
        return f"partial({_fn_name(fn.func)})"
    return name.split("<locals>.")[-1] if name else type(fn).__name__


class _Runner:
    """Calls ``fn`` under a seed, watching RNG consumption, mutation and kernels."""

    def __init__(self, check: str, fn: Callable, args: tuple, kwargs: dict) -> None:
        self.check = check
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.name = _fn_name(fn)
        self.ops: list[str] = []
        self.consumed: set[str] = set()
        self.after_states: list[dict] = []

    def call(self, seed: int, label: str) -> tuple[Any, list[_Leaf]]:
        snapshot: list = []
        seen: set[int] = set()
        for arg_label, value in _argument_labels(self.fn, self.args, self.kwargs):
            _collect_arrays(arg_label, value, snapshot, seen)
        with seeded(seed):
            before = _rng_fingerprint()
            with _deterministic_mode(self.ops):
                output = self.fn(*self.args, **self.kwargs)
            after = _rng_fingerprint()
        self.after_states.append(after)
        self.consumed.update(k for k in before if before[k] != after[k])
        changed = _mutations(snapshot)
        if changed:
            self.fail(
                f"`{self.name}` modified its input in place ({label}, seed {seed}):\n"
                + "\n".join(f"  {c}" for c in changed)
                + "\n\nA function that changes its argument gives a different result the next "
                "time it is called with the same object, and silently corrupts the caller's "
                "data (e.g. a dataset normalised twice). Likely causes: an in-place operation "
                "on the argument (`x -= mean`, `x /= std`, `x[...] = ...`, `t.add_()`, "
                "`t.clamp_()`, `np.copyto`, `out=`), or a module updating its state (BatchNorm "
                "running statistics in training mode). Work on a copy (`x = x - mean`, "
                "`x = x.clone()`, `x = x.copy()`), or call `model.eval()`.",
                {"mutated": changed, "seed": seed})
        return output, flatten(output)

    def causes_unseeded(self) -> list[str]:
        causes = []
        if not self.consumed:
            causes.append(
                f"`{self.name}` did not draw from the global RNGs (random, numpy, torch) at all, "
                "so its randomness comes from a generator of its own that is not seeded: "
                "`np.random.default_rng()`, `np.random.RandomState()`, `random.Random()` or a "
                "`torch.Generator` seeded from the clock. Create it from a seed you pass in "
                "(`np.random.default_rng(seed)`), or draw from the global RNG.")
        causes.append(self._kernel_cause())
        causes.append(
            "state carried between calls: a generator, counter, cache or iterator created "
            f"outside `{self.name}` (at module level, in __init__, a DataLoader iterator) keeps "
            "advancing from one call to the next; create it inside, from the seed.")
        if self.consumed:
            causes.append(
                "the global RNGs were drawn from, but in an order or amount that differs between "
                "runs (threads, a dict or set iterated in hash order, time-based branching).")
        return causes

    def _kernel_cause(self) -> str:
        if self.ops:
            return ("a nondeterministic kernel: torch reported " + ", ".join(f"`{o}`" for o in self.ops)
                    + " as having no deterministic implementation; use a deterministic alternative "
                    "(e.g. `index_add`/`scatter` with sorted indices, or compute on CPU), or compare "
                    "with atol/rtol if tiny float differences are acceptable.")
        if torch_module() is None:
            return "a nondeterministic computation (threads, parallel reductions, hash ordering)."
        return ("a nondeterministic kernel (atomics on GPU, parallel float reductions); torch's "
                "deterministic-algorithms mode was on and named no op, so more likely one of "
                "the other causes.")

    def warn_kernels(self) -> None:
        if self.ops:
            warnings.warn(
                f"`{self.name}` gave identical outputs here, but torch reported nondeterministic "
                f"kernels: {', '.join(self.ops)}. With torch's deterministic-algorithms mode off "
                "(the default) or on another device (GPU atomics) its results may differ between runs.",
                UserWarning, stacklevel=4)

    def fail(self, message: str, values: dict) -> None:
        values = {"fn": self.name, **values}
        if self.ops:
            values["nondeterministic_ops"] = list(self.ops)
        report.emit("determinism", f"{self.check}({self.name})", "FAILED", values, message)
        raise AssertionError(message)

    def passed(self, values: dict) -> None:
        values = {"fn": self.name, **values}
        if self.ops:
            values["nondeterministic_ops"] = list(self.ops)
        report.emit("determinism", f"{self.check}({self.name})", "ok", values)


def _bullets(causes: list[str]) -> str:
    return "\n".join(f"  - {c}" for c in causes)


# ---- validation -------------------------------------------------------------------------


def _check_fn(fn: Any, check: str) -> None:
    if not callable(fn):
        raise TypeError(f"{check}: fn must be callable (the function or model to run), got "
                        f"{type(fn).__name__} {fn!r:.60}; pass the function itself, not its result")


def _check_runs(runs: Any) -> int:
    if isinstance(runs, bool) or not isinstance(runs, (int, np.integer)):
        raise TypeError(f"runs must be an int, got {type(runs).__name__} ({runs!r})")
    if runs < 2:
        raise ValueError(f"runs must be at least 2 (one run has nothing to compare with), got {runs}")
    return int(runs)


def _check_seeds(seeds: Any, minimum: int = 2) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"seeds must be a sequence of ints such as (0, 1), got {type(seeds).__name__}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: pass at least two different seeds, e.g. seeds=(0, 1)")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"seeds must hold ints, got {type(s).__name__} ({s!r})")
        if not 0 <= int(s) < 2**32:
            raise ValueError(f"seeds must be in [0, 2**32), got {s}")
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must all differ, got {tuple(seeds)}")
    if len(seeds) < minimum:
        raise ValueError(f"seeds needs at least {minimum} different seeds to compare, got {tuple(seeds)}")
    return seeds


def _check_tolerances(atol: Any, rtol: Any) -> tuple[float, float]:
    out = []
    for name, value in (("atol", atol), ("rtol", rtol)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
        if not (value >= 0 and np.isfinite(value)):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        out.append(float(value))
    return out[0], out[1]


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} ({seed!r})")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return int(seed)


# ---- the checks ---------------------------------------------------------------------------


def assert_deterministic(fn: Callable, *args: Any, runs: int = 2, seed: int = 0, atol: float = 0.0,
                         rtol: float = 0.0, **kwargs: Any) -> Any:
    """Call ``fn`` ``runs`` times under the same seed and require identical outputs.

    Before each call Python's ``random``, numpy's global RNG and torch are seeded with
    ``seed`` (their previous states are restored afterwards). torch's deterministic
    algorithms are on, warn-only, while ``fn`` runs.

    Args:
        fn: The function (or model) to call.
        *args: Positional arguments for ``fn``.
        runs: How many times to call it (at least 2).
        seed: The seed set before every call.
        atol: Absolute tolerance (0 with ``rtol`` 0: bitwise comparison).
        rtol: Relative tolerance.
        **kwargs: Keyword arguments for ``fn``.

    Returns:
        The output of the first call.

    Raises:
        AssertionError: When outputs differ or ``fn`` modified an argument in place.
        TypeError: When ``fn`` is not callable or an output cannot be compared.
        ValueError: When ``runs < 2`` or a tolerance is negative.
    """
    _check_fn(fn, "assert_deterministic")
    runs = _check_runs(runs)
    seed = _check_seed(seed)
    atol, rtol = _check_tolerances(atol, rtol)
    runner = _Runner("deterministic", fn, args, kwargs)
    first, first_leaves = runner.call(seed, "run 1")
    for i in range(2, runs + 1):
        _, leaves = runner.call(seed, f"run {i}")
        diff = compare_leaves(first_leaves, leaves, ("run 1", f"run {i}"), atol, rtol)
        if diff is not None:
            runner.fail(
                f"`{runner.name}` is not deterministic: run 1 and run {i} with the same seed "
                f"({seed}) gave different outputs.\n\n{diff.text}\n\n"
                "Every global RNG was seeded identically before each run, so the difference "
                "comes from something the seed does not control. Likely causes:\n"
                + _bullets(runner.causes_unseeded()),
                {"seed": seed, "runs": runs, "atol": atol, "rtol": rtol, **diff.values,
                 "consumed_global_rng": sorted(runner.consumed)})
    runner.passed({"seed": seed, "runs": runs, "atol": atol, "rtol": rtol})
    runner.warn_kernels()
    return first


def assert_seed_invariant(fn: Callable, *args: Any, seeds: Any = (0, 1), atol: float = 0.0,
                          rtol: float = 0.0, **kwargs: Any) -> Any:
    """Require identical outputs of ``fn`` under different seeds (evaluation/inference code).

    Args:
        fn: The function (or model) to call.
        *args: Positional arguments for ``fn``.
        seeds: At least two different seeds; every RNG is seeded with each before a call.
        atol: Absolute tolerance (0 with ``rtol`` 0: bitwise comparison).
        rtol: Relative tolerance.
        **kwargs: Keyword arguments for ``fn``.

    Returns:
        The output under the first seed.

    Raises:
        AssertionError: When outputs differ or ``fn`` modified an argument in place.
        TypeError: When ``fn`` is not callable or an output cannot be compared.
        ValueError: When ``seeds`` is empty, has one seed or repeats one.
    """
    _check_fn(fn, "assert_seed_invariant")
    seeds = _check_seeds(seeds)
    atol, rtol = _check_tolerances(atol, rtol)
    runner = _Runner("seed_invariant", fn, args, kwargs)
    first, first_leaves = runner.call(seeds[0], f"seed {seeds[0]}")
    for s in seeds[1:]:
        _, leaves = runner.call(s, f"seed {s}")
        diff = compare_leaves(first_leaves, leaves, (f"seed {seeds[0]}", f"seed {s}"), atol, rtol)
        if diff is None:
            continue
        causes = []
        dropouts = _training_dropouts(fn, args, kwargs)
        if dropouts:
            causes.append("dropout is active: " + ", ".join(f"`{d}`" for d in dropouts)
                          + " is in training mode; call `model.eval()` before evaluating.")
        if runner.consumed:
            causes.append(
                f"`{runner.name}` drew from the global {', '.join(sorted(runner.consumed))} RNG "
                "during the call, and that draw changed its output. In evaluation code the "
                "usual culprit is functional dropout: `F.dropout(x, p)` is active by default "
                "and ignores `model.eval()`; pass `training=self.training` (or use `nn.Dropout`). "
                "Other causes: a module left in training mode, random test-time augmentation, "
                "sampling (`torch.multinomial`, `np.random.choice`) in the prediction path.")
        else:
            causes.append(
                f"`{runner.name}` did not draw from the global RNGs, so its randomness comes "
                "from an unseeded generator of its own (`np.random.default_rng()`, "
                "`torch.Generator` seeded from the clock) or from state carried between calls; "
                "`determinism.check` on it fails too.")
        runner.fail(
            f"`{runner.name}` is not seed-invariant: seeds {seeds[0]} and {s} gave different "
            f"outputs, but evaluation and inference code must not consume randomness.\n\n"
            f"{diff.text}\n\nLikely causes:\n" + _bullets(causes),
            {"seeds": seeds, "atol": atol, "rtol": rtol, **diff.values,
             "consumed_global_rng": sorted(runner.consumed), "training_dropout": dropouts})
    runner.passed({"seeds": seeds, "atol": atol, "rtol": rtol})
    runner.warn_kernels()
    return first


def assert_seed_sensitive(fn: Callable, *args: Any, seeds: Any = (0, 1), **kwargs: Any) -> Any:
    """Require different outputs under different seeds and equal ones under the same seed.

    For sampling and augmentation code: its randomness must really come from the seed.
    ``fn`` is called once per seed, and once more with the first seed to check that a
    seed reproduces its output (an unseeded generator fails that part).

    Args:
        fn: The function (or model) to call.
        *args: Positional arguments for ``fn``.
        seeds: At least two different seeds.
        **kwargs: Keyword arguments for ``fn``.

    Returns:
        The output under the first seed.

    Raises:
        AssertionError: When two seeds give identical outputs, the same seed gives
            different ones, or ``fn`` modified an argument in place.
        TypeError: When ``fn`` is not callable or an output cannot be compared.
        ValueError: When ``seeds`` is empty, has one seed or repeats one.
    """
    _check_fn(fn, "assert_seed_sensitive")
    seeds = _check_seeds(seeds)
    runner = _Runner("seed_sensitive", fn, args, kwargs)
    results = []
    for s in seeds:
        out, leaves = runner.call(s, f"seed {s}")
        results.append((s, out, leaves))
    _, again = runner.call(seeds[0], f"seed {seeds[0]} again")
    diff = compare_leaves(results[0][2], again, (f"seed {seeds[0]}", f"seed {seeds[0]} again"))
    if diff is not None:
        runner.fail(
            f"`{runner.name}` is not reproducible: two calls with the same seed ({seeds[0]}) gave "
            f"different outputs, so its randomness is not (only) controlled by the seed.\n\n"
            f"{diff.text}\n\nLikely causes:\n" + _bullets(runner.causes_unseeded()),
            {"seeds": seeds, **diff.values, "consumed_global_rng": sorted(runner.consumed)})
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            (si, _, li), (sj, _, lj) = results[i], results[j]
            if compare_leaves(li, lj) is not None:
                continue
            states_equal = all(runner.after_states[i][k] == runner.after_states[j][k]
                               for k in runner.consumed)
            if not runner.consumed:
                cause = (f"`{runner.name}` never drew from the global RNGs (random, numpy, torch): "
                         "its randomness comes from a generator with a hard-coded seed "
                         "(`np.random.default_rng(42)`, `np.random.RandomState(0)`, "
                         "`torch.Generator().manual_seed(0)`, or a fresh `torch.Generator()`, whose "
                         "default seed is always the same), or it is not random at all. Derive the "
                         "generator's seed from the caller's seed (a `seed`/`generator` argument, or "
                         "`torch.randint(2**62, ())` / `np.random.randint(2**32)` from the global RNG).")
            elif states_equal:
                cause = (f"`{runner.name}` re-seeded the global RNG itself with a fixed seed "
                         "(`np.random.seed(0)`, `torch.manual_seed(0)`, `random.seed(0)` inside the "
                         "function), overriding the caller's seed. Remove the internal seeding.")
            else:
                cause = (f"`{runner.name}` drew from the global RNG, but its output does not depend "
                         "on the draw (e.g. shuffled then sorted, a probability of 0 or 1, a sample "
                         "of the whole population).")
            first_leaf = next((leaf for leaf in li if leaf.kind != "container"), None)
            shown = "" if first_leaf is None else f" (e.g. {first_leaf.path}: {_type_text(first_leaf)})"
            runner.fail(
                f"`{runner.name}` is not seed-sensitive: seeds {si} and {sj} gave identical "
                f"outputs{shown}, so its randomness is not wired to the seed.\n\nLikely cause:\n"
                f"  - {cause}",
                {"seeds": seeds, "identical": [si, sj], "consumed_global_rng": sorted(runner.consumed)})
    runner.passed({"seeds": seeds})
    return results[0][1]


class Determinism:
    """The ``determinism`` fixture: the determinism checks, recorded for the running test.

    Args:
        request: The pytest fixture request of the test.
    """

    def __init__(self, request: Any) -> None:
        self.request = request

    def check(self, fn: Callable, *args: Any, runs: int = 2, seed: int = 0, atol: float = 0.0,
              rtol: float = 0.0, **kwargs: Any) -> Any:
        """Call ``fn`` ``runs`` times under the same seed and require identical outputs.

        See :func:`assert_deterministic`.

        Args:
            fn: The function (or model) to call.
            *args: Positional arguments for ``fn``.
            runs: How many times to call it (at least 2).
            seed: The seed set before every call.
            atol: Absolute tolerance (0 with ``rtol`` 0: bitwise comparison).
            rtol: Relative tolerance.
            **kwargs: Keyword arguments for ``fn``.

        Returns:
            The output of the first call.
        """
        return assert_deterministic(fn, *args, runs=runs, seed=seed, atol=atol, rtol=rtol, **kwargs)

    def check_seed_invariant(self, fn: Callable, *args: Any, seeds: Any = (0, 1), atol: float = 0.0,
                             rtol: float = 0.0, **kwargs: Any) -> Any:
        """Require identical outputs under different seeds. See :func:`assert_seed_invariant`.

        Args:
            fn: The function (or model) to call.
            *args: Positional arguments for ``fn``.
            seeds: At least two different seeds.
            atol: Absolute tolerance (0 with ``rtol`` 0: bitwise comparison).
            rtol: Relative tolerance.
            **kwargs: Keyword arguments for ``fn``.

        Returns:
            The output under the first seed.
        """
        return assert_seed_invariant(fn, *args, seeds=seeds, atol=atol, rtol=rtol, **kwargs)

    def check_seed_sensitive(self, fn: Callable, *args: Any, seeds: Any = (0, 1), **kwargs: Any) -> Any:
        """Require outputs that differ by seed and repeat per seed. See :func:`assert_seed_sensitive`.

        Args:
            fn: The function (or model) to call.
            *args: Positional arguments for ``fn``.
            seeds: At least two different seeds.
            **kwargs: Keyword arguments for ``fn``.

        Returns:
            The output under the first seed.
        """
        return assert_seed_sensitive(fn, *args, seeds=seeds, **kwargs)
