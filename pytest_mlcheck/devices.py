"""Device consistency: the same function or training steps give the same results on each device.

A model validated on the CPU can drift on a GPU: TF32 matmuls, non-deterministic
kernels, a dtype promoted differently, float64 missing on the device. The
``device_consistency`` fixture (:class:`DeviceConsistency`) and the plain functions
:func:`assert_device_consistent` and :func:`assert_training_device_consistent` run the
same computation on each device and compare the results on the CPU through the shared
comparison core (:mod:`pytest_mlcheck.compare`): the failure names the leaf, the max
error, the devices and the likely causes.

Devices are written as torch devices (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``),
optionally followed by a floating dtype that the run is cast to: ``"cpu:float64"`` runs
on the CPU in double precision. That is the stand-in for a second device on a machine
without one: it fails exactly where the result depends on floating-point precision
beyond the tolerance (the commonest reason a GPU run drifts), and it is what this
project's own tests use. ``"cuda:float16"`` checks a half-precision run against the
reference.

Tolerances default per dtype as in ``torch.testing.assert_close`` (float32:
``atol=1e-5, rtol=1.3e-6``; float16: ``1e-5, 1e-3``; bfloat16: ``1e-5, 1.6e-2``;
float64: ``1e-7, 1e-7``; integers and bools exactly), taken from the less precise of
the two results, and widened to ``1e-3, 1e-3`` for float32 on CUDA while TF32 is on.

An absent device skips the test, naming it; under ``MLCHECK_REQUIRE_CUDA=1`` an absent
CUDA device fails instead, so a GPU CI job cannot pass by skipping everything. Tests
marked ``cuda`` follow the same rule (see :func:`require_device`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import types
from typing import Any, Callable

from . import report, validation
from .arrays import require_torch
from .compare import Difference, Leaf, diff_leaves, flatten, summarize
from .environment import tf32_enabled

#: Set to 1 on GPU CI jobs: an absent CUDA device fails instead of skipping.
REQUIRE_CUDA_ENV = "MLCHECK_REQUIRE_CUDA"

#: ``torch.testing.assert_close``'s default ``(atol, rtol)`` per dtype.
DEFAULT_TOLERANCES = {
    "float16": (1e-5, 1e-3), "bfloat16": (1e-5, 1.6e-2), "float32": (1e-5, 1.3e-6),
    "float64": (1e-7, 1e-7), "complex32": (1e-5, 1e-3), "complex64": (1e-5, 1.3e-6),
    "complex128": (1e-7, 1e-7),
}

#: float32 tolerances while TF32 is on (a 10-bit mantissa, like float16).
TF32_TOLERANCE = (1e-3, 1e-3)

#: Floating dtypes a device entry can name after a colon (``"cpu:float64"``).
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

_DEVICE_TYPES = ("cpu", "cuda", "mps")

#: Less precise first: the tolerance of a comparison is the looser of its two dtypes.
_PRECISION_ORDER = ("bfloat16", "float16", "complex32", "float32", "complex64", "float64",
                    "complex128")


@dataclasses.dataclass(frozen=True)
class DeviceSpec:
    """One entry of ``devices``: a torch device and an optional dtype the run is cast to.

    Attributes:
        text: As written (``"cuda:0"``, ``"cpu:float64"``).
        device: The torch device string (``"cuda:0"``, ``"cpu"``).
        dtype: The floating dtype every floating tensor and module is cast to, or ``None``.
    """

    text: str
    device: str
    dtype: str | None = None

    @property
    def kind(self) -> str:
        """Return the device type: ``cpu``, ``cuda`` or ``mps``."""
        return self.device.split(":", 1)[0]


def parse_device(text: Any) -> DeviceSpec:
    """Parse one ``devices`` entry; raise ``ValueError`` that shows the accepted forms.

    Args:
        text: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, each optionally followed
            by ``":float64"``, ``":float32"``, ``":float16"`` or ``":bfloat16"``.

    Returns:
        The parsed entry.

    Raises:
        TypeError: Not a string.
        ValueError: Not one of the accepted forms.
    """
    if not isinstance(text, str):
        raise TypeError(f"devices must hold strings such as 'cpu' or 'cuda', got "
                        f"{validation.describe(text)}")
    parts = text.split(":")
    dtype = None
    if len(parts) > 1 and parts[-1] in _FLOAT_DTYPES:
        dtype = parts.pop()
    kind = parts[0]
    ok = kind in _DEVICE_TYPES and (
        len(parts) == 1 or (len(parts) == 2 and kind == "cuda" and parts[1].isdigit()))
    if not ok:
        raise ValueError(
            f"devices: {text!r} is not a device; use 'cpu', 'cuda', 'cuda:N' or 'mps', "
            f"optionally followed by a floating dtype the run is cast to "
            f"({', '.join(':' + d for d in _FLOAT_DTYPES)}), e.g. 'cpu:float64'")
    return DeviceSpec(text, ":".join(parts), dtype)


def _parse_devices(devices: Any, check: str) -> list[DeviceSpec]:
    if isinstance(devices, str) or not isinstance(devices, (list, tuple)):
        raise TypeError(f"{check}: devices must be a tuple of at least two devices such as "
                        f"('cpu', 'cuda'), got {validation.describe(devices)}")
    specs = [parse_device(d) for d in devices]
    if len(specs) < 2:
        raise ValueError(f"{check}: devices needs at least two entries to compare, got "
                         f"{tuple(devices)}; on a machine without a GPU use "
                         "('cpu', 'cpu:float64')")
    if len({s.text for s in specs}) != len(specs):
        raise ValueError(f"{check}: devices repeats an entry: {tuple(devices)}")
    return specs


def device_available(device: str) -> tuple[bool, str]:
    """Return whether a torch device can be used here, and if not, why.

    Args:
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Returns:
        ``(True, "")`` or ``(False, reason)``.
    """
    kind = device.split(":", 1)[0]
    if kind == "cpu":
        return True, ""
    torch = require_torch(f"device {device!r}")
    if kind == "cuda":
        try:
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except Exception as exc:  # a broken driver is an absent device, said as such
            return False, f"CUDA failed to initialise ({type(exc).__name__}: {exc})"
        if count == 0:
            build = torch.version.cuda
            return False, ("torch.cuda.is_available() is False"
                           + (f" (torch built with CUDA {build})" if build else
                              " (this torch is a CPU-only build)"))
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= count:
            return False, f"only {count} CUDA device(s) are visible"
        return True, ""
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        return False, "torch.backends.mps.is_available() is False"
    return True, ""


def cuda_required() -> bool:
    """Return whether ``MLCHECK_REQUIRE_CUDA`` asks for absent CUDA to fail, not skip.

    Returns:
        Whether the variable is set to a true value (``1``, ``true``, ``yes``).
    """
    return os.environ.get(REQUIRE_CUDA_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def require_device(device: str, what: str) -> None:
    """Skip the running test when ``device`` is absent (fail under ``MLCHECK_REQUIRE_CUDA=1``).

    Args:
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        what: What needed it, for the message (``device_consistency.check``,
            ``a test marked cuda``).

    Raises:
        pytest.skip.Exception: The device is absent.
        pytest.fail.Exception: CUDA is absent and ``MLCHECK_REQUIRE_CUDA=1``.
    """
    import pytest

    ok, reason = device_available(device)
    if ok:
        return
    if device.startswith("cuda") and cuda_required():
        pytest.fail(f"{what} needs device {device!r}, which is not available here: {reason}; "
                    f"{REQUIRE_CUDA_ENV}=1 makes that a failure (a GPU job must not pass by "
                    "skipping its GPU checks)", pytrace=False)
    pytest.skip(f"{what}: device {device!r} is not available here ({reason})")


# ---- moving inputs to a device -------------------------------------------------------------


def _mover(torch: Any, spec: DeviceSpec, dtype: Any) -> Callable[[Any], Any]:
    """Return a function that copies a value's tensors and modules onto ``spec``."""
    cast = getattr(torch, spec.dtype) if spec.dtype else dtype
    memo: dict[int, Any] = {}

    def move(x: Any) -> Any:
        if id(x) in memo:  # the same module passed twice stays one module
            return memo[id(x)]
        if isinstance(x, torch.Tensor):
            t = x.detach()
            if cast is not None and t.is_floating_point():
                t = t.to(cast)
            out = t.to(spec.device, copy=True)  # a copy even on the same device
            if x.requires_grad:
                out.requires_grad_(True)
        elif isinstance(x, torch.nn.Module):
            out = copy.deepcopy(x)
            if cast is not None:
                out = out.to(cast)
            out = out.to(spec.device)
        elif isinstance(x, list):
            out = [move(v) for v in x]
        elif isinstance(x, tuple):
            items = [move(v) for v in x]
            out = type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
        elif isinstance(x, dict):
            out = type(x)((k, move(v)) for k, v in x.items())
        else:
            return x
        memo[id(x)] = out
        return out

    return move


