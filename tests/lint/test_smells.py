"""ML smell rules (MLC3xx): fixture snapshots, fix outputs, notebooks and the rule table.

Each fixture ``fixtures/smells/MLC3nn.py`` holds the cases that must be flagged (a
``# expect: MLC3nn`` comment on the line) and the false-positive traps that must not
(every other line). ``MLC3nn.fixed.py``, where present, is the snapshot of the file after
every unsafe fix of that rule, and must parse.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from mlcheck_lint.api import REGISTRY, FileContext, ProjectRule, load_families
from mlcheck_lint.fixes import apply_edits
from mlcheck_lint.traversal import walk_ast

load_families()

FIXTURES = Path(__file__).parent / "fixtures" / "smells"
SMELL_CODES = sorted(c for c in REGISTRY if c.startswith("MLC3"))
_EXPECT = re.compile(r"#\s*expect([+-]\d+)?:\s*((?:MLC\d{3}[\s,]*)+)")
_RULES = re.compile(r"#\s*rules:((?:\s+MLC\d{3})+)")


def expectations(text: str) -> set[tuple[int, str]]:
    """Return the ``(line, code)`` pairs a fixture's ``# expect`` comments ask for."""
    out = set()
    for number, line in enumerate(text.splitlines(), start=1):
        for m in _EXPECT.finditer(line):
            offset = int(m.group(1)) if m.group(1) else 0
            for code in re.findall(r"MLC\d{3}", m.group(2)):
                out.add((number + offset, code))
    return out


def lint(source: str, codes: list[str], path: str = "example.py") -> list:
    """Run smell rules over one source in one shared walk, as the engine does."""
    ctx = FileContext.from_source(source, path)
    rules = [REGISTRY[c]() for c in codes]
    for rule in rules:
        rule.begin_file(ctx)
    walk_ast(ctx, rules)
    findings = [f for rule in rules for f in rule.end_file()]
    for rule in rules:
        if isinstance(rule, ProjectRule):
            json.dumps(rule.collect(ctx))  # facts must survive the cache
    return findings


def fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("MLC3*.py") if not p.name.endswith(".fixed.py"))


@pytest.mark.parametrize("fixture", fixture_files(), ids=lambda p: p.stem)
def test_fixture_snapshot(fixture: Path) -> None:
    text = fixture.read_text(encoding="utf-8")
    header = _RULES.search(text)
    assert header, f"{fixture.name} has no '# rules:' header"
    codes = header.group(1).split()
    findings = lint(text, codes, fixture.name)
    found = {(f.line, f.code) for f in findings}
    expected = expectations(text)
    lines = text.splitlines()
    unexpected = sorted(found - expected)
    missed = sorted(expected - found)
    assert not unexpected and not missed, (
        f"{fixture.name}: unexpected {[(ln, c, lines[ln - 1].strip()) for ln, c in unexpected]}; "
        f"missed {[(ln, c, lines[ln - 1].strip()) for ln, c in missed]}")
    for f in findings:
        assert f.message and "`" in f.message, f  # messages name the code they are about


def test_every_default_rule_has_a_fixture_that_flags_it() -> None:
    flagged = {code for p in FIXTURES.glob("*.py") for _, code in expectations(p.read_text(encoding="utf-8"))}
    missing = [c for c in SMELL_CODES if c not in flagged]
    assert not missing, missing


def fixed_fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("MLC3*.fixed.py"))


@pytest.mark.parametrize("fixed", fixed_fixtures(), ids=lambda p: p.stem)
def test_fix_output_snapshot(fixed: Path) -> None:
    source_path = fixed.with_name(fixed.name.replace(".fixed.py", ".py"))
    source = source_path.read_text(encoding="utf-8")
    code = source_path.stem
    findings = lint(source, [code], source_path.name)
    edits = [e for f in findings if f.fix is not None for e in f.fix.edits]
    assert edits, f"{code} offered no fix"
    assert all(f.fix.safety == "unsafe" for f in findings if f.fix is not None)
    result = apply_edits(source, edits)
    assert result == fixed.read_text(encoding="utf-8")
    ast.parse(result)  # the fixed file still parses
    assert not [f for f in lint(result, [code], source_path.name) if f.fix is not None], \
        "the fix is not idempotent: it fires again on its own output"


ISSUE_DEFAULTS = {"MLC301": "on", "MLC302": "on", "MLC303": "on", "MLC304": "on", "MLC305": "on",
                  "MLC306": "on", "MLC307": "on", "MLC308": "on", "MLC309": "on", "MLC310": "on",
                  "MLC311": "on", "MLC312": "on", "MLC313": "on", "MLC314": "on", "MLC315": "preview",
                  "MLC316": "preview", "MLC317": "on", "MLC318": "off", "MLC319": "off", "MLC320": "off",
                  "MLC321": "off", "MLC322": "off", "MLC323": "off", "MLC324": "preview", "MLC325": "off",
                  # beyond the issue's table: the catalogue's train/eval toggling and
                  # empty-column smells
                  "MLC326": "on", "MLC327": "off",
                  # beyond the catalogue: silent training-loop bugs
                  "MLC328": "on", "MLC329": "on", "MLC330": "on"}
FIXABLE = {"MLC302", "MLC303", "MLC304", "MLC305", "MLC307", "MLC309", "MLC317"}


def test_rules_match_the_issue_table_and_are_documented() -> None:
    assert set(SMELL_CODES) <= set(ISSUE_DEFAULTS)
    assert {c for c, d in ISSUE_DEFAULTS.items() if d == "on"} <= set(SMELL_CODES)
    for code in SMELL_CODES:
        rule = REGISTRY[code]
        assert rule.default == ISSUE_DEFAULTS[code], code
        assert rule.needs == "ast", code  # analysis on CPython's ast (issue 11)
        assert rule.requires_text, code  # files that cannot match are skipped unparsed
        assert re.fullmatch(r"[a-z]+(-[a-z]+)+", rule.name), code
        assert rule.summary and "\n" not in rule.summary
        assert (rule.fix_safety == "unsafe") == (code in FIXABLE), code
        doc = rule.documentation()
        headings = ["What it does:", "Why is this bad?", "Example:", "Use instead:"]
        headings += ["Fix safety:"] if rule.fix_safety else []
        positions = [doc.find(h) for h in headings]
        assert all(p >= 0 for p in positions) and positions == sorted(positions), (code, positions)


@pytest.mark.parametrize("source", ["", "\n", "x = 1\n", "import torch\n", "lambda: 0\n",
                                    "import torch\nclass A(torch.nn.Module):\n    pass\n",
                                    "import torch.nn.functional as F\nF.dropout\n",
                                    "x.forward\nf()()\nx = y.forward\n"])
def test_rules_accept_minimal_modules(source: str) -> None:
    assert lint(source, SMELL_CODES) == []
