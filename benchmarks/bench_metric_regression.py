"""What does metric_regression cost per test, against plain asserts on the same numbers?

Generates N tests (default 1,000) with M metrics each (default 10) in a temporary
directory, twice: once comparing each metric with a plain ``assert abs(cur - base) <= tol``
against baselines written into the test module (the peer), once with
``metric_regression.check``. Then times whole pytest runs (the fastest of --repeat runs):

* ``plain``: the peer;
* ``check``: ``metric_regression.check`` against recorded baselines (check-only);
* ``update-record``: ``--mlcheck-update`` with no baseline file (records every entry);
* ``update-merge``: ``--mlcheck-update`` after every value changed (re-reads the file
  under its lock and merges every entry into it with tomlkit);
* ``update-noop``: ``--mlcheck-update`` when nothing changed (writes nothing).

Usage::

    .venv/bin/python benchmarks/bench_metric_regression.py [--tests 1000] [--metrics 10]
        [--repeat 5] [--numpy-only]

``--numpy-only`` makes ``import torch`` fail in the timed sessions, as on a machine
without torch; otherwise recording imports torch once for the environment fingerprint.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = '''
import pytest
N, M = {n}, {m}
SHIFT = 0.0
BASE = {{i: {{f"metric_{{k}}": i * 0.001 + k for k in range(M)}} for i in range(N)}}

@pytest.mark.parametrize("i", range(N))
def test_model(i):
    metrics = {{f"metric_{{k}}": i * 0.001 + k + SHIFT for k in range(M)}}
    for name, value in metrics.items():
        base = BASE[i][name]
        assert abs(value - base) <= 1e-6 + 1e-5 * abs(base), name
'''

CHECK = '''
import os
import pytest
N, M = {n}, {m}
SHIFT = float(os.environ.get("SHIFT", "0"))

@pytest.mark.parametrize("i", range(N))
def test_model(metric_regression, i):
    metrics = {{f"metric_{{k}}": i * 0.001 + k + SHIFT for k in range(M)}}
    metric_regression.check(metrics)
'''

BLOCK_TORCH = 'import sys\nsys.modules["torch"] = None\n'


def run(cwd: Path, args: list[str], env: dict[str, str], expect_ok: bool = True) -> float:
    """Run one pytest session in a subprocess and return its wall time.

    Args:
        cwd: The directory of the generated tests.
        args: Extra pytest arguments.
        env: The environment of the subprocess.
        expect_ok: Exit with the session's output if it fails.

    Returns:
        Seconds, wall clock.
    """
    # hypothesis's plugin imports hypothesis at every session end: a constant that would
    # flatter the ratios, so both sides run without it.
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-p", "no:hypothesispytest", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if expect_ok and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-3000:]}{proc.stderr}")
    return elapsed


def main() -> None:
    """Generate the tests, time every kind of run and print the ratios to plain asserts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--numpy-only", action="store_true")
    opts = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-mlcheck-"))
    try:
        plain, check = root / "plain", root / "check"
        for d in (plain, check):
            d.mkdir()
            (d / "conftest.py").write_text("")
            (d / "block_torch.py").write_text(BLOCK_TORCH)
        (plain / "test_plain.py").write_text(PLAIN.format(n=opts.tests, m=opts.metrics))
        (check / "test_check.py").write_text(CHECK.format(n=opts.tests, m=opts.metrics))
        extra = ["-p", "block_torch"] if opts.numpy_only else []
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        baselines = check / "mlcheck_baselines"

        times: dict[str, list[float]] = {k: [] for k in
                                         ("plain", "check", "update-record", "update-merge",
                                          "update-noop")}
        # warm-up: OS file caches, pyc of the plugin
        run(plain, extra, env)
        for _ in range(opts.repeat):
            times["plain"].append(run(plain, extra, env))
            shutil.rmtree(baselines, ignore_errors=True)
            times["update-record"].append(run(check, extra + ["--mlcheck-update"],
                                              dict(env, SHIFT="0")))
            times["check"].append(run(check, extra, dict(env, SHIFT="0")))
            times["update-noop"].append(run(check, extra + ["--mlcheck-update"],
                                            dict(env, SHIFT="0")))
            times["update-merge"].append(run(check, extra + ["--mlcheck-update"],
                                             dict(env, SHIFT="0.5")))
            run(check, extra + ["--mlcheck-update"], dict(env, SHIFT="0"))
        size = (baselines / "test_check.toml").stat().st_size
        best = {k: min(v) for k, v in times.items()}
        median = {k: statistics.median(v) for k, v in times.items()}
        print(f"{opts.tests} tests x {opts.metrics} metrics, fastest of {opts.repeat} runs; "
              f"{'numpy only' if opts.numpy_only else 'torch installed'}; "
              f"Python {platform.python_version()}, {os.cpu_count()} CPUs; baseline file "
              f"{size / 1024:.0f} KiB")
        print(f"{'run':<15}{'fastest s':>10}{'vs plain':>10}{'median s':>10}{'vs plain':>10}")
        for name, t in best.items():
            m = median[name]
            print(f"{name:<15}{t:>10.2f}{t / best['plain']:>9.2f}x{m:>10.2f}"
                  f"{m / median['plain']:>9.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
