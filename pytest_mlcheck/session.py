"""Per-session state of the plugin: options, the collected records, what ran.

One :class:`MLCheckSession` lives in ``config.stash[SESSION]``. On the controller (or
in a plain session) it gathers every test's :class:`~pytest_mlcheck.report.CheckRecord`
from the test reports, which pytest-xdist ships from workers unchanged.

Who reads and writes what: ``plugin.py`` creates the session and hands it to each
fixture (fixtures never import ``plugin.py``); check families write their session-level
results into the typed fields below; ``finish.py`` reads those fields for the terminal
section and the JSON report. Nothing here imports a check family at module level, so
this module is the bottom of the import graph next to ``report.py``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from .report import CheckRecord
from .seeding import DEFAULT_BASE_SEED


@dataclass(frozen=True)
class MetricDefaults:
    """``metric_regression``'s ini defaults, read and validated once per session.

    Attributes:
        atol: ``mlcheck_atol``.
        rtol: ``mlcheck_rtol``.
        higher: ``mlcheck_higher_is_better`` patterns.
        lower: ``mlcheck_lower_is_better`` patterns.
        env: ``mlcheck_baseline_env`` facets.
    """

    atol: float
    rtol: float
    higher: tuple[str, ...]
    lower: tuple[str, ...]
    env: tuple[str, ...]


class MLCheckSession:
    """Options and results of one pytest session (see the module docstring)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.enabled: bool = bool(config.getoption("mlcheck", False))
        self.update: bool = bool(config.getoption("mlcheck_update", False))
        self.prune: bool = bool(config.getoption("mlcheck_prune", False))
        self.report_path: str | None = config.getoption("mlcheck_report", None)
        seed = config.getoption("mlcheck_seed", None)
        self.base_seed: int = DEFAULT_BASE_SEED if seed is None else int(seed)
        self.rootdir: str = str(config.rootpath)
        self.is_worker: bool = hasattr(config, "workerinput")
        #: Records gathered from test reports (controller / single process).
        self.records: list[CheckRecord] = []
        #: Outcome per node id, from the reports ("passed", "failed", "skipped").
        self.outcomes: dict[str, str] = {}
        #: Baseline files written by this process (reported in the summary).
        self.written: list[str] = []
        #: Tests deselected (-k, -m, --deselect, --lf...) and failed collections, summed
        #: over xdist workers: pruning needs a whole-suite run.
        self.deselected: int = 0
        self.collect_errors: int = 0
        #: xdist workers that went down with an error.
        self.worker_errors: int = 0
        #: Baseline files that could not be written (this process and its workers).
        self.write_errors: list[str] = []
        self._baselines: Any = None
        #: metric_regression's ini defaults, read once per session.
        self.metric_defaults: MetricDefaults | None = None
        #: End-of-session baseline housekeeping (``baselines.prune``): lines for the
        #: terminal section, entries no test used, entries deleted by --mlcheck-prune.
        self.baseline_notes: list[str] = []
        self.unused_baselines: list[str] = []
        self.pruned_baselines: list[str] = []
        #: Why --mlcheck-report could not be written ("" when it was, or not asked).
        self.report_error: str = ""
        #: The suite as collected, seen around every plugin's
        #: pytest_collection_modifyitems: its size, a hash of its sorted node ids,
        #: and how many items plugins removed (pytest-shard does ``items[:] = ...``
        #: without pytest_deselected). Pruning needs nothing removed.
        self.collected: int = 0
        self.collected_sha256: str = ""
        self.dropped_by_plugins: int = 0
        #: What the header showed (``None`` when it was not printed), and the
        #: environment each xdist worker ran its tests in, by worker id.
        self.header_environment: dict[str, str] | None = None
        self.worker_environments: dict[str, dict[str, str]] = {}
        self.worker_probed: bool = False

    def baseline_store(self) -> Any:
        """Return this process's :class:`~pytest_mlcheck.baselines.BaselineStore`."""
        if self._baselines is None:
            from .baselines import BaselineStore

            self._baselines = BaselineStore(self.rootdir, str(self.ini("mlcheck_baseline_dir")))
        return self._baselines

    def worker_output(self) -> dict[str, Any]:
        """Return what an xdist worker sends to the controller when it finishes."""
        return {"written": list(self.written), "write_errors": list(self.write_errors),
                "deselected": self.deselected, "collect_errors": self.collect_errors,
                "collected": self.collected, "collected_sha256": self.collected_sha256,
                "dropped_by_plugins": self.dropped_by_plugins,
                "worker": str(getattr(self.config, "workerinput", {}).get("workerid", "")),
                "environment": self._own_environment(), "probed": self._probed_torch()}

    @staticmethod
    def _own_environment() -> dict[str, str]:
        from .environment import recording_environment

        return recording_environment()

    @staticmethod
    def _probed_torch() -> bool:
        return sys.modules.get("torch") is not None

    def probed_torch(self) -> bool:
        """Return whether the tests imported torch (any xdist worker's, under xdist)."""
        if self.worker_environments:
            return bool(self.worker_probed)
        return self._probed_torch()

    def run_environment(self) -> dict[str, str]:
        """Return the environment this session's tests ran in, without importing torch.

        Under pytest-xdist that is what the first worker (by id) sent; the controller
        imports no test module. In one process it is
        :func:`~pytest_mlcheck.environment.recording_environment`: the full fingerprint
        once anything imported torch, else torch's package facts on the CPU.
        """
        if self.worker_environments:
            return dict(self.worker_environments[min(self.worker_environments)])
        return self._own_environment()

    def merge_worker_output(self, data: dict[str, Any] | None, error: object = None) -> None:
        """Add what a finished xdist worker sent (see :meth:`worker_output`).

        Args:
            data: The worker's ``workeroutput["mlcheck"]``, or ``None``.
            error: The error the worker went down with, if any.
        """
        if error is not None:
            self.worker_errors += 1
        if not data:
            return
        self.written += [w for w in data.get("written", ()) if w not in self.written]
        self.write_errors += list(data.get("write_errors", ()))
        # Every worker collects (and deselects) the whole suite; one count is enough.
        self.deselected = max(self.deselected, int(data.get("deselected", 0)))
        self.collect_errors = max(self.collect_errors, int(data.get("collect_errors", 0)))
        self.dropped_by_plugins = max(self.dropped_by_plugins,
                                      int(data.get("dropped_by_plugins", 0)))
        self.collected = max(self.collected, int(data.get("collected", 0)))
        self.collected_sha256 = self.collected_sha256 or str(data.get("collected_sha256", ""))
        environment = data.get("environment")
        if isinstance(environment, dict):
            worker = str(data.get("worker") or f"worker{len(self.worker_environments)}")
            self.worker_environments[worker] = {str(k): str(v) for k, v in environment.items()}
            self.worker_probed = self.worker_probed or bool(data.get("probed"))

    def ini(self, name: str) -> Any:
        """Return an ini value of ours."""
        return self.config.getini(name)

    def add_report_records(self, report: pytest.TestReport) -> None:
        """Take the records a test report carries, and note the test's outcome."""
        for data in getattr(report, "mlcheck_records", None) or ():
            self.records.append(CheckRecord.from_json(data))
        previous = self.outcomes.get(report.nodeid)
        if report.when == "call" or report.outcome != "passed" or previous is None:
            if previous not in ("failed",):
                self.outcomes[report.nodeid] = report.outcome

    def rel(self, path: str) -> str:
        """Return ``path`` relative to the rootdir when it is inside it."""
        try:
            return os.path.relpath(path, self.rootdir)
        except ValueError:
            return path


#: Where the session lives: ``config.stash[SESSION]``. Defined here, not in
#: ``plugin.py``, so that code needing the key never imports the plugin module.
SESSION = pytest.StashKey[MLCheckSession]()
