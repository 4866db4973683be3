"""The fault-injection harness (benchmarks/fault_injection.py) in CI: 10 SIGKILLs of each
tool find no lost, mismatched or half-written file, and its checks do catch seeded damage."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "fault_injection.py"

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX signals")


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("fault_injection", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ten_kills_of_pytest_update_lose_and_mismatch_nothing(harness):
    result = harness.run_plugin(10, random.Random(12), modules=2, tests=3, size=300)
    assert result["violations"] == []
    assert result["entries"] == 2 * 3 * 2  # a metric and an array entry per test
    assert result["killed_mid_run"] >= 1  # some kills did land inside a run


def test_ten_kills_of_lint_fix_leave_every_file_whole(harness):
    # --jobs 1: the main process writes the fixes either way; no pool start-up per round.
    result = harness.run_lint(10, random.Random(12), files=20, jobs=1)
    assert result["violations"] == []
    assert result["files_changed_by_fix"] == 20
    assert result["killed_mid_run"] >= 1


def test_the_plugin_checks_catch_seeded_damage(harness, tmp_path):
    harness._plugin_project(tmp_path, 1, 2, 10)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), SCALE="1", HOME=str(tmp_path),
               **harness.PYTEST_ENV)
    subprocess.run(harness._pytest_cmd(), cwd=tmp_path, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    seen: set = set()
    assert harness.check_plugin(tmp_path, seen, {1.0}) == []
    assert len(seen) == 4
    base = tmp_path / "mlcheck_baselines"
    toml = base / "test_mod0.toml"
    good = toml.read_text()
    # An array file holding another array than the one its entry describes.
    npz = sorted(base.glob("*.npz"))[0]
    np.savez_compressed(npz, array=np.arange(10, dtype=np.float64) * 7)
    assert any("the TOML file says" in p for p in harness.check_plugin(tmp_path, seen, {1.0}))
    # A value no round recorded.
    toml.write_text(good.replace("scale = 1.0", "scale = 5.0", 1))
    assert any("was never recorded" in p for p in harness.check_plugin(tmp_path, seen, {1.0}))
    # A truncated file, then a lost entry.
    toml.write_text(good[: len(good) // 2] + "[[")
    assert any("does not parse" in p for p in harness.check_plugin(tmp_path, seen, {1.0}))
    cut = good.index("shape = [10]", good.index('["test_case[1]".out.array]'))
    toml.write_text(good[:cut])  # a truncation that still parses
    assert any("lacks" in p or "expected" in p
               for p in harness.check_plugin(tmp_path, seen, {1.0}))
    toml.write_text(good[: good.index('["test_case[1]"')])
    assert any("recorded entries lost" in p for p in harness.check_plugin(tmp_path, seen, {1.0}))


def test_the_lint_checks_catch_a_truncated_or_half_written_file(harness, tmp_path):
    original = {"a.py": b"x = 1\ny = 2\n", "b.py": b"def f():\n    return 1\n"}
    fixed = {"a.py": b"x = 10\ny = 2\n", "b.py": b"def f():\n    return 2\n"}
    (tmp_path / "a.py").write_bytes(fixed["a.py"])
    (tmp_path / "b.py").write_bytes(original["b.py"])
    assert harness.check_lint(tmp_path, original, fixed) == ([], 1)
    (tmp_path / "b.py").write_bytes(b"def f():\n    ret")
    problems, _ = harness.check_lint(tmp_path, original, fixed)
    assert problems == ["b.py is neither the original nor the fixed file (16 bytes)"]
    (tmp_path / "b.py").unlink()
    problems, _ = harness.check_lint(tmp_path, original, fixed)
    assert problems[0].startswith("b.py is gone")


def test_the_harness_command_line_runs(tmp_path):
    out = tmp_path / "counts.json"
    proc = subprocess.run([sys.executable, str(HARNESS), "--kills", "1", "--only", "lint",
                           "--lint-files", "3", "--lint-jobs", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lint: 1 kills" in proc.stdout and out.exists()
