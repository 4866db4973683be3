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
compared structurally by the shared core (:mod:`pytest_mlcheck.compare`): nested
tuples, lists, dicts, dataclasses and namedtuples of arrays, tensors, numbers and
strings; bitwise at zero tolerance, with NaN equal to NaN in the same position.
"""

from __future__ import annotations

import contextlib
import inspect
import random
import re
import warnings
from typing import Any, Callable, Iterator

import numpy as np

from . import report, validation
from .arrays import is_module, is_tensor, to_numpy, torch_module
from .compare import (  # noqa: F401  (compare, Difference: determinism's public names)
    Difference,
    Leaf,
    UncomparableOutputError,
    compare,
    diff_leaves,
    equal_mask,
    flatten,
)
from .seeding import seeded

_NONDET = re.compile(r"^(?P<op>\S+) does not have a deterministic implementation|"
                     r"(?P<cublas>this operation is not deterministic because it uses CuBLAS)")
_NONDET_FILTER = r".*(does not have a deterministic implementation|is not deterministic because)"


def _first_difference(first: list[Leaf], second: list[Leaf],
                      labels: tuple[str, str] = ("run 1", "run 2"), atol: float = 0.0,
                      rtol: float = 0.0) -> Difference | None:
    # A tolerance the user gives is meant for every number the function returns.
    found = diff_leaves(first, second, labels=labels, atol=atol, rtol=rtol,
                        integer_tolerance=True, first_only=True)
    return found[0] if found else None


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
        same = equal_mask(before, now)
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


class _Runner:
    """Calls ``fn`` under a seed, watching RNG consumption, mutation and kernels."""

    def __init__(self, check: str, fn: Callable, args: tuple, kwargs: dict) -> None:
        self.check = check
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.name = validation.fn_name(fn)
        self.ops: list[str] = []
        self.consumed: set[str] = set()
        self.after_states: list[dict] = []

    def call(self, seed: int, label: str) -> tuple[Any, list[Leaf]]:
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
    check = "assert_deterministic"
    validation.function(fn, check=check, signature="(*args, **kwargs) -> output")
    runs = validation.integer(runs, "runs", low=2, check=check,
                              hint="one run has nothing to compare with")
    seed = validation.seed(seed, check=check)
    atol, rtol = validation.tolerance(atol, "atol", check=check), \
        validation.tolerance(rtol, "rtol", check=check)
    runner = _Runner("deterministic", fn, args, kwargs)
    first, first_leaves = runner.call(seed, "run 1")
    for i in range(2, runs + 1):
        _, leaves = runner.call(seed, f"run {i}")
        diff = _first_difference(first_leaves, leaves, ("run 1", f"run {i}"), atol, rtol)
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
    check = "assert_seed_invariant"
    validation.function(fn, check=check, signature="(*args, **kwargs) -> output")
    seeds = validation.seeds(seeds, check=check)
    atol, rtol = validation.tolerance(atol, "atol", check=check), \
        validation.tolerance(rtol, "rtol", check=check)
    runner = _Runner("seed_invariant", fn, args, kwargs)
    first, first_leaves = runner.call(seeds[0], f"seed {seeds[0]}")
    for s in seeds[1:]:
        _, leaves = runner.call(s, f"seed {s}")
        diff = _first_difference(first_leaves, leaves, (f"seed {seeds[0]}", f"seed {s}"), atol, rtol)
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
    check = "assert_seed_sensitive"
    validation.function(fn, check=check, signature="(*args, **kwargs) -> output")
    seeds = validation.seeds(seeds, check=check)
    runner = _Runner("seed_sensitive", fn, args, kwargs)
    results = []
    for s in seeds:
        out, leaves = runner.call(s, f"seed {s}")
        results.append((s, out, leaves))
    _, again = runner.call(seeds[0], f"seed {seeds[0]} again")
    diff = _first_difference(results[0][2], again, (f"seed {seeds[0]}", f"seed {seeds[0]} again"))
    if diff is not None:
        runner.fail(
            f"`{runner.name}` is not reproducible: two calls with the same seed ({seeds[0]}) gave "
            f"different outputs, so its randomness is not (only) controlled by the seed.\n\n"
            f"{diff.text}\n\nLikely causes:\n" + _bullets(runner.causes_unseeded()),
            {"seeds": seeds, **diff.values, "consumed_global_rng": sorted(runner.consumed)})
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            (si, _, li), (sj, _, lj) = results[i], results[j]
            if _first_difference(li, lj) is not None:
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
            shown = "" if first_leaf is None else f" (e.g. {first_leaf.path}: {first_leaf.describe()})"
            runner.fail(
                f"`{runner.name}` is not seed-sensitive: seeds {si} and {sj} gave identical "
                f"outputs{shown}, so its randomness is not wired to the seed.\n\nLikely cause:\n"
                f"  - {cause}",
                {"seeds": seeds, "identical": [si, sj], "consumed_global_rng": sorted(runner.consumed)})
    runner.passed({"seeds": seeds})
    return results[0][1]


class Determinism:
    """The ``determinism`` fixture: the determinism checks, recorded for the running test.

    Its methods are the plain functions: ``check`` is :func:`assert_deterministic`,
    ``check_seed_invariant`` is :func:`assert_seed_invariant` and
    ``check_seed_sensitive`` is :func:`assert_seed_sensitive`; each records its
    outcome in the running test's report.

    Args:
        request: The pytest fixture request of the test.
    """

    check = staticmethod(assert_deterministic)
    check_seed_invariant = staticmethod(assert_seed_invariant)
    check_seed_sensitive = staticmethod(assert_seed_sensitive)

    def __init__(self, request: Any) -> None:
        self.request = request
