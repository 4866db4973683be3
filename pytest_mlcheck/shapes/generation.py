"""Generated inputs: spec trees, random values per dtype, the backend, calling ``fn``.

Every check that calls ``fn`` on generated inputs (shapes, batch independence and
invariance, causality) builds them here, so the backend is chosen one way for all of
them (:func:`resolve_backend`) and an error raised by ``fn`` carries the generated
shapes and bindings (:func:`annotate_error`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import itertools
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .. import arrays, validation
from ..validation import fn_name
from .spec import Spec, dtype_kind, format_bindings, parse_spec

#: The seed of every generated input, so a failure reproduces exactly.
GENERATION_SEED = 0

#: The size of ``_`` when an input is generated.
ANY_DIM_SIZE = 3


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


class InputSpecs:
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
        float_dtype = module_float_dtype(fn)
        self.leaves: list[tuple[str, Spec]] = []
        for path, tree in zip(self.arg_paths, args):
            self.leaves += list(_walk_specs(tree, path, float_dtype))
        for k, tree in kwargs.items():
            self.leaves += list(_walk_specs(tree, k, float_dtype))
        self.spec_at = dict(self.leaves)
        if not self.leaves:
            raise ValueError(f"{what}: no input spec given; pass e.g. 'B T C' or Spec(...)")
        self.parsed = {path: parse_spec(spec.shape, f"input {path}") for path, spec in self.leaves}

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
                return rebuild(tree, [build(v, f"{path}[{i}]") for i, v in enumerate(tree)])
            return tree

        args = [build(t, p) for p, t in zip(self.arg_paths, self.args)]
        kwargs = {k: build(t, k) for k, t in self.kwargs.items()}
        return args, kwargs, made


def rebuild(tree: Any, items: list) -> Any:
    """Return a list, tuple or namedtuple like ``tree`` holding ``items``."""
    if hasattr(tree, "_fields"):
        return type(tree)(*items)
    return type(tree)(items)


def random_values(spec: Spec, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Draw values for one input: normal floats, ids in ``[low, high)``, fair bools.

    Args:
        spec: The input's spec (dtype and value range).
        shape: The concrete shape.
        rng: The generator (seeded per size combination).

    Returns:
        A numpy array (int64 for integer specs, float64 for floats).
    """
    kind = dtype_kind(spec.dtype)
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


def to_backend(values: np.ndarray, dtype: str, backend: str, device: Any, path: str) -> Any:
    """Return values as the backend's array of ``dtype``, on ``device`` for torch.

    Args:
        values: The drawn values.
        dtype: The spec's dtype name.
        backend: ``numpy`` or ``torch``.
        device: A torch device (the model's), or ``None``.
        path: The input's path, for messages.

    Returns:
        A numpy array or torch tensor.

    Raises:
        ValueError: bfloat16 asked of numpy.
    """
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
    return to_backend(random_values(spec, shape, rng), spec.dtype, backend, device, path)


@dataclasses.dataclass(frozen=True)
class BackendChoice:
    """Which array library generated inputs come from, and why.

    Attributes:
        name: ``numpy`` or ``torch``.
        reason: Why, in words (``given as backend='torch'``, ``fn's closure holds the
            nn.Module Linear``, ``nothing fn reaches is torch``).
        inferred: Whether the choice was inferred rather than given.
        sure: Whether inference found evidence (a module, tensor or array library).
    """

    name: str
    reason: str
    inferred: bool = True
    sure: bool = True

    def advice(self) -> str:
        """Return the sentence that says how to choose the other backend."""
        other = "torch" if self.name == "numpy" else "numpy"
        kind = "numpy arrays" if self.name == "numpy" else "torch tensors"
        return (f"the generated inputs were {kind} (backend {self.name!r}: {self.reason}); "
                f"if fn expects {'torch tensors' if other == 'torch' else 'numpy arrays'}, "
                f"pass backend={other!r}")


#: How deep backend inference follows what fn reaches (partial -> closure -> ...).
_REACH_DEPTH = 3


def _torch_evidence(obj: Any) -> str | None:
    """Name ``obj`` when it is torch itself, an nn.Module or a tensor, else ``None``."""
    if arrays.is_module(obj):
        return f"the nn.Module {type(obj).__name__}"
    if arrays.is_tensor(obj):
        return "a torch tensor"
    if inspect.ismodule(obj) and (obj.__name__ == "torch" or obj.__name__.startswith("torch.")):
        return f"the module {obj.__name__}"
    return None


