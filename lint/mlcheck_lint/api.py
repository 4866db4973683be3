"""The contract between the lint engine and the rules.

A rule is one small class with its code, default, documentation and fix in one place.
Rules register themselves with :func:`register` in a family package
(``mlcheck_lint.rules.docs``, ``.deps``, ``.smells``, listed in :data:`FAMILIES`); the
engine only ever sees :data:`REGISTRY` and never names a single rule.

Two tiers of parse
    Every Python file (and notebook cell) is parsed once with CPython's ``ast``:
    :attr:`FileContext.tree`. That parse is also the safety gate: input CPython refuses
    never reaches libcst's native parser. A libcst tree (``ctx.module``, ``ctx.wrapper``,
    ``ctx.cst``) is built lazily, on first access, so only files where a rule asks for
    one pay for it. Declare ``needs = "cst"`` on a rule that always needs it (its
    batchable libcst visitor then runs in the engine's one libcst pass per file).

Kinds of rule
    * :class:`Rule` checks one file at a time: ``check(ctx)`` yields :class:`Finding`.
    * :class:`AstVisitorRule` has ``visit_<AstClass>`` / ``leave_<AstClass>`` handlers.
      The handlers of every selected visitor rule of a file run together in ONE
      non-recursive walk of ``ctx.tree``; ``ctx.ancestors`` holds the enclosing nodes.
    * :class:`CstVisitorRule` is the same on libcst (``needs = "cst"``): its handlers
      run in one libcst batched pass, with metadata resolved once per file.
    * :class:`ProjectRule` needs the whole project (cross-file inheritance, README code
      blocks, coverage). ``collect(ctx)`` runs per file in the pool and returns
      JSON-serialisable facts, which are cached with the file; ``check_project(project)``
      then runs once in the main process over every file's facts. A project rule may
      also be a visitor rule (``class R(AstVisitorRule, ProjectRule)``): ``collect``
      then runs after the walk, so it can return what the handlers gathered.

A rule's class docstring is its documentation, in ruff's shape, with the headings
``What it does``, ``Why is this bad?``, ``Example``, ``Use instead`` and, for fixable
rules, ``Fix safety``. It feeds ``--explain``, the README table and SARIF help text.

Options belong to their family: a family package declares ``OPTIONS = (Option(...),
...)`` in its ``__init__.py``; :mod:`mlcheck_lint.config` validates every declared
option of ``[tool.mlcheck.lint]`` generically, and a rule reads one with
``ctx.option("docstring-convention")``.

Fixes are text edits (:class:`Edit`), computed from node positions (``ctx.edit(node,
text)`` accepts ``ast`` and libcst nodes), so they can cross process boundaries. The
engine applies non-overlapping edits, re-parses the result, and refuses a fix whose
output does not parse. Edits are never taken from the cache: ``--fix`` recomputes them
from the file.
"""

from __future__ import annotations

import ast
import bisect
import dataclasses
import re
from typing import Any, Callable, ClassVar, Iterable, Iterator

#: code -> rule class, filled by :func:`register` when a family package is imported.
REGISTRY: dict[str, type["Rule"]] = {}

#: The rule families (``mlcheck_lint.rules.<name>``), listed explicitly. Each must
#: import cleanly: a missing or broken family stops the run with :class:`FamilyError`.
FAMILIES: tuple[str, ...] = ("docs", "deps", "smells")

#: The non-Python files a ``text`` rule reads unless it names its own ``text_files``.
TEXT_FILE_PATTERNS = ("pyproject.toml", "requirements*.txt", "requirements*.in",
                      "README.md", "docs/**/*.md", "docs/**/*.rst")

#: How many libcst trees this process has built (tests assert on it; the engine reports
#: each file's count in its result so runs in a pool add up too).
CST_BUILDS = 0


class FamilyError(ImportError):
    """A rule family listed in :data:`FAMILIES` is missing or fails to import."""


