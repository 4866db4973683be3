"""Documentation rules (MLC1xx): fixture snapshots, fixes, project rules and the parser.

The cases of each rule live in one file named after it, ``fixtures/docs/MLCnnn.py``: its
positives and the clean cases that guard it. A fixable rule has a twin, ``MLCnnn.fixed.py``,
the file after all its fixes. Cases that depend on the whole module (the path it is linted as, a
literal ``__all__``) get their own file in a folder named after the code
(``fixtures/docs/MLC101/private_module_path.py``). Cross-file rules use the ``project/`` tree.

Each fixture states what it checks and what it expects:

* ``# rules: MLC110 MLC111`` (first lines): the codes whose findings are snapshotted;
* ``# path: pkg/_x.py``: the path the file is linted as (default: its own name);
* ``# expect: MLC110`` at the end of a line: that line must get that finding;
  ``# expect+N: CODE`` / ``# expect-N: CODE`` put it N lines below / above (for lines
  such as a NumPy section header that cannot carry a comment).

Every finding not expected, and every expectation not found, fails the test, so each
fixture is both the must-flag and the must-not-flag case.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import libcst
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from mlcheck_lint.api import REGISTRY, FileContext, ProjectContext, ProjectRule, Settings
from mlcheck_lint.docstrings import UNKNOWN, detect_style, literal_value, parse_docstring, same_value
from mlcheck_lint.fixes import apply_edits
import mlcheck_lint.rules.docs  # noqa: F401  (registers the rules)

FIXTURES = Path(__file__).parent / "fixtures" / "docs"
DOC_CODES = sorted(c for c in REGISTRY if c.startswith("MLC1"))
PER_FILE_PROJECT_CODES = ("MLC103",)
_EXPECT = re.compile(r"#\s*expect([+-]\d+)?:\s*((?:MLC\d{3}[\s,]*)+)")
_RULES = re.compile(r"#\s*rules:((?:\s+MLC\d{3})+)")
_PATH = re.compile(r"#\s*path:\s*(\S+)")


def expectations(text: str) -> set[tuple[int, str]]:
    """Return the ``(line, code)`` pairs a fixture's ``# expect`` comments ask for."""
    out = set()
    for number, line in enumerate(text.splitlines(), start=1):
        for m in _EXPECT.finditer(line):
            offset = int(m.group(1)) if m.group(1) else 0
            for code in re.findall(r"MLC\d{3}", m.group(2)):
                out.add((number + offset, code))
    return out


def lint(source: str, path: str, codes: list[str], settings: Settings | None = None) -> list:
    """Run the given documentation rules over one file, project rules over it alone."""
    settings = settings or Settings()
    ctx = FileContext.from_source(source, path, settings)
    findings = []
    for code in codes:
        rule = REGISTRY[code]()
        if isinstance(rule, ProjectRule):
            facts = json.loads(json.dumps(rule.collect(ctx)))  # facts must survive the cache
            project = ProjectContext(Path("."), settings, [path], {code: {path: facts}})
            findings += list(rule.check_project(project))
        else:
            findings += list(rule.check(ctx))
    return findings


FIXABLE = sorted(c for c in DOC_CODES if REGISTRY[c].fix_safety)


def fixture_files() -> list[Path]:
    """Every per-code fixture: ``MLCnnn.py`` and ``MLCnnn/*.py`` (not the fix twins, not ``project/``)."""
    files = [*FIXTURES.glob("MLC*.py"), *FIXTURES.glob("MLC*/*.py")]
    return sorted((p for p in files if not p.name.endswith(".fixed.py")),
                  key=lambda p: p.relative_to(FIXTURES).as_posix())


