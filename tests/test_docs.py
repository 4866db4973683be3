"""The documentation site: generated pages cover every rule, key, option and marker the
code declares (read here independently, from the running pytest session and the linter),
the navigation points at pages that exist, and the README stays an introduction."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load_generator():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return gen.all_pages()


def test_every_registered_rule_has_a_page_from_its_own_docstring(pages: dict[str, str]) -> None:
    from mlcheck_lint import api

    rules = list(api.iter_rules())
    assert len(rules) >= 10
    index = pages["lint/rules/index.md"]
    for rule in rules:
        page = pages[f"lint/rules/{rule.code}.md"]
        assert page.startswith(f"# {rule.code}: {rule.summary}\n"), rule.code
        assert f"`{rule.name}`" in page and f"default: **{rule.default}**" in page
        # The docstring's own words, not a copy kept somewhere else.
        doc_words = re.findall(r"[A-Za-z]{5,}", rule.documentation())[:30]
        assert all(w in page for w in doc_words), rule.code
        assert f"[{rule.code}]({rule.code}.md)" in index
    codes = {p.split("/")[-1][:-3] for p in pages if re.fullmatch(r"lint/rules/MLC\d{3}\.md", p)}
    assert codes == {r.code for r in rules}


def test_reference_lists_every_ini_key_option_and_marker_of_the_running_plugin(
        pages: dict[str, str], pytestconfig: pytest.Config) -> None:
    ref = pages["reference.md"]
    # Read from this very session's parser and config, not from the generator's Parser.
    ini = [k for k in pytestconfig._parser._inidict if k.startswith("mlcheck")]
    assert "mlcheck_atol" in ini
    for key in ini:
        assert f"| `{key}` |" in ref, key
    options = [name for group in pytestconfig._parser._groups for opt in group.options
               for name in opt.names() if name.startswith("--mlcheck")]
    assert "--mlcheck-update" in options
    for name in options:
        assert re.search(rf"\| `{re.escape(name)}( [A-Z]+)?` \|", ref), name
    markers = [m.split(":")[0] for m in pytestconfig.getini("markers") if m.startswith("mlcheck")]
    assert markers
    for marker in markers:
        assert f"`@pytest.mark.{marker}`" in ref, marker


def test_reference_lists_every_lint_key_and_cli_option(pages: dict[str, str]) -> None:
    from mlcheck_lint import api, cli, config

    ref = pages["reference.md"]
    lint_part = ref[ref.index("## mlcheck-lint"):]
    engine_keys = set(config._ENGINE_KEYS)
    assert set(gen.ENGINE_KEYS) == engine_keys, "describe new engine keys in ENGINE_KEYS"
    family_keys = set(api.family_options()) if hasattr(api, "family_options") else set()
    for key in engine_keys | family_keys:
        assert f"| `{key}` |" in lint_part, key
    for action in cli.build_parser()._actions:
        for flag in action.option_strings:
            assert flag in lint_part, flag


def test_navigation_points_at_pages_that_exist(pages: dict[str, str]) -> None:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:\n"):]
    # Every nav entry is `- Title: page.md` (no YAML parser needed for that shape).
    listed = set(re.findall(r"^\s+- [^:\n]+: (\S+\.md)$", nav, re.M))
    assert {"index.md", "reference.md", "lint/index.md", "fixtures/metric-regression.md"} <= listed
    for target in listed:
        assert (DOCS / target).is_file() or target in pages, target
    # Every hand-written page is reachable from the navigation.
    written = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert written <= listed, written - listed


def test_included_pages_are_the_files_themselves(pages: dict[str, str]) -> None:
    assert pages["changelog.md"] == (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    bench = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert pages["benchmarks.md"].splitlines()[0] == bench.splitlines()[0]
    assert len(pages["benchmarks.md"].splitlines()) == len(bench.splitlines())


def test_hook_adds_the_rule_pages_to_the_navigation() -> None:
    config = {"nav": [{"Home": "index.md"}, {"Linter": [{"mlcheck-lint": "lint/index.md"}]}],
              "docs_dir": str(DOCS)}
    gen.on_config(config)
    linter = config["nav"][1]["Linter"]
    rules = linter[-1]["Rules"]
    assert rules[0] == "lint/rules/index.md"
    assert {"MLC113": "lint/rules/MLC113.md"} in rules


def test_readme_is_an_introduction() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "pip install pytest-mlcheck" in text
    for extra in ("[hypothesis]", "[torch]", "[all]"):
        assert f'pip install "pytest-mlcheck{extra}"' in text
    assert "make demo" in text and "make test" in text
    # The generated rule documentation lives on the site, not in the README.
    assert "### MLC113" not in text and "<!-- section:lint-rules -->" not in text


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed here; `tox -e docs` builds the site in CI")
def test_site_builds_strict(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "lint" / "rules" / "MLC113" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "index.html").is_file()
