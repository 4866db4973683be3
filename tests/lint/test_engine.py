"""The engine: discovery, parse once, MLC000, rule crashes, project rules, text files,
suppression, selection, fixes, and identical results with one or two processes."""

from __future__ import annotations

import re

import json
import os
import shutil
from pathlib import Path

import pytest
from lint_engine_testkit import project, run_cli, run_json, test_rules, write  # noqa: F401

from mlcheck_lint import api, engine
from mlcheck_lint.config import ConfigError, load_config

SEL = "MLC99"


def codes(data):
    return [(f["path"], f["line"], f["code"]) for f in data["findings"]]


def test_each_file_is_parsed_once_for_all_rules(project, test_rules, capsys, monkeypatch):
    write(project, {"a.py": "def bad_one():\n    print(1)\n", "b.py": "def bad_two():\n    pass\n"})
    calls = []
    real = engine._parse
    monkeypatch.setattr(engine, "_parse", lambda text: calls.append(text) or real(text))
    code, data = run_json(capsys, "--select", "MLC991,MLC992,MLC994", "--jobs", "1", "--no-cache", ".")
    assert code == 1
    assert len(calls) == 2  # two files, three rules: one parse each
    assert codes(data) == [("a.py", 1, "MLC991"), ("a.py", 2, "MLC992"), ("b.py", 1, "MLC991")]


def test_requires_text_skips_parsing(project, test_rules, capsys, monkeypatch):
    write(project, {"a.py": "def fine():\n    pass\n"})
    calls = []
    real = engine._parse
    monkeypatch.setattr(engine, "_parse", lambda text: calls.append(text) or real(text))
    code, data = run_json(capsys, "--select", "MLC991", "--jobs", "1", "--no-cache", ".")
    assert code == 0 and data["findings"] == [] and calls == []


@pytest.mark.parametrize("content, reason, line, col", [
    ("def f(:\n    pass\n", "syntax error", 1, 6),
    ("x = 1\ny = \x00\n".encode(), "binary file: NUL byte", 2, 4),
    ("x = 1\ns = 'caf\xe9'\n".encode("latin-1"), "cannot decode as utf-8", 2, 8),
    ("# -*- coding: klingon -*-\nx = 1\n".encode(), "unknown encoding: klingon", 1, 0),
])
def test_unreadable_file_is_one_mlc000_and_the_run_continues(project, test_rules, capsys,
                                                            content, reason, line, col):
    write(project, {"bad.py": content, "good.py": "def bad_x():\n    pass\n"})
    code, data = run_json(capsys, "--select", "MLC000,MLC991", "--no-cache", ".")
    assert code == 1
    bad = [f for f in data["findings"] if f["path"] == "bad.py"]
    assert len(bad) == 1 and bad[0]["code"] == "MLC000", bad
    assert reason in bad[0]["message"]
    assert (bad[0]["line"], bad[0]["column"] - 1) == (line, col)
    assert [f["code"] for f in data["findings"] if f["path"] == "good.py"] == ["MLC991"]


def test_rule_crash_is_an_internal_error_naming_rule_and_file(project, test_rules, capsys):
    write(project, {"a.py": "CRASH = 1\ndef bad_a():\n    pass\n", "b.py": "def bad_b():\n    pass\n"})
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC993", "--no-cache", ".")
    assert code == 2
    assert "internal error in a.py" in err and "MLC993" in err and "Crashes.check" in err
    assert "RuntimeError: boom" in err
    # the other rule still ran on the crashing file, and the other file was linted
    assert "a.py:2:5: MLC991" in out and "b.py:1:5: MLC991" in out


def test_checked_code_is_never_imported_or_run(project, test_rules, capsys):
    marker = project / "ran.txt"
    write(project, {"evil.py": f"open({str(marker)!r}, 'w').write('x')\nimport sys\nsys.exit(3)\n"
                                "def bad_e():\n    pass\n"})
    code, data = run_json(capsys, "--select", "MLC991", "--no-cache", ".")
    assert code == 1 and not marker.exists()


