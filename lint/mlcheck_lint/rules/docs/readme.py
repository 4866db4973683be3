"""MLC140, MLC141: README and docs code blocks that no longer match the project's API.

Both rules read the same facts (:func:`mlcheck_lint.project_index.module_facts`, once
per file) and the same parsed code blocks (once per run, through the project memo);
they differ only in what they report: names that do not exist (MLC140) and keywords a
callable does not accept (MLC141). Blocks are parsed with ``ast`` and never run.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Iterable

from ...api import Finding, LineIndex, ProjectRule, register
from ...markdown_blocks import blank_shell, code_blocks, doc_files
from ...project_index import ProjectIndex, module_facts

#: ``from`` and the whitespace before the module name of an ``ImportFrom``.
_FROM = re.compile(r"from(?:[ \t\f]|\\\r?\n)+")


class _BlockRefs:
    """Project imports, attribute chains and keyword calls in one parsed code block.

    Every reference keeps its ``(line, col, end_line, end_col)`` in the block's text
    (1-based lines, character columns).
    """

    def __init__(self, tree: Any, text: str, packages: set[str]) -> None:
        self.lines = LineIndex(text)
        self.text = text
        self.packages = packages
        self.imports: list[tuple[tuple[int, int, int, int], str, str | None]] = []  # where, module, name
        self.bound: dict[str, str] = {}  # local name -> "module" dotted or "module:name"
        self.chains: list[tuple[tuple[int, int, int, int], list[str]]] = []
        self.calls: list[tuple[Any, list[str], list[tuple[tuple[int, int, int, int], str]]]] = []
        self._walk(tree)

    def _span(self, node: Any, length: int | None = None) -> tuple[int, int, int, int]:
        line = node.lineno
        col = self.lines.char_col(line, node.col_offset)
        if length is not None:
            return line, col, line, col + length
        end_line = node.end_lineno
        return line, col, end_line, self.lines.char_col(end_line, node.end_col_offset)

    def _walk(self, tree: Any) -> None:
        stack = [tree]
        while stack:
            node = stack.pop()
            descend = True
            if isinstance(node, ast.Import):
                self._import(node)
            elif isinstance(node, ast.ImportFrom):
                self._import_from(node)
            elif isinstance(node, ast.Attribute):
                chain = _chain(node)
                if chain and chain[0] in self.bound:
                    self.chains.append((self._span(node), chain))
                    descend = False
            elif isinstance(node, ast.Call):
                self._call(node)
            if descend:
                children = list(ast.iter_child_nodes(node))
                children.reverse()
                stack.extend(children)

    def _import(self, node: Any) -> None:
        for alias in node.names:
            dotted = alias.name
            if dotted.split(".")[0] not in self.packages:
                continue
            self.imports.append((self._span(alias, len(dotted)), dotted, None))
            if alias.asname is not None:
                self.bound[alias.asname] = dotted
            else:
                self.bound[dotted.split(".")[0]] = dotted.split(".")[0]

    def _import_from(self, node: Any) -> None:
        if node.level or node.module is None:
            return
        module = node.module
        if module.split(".")[0] not in self.packages:
            return
        start = self.lines.offset(node.lineno, self.lines.char_col(node.lineno, node.col_offset))
        head = _FROM.match(self.text, start)
        line, col = self.lines.position(head.end() if head else start)
        self.imports.append(((line, col, line, col + len(module)), module, None))
        for alias in node.names:
            if alias.name == "*":
                return
            self.imports.append((self._span(alias, len(alias.name)), module, alias.name))
            self.bound[alias.asname or alias.name] = f"{module}:{alias.name}"

    def _call(self, node: Any) -> None:
        chain = _chain(node.func)
        if chain and chain[0] in self.bound:
            kws = [(self._span(k, len(k.arg)), k.arg) for k in node.keywords if k.arg is not None]
            if kws and not any(k.arg is None for k in node.keywords):
                self.calls.append((node, chain, kws))


def _chain(node: Any) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def _parsed_blocks(project: Any, packages: set[str]) -> list[tuple[str, int, list[tuple[int, str]], _BlockRefs]]:
    """Every parsable code block of the README and docs that mentions a project package."""
    out = []
    for rel in doc_files(project):
        text = project.read_text(rel)
        if not text:
            continue
        for first, block in code_blocks(text, rel.endswith(".rst")):
            source = "\n".join(blank_shell(line) for _, line in block) + "\n"
            if not any(pkg in source for pkg in packages):
                continue
            try:
                tree = ast.parse(source)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue  # pseudo-code or a console transcript: not checkable
            out.append((rel, first, block, _BlockRefs(tree, source, packages)))
    return out


class _ReadmeRule(ProjectRule):
    """What MLC140 and MLC141 share: the facts they collect and the blocks they read."""

    def collect(self, ctx: Any) -> Any:
        """Return the module's top-level names, imports and signatures.

        Args:
            ctx: The file's context.

        Returns:
            JSON-serialisable facts (computed once per file for both rules).
        """
        return ctx.cache("project_index.module_facts", lambda: module_facts(ctx.tree, ctx.source))

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Yield this rule's findings over the README and docs code blocks.

        Args:
            project: The project's context.

        Returns:
            The findings.
        """
        index = ProjectIndex(project.facts.get(self.code, {}), project.files, project.option("packages"))
        if not index.modules:
            return []
        blocks = project.cache(("docs.readme-blocks", tuple(sorted(index.packages))),
                               lambda: _parsed_blocks(project, index.packages))
        out: list[Finding] = []
        for rel, first, block, refs in blocks:
            def at(where: tuple[int, int, int, int], message: str) -> Finding:
                line, col, end_line, end_col = where
                li = line - 1
                col_off = block[li][0] if li < len(block) else 0
                return Finding(self.code, message, first + li, col_off + col, first + li,
                               col_off + col + (end_col - col if end_line == line else 0), path=rel)

            out.extend(self._block_findings(index, refs, at))
        return out

    def _block_findings(self, index: ProjectIndex, refs: _BlockRefs, at: Any) -> list[Finding]:
        """Return the findings of one code block.

        Args:
            index: The project's symbol index.
            refs: The block's references.
            at: Builds a finding from a block position and a message.

        Returns:
            The findings.
        """
        raise NotImplementedError


