"""Benchmarks of the dependency rules (MLC2xx), each against a peer in the same run.

Questions (``python benchmarks/bench_deps.py all``, or one of them by name):

* ``transformers``: what do the dependency rules add to the documentation rules alone,
  linting the transformers 5.24.0 source tree (2,900 files)?
* ``locksync``: MLC203's offline check of a 300-package pip-tools lock against what a
  check by regeneration costs, ``pip-compile --dry-run`` on a local ``--find-links``
  folder (no network either way).
* ``deptry``: MLC205 against deptry 0.25 on the same tree: time, and every disagreement
  listed for judging.
* ``parsers``: how ``pip-requirements-parser`` and ``requirements-parser`` read the
  requirements corpus (tests/lint/fixtures/deps/corpus), for the parser choice.

Timings are wall and CPU seconds of child processes (``resource.getrusage``), best of
``--rounds``. Results go to stdout as JSON; benchmarks/README.md holds the numbers.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
CORPUS = Path("/work/corpora/transformers")
DEPTRY = Path("/work/venvs/deptry/bin/deptry")
PARSERS_PY = Path("/work/venvs/reqparsers/bin/python")


def timed(command: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run a command; return its wall seconds, its CPU seconds and the result.

    Args:
        command: The command.
        cwd: Its working folder.
        env: Its environment (default: ours).

    Returns:
        ``(wall, cpu, completed process)``.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done


def best(rounds: int, command: list[str], cwd: Path) -> dict:
    """Return the best wall and CPU time of ``rounds`` runs (and the last output)."""
    runs = [timed(command, cwd) for _ in range(rounds)]
    return {"wall_s": round(min(r[0] for r in runs), 3), "cpu_s": round(min(r[1] for r in runs), 3),
            "rc": runs[-1][2].returncode, "stdout": runs[-1][2].stdout, "stderr": runs[-1][2].stderr[-2000:]}


def transformers_tree(work: Path) -> Path:
    """Copy the transformers wheel's sources and write the pyproject its METADATA implies.

    Args:
        work: A scratch folder.

    Returns:
        The project folder (``transformers/`` package plus ``pyproject.toml``).
    """
    tree = work / "transformers-5.24.0"
    if tree.exists():
        return tree
    shutil.copytree(CORPUS / "transformers", tree / "transformers")
    meta = next(CORPUS.glob("*.dist-info")) / "METADATA"
    deps, extras = [], {}
    for line in meta.read_text(encoding="utf-8").splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        spec = line.split(":", 1)[1].strip()
        match = re.search(r"""extra\s*==\s*["']([^"']+)["']""", spec)
        if match:
            extra = match.group(1)
            spec = re.sub(r"""\s*(and\s+)?\(?\s*extra\s*==\s*["'][^"']+["']\s*\)?""", "", spec).strip()
            spec = re.sub(r";\s*$", "", spec).strip()
            extras.setdefault(extra, []).append(spec)
        else:
            deps.append(spec)
    lines = ["[build-system]", 'requires = ["setuptools>=77"]', "", "[project]", 'name = "transformers"',
             'version = "5.24.0"', "dependencies = ["] + [f"    {json.dumps(d)}," for d in deps] + ["]", "",
             "[project.optional-dependencies]"]
    for extra, specs in extras.items():
        lines.append(f"{json.dumps(extra)} = [" + ", ".join(json.dumps(s) for s in specs) + "]")
    (tree / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tree


def bench_transformers(work: Path, rounds: int, jobs: int) -> dict:
    """Documentation rules alone, then documentation + dependency rules, same tree."""
    tree = transformers_tree(work)
    lint = [str(BIN / "mlcheck-lint"), ".", "--no-cache", "-j", str(jobs), "--exit-zero", "--statistics"]
    docs = best(rounds, lint + ["--select", "MLC1"], tree)
    both = best(rounds, lint + ["--select", "MLC1,MLC2"], tree)
    deps = best(rounds, lint + ["--select", "MLC2"], tree)
    return {"files": sum(1 for _ in tree.rglob("*.py")), "docs_only": _trim(docs), "docs_and_deps": _trim(both),
            "deps_only": _trim(deps),
            "added_wall_pct": round(100 * (both["wall_s"] - docs["wall_s"]) / docs["wall_s"], 1),
            "added_cpu_pct": round(100 * (both["cpu_s"] - docs["cpu_s"]) / docs["cpu_s"], 1)}


def _trim(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("stdout", "stderr")} | {
        "statistics": result["stdout"].strip().splitlines()[-12:] + result["stderr"].strip().splitlines()[-3:]}


def make_wheel(folder: Path, name: str, version: str, requires: list[str]) -> None:
    """Write a minimal valid pure-Python wheel."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = {f"{name.replace('-', '_')}/__init__.py": "",
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                           + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as zf:
        for member, content in files.items():
            zf.writestr(member, content)
            digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(content)}")
        record.append(f"{dist}.dist-info/RECORD,,")
        zf.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")


