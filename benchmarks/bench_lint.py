"""How fast is mlcheck-lint against pydoclint (and ruff, interrogate, TorchFix), cold and warm?

Usage::

    python -m venv /work/venvs/pydoclint && /work/venvs/pydoclint/bin/pip install pydoclint
    python -m venv /work/venvs/ruff && /work/venvs/ruff/bin/pip install ruff
    python -m venv /work/venvs/interrogate && /work/venvs/interrogate/bin/pip install interrogate
    python benchmarks/bench_lint.py /work/corpora/timm --rounds 3 \\
        --pydoclint /work/venvs/pydoclint/bin/pydoclint --ruff /work/venvs/ruff/bin/ruff \\
        --interrogate /work/venvs/interrogate/bin/interrogate [--before /path/to/old/mlcheck_lint]

For each tree, in the same run, on the same cores, ``--rounds`` times interleaved (the
order rotates each round), medians reported:

* pydoclint (``--style=google --quiet``; single process, it has no jobs option), cold;
* mlcheck-lint with the default documentation rules, cold (an empty cache folder), and
  with every default rule, cold and warm (the same cache, nothing changed);
* with ``--before``, the same mlcheck-lint runs with an older copy of the package, so
  a change is measured as a ratio inside one run;
* ruff ``--select D,NPY,PD --no-cache`` and interrogate, cold, for context; TorchFix when
  given;
* the peak resident memory of each command's whole process tree (the main process plus
  pool workers, sampled every 20 ms from ``/proc``);
* the CPU time of each command and its workers (``wait4``). On a shared machine the
  wall ratio swings with other people's load; CPU time is the steadier measure.

Bars (issue 11): documentation rules cold CPU <= 1.0x pydoclint, every default rule
cold CPU <= 1.5x, warm <= 0.05x, peak memory < 500 MB on transformers. Not a test:
these machines are shared and noisy, so only same-run ratios mean anything.
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


def snapshot(package: Path | None = None) -> dict[str, str]:
    """Freeze the linter's code (this checkout's, or ``package``) for the whole run.

    The cache key includes a fingerprint of the linter's source, so an edit between the
    cold and the warm run (other people work in this tree) would turn the warm run
    into a cold one. The runs import a copy taken now instead.

    Args:
        package: A copy of the ``mlcheck_lint`` package to run instead of this checkout's.

    Returns:
        The environment for the mlcheck-lint runs.
    """
    frozen = Path(tempfile.mkdtemp(prefix="mlcheck-bench-code-"))
    shutil.copytree(package or ROOT / "lint" / "mlcheck_lint", frozen / "mlcheck_lint",
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


def _doc_codes(env: dict[str, str]) -> str:
    """Return the default-on documentation codes of the linter that ``env`` imports."""
    out = subprocess.run([sys.executable, "-c",
                          "from mlcheck_lint import engine\n"
                          "print(','.join(r.code for r in engine.load_rules() "
                          "if r.code.startswith('MLC1') and r.default == 'on'))"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def main() -> int:
    """Run the benchmark and print one block of numbers per tree.

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--pydoclint", required=True)
    parser.add_argument("--ruff", default=None)
    parser.add_argument("--interrogate", default=None)
    parser.add_argument("--torchfix", default=None)
    parser.add_argument("--before", type=Path, default=None,
                        help="an older copy of the mlcheck_lint package to compare in the same run")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    versions = {"after": snapshot()}
    if args.before is not None:
        versions["before"] = snapshot(args.before)
    for tree in args.trees:
        tree = tree.resolve()
        files, lines = count_lines(tree)
        print(f"== {tree.name}: {files} files, {lines} lines, --jobs {args.jobs}, {args.rounds} rounds",
              flush=True)
        commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "pydoclint": ([args.pydoclint, "--style=google", "--quiet", "."], None)}
        if args.ruff:
            commands["ruff D,NPY,PD"] = ([args.ruff, "check", "--select", "D,NPY,PD", "--no-cache",
                                          "--exit-zero", "--quiet", "."], None)
        if args.interrogate:
            commands["interrogate"] = ([args.interrogate, "--quiet", "--fail-under", "0", "."], None)
        if args.torchfix:
            commands["torchfix"] = ([args.torchfix, "-j", str(args.jobs), "."], None)
        caches: dict[str, Path] = {}
        for version, env in versions.items():
            base = MLCHECK + ["--jobs", str(args.jobs), "--exit-zero", "--format", "json"]
            commands[f"{version} docs cold"] = (base + ["--no-cache", "--select", _doc_codes(env), "."], env)
            caches[version] = Path(tempfile.mkdtemp(prefix="mlcheck-bench-cache-"))
            commands[f"{version} all cold"] = (base + ["--cache-dir", str(caches[version] / "c"), "."], env)
            commands[f"{version} all warm"] = (base + ["--cache-dir", str(caches[version] / "c"), "."], env)
        results: dict[str, list[tuple[float, int, float]]] = {name: [] for name in commands}
        names = list(commands)
        for round_ in range(args.rounds):
            rotated = names[round_ % len(names):] + names[:round_ % len(names)]
            order = []
            for name in rotated:  # each warm run right after its own cold run
                if not name.endswith(" warm"):
                    order.append(name)
                    if name.endswith(" all cold"):
                        order.append(name.replace(" cold", " warm"))
            for version, cache in caches.items():
                shutil.rmtree(cache / "c", ignore_errors=True)
            for name in order:
                cmd, env = commands[name]
                wall, peak, code, cpu = timed(cmd, tree, env)
                if code not in (0, 1):
                    print(f"   {name}: exit {code}", flush=True)
                results[name].append((wall, peak, cpu))
        med = {name: (_median([r[0] for r in rs]), max(r[1] for r in rs), _median([r[2] for r in rs]))
               for name, rs in results.items()}
        for name, (wall, peak, cpu) in med.items():
            print(f"{name:<22} wall {wall:7.2f} s  cpu {cpu:7.2f} s  peak {peak / 2**20:5.0f} MB", flush=True)
        pyd = med["pydoclint"]
        for version in versions:
            d, c, w = med[f"{version} docs cold"], med[f"{version} all cold"], med[f"{version} all warm"]
            print(f"{version}: docs cold/pydoclint = {d[2] / pyd[2]:.2f} cpu, {d[0] / pyd[0]:.2f} wall "
                  f"(bar <= 1.0 cpu); all cold/pydoclint = {c[2] / pyd[2]:.2f} cpu, {c[0] / pyd[0]:.2f} wall "
                  f"(bar <= 1.5); warm/pydoclint = {w[2] / pyd[2]:.3f} cpu, {w[0] / pyd[0]:.3f} wall "
                  f"(bar <= 0.05); peak {max(d[1], c[1], w[1]) / 2**20:.0f} MB", flush=True)
        if "before" in versions:
            for kind in ("docs cold", "all cold", "all warm"):
                b, a = med[f"before {kind}"], med[f"after {kind}"]
                print(f"after/before {kind}: {a[2] / b[2]:.2f} cpu, {a[0] / b[0]:.2f} wall", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
