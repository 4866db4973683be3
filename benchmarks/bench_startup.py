"""What does merely having pytest-mlcheck installed cost a project that has no ML code?

Question: a plain pytest run of a 50-test project with no ML code, with the plugin
installed (core install only: hypothesis and torch absent), against the same run with
the plugin disabled (``-p no:mlcheck``). Bar: at most +30 ms, or at most 1.02x.

Method:

1. Make (or reuse) a venv under ``benchmarks/_work/startup-venv`` from the Python given
   by ``--python``, holding this checkout installed with its core dependencies only
   (``pip install -e .``): no hypothesis, no torch, as a user who does not use
   ``pytest_mlcheck.strategies`` has it. The script refuses to measure if hypothesis is
   importable there.
2. Generate 50 plain tests in 5 modules (asserts on small Python computations).
3. Run ``python -m pytest -q -p no:cacheprovider`` over them ``--rounds`` times each way,
   alternating which side goes first, each in a fresh process; record wall time and
   the child's CPU time (user + system, from ``os.wait4``).
4. Report the minimum (the least disturbed run on a shared machine) and the median of
   each side, the difference in milliseconds and the ratio.

Run: ``.venv/bin/python benchmarks/bench_startup.py [--rounds 15] [--python python3]``.
"""

from __future__ import annotations

import argparse
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


def make_venv(python: str) -> Path:
    """Create (once) the core-only venv and return its Python executable.

    Args:
        python: The interpreter to build the venv from.

    Returns:
        The venv's ``python``.
    """
    venv = WORK / "startup-venv"
    exe = venv / "bin" / "python"
    if not exe.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
    probe = subprocess.run([str(exe), "-c", "import importlib.util as u; "
                            "print(u.find_spec('hypothesis') is None and u.find_spec('torch') is None)"],
                           capture_output=True, text=True, check=True)
    if probe.stdout.strip() != "True":
        raise SystemExit(f"{venv} has hypothesis or torch installed; delete it and rerun")
    return exe


def make_project(root: Path) -> None:
    """Write 50 plain tests (no ML code) in 5 modules under ``root``.

    Args:
        root: An empty folder.
    """
    for m in range(5):
        body = "\n".join(textwrap.dedent(f"""
            def test_case_{i}():
                values = [x * x for x in range({i} + 10)]
                assert sum(values) > 0 and len(values) == {i} + 10
            """) for i in range(10))
        (root / f"test_plain_{m}.py").write_text(body, encoding="utf-8")


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Run ``cmd`` and return its wall time and CPU time (user + system) in seconds.

    Args:
        cmd: The command.
        cwd: Where to run it.

    Returns:
        ``(wall, cpu)``.

    Raises:
        RuntimeError: The run failed.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{out.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table.

    Args:
        argv: Command-line arguments.

    Returns:
        The exit status: 0 when the bar holds on the minima, 1 otherwise.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    exe = make_venv(args.python)
    base = [str(exe), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    sides = {"plugin installed": base, "-p no:mlcheck (peer)": base + ["-p", "no:mlcheck"]}
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        make_project(project)
        for cmd in sides.values():  # warm the file cache and the bytecode
            timed(cmd, project)
        for r in range(args.rounds):
            order = list(sides.items()) if r % 2 == 0 else list(reversed(sides.items()))
            for name, cmd in order:
                results[name].append(timed(cmd, project))
    peer = results["-p no:mlcheck (peer)"]
    ours = results["plugin installed"]
    print(f"50 plain tests, {args.rounds} rounds each, core install (no hypothesis, no torch), "
          f"Python {sys.version.split()[0]} for the driver")
    print(f"{'run':24} {'wall min':>9} {'wall med':>9} {'cpu min':>8} {'cpu med':>8}")
    for name, runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{name:24} {min(walls):8.3f}s {statistics.median(walls):8.3f}s "
              f"{min(cpus):7.3f}s {statistics.median(cpus):7.3f}s")
    ok = True
    for label, pick in (("min", min), ("median", statistics.median)):
        for what, idx in (("wall", 0), ("cpu", 1)):
            a, b = pick(x[idx] for x in ours), pick(x[idx] for x in peer)
            print(f"{what} {label}: +{(a - b) * 1000:.1f} ms, {a / b:.3f}x")
            if label == "min" and what == "wall":
                ok = (a - b) <= 0.030 or a / b <= 1.02
    print("bar (+30 ms or <= 1.02x, wall minima):", "holds" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