@register
class ReadmeNameMissing(_ReadmeRule):
    """A Python code block in the README or docs references a project name that does not exist.

    What it does:
        Reads the ```` ```python ```` (and ``py``, ``pycon``) blocks of ``README.md``
        and ``docs/**/*.md``, and ``.. code-block:: python`` blocks of ``.rst`` files,
        without running them. It reports an ``import`` or ``from ... import`` of the
        project's own packages, or an attribute chain through them (``pkg.models.
        build``), that names a module, function or class the project no longer has.
        Modules with a module-level ``__getattr__`` and unresolvable star imports are
        treated as defining anything. Blocks that do not parse are skipped. The
        finding points at the markdown file and line.

    Why is this bad?
        The README is the first code users run. After a rename it fails on the first
        line, and users conclude the project is broken.

    Example:
        ```python
        from mypkg.models import build_resnet   # renamed to create_model
        ```

    Use instead:
        ```python
        from mypkg.models import create_model
        ```
    """

    code = "MLC140"
    name = "readme-name-missing"
    summary = "a README/docs code block references a project name that does not exist"
    default = "on"

    def _block_findings(self, index: ProjectIndex, refs: _BlockRefs, at: Any) -> list[Finding]:
        """Return the block's imports and attribute chains that name nothing in the project."""
        out = []
        reported: set[str] = set()
        for where, module, name in refs.imports:
            if name is None:
                if module not in index.modules and index.missing_module(module) and module not in reported:
                    reported.add(module)
                    out.append(at(where, f"code block imports `{module}`, but the project has no "
                                         f"such module: the example no longer runs; update it"))
                continue
            if module not in index.modules:
                continue
            kind, _ = index.lookup(module, name)
            if kind == "missing" and f"{module}.{name}" not in reported:
                reported.add(f"{module}.{name}")
                out.append(at(where, f"code block imports `{name}` from `{module}`, which does not "
                                     f"define it: the example no longer runs; update it to the current API"))
        for where, chain in refs.chains:
            kind, _, reached = index.resolve_chain(refs.bound[chain[0]], chain[1:])
            if kind in ("missing", "missing-attr") and reached not in reported:
                reported.add(reached)
                out.append(at(where, f"code block uses `{'.'.join(chain)}`, but `{reached}` does not "
                                     f"exist in the project: the example no longer runs; update it"))
        return out


@register
class ReadmeBadKeyword(_ReadmeRule):
    """A README or docs code block calls a project callable with a keyword it does not accept.

    What it does:
        In the same code blocks as MLC140, resolves calls to the project's functions,
        classes (their ``__init__``, or a dataclass's fields) and class methods, and
        reports a keyword argument that is not in the signature. Callables taking
        ``**kwargs``, classes inheriting their ``__init__``, and calls with ``**opts``
        are not checked.

    Why is this bad?
        ``train(model, learning_rate=3e-4)`` in the README after the parameter became
        ``lr`` raises ``TypeError`` for every new user, and silently drops the value if
        the callable forwards unknown keywords.

    Example:
        ```python
        from mypkg import train
        train(model, learning_rate=3e-4)
        ```

    Use instead:
        ```python
        from mypkg import train
        train(model, lr=3e-4)
        ```
    """

    code = "MLC141"
    name = "readme-bad-keyword"
    summary = "a README/docs code block calls a project callable with an unknown keyword"
    default = "on"

    def _block_findings(self, index: ProjectIndex, refs: _BlockRefs, at: Any) -> list[Finding]:
        """Return the block's keyword arguments that the called signature does not accept."""
        out = []
        for _node, chain, kws in refs.calls:
            kind, value, reached = index.resolve_chain(refs.bound[chain[0]], chain[1:])
            sig = None
            if kind == "def" and value.get("kind") == "function":
                sig = value
            elif kind == "def" and value.get("kind") == "class":
                sig = value.get("init")
            elif kind == "method":
                sig = value
            if not sig or sig["kwargs"]:
                continue
            for where, kw in kws:
                if kw not in sig["params"]:
                    accepted = ", ".join(sig["params"]) or "none"
                    out.append(at(where, f"code block calls `{reached}` with keyword `{kw}=`, which "
                                         f"its signature does not accept (keywords: {accepted}): the example "
                                         f"raises TypeError; update it"))
        return out
