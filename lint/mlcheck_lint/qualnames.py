"""Qualified names of the names a file imports, resolved from CPython's ``ast`` once per file.

A rule that looks for ``torch.nn.functional.dropout`` must find it however the file
spells it: ``F.dropout`` after ``import torch.nn.functional as F``, ``fn.dropout`` after
``from torch.nn import functional as fn``, ``nn.functional.dropout`` after
``from torch import nn``, or ``dropout`` after ``from torch.nn.functional import
dropout``. This module plays the role libcst's ``QualifiedNameProvider`` plays, on the
``ast`` tree the engine already has, so no concrete tree is built for analysis.

What binds a name (the first binding wins, module-level statements before those nested
in blocks, so a fallback such as ``except ImportError: F = None`` does not hide the
import):

* ``import a.b.c`` binds ``a`` to ``a``; ``import a.b.c as x`` binds ``x`` to ``a.b.c``;
* ``from a.b import c`` binds ``c`` to ``a.b.c`` (``as`` renames); a relative import is
  kept with its leading dots, and ``from a import *`` binds nothing;
* an assignment ``F = torch.nn.functional`` (one name, a dotted value whose root is
  imported) at module level aliases ``F`` to what the value resolves to.

Imports anywhere in the file count, inside functions, ``try`` and ``if`` blocks
included: scripts and notebooks import where they use. Only statements are scanned,
never expressions, which keeps the pass cheap.
"""

from __future__ import annotations

import ast
from typing import Iterator

_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers")


def dotted_parts(node: ast.AST) -> list[str] | None:
    """Return the names of a ``Name``/``Attribute`` chain, root first.

    Args:
        node: An expression, such as the ``func`` of a call.

    Returns:
        ``["torch", "nn", "functional", "dropout"]`` for ``torch.nn.functional.dropout``,
        or ``None`` when the chain does not end in a plain name (a call, a subscript).
    """
    parts: list[str] = []
    while type(node) is ast.Attribute:
        parts.append(node.attr)
        node = node.value
    if type(node) is not ast.Name:
        return None
    parts.append(node.id)
    parts.reverse()
    return parts


def dotted_name(node: ast.AST) -> str | None:
    """Return ``a.b.c`` for a ``Name``/``Attribute`` chain, or ``None``.

    Args:
        node: An expression.

    Returns:
        The dotted text as written (aliases not resolved).
    """
    parts = dotted_parts(node)
    return ".".join(parts) if parts else None


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    # Breadth first: a module's top-level imports bind before those nested in blocks.
    queue = [body]
    for block in queue:
        for stmt in block:
            yield stmt
            if type(stmt) in (ast.Import, ast.ImportFrom, ast.Assign, ast.Expr, ast.Return):
                continue
            for field in _BLOCK_FIELDS:
                sub = getattr(stmt, field, None)
                if sub:
                    if field == "handlers":
                        queue.extend(h.body for h in sub)
                    else:
                        queue.append(sub)
            if type(stmt) is ast.Match:
                queue.extend(case.body for case in stmt.cases)  # type: ignore[attr-defined]


class QualifiedNames:
    """The imports and aliases of one file, and the lookups rules make against them.

    Attributes:
        bindings: ``{local name: qualified name}`` (``"F": "torch.nn.functional"``).
    """

    def __init__(self, tree: ast.Module) -> None:
        self.bindings: dict[str, str] = {}
        for stmt in _statements(tree.body):
            kind = type(stmt)
            if kind is ast.Import:
                for alias in stmt.names:  # type: ignore[attr-defined]
                    if alias.asname:
                        self.bindings.setdefault(alias.asname, alias.name)
                    else:
                        root = alias.name.split(".", 1)[0]
                        self.bindings.setdefault(root, root)
            elif kind is ast.ImportFrom:
                module = "." * stmt.level + (stmt.module or "")  # type: ignore[attr-defined]
                for alias in stmt.names:  # type: ignore[attr-defined]
                    if alias.name == "*":
                        continue
                    sep = "" if module.endswith(".") or not module else "."
                    self.bindings.setdefault(alias.asname or alias.name, f"{module}{sep}{alias.name}")
        # Aliases by assignment, at module level only (a local variable named `nn` in a
        # function is not an alias of anything).
        for stmt in tree.body:
            if (type(stmt) is ast.Assign and len(stmt.targets) == 1
                    and type(stmt.targets[0]) is ast.Name
                    and type(stmt.value) in (ast.Attribute, ast.Name)):
                target = stmt.targets[0].id
                value = self.resolve(stmt.value)
                if value is not None and target not in self.bindings:
                    self.bindings[target] = value

    def resolve(self, node: ast.AST) -> str | None:
        """Return the qualified name of a dotted expression whose root is imported.

        Args:
            node: A ``Name`` or ``Attribute`` chain (``F.dropout``).

        Returns:
            ``torch.nn.functional.dropout``, or ``None`` when the root is not an imported
            name (a local variable, ``self``, a call result).
        """
        parts = dotted_parts(node)
        if not parts:
            return None
        base = self.bindings.get(parts[0])
        if base is None:
            return None
        return base if len(parts) == 1 else base + "." + ".".join(parts[1:])

    def imports(self, prefix: str) -> bool:
        """Return whether the file imports ``prefix`` or anything below it.

        Args:
            prefix: A module name such as ``torch`` or ``pandas``.

        Returns:
            True when some binding's qualified name is ``prefix`` or starts with ``prefix.``.
        """
        dotted = prefix + "."
        return any(q == prefix or q.startswith(dotted) for q in self.bindings.values())

    def local_name(self, qualified: str) -> str | None:
        """Return how this file can spell a qualified name, or ``None`` when it cannot.

        Used by fixes that insert a call: ``numpy.isnan`` is ``np.isnan`` after
        ``import numpy as np``.

        Args:
            qualified: A dotted name such as ``numpy.isnan``.

        Returns:
            The shortest spelling through an existing binding.
        """
        best: str | None = None
        for local, qual in self.bindings.items():
            if qualified == qual:
                candidate = local
            elif qualified.startswith(qual + "."):
                candidate = local + qualified[len(qual):]
            else:
                continue
            if best is None or len(candidate) < len(best):
                best = candidate
        return best