def test_fixtures_are_named_after_their_codes() -> None:
    """Only per-code files and folders (plus ``project/``); each fixable rule has its ``.fixed.py`` twin."""
    code_of = re.compile(r"(MLC\d{3})(?:\.fixed)?\.py|(MLC\d{3})")
    for entry in FIXTURES.iterdir():
        if entry.name in ("project", "__pycache__"):
            continue
        m = code_of.fullmatch(entry.name)
        assert m and (m.group(1) or m.group(2)) in DOC_CODES, f"{entry.name}: not named after a docs rule code"
        assert entry.is_dir() == bool(m.group(2)), entry.name
        if entry.is_dir():
            assert sorted(entry.glob("*.py")) and not (FIXTURES / f"{entry.name}.fixed.py").exists(), entry.name
        elif entry.name.endswith(".fixed.py"):
            assert m.group(1) in FIXABLE and (FIXTURES / f"{m.group(1)}.py").exists(), entry.name
        else:
            # The file named after a code is where that code's cases are: it expects it.
            assert m.group(1) in {c for _, c in expectations(entry.read_text(encoding="utf-8"))}, entry.name
    assert sorted(p.name for p in FIXTURES.glob("*.fixed.py")) == [f"{c}.fixed.py" for c in FIXABLE]


@pytest.mark.parametrize("fixture", fixture_files(), ids=lambda p: p.relative_to(FIXTURES).with_suffix("").as_posix())
def test_fixture_snapshot(fixture: Path) -> None:
    text = fixture.read_text(encoding="utf-8")
    rules = _RULES.search(text)
    assert rules, f"{fixture.name} has no '# rules:' header"
    codes = rules.group(1).split()
    path_m = _PATH.search(text)
    path = path_m.group(1) if path_m else fixture.name
    found = {(f.line, f.code) for f in lint(text, path, codes)}
    expected = expectations(text)
    lines = text.splitlines()
    unexpected = sorted(found - expected)
    missed = sorted(expected - found)
    assert not unexpected and not missed, (
        f"{fixture.name}: unexpected findings {[(ln, c, lines[ln - 1].strip()) for ln, c in unexpected]}; "
        f"missed {[(ln, c, lines[ln - 1].strip()) for ln, c in missed]}")


