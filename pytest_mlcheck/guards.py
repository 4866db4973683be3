"""Session guards, on with ``--mlcheck``: seeding, NaN/Inf and silent-bug warnings.

* :func:`protocol_guard` wraps a test's setup, call and teardown: it seeds every RNG
  from :func:`~pytest_mlcheck.seeding.derive_seed` (base seed + node id, so the seed
  does not depend on test order or selection) and restores the previous RNG states
  afterwards, so no test leaks RNG state into another.
* :func:`call_guard` wraps the test call with two guards:

  - the **non-finite guard** (torch, when the test's process has imported torch): a
    global module forward hook checks every ``nn.Module`` output, nested tensors
    included, for NaN/Inf; the first one fails the test, naming the module by its
    qualified name inside the root model. Opt out with ``mlcheck_allow_nonfinite``.
  - the **warnings guard**: a warning from the catalogue in
    :mod:`pytest_mlcheck.silent_warnings` fails the test with its explanation, unless
    allowed by ``@pytest.mark.mlcheck_allow_warning(pattern)`` or the ini option
    ``mlcheck_allow_warnings``. numpy's floating-point error state is ``warn`` during
    the call, so invalid values, division by zero and overflow reach it.

* :func:`failure_section` is the text added to a failing test's report: its seed, the
  command that reproduces it, and the guards' findings.

pytest-randomly: when it is active (and resets seeds), it owns the seeding of
``random`` and numpy and the test order; we do not fight it. We seed torch (which it
does not seed) from our derived seed, and when ``--mlcheck-seed`` is not given the
base seed is pytest-randomly's ``--randomly-seed``, so one number reproduces a run.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import sys
import traceback
import warnings
from typing import Any, Iterator

import numpy as np
import pytest

from . import report
from .seeding import derive_seed, get_rng_state, seed_everything, set_rng_state
from .session import MLCheckSession
from .silent_warnings import compile_allowed, find, is_allowed

SEED = pytest.StashKey[int]()
FINDINGS = pytest.StashKey[list]()
_INI_ALLOWED = pytest.StashKey[list]()

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


# ---- seeding -------------------------------------------------------------------------------


def randomly_active(config: pytest.Config) -> bool:
    """Return whether pytest-randomly is active and resets the RNGs before each test.

    Args:
        config: The pytest config.

    Returns:
        True when the ``randomly`` plugin is registered and ``--randomly-dont-reset-seed``
        was not given.
    """
    if not config.pluginmanager.hasplugin("randomly"):
        return False
    try:
        return bool(config.getoption("randomly_reset_seed", True))
    except ValueError:
        return True


def base_seed(session: MLCheckSession) -> tuple[int, str]:
    """Return the base seed every test's seed derives from, and where it came from.

    Args:
        session: The plugin's session state.

    Returns:
        ``(seed, source)``; the source is ``--mlcheck-seed``, ``default`` or
        ``--randomly-seed`` (pytest-randomly active and no ``--mlcheck-seed`` given).
    """
    config = session.config
    if config.getoption("mlcheck_seed", None) is not None:
        return session.base_seed, "--mlcheck-seed"
    if randomly_active(config):
        seed = config.getoption("randomly_seed", None)
        if isinstance(seed, int) and not isinstance(seed, bool):
            return seed, "--randomly-seed"
    return session.base_seed, "default"


def reproduce_command(nodeid: str, session: MLCheckSession) -> str:
    """Return the command that reruns one test with the same seeds.

    Args:
        nodeid: The test's node id.
        session: The plugin's session state.

    Returns:
        A shell command line.
    """
    seed, source = base_seed(session)
    if source == "--randomly-seed":
        return f"pytest '{nodeid}' --mlcheck -p randomly --randomly-seed={seed}"
    extra = ""
    if randomly_active(session.config):
        randomly_seed = session.config.getoption("randomly_seed", None)
        extra = f" -p randomly --randomly-seed={randomly_seed}"
    return f"pytest '{nodeid}' --mlcheck --mlcheck-seed={seed}{extra}"


#: Backends whose ``manual_seed_all`` defers to first use while uninitialized, capturing
#: ``traceback.format_stack()`` of pytest's deep stack: about 0.2 ms each per test.
_LAZY_SEED_BACKENDS = ("cuda", "xpu", "mtia")


def _seed_everything_fast(seed: int) -> None:
    """Seed every RNG exactly as :func:`~pytest_mlcheck.seeding.seed_everything` does, cheaper.

    ``torch.manual_seed`` queues a seed for each lazily initialized backend with a
    captured stack, even when that backend is not available and can never initialize:
    under pytest that was 0.5 ms per test. Here an unavailable backend is skipped and an
    initialized one seeded directly; in any other case (an available backend not yet
    initialized, whose queued seed matters, or a torch without the pieces used here) the
    full ``torch.manual_seed`` runs.

    Args:
        seed: A derived seed in ``[0, 2**32)``.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        seed_everything(seed)
        return
    random.seed(seed)
    np.random.seed(seed)
    if not _seed_torch_fast(torch, seed):
        torch.manual_seed(seed)


