"""Generated pages of the documentation site, built from the code so they cannot drift.

Used two ways:

* as an MkDocs hook (``hooks:`` in ``mkdocs.yml``): :func:`on_config` adds the rule
  pages to the navigation and :func:`on_files` adds every generated page to the build;
* as a module (``tests/test_docs.py``, ``python scripts/docs_reference.py OUT``), which
  checks or writes the same pages.

Sources, all introspected, none copied:

* one page per lint rule, from the rule's docstring (:meth:`Rule.documentation`), the
  same text ``mlcheck-lint --explain`` prints;
* the configuration reference: the plugin's ini keys and command-line options from
  its real ``pytest_addoption`` run against pytest's own ``Parser``; its markers from
  ``pytest --markers`` in a throw-away folder; the linter's ``[tool.mlcheck.lint]``
  keys (engine keys and the ``api.Option`` declarations of each rule family) and its
  command-line options from its ``argparse`` parser;
* ``benchmarks/README.md`` and ``CHANGELOG.md``, included as they are.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: The linter engine's own ``[tool.mlcheck.lint]`` keys (``config._ENGINE_KEYS``); the
#: families' keys document themselves through ``api.Option``. A test checks this
#: table against the engine's key set, so a new key without a line here fails.
ENGINE_KEYS = {
    "select": "Rule codes or prefixes to enable, replacing the defaults (`[\"MLC1\"]`).",
    "extend-select": "Codes or prefixes to enable on top of the defaults (rules that are off).",
    "ignore": "Codes or prefixes to turn off.",
    "per-file-ignores": "A table of glob pattern to codes ignored in matching files "
                        "(`{\"tests/**\" = [\"MLC103\"]}`).",
    "exclude": "Glob patterns of paths never linted, replacing the default list "
               "(`.venv`, `.git`, `.tox`, build folders...).",
    "extend-exclude": "Glob patterns excluded on top of the defaults.",
    "cache-dir": "Where the per-file cache lives (default `.mlcheck-lint-cache`).",
    "max-file-size": "Files larger than this many bytes are reported (MLC000), not parsed.",
}


def _import_linter() -> Any:
    for path in (ROOT, ROOT / "lint"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    from mlcheck_lint import api, cli, formats

    return api, cli, formats


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# -- lint rules -------------------------------------------------------------------------


def rule_pages() -> dict[str, str]:
    """Return ``{"lint/rules/MLC103.md": markdown, ...}`` plus the rules index page.

    Returns:
        Page path (relative to ``docs/``) to its Markdown, one page per registered rule.
    """
    api, _, formats = _import_linter()
    rules = list(api.iter_rules())
    pages = {}
    index = ["# Rules", "",
             "Every rule `mlcheck-lint` has, generated from the rules' own documentation "
             "(`mlcheck-lint --list-rules`, `mlcheck-lint --explain CODE`). Rules that are "
             "`off` run with `--extend-select CODE` or `extend-select` in "
             "`[tool.mlcheck.lint]`.", "",
             "| code | name | default | fix | what |", "|---|---|---|---|---|"]
    for rule in rules:
        fix = rule.fix_safety or ""
        index.append(f"| [{rule.code}]({rule.code}.md) | `{rule.name}` | {rule.default} | {fix} "
                     f"| {_cell(rule.summary)} |")
        body = formats.doc_markdown(rule.documentation()) or rule.summary
        facts = f"`{rule.name}` · default: **{rule.default}** · fix: **{fix or 'none'}**"
        family = rule.__module__.split(".")[2] if rule.__module__.count(".") >= 2 else ""
        if family:
            facts += f" · family: `{family}`"
        pages[f"lint/rules/{rule.code}.md"] = (
            f"# {rule.code}: {rule.summary}\n\n{facts}\n\n{body}\n")
    pages["lint/rules/index.md"] = "\n".join(index) + "\n"
    return pages


# -- configuration reference ------------------------------------------------------------


def plugin_parser() -> Any:
    """Return pytest's real ``Parser`` after the plugin's ``pytest_addoption`` ran on it.

    Returns:
        The parser, holding the plugin's option group and ini keys.
    """
    from _pytest.config.argparsing import Parser

    sys.path.insert(0, str(ROOT))
    from pytest_mlcheck import plugin

    parser = Parser(_ispytest=True)  # the real class pytest builds its parser from
    plugin.pytest_addoption(parser)
    return parser


def plugin_options() -> list[dict[str, Any]]:
    """Return the plugin's command-line options: names, metavar, default and help.

    Returns:
        One dict per option, in declaration order.
    """
    parser = plugin_parser()
    out = []
    for group in parser._groups:
        for opt in group.options:
            attrs = opt.attrs()
            out.append({"names": opt.names(), "metavar": attrs.get("metavar"),
                        "default": attrs.get("default"), "help": attrs.get("help", ""),
                        "action": attrs.get("action")})
    return out


def plugin_ini_keys() -> dict[str, tuple[str, str, Any]]:
    """Return the plugin's ini keys: ``{name: (help, type, default)}``.

    Returns:
        The keys, as pytest's ``Parser.addini`` recorded them.
    """
    out = {}
    for name, spec in plugin_parser()._inidict.items():
        help_text, kind, default = spec[0], spec[1], spec[2]
        out[name] = (help_text, kind or "string", default)
    return out


def plugin_markers() -> dict[str, str]:
    """Return the plugin's markers, from ``pytest --markers`` in an empty folder.

    Returns:
        Marker signature (``mlcheck_allow_warning(pattern)``) to its description.
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        proc = subprocess.run(
            # The plugin loads through its pytest11 entry point, as for a user.
            [sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider"],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or "@pytest.mark.mlcheck" not in proc.stdout:
        raise RuntimeError(f"pytest --markers did not list the plugin's markers "
                           f"(exit {proc.returncode}; is pytest-mlcheck installed?):\n"
                           f"{proc.stderr[-2000:]}")
    markers = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"@pytest\.mark\.(mlcheck\w*(?:\([^)]*\))?): (.*)", line)
        if m:
            markers[m.group(1)] = m.group(2).strip()
    return markers


def lint_keys() -> dict[str, tuple[str, str, str]]:
    """Return every ``[tool.mlcheck.lint]`` key: ``{key: (owner, default, doc)}``.

    Returns:
        The engine's keys (owner ``engine``) and each family's declared options.
    """
    api, _, _ = _import_linter()
    out = {k: ("engine", "", doc) for k, doc in ENGINE_KEYS.items()}
    declared = getattr(api, "family_options", None)
    if declared is not None:
        for name, (family, opt) in declared().items():
            default = opt.default
            if isinstance(default, tuple):
                default = list(default)
            choices = f" One of: {', '.join(f'`{c}`' for c in opt.choices)}." if opt.choices else ""
            out[name] = (family, repr(default), opt.doc + choices)
    return out


def lint_cli_options() -> list[tuple[str, str, str]]:
    """Return ``mlcheck-lint``'s command-line options: ``(flags, metavar, help)``.

    Returns:
        One tuple per option of its argparse parser, in declaration order.
    """
    _, cli, _ = _import_linter()
    out = []
    for action in cli.build_parser()._actions:
        if not action.option_strings or action.help == "==SUPPRESS==":
            continue
        metavar = action.metavar or (action.dest.upper() if action.nargs != 0 else "")
        if action.choices:
            metavar = "{" + ",".join(map(str, action.choices)) + "}"
        out.append((", ".join(action.option_strings), metavar or "", action.help or ""))
    return out


def configuration_page() -> str:
    """Return the configuration reference page (``reference.md``).

    Returns:
        Markdown: the plugin's ini keys, options and markers, then the linter's keys and
        options, each generated from its declaration.
    """
    out = ["# Configuration reference", "",
           "Generated from the declarations in the code when the site is built "
           "(`scripts/docs_reference.py`); `tests/test_docs.py` checks that every declared "
           "key, option and marker appears here.", "",
           "## pytest plugin", "", "### ini keys", "",
           "Set in `[tool.pytest.ini_options]` of `pyproject.toml`, `pytest.ini` or `tox.ini`.", "",
           "| key | type | default | what |", "|---|---|---|---|"]
    for name, (help_text, kind, default) in sorted(plugin_ini_keys().items()):
        shown = "" if default in ("", None, []) else f"`{default}`"
        out.append(f"| `{name}` | {kind} | {shown} | {_cell(help_text)} |")
    out += ["", "### Command-line options", "", "| option | default | what |", "|---|---|---|"]
    for opt in plugin_options():
        flag = ", ".join(opt["names"]) + (f" {opt['metavar']}" if opt["metavar"] else "")
        default = "" if opt["action"] == "store_true" or opt["default"] is None else f"`{opt['default']}`"
        out.append(f"| `{flag}` | {default} | {_cell(opt['help'])} |")
    out += ["", "### Markers", "", "| marker | what |", "|---|---|"]
    for name, doc in plugin_markers().items():
        out.append(f"| `@pytest.mark.{name}` | {_cell(doc)} |")
    out += ["", "### Environment variables", "",
            "| variable | what |", "|---|---|",
            "| `MLCHECK_REQUIRE_CUDA=1` | tests marked `cuda` fail instead of skipping when no GPU "
            "is visible (set by the CUDA tox environments) |",
            "", "## mlcheck-lint", "", "### `[tool.mlcheck.lint]` keys", "",
            "| key | from | default | what |", "|---|---|---|---|"]
    for name, (owner, default, doc) in sorted(lint_keys().items()):
        out.append(f"| `{name}` | {owner} | {f'`{default}`' if default else ''} | {_cell(doc)} |")
    out += ["", "### Command-line options", "", "| option | value | what |", "|---|---|---|"]
    for flags, metavar, help_text in lint_cli_options():
        out.append(f"| `{flags}` | {f'`{metavar}`' if metavar else ''} | {_cell(help_text)} |")
    return "\n".join(out) + "\n"


def included_pages() -> dict[str, str]:
    """Return the pages taken as they are from files outside ``docs/``.

    Returns:
        ``{"benchmarks.md": ..., "changelog.md": ...}``.
    """
    bench = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    # Relative links in the benchmarks README point into benchmarks/; on the site they
    # are plain text (the scripts are in the repository, not on the site).
    bench = re.sub(r"\]\((?!https?:|#)([^)]+)\)", r"] (`benchmarks/\1`)", bench)
    return {"benchmarks.md": bench,
            "changelog.md": (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")}


def _docstring_markdown(doc: str) -> str:
    # reST ``literal`` and :role:`target` to Markdown, as rule docs are converted.
    doc = re.sub(r":(?:func|class|meth|mod|data|attr):`~?([^`]+)`", r"`\1`", doc)
    return re.sub(r"(?<!`)``([^`\n]+)``(?!`)", r"`\1`", doc)


def fixture_module_pages() -> dict[str, tuple[str, str]]:
    """Return pages for fixture families documented in their own module docstrings.

    A family that is new (``device_consistency``) gets its page from its module and
    method docstrings, so the page exists as soon as the code does.

    Returns:
        ``{path: (navigation title, markdown)}`` for each family that imports.
    """
    import importlib
    import inspect

    sys.path.insert(0, str(ROOT))
    out = {}
    for path, title, module_name, class_name in (
            ("fixtures/devices.md", "device_consistency", "pytest_mlcheck.devices", "DeviceConsistency"),):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, class_name, None)
        parts = [f"# Device consistency: `{title}`", "", _docstring_markdown(inspect.getdoc(module) or "")]
        if cls is not None:
            for name, member in inspect.getmembers(cls, inspect.isfunction):
                if name.startswith("_") or not member.__doc__:
                    continue
                signature = str(inspect.signature(member)).replace("(self, ", "(").replace("(self)", "()")
                parts += ["", f"## `{title}.{name}{signature}`", "", "```text",
                          inspect.getdoc(member), "```"]
        out[path] = (title, "\n".join(parts) + "\n")
    return out


def reports_page() -> str | None:
    """Return the page of ``python -m pytest_mlcheck`` (compare, merge, prune), or None.

    Returns:
        Markdown holding each command's ``--help``, or ``None`` when the package has no
        command line yet.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))

    def help_text(*args: str) -> str | None:
        proc = subprocess.run([sys.executable, "-m", "pytest_mlcheck", *args, "--help"],
                              capture_output=True, text=True, timeout=120, env=env)
        return proc.stdout if proc.returncode == 0 else None

    main = help_text()
    if main is None:
        return None
    parts = ["# Reports across runs: compare, merge, prune", "",
             "`python -m pytest_mlcheck` (also `mlcheck`) reads the JSON reports that "
             "`pytest --mlcheck-report PATH` writes ([format](report.md)). The help below "
             "is generated from the command line itself.", "", "```text", main.rstrip(), "```"]
    for command in re.findall(r"^    (\w+)\s{2,}", main, re.M):
        sub = help_text(command)
        if sub:
            parts += ["", f"## `{command}`", "", "```text", sub.rstrip(), "```"]
    return "\n".join(parts) + "\n"


def all_pages() -> dict[str, str]:
    """Return every generated page, by its path relative to ``docs/``.

    Returns:
        The pages.
    """
    pages = rule_pages()
    pages["reference.md"] = configuration_page()
    pages.update(included_pages())
    pages.update({path: text for path, (_, text) in fixture_module_pages().items()})
    reports = reports_page()
    if reports is not None:
        pages["reports.md"] = reports
    return pages


# -- MkDocs hook ------------------------------------------------------------------------

_CACHE: dict[str, str] = {}


def _pages() -> dict[str, str]:
    if not _CACHE:
        _CACHE.update(all_pages())
    return _CACHE


def on_config(config: Any) -> Any:
    """MkDocs hook: list the generated rule pages under the linter's navigation entry.

    Args:
        config: The MkDocs configuration.

    Returns:
        The configuration.
    """
    _CACHE.clear()
    rules = sorted(p for p in _pages() if p.startswith("lint/rules/MLC"))
    for entry in config["nav"] or []:
        if isinstance(entry, dict) and "Linter" in entry:
            section = entry["Linter"]
            section.append({"Rules": ["lint/rules/index.md"]
                            + [{Path(p).stem: p} for p in rules]})
    for entry in config["nav"] or []:
        if isinstance(entry, dict) and "Fixtures" in entry:
            entry["Fixtures"] += [{title: path} for path, (title, _) in fixture_module_pages().items()]
    if "reports.md" in _pages():
        config["nav"].append({"Reports across runs": "reports.md"})
    return config


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated pages to the build.

    Args:
        files: The files MkDocs found in ``docs/``.
        config: The MkDocs configuration.

    Returns:
        The files, with the generated pages.
    """
    from mkdocs.structure.files import File

    for path, text in _pages().items():
        files.append(File.generated(config, path, content=text))
    return files


def main(argv: list[str]) -> int:
    """Write every generated page under the folder given (for reading them without MkDocs).

    Args:
        argv: ``[OUT]``.

    Returns:
        The exit status.
    """
    if len(argv) != 1:
        print("usage: docs_reference.py OUT_DIR", file=sys.stderr)
        return 2
    for path, text in all_pages().items():
        target = Path(argv[0]) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
