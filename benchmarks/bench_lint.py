"""How fast is mlcheck-lint against pydoclint and TorchFix, cold and warm, and how much memory?

Usage::

    pip download --no-deps timm==1.0.31 transformers==5.24.0 -d /tmp/corpora
    (cd /tmp/corpora && unzip -q -o timm-*.whl -d timm && unzip -q -o transformers-*.whl -d transformers)
    python -m venv /tmp/venv-pydoclint && /tmp/venv-pydoclint/bin/pip install pydoclint
    python -m venv /tmp/venv-torchfix && /tmp/venv-torchfix/bin/pip install torchfix
    python benchmarks/bench_lint.py /tmp/corpora/timm /tmp/corpora/transformers \\
        --pydoclint /tmp/venv-pydoclint/bin/pydoclint --torchfix /tmp/venv-torchfix/bin/torchfix

For each tree, in the same run and on the same cores (``--jobs``, default 2):

* pydoclint (``--style=google --quiet``; single process, it has no jobs option), cold;
* mlcheck-lint with the default rules, cold (an empty cache folder) and warm (the same
  cache, nothing changed);
* TorchFix (``-j JOBS``; also libcst-based), cold;
* the peak resident memory of each command's whole process tree (the main process plus
  pool workers, sampled every 20 ms from ``/proc``);
* the CPU time of each command and its workers (``wait4``). On a shared machine the
  wall ratio swings with other people's load, which hurts a 2-process run more than a
  1-process one; ``cpu/JOBS`` (our CPU seconds over the cores, against pydoclint's) is
  what the wall ratio would be on an idle machine.

Ratios printed: mlcheck cold / pydoclint (bar <= 2), TorchFix / mlcheck cold (bar >= 10),
mlcheck warm / pydoclint cold (bar <= 0.2), and mlcheck's peak memory (bar < 1 GB).
Not a test: these machines are shared and noisy, so only same-run ratios mean anything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MLCHECK = [sys.executable, "-m", "mlcheck_lint"]
ROOT = Path(__file__).resolve().parents[1]


def _tree_rss(pid: int) -> int:
    """Return the summed RSS in bytes of a process and all its descendants.

    Args:
        pid: The root process id.

    Returns:
        Bytes, 0 when the process is gone.
    """
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def snapshot() -> dict[str, str]:
    """Freeze the linter's code for the whole run.

    The cache key includes a fingerprint of the linter's source, so an edit between the
    cold and the warm run (other people work in this tree) would turn the warm run
    into a cold one. The runs import a copy taken now instead.

    Returns:
        The environment for the mlcheck-lint runs.
    """
    frozen = Path(tempfile.mkdtemp(prefix="mlcheck-bench-code-"))
    shutil.copytree(ROOT / "lint" / "mlcheck_lint", frozen / "mlcheck_lint",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return {**os.environ, "PYTHONPATH": str(frozen)}


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int, int, float]:
    """Run a command; return its wall time, peak tree memory, exit code and CPU time.

    Args:
        cmd: The command line.
        cwd: Where to run it.
        env: The environment (default: this process's).

    Returns:
        ``(seconds, peak bytes, exit code, CPU seconds of the process and its workers)``.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # wait4 reports the CPU time of the process and of the workers it waited for.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    sampler.join()
    return elapsed, peak[0], proc.returncode, usage.ru_utime + usage.ru_stime


def count_lines(root: Path) -> tuple[int, int]:
    """Count the Python files and lines of a tree.

    Args:
        root: The tree.

    Returns:
        ``(files, lines)``.
    """
    files = lines = 0
    for path in root.rglob("*.py"):
        files += 1
        with open(path, "rb") as fh:
            lines += fh.read().count(b"\n")
    return files, lines


def main() -> int:
    """Run the benchmark and print one block of numbers per tree.

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--pydoclint", required=True)
    parser.add_argument("--torchfix", default=None)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    env = snapshot()
    for tree in args.trees:
        tree = tree.resolve()
        files, lines = count_lines(tree)
        print(f"== {tree.name}: {files} files, {lines} lines, --jobs {args.jobs}", flush=True)
        cache = Path(tempfile.mkdtemp(prefix="mlcheck-bench-cache-"))
        ours = MLCHECK + ["--jobs", str(args.jobs), "--cache-dir", str(cache), "--exit-zero",
                          "--format", "json", "."]
        pyd_t, pyd_m, _, pyd_c = timed([args.pydoclint, "--style=google", "--quiet", "."], tree)
        print(f"pydoclint cold      {pyd_t:8.1f} s  cpu {pyd_c:7.1f} s  peak {pyd_m / 2**20:5.0f} MB", flush=True)
        cold_t, cold_m, code, cold_c = timed(ours, tree, env)
        print(f"mlcheck-lint cold   {cold_t:8.1f} s  cpu {cold_c:7.1f} s  peak {cold_m / 2**20:5.0f} MB  exit {code}",
              flush=True)
        warm_t, warm_m, code, warm_c = timed(ours, tree, env)
        print(f"mlcheck-lint warm   {warm_t:8.1f} s  cpu {warm_c:7.1f} s  peak {warm_m / 2**20:5.0f} MB  exit {code}",
              flush=True)
        line = (f"ratios: cold/pydoclint = {cold_t / pyd_t:.2f} wall, {cold_c / args.jobs / pyd_c:.2f} "
                f"cpu/{args.jobs} (bar <= 2); warm/pydoclint cold = {warm_t / pyd_t:.3f} (bar <= 0.2); "
                f"peak = {max(cold_m, warm_m) / 2**20:.0f} MB (bar < 1024)")
        if args.torchfix:
            tf_t, tf_m, _, tf_c = timed([args.torchfix, "-j", str(args.jobs), "."], tree)
            print(f"torchfix cold       {tf_t:8.1f} s  cpu {tf_c:7.1f} s  peak {tf_m / 2**20:5.0f} MB", flush=True)
            line += f"; torchfix/cold = {tf_t / cold_t:.1f} wall, {tf_c / cold_c:.1f} cpu (bar >= 10)"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