def _move_fn(fn: Any, move: Callable[[Any], Any], torch: Any) -> Any:
    """Return ``fn`` with a module it is, is bound to, or is partially applied to, moved."""
    if isinstance(fn, torch.nn.Module):
        return move(fn)
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, torch.nn.Module):
        return types.MethodType(fn.__func__, move(owner))
    if isinstance(fn, functools.partial):
        return functools.partial(_move_fn(fn.func, move, torch), *move(list(fn.args)),
                                 **move(dict(fn.keywords or {})))
    return fn


def _to_cpu(tree: Any, torch: Any) -> Any:
    """Return ``tree`` with every tensor detached and copied to the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu")
    if isinstance(tree, list):
        return [_to_cpu(v, torch) for v in tree]
    if isinstance(tree, tuple):
        items = [_to_cpu(v, torch) for v in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else type(tree)(items)
    if isinstance(tree, dict):
        return type(tree)((k, _to_cpu(v, torch)) for k, v in tree.items())
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        return dataclasses.replace(tree, **{f.name: _to_cpu(getattr(tree, f.name), torch)
                                            for f in dataclasses.fields(tree) if f.init})
    return tree


# ---- tolerances ------------------------------------------------------------------------------


def _looser(a: str, b: str) -> str:
    rank = {d: i for i, d in enumerate(_PRECISION_ORDER)}
    return a if rank.get(a, 99) <= rank.get(b, 99) else b


@dataclasses.dataclass
class _Tolerance:
    """Per-leaf ``(atol, rtol)``: the user's, or the dtype default of the looser dtype."""

    atol: float | None
    rtol: float | None
    tf32: bool
    used: dict = dataclasses.field(default_factory=dict)

    def __call__(self, a: Leaf, b: Leaf) -> tuple[float, float]:
        if a.kind not in ("array", "scalar"):
            return 0.0, 0.0
        if a.kind == "array":
            dtype = _looser(a.meta[1], b.meta[1])
        else:
            dtype = "float64" if a.meta[0] in ("float", "complex") else a.meta[0]
        atol, rtol = DEFAULT_TOLERANCES.get(dtype, (0.0, 0.0))
        widened = self.tf32 and dtype == "float32"
        if widened:
            atol, rtol = TF32_TOLERANCE
        if self.atol is not None:
            atol = self.atol
        if self.rtol is not None:
            rtol = self.rtol
        self.used[a.path] = {"dtype": dtype, "atol": atol, "rtol": rtol, "tf32": widened}
        return atol, rtol

    def describe(self, path: str) -> str:
        """Return the tolerance used for ``path`` in words."""
        used = self.used.get(path)
        if used is None:
            return ""
        given = self.atol is not None or self.rtol is not None
        source = ("as given" if given else
                  f"the default for {used['dtype']}" + (", widened for TF32" if used["tf32"] else ""))
        return f"  tolerance: atol {used['atol']:g}, rtol {used['rtol']:g} ({source})"


