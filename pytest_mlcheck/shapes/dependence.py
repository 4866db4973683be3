"""Dependence along an axis: batch independence, batch invariance and causality.

Each check generates one set of inputs (:class:`_Setup`), then measures how output
positions along the axis depend on input positions: by autograd for floating-point
torch inputs, by perturbing one position at a time otherwise. Batch invariance compares
a whole batch with its chunks through the shared comparison core
(:mod:`pytest_mlcheck.compare`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from typing import Any, Mapping, Sequence

import numpy as np

from .. import arrays, validation
from ..compare import diff_arrays, equal_mask
from ..report import emit
from ..seeding import seeded
from ..validation import fn_name
from .checks import fail
from .generation import (
    GENERATION_SEED,
    InputSpecs,
    annotate_error,
    backend_choice,
    describe_inputs,
    grad_mode,
    module_device,
    output_leaves,
    preserve_buffers,
    random_values,
    rebuild,
    to_backend,
    train_mode_modules,
)
from .spec import Spec, check_dims, dtype_kind, format_bindings

#: Most batch rows or time steps whose dependencies are checked (spread over the axis).
MAX_CHECKED_INDICES = 8

#: Most time steps :func:`assert_causal` checks (all of them up to this length).
MAX_CHECKED_STEPS = 32


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
        self.backend_choice = backend_choice(fn, backend)
        self.backend = self.backend_choice.name
        self.inputs = InputSpecs(fn, input, "input")
        self.inputs.validate_names()
        self.axis = validation.integer(axis, axis_arg, check=check)
        fixed = check_dims(dims)
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
        self.device = module_device(fn)
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
        mode = (torch.enable_grad() if grad else grad_mode(self.fn)) if torch is not None \
            else contextlib.nullcontext()
        try:
            with seeded(GENERATION_SEED), mode:
                return self.fn(*args, **kwargs)
        except Exception as exc:
            if not annotate:
                raise
            annotate_error(exc, self.fn, self.made, self.sizes, self.origins, self.chosen,
                           self.backend_choice)
            emit("shape", self.check, "ERROR", self.values(),
                 f"{fn_name(self.fn)} raised {type(exc).__name__}: {exc}")
            raise

    def values(self) -> dict[str, Any]:
        """Return the record values common to every outcome."""
        return {"fn": fn_name(self.fn), "backend": self.backend,
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
                return rebuild(tree, [build(v, f"{path}[{i}]") for i, v in enumerate(tree)])
            return tree

        args = [build(t, p) for p, t in zip(self.inputs.arg_paths, self.inputs.args)]
        kwargs = {k: build(t, k) for k, t in self.inputs.kwargs.items()}
        return args, kwargs

    def output_leaves(self, out: Any, size: int) -> tuple[list, list]:
        """Split output leaves into those carrying the axis and the others (by path)."""
        carry, other = [], []
        for path, leaf in output_leaves(out, "output"):
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
    kind = dtype_kind(spec.dtype)
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
        fresh = np.asarray(random_values(dataclasses.replace(spec, shape=""), block.shape, rng))
        block = np.where(block == fresh, fresh + 1, fresh)
    new = np.array(old, copy=True)
    new[sl] = block.astype(new.dtype) if spec.dtype != "bfloat16" else block
    return to_backend(new, spec.dtype, setup.backend, setup.device, path)


def _check_method(method: Any, check: str) -> str:
    return validation.choice(method, "method", ("auto", "autograd", "perturbation"), check=check)


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
    float_paths = [p for p in setup.carrying if dtype_kind(setup.specs[p].dtype) in "fc"]
    other_paths = [p for p in setup.carrying if p not in float_paths]
    torch = arrays.torch_module()
    if method == "autograd" and (setup.backend != "torch" or not float_paths or other_paths):
        raise ValueError(
            f"{setup.check}: method='autograd' needs torch and floating-point inputs only; "
            f"inputs here: {describe_inputs(setup.made)} (backend {setup.backend}). Token ids "
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
                     f"{fn_name(setup.fn)} is not deterministic, so {setup.check} cannot run")
                raise AssertionError(
                    f"{setup.check}: {fn_name(setup.fn)} gives different outputs ({path}) for "
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
        f"{setup.check}: no output of {fn_name(setup.fn)} has the axis being checked "
        f"(dim {setup.axis} of size {setup.size}); outputs: {shapes}. Pass the axis of the "
        "output rows, or check a function that returns per-sample outputs.")




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
    check = "assert_batch_independent"
    validation.tolerance(atol, "atol", check=check)
    _check_method(method, check)
    setup = _Setup(fn, input, dims, backend, batch_dim, "batch_dim", 4, "batch_independence")
    indices = _spread(setup.size, _check_rows(rows, check))
    with preserve_buffers(fn):
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
    lines = [f"batch_independence failed for {fn_name(fn)}: output row {i} depends on input "
             f"row {j}.",
             f"  input row {j} leaks into output row {i} ({how.format(i=i, j=j, mag=mag)})",
             f"  leaking pairs (output row <- input rows): {pairs}",
             f"  checked rows {indices} of a batch of {setup.size} along batch_dim="
             f"{setup.axis}, atol={atol}",
             f"  inputs: {describe_inputs(setup.made)}",
             f"  bindings: {format_bindings(setup.sizes, setup.origins)}",
             "Likely causes:",
             "  - a view/reshape that reorders axes and so mixes samples (x.view(T, B, C) where "
             "x.transpose(0, 1) was meant; batch_first confusion);",
             "  - a softmax, mean or normalisation over the batch dim (dim=0);",
             "  - batch statistics: BatchNorm in training mode; call model.eval() for inference."]
    train = train_mode_modules(fn)
    if train:
        lines.append(f"  modules in training mode here: {', '.join(train)}")
    lines.append("If the mixing is intended (contrastive losses, in-batch negatives), do not "
                 "assert batch independence for this function.")
    values.update({"leaks": [[a, b] for a, b, _ in leaks[:50]], "pair": [i, j],
                   "magnitude": mag})
    fail("batch_independence", values, "\n".join(lines))


def _check_rows(rows: Any, check: str) -> int:
    if rows is None:
        return MAX_CHECKED_INDICES
    return validation.integer(rows, "rows", low=1, check=check, hint="or None for up to "
                              f"{MAX_CHECKED_INDICES} rows spread over the batch")


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
    check = "assert_causal"
    validation.tolerance(atol, "atol", check=check)
    _check_method(method, check)
    setup = _Setup(fn, input, dims, backend, time_dim, "time_dim", 6, "causality")
    steps = _spread(setup.size, MAX_CHECKED_STEPS)
    with preserve_buffers(fn):
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
    lines = [f"causality failed for {fn_name(fn)}: output at t={t} depends on input at "
             f"t={s}, {ahead} step{'s' if ahead > 1 else ''} in the future.",
             f"  max {'gradient' if info['autograd'] else 'output change'} of step {t} with "
             f"respect to step {s}: {mag:.3g} (atol={atol})",
             f"  every step that sees the future: {seen}",
             f"  {setup.size} steps along time_dim={setup.axis}; inputs: "
             f"{describe_inputs(setup.made)}",
             f"  bindings: {format_bindings(setup.sizes, setup.origins)}",
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
    fail("causality", values, "\n".join(lines))


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
    check = "assert_batch_invariant"
    validation.tolerance(atol, "atol", check=check)
    validation.tolerance(rtol, "rtol", check=check)
    sizes = sorted(set(validation.integers(batch_sizes, "batch_sizes", low=1, check=check)))
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
    with preserve_buffers(fn):
        full = setup.call(*setup.replace({}))
        carry, other = setup.output_leaves(full, big)
        if not carry:
            raise _no_axis_output(setup, other)
        full_np = {p: np.asarray(arrays.to_numpy(t)) for p, t in carry}
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
                    train = train_mode_modules(fn)
                    message = (
                        f"batch_invariance failed for {fn_name(fn)}: it works on a batch of "
                        f"{big} but raises {type(exc).__name__} on a batch of {stop - start} "
                        f"(samples {start}..{stop - 1}): {exc}\n"
                        f"  inputs: {describe_inputs(setup.made)}\n"
                        f"  bindings: {format_bindings(setup.sizes, setup.origins)}\n"
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
                        fail("batch_invariance", values,
                              f"batch_invariance failed for {fn_name(fn)}: {p} has the batch "
                              f"axis for a batch of {big} but not for a batch of "
                              f"{stop - start}; a squeeze() without a dim drops a batch of 1.")
                    pieces[p].append(np.asarray(arrays.to_numpy(got[p])))
            for p, ref in full_np.items():
                a = _axis_of(ref.shape, setup.axis)
                now = np.concatenate(pieces[p], axis=a)
                if now.shape != ref.shape:
                    fail("batch_invariance", values,
                          f"batch_invariance failed for {fn_name(fn)}: {p} has shape "
                          f"{now.shape} when computed in batches of {b}, {ref.shape} in one "
                          "batch; its non-batch dims depend on the batch (padding to the "
                          "longest sample?).")
                found = diff_arrays(ref, now, path=p, labels=(f"a batch of {big}",
                                                              f"batches of {b}"),
                                    atol=atol, rtol=rtol)
                if found is None:
                    continue
                # Which samples changed, and by how much: the rows of the mismatches.
                bad = np.moveaxis(~equal_mask(ref, now, atol, rtol), a, 0)
                rows = [int(r) for r in np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))]
                size = found.values["max_abs_diff"]
                size = float("inf") if size is None else size
                if worst is None or size > worst["diff"]:
                    worst = {"path": p, "batch": b, "row": found.values["first_index"][a],
                             "diff": size, "index": found.values["first_index"],
                             "rows": rows, "text": found.text}
    if worst is None:
        emit("shape", "batch_invariance", "ok", values)
        return
    w = worst
    detail = w.pop("text").splitlines()
    lines = [f"batch_invariance failed for {fn_name(fn)}: sample {w['row']}'s {w['path']} "
             f"changes between a batch of {w['batch']} and a batch of {big}.",
             *detail,
             f"  samples that change: {w['rows']} of {big} (atol={atol}, rtol={rtol})",
             f"  inputs: {describe_inputs(setup.made)}",
             f"  bindings: {format_bindings(setup.sizes, setup.origins)}",
             "Likely causes:",
             "  - the model is in training mode at inference: BatchNorm uses batch statistics "
             "and dropout is active; call model.eval();",
             "  - padding or masking that depends on the longest sample in the batch, or a "
             "normalisation over the batch dim;",
             "  - numerical noise from different kernel paths per batch size: raise atol/rtol "
             "if the difference is tiny."]
    train = train_mode_modules(fn)
    if train:
        lines.insert(len(detail) + 4, f"  modules in training mode here: {', '.join(train)}")
    values.update({"worst": w})
    fail("batch_invariance", values, "\n".join(lines))