def test_every_rule_has_a_fixture_that_flags_it() -> None:
    texts = [p.read_text(encoding="utf-8") for p in FIXTURES.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    flagged = {code for text in texts for _, code in expectations(text)}
    flagged |= {"MLC130"}  # snapshotted by test_docstring_coverage_* (a single project-wide finding)
    assert set(DOC_CODES) <= flagged, sorted(set(DOC_CODES) - flagged)


# -- fixes -----------------------------------------------------------------------------------

def fix_all(source: str, path: str, code: str, safety: str) -> str:
    """Apply every fix of ``code`` with the given safety, as the engine would in one round."""
    findings = lint(source, path, [code])
    edits = [e for f in findings if f.fix is not None and f.fix.safety == safety for e in f.fix.edits]
    assert edits, f"{code} offered no {safety} fix"
    return apply_edits(source, edits)


@pytest.mark.parametrize("code", FIXABLE)
def test_fix_output(code: str) -> None:
    """``MLCnnn.py`` with every fix of its rule applied is ``MLCnnn.fixed.py``, and the fix is idempotent."""
    safety = REGISTRY[code].fix_safety
    path = f"{code}.py"
    source = (FIXTURES / path).read_text(encoding="utf-8")
    expected = (FIXTURES / f"{code}.fixed.py").read_text(encoding="utf-8")
    findings = lint(source, path, [code])
    fixed = fix_all(source, path, code, safety)
    assert fixed == expected
    libcst.parse_module(fixed)  # still parses
    remaining = lint(fixed, path, [code])
    assert all(f.fix is None for f in remaining), "fix is not idempotent: it fires again"
    # What is left is exactly what had no fix to offer, still reported the same way.
    unfixable = [f for f in findings if f.fix is None or f.fix.safety != safety]
    assert sorted(f.message for f in remaining) == sorted(f.message for f in unfixable)
    if code == "MLC113":
        assert remaining == []


def test_mlc113_fix_is_declared_safe_and_mlc110_unsafe() -> None:
    assert REGISTRY["MLC113"].fix_safety == "safe"
    assert REGISTRY["MLC110"].fix_safety == "unsafe"
    findings = lint((FIXTURES / "MLC110.py").read_text(encoding="utf-8"), "x.py", ["MLC110"])
    assert {f.fix.safety for f in findings if f.fix} == {"unsafe"}
    # The ambiguous case (two undocumented parameters) is reported without a fix.
    assert any(f.fix is None and "`old`" in f.message for f in findings)
    # So is a stale name that does not look like the undocumented parameter.
    assert any(f.fix is None and "`max_num_bins`" in f.message and "renamed" not in f.message for f in findings)


def test_no_fix_inside_a_docstring_with_escapes() -> None:
    source = 'def f(lr=0.1):\n    """Train \\t.\n\n    Args:\n        lr: Rate. Defaults to 0.2.\n    """\n'
    (finding,) = lint(source, "x.py", ["MLC113"])
    assert finding.fix is None and finding.line == 5


# -- messages --------------------------------------------------------------------------------

def test_messages_name_the_object_the_parameter_and_the_values() -> None:
    def messages(code: str) -> list[str]:
        return [f.message for f in lint((FIXTURES / f"{code}.py").read_text(encoding="utf-8"), f"{code}.py", [code])]

    assert any("`google_drift`" in m and "`lr`" in m and "1e-3" in m and "3e-4" in m for m in messages("MLC113"))
    assert any("`renamed`" in m and "`lr`" in m and "learning_rate" in m for m in messages("MLC110"))
    assert any("`out_of_order`" in m and "documents `width` before `height`" in m for m in messages("MLC112"))


# -- project rules: inheritance, coverage, README code blocks --------------------------------

def lint_project(root: Path, codes: list[str], settings: Settings | None = None) -> list:
    settings = settings or Settings()
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))
    facts: dict[str, dict] = {c: {} for c in codes}
    out = []
    for rel in files:
        ctx = FileContext.from_source((root / rel).read_text(encoding="utf-8"), rel, settings)
        for code in codes:
            rule = REGISTRY[code]()
            if isinstance(rule, ProjectRule):
                facts[code][rel] = json.loads(json.dumps(rule.collect(ctx)))
            else:
                out += list(rule.check(ctx))
    project = ProjectContext(root, settings, files, facts)
    for code in codes:
        rule = REGISTRY[code]()
        if isinstance(rule, ProjectRule):
            out += list(rule.check_project(project))
    return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "project", root)
    return root


def project_expectations(root: Path, codes: set[str]) -> set[tuple[str, int, str]]:
    out = set()
    for p in root.rglob("*"):
        if p.is_file() and p.suffix in (".py", ".md", ".rst"):
            out |= {(p.relative_to(root).as_posix(), line, code)
                    for line, code in expectations(p.read_text(encoding="utf-8")) if code in codes}
    return out


def test_project_snapshot(project: Path) -> None:
    codes = ["MLC103", "MLC140", "MLC141"]
    found = {(f.path, f.line, f.code) for f in lint_project(project, codes)}
    assert found == project_expectations(project, set(codes))


def test_readme_findings_point_into_the_markdown_block(project: Path) -> None:
    findings = [f for f in lint_project(project, ["MLC140", "MLC141"]) if f.path == "README.md"]
    lines = (project / "README.md").read_text(encoding="utf-8").splitlines()
    for f in findings:
        line = lines[f.line - 1]
        # The column points at the offending name or keyword on that markdown line.
        word = re.match(r"[A-Za-z_][\w.]*", line[f.col:])
        assert word and word.group(0).split(".")[0] in f.message.replace("`", " ") + " mypkg", (f, line)
    assert any("build_resnet" in f.message and "mypkg.models" in f.message for f in findings)
    assert any("learning_rate" in f.message and "lr" in f.message for f in findings)