# ---- the comparison --------------------------------------------------------------------------


def _causes(diffs: list[Difference], ref: DeviceSpec, other: DeviceSpec, tf32: bool,
            training: bool) -> list[str]:
    causes = []
    if any(d.what == "dtype" for d in diffs):
        causes.append(
            "dtype promotion: a result has a different dtype on the two devices; a Python "
            "float or float64 numpy array mixed into a float32 computation, or an op that "
            "promotes differently per backend. Cast explicitly (`x.to(torch.float32)`).")
    if ref.dtype or other.dtype:
        cast = other.dtype or ref.dtype
        causes.append(
            f"floating-point precision: the run cast to {cast} gives a result beyond the "
            "tolerance, so the computation loses precision: a cancellation such as "
            "`(x + big) - big`, a long sum or mean accumulated in low precision, "
            "`exp`/`log` of large values, a variance as `E[x²] - E[x]²`. Compute it stably "
            "(subtract the max, `logsumexp`, `torch.var`, accumulate in float64). A GPU "
            "run would drift the same way.")
    if "cuda" in (ref.kind, other.kind):
        if tf32:
            causes.append("TF32 is on: float32 matmuls and convolutions on the GPU keep a "
                          "10-bit mantissa; set `torch.backends.cuda.matmul.allow_tf32 = "
                          "False` (and cudnn's) to compare in full float32.")
        causes.append("non-deterministic GPU kernels (atomic adds in scatter/index_add, "
                      "cuDNN algorithm choice with `torch.backends.cudnn.benchmark = True`) "
                      "sum in a different order; `torch.use_deterministic_algorithms(True)`.")
        causes.append("random numbers differ per device: the CPU and CUDA generators give "
                      "different dropout masks and `torch.rand` draws for the same seed; "
                      "call `model.eval()` or pass the random tensors in.")
    if "mps" in (ref.kind, other.kind):
        causes.append("float64 is not supported on MPS: a float64 computation fails or is "
                      "done in float32 there; compare in float32.")
    if training:
        causes.append("differences grow over optimizer steps: compare fewer steps, or give "
                      "atol/rtol for the parameters if a small drift is acceptable.")
    return causes