class CstUnavailable(Exception):
    """libcst cannot build a concrete tree for a file that CPython parsed.

    Args:
        reason: Why (libcst's own message).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Option:
    """One ``[tool.mlcheck.lint]`` key a rule family declares in its ``OPTIONS``.

    Args:
        name: The key, kebab-case (``docstring-convention``).
        type: ``str``, ``int``, ``float``, ``bool`` or ``tuple`` (a list of strings;
            a single string is accepted as a one-item list). An ``int`` is accepted
            for a ``float`` option; ``bool`` never stands in for a number.
        default: The value when the key is absent.
        choices: The allowed values, or ``None`` for any value of the type.
        doc: One or two sentences for the configuration reference.
        check: Optional ``check(value) -> reason or None`` for constraints beyond the
            type and the choices (a range, a name pattern); the reason is shown.
    """

    name: str
    type: type
    default: Any
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    check: Callable[[Any], str | None] | None = None

    @property
    def attribute(self) -> str:
        """The option's name as a :class:`Settings` attribute (``docstring_convention``)."""
        return self.name.replace("-", "_")

    def validate(self, value: Any) -> tuple[Any, str | None]:
        """Return ``(clean value, None)``, or ``(None, reason)`` when ``value`` is wrong.

        Args:
            value: The value as read from TOML (or given in Python).

        Returns:
            The value converted to the option's type, and ``None``; or ``None`` and a
            sentence saying what is wrong and what is accepted.
        """
        kind = self.type
        if kind is tuple:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
                return None, f"expected a list of strings, got {value!r}"
            value = tuple(v.strip() for v in items if v.strip())
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None, f"expected a number, got {value!r}"
            value = float(value)
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return None, f"expected an integer, got {value!r}"
        elif not isinstance(value, kind):
            return None, f"expected {kind.__name__}, got {value!r}"
        if self.choices is not None:
            bad = [v for v in (value if kind is tuple else (value,)) if v not in self.choices]
            if bad:
                return None, f"{bad[0]!r} is not one of {', '.join(map(str, self.choices))}"
        if self.check is not None:
            reason = self.check(value)
            if reason:
                return None, reason
        return value, None


def family_options() -> dict[str, tuple[str, Option]]:
    """Return every option the families declare: ``{name: (family, Option)}``.

    Returns:
        The options, by their kebab-case key.

    Raises:
        FamilyError: A family cannot be imported, or two families declare one key.
    """
    out: dict[str, tuple[str, Option]] = {}
    for family, module in load_families():
        for opt in getattr(module, "OPTIONS", ()):
            if not isinstance(opt, Option):
                raise FamilyError(f"mlcheck_lint.rules.{family}.OPTIONS holds {opt!r}, not an api.Option")
            if opt.name in out:
                raise FamilyError(f"option {opt.name!r} is declared by two families: "
                                  f"{out[opt.name][0]} and {family}")
            out[opt.name] = (family, opt)
    return out


