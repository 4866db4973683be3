"""``check_shapes``: call ``fn`` over many generated sizes and match every output's spec."""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from .. import arrays
from ..report import emit
from ..validation import fn_name
from .generation import (
    GENERATION_SEED,
    InputSpecs,
    annotate_error,
    backend_choice,
    describe_inputs,
    grad_mode,
    module_device,
    preserve_buffers,
)
from .spec import (
    Spec,
    check_dims,
    explain_mismatch,
    format_bindings,
    format_size,
    match_shape,
    parse_spec,
    shape_hint,
)

#: Most size combinations :func:`check_shapes` tries as a full product before it
#: switches to varying one name at a time.
MAX_PRODUCT = 27


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
        checked = list(check_dims({name: s}, "vary")[name] for s in sizes)
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
                f"{path}: expected an array matching {parse_spec(spec).text!r}, got "
                f"{type(out).__name__} ({shown})")
        parsed = parse_spec(spec, path)
        shape = arrays.shape_of(out)
        new, reason = match_shape(shape, parsed, bound)
        if reason:
            show = {**bound, **new}
            shown = {**origins, **{k: f"bound by {path!r}" for k in new}}
            msg = (f"{path}: shape {shape} does not match {parsed.text!r}: "
                   f"{explain_mismatch(reason, shown)}")
            hint = shape_hint(shape, parsed, show, reason)
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
        parse_spec(spec, f"output spec {path}")
    elif isinstance(spec, Mapping):
        for k, v in spec.items():
            _validate_output_spec(v, f"{path}[{k!r}]")
    elif isinstance(spec, (list, tuple)):
        for i, v in enumerate(spec):
            _validate_output_spec(v, f"{path}[{i}]")
    else:
        raise TypeError(f"output spec at {path}: expected a spec string, Spec, None, or a "
                        f"tuple/list/dict of them, got {type(spec).__name__}")


def fail(name: str, values: dict, message: str) -> None:
    """Record a failed shape check and raise its ``AssertionError``.

    Args:
        name: The check (``check``, ``batch_invariance``...).
        values: The record's values.
        message: The failure message.

    Raises:
        AssertionError: Always, with ``message``.
    """
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
        backend: ``"numpy"`` or ``"torch"``; by default torch when ``fn`` is or
            reaches an ``nn.Module``, a tensor or torch itself (through a bound method,
            a partial, its closure or the globals it names), numpy otherwise. When a
            guess fails with a type error, the error says how to choose the other.

    Raises:
        AssertionError: An output does not match its spec; the message gives the
            smallest failing sizes and all bindings.
        TypeError: An output is not an array where a spec expects one, or the output
            structure does not mirror the spec; names the output path.
        ValueError: Bad specs, dtypes, dims or vary.
    """
    choice = backend_choice(fn, backend)
    backend = choice.name
    spec_inputs = InputSpecs(fn, inputs)
    spec_inputs.validate_names()
    _validate_output_spec(output)
    fixed = check_dims(dims)
    names = spec_inputs.names()
    stars = spec_inputs.star_names()
    chosen_vary = _check_vary(vary, names, stars, fixed)
    defaults = _default_candidates([n for n in names if n not in fixed], stars)
    candidates = {n: chosen_vary.get(n, defaults.get(n)) for n in names if n not in fixed}
    first_use = spec_inputs.first_use()
    device = module_device(fn)
    combos = []
    for combo in _combinations(candidates):
        sizes = {**fixed, **combo}
        numel = sum(math.prod(spec_inputs.concrete_shape(p, sizes)) for p, _ in spec_inputs.leaves)
        combos.append((numel, sum(_size_weight(v) for v in combo.values()), combo))
    combos.sort(key=lambda c: (c[0], c[1]))
    label = fn_name(fn)
    output_only: dict[str, Any] = {}
    output_origins: dict[str, str] = {}
    failures: list[tuple[dict, dict, dict, list[str]]] = []
    values: dict[str, Any] = {"fn": label, "backend": backend, "combinations": len(combos),
                              "names": names, "fixed": dict(fixed)}
    with preserve_buffers(fn):
        for index, (_, _, combo) in enumerate(combos):
            sizes = {**fixed, **combo}
            origins = {n: ("fixed by dims" if n in fixed else
                           f"bound by {first_use[n]!r}") for n in sizes}
            rng = np.random.default_rng([GENERATION_SEED, index])
            args, kwargs, made = spec_inputs.generate(sizes, backend, device, rng)
            try:
                with grad_mode(fn):
                    out = fn(*args, **kwargs)
            except Exception as exc:
                annotate_error(exc, fn, made, sizes, origins, [n for n in names if n not in fixed],
                               choice)
                emit("shape", "check", "ERROR", {**values, "bindings": sizes},
                     f"{label} raised {type(exc).__name__}: {exc}")
                raise
            bound = {**sizes, **output_only}
            all_origins = {**origins, **output_origins}
            before = set(bound)
            mismatches: list[str] = []
            try:
                _match_output(out, output, "output", bound, all_origins, mismatches)
            except _StructureError as exc:
                message = (f"check_shapes: {label}'s output does not have the structure of "
                           f"the output spec: {exc}\n  at sizes {format_bindings(sizes, origins)}\n"
                           f"  inputs: {describe_inputs(made)}")
                emit("shape", "check", "ERROR", {**values, "bindings": sizes}, message)
                raise TypeError(message) from None
            where = ", ".join(f"{n}={format_size(v)}" for n, v in combo.items())
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
    lines = [f"check_shapes failed for {label}: {mismatches[0].splitlines()[0]}",
             f"The output does not match its spec at {len(failures)} of {len(combos)} size "
             f"combinations; smallest failing sizes: {format_bindings(sizes, origins)}"]
    if output_only:
        lines.append(f"Bound by outputs: {format_bindings(output_only, output_origins)}")
    lines.append("Inputs: " + ", ".join(f"{p}: {s}" for p, s in shapes.items()))
    lines += [f"  {m}" for m in mismatches]
    only_ones = all(any(v == 1 for k, v in f[0].items() if k not in fixed) for f in failures)
    if only_ones and len(failures) < len(combos):
        lines.append("It fails only when some size is 1: look for squeeze() without a dim, "
                     "or broadcasting that hides a missing dimension at other sizes.")
    lines.append(f"Reproduce: check_shapes(fn, ..., dims={dict(sizes)!r}).")
    values.update({"failed": len(failures), "smallest_failing": sizes,
                   "mismatches": mismatches})
    fail("check", values, "\n".join(lines))

