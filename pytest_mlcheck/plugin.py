"""pytest-mlcheck's pytest plugin: options, ini keys, markers, fixtures and report hooks.

This module only wires pytest to the check families. Each fixture imports its family
lazily, so loading the plugin costs no torch, hypothesis or libcst import.
"""

from __future__ import annotations

import pytest

from . import report
from .session import SESSION, MLCheckSession

RECORDS = pytest.StashKey[list]()

SKIP_REASON = "ML check: run pytest --mlcheck"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlcheck", "ML checks (pytest-mlcheck)")
    group.addoption("--mlcheck", action="store_true", default=False,
                    help="run tests marked mlcheck and turn on the session guards "
                         "(per-test seeding, non-finite and silent-bug warning guards).")
    group.addoption("--mlcheck-update", action="store_true", default=False,
                    help="record missing metric baselines and overwrite changed ones.")
    group.addoption("--mlcheck-prune", action="store_true", default=False,
                    help="after a whole-suite run, delete baseline entries no test used.")
    group.addoption("--mlcheck-report", metavar="PATH", default=None,
                    help="write every check's record to a JSON report at PATH.")
    group.addoption("--mlcheck-seed", metavar="N", type=int, default=None,
                    help="base seed from which each test's seed is derived (with --mlcheck).")
    parser.addini("mlcheck_atol", "default absolute tolerance of metric_regression", default="1e-6")
    parser.addini("mlcheck_rtol", "default relative tolerance of metric_regression", default="1e-5")
    parser.addini("mlcheck_higher_is_better", "metric names or globs where higher is better",
                  type="args", default=[])
    parser.addini("mlcheck_lower_is_better", "metric names or globs where lower is better",
                  type="args", default=[])
    parser.addini("mlcheck_baseline_dir", "directory (relative to rootdir) holding baseline files",
                  default="")
    parser.addini("mlcheck_baseline_env", "environment facets that key baseline variants",
                  type="args", default=[])
    parser.addini("mlcheck_allow_warnings", "silent-bug warning patterns allowed project-wide",
                  type="linelist", default=[])
    group.addoption("--mlcheck-guards", metavar="MODE", choices=("fail", "report"), default=None,
                    help="fail: guard findings fail their test (default); report: they are only "
                         "listed in the summary and the JSON report. Overrides mlcheck_guards.")
    parser.addini("mlcheck_guards", "fail | report: whether guard findings fail tests", default="fail")
    parser.addini("mlcheck_allow_nonfinite", "node-id globs (tests) and module class-name globs "
                  "whose NaN/Inf outputs the non-finite guard allows", type="linelist", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mlcheck: a slow ML check; runs only with pytest --mlcheck.")
    config.addinivalue_line("markers", "mlcheck_allow_nonfinite(*classes): let this test produce "
                                       "NaN/Inf module outputs under --mlcheck (only from these "
                                       "module classes, when given).")
    config.addinivalue_line("markers", "mlcheck_allow_warning(pattern): allow a catalogued "
                                       "silent-bug warning matching pattern in this test.")
    config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped without one, failed "
                                       "instead under MLCHECK_REQUIRE_CUDA=1.")
    session = MLCheckSession(config)
    config.stash[SESSION] = session
    if session.enabled:  # a bad mlcheck_guards value is a usage error, not 1,000 failed tests
        from .guards.policy import policy

        policy(config)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    session = config.stash[SESSION]
    if not session.enabled:
        return None
    from .environment import describe
    from .guards import base_seed

    seed, source = base_seed(session)
    origin = " (from pytest-randomly's --randomly-seed)" if source == "--randomly-seed" else ""
    return [f"mlcheck: {describe()}; base seed {seed}{origin}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash[SESSION].enabled:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if item.get_closest_marker("mlcheck") is not None:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    session = item.config.stash[SESSION]
    sink: list = []
    item.stash[RECORDS] = sink
    report.activate(item.nodeid, sink)
    try:
        if session.enabled:
            from .guards import protocol_guard

            with protocol_guard(item, session):
                return (yield)
        return (yield)
    finally:
        report.deactivate()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cuda") is not None:  # torch is looked at only for these
        from .devices import require_device

        require_device("cuda", "a test marked cuda")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    session = item.config.stash[SESSION]
    if not session.enabled:
        return (yield)
    from .guards import call_guard

    with call_guard(item, session):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    rep = yield
    sink = item.stash.get(RECORDS, None)
    if sink is not None:
        rep.mlcheck_records = [r.to_json() for r in sink]
        # The report carries them now, and items live until the session ends: drop the
        # originals rather than keep a second copy of every record for the GC to scan.
        sink.clear()
    session = item.config.stash[SESSION]
    if session.enabled and rep.failed:
        from .guards import failure_section

        rep.sections.append(("mlcheck", failure_section(item, session)))
    return rep


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash[SESSION]
    if state.is_worker:
        from .finish import finish_worker

        finish_worker(session, state)
        return
    from .finish import finish_session

    finish_session(session, state)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash[SESSION]
    from .finish import terminal_lines

    out = terminal_lines(state, verbose=config.get_verbosity())
    if config.get_verbosity() < 0:
        # -q hides the header; the fingerprint is what makes a failure reproducible.
        out = (pytest_report_header(config) or []) + out
    if out:
        terminalreporter.write_sep("=", "mlcheck")
        for line in out:
            terminalreporter.write_line(line)


class _ReportCollector:
    """Feeds every test report (local or from xdist workers) into the session."""

    def __init__(self, state: MLCheckSession) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.state.add_report_records(report)

    # pytest-shard and others filter with items[:] = ... and never call
    # pytest_deselected, so pruning also compares the items around every plugin's hook.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]):
        before = [item.nodeid for item in items]
        try:
            return (yield)
        finally:
            from .finish import note_collection

            note_collection(self.state, before, items)

    # Pruning unused baselines needs to know that the whole suite ran: nothing
    # deselected, no collection error, no crashed xdist worker.
    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.state.deselected += len(items)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.state.collect_errors += 1

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        # xdist controller: a worker finished and sent its baseline writes and counts.
        output = getattr(node, "workeroutput", None) or {}
        self.state.merge_worker_output(output.get("mlcheck"), error)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash[SESSION]
    session.config.pluginmanager.register(_ReportCollector(state), "mlcheck-report-collector")


# ---- fixtures: thin, each hands off to its family module -------------------------


@pytest.fixture
def metric_regression(request: pytest.FixtureRequest):
    """Compare metrics against baselines reviewed in pull requests (see README)."""
    from .metrics import MetricRegression

    return MetricRegression(request, request.config.stash[SESSION])


@pytest.fixture
def determinism(request: pytest.FixtureRequest):
    """Check that code is deterministic, seed-invariant or seed-sensitive."""
    from .determinism import Determinism

    return Determinism(request)


@pytest.fixture
def shape_invariants(request: pytest.FixtureRequest):
    """Check shapes, batch independence and invariance, and causality across sizes."""
    from .shapes import ShapeInvariants

    return ShapeInvariants(request)


@pytest.fixture
def train_invariants(request: pytest.FixtureRequest):
    """Check that training steps train, loops zero gradients, and eval is clean (torch)."""
    from .training import TrainInvariants

    return TrainInvariants(request)


@pytest.fixture
def data_leakage(request: pytest.FixtureRequest):
    """Find rows and groups shared across splits, and features that encode the label."""
    from .leakage import DataLeakage

    return DataLeakage(request)


@pytest.fixture
def device_consistency(request: pytest.FixtureRequest):
    """Check that a function or training steps give the same results on each device."""
    from .devices import DeviceConsistency

    return DeviceConsistency(request)


@pytest.fixture
def resource_budget(request: pytest.FixtureRequest):
    """Measure wall time and peak memory of a block, and enforce budgets."""
    from .budget import ResourceBudget

    return ResourceBudget(request)
