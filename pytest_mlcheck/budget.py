"""Resource budgets: wall time, peak memory and parameter counts.

Plain functions, usable without pytest: :func:`measure_resources` (a context manager)
and :func:`assert_param_budget`. The fixture class :class:`ResourceBudget` (fixture
``resource_budget``) calls them; every check adds a record of kind ``budget``.

Peak memory is measured three ways, because no single one sees everything:

* **traced**: :mod:`tracemalloc` sees Python objects and numpy buffers (numpy reports
  its allocations to it) exactly, including short-lived peaks. It slows pure-Python
  allocation, so it is off when ``max_seconds`` is the only budget.
* **RSS**: torch's CPU allocator does not report to tracemalloc, so the resident set
  size is followed too. On Linux the kernel's high-water mark is reset at the start of
  the block (``/proc/self/clear_refs``) and read at the end, which is exact; a
  background thread also samples ``/proc/self/statm`` every millisecond in case the
  reset is not permitted. Elsewhere the growth of ``ru_maxrss`` is used, which only
  shows peaks above the process's earlier maximum. RSS growth can under-count memory
  the allocator reuses without returning it to the system.
* **CUDA**: when torch is imported and CUDA is initialised, the device peak from
  ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

``peak_mb`` (host) is the larger of traced and RSS growth; ``max_peak_mb`` bounds it.
``cuda_peak_mb`` is bounded separately by ``max_cuda_mb``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import time
import tracemalloc
from typing import Any, Iterator

from . import report, validation
from .arrays import is_module, torch_module

MB = 1024 * 1024
_SAMPLE_SECONDS = 0.001

# Measurements in progress, outermost first: an inner block resets the global peak
# counters, so it first hands the peaks seen so far to every enclosing block.
_active: list["ResourceUsage"] = []


@dataclasses.dataclass
class ResourceUsage:
    """What a measured block used. Filled in when the block ends.

    Attributes:
        seconds: Wall-clock time of the block.
        peak_mb: Host peak memory above the start of the block (the larger of
            ``traced_peak_mb`` and ``rss_peak_mb``), in MiB.
        traced_peak_mb: Peak of Python and numpy allocations above the start
            (tracemalloc), or ``None`` when tracing was off.
        rss_peak_mb: Peak growth of the resident set size above the start, or ``None``
            where the platform gives no way to measure it.
        cuda_peak_mb: Peak CUDA memory allocated by torch above the start, or ``None``
            when CUDA was not in use.
        rss_method: How RSS was measured: ``hwm`` (kernel high-water mark), ``sampled``
            (background sampling), ``maxrss`` or ``none``.
        traced: Whether tracemalloc traced the block.
    """

    seconds: float | None = None
    peak_mb: float | None = None
    traced_peak_mb: float | None = None
    rss_peak_mb: float | None = None
    cuda_peak_mb: float | None = None
    rss_method: str = "none"
    traced: bool = True
    # Running absolute peaks, updated by nested blocks (bytes).
    _traced_abs: int = dataclasses.field(default=0, repr=False)
    _rss_abs: int = dataclasses.field(default=0, repr=False)
    _cuda_abs: int = dataclasses.field(default=0, repr=False)

    def as_metrics(self) -> dict[str, float]:
        """Return the measurements as metrics for ``metric_regression`` (lower is better).

        Returns:
            ``{"seconds": ..., "peak_mb": ...}``, plus ``traced_peak_mb`` and
            ``cuda_peak_mb`` when measured.
        """
        out = {"seconds": float(self.seconds or 0.0), "peak_mb": float(self.peak_mb or 0.0)}
        if self.traced_peak_mb is not None:
            out["traced_peak_mb"] = float(self.traced_peak_mb)
        if self.cuda_peak_mb is not None:
            out["cuda_peak_mb"] = float(self.cuda_peak_mb)
        return out


# ---- resident set size -----------------------------------------------------------


class _RSS:
    """Follows the resident set size of this process during one block."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.fd: int | None = None
        try:
            self.fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self.fd = None
        self.method = "none"
        self.start = 0
        self.peak = 0
        self.hwm = False
        self.maxrss_start = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> int:
        assert self.fd is not None
        return int(os.pread(self.fd, 128, 0).split()[1]) * self.page

    def begin(self) -> int:
        if self.fd is not None:
            self.start = self.peak = self.current()
            self.hwm = _reset_hwm()
            self.method = "hwm" if self.hwm else "sampled"
            self._thread = threading.Thread(target=self._sample, name="mlcheck-rss",
                                            daemon=True)
            self._thread.start()
            return self.start
        maxrss = _maxrss()
        if maxrss is not None:
            self.method = "maxrss"
            self.maxrss_start = self.start = self.peak = maxrss
        return self.start

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_SECONDS):
            try:
                self.peak = max(self.peak, self.current())
            except OSError:  # pragma: no cover - the file vanished
                return

    def peak_now(self) -> int:
        """Absolute peak RSS so far (bytes), without stopping."""
        if self.fd is not None:
            peak = max(self.peak, self.current())
            if self.hwm:
                hwm = _read_hwm()
                if hwm is not None:
                    peak = max(peak, hwm)
            return peak
        maxrss = _maxrss()
        return self.start if maxrss is None else maxrss

    def end(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        peak = self.peak_now()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        return peak


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _read_hwm() is not None
    except OSError:
        return False


def _read_hwm() -> int | None:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _maxrss() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(value) if sys.platform == "darwin" else int(value) * 1024


# ---- CUDA --------------------------------------------------------------------------


def _cuda():
    """Return torch.cuda when torch is imported and CUDA is usable, else ``None``."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_available() else None
    except Exception:  # pragma: no cover - broken driver
        return None


# ---- the measurement -------------------------------------------------------------


def _check_limit(value: Any, what: str) -> float | None:
    return None if value is None else validation.number(value, what, low=0,
                                                        hint="or None for no limit")


def _propagate_peaks(rss: _RSS | None, cuda: Any) -> None:
    """Hand the peaks seen so far to every enclosing block before a reset."""
    if not _active:
        return
    traced = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
    rss_peak = rss.peak_now() if rss is not None and rss.fd is not None else 0
    if any(outer.rss_method == "hwm" for outer in _active):
        # The kernel's mark holds the outer blocks' peak; the reset ahead would lose it.
        rss_peak = max(rss_peak, _read_hwm() or 0)
    cuda_peak = cuda.max_memory_allocated() if cuda is not None and cuda.is_initialized() else 0
    for outer in _active:
        outer._traced_abs = max(outer._traced_abs, traced)
        outer._rss_abs = max(outer._rss_abs, rss_peak)
        outer._cuda_abs = max(outer._cuda_abs, cuda_peak)


@contextlib.contextmanager
def measure_resources(max_seconds: float | None = None, max_peak_mb: float | None = None, *,
                      max_cuda_mb: float | None = None, name: str = "block",
                      trace_python: bool | None = None) -> Iterator[ResourceUsage]:
    """Measure a block's wall time and peak memory, and fail past a budget.

    Example:
        >>> with measure_resources(max_seconds=5, max_peak_mb=200) as used:
        ...     model.fit(X, y)
        >>> used.peak_mb, used.seconds

    The yielded :class:`ResourceUsage` is filled in when the block ends. A budget
    left as ``None`` is measured but not enforced. If the block raises, its exception
    propagates and no budget is checked.

    tracemalloc slows allocation-heavy pure-Python code many times over (18x on a
    loop of integer arithmetic), which would distort a time budget. So by default it
    is on unless ``max_seconds`` is the only budget given; then host peak memory comes
    from RSS alone.

    Args:
        max_seconds: Wall-time budget in seconds.
        max_peak_mb: Host peak-memory budget in MiB above the block's start.
        max_cuda_mb: CUDA peak-memory budget in MiB above the block's start.
        name: The record's name, to tell several measured blocks of one test apart.
        trace_python: Trace Python/numpy allocations with tracemalloc; ``None`` traces
            unless ``max_seconds`` is the only budget.

    Returns:
        A context manager yielding the :class:`ResourceUsage`.

    Raises:
        AssertionError: A budget was exceeded.
        ValueError: A budget is negative.
        TypeError: A budget is not a number.
    """
    limits = {"max_seconds": _check_limit(max_seconds, "max_seconds"),
              "max_peak_mb": _check_limit(max_peak_mb, "max_peak_mb"),
              "max_cuda_mb": _check_limit(max_cuda_mb, "max_cuda_mb")}
    if trace_python is None:
        trace_python = not (limits["max_seconds"] is not None and limits["max_peak_mb"] is None
                            and limits["max_cuda_mb"] is None)
    usage = ResourceUsage(traced=bool(trace_python))
    cuda = _cuda()
    rss = _RSS()
    _propagate_peaks(rss, cuda)
    started_tracing = trace_python and not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    traced_start = 0
    if trace_python:
        traced_start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    cuda_start = 0
    cuda_on = cuda is not None and cuda.is_initialized()
    if cuda_on:
        cuda.synchronize()
        cuda_start = cuda.memory_allocated()
        cuda.reset_peak_memory_stats()
    rss_start = rss.begin()
    usage.rss_method = rss.method
    _active.append(usage)
    t0 = time.perf_counter()
    ok = False
    try:
        yield usage
        ok = True
    finally:
        if cuda is not None and cuda.is_initialized():
            cuda.synchronize()
        usage.seconds = time.perf_counter() - t0
        _active.remove(usage)
        rss_peak = max(rss.end(), usage._rss_abs)
        traced_peak = usage._traced_abs
        if trace_python:
            traced_peak = max(tracemalloc.get_traced_memory()[1], traced_peak)
            usage.traced_peak_mb = max(0, traced_peak - traced_start) / MB
        if started_tracing:
            tracemalloc.stop()
        usage.rss_peak_mb = None if rss.method == "none" else max(0, rss_peak - rss_start) / MB
        usage.peak_mb = max(usage.traced_peak_mb or 0.0, usage.rss_peak_mb or 0.0)
        if cuda is not None and cuda.is_initialized():
            peak = max(cuda.max_memory_allocated(), usage._cuda_abs)
            usage.cuda_peak_mb = max(0, peak - cuda_start) / MB
        for outer in _active:
            outer._traced_abs = max(outer._traced_abs, traced_peak)
            outer._rss_abs = max(outer._rss_abs, rss_peak)
    if ok:
        _judge(usage, limits, name)


def _judge(usage: ResourceUsage, limits: dict[str, float | None], name: str) -> None:
    values: dict[str, Any] = {
        "seconds": usage.seconds, "peak_mb": usage.peak_mb,
        "traced_peak_mb": usage.traced_peak_mb, "rss_peak_mb": usage.rss_peak_mb,
        "cuda_peak_mb": usage.cuda_peak_mb, "rss_method": usage.rss_method,
        "traced": usage.traced,
        **{k: v for k, v in limits.items() if v is not None},
    }
    over: list[str] = []
    causes: list[str] = []
    max_seconds, max_peak_mb, max_cuda_mb = (
        limits["max_seconds"], limits["max_peak_mb"], limits["max_cuda_mb"])
    if max_seconds is not None and (usage.seconds or 0.0) > max_seconds:
        over.append(f"wall time {usage.seconds:.4g} s > budget {limits['max_seconds']:.4g} s"
                    + (" (tracemalloc was on, which slows Python allocations; measure time "
                       "alone with trace_python=False)" if usage.traced else ""))
        causes.append(
            "time: a Python loop over rows or samples where a vectorised op would do, a "
            "larger input or model than intended, debugging aids left on "
            "(torch.autograd.set_detect_anomaly, anomaly hooks), thread oversubscription "
            "(set OMP_NUM_THREADS / torch.set_num_threads), or needless device syncs "
            "(.item(), .cpu() inside the loop)")
    if max_peak_mb is not None and (usage.peak_mb or 0.0) > max_peak_mb:
        rss = "n/a" if usage.rss_peak_mb is None else f"{usage.rss_peak_mb:.4g} MiB"
        traced = ("off" if usage.traced_peak_mb is None
                  else f"{usage.traced_peak_mb:.4g} MiB")
        over.append(
            f"host peak memory {usage.peak_mb:.4g} MiB > budget {limits['max_peak_mb']:.4g} "
            f"MiB (Python/numpy traced {traced}, RSS growth {rss} [{usage.rss_method}])")
        causes.append(
            "memory: the whole dataset materialised instead of batches, float64 where "
            "float32 was meant (numpy's default dtype), copies from .astype / fancy "
            "indexing / concatenation in a loop, outputs or losses kept in a list with "
            "their autograd graph (store loss.item() or .detach()), or gradients computed "
            "during evaluation (wrap it in torch.no_grad())")
    if max_cuda_mb is not None and (usage.cuda_peak_mb or 0.0) > max_cuda_mb:
        over.append(f"CUDA peak memory {usage.cuda_peak_mb:.4g} MiB > budget "
                    f"{limits['max_cuda_mb']:.4g} MiB")
        causes.append(
            "CUDA memory: a larger batch or model than intended, activations kept for "
            "backward during evaluation (use torch.no_grad()), or tensors accumulated "
            "across steps with their graph")
    if over:
        message = (
            f"resource budget exceeded by {name!r}: " + "; ".join(over) + ".\nLikely causes, "
            + "; ".join(causes) + ".\nProfile the block (tracemalloc snapshots, "
            "torch.profiler) to find the growth; if the increase is intended, raise the "
            "budget in the test and say why in the pull request."
        )
        report.emit("budget", name, "FAILED", values, message)
        raise AssertionError(message)
    report.emit("budget", name, "ok", values)


# ---- parameter budget ------------------------------------------------------------


def assert_param_budget(model: Any, max_params: int, *, trainable_only: bool = False
                        ) -> dict[str, int]:
    """Fail when a torch module has more parameters than ``max_params``.

    Parameters shared between submodules (tied weights) are counted once.

    Args:
        model: A ``torch.nn.Module``.
        max_params: The largest allowed number of parameter elements.
        trainable_only: Count only parameters with ``requires_grad=True``.

    Returns:
        ``{"total": ..., "trainable": ..., "frozen": ...}`` element counts.

    Raises:
        AssertionError: The model is over budget.
        TypeError: ``model`` is not a torch module, or ``max_params`` is not an int.
        ValueError: ``max_params`` is negative, or the model has uninitialised (lazy)
            parameters.
    """
    if not is_module(model):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    max_params = validation.integer(max_params, "max_params", low=0, check="assert_param_budget")
    torch = torch_module()  # imported by the caller: ``model`` is a torch module
    seen: set[int] = set()
    total = trainable = 0
    per_param: list[tuple[int, str]] = []
    for qualname, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        if isinstance(p, torch.nn.parameter.UninitializedParameter):
            raise ValueError(
                f"parameter {qualname!r} is uninitialised (a lazy module): run one forward "
                "pass before counting parameters")
        n = int(p.numel())
        total += n
        trainable += n if p.requires_grad else 0
        per_param.append((n, qualname))
    counted = trainable if trainable_only else total
    values = {"total": total, "trainable": trainable, "frozen": total - trainable,
              "counted": "trainable" if trainable_only else "total", "max_params": max_params}
    name = f"params:{type(model).__name__}"
    if counted > max_params:
        largest = sorted(per_param, reverse=True)[:5]
        listed = ", ".join(f"{q} ({n:,})" for n, q in largest)
        message = (
            f"parameter budget exceeded by {type(model).__name__}: "
            f"{counted:,} {'trainable' if trainable_only else 'total'} parameters > budget "
            f"{max_params:,} ({trainable:,} trainable, {total - trainable:,} frozen). "
            f"Largest: {listed}.\nLikely causes: a wider hidden size, a larger vocabulary "
            "or embedding table, an extra layer, or weights that should be tied (e.g. "
            "decoder and embedding) being separate copies. If the growth is intended, raise "
            "max_params in the test."
        )
        report.emit("budget", name, "FAILED", values, message)
        raise AssertionError(message)
    report.emit("budget", name, "ok", values)
    return {"total": total, "trainable": trainable, "frozen": total - trainable}


class ResourceBudget:
    """The ``resource_budget`` fixture: time, memory and parameter budgets.

    ``with resource_budget(max_seconds=..., max_peak_mb=...) as used:`` measures the
    block (see :func:`measure_resources`); ``resource_budget.params(model, n)``
    enforces a parameter budget.

    Args:
        request: The pytest fixture request of the test using it.
    """

    def __init__(self, request: Any) -> None:
        self.request = request

    def __call__(self, max_seconds: float | None = None, max_peak_mb: float | None = None,
                 *, max_cuda_mb: float | None = None, name: str = "block",
                 trace_python: bool | None = None):
        """Return a context manager measuring a block (see :func:`measure_resources`).

        Args:
            max_seconds: Wall-time budget in seconds.
            max_peak_mb: Host peak-memory budget in MiB.
            max_cuda_mb: CUDA peak-memory budget in MiB.
            name: The record's name.
            trace_python: Trace Python/numpy allocations (``None``: unless only
                ``max_seconds`` is given).

        Returns:
            A context manager yielding a :class:`ResourceUsage`.
        """
        return measure_resources(max_seconds, max_peak_mb, max_cuda_mb=max_cuda_mb, name=name,
                                 trace_python=trace_python)

    def params(self, model: Any, max_params: int, *, trainable_only: bool = False
               ) -> dict[str, int]:
        """Fail when ``model`` has more than ``max_params`` parameters.

        Args:
            model: A ``torch.nn.Module``.
            max_params: The largest allowed number of parameter elements.
            trainable_only: Count only trainable parameters.

        Returns:
            Element counts: total, trainable and frozen.
        """
        return assert_param_budget(model, max_params, trainable_only=trainable_only)
