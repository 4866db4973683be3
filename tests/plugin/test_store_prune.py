"""Pruning decides "whole suite" from the items around every plugin's
pytest_collection_modifyitems, so a plugin that filters ``items[:]`` without calling
pytest_deselected (as pytest-shard does) blocks it."""

from __future__ import annotations

import pytest

# Imported once here, outside pytester's sys.modules snapshots (see test_metric_regression).
import pytest_mlcheck.baselines  # noqa: F401
import pytest_mlcheck.metrics  # noqa: F401
from pytest_mlcheck.baselines import parse_toml

try:  # in-process pytester runs must find torch already imported: it cannot load twice
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    pass

SUITE = """
    import pytest
    @pytest.mark.parametrize("i", range(6))
    def test_p(metric_regression, i):
        metric_regression.check({"m": float(i)})
"""

# What pytest-shard does: keep this shard's items, without pytest_deselected.
SHARD_PLUGIN = """
    import os
    import pytest

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(config, items):
        if os.environ.get("SHARD"):
            shard = int(os.environ["SHARD"])
            items[:] = [item for i, item in enumerate(items) if i % 2 == shard]
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def entries(pytester: pytest.Pytester) -> set[str]:
    return set(parse_toml((pytester.path / "mlcheck_baselines" / "test_model.toml").read_text(),
                          "t"))


def test_a_plugin_filtering_items_without_deselecting_blocks_prune(pytester, monkeypatch):
    pytester.makepyfile(test_model=SUITE)
    pytester.makeconftest(SHARD_PLUGIN)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=6)
    assert len(entries(pytester)) == 6
    monkeypatch.setenv("SHARD", "0")
    result = run(pytester, "--mlcheck-prune")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "--mlcheck-prune did nothing: 3 collected test(s) were removed by a plugin's "
        "pytest_collection_modifyitems (e.g. pytest-shard, pytest-split); unused baselines are "
        "only known after a run of the whole suite."])
    assert len(entries(pytester)) == 6
    # Without the shard plugin filtering, the same suite prunes what is really unused.
    monkeypatch.delenv("SHARD")
    pytester.makepyfile(test_model=SUITE.replace("range(6)", "range(5)"))
    result = run(pytester, "--mlcheck-prune")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["pruned unused baselines (1):",
                                 '  mlcheck_baselines/test_model.toml [[]"test_p[[]5[]]".default[]]'])
    assert entries(pytester) == {f"test_p[{i}]" for i in range(5)}


def test_the_shard_plugin_blocks_prune_under_xdist_too(pytester, monkeypatch, numpy_only):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_model=SUITE)
    pytester.makeconftest(SHARD_PLUGIN)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=6)
    monkeypatch.setenv("SHARD", "1")
    result = numpy_only("-p", "no:cacheprovider", "-n", "2", "--mlcheck-prune")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["--mlcheck-prune did nothing: 3 collected test(s) were "
                                 "removed by a plugin's pytest_collection_modifyitems*"])
    assert len(entries(pytester)) == 6
