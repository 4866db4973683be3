"""Configuration: ``[tool.mlcheck.lint]`` of the nearest ``pyproject.toml``, then the CLI.

Every key is validated here, once, so rules receive a clean :class:`~mlcheck_lint.api.Settings`
and the user gets one error naming the file, the key and the reason. The engine's own keys
(selection, excludes, cache, file size) are listed here; every other key is an option a
rule family declares in its ``OPTIONS`` (:class:`~mlcheck_lint.api.Option`) and is
validated generically from that declaration.

Rule selection follows ruff: ``select`` replaces the default set (every rule whose
default is ``on``), ``extend-select`` adds to it and ``ignore`` removes from it. Each
entry is a full code (``MLC113``), a prefix (``MLC11``) or ``ALL``. For each rule the
longest matching entry decides; on a tie ``ignore`` wins. A prefix or ``ALL`` does not
turn on ``preview`` rules; only their exact code does.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from pathlib import Path
from typing import Any, Iterable

from .api import Option, Settings, family_options

CONFIG_TABLE = "[tool.mlcheck.lint]"
DEFAULT_CACHE_DIR = ".mlcheck-lint-cache"
#: Folders and files never walked into unless passed explicitly (``exclude`` replaces
#: this list, ``extend-exclude`` adds to it; the cache folder is always excluded).
DEFAULT_EXCLUDE = (".venv", "venv", ".git", ".hg", ".tox", ".nox", ".eggs", "*.egg-info",
                   "build", "dist", "__pycache__", "node_modules", ".mypy_cache",
                   ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints")

#: Files larger than this are reported (MLC000 "too large") instead of parsed: a
#: generated multi-megabyte literal costs minutes and gigabytes for nothing.
DEFAULT_MAX_FILE_SIZE = 4 * 1024 * 1024

#: The engine's own keys; families add theirs through ``OPTIONS``.
_ENGINE_KEYS = {"select", "extend-select", "ignore", "per-file-ignores", "exclude",
                "extend-exclude", "cache-dir", "max-file-size"}


class ConfigError(Exception):
    """A bad configuration value: where it came from, which key, and why.

    Args:
        source: The configuration file, or ``command line``.
        key: The key or option.
        reason: What is wrong and what is accepted.
    """

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class LintConfig:
    """The validated configuration of one run."""

    root: Path
    config_file: Path | None = None
    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    settings: Settings = Settings()
    cache_dir: Path | None = None
    max_file_size: int = DEFAULT_MAX_FILE_SIZE

    @property
    def excludes(self) -> tuple[str, ...]:
        """Every exclude pattern in force, the cache folder included."""
        cache = (self.cache_dir.name,) if self.cache_dir is not None else (DEFAULT_CACHE_DIR,)
        return self.exclude + self.extend_exclude + cache

    def enabled_codes(self, rules: Iterable[type]) -> frozenset[str]:
        """Return the codes this configuration turns on.

        Args:
            rules: Every registered rule class.

        Returns:
            The enabled rule codes.
        """
        enabled = set()
        for rule in rules:
            best_len, best_on = -1, False
            if self.select is None and rule.default == "on":
                best_len, best_on = 0, True
            for entries, on in ((self.select or (), True), (self.extend_select, True),
                                (self.ignore, False)):
                for entry in entries:
                    length = _match_length(entry, rule.code, rule.default)
                    if length > best_len or (length == best_len and length >= 0 and not on):
                        best_len, best_on = length, on
            if best_on:
                enabled.add(rule.code)
        return frozenset(enabled)

    def ignored_for(self, relpath: str) -> tuple[str, ...]:
        """Return the codes and prefixes ``per-file-ignores`` turns off for one file.

        Args:
            relpath: The file's path relative to the project root.

        Returns:
            The ignored codes or prefixes (possibly ``ALL``).
        """
        out: list[str] = []
        name = relpath.rsplit("/", 1)[-1]
        for pattern, codes in self.per_file_ignores:
            if path_matches(pattern, relpath, name):
                out.extend(codes)
        return tuple(out)


def _match_length(entry: str, code: str, default: str) -> int:
    if entry == code:
        return len(code)
    if default == "preview":
        return -1
    if entry == "ALL":
        return 0
    return len(entry) if code.startswith(entry) else -1


def path_matches(pattern: str, relpath: str, name: str) -> bool:
    """Say whether a glob matches a project-relative path.

    A pattern without ``/`` matches a file or folder name at any depth; one with ``/``
    matches the path from the root (``**`` spans folders).

    Args:
        pattern: The glob.
        relpath: Path relative to the project root, ``/``-separated.
        name: The last component of ``relpath``.

    Returns:
        Whether it matches.
    """
    pattern = pattern.rstrip("/")
    if "/" not in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    pattern = pattern[2:] if pattern.startswith("./") else pattern
    if fnmatch.fnmatchcase(relpath, pattern):
        return True
    # ``docs/**/*.md`` must also match ``docs/index.md``.
    return "**/" in pattern and fnmatch.fnmatchcase(relpath, pattern.replace("**/", ""))


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file (``tomllib`` on Python 3.11+, ``tomlkit`` before).

    Args:
        path: The file.

    Returns:
        Its content as plain dicts and lists.
    """
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomlkit

        return tomlkit.parse(text).unwrap()
    return tomllib.loads(text)