def bench_locksync(work: Path, rounds: int) -> dict:
    """MLC203 on a 300-package lock vs ``pip-compile --dry-run`` on local wheels."""
    project = work / "locksync"
    wheels = work / "locksync-wheels"
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    if not wheels.exists():
        wheels.mkdir()
        for i in range(300):
            # every third package pulls in the next one, so a third of the lock is
            # reached only through `# via` chains, as in a real lock
            deps = [f"pkg{j:03d}>=1" for j in (i + 1, i + 7, i + 31)
                    if j < 300 and (j == i + 1 and i % 3 == 0 or (i + j) % 3 == 0)]
            for version in ("1.0", "1.1", "2.0"):
                make_wheel(wheels, f"pkg{i:03d}", version, deps)
    top = [f"pkg{i:03d}>=1" for i in range(300) if i % 3 != 1 or i % 9 == 0]
    (project / "requirements.in").write_text("\n".join(top) + "\n")
    compile_cmd = [str(BIN / "pip-compile"), "--no-index", f"--find-links={wheels}", "--quiet",
                   "--output-file=requirements.txt", "requirements.in"]
    setup = timed(compile_cmd, project)
    assert setup[2].returncode == 0, setup[2].stderr
    lock_lines = [l for l in (project / "requirements.txt").read_text().splitlines() if "==" in l]
    check = best(rounds, [str(BIN / "mlcheck-lint"), ".", "--select", "MLC203", "--no-cache", "-j", "1"], project)
    dry = best(rounds, compile_cmd[:-2] + ["--dry-run", "requirements.in"], project)
    # the rule alone, in process (what a pre-commit run pays once the CLI is up)
    sys.path.insert(0, str(ROOT / "lint"))
    from mlcheck_lint.rules.deps import common, lock_sync

    start, cpu0 = time.perf_counter(), time.process_time()
    n = 20
    for _ in range(n):
        common._READ.clear()
        common._PARSED.clear()
        found = list(lock_sync.stale_findings("MLC203", project, "requirements.txt", ["requirements.in"], []))
    in_process = (time.perf_counter() - start) / n, (time.process_time() - cpu0) / n
    # and one stale edit, to show the check finds it
    (project / "requirements.in").write_text("\n".join(top[:-1] + ["pkg299>=3"]) + "\n")
    stale = timed([str(BIN / "mlcheck-lint"), ".", "--select", "MLC203", "--no-cache", "-j", "1"], project)
    return {"packages_in_lock": len(lock_lines), "top_level": len(top), "pip_compile_full_s": round(setup[0], 3),
            "mlc203_cli": _trim(check), "pip_compile_dry_run": _trim(dry),
            "mlc203_in_process_wall_s": round(in_process[0], 4), "mlc203_in_process_cpu_s": round(in_process[1], 4),
            "findings_when_clean": len(found), "stale_edit_rc": stale[2].returncode,
            "stale_edit_output": stale[2].stdout.strip().splitlines()[:3],
            "ratio_wall_dry_run_over_cli": round(dry["wall_s"] / check["wall_s"], 1),
            "ratio_cpu_dry_run_over_cli": round(dry["cpu_s"] / check["cpu_s"], 1)}


