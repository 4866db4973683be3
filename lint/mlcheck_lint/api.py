"""The contract between the lint engine and the rules.

A rule is one small class with its code, default, documentation and fix in one place.
Rules register themselves with :func:`register` in a family module
(``mlcheck_lint.rules.docs``, ``.deps``, ``.smells``); the engine only ever sees
:data:`REGISTRY` and never names a single rule.

Two kinds of rule exist:

* :class:`Rule` checks one file at a time: ``check(ctx)`` yields :class:`Finding`.
  It runs inside the process pool, over the one libcst tree parsed for that file.
* :class:`ProjectRule` needs the whole project (cross-file inheritance, README code
  blocks, coverage). ``collect(ctx)`` runs per file in the pool and returns
  JSON-serialisable facts, which are cached with the file; ``check_project(project)``
  then runs once in the main process over every file's facts.

A rule's class docstring is its documentation, in ruff's shape, with the headings
``What it does``, ``Why is this bad?``, ``Example``, ``Use instead`` and, for fixable
rules, ``Fix safety``. It feeds ``--explain``, the README table and SARIF help text.

Fixes are text edits computed with libcst (render the replacement node with
``ctx.module.code_for_node(new_node)``) so they can cross process boundaries and the
cache. The engine applies non-overlapping edits, re-parses the result, and refuses
a fix whose output does not parse.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Iterable, Iterator

#: code -> rule class, filled by :func:`register` when a family module is imported.
REGISTRY: dict[str, type["Rule"]] = {}

#: The family modules the engine imports (``mlcheck_lint.rules.<name>``).
FAMILIES = ("docs", "deps", "smells")

#: The non-Python files a ``text`` rule reads unless it names its own ``text_files``.
TEXT_FILE_PATTERNS = ("pyproject.toml", "requirements*.txt", "requirements*.in",
                      "README.md", "docs/**/*.md", "docs/**/*.rst")


@dataclasses.dataclass(frozen=True)
class Edit:
    """Replace the source between two 1-based line / 0-based column positions."""

    start_line: int
    start_col: int
    end_line: int
    end_col: int
    text: str


@dataclasses.dataclass(frozen=True)
class Fix:
    """A fix: its safety (``safe`` applied by ``--fix``; ``unsafe`` needs
    ``--unsafe-fixes``), a short description, and its edits."""

    safety: str
    description: str
    edits: tuple[Edit, ...]


@dataclasses.dataclass(frozen=True)
class Finding:
    """One diagnostic.

    ``line`` is 1-based and ``col`` 0-based in the linted text (for notebooks: in the
    cell's own text, with ``cell`` its 1-based index). ``path`` is set by the engine.
    """

    code: str
    message: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None
    fix: Fix | None = None
    path: str = ""
    cell: int | None = None


@dataclasses.dataclass(frozen=True)
class Settings:
    """The configuration rules may read (validated by the engine)."""

    #: ``google``, ``numpy``, ``sphinx`` or ``auto`` (detect per docstring).
    docstring_convention: str = "auto"
    #: Minimum project docstring coverage in percent (MLC130), 0-100.
    docstring_coverage: float = 80.0
    #: What counts as public: ``auto`` (``__all__`` when a module defines it, else
    #: names without a leading underscore in modules whose path has none),
    #: ``underscore`` (ignore ``__all__``) or ``all`` (every name is public).
    public_api: str = "auto"
    #: Names of the project's own top-level packages (auto-detected when empty).
    packages: tuple[str, ...] = ()


class FileContext:
    """What a rule sees of one file: its text, its one parsed libcst tree, settings.

    Attributes:
        path: The file's path relative to the project root, with ``/`` separators.
        source: The file's text (for a notebook cell, that cell's code with magics
            blanked out; ``cell`` is then the 1-based cell number).
        module: The libcst module to visit. It belongs to ``wrapper``, so metadata
            lookups work on its nodes.
        wrapper: The ``libcst.metadata.MetadataWrapper`` around ``module``.
        settings: The validated :class:`Settings`.
        cell: The notebook cell number, or ``None`` for a ``.py`` file.
    """

    def __init__(self, path: str, source: str, wrapper: Any, settings: Settings,
                 cell: int | None = None) -> None:
        self.path = path
        self.source = source
        self.wrapper = wrapper
        self.module = wrapper.module if wrapper is not None else None
        self.settings = settings
        self.cell = cell
        self._metadata: dict[Any, Any] = {}
        self._positions: Any = None

    @classmethod
    def from_source(cls, source: str, path: str = "example.py",
                    settings: Settings | None = None) -> "FileContext":
        """Parse ``source`` with libcst and return a context for it (used by tests)."""
        import libcst
        from libcst.metadata import MetadataWrapper

        wrapper = MetadataWrapper(libcst.parse_module(source), unsafe_skip_copy=True)
        return cls(path, source, wrapper, settings or Settings())

    def metadata(self, provider: Any) -> Any:
        """Return ``{node: value}`` for a libcst metadata provider, resolved once per file."""
        if provider not in self._metadata:
            self._metadata[provider] = self.wrapper.resolve(provider)
        return self._metadata[provider]

    @property
    def kind(self) -> str:
        """``python`` for a parsed file or notebook cell, ``text`` for a non-Python file."""
        return "text" if self.wrapper is None else "python"

    def position(self, node: Any) -> tuple[int, int, int, int]:
        """Return ``(line, col, end_line, end_col)`` of a node (1-based lines, 0-based cols).

        Positions are those of libcst's ``PositionProvider``, computed by a cheaper pass
        (:mod:`mlcheck_lint.positions`) on the first call and reused for the file.
        """
        if self._positions is None:
            from .positions import Positions

            self._positions = Positions(self.module, self.source)
        found = self._positions.find(node)
        if found is not None:
            return found
        from libcst.metadata import PositionProvider

        rng = self.metadata(PositionProvider)[node]
        return rng.start.line, rng.start.column, rng.end.line, rng.end.column

    def finding(self, code: str, node: Any, message: str, fix: Fix | None = None) -> Finding:
        """Return a :class:`Finding` located at ``node``."""
        line, col, end_line, end_col = self.position(node)
        return Finding(code=code, message=message, line=line, col=col, end_line=end_line,
                       end_col=end_col, fix=fix, path=self.path, cell=self.cell)

    def edit(self, node: Any, replacement: Any) -> Edit:
        """Return an :class:`Edit` replacing ``node`` by a libcst node or a string."""
        line, col, end_line, end_col = self.position(node)
        text = replacement if isinstance(replacement, str) else self.module.code_for_node(replacement)
        return Edit(line, col, end_line, end_col, text)


class ProjectContext:
    """What a :class:`ProjectRule` sees of the whole project.

    Attributes:
        root: The project root (a ``pathlib.Path``; the directory of the config file).
        settings: The validated :class:`Settings`.
        files: Relative paths of every linted Python file.
        facts: ``facts[code][path]`` is what ``collect`` returned for that file.
    """

    def __init__(self, root: Any, settings: Settings, files: list[str],
                 facts: dict[str, dict[str, Any]]) -> None:
        self.root = root
        self.settings = settings
        self.files = files
        self.facts = facts

    def read_text(self, relpath: str) -> str | None:
        """Return a project file's text (UTF-8), or ``None`` when it does not exist."""
        p = self.root / relpath
        try:
            return p.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError):
            return None