def find_config(start: Path) -> Path | None:
    """Return the nearest ``pyproject.toml`` at or above ``start``.

    One with a ``[tool.mlcheck.lint]`` table wins over a nearer one without it, so a
    nested package's bare ``pyproject.toml`` does not hide the project's settings.

    Args:
        start: A file or folder to search from.

    Returns:
        The file, or ``None`` when there is none.
    """
    start = start.resolve()
    folder = start if start.is_dir() else start.parent
    first = None
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            first = first or path
            try:
                if isinstance(lint_table(load_toml(path), str(path)), dict):
                    return path
            except Exception:  # a broken pyproject elsewhere is reported when it is used
                continue
    return first


def _strings(value: Any, source: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(source, key, f"expected a list of strings, got {value!r}")
    return tuple(v.strip() for v in value if v.strip())


def check_codes(entries: Iterable[str], codes: Iterable[str], source: str, key: str) -> tuple[str, ...]:
    """Validate rule codes or prefixes against the registry.

    Args:
        entries: The codes or prefixes given.
        codes: Every registered code.
        source: Where they came from (a file or ``command line``).
        key: The key or option that gave them.

    Returns:
        The entries, upper-cased.

    Raises:
        ConfigError: An entry matches no registered rule.
    """
    known = sorted(codes)
    out = []
    for entry in entries:
        upper = entry.strip().upper()
        if upper != "ALL" and not any(code.startswith(upper) for code in known):
            raise ConfigError(source, key, f"unknown rule code or prefix {entry!r}; known codes: "
                                           f"{', '.join(known)} (see mlcheck-lint --list-rules)")
        out.append(upper)
    return tuple(out)


def detect_packages(root: Path, pyproject: dict[str, Any]) -> tuple[str, ...]:
    """Guess the project's own top-level packages, for rules about README examples.

    Looks at ``[tool.setuptools] package-dir`` and ``packages.find.where``, then at the
    root and ``src/``: every folder with an ``__init__.py`` that is not tests or docs.

    Args:
        root: The project root.
        pyproject: The parsed ``pyproject.toml`` (empty when there is none).

    Returns:
        Sorted package names.
    """
    setuptools = _table(_table(pyproject, "tool"), "setuptools")
    names = set()
    package_dir = setuptools.get("package-dir", {})
    if isinstance(package_dir, dict):
        names.update(k for k in package_dir if isinstance(k, str) and k.isidentifier())
    bases = [root, root / "src"]
    where = _table(_table(setuptools, "packages"), "find").get("where", [])
    if isinstance(where, list):
        bases += [root / w for w in where if isinstance(w, str)]
    for base in bases:
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for entry in entries:
            if (entry.is_dir() and entry.name.isidentifier()
                    and entry.name not in ("tests", "test", "docs", "benchmarks", "examples")
                    and os.path.isfile(os.path.join(entry.path, "__init__.py"))):
                names.add(entry.name)
    return tuple(sorted(names))


def _table(data: Any, name: str) -> dict[str, Any]:
    value = data.get(name, {}) if isinstance(data, dict) else {}
    return value if isinstance(value, dict) else {}


#: Files that mark a project's top folder when it has no ``pyproject.toml``.
PROJECT_MARKERS = (".git", "setup.py", "setup.cfg", "requirements.txt", "environment.yml")


def fallback_root(start: Path) -> Path:
    """Return the project root of a tree without ``pyproject.toml``.

    The nearest folder at or above ``start`` holding a project marker
    (:data:`PROJECT_MARKERS`); without one, ``start`` itself (its folder for a file).
    Never the current directory as such: project-level rules read the whole root, and
    linting ``some/dir`` from ``/tmp`` must not read the rest of ``/tmp``.

    Args:
        start: The first path linted.

    Returns:
        An absolute folder.
    """
    start = Path(os.path.abspath(start))  # not resolve(): a symlink names its own place
    base = start if start.is_dir() and not start.is_symlink() else start.parent
    for folder in (base, *base.parents):
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return base


def load_config(start: Path, codes: Iterable[str], config_file: Path | None = None) -> LintConfig:
    """Find and validate the configuration for a run.

    Args:
        start: Where to search for ``pyproject.toml`` from (the first path linted).
        codes: Every registered rule code, to validate selections.
        config_file: An explicit file (``--config``); its folder is the project root.

    Returns:
        The configuration, before command-line overrides.

    Raises:
        ConfigError: The file cannot be read, or a key or value is wrong.
    """
    codes = tuple(codes)
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(str(config_file), "--config", "file not found")
        path: Path | None = config_file.resolve()
    else:
        path = find_config(start)
    if path is None:
        root = fallback_root(start)
        return LintConfig(root=root, settings=Settings(packages=detect_packages(root, {})),
                          cache_dir=root / DEFAULT_CACHE_DIR)
    source = str(path)
    try:
        data = load_toml(path)
    except Exception as exc:
        raise ConfigError(source, "pyproject.toml", f"cannot be read as TOML: {exc}") from None
    root = path.parent
    table = lint_table(data, source) or {}
    options = family_options()
    keys = _ENGINE_KEYS | set(options)
    unknown = sorted(set(table) - keys)
    if unknown:
        raise ConfigError(source, f"{CONFIG_TABLE} {unknown[0]}",
                          f"unknown key; valid keys: {', '.join(sorted(keys))}")
    key = lambda k: f"{CONFIG_TABLE} {k}"  # noqa: E731
    fields: dict[str, Any] = {"root": root, "config_file": path}
    if "select" in table:
        fields["select"] = check_codes(_strings(table["select"], source, key("select")), codes,
                                       source, key("select"))
    for name in ("extend-select", "ignore"):
        if name in table:
            fields[name.replace("-", "_")] = check_codes(_strings(table[name], source, key(name)),
                                                         codes, source, key(name))
    if "per-file-ignores" in table:
        pfi = table["per-file-ignores"]
        if not isinstance(pfi, dict):
            raise ConfigError(source, key("per-file-ignores"),
                              'expected a table of glob = ["codes"], e.g. "tests/*" = ["MLC103"]')
        fields["per_file_ignores"] = tuple(
            (glob, check_codes(_strings(value, source, key(f"per-file-ignores {glob!r}")), codes,
                               source, key(f"per-file-ignores {glob!r}")))
            for glob, value in pfi.items())
    for name in ("exclude", "extend-exclude"):
        if name in table:
            fields[name.replace("-", "_")] = _strings(table[name], source, key(name))
    if "max-file-size" in table:
        value = table["max-file-size"]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(source, key("max-file-size"),
                              f"{value!r} is not a positive number of bytes (default "
                              f"{DEFAULT_MAX_FILE_SIZE}, i.e. 4 MiB)")
        fields["max_file_size"] = value
    fields["settings"] = settings_from_table(table, options, source, root, data)
    cache = table.get("cache-dir", DEFAULT_CACHE_DIR)
    if not isinstance(cache, str) or not cache:
        raise ConfigError(source, key("cache-dir"), f"{cache!r} is not a folder path")
    fields["cache_dir"] = (root / cache).resolve()
    return LintConfig(**fields)


def lint_table(data: Any, source: str) -> dict[str, Any] | None:
    """Return ``[tool.mlcheck.lint]`` of a parsed ``pyproject.toml``, checking each level's shape.

    Args:
        data: The parsed file.
        source: Its path, for errors.

    Returns:
        The table, or ``None`` when the file has none.

    Raises:
        ConfigError: ``tool``, ``tool.mlcheck`` or the lint table is not a table
            (``tool = [...]``, ``[tool] mlcheck = "x"``).
    """
    node: Any = data
    for level, name in enumerate(("tool", "mlcheck", "lint")):
        if not isinstance(node, dict):
            where = "[" + ".".join(("tool", "mlcheck", "lint")[:level]) + "]"
            raise ConfigError(source, where, f"must be a table, got {type(node).__name__} {node!r:.60}")
        if name not in node:
            return None
        node = node[name]
    if not isinstance(node, dict):
        raise ConfigError(source, CONFIG_TABLE, f"must be a table, got {type(node).__name__} {node!r:.60}")
    return node


def settings_from_table(table: dict[str, Any], options: dict[str, tuple[str, Option]], source: str,
                        root: Path, pyproject: dict[str, Any]) -> Settings:
    """Validate every family option given in the lint table, from its declaration.

    Args:
        table: ``[tool.mlcheck.lint]``.
        options: :func:`~mlcheck_lint.api.family_options`.
        source: The configuration file, for errors.
        root: The project root (``packages`` is detected there when not given).
        pyproject: The whole parsed file.

    Returns:
        The settings.

    Raises:
        ConfigError: A value of the wrong type, outside its choices or its check.
    """
    values: dict[str, Any] = {}
    for name, (_family, opt) in sorted(options.items()):
        if name not in table:
            continue
        value, reason = opt.validate(table[name])
        if reason is not None:
            raise ConfigError(source, f"{CONFIG_TABLE} {name}", reason)
        values[opt.attribute] = value
    if "packages" in options and "packages" not in table:
        values["packages"] = detect_packages(root, pyproject)
    return Settings(**values)