class Settings:
    """The validated family options rules read (``[tool.mlcheck.lint]`` minus selection).

    Values are given by attribute name (``Settings(docstring_coverage=90.0)``) or by
    key; an option that is not given reads as its family's declared default. Read one
    with ``settings.option("docstring-coverage")`` or ``settings.docstring_coverage``.

    Args:
        **values: Option values, already validated.
    """

    __slots__ = ("_values",)

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_values", {k.replace("_", "-"): v for k, v in values.items()})

    def option(self, name: str) -> Any:
        """Return an option's value (its default when the configuration leaves it out).

        Args:
            name: The key, kebab-case or snake_case.

        Returns:
            The validated value.

        Raises:
            KeyError: No family declares such an option.
        """
        key = name.replace("_", "-")
        if key in self._values:
            return self._values[key]
        declared = family_options()
        if key not in declared:
            raise KeyError(f"no rule family declares an option {key!r}; declared: "
                           f"{', '.join(sorted(declared))}")
        return declared[key][1].default

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        try:
            return self.option(attribute)
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __setattr__(self, attribute: str, value: Any) -> None:
        raise AttributeError("Settings is immutable")

    def as_dict(self) -> dict[str, Any]:
        """Return every declared option's value, by key (defaults filled in).

        Returns:
            ``{key: value}``, JSON-serialisable.
        """
        values = {name: opt.default for name, (_, opt) in family_options().items()}
        values.update(self._values)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(values.items())}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in sorted(self._values.items()))})"


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


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class LineIndex:
    """Line starts of a text with Python's line breaks (``\\r\\n``, ``\\r``, ``\\n``).

    ``ast`` reports columns as UTF-8 byte offsets within a line; rules and findings use
    character columns. This converts, cheaply for ASCII lines.

    Args:
        text: The source.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        starts = [0]
        if "\r" in text:
            starts.extend(m.end() for m in _LINE_BREAK.finditer(text))
        else:
            find, at = text.find, text.find("\n")
            while at >= 0:
                starts.append(at + 1)
                at = find("\n", at + 1)
        self.starts = starts

    def line_text(self, line: int) -> str:
        """Return a 1-based line's text without its line break ("" past the end).

        Args:
            line: 1-based line number.

        Returns:
            The line.
        """
        if not 1 <= line <= len(self.starts):
            return ""
        start = self.starts[line - 1]
        end = self.starts[line] if line < len(self.starts) else len(self.text)
        return self.text[start:end].rstrip("\r\n")

    def char_col(self, line: int, byte_col: int) -> int:
        """Convert ``ast``'s UTF-8 byte column on a 1-based line to a character column.

        Args:
            line: 1-based line.
            byte_col: Byte offset within the line.

        Returns:
            The character offset.
        """
        text = self.line_text(line)
        if text.isascii():
            return byte_col
        return len(text.encode("utf-8")[:byte_col].decode("utf-8", "replace"))

    def offset(self, line: int, col: int) -> int:
        """Return the character offset in the text of a (1-based line, char column).

        Args:
            line: 1-based line.
            col: Character column.

        Returns:
            The offset.
        """
        return self.starts[min(max(line, 1), len(self.starts)) - 1] + col

    def position(self, offset: int) -> tuple[int, int]:
        """Return the (1-based line, character column) of a character offset.

        Args:
            offset: Character offset in the text.

        Returns:
            The position.
        """
        index = bisect.bisect_right(self.starts, offset) - 1
        return index + 1, offset - self.starts[index]


def parse_cst(source: str) -> Any:
    """Parse ``source`` with libcst and wrap it for metadata (the lazy tier's factory).

    Args:
        source: Text that CPython's ``ast`` already accepted.

    Returns:
        A ``libcst.metadata.MetadataWrapper``.
    """
    import libcst
    from libcst.metadata import MetadataWrapper

    return MetadataWrapper(libcst.parse_module(source), unsafe_skip_copy=True)


class _MemoContext:
    """The memo and option lookup that :class:`FileContext` and :class:`ProjectContext` share.

    A subclass sets ``self.settings`` and ``self._memo = {}`` in its ``__init__``.
    """

    settings: Settings
    _memo: dict[Any, Any]

    def cache(self, key: Any, factory: Callable[[], Any]) -> Any:
        """Return the value stored under ``key``, computing it once.

        Rules that share an analysis (every documentation rule reads one parse of each
        docstring) call ``ctx.cache("docs.analysis", lambda: build(ctx))``; the first
        call builds it, the others reuse it. A :class:`FileContext`'s memo lives as
        long as the file's context, so nothing leaks from one file to the next; a
        :class:`ProjectContext`'s lasts the run, so project rules that share an index
        (a class hierarchy, README code blocks) build it once.

        Args:
            key: Any hashable key; prefix it with the family name to avoid clashes.
            factory: Called with no arguments on the first request.

        Returns:
            The stored value.
        """
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = factory()
            return value

    def option(self, name: str) -> Any:
        """Return a family option's validated value (``ctx.option("public-api")``).

        Args:
            name: The option's key.

        Returns:
            The value in force for this run.
        """
        return self.settings.option(name)


class FileContext(_MemoContext):
    """What a rule sees of one file: its text, its ``ast`` tree, a lazy libcst tree, options.

    Attributes:
        path: The file's path relative to the project root, with ``/`` separators.
        source: The file's text (for a notebook cell, that cell's code with magics
            blanked out; ``cell`` is then the 1-based cell number).
        tree: CPython's ``ast.Module`` of ``source`` (always set for Python files and
            cells; ``None`` for text files).
        settings: The validated :class:`Settings`.
        cell: The notebook cell number, or ``None`` for a ``.py`` file.
        ancestors: During an :class:`AstVisitorRule` walk, the ``ast`` nodes enclosing
            the node being visited, outermost first.
        kind: ``python`` or ``text``.

    The libcst tier (``cst``/``module``, ``wrapper``) is built on first access and
    counted in :data:`CST_BUILDS`.
    """

    def __init__(self, path: str, source: str, tree: Any, settings: Settings | None = None,
                 cell: int | None = None, *, wrapper: Any = None, kind: str | None = None,
                 cst_factory: Callable[[str], Any] | None = None) -> None:
        if tree is not None and not isinstance(tree, ast.AST):
            wrapper, tree = tree, None  # an old-style call handing in a MetadataWrapper
        self.path = path
        self.source = source
        self.settings = settings if settings is not None else Settings()
        self.cell = cell
        self.kind = kind or ("python" if tree is not None or wrapper is not None else "text")
        if tree is None and self.kind == "python":
            tree = ast.parse(source)
        self.tree = tree
        self.ancestors: list[Any] = []
        self._wrapper = wrapper
        self._cst_factory = cst_factory or parse_cst
        self._metadata: dict[Any, Any] = {}
        self._positions: Any = None
        self._lines: LineIndex | None = None
        self._memo: dict[Any, Any] = {}

    @classmethod
    def from_source(cls, source: str, path: str = "example.py",
                    settings: Settings | None = None) -> "FileContext":
        """Parse ``source`` with ``ast`` and return a context for it (used by tests).

        Args:
            source: Python source.
            path: The path the file is linted as.
            settings: Options (defaults when ``None``).

        Returns:
            The context; its libcst tree is built only if a rule asks for it.
        """
        return cls(path, source, ast.parse(source), settings or Settings())

    # -- the libcst tier ----------------------------------------------------------------
    @property
    def wrapper(self) -> Any:
        """The ``libcst.metadata.MetadataWrapper`` of the file, built on first access.

        Raises:
            CstUnavailable: libcst cannot parse text that CPython accepted.
        """
        if self._wrapper is None:
            if self.kind != "python":
                return None
            global CST_BUILDS
            CST_BUILDS += 1
            try:
                self._wrapper = self._cst_factory(self.source)
            except RecursionError:
                raise CstUnavailable("the code is nested too deeply for libcst") from None
            except Exception as exc:
                if type(exc).__name__ == "ParserSyntaxError":
                    first = str(getattr(exc, "message", exc)).strip().splitlines()
                    raise CstUnavailable(f"libcst cannot parse it: {first[0] if first else exc}") from None
                raise
        return self._wrapper

    @property
    def module(self) -> Any:
        """The libcst ``Module`` (belongs to :attr:`wrapper`, so metadata lookups work)."""
        wrapper = self.wrapper
        return wrapper.module if wrapper is not None else None

    @property
    def cst(self) -> Any:
        """Alias of :attr:`module`."""
        return self.module

    @property
    def has_cst(self) -> bool:
        """Whether the libcst tree was built (without building it)."""
        return self._wrapper is not None

    def metadata(self, provider: Any) -> Any:
        """Return ``{node: value}`` for a libcst metadata provider, resolved once per file.

        Args:
            provider: A libcst metadata provider class.

        Returns:
            The resolved mapping.
        """
        if provider not in self._metadata:
            self._metadata[provider] = self.wrapper.resolve(provider)
        return self._metadata[provider]

    # -- positions ------------------------------------------------------------------------
    @property
    def lines(self) -> LineIndex:
        """The file's :class:`LineIndex` (line starts; byte to character columns)."""
        if self._lines is None:
            self._lines = LineIndex(self.source)
        return self._lines

    def position(self, node: Any) -> tuple[int, int, int, int]:
        """Return ``(line, col, end_line, end_col)`` of a node (1-based lines, 0-based cols).

        Args:
            node: An ``ast`` node (its UTF-8 byte columns become character columns) or
                a libcst node (positions of libcst's ``PositionProvider``, computed by
                the cheaper pass of :mod:`mlcheck_lint.positions`).

        Returns:
            The node's span in characters.
        """
        if isinstance(node, ast.AST):
            lines = self.lines
            line = node.lineno
            end_line = getattr(node, "end_lineno", None) or line
            end_col = getattr(node, "end_col_offset", None)
            end = lines.char_col(end_line, end_col) if end_col is not None else None
            col = lines.char_col(line, node.col_offset)
            return line, col, end_line, col if end is None else end
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
        """Return a :class:`Finding` located at ``node`` (an ``ast`` or libcst node).

        Args:
            code: The rule code.
            node: Where the finding points.
            message: What is wrong.
            fix: An optional fix.

        Returns:
            The finding.
        """
        line, col, end_line, end_col = self.position(node)
        return Finding(code=code, message=message, line=line, col=col, end_line=end_line,
                       end_col=end_col, fix=fix, path=self.path, cell=self.cell)

    def edit(self, node: Any, replacement: Any) -> Edit:
        """Return an :class:`Edit` replacing ``node`` by a string or a libcst node.

        Args:
            node: An ``ast`` or libcst node.
            replacement: The new text, or a libcst node rendered with this module.

        Returns:
            The edit.
        """
        line, col, end_line, end_col = self.position(node)
        text = replacement if isinstance(replacement, str) else self.module.code_for_node(replacement)
        return Edit(line, col, end_line, end_col, text)

    def segment(self, node: Any) -> str:
        """Return the source text of an ``ast`` node (``ast.get_source_segment``, faster).

        Args:
            node: An ``ast`` node with positions.

        Returns:
            The text, or ``""`` for a node without positions.
        """
        if getattr(node, "end_lineno", None) is None:
            return ""
        line, col, end_line, end_col = self.position(node)
        lines = self.lines
        return self.source[lines.offset(line, col):lines.offset(end_line, end_col)]


