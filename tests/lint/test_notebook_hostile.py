"""Malformed and non-Python notebooks (issue 12 item 17): a finding for the one file,
never a crash of the run, and no false MLC000 for an R or Julia notebook."""

from __future__ import annotations

import json

import pytest
from lint_engine_testkit import notebook, project, run_cli, run_json, test_rules, write  # noqa: F401

from mlcheck_lint import notebooks

SELECT = ("--select", "MLC000,MLC991", "--no-cache", "--jobs", "1", ".")


def _nb(cells, metadata=None):
    return json.dumps({"cells": cells, "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5})


def _code(source, **metadata):
    return {"cell_type": "code", "metadata": metadata, "source": source, "outputs": [],
            "execution_count": None}


@pytest.mark.parametrize("source, shown", [
    (["def bad_a():\n", 42], "found int 42"),
    ({"text": "x"}, "found dict {'text': 'x'}"),
    (None, "found NoneType None"),
])
def test_a_cell_source_that_is_not_text_is_mlc000_naming_the_cell(project, test_rules, capsys,
                                                                  source, shown):
    # Before: TypeError from "".join, and the whole run stopped.
    write(project, {"n.ipynb": _nb([{"cell_type": "markdown", "source": "# t", "metadata": {}},
                                    _code(source)]),
                    "a.py": "def bad_a():\n    pass\n"})
    code, data = run_json(capsys, *SELECT)
    assert code == 1
    found = {(f["path"], f["code"]): f["message"] for f in data["findings"]}
    assert found[("n.ipynb", "MLC000")] == (
        f"cannot lint this file: not a valid notebook: cell 2: 'source' must be a string or a "
        f"list of strings, {shown}")
    assert ("a.py", "MLC991") in found  # the other file was still linted


def test_deeply_nested_json_is_mlc000_not_a_recursion_error(project, test_rules, capsys):
    depth = 100_000
    write(project, {"deep.ipynb": '{"cells": [], "metadata": ' + "[" * depth + "]" * depth + "}",
                    "a.py": "def bad_a():\n    pass\n"})
    code, data = run_json(capsys, *SELECT)
    assert code == 1
    assert [(f["path"], f["code"]) for f in data["findings"]] == [("a.py", "MLC991"), ("deep.ipynb", "MLC000")]
    assert "nested too deeply" in data["findings"][1]["message"]


R_CELL = "library(ggplot2)\nbad_a <- function(x) { x %>% filter(y > 1) }\n"


@pytest.mark.parametrize("metadata", [
    {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"},
     "language_info": {"name": "R"}},
    {"kernelspec": {"name": "julia-1.10", "display_name": "Julia 1.10", "language": "julia"}},
    {"language_info": {"name": "julia"}},
])
def test_a_notebook_with_another_kernel_is_skipped_not_mlc000(project, test_rules, capsys, metadata):
    write(project, {"r.ipynb": _nb([_code(R_CELL)], metadata)})
    code, data = run_json(capsys, *SELECT)
    assert code == 0 and data["findings"] == []


def test_the_same_notebook_with_a_python_kernel_is_linted(project, test_rules, capsys):
    # The twin of the test above: the kernel, not the content, decides.
    python = {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python"}}
    write(project, {"r.ipynb": _nb([_code(R_CELL), _code("def bad_a():\n    pass\n")], python)})
    code, data = run_json(capsys, *SELECT)
    assert code == 1
    assert [(f["code"], f["cell"]) for f in data["findings"]] == [("MLC000", 1), ("MLC991", 2)]


def test_a_cell_marked_as_another_language_is_skipped(project, test_rules, capsys):
    cells = [_code(R_CELL, vscode={"languageId": "r"}), _code("SELECT 1;\n", kernel="SQL"),
             _code("def bad_a():\n    pass\n", vscode={"languageId": "python"})]
    write(project, {"poly.ipynb": _nb(cells)})
    code, data = run_json(capsys, *SELECT)
    assert code == 1 and [(f["code"], f["cell"]) for f in data["findings"]] == [("MLC991", 3)]


def test_language_defaults_to_python_and_ignores_odd_metadata():
    assert notebooks.language({"cells": []}) == "python"
    assert notebooks.language({"cells": [], "metadata": ["x"]}) == "python"
    assert notebooks.language({"cells": [], "metadata": {"kernelspec": {"language": 3}}}) == "python"
    assert notebooks.language({"cells": [], "metadata": {"kernelspec": {"language": "R"}}}) == "R"


def test_fix_leaves_a_non_python_notebook_alone(project, test_rules, capsys):
    nb = _nb([_code("def bad_a():\n    pass\n")], {"kernelspec": {"name": "ir", "language": "R"}})
    write(project, {"r.ipynb": nb})
    assert run_cli(capsys, "--select", "MLC991", "--fix", "--no-cache", ".")[0] == 0
    assert (project / "r.ipynb").read_text() == nb


def test_the_plain_notebook_helper_still_works(project, test_rules, capsys):
    write(project, {"n.ipynb": notebook(("code", "def bad_a():\n    pass\n"))})
    assert run_cli(capsys, *SELECT)[0] == 1
