"""The non-finite guard: every ``nn.Module`` output of a test call is checked for NaN/Inf.

How the outputs are seen. While a test call runs, ``torch.nn.Module.__call__`` is a thin
wrapper (:func:`_module_call`) that calls torch's own ``__call__`` and checks what it
returned. Not global forward hooks: with a global hook registered, ``torch.compile``
warns in every compiled module call that the hook will "fire an extra time", and dynamo
traces the hook into each graph and guards on it, so a compiled function recompiled in
every test. The wrapper is invisible to dynamo: under compilation it calls straight
through, before it reads any state, so graphs neither change nor recompile between tests.
Without global hooks torch also keeps its fast path for modules without hooks.

Modules whose class overrides ``__call__`` without reaching ``nn.Module.__call__`` (as
gpytorch's ``Module`` does: it calls ``forward`` itself) bypass that wrapper and torch's
hooks alike. The guard finds those classes, wraps their ``__call__`` for the test call
too, checks their outputs and counts them, so the summary can say how many module outputs
were checked and how many came through such a wrapper.

What is inspected: tensors, nested in tuples, lists, dicts, dataclasses and
``torch.distributions`` objects (their parameters already computed: nothing lazy is
evaluated).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import os
import sys
import sysconfig
import threading
import types
from typing import Any, Iterator

import pytest

from .. import report
from .policy import REPORTED

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_MAX_DEPTH = 6

# The guard running now, and the ``__call__`` the wrapper delegates to. Module globals,
# not closure cells: under dynamo the wrapper reads neither before deciding to call
# through, so nothing per-test ends up in a graph's guards.
_active: "NonFiniteGuard | None" = None
_original_call: Any = None
_is_compiling: Any = None
_tracing_state: Any = None


def _module_call(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``nn.Module.__call__`` while a guard is installed: torch's call, then the check."""
    __tracebackhide__ = True  # noqa: F841  pytest hides this frame in tracebacks
    if _is_compiling():
        return _original_call(self, *args, **kwargs)
    guard = _active
    if guard is None or guard.thread != threading.get_ident() or _tracing_state() is not None:
        return _original_call(self, *args, **kwargs)
    return guard.call(self, args, kwargs)


def _wrap_custom_call(original: Any) -> Any:
    """Return the ``__call__`` installed on a class whose own ``__call__`` bypasses torch's."""

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # noqa: F841
        if _is_compiling():
            return original(self, *args, **kwargs)
        guard = _active
        if (guard is None or guard.thread != threading.get_ident() or _tracing_state() is not None
                or (guard.custom and guard.custom[-1] is self)):
            return original(self, *args, **kwargs)  # an outer wrapper tracks this call already
        return guard.custom_call(original, self, args, kwargs)

    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    __call__.__doc__ = original.__doc__
    __call__.__name__ = getattr(original, "__name__", "__call__")
    __call__.__qualname__ = getattr(original, "__qualname__", "__call__")
    return __call__


#: class -> (its own __call__, our wrapper of it); wrappers are made once per class.
_CUSTOM_WRAPPERS: dict[type, tuple[Any, Any]] = {}
_custom_scan: tuple[int, list[type]] = (-1, [])


def _custom_call_classes(module_type: type) -> list[type]:
    """Return the ``nn.Module`` subclasses outside torch that define their own ``__call__``.

    Rescanned only when ``sys.modules`` grew: classes come with imports.
    """
    global _custom_scan
    if _custom_scan[0] == len(sys.modules):
        return _custom_scan[1]
    found: list[type] = []
    seen: set[type] = set()
    todo = [module_type]
    while todo:
        klass = todo.pop()
        for sub in type.__subclasses__(klass):
            if sub in seen:
                continue
            seen.add(sub)
            todo.append(sub)
            own = sub.__dict__.get("__call__")
            mod = getattr(sub, "__module__", "") or ""
            if (isinstance(own, types.FunctionType) and not mod.startswith("torch.")
                    and own.__module__ != __name__):
                found.append(sub)
    _custom_scan = (len(sys.modules), found)
    return found


