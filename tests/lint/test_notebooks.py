"""Notebooks: code cells are linted with IPython syntax blanked; findings say which cell."""

from __future__ import annotations

import json

from lint_engine_testkit import notebook, project, run_cli, run_json, test_rules, write  # noqa: F401

from mlcheck_lint.notebooks import blank_magics

NB = notebook(
    ("markdown", "# Train\nprint('not code')\n"),
    ("code", "%matplotlib inline\n!pip install torch\nfiles = !ls\nimport os\n"),
    ("code", "%%bash\necho bad_shell()\n"),
    ("code", "def bad_plot():\n    %time x = 1\n    print(os.name)\nbad_plot?\n"),
)


def test_magics_are_blanked_keeping_lines_and_columns():
    assert blank_magics("%time x\n  !ls \\\n  -l\nx = 1\nfiles = !ls\nobj?\n") == (
        "pass\n  pass\n\nx = 1\npass\npass\n")
    assert blank_magics("%%bash\necho hi\n") is None


def test_findings_are_located_by_cell(project, test_rules, capsys):
    write(project, {"train.ipynb": NB})
    code, out, _ = run_cli(capsys, "--select", "MLC000,MLC991,MLC992", "--no-cache", ".")
    assert code == 1
    assert out.splitlines()[:2] == ["train.ipynb:cell 4:1:5: MLC991 [*] function `bad_plot` is bad",
                                    "train.ipynb:cell 4:3:5: MLC992 print call"]


def test_syntax_error_in_one_cell_does_not_hide_the_others(project, test_rules, capsys):
    write(project, {"n.ipynb": notebook(("code", "def f(:\n"), ("code", "print(1)\n"))})
    _, data = run_json(capsys, "--select", "MLC000,MLC992", "--no-cache", ".")
    assert [(f["code"], f["cell"], f["line"]) for f in data["findings"]] == [
        ("MLC000", 1, 1), ("MLC992", 2, 1)]


def test_invalid_notebook_is_mlc000(project, test_rules, capsys):
    write(project, {"n.ipynb": '{"cells": [', "m.ipynb": '{"nbformat": 4}'})
    _, data = run_json(capsys, "--select", "MLC000", "--no-cache", ".")
    assert [(f["path"], f["code"]) for f in data["findings"]] == [("m.ipynb", "MLC000"), ("n.ipynb", "MLC000")]
    assert "no 'cells' list" in data["findings"][0]["message"]
    assert "not a valid notebook" in data["findings"][1]["message"]


def test_noqa_in_a_cell(project, test_rules, capsys):
    write(project, {"n.ipynb": notebook(("code", "print(1)  # noqa: MLC992\nprint(2)\n"))})
    _, data = run_json(capsys, "--select", "MLC992", "--no-cache", ".")
    assert [(f["cell"], f["line"]) for f in data["findings"]] == [(1, 2)]


def test_fix_writes_the_notebook_back_with_magics_intact(project, test_rules, capsys):
    write(project, {"train.ipynb": NB})
    run_cli(capsys, "--select", "MLC991", "--fix", ".")
    cells = json.loads((project / "train.ipynb").read_text())["cells"]
    assert "".join(cells[3]["source"]) == "def good_plot():\n    %time x = 1\n    print(os.name)\nbad_plot?\n"
    assert "".join(cells[1]["source"]) == "%matplotlib inline\n!pip install torch\nfiles = !ls\nimport os\n"
    assert cells[0]["cell_type"] == "markdown"
    assert run_cli(capsys, "--select", "MLC991", ".")[0] == 0