def _seed_torch_fast(torch: Any, seed: int) -> bool:
    """Seed torch like ``torch.manual_seed`` without its lazy queues; False when it cannot."""
    mps = getattr(torch, "mps", None)
    mps_bad_fork = getattr(mps, "_is_in_bad_fork", None)
    seed_custom = getattr(getattr(torch, "random", None), "_seed_custom_device", None)
    if mps_bad_fork is None or seed_custom is None:
        return False
    ready = []
    try:
        for name in _LAZY_SEED_BACKENDS:
            backend = getattr(torch, name, None)
            if backend is None:
                continue  # this torch has no such backend, so manual_seed does not seed it
            if backend.is_initialized():
                ready.append(backend)
            elif backend.is_available():
                return False
    except Exception:  # an odd backend build: let torch do it
        return False
    for backend in ready:
        backend.manual_seed_all(seed)
    if not mps_bad_fork():
        mps.manual_seed(seed)
    seed_custom(seed)
    torch.random.default_generator.manual_seed(seed)
    return True


@contextlib.contextmanager
def protocol_guard(item: pytest.Item, session: MLCheckSession) -> Iterator[None]:
    """Seed the RNGs for this test and restore their states when it ends.

    Args:
        item: The test.
        session: The plugin's session state.

    Yields:
        While the test's setup, call and teardown run.
    """
    seed = derive_seed(base_seed(session)[0], item.nodeid)
    item.stash[SEED] = seed
    item.stash[FINDINGS] = []
    state = get_rng_state()
    _seed_everything_fast(seed)
    try:
        yield
    finally:
        set_rng_state(state)


# ---- non-finite guard (torch) -----------------------------------------------------------


def _call_site(test_path: str | None) -> str | None:
    """Return ``file:line: code`` of the innermost caller in the test file (or user code)."""
    frames = traceback.extract_stack()[:-3]
    torch_dir = os.sep + "torch" + os.sep
    for frame in reversed(frames):
        if test_path is not None and os.path.abspath(frame.filename) == test_path:
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    for frame in reversed(frames):
        name = frame.filename
        if not (name.startswith(_PACKAGE_DIR) or torch_dir in name or "_pytest" in name
                or "pluggy" in name or name.startswith("<")):
            return f"{name}:{frame.lineno}: {frame.line}"
    return None


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


