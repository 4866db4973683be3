"""What does ``--mlcheck`` cost a numpy test suite in an environment that has torch installed?

Question: a project whose tests use numpy only, in a venv where torch is installed (the
common case: one environment for a whole ML team), run with ``pytest --mlcheck`` against
the same run without the flag (the peer), in one process and under pytest-xdist
(``-n 2``). Before 0.2.1 the header imported torch to print the device: about a second
of CPU in every run, and in the xdist controller, which imports no test module.
Bar: ``--mlcheck`` at most 1.10x the plain run's CPU time, in both modes.

Method:

1. Generate 40 numpy tests in 4 modules (small array computations, no fixture).
2. For each tree (this checkout, and with ``--against REV`` that git revision checked out
   into ``benchmarks/_work/header-REV`` and put first on ``PYTHONPATH``), run
   ``python -m pytest -p no:cacheprovider -p no:randomly`` (``-q`` with ``--quiet``) with and without
   ``--mlcheck``, in one process and with ``-n 2``, ``--rounds`` times, the order
   rotating each round, each in a fresh process; record wall time and the CPU time of
   pytest and its children (user + system, ``os.wait4``: xdist's workers are children).
3. Report the minimum and the median of each, and the ratio ``--mlcheck`` / plain.

Run: ``.venv/bin/python benchmarks/bench_header.py [--rounds 7] [--against e6095aa]``.
Needs torch and pytest-xdist in ``.venv`` (``make .venv/.mlcheck-installed``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work"


def make_project(root: Path) -> None:
    """Write 40 numpy tests in 4 modules under ``root``."""
    for m in range(4):
        body = "import numpy as np\n" + "\n".join(textwrap.dedent(f"""
            def test_case_{i}():
                x = np.arange({i} + 16, dtype=np.float64).reshape(-1, 1)
                assert np.isclose((x @ x.T).trace(), (x * x).sum())
            """) for i in range(10))
        (root / f"test_numpy_{m}.py").write_text(body, encoding="utf-8")


def checkout(rev: str) -> Path:
    """Return a folder holding ``rev`` of this repository (``git worktree``-free)."""
    folder = WORK / f"header-{rev}"
    if not (folder / "pytest_mlcheck").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "pytest_mlcheck"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``; return its wall time and the CPU time of it and its children."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; 0 when this checkout meets the bar."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--against", default="", help="a git revision to measure too")
    parser.add_argument("--quiet", action="store_true", help="run pytest -q")
    args = parser.parse_args(argv)
    for needed in ("torch", "xdist"):
        if importlib.util.find_spec(needed) is None:
            raise SystemExit(f"{needed} is not installed in {sys.executable}")
    trees = {"this checkout": ""}
    if args.against:
        trees[args.against] = str(checkout(args.against))
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly"]
    base += ["-q"] if args.quiet else []
    runs = {(tree, mode, flag): [] for tree in trees for mode in ("1 process", "-n 2")
            for flag in ("plain", "--mlcheck")}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        make_project(project)
        keys = list(runs)
        for r in range(args.rounds + 1):  # round 0 warms caches and bytecode
            order = keys[r % len(keys):] + keys[:r % len(keys)]
            for tree, mode, flag in order:
                env = dict(os.environ)
                if trees[tree]:
                    env["PYTHONPATH"] = trees[tree]
                cmd = base + (["-n", "2"] if mode == "-n 2" else []) + (
                    ["--mlcheck"] if flag == "--mlcheck" else [])
                result = timed(cmd, project, env)
                if r:
                    runs[(tree, mode, flag)].append(result)
    print(f"40 numpy tests, torch {importlib.import_module('torch').__version__} installed, "
          f"{args.rounds} rounds{', pytest -q' if args.quiet else ''}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'tree':14} {'mode':10} {'run':10} {'wall min':>9} {'wall med':>9} {'cpu min':>8} "
          f"{'cpu med':>8}")
    for (tree, mode, flag), values in runs.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        print(f"{tree:14} {mode:10} {flag:10} {min(walls):8.3f}s {statistics.median(walls):8.3f}s "
              f"{min(cpus):7.3f}s {statistics.median(cpus):7.3f}s")
    ok = True
    for tree in trees:
        for mode in ("1 process", "-n 2"):
            ours, peer = runs[(tree, mode, "--mlcheck")], runs[(tree, mode, "plain")]
            cpu = statistics.median(c for _, c in ours) / statistics.median(c for _, c in peer)
            wall = statistics.median(w for w, _ in ours) / statistics.median(w for w, _ in peer)
            print(f"{tree:14} {mode:10} --mlcheck / plain: cpu {cpu:.2f}x, wall {wall:.2f}x (medians)")
            if tree == "this checkout" and cpu > 1.10:
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