class NonFiniteGuard:
    """Checks module outputs during one test call and fails at the first NaN/Inf.

    On the CPU each output is checked at once: one sum per floating-point tensor, read
    as a scalar; only a non-finite sum is confirmed with ``isfinite().all()`` (a sum of
    finite values can overflow). On accelerators the checks are queued as device flags and
    read once when the outermost module call returns, so the guard adds one host sync
    per model call instead of one per module.

    Args:
        torch: The torch module (already imported by the test's process).
        seed: The test's seed, quoted in the message.
        test_path: The test file, to point at the line that called the model.
        fails: Whether a finding fails the test (``mlcheck_guards = fail``) or is reported.
        allowed_classes: Module class-name globs whose NaN/Inf outputs are expected.
    """

    #: Device types whose checks are deferred to the end of the outermost module call.
    DEFER_DEVICE_TYPES = frozenset({"cuda", "mps", "xpu", "hpu", "privateuseone"})

    def __init__(self, torch: Any, seed: int | None, test_path: str | None = None,
                 fails: bool = True, allowed_classes: tuple[str, ...] = ()) -> None:
        self.torch = torch
        self.seed = seed
        self.test_path = test_path
        self.fails = fails
        self.allowed_classes = allowed_classes
        self.thread = threading.get_ident()
        self.depth = 0
        self.root: Any = None
        self.finding: str | None = None
        self.pending: list = []
        #: Module outputs checked, and the calls of each class that bypassed nn.Module.__call__.
        self.checked = 0
        self.bypassed: dict[str, int] = {}
        self.allowed_hits: dict[str, int] = {}
        #: (module, its root) of the last output found finite: where the NaN was not yet.
        self.last_finite: tuple[Any, Any] | None = None
        #: Modules inside a custom ``__call__`` wrapper not yet seen by nn.Module.__call__.
        self.custom: list = []
        self._tensor = torch.Tensor
        self._isfinite = torch.isfinite
        self._sum_dtype = {torch.float16: torch.float32, torch.bfloat16: torch.float32}
        self._strided = torch.strided
        self._defer_cpu = "cpu" in self.DEFER_DEVICE_TYPES
        self._distribution = getattr(sys.modules.get("torch.distributions"), "Distribution", None)
        self._patched: list[tuple[type, Any]] = []
        self._install()

    # ---- installing ---------------------------------------------------------------------

    def _install(self) -> None:
        global _active, _original_call, _is_compiling, _tracing_state
        torch = self.torch
        module_type = torch.nn.Module
        compiler = getattr(torch, "compiler", None)
        _is_compiling = getattr(compiler, "is_compiling", None) or (lambda: False)
        _tracing_state = torch._C._get_tracing_state
        current = module_type.__dict__.get("__call__")
        # A guard already installed (a pytester session inside a guarded test) is
        # stacked on: this one delegates to the same torch call and restores the outer.
        self._outer = (_active, _original_call)
        if current is not _module_call:
            _original_call = current
        _active = self
        self._patched.append((module_type, current))
        module_type.__call__ = _module_call
        for klass in _custom_call_classes(module_type):
            own = klass.__dict__.get("__call__")
            original, wrapper = _CUSTOM_WRAPPERS.get(klass, (None, None))
            if own is not wrapper:  # new class, or its __call__ was reassigned since
                original, wrapper = own, _wrap_custom_call(own)
                _CUSTOM_WRAPPERS[klass] = (original, wrapper)
            self._patched.append((klass, own))
            klass.__call__ = wrapper

    def remove(self) -> None:
        """Put back every ``__call__`` replaced by the guard."""
        global _active, _original_call
        for klass, previous in reversed(self._patched):
            klass.__call__ = previous
        self._patched = []
        if _active is self:
            _active, _original_call = self._outer

    # ---- the calls ----------------------------------------------------------------------

    def call(self, module: Any, args: tuple, kwargs: dict) -> Any:
        """Run ``nn.Module.__call__`` for ``module`` and check its output."""
        __tracebackhide__ = True  # noqa: F841
        custom = self.custom
        if custom and custom[-1] is module:
            custom[-1] = None  # its custom __call__ did reach nn.Module.__call__
        if self.depth == 0:
            self.root = module
            self.pending = []
        self.depth += 1
        try:
            output = _original_call(module, *args, **kwargs)
        finally:
            self.depth -= 1
        self._after(module, args, output)
        return output

    def custom_call(self, original: Any, module: Any, args: tuple, kwargs: dict) -> Any:
        """Run a class's own ``__call__``; check its output when it bypassed ``nn.Module.__call__``."""
        __tracebackhide__ = True  # noqa: F841
        if self.depth == 0:
            self.root = module
            self.pending = []
        self.custom.append(module)
        self.depth += 1
        try:
            output = original(module, *args, **kwargs)
        finally:
            self.depth -= 1
            bypassed = self.custom.pop() is not None
        if bypassed:
            name = type(module).__name__
            self.bypassed[name] = self.bypassed.get(name, 0) + 1
            self._after(module, args, output)
        return output

    def _after(self, module: Any, args: tuple, output: Any) -> None:
        if self.finding is not None:
            return
        if output is None:
            if self.depth == 0 and self.pending:
                self._flush()
            return
        self.checked += 1
        try:
            bad = self._first_bad(output, 0)
        except RuntimeError:  # e.g. functorch batched tensors: no data-dependent checks
            return
        if bad is not None:
            if self.allowed_classes and self._allowed(module):
                return
            self._found(module, args, output)
        else:
            self.last_finite = (module, self.root)
            if self.depth == 0 and self.pending:
                self._flush()

    def _allowed(self, module: Any) -> bool:
        klass = type(module)
        names = (klass.__name__, f"{klass.__module__}.{klass.__qualname__}")
        if any(fnmatch.fnmatchcase(n, glob) for glob in self.allowed_classes for n in names):
            self.allowed_hits[klass.__name__] = self.allowed_hits.get(klass.__name__, 0) + 1
            return True
        return False

    def _first_bad(self, x: Any, depth: int) -> bool | None:
        """Return True at the first non-finite tensor checked now, None otherwise."""
        if isinstance(x, self._tensor):
            if not (x.is_floating_point() or x.is_complex()) or x.is_meta:
                return None
            if x.layout is not self._strided:
                x = x.coalesce().values() if x.is_sparse else x.to_dense()
            if not x.is_cpu and x.device.type in self.DEFER_DEVICE_TYPES or (
                    self._defer_cpu and x.is_cpu):
                self.pending.append(self._isfinite(x).all())
                return None
            if not x.is_complex():
                # One reduction and one scalar read: a sum is finite when every element is,
                # 5x cheaper than isfinite().all() on small tensors. A non-finite sum can
                # also be an overflow of finite values, so it is confirmed exactly below.
                try:
                    total = x.detach().sum(dtype=self._sum_dtype.get(x.dtype, x.dtype))
                    if math.isfinite(total.item()):
                        return None
                except RuntimeError:  # dtypes without a sum kernel (float8): exact check
                    pass
            return None if bool(self._isfinite(x).all()) else True
        if depth >= _MAX_DEPTH:
            return None
        for _, v in _children(x, self._distribution):
            if self._first_bad(v, depth + 1):
                return True
        return None

    def _flush(self) -> None:
        flags, self.pending = self.pending, []
        if bool(self.torch.stack([f.to(flags[0].device) for f in flags]).all()):
            return
        self._found(self.root, (), None, deferred=True)

    # ---- the finding ----------------------------------------------------------------------

    def _found(self, module: Any, args: Any, output: Any, deferred: bool = False) -> None:
        root = self.root if self.root is not None else module
        name = _qualname(root, module)
        where = (f"`{name}` ({type(module).__name__}) inside the model `{type(root).__name__}`" if name
                 else f"`{type(module).__name__}` (the outermost module called)" if module is root
                 else f"`{type(module).__name__}` (called outside `{type(root).__name__}`'s submodules)")
        short = name if name else type(module).__name__
        lines = [f"NaN/Inf from module `{short}` ({type(module).__name__})",
                 f"  NaN/Inf in the output of module {where}."]
        entered_outside = False
        if deferred:
            lines.append("  (checked once per model call on the accelerator: the module named is the "
                         "outermost one; rerun on CPU to find the innermost)")
        else:
            lines += [f"  {path}: {_count_nonfinite(self.torch, t)}"
                      for path, t in _bad_tensors(output, "output", self._distribution)]
            bad_inputs = [f"{path}: {_count_nonfinite(self.torch, t)}"
                          for path, t in _bad_tensors(args, "input", self._distribution)]
            bad_params = [f"{n}: {_count_nonfinite(self.torch, p)}" for n, p in
                          list(module.named_parameters()) + list(module.named_buffers())
                          if _is_bad(p)]
            if bad_inputs:
                entered_outside = True
                lines.append("  Its inputs were already non-finite, so the NaN/Inf entered before this "
                             "module: from the batch itself, or from code outside any module (a "
                             "functional op in a parent's forward, a loss or metric computed by hand, "
                             "the data pipeline):")
                lines += [f"    {b}" for b in bad_inputs]
                lines += self._last_finite_lines(module)
            elif bad_params:
                lines.append("  Its inputs were finite but its own parameters/buffers are not: "
                             "training diverged earlier (too high a learning rate, no gradient "
                             "clipping, a loss that returned NaN):")
                lines += [f"    {b}" for b in bad_params]
            else:
                lines.append("  Its inputs and parameters were finite: this module produced the first "
                             "NaN/Inf. Likely causes: log of a probability that underflowed to 0 "
                             "(use `log_softmax`/`logsumexp` instead of `log(softmax(x))`), division "
                             "by a zero norm or std (add an epsilon), `exp` overflow (subtract the "
                             "max first), `sqrt` of a negative number, fp16 overflow (use bf16 or "
                             "autocast with a GradScaler).")
        test_site, library = _call_sites(self.test_path)
        if library:
            lines.append("  innermost code outside torch and the test" + (
                " (the NaN/Inf was computed at or just before these lines):" if entered_outside else ":"))
            lines += [f"    {site}" for site in library]
        if test_site:
            lines.append(f"  called from {test_site}")
        lines.append(f"  test seed: {self.seed}. If NaN/Inf is expected here, mark the test "
                     "@pytest.mark.mlcheck_allow_nonfinite, or list the test's node id or the "
                     f"module class `{type(module).__name__}` in the ini option mlcheck_allow_nonfinite.")
        if not self.fails:
            lines.append("  (reported, not failed: mlcheck_guards = report)")
        self.finding = "\n".join(lines)
        last = self.last_finite
        report.emit("guard", "nonfinite", "NON-FINITE" if self.fails else REPORTED,
                    {"module": short, "class": type(module).__name__, "root": type(root).__name__,
                     "seed": self.seed, "deferred": deferred,
                     "last_finite": type(last[0]).__name__ if last and entered_outside else None},
                    self.finding)
        if self.fails:
            # pytest's Failed is a BaseException: `except Exception` in a training loop or in
            # torch's machinery cannot swallow it, and pytest prints the message alone.
            pytest.fail(self.finding, pytrace=False)

    def _last_finite_lines(self, module: Any) -> list[str]:
        last = self.last_finite
        here = type(module).__name__
        if last is None:
            return [f"  No module returned an output before `{here}` in this test: the NaN/Inf came "
                    "with the data, or from code that ran before any module."]
        prev, prev_root = last
        name = _qualname(prev_root, prev)
        label = f"`{type(prev).__name__}`" + (
            f" (`{name}` inside `{type(prev_root).__name__}`)" if name else "")
        return [f"  {label} returned finite values; the NaN/Inf appeared between it and `{here}`, "
                "in code outside any module (a log, division, sqrt or exp applied to that output?)."]


