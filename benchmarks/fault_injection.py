"""Fault injection: SIGKILL ``pytest --mlcheck-update`` and ``mlcheck-lint --fix`` at random
moments, and check after every kill that nothing was lost, mismatched or half-written.

Plugin side: a generated project of test modules, each test recording a metric and an
array snapshot, is re-recorded with a new scale on every round, and the process is
killed at a random moment (half the kills aimed at the end of the session, where the
files are written). After each kill:

* every baseline file parses;
* every entry recorded before is still there, and its value is one that a finished or
  interrupted round really recorded (never garbage);
* every array file an entry names exists, loads without unpickling, and matches the
  entry's dtype, shape and mean (the TOML file and its arrays always agree).

Linter side: 200 source files with fixable findings are fixed and the process killed
at a random moment. After each kill every file is byte for byte either the original
or the fully fixed version (what an uninterrupted ``--fix`` gives), never truncated.

Usage::

    python benchmarks/fault_injection.py            # 100 kills of each
    python benchmarks/fault_injection.py --kills 10 --seed 1 --json out.json

Exit status 1 when any check failed. Reproducible for a given --seed (the moments of
the kills are; what the process had done by then depends on the machine's load).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_mlcheck.baselines import parse_toml  # noqa: E402
from pytest_mlcheck.baselines.codec import (  # noqa: E402
    BaselineEntryError,
    entries_of,
    raw_entry,
    validate_entry,
)
from pytest_mlcheck.baselines.store import read_npz  # noqa: E402

MODULE = '''
import os
import numpy as np
import pytest

SCALE = float(os.environ["SCALE"])

@pytest.mark.parametrize("i", range({tests}))
def test_case(metric_regression, i):
    metric_regression.check({{"scale": SCALE, "index": i}})
    metric_regression.check_array("out", SCALE * np.arange({size}, dtype=np.float64) + i)
'''

# Keeps each pytest run numpy-only: torch's import would dominate every round.
BLOCK_TORCH = 'import sys\nsys.modules["torch"] = None\n'

#: What the linter's MLC113 safe fix rewrites: documented defaults that drift from the
#: signature's (three in ``adamw``, one in ``numpy_style``).
LINT_BODY = '''

def adamw(params, lr=3e-4, eps=1e-8, mode="sum"):
    """AdamW.

    Args:
        params: Parameters to optimise.
        lr: Learning rate. Defaults to 1e-3.
        eps (float, optional): Epsilon. Defaults to ``1e-6``.
        mode: Reduction (default: 'mean').
    """


def numpy_style(momentum=0.95):
    """SGD.

    Parameters
    ----------
    momentum : float, default 0.9
        Momentum.
    """
'''


class Killer:
    """Runs a command and SIGKILLs it at a random moment of a run's expected duration.

    The duration is re-estimated from every run that finished before its kill, so the
    kills keep landing inside runs when the machine's load changes.

    Args:
        rng: The source of the kill moments.
        duration: The first estimate, in seconds (an uninterrupted run's wall time).
    """

    def __init__(self, rng: random.Random, duration: float) -> None:
        self.rng = rng
        self.duration = duration

    def moment(self) -> float:
        """Return when to kill: half the kills in the second half of a run, where files
        are written, the other half anywhere in it."""
        if self.rng.random() < 0.5:
            return self.rng.uniform(0.5 * self.duration, self.duration)
        return self.rng.uniform(0.0, self.duration)

    def run(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> bool:
        """Run ``cmd`` and kill it (its whole process group); return whether it was killed.

        Args:
            cmd: The command.
            cwd: Its working directory.
            env: Its environment.

        Returns:
            True when it was still running at the kill.
        """
        delay = self.moment()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        self.duration = 0.5 * self.duration + 0.5 * (time.perf_counter() - start)
        return False


# ---- the plugin ------------------------------------------------------------------------


def _plugin_project(where: Path, modules: int, tests: int, size: int) -> None:
    for m in range(modules):
        (where / f"test_mod{m}.py").write_text(MODULE.format(tests=tests, size=size))
    (where / "mlcheck_block_torch.py").write_text(BLOCK_TORCH)
    (where / "pytest.ini").write_text("[pytest]\n")


#: Only our plugin is loaded (other installed plugins, hypothesis's say, would add seconds
#: of start-up and teardown to every round), so the kills land in our code.
PYTEST_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def _pytest_cmd() -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "mlcheck_block_torch",
            "-p", "pytest_mlcheck.plugin", "-p", "no:cacheprovider", "--mlcheck-update"]


def check_plugin(where: Path, seen: set[tuple[str, str]], scales: set[float]) -> list[str]:
    """Return the violations found in the baselines after a kill, and note what is there.

    Args:
        where: The generated project.
        seen: Entries found after earlier kills; this call adds the ones found now.
        scales: Every scale a round has recorded (or may have, when killed).

    Returns:
        One line per violation.
    """
    problems = []
    now: set[tuple[str, str]] = set()
    for toml in sorted((where / "mlcheck_baselines").glob("*.toml")):
        try:
            data = parse_toml(toml.read_text(encoding="utf-8"), toml.name)
        except Exception as exc:
            problems.append(f"{toml.name} does not parse: {exc}")
            continue
        for key in entries_of(data):
            now.add((toml.name, "/".join(key)))
            entry = raw_entry(data, key)
            try:
                validate_entry(entry, str(key), toml.name)
            except BaselineEntryError as exc:
                problems.append(str(exc))
                continue
            if "metrics" in entry:
                scale = entry["metrics"].get("scale")
                if scale not in scales:
                    problems.append(f"{toml.name} {key}: scale {scale!r} was never recorded")
            if "array" in entry:
                info = entry["array"]
                path = toml.parent / info["file"]
                try:
                    array = read_npz(path)
                except Exception as exc:
                    problems.append(f"{toml.name} {key}: array {info['file']} unreadable: {exc}")
                    continue
                if list(array.shape) != info["shape"] or str(array.dtype) != info["dtype"]:
                    problems.append(f"{toml.name} {key}: array {info['file']} is "
                                    f"{array.dtype}{list(array.shape)}, the TOML file says "
                                    f"{info['dtype']}{info['shape']}")
                elif abs(float(array.mean()) - info["mean"]) > 1e-9 * max(1.0, abs(info["mean"])):
                    problems.append(f"{toml.name} {key}: array {info['file']} has mean "
                                    f"{float(array.mean())!r}, the TOML file says {info['mean']!r}")
    lost = seen - now
    if lost:
        problems.append(f"{len(lost)} recorded entries lost, e.g. {sorted(lost)[0]}")
    seen |= now
    return problems


def run_plugin(kills: int, rng: random.Random, modules: int = 4, tests: int = 10,
               size: int = 2000) -> dict:
    """Kill ``pytest --mlcheck-update`` ``kills`` times; return the counts."""
    where = Path(tempfile.mkdtemp(prefix="mlcheck-fault-plugin-"))
    try:
        _plugin_project(where, modules, tests, size)
        env = dict(os.environ, PYTHONPATH=str(where), SCALE="0", HOME=str(where), **PYTEST_ENV)
        start = time.perf_counter()
        subprocess.run(_pytest_cmd(), cwd=where, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        duration = time.perf_counter() - start
        killer = Killer(rng, duration)
        scales = {0.0}
        seen: set[tuple[str, str]] = set()
        violations = check_plugin(where, seen, scales)
        killed = 0
        for round_ in range(1, kills + 1):
            env["SCALE"] = str(float(round_))
            scales.add(float(round_))
            killed += killer.run(_pytest_cmd(), where, env)
            violations += [f"kill {round_}: {p}" for p in check_plugin(where, seen, scales)]
        base = where / "mlcheck_baselines"
        named = set()
        for toml in base.glob("*.toml"):
            data = parse_toml(toml.read_text(encoding="utf-8"), toml.name)
            named |= {raw_entry(data, k)["array"]["file"] for k in entries_of(data)
                      if "array" in raw_entry(data, k)}
        orphans = len({p.name for p in base.glob("*.npz")} - named)
        temp_files = len(list(base.glob(".*.tmp")))
        # A clean run, then pruning, removes what the kills left over.
        env["SCALE"] = str(float(kills + 1))
        scales.add(float(kills + 1))
        subprocess.run(_pytest_cmd(), cwd=where, env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(_pytest_cmd()[:-1] + ["--mlcheck-prune"], cwd=where, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        violations += [f"final: {p}" for p in check_plugin(where, seen, scales)]
        left = len(list(base.glob("*.npz"))) - modules * tests
        if left:
            violations.append(f"final: {left} orphaned array files survive --mlcheck-prune")
        return {"kills": kills, "killed_mid_run": killed, "finished_before_kill": kills - killed,
                "entries": len(seen), "orphaned_arrays_after_kills": orphans,
                "temp_files_after_kills": temp_files, "run_seconds": round(duration, 2),
                "violations": violations}
    finally:
        shutil.rmtree(where, ignore_errors=True)


# ---- the linter -------------------------------------------------------------------------


def _lint_sources(count: int) -> list[str]:
    out = []
    for n in range(count):
        parts = [f'"""Generated file {n} with fixable documented defaults."""\n']
        for k in range(8):  # bigger files widen the moment a write is under way
            parts.append(LINT_BODY.replace("def adamw(", f"def adamw_{k}(")
                         .replace("def numpy_style(", f"def numpy_style_{k}("))
        out.append("".join(parts))
    return out


def _lint_cmd(where: Path, jobs: int | None = None) -> list[str]:
    exe = Path(sys.executable).with_name("mlcheck-lint")
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlcheck_lint"]
    return head + ["--fix", "--select", "MLC113", "--no-cache", "--quiet", "--exit-zero",
                   *(["--jobs", str(jobs)] if jobs else []), str(where / "src")]


def check_lint(src: Path, original: dict[str, bytes], fixed: dict[str, bytes]
               ) -> tuple[list[str], int]:
    """Return the violations among the files after a kill, and how many were fixed.

    Args:
        src: The folder of the files.
        original: Each file's content before fixing.
        fixed: Each file's content after an uninterrupted ``--fix``.

    Returns:
        ``(violations, files already fixed)``. A hidden temp file left by a kill
        between writing and renaming is no violation (the real file is intact);
        :func:`run_lint` counts them.
    """
    import ast

    problems = []
    done = 0
    for name, before in original.items():
        try:
            now = (src / name).read_bytes()
        except OSError as exc:
            problems.append(f"{name} is gone: {exc}")
            continue
        if now == fixed[name] and now != before:
            done += 1
        elif now != before:
            problems.append(f"{name} is neither the original nor the fixed file "
                            f"({len(now)} bytes)")
            continue
        try:
            ast.parse(now)
        except SyntaxError as exc:
            problems.append(f"{name} no longer parses: {exc}")
    return problems, done


def run_lint(kills: int, rng: random.Random, files: int = 200, jobs: int | None = None) -> dict:
    """Kill ``mlcheck-lint --fix`` on ``files`` files ``kills`` times; return the counts.

    ``jobs`` is passed as ``--jobs`` (default: the linter's, a process pool). The fixes
    are written by the main process after linting either way; ``--jobs 1`` skips the
    pool's start-up, so more of each run, and of the kills, falls in the writes.
    """
    where = Path(tempfile.mkdtemp(prefix="mlcheck-fault-lint-"))
    try:
        (where / "pyproject.toml").write_text("[tool.mlcheck.lint]\n")
        src = where / "src"
        sources = _lint_sources(files)

        def restore() -> None:
            shutil.rmtree(src, ignore_errors=True)
            src.mkdir()
            for n, text in enumerate(sources):
                (src / f"mod_{n:03d}.py").write_text(text)

        restore()
        start = time.perf_counter()
        subprocess.run(_lint_cmd(where, jobs), cwd=where, check=True, stdout=subprocess.DEVNULL)
        duration = time.perf_counter() - start
        killer = Killer(rng, duration)
        fixed = {p.name: p.read_bytes() for p in src.glob("*.py")}
        original = {f"mod_{n:03d}.py": t.encode() for n, t in enumerate(sources)}
        changed = sum(fixed[n] != original[n] for n in original)
        violations = []
        killed = partial_runs = temp_files = 0
        for round_ in range(1, kills + 1):
            restore()
            killed += killer.run(_lint_cmd(where, jobs), where, dict(os.environ))
            found, done = check_lint(src, original, fixed)
            violations += [f"kill {round_}: {p}" for p in found]
            partial_runs += 0 < done < changed
            temp_files += sum(1 for p in src.iterdir() if not p.name.endswith(".py"))
        return {"kills": kills, "killed_mid_run": killed, "files": files,
                "files_changed_by_fix": changed, "kills_mid_fixing": partial_runs,
                "temp_files_after_kills": temp_files,
                "run_seconds": round(duration, 2), "violations": violations}
    finally:
        shutil.rmtree(where, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the fault injection and print the counts.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        1 when a check failed, else 0.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="kills of each tool (100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--only", choices=("plugin", "lint"), default=None)
    parser.add_argument("--lint-files", type=int, default=200)
    parser.add_argument("--lint-jobs", type=int, default=None,
                        help="--jobs of mlcheck-lint (default: the linter's)")
    parser.add_argument("--json", default=None, help="also write the counts here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    results: dict = {"seed": args.seed}
    cpu = time.process_time
    t0, c0 = time.perf_counter(), os.times()
    if args.only in (None, "plugin"):
        results["plugin"] = run_plugin(args.kills, rng)
    if args.only in (None, "lint"):
        results["lint"] = run_lint(args.kills, rng, files=args.lint_files, jobs=args.lint_jobs)
    times = os.times()
    results["wall_seconds"] = round(time.perf_counter() - t0, 1)
    results["cpu_seconds_children"] = round((times.children_user + times.children_system)
                                            - (c0.children_user + c0.children_system), 1)
    results["cpu_seconds_self"] = round(cpu(), 1)
    for side in ("plugin", "lint"):
        if side in results:
            r = results[side]
            print(f"{side}: {r['kills']} kills ({r['killed_mid_run']} mid-run), "
                  f"{len(r['violations'])} violations; "
                  + ", ".join(f"{k} {v}" for k, v in r.items()
                              if k not in ("kills", "killed_mid_run", "violations")))
            for v in r["violations"][:20]:
                print(f"  {v}")
    print(f"wall {results['wall_seconds']} s, CPU {results['cpu_seconds_children']} s "
          f"(children) + {results['cpu_seconds_self']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    failed = any(results[s]["violations"] for s in ("plugin", "lint") if s in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
