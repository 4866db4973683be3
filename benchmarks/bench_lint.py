"""How fast is mlcheck-lint against pydoclint (and ruff, interrogate, TorchFix, dslinter), cold and warm?

Usage::

    for x in pydoclint ruff interrogate torchfix; do
        python -m venv /work/venvs/$x && /work/venvs/$x/bin/pip install $x; done
    # dslinter pins pylint 2.12 / astroid 2.9 / wrapt 1.13, which do not build on 3.11+:
    python3.9 -m venv /work/venvs/dslinter && /work/venvs/dslinter/bin/pip install dslinter
    python benchmarks/bench_lint.py /work/corpora/timm --rounds 3 \\
        [--torchfix /work/venvs/torchfix/bin/torchfix] [--dslinter /work/venvs/dslinter/bin/pylint] \\
        [--before /path/to/old/mlcheck_lint]

The peers default to ``/work/venvs/<name>/bin/<name>`` when present (TorchFix and dslinter
only when named, as they take minutes). For each tree, in the same run, on the same
cores, ``--rounds`` times interleaved (the order rotates each round), medians reported:

* pydoclint (``--style=google --quiet``; single process, it has no jobs option), cold;
* mlcheck-lint with the default documentation rules (the default-on ``MLC1xx`` codes:
  ``--select MLC1`` would also turn on the opt-in ones), cold (``--no-cache``), and
  with every default rule, cold (an empty ``--cache-dir``) and warm (the same cache,
  nothing changed);
* with ``--before``, the same mlcheck-lint runs with an older copy of the package, so
  a change is measured as a ratio inside one run;
* ruff ``--select D,NPY,PD --no-cache`` and interrogate, cold, for context; TorchFix
  (``-j JOBS``) and dslinter (pylint with the plugin and only its messages, ``-j JOBS``)
  when given, in the first ``--slow-rounds`` rounds only;
* CPU time of each command *and every process under it* (pool workers, a forkserver and
  the workers it forks): this process makes itself a child subreaper, so orphaned
  descendants are re-parented to it, reaps them all after the command exits and takes
  the ``getrusage(RUSAGE_CHILDREN)`` delta (``wait4`` alone misses a grandchild its
  parent never waited for);
* peak memory: the largest summed RSS of the process tree (sampled every 50 ms from
  ``/proc``) and the largest single process (``ru_maxrss``);
* the load average before each command: the machine is shared, and the wall ratio swings
  with other people's load; CPU time is the steadier measure.

Bars (issue 11): documentation rules cold CPU <= 1.0x pydoclint, every default rule
cold CPU <= 1.5x (issue 14: 2x), warm <= 0.05x (issue 14: 0.1x), peak memory < 500 MB
on transformers (issue 14: 1 GB); >= 20x faster than TorchFix and dslinter (issue 14).
Not a test: these machines are shared and noisy, so only same-run ratios mean anything.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: ``-P`` (3.11+): do not put the working folder (the checked tree) on ``sys.path``, or a
#: tree's own ``typing.py`` or ``_typing.py`` (timm/layers, transformers have one) would
#: be imported in place of the standard library's, running checked code.
MLCHECK = ([sys.executable, "-P", "-m", "mlcheck_lint"] if sys.version_info >= (3, 11) else
           [sys.executable, "-c", "import sys, runpy; del sys.path[0]; "
            "runpy.run_module('mlcheck_lint', run_name='__main__', alter_sys=True)"])
ROOT = Path(__file__).resolve().parents[1]
VENVS = Path("/work/venvs")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_PR_SET_CHILD_SUBREAPER = 36
_subreaper = False


def _become_subreaper() -> bool:
    """Make orphaned descendants of this process its children (Linux), so their CPU counts.

    Returns:
        Whether it worked; elsewhere only descendants that their parents waited for count.
    """
    global _subreaper
    if not _subreaper and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            _subreaper = False
    return _subreaper


def _tree_rss(pid: int) -> int:
    """Return the summed RSS in bytes of a process and all its descendants.

    Args:
        pid: The root process id.

    Returns:
        Bytes (the root's own RSS excluded when it is this process).
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
        rss[int(entry)] = int(fields[21]) * _PAGE
    total, todo = 0, list(children.get(pid, [])) if pid == os.getpid() else [pid]
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
    # An installed package has its bytecode (so do the peers' venvs): compile the copy
    # once, or every run would recompile ~70 modules (PYTHONDONTWRITEBYTECODE may be set).
    import compileall

    compileall.compile_dir(str(frozen / "mlcheck_lint"), quiet=1)
    return {**os.environ, "PYTHONPATH": str(frozen)}


def _reap_orphans(limit: float = 60.0) -> None:
    """Wait for every remaining child (orphans re-parented here), at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                print("   warning: a descendant is still running; its CPU time is not counted", flush=True)
                return
            time.sleep(0.01)


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int, int, float]:
    """Run a command; return its wall time, peak tree memory, exit code and CPU time.

    Args:
        cmd: The command line.
        cwd: Where to run it.
        env: The environment (default: this process's).

    Returns:
        ``(seconds, peak bytes, exit code, CPU seconds of the process and all its
        descendants)``. :data:`last_maxrss` holds the largest single process's RSS.
    """
    global last_maxrss
    subreaper = _become_subreaper()
    _reap_orphans(0)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        # Not proc.poll(): it could reap the process before wait4 below does.
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(os.getpid() if subreaper else proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    _reap_orphans()
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN is a maximum over all children ever, not a delta.
    last_maxrss = max(usage.ru_maxrss, after.ru_maxrss if after.ru_maxrss > before.ru_maxrss else 0) * 1024
    return elapsed, peak[0], proc.returncode, cpu


last_maxrss = 0


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


def _peer(name: str, binary: str | None = None) -> str | None:
    path = VENVS / name / "bin" / (binary or name)
    return str(path) if path.exists() else None


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    return " ".join((out.stdout or out.stderr).split())[:80]


def _verdict(ratio: float, bar: float, more: bool = False) -> str:
    ok = ratio >= bar if more else ratio <= bar
    return f"{'PASS' if ok else 'FAIL'} ({'>=' if more else '<='} {bar:g})"


def main() -> int:
    """Run the benchmark and print one block of numbers per tree.

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--pydoclint", default=_peer("pydoclint"))
    parser.add_argument("--ruff", default=_peer("ruff"))
    parser.add_argument("--interrogate", default=_peer("interrogate"))
    parser.add_argument("--torchfix", default=None, help="TorchFix's script (minutes per tree)")
    parser.add_argument("--dslinter", default=None, help="pylint of a venv with dslinter (minutes per tree)")
    parser.add_argument("--slow-rounds", type=int, default=1, help="rounds that run TorchFix and dslinter")
    parser.add_argument("--before", type=Path, default=None,
                        help="an older copy of the mlcheck_lint package to compare in the same run")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.pydoclint:
        parser.error("--pydoclint is required (no /work/venvs/pydoclint/bin/pydoclint)")
    print(f"child subreaper: {_become_subreaper()} (CPU of orphaned descendants counted)")
    versions = {"after": snapshot()}
    if args.before is not None:
        versions["before"] = snapshot(args.before)
    for label, cmd in (("pydoclint", [args.pydoclint, "--version"]), ("ruff", [args.ruff, "--version"]),
                       ("interrogate", [args.interrogate, "--version"]),
                       ("torchfix", [args.torchfix, "--version"]), ("dslinter/pylint", [args.dslinter, "--version"])):
        if cmd[0]:
            print(f"{label}: {_version(cmd)}")
    for version, env in versions.items():
        code = subprocess.run(MLCHECK + ["--version"], env=env, capture_output=True, text=True).stdout.strip()
        print(f"mlcheck-lint {version}: {code} from {env['PYTHONPATH']} on Python {sys.version.split()[0]}")
    dsl_msgs = ",".join([f"C55{n:02d}" for n in range(1, 7)] + ["E5501"] + [f"R55{n:02d}" for n in range(1, 9)]
                        + [f"W55{n:02d}" for n in range(1, 22)])
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
        slow: set[str] = set()
        if args.torchfix:
            commands["torchfix"] = ([args.torchfix, "-j", str(args.jobs), "."], None)
            slow.add("torchfix")
        if args.dslinter:
            commands["dslinter"] = ([args.dslinter, "--load-plugins=dslinter", "--disable=all",
                                     f"--enable={dsl_msgs}", "-j", str(args.jobs), "--exit-zero",
                                     "--score=n", str(tree)], None)
            slow.add("dslinter")
        caches: dict[str, Path] = {}
        for version, env in versions.items():
            base = MLCHECK + ["--jobs", str(args.jobs), "--exit-zero", "--format", "json"]
            commands[f"{version} docs cold"] = (base + ["--no-cache", "--select", _doc_codes(env), "."], env)
            caches[version] = Path(tempfile.mkdtemp(prefix="mlcheck-bench-cache-"))
            commands[f"{version} all cold"] = (base + ["--cache-dir", str(caches[version] / "c"), "."], env)
            commands[f"{version} all warm"] = (base + ["--cache-dir", str(caches[version] / "c"), "."], env)
        results: dict[str, list[tuple[float, int, float, int]]] = {name: [] for name in commands}
        loads: list[float] = []
        names = list(commands)
        for round_ in range(args.rounds):
            rotated = names[round_ % len(names):] + names[:round_ % len(names)]
            order = []
            for name in rotated:  # each warm run right after its own cold run
                if name in slow and round_ >= args.slow_rounds:
                    continue
                if not name.endswith(" warm"):
                    order.append(name)
                    if name.endswith(" all cold"):
                        order.append(name.replace(" cold", " warm"))
            for version, cache in caches.items():
                shutil.rmtree(cache / "c", ignore_errors=True)
            for name in order:
                cmd, env = commands[name]
                load = os.getloadavg()[0]
                loads.append(load)
                wall, peak, code, cpu = timed(cmd, tree, env)
                failed = f"  exit {code}" if code not in (0, 1) else ""
                print(f"   round {round_ + 1} {name:<18} wall {wall:7.2f} s cpu {cpu:7.2f} s "
                      f"tree {peak / 2**20:5.0f} MB  load {load:4.1f}{failed}", flush=True)
                results[name].append((wall, peak, cpu, last_maxrss))
        for shutil_path in caches.values():
            shutil.rmtree(shutil_path, ignore_errors=True)
        med = {name: (_median([r[0] for r in rs]), max(r[1] for r in rs), _median([r[2] for r in rs]),
                      max(r[3] for r in rs), len(rs))
               for name, rs in results.items() if rs}
        print(f"load average (1 min) before each command: min {min(loads):.1f}, median {_median(loads):.1f}, "
              f"max {max(loads):.1f}")
        pyd = med["pydoclint"]
        print(f"{'command':<20} {'n':>2} {'wall s':>8} {'cpu s':>8} {'cpu/pyd':>8} {'tree MB':>8} {'max proc MB':>11}")
        for name, (wall, peak, cpu, maxrss, n) in med.items():
            print(f"{name:<20} {n:2d} {wall:8.2f} {cpu:8.2f} {cpu / pyd[2]:8.3f} {peak / 2**20:8.0f} "
                  f"{maxrss / 2**20:11.0f}", flush=True)
        for version in versions:
            d, c, w = med[f"{version} docs cold"], med[f"{version} all cold"], med[f"{version} all warm"]
            print(f"{version}: docs cold/pydoclint cpu {d[2] / pyd[2]:.2f} {_verdict(d[2] / pyd[2], 1.0)}, "
                  f"wall {d[0] / pyd[0]:.2f}")
            print(f"{version}: all cold/pydoclint cpu {c[2] / pyd[2]:.2f} {_verdict(c[2] / pyd[2], 1.5)} "
                  f"{_verdict(c[2] / pyd[2], 2.0)}, wall {c[0] / pyd[0]:.2f}")
            print(f"{version}: warm/pydoclint cpu {w[2] / pyd[2]:.3f} {_verdict(w[2] / pyd[2], 0.05)}, "
                  f"wall {w[0] / pyd[0]:.3f} {_verdict(w[0] / pyd[0], 0.05)}")
            print(f"{version}: peak tree {max(d[1], c[1], w[1]) / 2**20:.0f} MB "
                  f"{_verdict(max(d[1], c[1], w[1]) / 2**20, 500)}", flush=True)
            for peer in sorted(slow):
                if peer in med:
                    p = med[peer]
                    print(f"{version}: {peer}/all cold cpu {p[2] / c[2]:.1f}x {_verdict(p[2] / c[2], 20, True)}, "
                          f"wall {p[0] / c[0]:.1f}x {_verdict(p[0] / c[0], 20, True)}", flush=True)
        if "before" in versions:
            for kind in ("docs cold", "all cold", "all warm"):
                b, a = med[f"before {kind}"], med[f"after {kind}"]
                print(f"after/before {kind}: {a[2] / b[2]:.2f} cpu, {a[0] / b[0]:.2f} wall", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
