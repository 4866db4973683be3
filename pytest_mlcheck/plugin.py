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
    from .environment import header_environment
    from .finish import environment_line

    session.header_environment = header_environment()
    return [environment_line(session, session.header_environment)]


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
    if state.is_worker:  # an xdist worker's terminal output is discarded
        return
    from .finish import terminal_lines

    out = terminal_lines(state, verbose=config.get_verbosity())
    if out or (state.enabled and config.get_verbosity() < 0):
        from .finish import run_environment_lines

        # -q hides the header; the fingerprint is what makes a failure reproducible.
        out = run_environment_lines(state, quiet=config.get_verbosity() < 0) + out
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
    """Compare metrics with baselines stored in the repository and reviewed in pull requests.
    ``check({"accuracy": acc}, higher_is_better=["accuracy"])`` fails when a metric
    regresses beyond its tolerance (``mlcheck_atol``/``mlcheck_rtol``, or per call);
    ``check_array(name, array)`` compares an array or tensor with its snapshot;
    ``check_repeated(fn, seeds=range(5))`` compares per-seed means, noise-aware.
    Record or update baselines with ``pytest --mlcheck-update``.
    """
    from .metrics import MetricRegression

    return MetricRegression(request, request.config.stash[SESSION])


@pytest.fixture
def determinism(request: pytest.FixtureRequest):
    """Check that code is reproducible under one seed and reacts to seeds as it should.
    ``check(fn, *args, runs=2, seed=0)`` calls ``fn`` repeatedly under one seed and
    requires identical outputs; ``check_seed_invariant(fn, *args, seeds=(0, 1))``
    requires equal outputs across seeds (evaluation, inference);
    ``check_seed_sensitive(fn, *args)`` requires different outputs across seeds and
    equal ones under the same seed (augmentation, sampling). Each returns ``fn``'s output.
    """
    from .determinism import Determinism

    return Determinism(request)


@pytest.fixture
def shape_invariants(request: pytest.FixtureRequest):
    """Check output shapes across input sizes, and that samples in a batch do not mix.
    ``check(fn, inputs, output, dims=...)`` calls ``fn`` on generated inputs of many
    sizes (shape specs such as ``"B T D"``) and checks every output's shape;
    ``batch_independence(fn, x)`` requires output row i to depend only on input row i;
    ``batch_invariance(fn, x)`` requires a sample's output not to depend on its batch;
    ``causality(fn, x, time_dim=1)`` requires step t to ignore later steps. numpy or torch.
    """
    from .shapes import ShapeInvariants

    return ShapeInvariants(request)


@pytest.fixture
def train_invariants(request: pytest.FixtureRequest):
    """Check that a torch model trains and evaluates as intended (needs torch).
    ``check_step(model, loss_fn, batch)`` requires optimizer steps to update every
    trainable parameter (and no frozen one); ``check_overfit(model, loss_fn, batch)``
    requires the model to overfit one tiny batch; ``check_training_loop(step_fn, model,
    optimizer, batches)`` finds gradients leaking between steps and steps that do
    nothing; ``check_eval(model, eval_fn)`` requires eval mode, purity and determinism.
    """
    from .training import TrainInvariants

    return TrainInvariants(request)


@pytest.fixture
def data_leakage(request: pytest.FixtureRequest):
    """Find rows shared between train, validation and test splits, and label-leaking features.
    ``check(train, test, val=None, key=None)`` fails when rows (or groups, by ``key``)
    appear in more than one split; ``check_duplicates(x)`` fails on duplicate rows in
    one split; ``check_labels(X, y, threshold=0.99)`` fails when one feature alone
    predicts the label. Accepts numpy arrays, torch tensors and pandas DataFrames.
    """
    from .leakage import DataLeakage

    return DataLeakage(request)


@pytest.fixture
def device_consistency(request: pytest.FixtureRequest):
    """Check that code gives the same results on each device (CPU, CUDA), within tolerance.
    ``check(fn, *args, devices=("cpu", "cuda"))`` runs ``fn`` with its tensors and
    modules copied to each device and compares the outputs on the CPU;
    ``check_training(step_fn, model, batch, steps=3)`` runs a few optimizer steps on
    each device and compares losses and parameters. An absent device skips the test
    (fails under ``MLCHECK_REQUIRE_CUDA=1``). Needs torch.
    """
    from .devices import DeviceConsistency

    return DeviceConsistency(request)


@pytest.fixture
def resource_budget(request: pytest.FixtureRequest):
    """Measure a block's wall time and peak memory, and fail when it exceeds a budget.
    ``with resource_budget(max_seconds=60, max_peak_mb=500) as used:`` measures the
    block (host memory; ``max_cuda_mb`` for CUDA) and records the usage in the report;
    ``params(model, max_params=5_000_000)`` fails when a torch model has more
    parameters than allowed (``trainable_only=True`` counts trainable ones only).
    """
    from .budget import ResourceBudget

    return ResourceBudget(request)