def bench_deptry(work: Path, rounds: int) -> dict:
    """MLC205 vs deptry on the transformers tree: time and disagreements."""
    tree = transformers_tree(work)
    ours = best(rounds, [str(BIN / "mlcheck-lint"), ".", "--select", "MLC205", "--no-cache", "-j", "1",
                         "--format", "json", "--exit-zero"], tree)
    out = work / "deptry.json"
    theirs = best(rounds, [str(DEPTRY), ".", "--json-output", str(out), "--no-ansi"], tree)
    report = json.loads(ours["stdout"])
    mine = {}
    for f in report.get("findings", report if isinstance(report, list) else []):
        module = re.search(r"`import ([\w.]+)`", f["message"]).group(1).split(".")[0]
        mine.setdefault(module, []).append(f"{f['path']}:{f['line']}")
    deptry_missing: dict[str, list[str]] = {}
    deptry_other: dict[str, int] = {}
    for issue in json.loads(out.read_text()):
        code = issue["error"]["code"]
        if code in ("DEP001",):
            deptry_missing.setdefault(issue["module"], []).append(f"{issue['location']['file']}:{issue['location']['line']}")
        else:
            deptry_other[code] = deptry_other.get(code, 0) + 1
    only_ours = sorted(set(mine) - set(deptry_missing))
    only_deptry = sorted(set(deptry_missing) - set(mine))
    return {"mlc205": _trim(ours), "deptry": _trim(theirs),
            "ratio_wall_deptry_over_mlc205": round(theirs["wall_s"] / ours["wall_s"], 2),
            "modules_flagged_by_both": sorted(set(mine) & set(deptry_missing)),
            "only_mlc205": {m: mine[m][:3] for m in only_ours},
            "only_deptry_dep001": {m: deptry_missing[m][:3] for m in only_deptry},
            "deptry_other_codes": deptry_other,
            "mlc205_findings": sum(len(v) for v in mine.values()),
            "deptry_dep001_findings": sum(len(v) for v in deptry_missing.values())}


def bench_parsers() -> dict:
    """Run both maintained requirements parsers over the corpus (in their own venv)."""
    corpus = ROOT / "tests" / "lint" / "fixtures" / "deps" / "corpus"
    script = r'''
import json, sys, pathlib, warnings
warnings.simplefilter("ignore")
out = {}
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.txt")) + sorted(pathlib.Path(sys.argv[1]).rglob("*.in")):
    rel = path.relative_to(sys.argv[1]).as_posix(); row = {}
    try:
        from pip_requirements_parser import RequirementsFile
        rf = RequirementsFile.from_file(str(path), include_nested=False)
        row["pip-requirements-parser"] = {"requirements": len(rf.requirements), "invalid": [str(i.error_message)[:90] for i in rf.invalid_lines]}
    except Exception as exc:
        row["pip-requirements-parser"] = {"crash": f"{type(exc).__name__}: {exc}"[:120]}
    try:
        import requirements
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with open(path) as fh:
                reqs = list(requirements.parse(fh))
        row["requirements-parser"] = {"requirements": len(reqs), "skipped": [str(w.message)[:90] for w in caught]}
    except Exception as exc:
        row["requirements-parser"] = {"crash": f"{type(exc).__name__}: {exc}"[:120]}
    out[rel] = row
print(json.dumps(out))
'''
    if not PARSERS_PY.exists():
        return {"skipped": f"{PARSERS_PY} missing (python3 -m venv /work/venvs/reqparsers && pip install "
                           "pip-requirements-parser requirements-parser)"}
    done = subprocess.run([str(PARSERS_PY), "-c", script, str(corpus)], capture_output=True, text=True)
    theirs = json.loads(done.stdout)
    sys.path.insert(0, str(ROOT / "lint"))
    from mlcheck_lint import manifests

    for rel, row in theirs.items():
        m = manifests.read_manifest(rel if "/" not in rel else rel, (corpus / rel).read_text())
        row["mlcheck_lint.manifests"] = {"requirements": len(m.requirements), "problems": [p.reason for p in m.problems],
                                         "with_columns": True}
    return theirs


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print their results as JSON.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", default=["all"],
                        choices=["all", "transformers", "locksync", "deptry", "parsers"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1,
                        help="mlcheck-lint worker processes (1: CPU time is measured exactly)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mlcheck-bench-deps")
    args = parser.parse_args(argv)
    which = {"transformers", "locksync", "deptry", "parsers"} if "all" in args.which else set(args.which)
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "rounds": args.rounds}
    if "parsers" in which:
        results["parsers"] = bench_parsers()
    if "locksync" in which:
        results["locksync"] = bench_locksync(args.work, args.rounds)
    if "transformers" in which:
        results["transformers"] = bench_transformers(args.work, args.rounds, args.jobs)
    if "deptry" in which:
        results["deptry"] = bench_deptry(args.work, args.rounds)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