def test_rst_console_block_column_skips_the_prompt(project: Path) -> None:
    findings = [f for f in lint_project(project, ["MLC141"]) if f.path == "docs/usage.rst"]
    (finding,) = findings
    line = (project / "docs/usage.rst").read_text(encoding="utf-8").splitlines()[finding.line - 1]
    assert line[finding.col:].startswith("steps=")


def test_readme_rules_see_a_renamed_function_once_fixed(project: Path) -> None:
    readme = project / "README.md"
    text = readme.read_text(encoding="utf-8")
    fixed = "\n".join(line for line in text.splitlines() if "expect: MLC14" not in line) + "\n"
    readme.write_text(fixed, encoding="utf-8")
    for name in ("docs/usage.rst", "docs/guide.md"):
        (project / name).unlink()
    assert lint_project(project, ["MLC140", "MLC141"]) == []


@pytest.mark.parametrize("lazy", [
    '"""Lazy."""\n\n\ndef __getattr__(name):\n    """Import lazily."""\n    raise AttributeError(name)\n',
    '"""Lazy."""\nimport sys\n\nsys.modules[__name__] = _LazyModule(__name__, globals()["__file__"])\n',
], ids=["module-getattr", "lazy-module"])
def test_readme_rules_treat_lazy_modules_as_defining_anything(project: Path, lazy: str) -> None:
    before = lint_project(project, ["MLC140"])
    assert any("build_resnet" in f.message for f in before)
    (project / "mypkg/models/__init__.py").write_text(lazy)
    findings = lint_project(project, ["MLC140"])
    assert not any("build_resnet" in f.message for f in findings)


def test_inherited_documentation_is_resolved_across_files(project: Path) -> None:
    findings = lint_project(project, ["MLC103"])
    names = {f.message.split("`")[1] for f in findings}
    assert "Trainer.fit" not in names and "Trainer.evaluate" in names
    (project / "mypkg/base.py").write_text('"""Base."""\n\n\nclass BaseTrainer:\n    """Base."""\n\n'
                                           '    def fit(self, data):\n        raise NotImplementedError\n')
    names = {f.message.split("`")[1] for f in lint_project(project, ["MLC103"])}
    assert {"Trainer.fit", "BaseTrainer.fit"} <= names


def test_docstring_coverage_below_threshold(project: Path) -> None:
    (finding,) = lint_project(project, ["MLC130"], Settings(docstring_coverage=90.0))
    assert finding.code == "MLC130" and finding.line == 1
    # 17 public objects, 15 documented (Trainer.fit inherits BaseTrainer.fit's docs).
    assert "88.2%" in finding.message and "15 of 17" in finding.message and "90%" in finding.message
    assert finding.path in finding.message and finding.path in {"mypkg/train.py", "mypkg/models/factory.py"}


def test_docstring_coverage_at_or_above_threshold(project: Path) -> None:
    assert lint_project(project, ["MLC130"], Settings(docstring_coverage=80.0)) == []


# -- public-API settings ---------------------------------------------------------------------

def test_public_api_all_ignores_underscores_and_dunder_all() -> None:
    source = '__all__ = ["a"]\n\n\ndef a():\n    pass\n\n\ndef b():\n    pass\n'
    found = {f.message.split("`")[1] for f in lint(source, "pkg/_x.py", ["MLC103"], Settings(public_api="all"))}
    assert found == {"a", "b"}
    found = {f.message.split("`")[1] for f in lint(source, "pkg/x.py", ["MLC103"],
                                                   Settings(public_api="underscore"))}
    assert found == {"a", "b"}
    found = {f.message.split("`")[1] for f in lint(source, "pkg/x.py", ["MLC103"])}
    assert found == {"a"}


def test_convention_setting_restricts_the_parser() -> None:
    source = 'def f(a):\n    """F.\n\n    Args:\n        b: B.\n    """\n'
    assert [f.code for f in lint(source, "x.py", ["MLC110"])] == ["MLC110"]
    assert lint(source, "x.py", ["MLC110"], Settings(docstring_convention="numpy")) == []


# -- rule documentation ----------------------------------------------------------------------