def _qualname(root: Any, module: Any) -> str | None:
    if root is None or module is root:
        return None
    try:
        for qualname, m in root.named_modules():
            if m is module:
                return qualname or None
    except Exception:  # a module whose named_modules is broken or custom
        return None
    return None


def _children(x: Any, distribution: Any) -> Iterator[tuple[str, Any]]:
    """Yield ``(path suffix, value)`` of the containers' members the guard looks into."""
    if isinstance(x, (tuple, list)):
        for i, v in enumerate(x):
            yield f"[{i}]", v
    elif isinstance(x, dict):
        for k, v in x.items():
            yield f"[{k!r}]", v
    elif distribution is not None and isinstance(x, distribution):
        # Only what the distribution holds already: a lazy property such as `probs` or a
        # lazily evaluated covariance is never computed for the check.
        for k, v in vars(x).items():
            if not k.startswith("__"):
                yield f".{k}", v
    elif hasattr(type(x), "__dataclass_fields__") and not isinstance(x, type):
        for field in dataclasses.fields(x):
            yield f".{field.name}", getattr(x, field.name, None)


def _is_bad(t: Any) -> bool:
    return ((t.is_floating_point() or t.is_complex()) and not t.is_meta
            and t.layout is sys.modules["torch"].strided and not bool(sys.modules["torch"].isfinite(t).all()))