def test_discovery_skips_default_excludes_but_checks_explicit_files(project, test_rules, capsys):
    body = "def bad_f():\n    pass\n"
    write(project, {"pkg/m.py": body, ".venv/lib/x.py": body, "build/x.py": body,
                    "node_modules/x.py": body, "pkg/__pycache__/x.py": body,
                    ".mlcheck-lint-cache/x.py": body, "dist/x.py": body, "notes.txt": "hi"})
    code, data = run_json(capsys, "--select", "MLC991", "--no-cache", ".")
    assert [f["path"] for f in data["findings"]] == ["pkg/m.py"]
    code, data = run_json(capsys, "--select", "MLC991", "--no-cache", "build/x.py", "pkg")
    assert [f["path"] for f in data["findings"]] == ["build/x.py", "pkg/m.py"]


def test_extend_exclude_and_exclude_from_config(project, test_rules, capsys):
    body = "def bad_f():\n    pass\n"
    write(project, {"a/m.py": body, "gen/m.py": body, "build/m.py": body})
    (project / "pyproject.toml").write_text('[tool.mlcheck.lint]\nextend-exclude = ["gen"]\n')
    _, data = run_json(capsys, "--select", "MLC991", "--no-cache", ".")
    assert [f["path"] for f in data["findings"]] == ["a/m.py"]
    (project / "pyproject.toml").write_text('[tool.mlcheck.lint]\nexclude = ["a"]\n')
    _, data = run_json(capsys, "--select", "MLC991", "--no-cache", ".")
    assert [f["path"] for f in data["findings"]] == ["build/m.py", "gen/m.py"]


def test_text_files_reach_text_rules_only(project, test_rules, capsys):
    write(project, {"requirements.txt": "numpy==2.0\ntorch\n# comment\n",
                    "requirements-dev.txt": "pytest\n", "docs/x.txt": "torch\n",
                    "m.py": "def bad_m():\n    pass\n"})
    code, data = run_json(capsys, "--select", "MLC991,MLC995", "--no-cache", ".")
    assert codes(data) == [("m.py", 1, "MLC991"), ("requirements-dev.txt", 1, "MLC995"),
                           ("requirements.txt", 2, "MLC995")]


def test_project_rule_sees_facts_of_every_file(project, test_rules, capsys):
    write(project, {"a.py": "def load():\n    pass\n", "b.py": "x = 1\n\n\ndef load():\n    pass\n"})
    code, data = run_json(capsys, "--select", "MLC994", "--no-cache", ".")
    assert code == 1
    assert [(f["path"], f["line"], f["message"]) for f in data["findings"]] == [
        ("b.py", 4, "`load` is also defined in a.py")]
    # facts come from the cache on a second run and give the same answer
    _, first = run_json(capsys, "--select", "MLC994", ".")
    _, second = run_json(capsys, "--select", "MLC994", ".")
    assert second["summary"]["cached"] == 2 and second["findings"] == first["findings"] == data["findings"]


def test_noqa_and_per_file_ignores(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():  # noqa: MLC991\n    print(1)  # noqa\n"
                            "def bad_b():  # noqa: MLC992\n    pass\n",
                    "tests/test_x.py": "def bad_t():\n    pass\n"})
    (project / "pyproject.toml").write_text(
        '[tool.mlcheck.lint]\nper-file-ignores = { "tests/*" = ["MLC99"] }\n')
    code, data = run_json(capsys, "--select", "MLC991,MLC992", "--no-cache", ".")
    assert codes(data) == [("a.py", 3, "MLC991")]
    assert data["summary"]["suppressed"] == 3