class ProjectContext(_MemoContext):
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
        self._memo: dict[Any, Any] = {}

    def read_text(self, relpath: str) -> str | None:
        """Return a project file's text, or ``None`` when it does not exist or is not text.

        Bytes that are not UTF-8 are replaced (U+FFFD) rather than raised, so one bad
        byte in a README never stops a rule.

        Args:
            relpath: Path relative to the project root.

        Returns:
            The text or ``None``.
        """
        import os
        import stat

        p = self.root / relpath
        try:
            if not stat.S_ISREG(os.stat(p).st_mode):
                return None
            return p.read_bytes().decode("utf-8", "replace")
        except OSError:
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
    #: Empty means :data:`TEXT_FILE_PATTERNS`. A text rule's ``ctx.tree``,
    #: ``ctx.module`` and ``ctx.wrapper`` are ``None``; it reads ``ctx.source``.
    text_files: ClassVar[tuple[str, ...]] = ()
    #: The tree the rule analyses: ``ast`` (``ctx.tree``, the default) or ``cst`` (the
    #: engine builds the libcst tree for every file the rule's prefilter lets through).
    needs: ClassVar[str] = "ast"

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


class _VisitorBase(Rule):
    """What the ast and libcst visitor rules share: per-file state and ``report``."""

    def begin_file(self, ctx: Any) -> None:
        """Start a file: keep the context and reset the findings (call it when overriding).

        Args:
            ctx: The file's :class:`FileContext`.
        """
        self.ctx = ctx
        self.findings: list[Finding] = []

    def end_file(self) -> Iterable[Finding]:
        """Finish a file after the walk and return its findings.

        Returns:
            The findings gathered by :meth:`report` (override to add more).
        """
        return self.findings

    def report(self, node: Any, message: str, fix: Fix | None = None) -> None:
        """Record a finding of this rule at ``node``.

        Args:
            node: Where it points (an ``ast`` or libcst node).
            message: What is wrong.
            fix: An optional fix.
        """
        self.findings.append(self.ctx.finding(self.code, node, message, fix))

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Run this rule alone (the engine walks all visitor rules of a file together).

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        from .traversal import walk_ast, walk_cst

        self.begin_file(ctx)
        (walk_cst if self.needs == "cst" else walk_ast)(ctx, [self])
        return list(self.end_file() or ())


