"""How precise are the default-on ML smell rules (MLC3xx) on real code no one here wrote?

Usage::

    # library trees: the wheels' sources
    pip download --no-deps timm==1.0.31 transformers==5.24.0 pytorch-lightning==2.6.6 \\
        torchvision==0.29.2 -d /tmp/wheels          # unzip each into /work/corpora/<name>
    # (this machine's pip constraints cap torchvision at 0.29.1: PIP_CONSTRAINT=/dev/null for the download)
    # training scripts and notebooks: the GitHub repositories at the commits listed in
    # REAL_CODE below, each checked out as /tmp/real/<owner>+<repo> (git archive <commit>;
    # from a partial mirror, the .py/.ipynb/manifest blobs that it holds)
    python benchmarks/smells_precision.py --wheels /work/corpora --real /tmp/real

For every corpus it runs ``mlcheck-lint`` with every default-on MLC3xx rule (no cache),
times it, and joins each finding with ``benchmarks/smells_labels.csv``: one row per
finding, labelled ``true`` (a real bug or the smell the rule names, read in the code) or
``false``, with a one-line reason. No code of the corpora is stored, only the labels.

Printed: per rule, findings, labelled, true, false and precision; per corpus, files and
time. A finding without a label, or a label whose finding is gone (the rules changed),
is listed and makes the exit status 1, so the labels cannot silently go stale.
``--write-missing`` appends the unlabelled findings to the CSV with verdict ``?``.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lint import MLCHECK, _become_subreaper, _reap_orphans  # noqa: E402  (the shared CPU accounting)
LABELS = ROOT / "benchmarks" / "smells_labels.csv"
FIELDS = ["package", "version", "path", "cell", "line", "code", "verdict", "reason"]

#: (package, version, folder under --wheels)
WHEELS = [("timm", "1.0.31", "timm"), ("transformers", "5.24.0", "transformers"),
          ("pytorch-lightning", "2.6.6", "pytorch_lightning"), ("torchvision", "0.29.2", "torchvision")]
#: (GitHub repository, commit): training scripts, tutorials and notebooks.
REAL_CODE = [
    ("pytorch/examples", "77f55b9"), ("huggingface/accelerate", "16cb6eb8"), ("skorch-dev/skorch", "5db0ddc"),
    ("ageron/handson-ml2", "1e21152"), ("jakevdp/PythonDataScienceHandbook", "d662314"),
    ("yunjey/pytorch-tutorial", "0500d3d"), ("udacity/deep-learning-v2-pytorch", "c9404fc8"),
    ("rasbt/deeplearning-models", "18e0469"), ("bentrevett/pytorch-sentiment-analysis", "329f654"),
    ("guipsamora/pandas_exercises", "daf0fd2"), ("amueller/introduction_to_ml_with_python", "ea60cf6"),
    ("eriklindernoren/PyTorch-GAN", "36d3c77"), ("MorvanZhou/PyTorch-Tutorial", "dbe154a"),
    ("donnemartin/data-science-ipython-notebooks", "5b3c00d"), ("bentrevett/pytorch-seq2seq", "b3cd54c"),
    ("L1aoXingyu/pytorch-beginner", "a57dd7e"), ("pytorch/ignite", "de08e799c"),
    # added 2026-12-03: more tutorials and course notebooks, where training-loop bugs live
    ("hunkim/PyTorchZeroToAll", "e5a260fac"), ("kuangliu/pytorch-cifar", "49b7aa97b"),
    ("spro/practical-pytorch", "c520c52e6"), ("zergtant/pytorch-handbook", "e9a149200"),
    ("GunhoChoi/PyTorch-FastCampus", "1e9ba63e9"), ("chenyuntc/pytorch-book", "688951721"),
    ("dsgiitr/d2l-pytorch", "e84da49a9"), ("utkuozbulak/pytorch-cnn-visualizations", "ba22fa07c"),
    ("Shawn1993/cnn-text-classification-pytorch", "93415f081"),
    ("sgrvinod/a-PyTorch-Tutorial-to-Image-Captioning", "cc9c7e2f4"),
]


def default_on_codes() -> list[str]:
    """Return the default-on smell codes, as the linter registers them.

    Returns:
        Sorted ``MLC3xx`` codes whose default is ``on``.
    """
    sys.path.insert(0, str(ROOT / "lint"))
    from mlcheck_lint.api import REGISTRY, load_families

    load_families()
    return sorted(c for c, r in REGISTRY.items() if c.startswith("MLC3") and r.default == "on")


def lint(root: Path, codes: list[str], jobs: int) -> tuple[list[dict], float, float]:
    """Run mlcheck-lint over one tree.

    Args:
        root: The tree.
        codes: The codes to select.
        jobs: Worker processes.

    Returns:
        ``(findings, wall seconds, CPU seconds of the command and its workers)``.
    """
    cmd = [*MLCHECK, "--select", ",".join(codes), "--no-cache", "--exit-zero",
           "--format", "json", "-j", str(jobs), str(root)]
    # The engine's pool workers are forked by a forkserver that the main process never
    # waits for: as a child subreaper this process inherits and reaps it, so the workers'
    # CPU time reaches RUSAGE_CHILDREN (os.times() alone saw the main process only).
    _become_subreaper()
    start = time.perf_counter()
    before = os.times()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    _reap_orphans()
    after = os.times()
    wall = time.perf_counter() - start
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"mlcheck-lint failed on {root}: {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout)
    if data.get("errors"):
        raise SystemExit(f"rule errors on {root}: {data['errors'][:3]}")
    return data["findings"], wall, cpu


def read_labels(path: Path) -> dict[tuple[str, str, str, str, str], dict[str, str]]:
    """Read the labels file.

    Args:
        path: The CSV.

    Returns:
        ``{(package, path, cell, line, code): row}``.

    Raises:
        SystemExit: A row has a bad verdict or a duplicate key (naming the row).
    """
    labels: dict[tuple[str, str, str, str, str], dict[str, str]] = {}
    if not path.exists():
        return labels
    with path.open(newline="", encoding="utf-8") as fh:
        for number, row in enumerate(csv.DictReader(fh), start=2):
            if row["verdict"] not in ("true", "false", "?"):
                raise SystemExit(f"{path}:{number}: verdict must be true or false, not {row['verdict']!r}")
            key = (row["package"], row["path"], row["cell"], row["line"], row["code"])
            if key in labels:
                raise SystemExit(f"{path}:{number}: duplicate label for {key}")
            labels[key] = row
    return labels


def main(argv: list[str] | None = None) -> int:
    """Measure and print the precision table.

    Args:
        argv: Command-line arguments.

    Returns:
        0 when every finding is labelled and every label still matches a finding.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, default=Path("/work/corpora"))
    parser.add_argument("--real", type=Path, default=Path("/tmp/real"))
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--write-missing", action="store_true")
    args = parser.parse_args(argv)
    codes = default_on_codes()
    labels = read_labels(args.labels)
    corpora = [(p, v, args.wheels / d) for p, v, d in WHEELS]
    corpora += [(repo, commit, args.real / repo.replace("/", "+")) for repo, commit in REAL_CODE]
    seen: set[tuple[str, str, str, str, str]] = set()
    missing: list[dict[str, str]] = []
    per_rule: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    print(f"{'corpus':45} {'files':>6} {'findings':>8} {'wall s':>7} {'cpu s':>7}")
    for package, version, root in corpora:
        if not root.is_dir():
            print(f"{package:45} missing: {root}")
            continue
        files = sum(1 for p in root.rglob("*") if p.suffix in (".py", ".ipynb"))
        findings, wall, cpu = lint(root, codes, args.jobs)
        print(f"{package:45} {files:6d} {len(findings):8d} {wall:7.1f} {cpu:7.1f}")
        for f in findings:
            rel = os.path.relpath(f["path"], root) if os.path.isabs(f["path"]) else f["path"]
            key = (package, rel, str(f.get("cell") or ""), str(f["line"]), f["code"])
            seen.add(key)
            per_rule[f["code"]]["findings"] += 1
            row = labels.get(key)
            if row is None or row["verdict"] == "?":
                if row is None:
                    missing.append(dict(zip(FIELDS, [package, version, *key[1:], "?", f["message"][:90]])))
                continue
            per_rule[f["code"]]["labelled"] += 1
            per_rule[f["code"]][row["verdict"]] += 1
    stale = [k for k in labels if k not in seen and any(k[0] == c[0] for c in corpora if c[2].is_dir())]
    print(f"\n{'rule':7} {'findings':>8} {'labelled':>8} {'true':>5} {'false':>5} {'precision':>9}")
    for code in codes:
        c = per_rule[code]
        precision = f"{100 * c['true'] / c['labelled']:.1f}%" if c["labelled"] else "-"
        print(f"{code:7} {c['findings']:8d} {c['labelled']:8d} {c['true']:5d} {c['false']:5d} {precision:>9}")
    total = sum((per_rule[c] for c in codes), collections.Counter())
    if total["labelled"]:
        print(f"{'all':7} {total['findings']:8d} {total['labelled']:8d} {total['true']:5d} {total['false']:5d} "
              f"{100 * total['true'] / total['labelled']:8.1f}%")
    for row in missing:
        print("unlabelled:", ",".join(row[k] for k in FIELDS[:6]), "-", row["reason"])
    for key in stale:
        print("stale label (no such finding now):", key)
    if args.write_missing and missing:
        new = not args.labels.exists()
        with args.labels.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(missing)
    return 1 if missing or stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