def _bad_tensors(x: Any, path: str, distribution: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    torch = sys.modules["torch"]
    if isinstance(x, torch.Tensor):
        if _is_bad(x):
            yield path, x.detach()
        return
    if depth >= _MAX_DEPTH:
        return
    for suffix, v in _children(x, distribution):
        yield from _bad_tensors(v, path + suffix, distribution, depth + 1)


def _count_nonfinite(torch: Any, t: Any) -> str:
    with torch.no_grad():
        t = t.detach()
        if t.is_complex():
            t = torch.view_as_real(t)
        nan = int(torch.isnan(t).sum())
        pinf = int(torch.isposinf(t).sum())
        ninf = int(torch.isneginf(t).sum())
    parts = [f"{n} {what}" for n, what in ((nan, "NaN"), (pinf, "+Inf"), (ninf, "-Inf")) if n]
    shape = tuple(t.shape)
    return (f"{', '.join(parts) or 'no NaN/Inf'} of {t.numel()} elements "
            f"(shape {shape}, dtype {str(t.dtype).replace('torch.', '')})")


_LIBRARY_FRAMES = 3
_SKIPPED_DIRS = tuple({os.path.normpath(p) + os.sep for p in
                       (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib"))
                       if p})


def _call_sites(test_path: str | None) -> tuple[str | None, list[str]]:
    """Return the test file's innermost line, and the innermost lines outside torch and the test.

    Frames of torch, pytest, pluggy, the standard library and this package are skipped.
    """
    torch_dir = os.sep + "torch" + os.sep
    test_site: str | None = None
    library: list[str] = []
    frame: Any = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        absolute = os.path.abspath(name) if not name.startswith("<") else name
        if test_path is not None and absolute == test_path:
            test_site = _frame_line(frame)
            break
        if not (absolute.startswith(_PACKAGE_DIR) or torch_dir in absolute or "_pytest" in absolute
                or "pluggy" in absolute or absolute.startswith("<")
                or (absolute.startswith(_SKIPPED_DIRS) and "site-packages" not in absolute)):
            if len(library) < _LIBRARY_FRAMES:
                library.append(_frame_line(frame))
        frame = frame.f_back
    if test_site is None and library:  # no test file on the stack: the outermost user line
        test_site = library[-1]
    return test_site, library


def _frame_line(frame: Any) -> str:
    import linecache

    name = frame.f_code.co_filename
    line = linecache.getline(name, frame.f_lineno).strip()
    return f"{name}:{frame.f_lineno}: {line}"