class NonFiniteGuard:
    """Global module hooks that fail the test at the first NaN/Inf module output.

    On the CPU each output is checked at once: one sum per floating-point tensor, read
    as a scalar; only a non-finite sum is confirmed with ``isfinite().all()`` (a sum of
    finite values can overflow). On accelerators the checks are queued as device flags and
    read once when the outermost module call returns, so the guard adds one host sync
    per model call instead of one per module.

    Args:
        torch: The torch module (already imported by the test's process).
        seed: The test's seed, quoted in the message.
        test_path: The test file, to point at the line that called the model.
    """

    #: Device types whose checks are deferred to the end of the outermost module call.
    DEFER_DEVICE_TYPES = frozenset({"cuda", "mps", "xpu", "hpu", "privateuseone"})

    def __init__(self, torch: Any, seed: int | None, test_path: str | None = None) -> None:
        self.torch = torch
        self.seed = seed
        self.test_path = test_path
        self.depth = 0
        self.root: Any = None
        self.finding: str | None = None
        self.pending: list = []
        self._tensor = torch.Tensor
        self._isfinite = torch.isfinite
        self._sum_dtype = {torch.float16: torch.float32, torch.bfloat16: torch.float32}
        self._strided = torch.strided
        self._defer_cpu = "cpu" in self.DEFER_DEVICE_TYPES
        self._tracing = torch._C._get_tracing_state
        compiler = getattr(torch, "compiler", None)
        self._compiling = getattr(compiler, "is_compiling", None) or (lambda: False)
        hooks = torch.nn.modules.module
        self.handles = [
            hooks.register_module_forward_pre_hook(self._pre),
            hooks.register_module_forward_hook(self._post, always_call=True),
        ]

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _pre(self, module: Any, args: Any) -> None:
        if self.depth == 0:
            self.root = module
            self.pending = []
        self.depth += 1

    def _post(self, module: Any, args: Any, output: Any) -> None:
        self.depth = max(self.depth - 1, 0)
        if self.finding is not None:
            return
        if output is None:
            if self.depth == 0 and self.pending:
                self._flush()
            return
        if self._tracing() or self._compiling():
            return  # a bool() here would be baked into the trace or break the graph
        try:
            bad = self._first_bad(output)
        except RuntimeError:  # e.g. functorch batched tensors: no data-dependent checks
            return
        if bad is not None:
            self._found(module, args, output)
        elif self.depth == 0 and self.pending:
            self._flush()

    def _first_bad(self, x: Any) -> bool | None:
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
        if isinstance(x, (tuple, list)):
            for v in x:
                if self._first_bad(v):
                    return True
            return None
        if isinstance(x, dict):
            for v in x.values():
                if self._first_bad(v):
                    return True
        return None

    def _flush(self) -> None:
        flags, self.pending = self.pending, []
        if bool(self.torch.stack([f.to(flags[0].device) for f in flags]).all()):
            return
        self._found(self.root, (), None, deferred=True)

    def _found(self, module: Any, args: Any, output: Any, deferred: bool = False) -> None:
        torch = self.torch
        root = self.root if self.root is not None else module
        name = None
        for qualname, m in root.named_modules():
            if m is module:
                name = qualname
                break
        where = (f"`{name}` ({type(module).__name__}) inside the model `{type(root).__name__}`" if name
                 else f"`{type(module).__name__}` (the outermost module called)" if module is root
                 else f"`{type(module).__name__}` (called outside `{type(root).__name__}`'s submodules)")
        short = name if name else type(module).__name__
        lines = [f"NaN/Inf from module `{short}` ({type(module).__name__})",
                 f"  NaN/Inf in the output of module {where}."]
        if deferred:
            lines.append("  (checked once per model call on the accelerator: the module named is the "
                         "outermost one; rerun on CPU to find the innermost)")
        else:
            for path, t in _tensors(output, "output"):
                if t.is_floating_point() or t.is_complex():
                    if not bool(torch.isfinite(t).all()):
                        lines.append(f"  {path}: {_count_nonfinite(torch, t)}")
            bad_inputs = [f"{path}: {_count_nonfinite(torch, t)}" for path, t in _tensors(args, "input")
                          if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())]
            bad_params = [f"{n}: {_count_nonfinite(torch, p)}" for n, p in
                          list(module.named_parameters()) + list(module.named_buffers())
                          if (p.is_floating_point() or p.is_complex()) and not bool(torch.isfinite(p).all())]
            if bad_inputs:
                lines.append("  Its inputs were already non-finite, so the NaN/Inf entered before this "
                             "module: from the batch itself, or from code outside any module (a "
                             "functional op in a parent's forward, the data pipeline):")
                lines += [f"    {b}" for b in bad_inputs]
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
        site = _call_site(self.test_path)
        if site:
            lines.append(f"  called from {site}")
        lines.append(f"  test seed: {self.seed}. If NaN/Inf is expected here, mark the test "
                     "@pytest.mark.mlcheck_allow_nonfinite.")
        self.finding = "\n".join(lines)
        report.emit("guard", "nonfinite", "NON-FINITE",
                    {"module": name if name else type(module).__name__, "class": type(module).__name__,
                     "root": type(root).__name__, "seed": self.seed, "deferred": deferred},
                    self.finding)
        # pytest's Failed is a BaseException: `except Exception` in a training loop or in
        # torch's hook machinery cannot swallow it, and pytest prints the message alone.
        pytest.fail(self.finding, pytrace=False)