_FLOATING = set(_PRECISION_ORDER)


def _promotions(ref: list[Leaf], other: list[Leaf], spec: DeviceSpec) -> list[Difference]:
    """Floating results of a cast run whose dtype is not the cast dtype: promoted somewhere."""
    by_path = {leaf.path: leaf for leaf in other}
    out = []
    for a in ref:
        b = by_path.get(a.path)
        if a.kind != "array" or b is None or b.kind != "array" or a.meta[1] not in _FLOATING:
            continue
        if b.meta[1] != spec.dtype and b.meta[1] in _FLOATING:
            detail = (f"dtype {a.meta[1]} on the reference, {b.meta[1]} on {spec.text!r}, "
                      f"whose inputs were cast to {spec.dtype}: something promoted it")
            out.append(Difference(a.path, "dtype", f"{a.path}: {detail}",
                                  {"path": a.path, "what": "dtype", "detail": detail}))
    return out


def _compare_runs(check: str, name: str, results: list[tuple[DeviceSpec, Any]],
                  atol: float | None, rtol: float | None, root: str,
                  training: bool = False) -> None:
    torch = require_torch(check)
    ref_spec, ref_out = results[0]
    ref_leaves = flatten(_to_cpu(ref_out, torch), root)
    uses_cuda = any(s.kind == "cuda" for s, _ in results)
    tf32 = uses_cuda and tf32_enabled()
    given = atol is not None or rtol is not None
    values: dict[str, Any] = {"fn": name, "devices": [s.text for s, _ in results],
                              "reference": ref_spec.text, "tf32": tf32}
    for spec, out in results[1:]:
        tolerance = _Tolerance(atol, rtol, tf32)
        # A run cast to another dtype compares as numbers; its dtype is its own by design.
        cast = bool(ref_spec.dtype or spec.dtype)
        leaves = flatten(_to_cpu(out, torch), root)
        diffs = diff_leaves(ref_leaves, leaves, labels=(ref_spec.text, spec.text),
                            tolerance=tolerance, integer_tolerance=given, check_dtype=not cast)
        if cast and not ref_spec.dtype:
            diffs = _promotions(ref_leaves, leaves, spec) + diffs
        if not diffs:
            continue
        worst = max((d for d in diffs if d.what == "values"),
                    key=lambda d: d.values.get("max_abs_diff") or float("inf"), default=diffs[0])
        lines = [f"{check} failed for {name}: the results on {ref_spec.text!r} and "
                 f"{spec.text!r} differ at {len(diffs)} leaf/leaves; the largest error is at "
                 f"{worst.path}."]
        for d in diffs[:5]:
            lines.append(d.text)
            tol = tolerance.describe(d.path)
            if tol and d.what == "values":
                lines.append(tol)
        if len(diffs) > 5:
            lines.append(summarize(diffs, limit=5).splitlines()[-1])
        lines.append("Likely causes:")
        lines += [f"  - {c}" for c in _causes(diffs, ref_spec, spec, tf32, training)]
        values.update({"compared": [ref_spec.text, spec.text], "path": worst.path,
                       "max_abs_diff": worst.values.get("max_abs_diff"),
                       "max_rel_diff": worst.values.get("max_rel_diff"),
                       "differences": [d.values for d in diffs[:20]],
                       "tolerance": tolerance.used.get(worst.path)})
        message = "\n".join(lines)
        report.emit("device", f"{check}({name})", "FAILED", values, message)
        raise AssertionError(message)
    report.emit("device", f"{check}({name})", "ok", values)