class AstVisitorRule(_VisitorBase):
    """A rule made of ``visit_<AstClass>(node)`` / ``leave_<AstClass>(node)`` handlers.

    The engine runs the handlers of every selected visitor rule of a file in one
    non-recursive walk of ``ctx.tree`` (children in field order, so source order).
    ``self.ctx.ancestors`` lists the enclosing nodes, outermost first. A
    ``visit_`` handler returning ``False`` skips that node's children for this rule.
    Call ``self.report(node, message)`` to record a finding.
    """

    needs: ClassVar[str] = "ast"


class CstVisitorRule(_VisitorBase):
    """A rule made of libcst ``visit_<CstClass>`` / ``leave_<CstClass>`` handlers.

    Handlers of every selected libcst visitor rule of a file run in one libcst batched
    pass (``libcst.BatchableCSTVisitor``); ``METADATA_DEPENDENCIES`` of all of them are
    resolved once. Inside handlers, ``self.get_metadata(Provider, node)`` works as in
    libcst, and ``self.report(node, message)`` records a finding.
    """

    needs: ClassVar[str] = "cst"
    #: libcst metadata providers the handlers read.
    METADATA_DEPENDENCIES: ClassVar[tuple[Any, ...]] = ()

    def get_metadata(self, provider: Any, node: Any, default: Any = None) -> Any:
        """Return a node's metadata value from the file's resolved provider.

        Args:
            provider: A provider in ``METADATA_DEPENDENCIES``.
            node: A libcst node of this file.
            default: Returned when the provider has no value for the node.

        Returns:
            The value.
        """
        return self.ctx.metadata(provider).get(node, default)


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
    if cls.needs not in ("ast", "cst"):
        raise ValueError(f"{cls.code}: needs must be 'ast' or 'cst'")
    REGISTRY[cls.code] = cls
    return cls


def load_families(families: Iterable[str] | None = None) -> list[tuple[str, Any]]:
    """Import every rule family package; return ``[(name, module), ...]``.

    Args:
        families: Family names (default :data:`FAMILIES`).

    Returns:
        The imported packages, in the listed order.

    Raises:
        FamilyError: A family is missing or raises on import; the message names it.
    """
    import importlib

    out = []
    for family in FAMILIES if families is None else families:
        name = f"mlcheck_lint.rules.{family}"
        try:
            out.append((family, importlib.import_module(name)))
        except Exception as exc:
            missing = isinstance(exc, ModuleNotFoundError) and exc.name == name
            raise FamilyError(
                f"rule family {family!r} (listed in mlcheck_lint.api.FAMILIES) "
                + ("does not exist: no package mlcheck_lint/rules/" + family + "/" if missing
                   else f"failed to import: {type(exc).__name__}: {exc}")) from exc
    return out


def iter_rules() -> Iterator[type[Rule]]:
    """Import every family and yield all registered rules, sorted by code.

    Returns:
        An iterator of rule classes.
    """
    load_families()
    yield from (REGISTRY[c] for c in sorted(REGISTRY))
