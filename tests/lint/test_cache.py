"""The per-file cache: an unchanged file is not parsed again, an edited one is, and the
cache can be moved or turned off."""

from __future__ import annotations

import json

from lint_engine_testkit import project, run_cli, run_json, test_rules, write  # noqa: F401

from mlcheck_lint import engine

ARGS = ("--select", "MLC991,MLC992,MLC994", "--jobs", "1", ".")


def _counting(monkeypatch):
    parsed = []
    real = engine._parse
    monkeypatch.setattr(engine, "_parse", lambda text: parsed.append(text) or real(text))
    return parsed


def test_unchanged_files_are_not_parsed_and_edited_ones_are(project, test_rules, capsys, monkeypatch):
    write(project, {"a.py": "def bad_a():\n    pass\n", "b.py": "def bad_b():\n    pass\n",
                    "c.py": "def load():\n    print(1)\n"})
    parsed = _counting(monkeypatch)
    _, first = run_json(capsys, *ARGS)
    assert len(parsed) == 3 and first["summary"]["parsed"] == 3
    parsed.clear()
    _, second = run_json(capsys, *ARGS)
    assert parsed == [] and second["summary"]["cached"] == 3
    assert second["findings"] == first["findings"]
    write(project, {"b.py": "def bad_b():\n    print(2)\n"})
    _, third = run_json(capsys, *ARGS)
    assert parsed == ["def bad_b():\n    print(2)\n"]
    assert third["summary"]["parsed"] == 1 and third["summary"]["cached"] == 2
    assert [(f["path"], f["code"]) for f in third["findings"]] == [
        ("a.py", "MLC991"), ("b.py", "MLC991"), ("b.py", "MLC992"), ("c.py", "MLC992")]


def test_configuration_change_invalidates(project, test_rules, capsys, monkeypatch):
    write(project, {"a.py": "def bad_a():\n    print(1)\n"})
    parsed = _counting(monkeypatch)
    run_json(capsys, *ARGS)
    run_json(capsys, "--select", "MLC991", "--jobs", "1", ".")
    assert len(parsed) == 2  # a different rule set is a different cache key
    run_json(capsys, "--select", "MLC991", "--jobs", "1", ".")
    assert len(parsed) == 2


def test_no_cache_reads_and_writes_nothing(project, test_rules, capsys, monkeypatch):
    write(project, {"a.py": "def bad_a():\n    pass\n"})
    parsed = _counting(monkeypatch)
    run_json(capsys, "--no-cache", *ARGS)
    run_json(capsys, "--no-cache", *ARGS)
    assert len(parsed) == 2 and not (project / ".mlcheck-lint-cache").exists()


def test_cache_dir_is_relocatable_and_self_ignoring(project, test_rules, capsys, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "c"
    write(project, {"a.py": "def bad_a():\n    pass\n"})
    run_json(capsys, "--cache-dir", str(elsewhere), *ARGS)
    assert not (project / ".mlcheck-lint-cache").exists()
    assert (elsewhere / ".gitignore").read_text().splitlines()[-1] == "*"
    assert (elsewhere / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55\n")
    stored = [p for p in elsewhere.glob("*.json")]
    assert len(stored) == 1 and "a.py" in json.loads(stored[0].read_text())["files"]
    _, data = run_json(capsys, "--cache-dir", str(elsewhere), *ARGS)
    assert data["summary"]["cached"] == 1
    (project / "pyproject.toml").write_text('[tool.mlcheck.lint]\ncache-dir = "tmp/lint"\n')
    run_json(capsys, *ARGS)
    assert list((project / "tmp" / "lint").glob("*.json"))


def test_a_crashing_rule_result_is_not_cached(project, test_rules, capsys):
    write(project, {"a.py": "CRASH = 1\n"})
    assert run_cli(capsys, "--select", "MLC993", ".")[0] == 2
    assert run_cli(capsys, "--select", "MLC993", ".")[0] == 2  # still reported, not hidden by the cache


def test_corrupt_cache_is_ignored(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():\n    pass\n"})
    run_json(capsys, *ARGS)
    for path in (project / ".mlcheck-lint-cache").glob("*.json"):
        path.write_text("{not json")
    code, data = run_json(capsys, *ARGS)
    assert code == 1 and data["summary"]["parsed"] == 1