def _prepare(check: str, devices: Any, dtype: Any) -> tuple[Any, list[DeviceSpec], Any]:
    torch = require_torch(check)
    specs = _parse_devices(devices, check)
    if dtype is not None and not isinstance(dtype, torch.dtype):
        if isinstance(dtype, str) and dtype.replace("torch.", "") in _FLOAT_DTYPES:
            dtype = getattr(torch, dtype.replace("torch.", ""))
        else:
            raise TypeError(f"{check}: dtype must be a torch floating dtype such as "
                            f"torch.float16, or None, got {validation.describe(dtype)}")
    for spec in specs:
        require_device(spec.device, check)
    return torch, specs, dtype


def assert_device_consistent(fn: Callable, *args: Any, devices: Any = ("cpu", "cuda"),
                             atol: float | None = None, rtol: float | None = None,
                             dtype: Any = None, **kwargs: Any) -> Any:
    """Run ``fn`` on each device and require the same outputs (compared on the CPU).

    Tensor arguments, and any ``nn.Module`` among the arguments or that ``fn`` is,
    is bound to (``model.predict``) or is a partial of, are copied to each device
    (the caller's objects are never moved). Each run is seeded with 0. Outputs may be
    any tree of tensors, arrays and numbers.

    Args:
        fn: The function or model to run.
        *args: Its positional arguments.
        devices: At least two devices; the first is the reference. ``"cpu:float64"``
            stands in for a second device where there is none (see the module docstring).
        atol: Absolute tolerance; default per dtype, like ``torch.testing.assert_close``.
        rtol: Relative tolerance; default per dtype.
        dtype: A floating dtype every floating tensor and module is cast to on every device.
        **kwargs: Its keyword arguments.

    Returns:
        The output on the reference device.

    Raises:
        AssertionError: The outputs differ beyond the tolerance; names the leaf, the max
            error, the devices and the likely causes.
        ValueError: Bad devices or tolerances.
    """
    check = "device_consistency.check"
    validation.function(fn, check=check)
    for value, tol_name in ((atol, "atol"), (rtol, "rtol")):
        if value is not None:
            validation.tolerance(value, tol_name, check=check)
    torch, specs, dtype = _prepare(check, devices, dtype)
    name = validation.fn_name(fn)
    results = []
    from .seeding import seeded

    for spec in specs:
        move = _mover(torch, spec, dtype)
        moved = _move_fn(fn, move, torch)
        call_args, call_kwargs = move(list(args)), move(dict(kwargs))
        try:
            with seeded(0):
                out = moved(*call_args, **call_kwargs)
        except Exception as exc:
            _annotate_device_error(exc, spec, fn, torch)
            raise
        results.append((spec, out))
    _compare_runs(check, name, results, atol, rtol, "output")
    return results[0][1]