def _reaches(fn: Any, depth: int, seen: set[int]) -> Iterator[tuple[str, Any]]:
    """Yield (how it is reached, object) for what ``fn`` can use when called."""
    if id(fn) in seen or depth > _REACH_DEPTH:
        return
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        yield "the partial's function", fn.func
        for i, a in enumerate(fn.args):
            yield f"the partial's argument {i}", a
        for k, v in (fn.keywords or {}).items():
            yield f"the partial's argument {k}=", v
        yield from _reaches(fn.func, depth + 1, seen)
        return
    owner = getattr(fn, "__self__", None)
    if owner is not None and not inspect.ismodule(owner):
        yield f"its object {type(owner).__name__}", owner
        for k, v in list(vars(owner).items())[:50] if hasattr(owner, "__dict__") else ():
            yield f"the attribute {type(owner).__name__}.{k}", v
    function = getattr(fn, "__func__", fn)
    if not inspect.isfunction(function) and hasattr(type(fn), "__call__") \
            and not inspect.isbuiltin(fn) and hasattr(fn, "__dict__"):
        # A callable object: what its attributes hold.
        for k, v in list(vars(fn).items())[:50]:
            yield f"the attribute {type(fn).__name__}.{k}", v
        function = getattr(type(fn).__call__, "__func__", type(fn).__call__)
    code = getattr(function, "__code__", None)
    if code is None:
        return
    for name, cell in zip(code.co_freevars, getattr(function, "__closure__", None) or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        yield f"its closure variable {name!r}", value
        if callable(value):
            yield from _reaches(value, depth + 1, seen)
    names = set(code.co_names)
    for const in code.co_consts:  # names used by nested functions and comprehensions
        if inspect.iscode(const):
            names.update(const.co_names)
    glob = getattr(function, "__globals__", {})
    for name in sorted(names):
        if name in glob:
            yield f"the global {name!r}", glob[name]


def infer_backend(fn: Any) -> BackendChoice:
    """Infer the array library ``fn`` expects from what it can reach.

    ``fn`` itself being an ``nn.Module``; a bound method's ``__self__`` and its
    attributes; a ``functools.partial``'s function and arguments; closure variables;
    and the module-level globals the function's code names (``torch``, ``F``, a model
    or tensor defined at module level). Any torch object among them means ``torch``;
    otherwise ``numpy``, marked unsure when nothing pointed to numpy either.

    Args:
        fn: The function or model a check calls.

    Returns:
        The choice, with its reason.
    """
    if arrays.is_module(fn):
        return BackendChoice("torch", f"fn is the nn.Module {type(fn).__name__}")
    if arrays.torch_module() is None:  # no tensor or module can exist without torch imported
        return BackendChoice("numpy", "torch is not imported")
    numpy_seen = None
    for how, obj in _reaches(fn, 0, set()):
        found = _torch_evidence(obj)
        if found is not None:
            return BackendChoice("torch", f"{how} is {found}")
        if numpy_seen is None and (obj is np or isinstance(obj, np.ndarray)):
            numpy_seen = how
    if numpy_seen is not None:
        return BackendChoice("numpy", f"{numpy_seen} is numpy and nothing fn reaches is torch")
    return BackendChoice("numpy", "nothing fn reaches is torch or numpy, so numpy by default",
                         sure=False)


def backend_choice(fn: Any, backend: Any) -> BackendChoice:
    """Return the backend a check generates inputs with: the given one, or the inferred one.

    Args:
        fn: The function or model a check calls.
        backend: ``None`` (infer it, see :func:`infer_backend`), ``"numpy"`` or ``"torch"``.

    Returns:
        The choice.

    Raises:
        ValueError: An unknown backend, or ``"numpy"`` for an ``nn.Module``.
        ImportError: ``"torch"`` without torch installed.
    """
    if backend is None:
        return infer_backend(fn)
    validation.choice(backend, "backend", (None, "numpy", "torch"))
    if backend == "numpy" and arrays.is_module(fn):
        raise ValueError("backend='numpy' cannot drive an nn.Module; leave backend=None")
    if backend == "torch":
        arrays.require_torch("backend='torch'")
    return BackendChoice(backend, f"given as backend={backend!r}", inferred=False)


def resolve_backend(fn: Any, backend: Any) -> str:
    """Return the backend's name (see :func:`backend_choice`).

    Args:
        fn: The function or model a check calls.
        backend: ``None``, ``"numpy"`` or ``"torch"``.

    Returns:
        ``numpy`` or ``torch``.
    """
    return backend_choice(fn, backend).name


#: Error types that, raised on generated inputs, usually mean the wrong array library.
_WRONG_LIBRARY = (TypeError, AttributeError)


def module_float_dtype(fn: Any) -> str:
    """Return the floating dtype of a module's parameters, or float32."""
    if arrays.is_module(fn):
        for t in fn.parameters():
            if t.is_floating_point():
                return arrays.dtype_name(t)
    return "float32"


def module_device(fn: Any) -> Any:
    """Return the device of a module's first parameter or buffer (``None`` otherwise).

    Args:
        fn: The function or model a check calls.

    Returns:
        A torch device or ``None``.
    """
    if not arrays.is_module(fn):
        return None
    for t in itertools.chain(fn.parameters(), fn.buffers()):
        return t.device
    return None


@contextlib.contextmanager
def preserve_buffers(fn: Any) -> Iterator[None]:
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


def describe_inputs(made: Mapping[str, Any]) -> str:
    """Return ``x: (4, 3) float32, mask: (4,) bool``: the generated inputs in words.

    Args:
        made: Input path to the generated array.

    Returns:
        The text.
    """
    return ", ".join(f"{p}: {arrays.shape_of(a)} {arrays.dtype_name(a)}" for p, a in made.items())


def annotate_error(exc: BaseException, fn: Any, made: Mapping[str, Any], sizes: Mapping[str, Any],
                   origins: Mapping[str, str], chosen: Sequence[str],
                   backend: BackendChoice | None = None) -> None:
    """Attach the generated shapes, bindings and backend to an exception raised by ``fn``."""
    note = (f"pytest-mlcheck: {fn_name(fn)} raised {type(exc).__name__} on generated inputs\n"
            f"  inputs: {describe_inputs(made)}\n"
            f"  bindings: {format_bindings(sizes, origins)}")
    if backend is not None and backend.inferred and isinstance(exc, _WRONG_LIBRARY):
        # The commonest cause of a type error here: numpy inputs for a function that
        # wraps a torch model the inference could not see (or the reverse).
        note += f"\n  {backend.advice()}"
        setattr(exc, "mlcheck_backend", backend.name)
    if chosen:
        note += (f"\n  the check chose {', '.join(chosen)}; if the code needs particular sizes "
                 f"(e.g. a model width), fix them with dims={{{chosen[0]!r}: ...}}")
    train = train_mode_modules(fn)
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


def output_leaves(tree: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(path, leaf)`` for every leaf of an output's dicts, lists and tuples.

    Args:
        tree: What ``fn`` returned.
        path: The root's name.

    Yields:
        Each leaf with its path (``output[0]['logits']``).
    """
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from output_leaves(v, f"{path}[{k!r}]")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from output_leaves(v, f"{path}[{i}]")
    else:
        yield path, tree


def grad_mode(fn: Any):
    """Return ``torch.no_grad()`` for a module (checks never need its gradients), else a no-op.

    Args:
        fn: The function or model a check calls.

    Returns:
        A context manager.
    """
    torch = arrays.torch_module()
    if torch is not None and arrays.is_module(fn):
        return torch.no_grad()
    return contextlib.nullcontext()

def train_mode_modules(fn: Any) -> list[str]:
    """Name the BatchNorm and dropout layers of a module that are in training mode.

    Args:
        fn: The function or model a check calls.

    Returns:
        ``["'bn' (BatchNorm1d)", ...]``; ``[]`` for a function.
    """
    if not arrays.is_module(fn):
        return []
    torch = arrays.require_torch("module checks")
    # Layers whose output depends on the batch or on the RNG only in training mode.
    suspects = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd)
    return [f"{name or '(root)'!r} ({type(m).__name__})" for name, m in fn.named_modules()
            if m.training and isinstance(m, suspects)]