class Rule:
    """Base class of a per-file rule. Subclasses set the class attributes and ``check``."""

    #: ``MLCnnn``.
    code: ClassVar[str] = ""
    #: kebab-case name, e.g. ``docstring-param-not-in-signature``.
    name: ClassVar[str] = ""
    #: One-line summary used in ``--list-rules`` and SARIF ``shortDescription``.
    summary: ClassVar[str] = ""
    #: ``on``, ``off`` or ``preview``.
    default: ClassVar[str] = "on"
    #: ``safe``, ``unsafe`` or ``None`` when the rule offers no fix.
    fix_safety: ClassVar[str | None] = None
    #: Which files the rule reads: ``python`` (``.py`` and notebook cells) or
    #: ``text`` (non-Python files such as requirements, pyproject, README).
    file_kinds: ClassVar[tuple[str, ...]] = ("python",)
    #: Skip a file before parsing unless its text contains one of these substrings.
    requires_text: ClassVar[tuple[str, ...]] = ()
    #: For ``text`` rules: glob patterns (relative to the project root; a pattern
    #: without ``/`` matches the file name at any depth) of the files the rule reads.
    #: Empty means :data:`TEXT_FILE_PATTERNS`. A text rule's ``ctx.module`` and
    #: ``ctx.wrapper`` are ``None``; it reads ``ctx.source``.
    text_files: ClassVar[tuple[str, ...]] = ()

    def check(self, ctx: "Any") -> Iterable[Finding]:
        """Yield the findings for one file (``ctx`` is the engine's FileContext)."""
        return ()

    @classmethod
    def documentation(cls) -> str:
        """Return the rule's documentation (its class docstring, dedented)."""
        import inspect

        return inspect.cleandoc(cls.__doc__ or "")


class ProjectRule(Rule):
    """A rule that needs the whole project; see the module docstring."""

    def collect(self, ctx: "Any") -> Any:
        """Return JSON-serialisable facts about one file (runs in the pool, cached)."""
        return None

    def check_project(self, project: "Any") -> Iterable[Finding]:
        """Yield findings once all files' facts are known (``project`` is the engine's
        ProjectContext: ``root``, ``settings``, ``facts[code][path]``)."""
        return ()


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator adding a rule to :data:`REGISTRY`; refuses duplicate codes."""
    if not cls.code or not cls.code.startswith("MLC") or len(cls.code) != 6:
        raise ValueError(f"{cls.__name__}: bad rule code {cls.code!r}")
    if cls.code in REGISTRY and REGISTRY[cls.code] is not cls:
        raise ValueError(f"duplicate rule code {cls.code}: {REGISTRY[cls.code].__name__} and {cls.__name__}")
    if cls.default not in ("on", "off", "preview"):
        raise ValueError(f"{cls.code}: default must be on, off or preview")
    if cls.fix_safety not in (None, "safe", "unsafe"):
        raise ValueError(f"{cls.code}: fix_safety must be safe, unsafe or None")
    REGISTRY[cls.code] = cls
    return cls


def iter_rules() -> Iterator[type[Rule]]:
    """Import every family module and yield all registered rules, sorted by code."""
    import importlib

    for family in FAMILIES:
        try:
            importlib.import_module(f"mlcheck_lint.rules.{family}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mlcheck_lint.rules.{family}":
                raise
    yield from (REGISTRY[c] for c in sorted(REGISTRY))