ISSUE_DEFAULTS = {"MLC101": "off", "MLC102": "on", "MLC103": "on", "MLC110": "on", "MLC111": "on",
                  "MLC112": "on", "MLC113": "on", "MLC114": "off", "MLC120": "on", "MLC121": "off",
                  "MLC130": "off", "MLC140": "on", "MLC141": "on", "MLC150": "off",
                  # issue 16: MLC160 off (a documented exception usually comes from a call; 6 on
                  # timm, all of that kind), MLC161 on, MLC162 off as the issue asks.
                  "MLC160": "off", "MLC161": "on", "MLC162": "off"}


def test_rules_match_the_issue_table_and_are_documented() -> None:
    assert DOC_CODES == sorted(ISSUE_DEFAULTS)
    for code in DOC_CODES:
        rule = REGISTRY[code]
        assert rule.default == ISSUE_DEFAULTS[code], code
        assert re.fullmatch(r"[a-z]+(-[a-z]+)+", rule.name), code
        assert rule.summary and "\n" not in rule.summary
        doc = rule.documentation()
        headings = ["What it does:", "Why is this bad?", "Example:", "Use instead:"]
        headings += ["Fix safety:"] if rule.fix_safety else []
        positions = [doc.find(h) for h in headings]
        assert all(p >= 0 for p in positions) and positions == sorted(positions), (code, headings, positions)


# -- robustness ------------------------------------------------------------------------------

ALL_PER_FILE = [c for c in DOC_CODES if c not in ("MLC130", "MLC140", "MLC141")]


_DOC_PIECES = list("abxy_ :,()[]{}'\"`*\\\n\t-=.0123456789eE") + [
    "Args:", "Defaults to ", "default ", "default: ", "Returns:", "----", ":param ", ":type a: ", "If ",
    "\n    ", "\n        ", "None", "True", ">>> ", "optional", "*args", "**kw"]


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=200),
                      st.lists(st.sampled_from(_DOC_PIECES), max_size=60).map("".join)),
       header=st.sampled_from(["Args:", "Parameters\n    ----------", ":param a:", "Returns:", "Yields:",
                               "Keyword Args:", "Args:\n\t\ta (int", ""]))
def test_rules_never_raise_on_arbitrary_docstrings(body: str, header: str) -> None:
    text = f"{header}\n        {body}".replace("\\", "\\\\").replace('"""', "'''")
    source = f'def f(a, b=1e-3, *args, c=None, **kw) -> "Tensor":\n    """Doc.\n\n    {text}\n    """\n    return a\n'
    try:
        ast.parse(source)  # the engine's gate: what CPython refuses is MLC000, not a rule input
    except (SyntaxError, ValueError):
        return
    lint(source, "pkg/mod.py", ALL_PER_FILE)
    parse_docstring(text)


@pytest.mark.parametrize("code", ["", "\n", "x = 1\n", "class A: pass\n", "def f(): pass\n",
                                  "async def g(a, /, b, *, c): yield\n", "lambda: 0\n",
                                  "@dec\nclass B:\n    '''B.'''\n    def __init__(self): ...\n"])
def test_rules_accept_minimal_modules(code: str) -> None:
    lint(code, "m.py", DOC_CODES)


# -- the docstring parser --------------------------------------------------------------------

def test_detect_style() -> None:
    assert detect_style("Sum.\n\n    Args:\n        a: A.\n") == "google"
    assert detect_style("Sum.\n\n    Parameters\n    ----------\n    a : int\n") == "numpy"
    assert detect_style("Sum.\n\n    :param a: A.\n") == "sphinx"
    assert detect_style("Just a sentence: with a colon.") == "none"


def test_google_continuation_lines_and_defaults() -> None:
    doc = parse_docstring("X.\n\n    Args:\n        lr (float, optional): Rate. Note: long\n"
                          "            line: still lr. Defaults to\n            1e-3.\n        b: B.\n")
    assert [p.name for p in doc.params] == ["lr", "b"]
    assert doc.params[0].type == "float, optional"
    assert doc.params[0].default.text == "1e-3" and doc.params[0].default.line == 5