def _annotate_device_error(exc: BaseException, spec: DeviceSpec, fn: Any, torch: Any) -> None:
    note = f"pytest-mlcheck: raised while running on {spec.text!r}"
    if "same device" in str(exc) or "Expected all tensors" in str(exc):
        note += ("; a module or tensor that fn reaches through its closure or globals was "
                 "not moved: pass it to device_consistency.check as an argument (or make fn "
                 "a bound method of the module) so that it is copied to each device")
    if hasattr(exc, "add_note"):
        exc.add_note(note)


def _default_optimizer(params: Any) -> Any:
    import torch

    return torch.optim.SGD(params, lr=0.1)


def assert_training_device_consistent(step_fn: Callable, model: Any, batch: Any, steps: int = 3,
                                      *, devices: Any = ("cpu", "cuda"), optimizer: Any = None,
                                      atol: float | None = None, rtol: float | None = None,
                                      dtype: Any = None) -> None:
    """Run a few optimizer steps on each device and require the same losses and parameters.

    Most CPU/GPU drift shows after training steps, not in one forward pass. A copy of
    ``model`` and of ``batch`` is made per device, with a fresh optimizer; each step is
    seeded (``step``), and after ``steps`` steps the losses, parameters and buffers are
    compared on the CPU.

    Args:
        step_fn: ``(model, optimizer, batch) -> loss``; one training step.
        model: An ``nn.Module`` (never modified: each device trains a copy).
        batch: Tensors (or a tree of them) for every step.
        steps: How many steps (at least 1).
        devices: At least two devices; the first is the reference.
        optimizer: A factory ``params -> optimizer``; default SGD with ``lr=0.1``.
        atol: Absolute tolerance; default per dtype.
        rtol: Relative tolerance; default per dtype.
        dtype: A floating dtype the model and batch are cast to on every device.

    Raises:
        AssertionError: Losses or parameters differ; names the parameter, the max error,
            the devices and the likely causes.
        TypeError: ``model`` is not an ``nn.Module`` or ``optimizer`` not a factory.
        ValueError: Bad devices, steps or tolerances.
    """
    check = "device_consistency.check_training"
    validation.function(step_fn, "step_fn", check=check,
                        signature="(model, optimizer, batch) -> loss")
    steps = validation.integer(steps, "steps", low=1, check=check)
    for value, tol_name in ((atol, "atol"), (rtol, "rtol")):
        if value is not None:
            validation.tolerance(value, tol_name, check=check)
    torch, specs, dtype = _prepare(check, devices, dtype)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{check}: model must be a torch nn.Module, got "
                        f"{validation.describe(model)}")
    factory = _default_optimizer if optimizer is None else validation.function(
        optimizer, "optimizer", check=check, signature="params -> torch.optim.Optimizer")
    from .seeding import seeded

    results = []
    for spec in specs:
        move = _mover(torch, spec, dtype)
        clone, data = move(model), move(batch)
        clone.train()
        opt = factory(list(clone.parameters()))
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"{check}: the optimizer factory must return a "
                            f"torch.optim.Optimizer, got {validation.describe(opt)}")
        losses = []
        for step in range(steps):
            try:
                with seeded(step):
                    loss = step_fn(clone, opt, data)
            except Exception as exc:
                _annotate_device_error(exc, spec, step_fn, torch)
                raise
            losses.append(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        state = {"losses": losses,
                 "parameters": {n: p.detach() for n, p in clone.named_parameters()},
                 "buffers": {n: b.detach() for n, b in clone.named_buffers()}}
        results.append((spec, state))
    _compare_runs(check, validation.fn_name(step_fn), results, atol, rtol, "training",
                  training=True)


class DeviceConsistency:
    """The ``device_consistency`` fixture: device checks recorded for the running test.

    Its methods are the plain functions: ``check(fn, *args, devices=("cpu", "cuda"),
    atol=None, rtol=None, dtype=None, **kwargs)`` is :func:`assert_device_consistent`
    and ``check_training(step_fn, model, batch, steps=3, ...)`` is
    :func:`assert_training_device_consistent`. Each adds a ``device`` record to the
    session report.

    Args:
        request: The pytest fixture request of the test.
    """

    check = staticmethod(assert_device_consistent)
    check_training = staticmethod(assert_training_device_consistent)

    def __init__(self, request: Any) -> None:
        self.request = request