def _tensors(x: Any, path: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    torch = sys.modules["torch"]
    if isinstance(x, torch.Tensor):
        if x.layout is torch.strided and not x.is_meta:
            yield path, x.detach()
        return
    if depth > 6:
        return
    if isinstance(x, (tuple, list)):
        for i, v in enumerate(x):
            yield from _tensors(v, f"{path}[{i}]", depth + 1)
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _tensors(v, f"{path}[{k!r}]", depth + 1)


# ---- warnings guard ---------------------------------------------------------------------


def _allowed_patterns(item: pytest.Item, session: MLCheckSession) -> list[re.Pattern]:
    config = session.config
    ini = config.stash.get(_INI_ALLOWED, None)
    if ini is None:
        ini = compile_allowed(config.getini("mlcheck_allow_warnings"), "ini option mlcheck_allow_warnings")
        config.stash[_INI_ALLOWED] = ini
    patterns: list[str] = []
    for mark in item.iter_markers("mlcheck_allow_warning"):
        given = list(mark.args) + ([mark.kwargs["pattern"]] if "pattern" in mark.kwargs else [])
        if not given:
            raise ValueError(f"{item.nodeid}: @pytest.mark.mlcheck_allow_warning needs a pattern, e.g. "
                             "@pytest.mark.mlcheck_allow_warning('divide by zero') or a catalogue id "
                             "such as 'numpy-divide'")
        patterns += given
    return ini + compile_allowed(patterns, f"{item.nodeid}: @pytest.mark.mlcheck_allow_warning")


def _numpy_warn_state() -> dict[str, str]:
    current = np.geterr()
    return {k: "warn" for k in ("divide", "over", "invalid") if current[k] == "ignore"}


class _CallGuards:
    """The guards around one test call (see :func:`call_guard`)."""

    def __init__(self, item: pytest.Item, session: MLCheckSession) -> None:
        self.item = item
        self.session = session
        self.seed = item.stash.get(SEED, None)
        self.allowed = _allowed_patterns(item, session)
        self.nonfinite: NonFiniteGuard | None = None
        self.stack = contextlib.ExitStack()
        self.log: list = []

    def start(self) -> None:
        torch = sys.modules.get("torch")
        if torch is not None and self.item.get_closest_marker("mlcheck_allow_nonfinite") is None:
            path = getattr(self.item, "path", None)
            self.nonfinite = NonFiniteGuard(torch, self.seed, os.path.abspath(path) if path else None)
            self.stack.callback(self.nonfinite.remove)
        self.stack.enter_context(np.errstate(**_numpy_warn_state()))
        self.log = self.stack.enter_context(warnings.catch_warnings(record=True))

    def stop(self, error: BaseException | None) -> str | None:
        self.stack.close()
        from .determinism import replay_warnings

        findings: list[str] = []
        for w in self.log:
            if w.filename.startswith(_PACKAGE_DIR):
                continue  # our own checks' arithmetic is not the user's bug
            finding = self._classify(w.category, str(w.message), f"{w.filename}:{w.lineno}")
            if finding:
                findings.append(finding)
        replay_warnings(self.log)
        if isinstance(error, Warning):  # filterwarnings=error turned it into an exception
            finding = self._classify(type(error), str(error), "raised as an error by filterwarnings")
            if finding:
                findings.append(finding)
        stash = self.item.stash.setdefault(FINDINGS, [])
        if self.nonfinite is not None and self.nonfinite.finding is not None:
            stash.append(self.nonfinite.finding)
            if error is None:  # the test caught our exception: fail it anyway
                return self.nonfinite.finding
        stash.extend(findings)
        if findings and error is None:
            return "\n\n".join(findings)
        return None

    def _classify(self, category: type, message: str, where: str) -> str | None:
        entry = find(category, message)
        if entry is None:
            return None
        values = {"id": entry.id, "category": category.__name__, "message": message[:500], "where": where}
        if is_allowed(entry, message, self.allowed):
            report.emit("guard", f"warning:{entry.id}", "ok", {**values, "allowed": True})
            return None
        first = message.strip().splitlines()[0] if message.strip() else message
        text = (f"silent-bug warning {entry.id}\n"
                f"  {category.__name__} at {where}: {first}\n"
                f"  {entry.explanation}\n"
                f"  test seed: {self.seed}. If this is expected, allow it for this test with "
                f"@pytest.mark.mlcheck_allow_warning({entry.id!r}) or project-wide with the ini option "
                f"mlcheck_allow_warnings.")
        report.emit("guard", f"warning:{entry.id}", "FAILED", values, text)
        return text


@contextlib.contextmanager
def call_guard(item: pytest.Item, session: MLCheckSession) -> Iterator[None]:
    """Run the non-finite and warnings guards around the test call.

    Args:
        item: The test.
        session: The plugin's session state.

    Yields:
        While the test function runs.
    """
    guards = _CallGuards(item, session)
    guards.start()
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        message = guards.stop(error)
    if message:
        pytest.fail(message, pytrace=False)


def failure_section(item: pytest.Item, session: MLCheckSession) -> str:
    """Return the seed of a failing test, the command that reproduces it and guard findings.

    Args:
        item: The failing test.
        session: The plugin's session state.

    Returns:
        The text of the report's ``mlcheck`` section.
    """
    seed = item.stash.get(SEED, None)
    base, source = base_seed(session)
    text = (f"seed {seed} (base seed {base}, from {source}); reproduce with:\n"
            f"  {reproduce_command(item.nodeid, session)}")
    if randomly_active(session.config):
        text += ("\n  (pytest-randomly is active: it seeds random and numpy itself, "
                 "pytest-mlcheck seeds torch)")
    findings = item.stash.get(FINDINGS, None)
    if findings:  # the full text is the failure message above; one line each here
        text += "\nguard findings:\n" + "\n".join(f"  {f.splitlines()[0]}" for f in findings)
    return text