def test_numpy_multiple_names_and_type_defaults() -> None:
    doc = parse_docstring("X.\n\n    Parameters\n    ----------\n    x, y : float\n        C.\n"
                          "    lr : float, default 1e-3\n        R.\n    *args\n        More.\n")
    assert [(p.name, p.raw_name) for p in doc.params] == [("x", "x"), ("y", "y"), ("lr", "lr"), ("args", "*args")]
    assert doc.params[2].default.text == "1e-3"


def test_sphinx_fields() -> None:
    doc = parse_docstring(":param int a: A (default: 3).\n    :param b: B.\n    :type b: str\n    :returns: S.\n")
    assert [(p.name, p.type, p.default.text if p.default else None) for p in doc.params] == [
        ("a", "int", "3"), ("b", "str", None)]
    assert doc.returns_line == 3


@pytest.mark.parametrize(("documented", "actual", "same"), [
    ("1e-3", "0.001", True), ("1E-03", "1e-3", True), ("0", "0.0", True), ("-1", "-1", True),
    ("(1, 2)", "[1, 2]", True), ("'mean'", '"mean"', True), ("None", "None", True), ("True", "True", True),
    ("1e-3", "3e-4", False), ("'mean'", "'sum'", False), ("False", "'both'", False), ("0.1", "0.", False),
    ("(1, 2)", "(1, 2, 3)", False), ("{'a': 1}", "{'a': 1}", True), ("1", "'1'", True),
    ("'auto '", "'auto'", True), ("2", "'1'", False), ("True", "'True'", False),
])
def test_values_compare_as_values(documented: str, actual: str, same: bool) -> None:
    a, b = literal_value(documented), literal_value(actual)
    assert a is not UNKNOWN and b is not UNKNOWN
    assert same_value(a, b) is same


@pytest.mark.parametrize("text", ["nn.ReLU", "os.cpu_count()", "the number of cores", "x + 1", "[i for i in x]",
                                  "b'bytes'", "f'{x}'", "lambda: 0", ""])
def test_non_literals_are_unknown(text: str) -> None:
    assert literal_value(text) is UNKNOWN


def test_requires_text_never_hides_an_expected_finding() -> None:
    """The engine skips a file without any ``requires_text`` substring: never a flagged one."""
    for path in FIXTURES.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for _, code in expectations(text):
            needles = REGISTRY[code].requires_text
            assert not needles or any(n in text for n in needles), (path.name, code, needles)
    # A file holding only a dataclass still gets its docstring checked.
    source = ('import dataclasses\n\n\n@dataclasses.dataclass\nclass C:\n    """C.\n\n    Args:\n'
              '        old: Old.\n    """\n\n    new: int = 1\n')
    assert [f.code for f in lint(source, "c.py", ["MLC110"])] == ["MLC110"]
    assert any(n in source for n in REGISTRY["MLC110"].requires_text)


def test_raises_match_through_a_subclass_defined_in_another_file(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('"""Pkg."""\n')
    (tmp_path / "pkg" / "errors.py").write_text('"""Errors."""\n\n\nclass ShapeError(ValueError):\n'
                                                 '    """Bad shape."""\n')
    (tmp_path / "pkg" / "ops.py").write_text(
        '"""Ops."""\nfrom .errors import ShapeError\n\n\ndef op(x):\n    """Op.\n\n    Raises:\n'
        '        ValueError: If x is bad.\n    """\n    raise ShapeError(x)\n\n\n'
        'def other(x):\n    """Other.\n\n    Raises:\n        KeyError: Never.\n    """\n'
        '    raise ShapeError(x)\n')
    found = sorted((f.code, f.line) for f in lint_project(tmp_path, ["MLC160", "MLC161"]))
    # op: ShapeError derives from the documented ValueError (defined in errors.py).
    assert found == [("MLC160", 18), ("MLC161", 20)]
