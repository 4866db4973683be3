"""The command line: exit codes, options, configuration errors, --explain, --list-rules."""

from __future__ import annotations

import subprocess
import sys

import pytest
from lint_engine_testkit import project, run_cli, test_rules, write  # noqa: F401


def test_exit_codes_0_1_and_exit_zero(project, test_rules, capsys):
    write(project, {"a.py": "def fine():\n    pass\n"})
    assert run_cli(capsys, "--select", "MLC991", ".")[:2] == (0, "All checks passed!\n")
    write(project, {"a.py": "def bad_a():\n    pass\n"})
    code, out, _ = run_cli(capsys, "--select", "MLC991", ".")
    assert code == 1 and out == "a.py:1:5: MLC991 [*] function `bad_a` is bad\nFound 1 finding (1 fixable with --fix).\n"
    assert run_cli(capsys, "--select", "MLC991", "--exit-zero", ".")[0] == 0


@pytest.mark.parametrize("toml, key, reason", [
    ('[tool.mlcheck.lint]\nselct = ["MLC1"]\n', "[tool.mlcheck.lint] selct", "unknown key; valid keys:"),
    ('[tool.mlcheck.lint]\nselect = ["MLC9999"]\n', "[tool.mlcheck.lint] select", "unknown rule code or prefix 'MLC9999'"),
    ('[tool.mlcheck.lint]\nignore = "XYZ"\n', "[tool.mlcheck.lint] ignore", "unknown rule code or prefix 'XYZ'"),
    ('[tool.mlcheck.lint]\ndocstring-convention = "rst"\n', "[tool.mlcheck.lint] docstring-convention",
     "'rst' is not one of google, numpy, sphinx, auto"),
    ('[tool.mlcheck.lint]\ndocstring-coverage = 120\n', "[tool.mlcheck.lint] docstring-coverage",
     "120.0 is not a percentage between 0 and 100"),
    ('[tool.mlcheck.lint]\npublic-api = "everything"\n', "[tool.mlcheck.lint] public-api", "'everything' is not one of"),
    ('[tool.mlcheck.lint]\nper-file-ignores = ["x"]\n', "[tool.mlcheck.lint] per-file-ignores", "expected a table"),
    ('[tool.mlcheck.lint]\nper-file-ignores = { "t/*" = ["NOPE1"] }\n',
     "[tool.mlcheck.lint] per-file-ignores 't/*'", "unknown rule code or prefix 'NOPE1'"),
    ('[tool.mlcheck.lint]\nexclude = [1]\n', "[tool.mlcheck.lint] exclude", "expected a list of strings"),
    ('[tool.mlcheck.lint\n', "pyproject.toml", "cannot be read as TOML"),
])
def test_config_errors_exit_2_with_file_key_and_reason(project, test_rules, capsys, toml, key, reason):
    (project / "pyproject.toml").write_text(toml)
    write(project, {"a.py": "x = 1\n"})
    code, out, err = run_cli(capsys, ".")
    assert code == 2 and out == ""
    assert f"{project / 'pyproject.toml'}: {key}: {reason}" in err


@pytest.mark.parametrize("args, needle", [
    (["--select", "MLC9x"], "command line: --select: unknown rule code or prefix 'MLC9x'"),
    (["--ignore", "FOO"], "command line: --ignore: unknown rule code or prefix 'FOO'"),
    (["--jobs", "0"], "command line: --jobs: 0 is not a positive number"),
    (["--explain", "MLC999"], "command line: --explain: unknown rule code 'MLC999'"),
    (["--unsafe-fixes"], "--unsafe-fixes: only makes sense with --fix or --diff"),
    (["missing_dir"], "missing_dir: no such file or folder"),
    (["--config", "nope.toml"], "nope.toml: --config: file not found"),
    (["--format", "markdown"], "markdown is only for --list-rules"),
])
def test_usage_errors_exit_2(project, test_rules, capsys, args, needle):
    write(project, {"a.py": "x = 1\n"})
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and needle in err


def test_bad_option_is_argparse_exit_2(project, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "--format", "xml")
    assert exc.value.code == 2


def test_config_is_read_and_cli_overrides_it(project, test_rules, capsys):
    (project / "pyproject.toml").write_text('[tool.mlcheck.lint]\nselect = ["MLC991"]\n')
    write(project, {"sub/a.py": "def bad_a():\n    print(1)\n"})
    code, out, _ = run_cli(capsys, "sub")
    assert "MLC991" in out and "MLC992" not in out
    code, out, _ = run_cli(capsys, "--select", "MLC992", "sub")
    assert "MLC991" not in out and "MLC992" in out
    code, out, _ = run_cli(capsys, "--extend-select", "MLC992", "--ignore", "MLC991", "sub")
    assert "MLC991" not in out and "MLC992" in out


def test_explicit_config_file(project, test_rules, capsys, tmp_path_factory):
    other = tmp_path_factory.mktemp("cfg") / "pyproject.toml"
    other.write_text('[tool.mlcheck.lint]\nselect = ["MLC992"]\n')
    write(project, {"a.py": "def bad_a():\n    print(1)\n"})
    code, out, _ = run_cli(capsys, "--config", str(other), str(project / "a.py"))
    assert "MLC992" in out and "MLC991" not in out


def test_show_source_and_statistics(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():\n    print(1)\n    print(2)\n"})
    code, out, _ = run_cli(capsys, "--select", "MLC991,MLC992", "--show-source", ".")
    assert "a.py:1:5: MLC991 [*] function `bad_a` is bad\n    def bad_a():\n        ^^^^^\n" in out
    code, out, _ = run_cli(capsys, "--select", "MLC991,MLC992", "--statistics", ".")
    assert out == ("     2  MLC992      print call\n     1  MLC991  [*] function named bad_*\n"
                   "Found 3 findings (1 fixable with --fix); 2 more with --fix --unsafe-fixes "
                   "(preview with --diff --unsafe-fixes).\n")


def test_explain_and_list_rules_cover_engine_codes(capsys):
    code, out, _ = run_cli(capsys, "--explain", "mlc000")
    assert code == 0 and out.startswith("MLC000 (unreadable-file): file cannot be decoded or parsed")
    assert "What it does:" in out and "Why is this bad?" in out and "Use instead:" in out
    code, out, _ = run_cli(capsys, "--list-rules")
    assert code == 0 and "MLC001  off" in out


def test_python_dash_m_runs_the_cli(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "bad.py").write_text("def f(:\n")
    proc = subprocess.run([sys.executable, "-m", "mlcheck_lint", "--select", "MLC000", "--no-cache", "."],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("bad.py:1:7: MLC000 cannot lint this file: syntax error: invalid syntax")


def test_without_pyproject_the_root_is_the_linted_tree_not_the_cwd(tmp_path, monkeypatch, capsys):
    """Linting ``proj`` from a folder that holds other things reads only ``proj``:
    project-level rules (here MLC208 on notebooks) must not scan the current directory."""
    import json

    notebook = {"cells": [{"cell_type": "code", "source": ["%pip install torch\n"],
                           "metadata": {}, "outputs": [], "execution_count": None}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "n.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "m.py").write_text('"""A module."""\n')
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "--no-cache", "--select", "MLC208", "proj")
    assert (code, out.strip()) == (0, "All checks passed!"), (out, err)
    (tmp_path / "proj" / "n.ipynb").write_text(json.dumps(notebook))  # the seeded fault
    code, out, err = run_cli(capsys, "--no-cache", "--select", "MLC208", "proj")
    assert code == 1 and "proj/n.ipynb" in out and "elsewhere" not in out, out