def test_unused_noqa_is_mlc001_only_when_selected(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():  # noqa: MLC991\n    pass\n"
                            "def ok():  # noqa: MLC991, E501\n    pass  # noqa\n"})
    _, data = run_json(capsys, "--select", "MLC991", "--no-cache", ".")
    assert data["findings"] == []
    code, data = run_json(capsys, "--select", "MLC991,MLC001", "--no-cache", ".")
    assert code == 1
    assert [(f["line"], f["code"], f["message"].split(":")[0]) for f in data["findings"]] == [
        (3, "MLC001", "unused `# noqa` code MLC991"), (4, "MLC001", "unused `# noqa`")]


def test_selection_prefixes_ignore_and_preview(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():\n    print(1)\n"})
    _, data = run_json(capsys, "--select", "MLC99", "--ignore", "MLC992", "--no-cache", ".")
    assert [f["code"] for f in data["findings"]] == ["MLC991"]  # preview MLC997 not by prefix
    _, data = run_json(capsys, "--select", "MLC991", "--extend-select", "MLC997", "--no-cache", ".")
    assert [f["code"] for f in data["findings"]] == ["MLC997", "MLC991"]
    # a longer (more specific) select beats a shorter ignore
    _, data = run_json(capsys, "--select", "MLC992", "--ignore", "MLC99", "--no-cache", ".")
    assert [f["code"] for f in data["findings"]] == ["MLC992"]


def test_jobs_1_and_jobs_2_give_identical_results(project, test_rules, capsys):
    files = {f"pkg/m{i}.py": f"def bad_{i}():\n    print({i})\n\n\ndef helper{i % 3}():\n    pass\n"
             for i in range(12)}
    files["pkg/broken.py"] = "def f(\n"
    files["requirements.txt"] = "torch\n"
    write(project, files)
    args = ("--select", "MLC000,MLC991,MLC992,MLC994,MLC995", "--no-cache", ".")
    code1, one = run_json(capsys, "--jobs", "1", *args)
    code2, two = run_json(capsys, "--jobs", "2", *args)
    assert code1 == code2 == 1
    assert one == two
    assert len(one["findings"]) == 12 * 2 + 1 + 1 + 9


def test_safe_fix_applies_is_idempotent_and_unsafe_needs_flag(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():\n    print(1)\n"})
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC992", "--fix", ".")
    assert (project / "a.py").read_text() == "def good_a():\n    print(1)\n"
    assert "Fixed 1 finding in 1 file" in err and code == 1 and "MLC992" in out
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC992", "--fix", ".")
    assert (project / "a.py").read_text() == "def good_a():\n    print(1)\n" and "Fixed 0" in err
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC992", "--fix", "--unsafe-fixes", ".")
    assert (project / "a.py").read_text() == "def good_a():\n    log(1)\n"
    assert code == 0 and "MLC99" not in out


def test_diff_shows_fixes_and_changes_nothing(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():\n    print(1)\n"})
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC992", "--diff", "--unsafe-fixes", ".")
    assert code == 1
    assert out == ("--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n-def bad_a():\n-    print(1)\n"
                   "+def good_a():\n+    log(1)\n")
    assert (project / "a.py").read_text() == "def bad_a():\n    print(1)\n"


def test_fix_that_breaks_the_file_is_refused(project, test_rules, capsys):
    write(project, {"a.py": "BREAK = 1\ndef f():\n    pass\n"})
    code, out, err = run_cli(capsys, "--select", "MLC996", "--fix", ".")
    assert (project / "a.py").read_text() == "BREAK = 1\ndef f():\n    pass\n"
    assert code == 1 and "MLC996" in out


def test_fixes_converge_when_several_apply_to_one_file(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():\n    def bad_b():\n        print(1)\n    print(2)\n"})
    run_cli(capsys, "--select", "MLC991,MLC992", "--fix", "--unsafe-fixes", ".")
    assert (project / "a.py").read_text() == "def good_a():\n    def good_b():\n        log(1)\n    log(2)\n"


def test_fast_positions_match_libcst_position_provider():
    import libcst
    from libcst.metadata import MetadataWrapper, PositionProvider

    from mlcheck_lint.positions import Positions

    source = ('"""Doc."""\r\n@dec\r\nasync def f(a, /, b: int = 1, *args, c, **kw) -> int:\r\n'
              '    """Text\r\n\r\n    more."""\r\n    return (a +\r\n            b)\r\n'
              'class C(Base):\r\n    x: int = 1\r\n    def m(self): return f"{self.x!r:>{3}}"')
    module = libcst.parse_module(source)
    fast = Positions(module, source).finish()
    ref = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    assert fast.exact
    for node, rng in ref.items():
        assert fast.get(node) == (rng.start.line, rng.start.column, rng.end.line, rng.end.column)
    assert json.dumps(len(ref)) and len(ref) > 50


def test_fix_keeps_encoding_and_line_endings(project, test_rules, capsys):
    original = "# -*- coding: latin-1 -*-\r\ns = 'caf\xe9'\r\ndef bad_a():\r\n    pass\r\n"
    write(project, {"a.py": original.encode("latin-1")})
    run_cli(capsys, "--select", "MLC991", "--fix", ".")
    assert (project / "a.py").read_bytes() == original.replace("bad_a", "good_a").encode("latin-1")


@pytest.mark.parametrize("pattern, path, expected", [
    ("build", "build", True), ("build", "src/build", True), ("*.egg-info", "x/y.egg-info", True),
    ("tests/*", "tests/test_a.py", True), ("tests/*", "src/tests/test_a.py", False),
    ("docs/**/*.md", "docs/index.md", True), ("docs/**/*.md", "docs/a/b.md", True),
    ("./gen/*.py", "gen/x.py", True), ("requirements*.txt", "ci/requirements-dev.txt", True),
    ("README.md", "README.rst", False),
])
def test_glob_semantics(pattern, path, expected):
    from mlcheck_lint.config import path_matches

    assert path_matches(pattern, path, path.rsplit("/", 1)[-1]) is expected


def test_unused_noqa_fix_removes_or_trims_the_comment(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():  # noqa: MLC991\n    pass\n"
                            "def ok():  # noqa: MLC991, E501\n    x = 1  # noqa\n"
                            "def fine():  # noqa: MLC992 - kept for the docs\n    pass\n"
                            "def bad_b():  # noqa: MLC991,MLC992\n    pass\n"})
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC001", "--fix", ".")
    assert (project / "a.py").read_text() == (
        "def bad_a():  # noqa: MLC991\n    pass\n"
        "def ok():  # noqa: E501\n    x = 1\n"
        "def fine():  # noqa: MLC992 - kept for the docs\n    pass\n"
        "def bad_b():  # noqa: MLC991\n    pass\n")
    assert code == 1 and out.splitlines() == ["a.py:5:14: MLC001 unused `# noqa` code MLC992: nothing to suppress here; remove it", "Found 1 finding."]


# -- two tiers of parse, one walk per tier ---------------------------------------------------

DOCS_FIXTURES = Path(__file__).parent / "fixtures" / "docs"


def _count_cst(monkeypatch):
    built = []
    real = engine._parse
    monkeypatch.setattr(engine, "_parse", lambda text: built.append(text) or real(text))
    return built


def test_no_libcst_tree_is_built_when_no_selected_rule_needs_one(tmp_path, monkeypatch, capsys):
    root = tmp_path / "tree"
    shutil.copytree(DOCS_FIXTURES, root)
    (root / "pyproject.toml").write_text('[project]\nname = "fixtures"\n')
    monkeypatch.chdir(root)
    built = _count_cst(monkeypatch)
    before = api.CST_BUILDS
    code, data = run_json(capsys, "--select", "ALL", "--jobs", "1", "--no-cache", ".")
    assert data["findings"], "the fixture tree must give findings, or this test proves nothing"
    assert built == [] and api.CST_BUILDS == before


def test_a_rule_that_needs_libcst_gets_one_tree_per_file(project, test_rules, capsys, monkeypatch):
    write(project, {"a.py": "def bad_a():\n    danger(1)\n", "b.py": "def fine():\n    pass\n"})
    built = _count_cst(monkeypatch)
    code, data = run_json(capsys, "--select", "MLC991,MLC983,MLC981", "--jobs", "1", "--no-cache", ".")
    assert codes(data) == [("a.py", 1, "MLC991"), ("a.py", 2, "MLC983")]
    assert len(built) == 1  # b.py passes no cst rule's prefilter: ast only


def test_fix_builds_no_tree_for_text_edit_fixes_and_one_per_fixed_file_otherwise(
        project, test_rules, monkeypatch):
    from mlcheck_lint import fixes

    docs = ('def f(lr=0.1):\n    """Train.\n\n    Args:\n        lr: Rate. Defaults to 0.2.\n    """\n'
            '    return lr\n')
    write(project, {"doc.py": docs, "a.py": "def bad_a():\n    pass\n", "b.py": "def bad_b():\n    pass\n",
                    "c.py": "def fine():\n    pass\n"})
    (project / "pyproject.toml").write_text('[tool.mlcheck.lint]\nselect = ["MLC113", "MLC991"]\n')
    config = load_config(project, list(api.REGISTRY))
    rules = engine.load_rules()
    built = _count_cst(monkeypatch)
    report = engine.run(["."], config, jobs=1, use_cache=False, rules=rules, fixing=True)
    assert len(built) == 2 == report.cst_builds  # a.py and b.py pass MLC991's prefilter; c.py, doc.py do not
    built.clear()
    fixes.fix_files(report, config, rules, unsafe=False, write=True)
    assert "Defaults to 0.1." in (project / "doc.py").read_text()  # a text edit: no tree for it
    assert (project / "a.py").read_text().startswith("def good_a")
    assert sorted(built) == ["def bad_a():\n    pass\n", "def bad_b():\n    pass\n"]  # one per fixed file


def test_jobs_1_and_jobs_2_agree_on_the_documentation_fixtures(tmp_path, monkeypatch, capsys):
    root = tmp_path / "tree"
    shutil.copytree(DOCS_FIXTURES, root)
    (root / "pyproject.toml").write_text('[project]\nname = "fixtures"\n')
    monkeypatch.chdir(root)
    _, one = run_json(capsys, "--select", "ALL", "--jobs", "1", "--no-cache", ".")
    _, two = run_json(capsys, "--select", "ALL", "--jobs", "2", "--no-cache", ".")
    assert one["findings"] == two["findings"] and len(one["findings"]) > 20


def test_ast_visitor_rules_share_one_walk_with_ancestors(project, test_rules, capsys, monkeypatch):
    write(project, {"a.py": "x = f(g(1))\n\n\ndef top():\n    h(k())\n    def inner():\n        m(n())\n",
                    "b.py": "y = 1\n"})
    walks = []
    real = engine.walk_ast
    monkeypatch.setattr(engine, "walk_ast", lambda ctx, rules, *a: walks.append(len(rules)) or real(ctx, rules, *a))
    code, data = run_json(capsys, "--select", "MLC981", "--jobs", "1", "--no-cache", ".")
    # g(...) inside f(...); k() inside h(...); inner's calls are hidden by visit_FunctionDef -> False
    assert [(f["line"], f["message"]) for f in data["findings"]] == [
        (1, "nested call at depth 3"), (5, "nested call at depth 4")]
    assert walks == [1]  # one walk for a.py; b.py fails the "(" prefilter


def test_visitor_project_rule_collects_after_the_walk(project, test_rules):
    from mlcheck_lint.api import FileContext, Settings

    rule = test_rules[7]()
    ctx = FileContext.from_source("def a():\n    f()\n\n\ndef b():\n    pass\n", "m.py", Settings())
    assert list(rule.check(ctx)) == [] and rule.collect(ctx) == ["a", "b"]


def test_a_handler_that_raises_is_an_internal_error_and_other_rules_still_run(project, test_rules, capsys,
                                                                               monkeypatch):
    rule = test_rules[7]
    monkeypatch.setattr(rule, "visit_Call", lambda self, node: 1 / 0)
    write(project, {"a.py": "def bad_a():\n    f(g())\n"})
    code, out, err = run_cli(capsys, "--select", "MLC981,MLC991", "--jobs", "1", "--no-cache", ".")
    assert code == 2 and "MLC981" in err and "ZeroDivisionError" in err and "a.py:1:5: MLC991" in out


def test_positions_of_ast_nodes_are_character_columns():
    from mlcheck_lint.api import FileContext

    ctx = FileContext.from_source("s = 'héllo wörld'; t = f(x)\n")
    call = ctx.tree.body[1].value
    assert ctx.position(call) == (1, 23, 1, 27)
    assert ctx.source[23:27] == "f(x)" and ctx.segment(call) == "f(x)"
    assert ctx.edit(call.func, "g").start_col == 23


def test_progress_is_reported_with_cache_hits(project, test_rules, monkeypatch):
    write(project, {f"m{i}.py": "def bad_x():\n    pass\n" for i in range(4)})
    config = load_config(project, list(api.REGISTRY))
    calls = []
    engine.run(["."], config, jobs=1, rules=engine.load_rules(), progress=lambda *a: calls.append(a))
    total = calls[0][1]
    assert total >= 4 and calls[0] == (0, total, 0) and calls[-1] == (total, total, 0)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    calls.clear()
    engine.run(["."], config, jobs=1, rules=engine.load_rules(), progress=lambda *a: calls.append(a))
    assert calls == [(total, total, total)]


# -- families and options ----------------------------------------------------------------------

def test_a_misspelt_family_fails_loudly(monkeypatch):
    monkeypatch.setattr(api, "FAMILIES", ("docs", "smels"))
    with pytest.raises(api.FamilyError, match="'smels'.*does not exist"):
        engine.load_rules()


def test_a_broken_family_fails_loudly_naming_it(monkeypatch, tmp_path):
    import sys

    import mlcheck_lint.rules as rules_pkg

    (tmp_path / "brokenfam").mkdir()
    (tmp_path / "brokenfam" / "__init__.py").write_text("raise RuntimeError('half-written rule')\n")
    monkeypatch.setattr(rules_pkg, "__path__", [*rules_pkg.__path__, str(tmp_path)])
    monkeypatch.setattr(api, "FAMILIES", ("docs", "brokenfam"))
    monkeypatch.delitem(sys.modules, "mlcheck_lint.rules.brokenfam", raising=False)
    with pytest.raises(api.FamilyError, match="'brokenfam'.*failed to import: RuntimeError: half-written"):
        engine.load_rules()


@pytest.mark.parametrize("toml, key, reason", [
    ('docstring-convention = "epytext"', "docstring-convention", "'epytext' is not one of google"),
    ("docstring-coverage = true", "docstring-coverage", "expected a number, got True"),
    ('public-api = ["all"]', "public-api", "expected str"),
    ("packages = [1]", "packages", "expected a list of strings"),
    ('packages = ["my-pkg"]', "packages", "'my-pkg' is not a package name"),
    ('docstring-conventoin = "google"', "docstring-conventoin", "unknown key; valid keys:"),
    ("max-file-size = -1", "max-file-size", "not a positive number of bytes"),
])
def test_family_options_are_validated_from_their_declaration(project, toml, key, reason):
    (project / "pyproject.toml").write_text(f"[tool.mlcheck.lint]\n{toml}\n")
    with pytest.raises(ConfigError) as info:
        load_config(project, list(api.REGISTRY))
    assert str(project / "pyproject.toml") in str(info.value) and key in str(info.value)
    assert reason in str(info.value)


def test_options_reach_rules_by_key_and_attribute(project):
    (project / "pyproject.toml").write_text('[tool.mlcheck.lint]\ndocstring-coverage = 90\n'
                                            'public-api = "all"\n')
    settings = load_config(project, list(api.REGISTRY)).settings
    assert settings.option("docstring-coverage") == 90.0 and settings.docstring_coverage == 90.0
    assert settings.public_api == "all" and settings.docstring_convention == "auto"
    with pytest.raises(KeyError, match="no rule family declares an option 'nope'"):
        settings.option("nope")


@pytest.mark.parametrize("toml, where", [
    ('tool = ["x"]\n', "[tool]"),
    ('[tool]\nmlcheck = "x"\n', "[tool.mlcheck]"),
    ('[tool.mlcheck]\nlint = 3\n', "[tool.mlcheck.lint]"),
])
def test_config_of_the_wrong_shape_is_a_clear_error(project, toml, where):
    (project / "pyproject.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(project, list(api.REGISTRY))
    assert where in str(info.value) and "must be a table" in str(info.value)


# -- hostile input -----------------------------------------------------------------------------

def _mlc000(data, path):
    return [f["message"] for f in data["findings"] if f["path"] == path and f["code"] == "MLC000"]


def test_input_cpython_refuses_is_mlc000_and_never_reaches_libcst(project, test_rules, capsys, monkeypatch):
    write(project, {"nested.py": "x = " + "[" * 2000 + "]" * 2000 + "\ndef bad_x(): pass\n",
                    "sum.py": "y = " + " + ".join(["a"] * 5000) + "\ndef bad_y(): pass\n",
                    "ok.py": "def bad_ok():\n    pass\n"})
    built = _count_cst(monkeypatch)
    code, data = run_json(capsys, "--select", "MLC000,MLC991", "--jobs", "1", "--no-cache", ".")
    assert "too many nested parentheses" in _mlc000(data, "nested.py")[0]
    # CPython >= 3.11 refuses the flat sum itself; 3.10 parses it and libcst's depth
    # guard refuses it (the ast rules still ran).
    assert re.search(r"nested too deeply|nested more than \d+ levels", _mlc000(data, "sum.py")[0])
    assert built == ["def bad_ok():\n    pass\n"]


def test_a_tree_too_deep_for_libcst_is_mlc000_and_ast_rules_still_run(project, test_rules, capsys):
    write(project, {"deep.py": "y = f(" + " + ".join(["a"] * 800) + ")\ndef bad_y(): g(h())\n"})
    code, data = run_json(capsys, "--select", "MLC000,MLC991,MLC981", "--jobs", "1", "--no-cache", ".")
    messages = _mlc000(data, "deep.py")
    assert len(messages) == 1 and "too deep for the concrete-tree rules" in messages[0]
    assert [f["code"] for f in data["findings"] if f["code"] != "MLC000"] == ["MLC981"]


def test_file_size_cap_is_a_setting(project, test_rules, capsys):
    write(project, {"big.py": "x = '" + "a" * 5000 + "'\ndef bad_b(): pass\n", "small.py": "def bad_s(): pass\n"})
    (project / "pyproject.toml").write_text("[tool.mlcheck.lint]\nmax-file-size = 4096\n")
    code, data = run_json(capsys, "--select", "MLC000,MLC991", "--no-cache", ".")
    assert "too large" in _mlc000(data, "big.py")[0] and "max-file-size" in _mlc000(data, "big.py")[0]
    assert [f["path"] for f in data["findings"] if f["code"] == "MLC991"] == ["small.py"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_reported_not_read(project, test_rules, capsys):
    os.mkfifo(project / "x.py")
    write(project, {"ok.py": "def bad_ok(): pass\n"})
    code, data = run_json(capsys, "--select", "MLC000,MLC991", "--no-cache", ".")
    assert "not a regular file" in _mlc000(data, "x.py")[0]
    assert [f["path"] for f in data["findings"] if f["code"] == "MLC991"] == ["ok.py"]


def test_a_worker_crash_is_mlc000_for_that_file_and_the_run_continues(project, test_rules, capsys,
                                                                        monkeypatch):
    files = {f"m{i}.py": f"def bad_{i}(): pass\n" for i in range(6)}
    files["boom.py"] = "SEGFAULT = 1\ndef bad_boom(): pass\n"
    write(project, files)
    code, data = run_json(capsys, "--select", "MLC000,MLC991,MLC982", "--jobs", "2", "--no-cache", ".")
    assert "worker process died on this file" in _mlc000(data, "boom.py")[0]
    assert sorted(f["path"] for f in data["findings"] if f["code"] == "MLC991") == [f"m{i}.py" for i in range(6)]


def test_a_symlink_leaving_the_project_is_not_followed(project, test_rules, capsys, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.py").write_text("def bad_secret(): pass\n")
    (outside / "pkg").mkdir()
    (outside / "pkg" / "m.py").write_text("def bad_m(): pass\n")
    write(project, {"ok.py": "def bad_ok(): pass\n", "inner.py": "def bad_in(): pass\n"})
    os.symlink(outside / "secret.py", project / "link.py")
    os.symlink(outside / "pkg", project / "linkdir")
    os.symlink(project / "inner.py", project / "alias.py")  # inside the project: followed
    code, data = run_json(capsys, "--select", "MLC000,MLC991", "--no-cache", ".")
    assert "symlink to" in _mlc000(data, "link.py")[0] and "not followed" in _mlc000(data, "link.py")[0]
    assert "outside the project root" in _mlc000(data, "linkdir")[0]
    assert sorted(f["path"] for f in data["findings"] if f["code"] == "MLC991") == ["alias.py", "inner.py", "ok.py"]
    code, data = run_json(capsys, "--select", "MLC000,MLC991", "--fix", "--no-cache", "link.py")
    assert (outside / "secret.py").read_text() == "def bad_secret(): pass\n"
    assert "not followed" in _mlc000(data, "link.py")[0]


def test_fix_edits_are_never_taken_from_the_cache(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():\n    pass\n"})
    run_json(capsys, "--select", "MLC991", ".")  # fills the cache
    cache_file = next((project / ".mlcheck-lint-cache").glob("*.json"))
    payload = json.loads(cache_file.read_text())
    entry = payload["files"]["a.py"]
    entry["findings"][0]["fix"]["edits"] = [[1, 0, 2, 8, "import os; os.system('evil')\n"]]
    cache_file.write_text(json.dumps(payload))
    config = load_config(project, list(api.REGISTRY))
    report = engine.run(["."], config, jobs=1, rules=engine.load_rules(), fixing=True)
    (finding,) = [f for f in report.findings if f.code == "MLC991"]
    assert [e.text for e in finding.fix.edits] == ["good_a"] and "a.py" not in report.from_cache


def test_cr_only_file_gets_mlc113(project):
    source = 'def f(lr=0.1):\r    """Train.\r\r    Args:\r        lr: Rate. Defaults to 0.2.\r    """\r    return lr\r'
    (project / "cr.py").write_bytes(source.encode())
    report = engine.run(["."], load_config(project, list(api.REGISTRY)), jobs=1, use_cache=False,
                        rules=engine.load_rules())
    assert [(f.code, f.line) for f in report.findings if f.code == "MLC113"] == [("MLC113", 5)]


def test_readme_with_a_bad_byte_still_gets_mlc140(project):
    write(project, {"mypkg/__init__.py": '"""Pkg."""\n', "mypkg/core.py": '"""Core."""\n'})
    (project / "README.md").write_bytes(b"caf\xff\n\n```python\nfrom mypkg.core import gone\n```\n")
    report = engine.run(["."], load_config(project, list(api.REGISTRY)), jobs=1, use_cache=False,
                        rules=engine.load_rules())
    assert not report.errors
    assert [(f.path, f.line, f.code) for f in report.findings if f.code.startswith("MLC14")] == [
        ("README.md", 4, "MLC140")]


def test_explicit_file_without_py_suffix_is_linted(project, test_rules, capsys):
    write(project, {"script": "def bad_s(): pass\n"})
    code, data = run_json(capsys, "--select", "MLC991", "--no-cache", "script")
    assert codes(data) == [("script", 1, "MLC991")]
