"""How many findings do the documentation rules (MLC1xx) make on a real source tree?

Runs every MLC1xx rule, on or off by default, over each ``.py`` file of a tree through
``FileContext.from_source`` (per-file rules' ``check``, project rules' ``collect`` then
``check_project``), prints the findings per rule, and writes them all as JSON lines
for review. This is the precision check behind the README's table: read a sample of
the written findings and count the wrong ones.

Usage::

    pip download --no-deps timm==1.0.31 -d /tmp/corpora && unzip -q -o /tmp/corpora/timm-*.whl -d /tmp/corpora/timm
    python benchmarks/docs_rules_corpus.py /tmp/corpora/timm --out /tmp/timm_findings.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import time

from mlcheck_lint.api import REGISTRY, FileContext, ProjectContext, ProjectRule, Settings
import mlcheck_lint.rules.docs  # noqa: F401  (registers the rules)


def run(root: pathlib.Path, out: pathlib.Path | None) -> collections.Counter:
    """Lint every Python file under ``root`` with the MLC1xx rules.

    Args:
        root: The tree to lint (also the project root for project rules).
        out: Where to write the findings as JSON lines, or ``None``.

    Returns:
        Findings per rule code.
    """
    settings = Settings()
    rules = {code: REGISTRY[code]() for code in sorted(REGISTRY) if code.startswith("MLC1")}
    counts: collections.Counter = collections.Counter()
    findings = []
    facts: dict[str, dict] = collections.defaultdict(dict)
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        try:
            ctx = FileContext.from_source(path.read_text(encoding="utf-8", errors="replace"), rel, settings)
        except Exception:  # a file libcst cannot parse: the engine reports it as MLC000
            continue
        files.append(rel)
        for code, rule in rules.items():
            if isinstance(rule, ProjectRule):
                facts[code][rel] = rule.collect(ctx)
            else:
                findings += list(rule.check(ctx))
    project = ProjectContext(root, settings, files, dict(facts))
    for code, rule in rules.items():
        if isinstance(rule, ProjectRule):
            findings += list(rule.check_project(project))
    for f in findings:
        counts[f.code] += 1
    if out is not None:
        with out.open("w", encoding="utf-8") as fh:
            for f in findings:
                fh.write(json.dumps({"code": f.code, "path": f.path, "line": f.line, "col": f.col,
                                     "message": f.message, "fix": f.fix.safety if f.fix else None}) + "\n")
    print(f"{len(files)} files")
    return counts


def main() -> None:
    """Parse the command line, run, and print findings per rule."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    counts = run(args.root, args.out)
    for code in sorted(c for c in REGISTRY if c.startswith("MLC1")):
        print(f"{code} {counts[code]}")
    print(f"{time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
