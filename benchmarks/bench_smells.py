"""What do the ML smell rules (MLC3xx) cost, against pydoclint, TorchFix and dslinter?

Usage::

    python -m venv /work/venvs/pydoclint && /work/venvs/pydoclint/bin/pip install pydoclint
    python -m venv /work/venvs/torchfix && /work/venvs/torchfix/bin/pip install torchfix
    # dslinter 2.0.9 pins pylint 2.12.2 / astroid 2.9.3, whose wrapt 1.13 does not build on
    # Python 3.11+; on 3.9 everything installs from wheels:
    python3.9 -m venv /work/venvs/dslinter && /work/venvs/dslinter/bin/pip install dslinter
    python benchmarks/bench_smells.py /work/corpora/timm --rounds 3 --jobs 2

For one tree, interleaved in every round, on the same cores:

* pydoclint (``--style=google --quiet``; one process), cold;
* mlcheck-lint with every default rule (documentation, dependency, smell), cold (an empty
  cache) and warm (the same cache, nothing changed);
* mlcheck-lint with the default rules except the smells (``--ignore MLC3``), cold: the
  difference is what the smell rules add to the shared walk;
* mlcheck-lint with only the default-on smell rules, cold;
* TorchFix (``-j JOBS``), cold, and dslinter (pylint with the dslinter plugin and only
  its messages, ``-j JOBS``), cold, once each (``--peer-rounds``), as they take minutes.

Medians of wall and CPU time (the command and every descendant, forkserver workers
included: see ``bench_lint.timed``), and peak
memory of the process tree. Not a test: the machine is shared, so only same-run ratios
mean anything. Bars (issue 14): cold all-default <= 2x pydoclint CPU (issue 11: 1.5x),
warm <= 0.1x, >= 20x faster than TorchFix and dslinter, peak memory < 1 GB.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lint import MLCHECK, count_lines, timed  # noqa: E402  (the shared timer)

ROOT = Path(__file__).resolve().parents[1]
DSLINTER_MESSAGES = ",".join([f"C55{n:02d}" for n in range(1, 7)] + ["E5501"] +
                             [f"R55{n:02d}" for n in range(1, 9)] + [f"W55{n:02d}" for n in range(1, 22)])


def smell_codes() -> str:
    """Return the default-on smell codes, comma-separated.

    Returns:
        ``MLC301,...``.
    """
    sys.path.insert(0, str(ROOT / "lint"))
    from mlcheck_lint.api import REGISTRY, load_families

    load_families()
    return ",".join(sorted(c for c, r in REGISTRY.items() if c.startswith("MLC3") and r.default == "on"))


def main() -> int:
    """Run the rounds and print the table.

    Returns:
        0.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--pydoclint", default="/work/venvs/pydoclint/bin/pydoclint")
    parser.add_argument("--torchfix", default="/work/venvs/torchfix/bin/torchfix")
    parser.add_argument("--pylint", default="/work/venvs/dslinter/bin/pylint")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peer-rounds", type=int, default=1)
    args = parser.parse_args()
    tree = args.tree.resolve()
    files, lines = count_lines(tree)
    jobs = str(args.jobs)
    smells = smell_codes()
    work = Path(tempfile.mkdtemp(prefix="bench-smells-"))
    results: dict[str, list[tuple[float, int, int, float]]] = {}

    def record(name: str, cmd: list[str], cwd: Path = tree) -> None:
        results.setdefault(name, []).append(timed(cmd, cwd))

    for round_ in range(args.rounds):
        cache = work / f"cache{round_}"
        record("pydoclint", [args.pydoclint, "--style=google", "--quiet", str(tree)])
        record("mlcheck all default, cold", MLCHECK + ["--exit-zero", "-j", jobs, "--cache-dir", str(cache), str(tree)])
        record("mlcheck all default, warm", MLCHECK + ["--exit-zero", "-j", jobs, "--cache-dir", str(cache), str(tree)])
        record("mlcheck without smells, cold", MLCHECK + ["--exit-zero", "-j", jobs, "--no-cache", "--ignore", "MLC3",
                                                          str(tree)])
        record("mlcheck smells only, cold", MLCHECK + ["--exit-zero", "-j", jobs, "--no-cache", "--select", smells,
                                                       str(tree)])
        if round_ < args.peer_rounds:
            if Path(args.torchfix).exists():
                record("torchfix", [args.torchfix, "-j", jobs, str(tree)])
            if Path(args.pylint).exists():
                record("dslinter (pylint plugin)", [args.pylint, "--load-plugins=dslinter", "--disable=all",
                                                    f"--enable={DSLINTER_MESSAGES}", "-j", jobs, "--exit-zero",
                                                    str(tree)])
    shutil.rmtree(work, ignore_errors=True)
    median = {k: (statistics.median(r[0] for r in v), statistics.median(r[3] for r in v), max(r[1] for r in v))
              for k, v in results.items()}
    print(f"tree {tree} ({files} files, {lines} lines), jobs={jobs}, rounds={args.rounds}")
    print(f"{'command':32} {'wall s':>8} {'cpu s':>8} {'peak MB':>8}")
    for name, (wall, cpu, peak) in median.items():
        print(f"{name:32} {wall:8.2f} {cpu:8.2f} {peak / 2**20:8.0f}")
    base = median["pydoclint"]
    cold = median["mlcheck all default, cold"]
    print(f"all default cold / pydoclint: cpu {cold[1] / base[1]:.2f}x, wall {cold[0] / base[0]:.2f}x")
    print(f"warm / pydoclint: wall {median['mlcheck all default, warm'][0] / base[0]:.2f}x")
    extra = cold[1] - median["mlcheck without smells, cold"][1]
    print(f"smell rules' marginal CPU in the shared walk: {extra:.2f} s")
    only = median["mlcheck smells only, cold"]
    for peer in ("torchfix", "dslinter (pylint plugin)"):
        if peer in median:
            print(f"{peer} / mlcheck smells only: cpu {median[peer][1] / only[1]:.1f}x, "
                  f"wall {median[peer][0] / only[0]:.1f}x; / all default: cpu {median[peer][1] / cold[1]:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
