"""How fast is data_leakage.check on a large split, against the usual hand-written checks?

Question: finding the test rows that are exact copies of training rows, on 1,000,000 x 64
float32 training rows vs 200,000 test rows, how does ``assert_no_leakage`` (vectorised
row hashing plus exact confirmation) compare in wall time and peak memory with

* a pandas inner merge on all columns (``train.merge(test, on=list(columns))``), and
* a Python set of row tuples (``set(map(tuple, train.tolist()))``)?

All three run in one process, one after another, on the same data, in which a known
number of test rows are copies of training rows; each must find exactly that many.
Timings are ratios against the peers measured in the same run. Peak memory is the
growth of the resident set size above the start of each method (kernel high-water mark,
measured with this project's own ``measure_resources``; tracemalloc is off so it does
not slow the Python baseline).

Run (pandas is not a dependency of the project; use any venv that has it)::

    python benchmarks/bench_leakage.py                      # the full question
    python benchmarks/bench_leakage.py --rows 100000 --test-rows 20000   # a quick look
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from pytest_mlcheck import report  # noqa: E402
from pytest_mlcheck.budget import measure_resources  # noqa: E402
from pytest_mlcheck.leakage import assert_no_leakage  # noqa: E402


def make_data(rows: int, test_rows: int, cols: int, leaked: int, seed: int = 0):
    """Return float32 train and test splits where ``leaked`` test rows copy train rows.

    Args:
        rows: Training rows.
        test_rows: Test rows.
        cols: Columns.
        leaked: How many test rows are copies of (random) training rows.
        seed: Seed of the data.

    Returns:
        ``(train, test)``.
    """
    rng = np.random.default_rng(seed)
    train = rng.standard_normal((rows, cols), dtype=np.float32)
    test = rng.standard_normal((test_rows, cols), dtype=np.float32)
    where = rng.choice(test_rows, size=leaked, replace=False)
    test[where] = train[rng.choice(rows, size=leaked, replace=False)]
    return train, test


def by_mlcheck(train: np.ndarray, test: np.ndarray) -> int:
    """Count leaked test rows with ``assert_no_leakage`` (reads its record).

    Args:
        train: Training rows.
        test: Test rows.

    Returns:
        The number of test rows equal to some training row.
    """
    sink: list = []
    report.activate("bench", sink)
    try:
        assert_no_leakage(train, test)
    except AssertionError:
        pass
    finally:
        report.deactivate()
    return int(sink[-1].values["row_overlap"]["train/test"]["rows"])


def by_pandas_merge(train: np.ndarray, test: np.ndarray) -> int:
    """Count leaked test rows with a pandas inner merge on all columns.

    Args:
        train: Training rows.
        test: Test rows.

    Returns:
        The number of test rows equal to some training row.
    """
    import pandas as pd

    cols = [f"c{i}" for i in range(train.shape[1])]
    a = pd.DataFrame(train, columns=cols).drop_duplicates()
    b = pd.DataFrame(test, columns=cols).reset_index()
    merged = a.merge(b, on=cols, how="inner")
    return int(merged["index"].nunique())


def by_tuple_set(train: np.ndarray, test: np.ndarray) -> int:
    """Count leaked test rows with a Python set of row tuples.

    Args:
        train: Training rows.
        test: Test rows.

    Returns:
        The number of test rows equal to some training row.
    """
    seen = set(map(tuple, train.tolist()))
    return sum(1 for row in map(tuple, test.tolist()) if row in seen)


def run(name: str, fn, train: np.ndarray, test: np.ndarray,
        repeat: int) -> tuple[float, float, int]:
    """Time ``fn`` (best of ``repeat``) and measure its peak RSS growth.

    Args:
        name: Label to print.
        fn: The method.
        train: Training rows.
        test: Test rows.
        repeat: How many runs; the fastest is kept.

    Returns:
        ``(seconds, peak_mb, leaked rows found)``.
    """
    best, peak, found = float("inf"), 0.0, -1
    for _ in range(repeat):
        gc.collect()
        with measure_resources(trace_python=False, name=name) as used:
            t0 = time.perf_counter()
            found = fn(train, test)
            seconds = time.perf_counter() - t0
        best = min(best, seconds)
        peak = max(peak, used.rss_peak_mb or 0.0)
    print(f"  {name:<22} {best:9.3f} s   peak RSS +{peak:8.1f} MiB   found {found}", flush=True)
    return best, peak, found


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table and ratios.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        0 when every method found the planted copies and the 10x bar holds, else 1.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--test-rows", type=int, default=200_000)
    p.add_argument("--cols", type=int, default=64)
    p.add_argument("--leaked", type=int, default=1_000)
    p.add_argument("--repeat", type=int, default=3, help="runs of data_leakage.check (best kept)")
    p.add_argument("--skip-tuples", action="store_true", help="skip the (slow, ~3 GB) tuple set")
    p.add_argument("--skip-pandas", action="store_true")
    args = p.parse_args(argv)

    import pandas as pd  # noqa: F401  (fail early when the peer is missing)

    train, test = make_data(args.rows, args.test_rows, args.cols, args.leaked)
    print(f"train {train.shape} {train.dtype}, test {test.shape}, {args.leaked} planted copies")
    print(f"python {platform.python_version()}, numpy {np.__version__}, pandas "
          f"{sys.modules['pandas'].__version__}, {os.cpu_count()} CPUs, {platform.machine()}")
    ours = run("data_leakage.check", by_mlcheck, train, test, args.repeat)
    results = {"data_leakage.check": ours}
    if not args.skip_pandas:
        results["pandas merge"] = run("pandas merge", by_pandas_merge, train, test, 1)
    if not args.skip_tuples:
        results["set of row tuples"] = run("set of row tuples", by_tuple_set, train, test, 1)
    ok = all(found == args.leaked for _, _, found in results.values())
    for name, (seconds, peak, _) in results.items():
        if name != "data_leakage.check":
            print(f"  speed-up vs {name}: {seconds / ours[0]:.1f}x; peak memory ratio "
                  f"{peak / max(ours[1], 1e-9):.1f}x")
    if "set of row tuples" in results:
        ok = ok and results["set of row tuples"][0] / ours[0] >= 10
    print("all methods found the planted copies" if ok else "FAILED: a count or the bar")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
