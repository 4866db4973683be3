"""The engine: discovery, parse once, MLC000, rule crashes, project rules, text files,
suppression, selection, fixes, and identical results with one or two processes."""

from __future__ import annotations

import json

import pytest
from lint_engine_testkit import project, run_cli, run_json, test_rules, write  # noqa: F401

from mlcheck_lint import engine

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
    assert code == 0 and out == ""


def test_diff_shows_fixes_and_changes_nothing(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():\n    print(1)\n"})
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC992", "--diff", ".")
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
