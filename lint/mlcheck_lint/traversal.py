"""One walk per tier: the ``ast`` walk of every visitor rule of a file, and the libcst pass.

Hostile input nests without bound (a 10,000-term ``a + a + ...`` is a 10,000-deep
tree), so the ``ast`` walk keeps its own stack instead of recursing, and
:func:`ast_depth` lets the engine refuse to hand such a tree to libcst, whose parser
and visitors recurse.
"""

from __future__ import annotations

import ast
from typing import Any, Callable, Iterable

#: Deeper ``ast`` trees are not given to libcst (its parser and visitors recurse, and
#: a few thousand levels take minutes or crash the process).
MAX_CST_DEPTH = 400

_HANDLERS: dict[type, tuple[dict[str, str], dict[str, str]]] = {}


def _handler_names(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """Return ``({AstClass: visit method}, {AstClass: leave method})`` of a rule class."""
    found = _HANDLERS.get(cls)
    if found is None:
        visits = {a[6:]: a for a in dir(cls) if a.startswith("visit_") and callable(getattr(cls, a))}
        leaves = {a[6:]: a for a in dir(cls) if a.startswith("leave_") and callable(getattr(cls, a))}
        found = _HANDLERS[cls] = (visits, leaves)
    return found


def walk_ast(ctx: Any, rules: Iterable[Any],
             on_error: Callable[[Any, BaseException], None] | None = None) -> None:
    """Run the ``visit_*``/``leave_*`` handlers of every rule over ``ctx.tree`` in one walk.

    Nodes are entered in source order (each node's fields in declaration order).
    ``ctx.ancestors`` is the list of nodes enclosing the one being handled, outermost
    first. A ``visit_`` handler returning ``False`` hides that node's descendants from
    its rule; its ``leave_`` handler still runs. A handler that raises takes its rule
    out of the rest of the walk (``on_error(rule, exc)`` is told; without ``on_error``
    the exception propagates).

    Args:
        ctx: The file's :class:`~mlcheck_lint.api.FileContext`.
        rules: Visitor rule instances, ``begin_file`` already called.
        on_error: Called when a handler raises.
    """
    rules = list(rules)
    visit: dict[str, list[tuple[int, Callable[[Any], Any]]]] = {}
    leave: dict[str, list[tuple[int, Callable[[Any], Any]]]] = {}
    for index, rule in enumerate(rules):
        visits, leaves = _handler_names(type(rule))
        for name, attr in visits.items():
            visit.setdefault(name, []).append((index, getattr(rule, attr)))
        for name, attr in leaves.items():
            leave.setdefault(name, []).append((index, getattr(rule, attr)))
    if not visit and not leave:
        return
    dead: set[int] = set()
    hidden: dict[int, int] = {}  # rule index -> id of the node whose subtree it skips
    ancestors: list[Any] = []
    ctx.ancestors = ancestors
    iter_children = ast.iter_child_nodes
    LEAVE = object()
    stack: list[Any] = [ctx.tree]
    push, pop = stack.append, stack.pop

    def call(handlers: list[tuple[int, Callable[[Any], Any]]], node: Any, entering: bool) -> None:
        for index, handler in handlers:
            if index in dead or (index in hidden and hidden[index] != id(node)):
                continue
            try:
                result = handler(node)
            except Exception as exc:
                if on_error is None:
                    raise
                dead.add(index)
                on_error(rules[index], exc)
                continue
            if entering and result is False and index not in hidden:
                hidden[index] = id(node)

    while stack:
        node = pop()
        if node is LEAVE:
            node = ancestors.pop()
            handlers = leave.get(type(node).__name__)
            if handlers:
                call(handlers, node, False)
            if hidden:
                for index in [i for i, n in hidden.items() if n == id(node)]:
                    del hidden[index]
            continue
        handlers = visit.get(type(node).__name__)
        if handlers:
            call(handlers, node, True)
        ancestors.append(node)
        push(LEAVE)
        children = list(iter_children(node))
        children.reverse()
        stack.extend(children)
    ctx.ancestors = []


def ast_depth(tree: Any, limit: int) -> int:
    """Return the depth of an ``ast`` tree, or ``limit + 1`` as soon as it exceeds ``limit``.

    Args:
        tree: An ``ast`` node.
        limit: Stop counting past this depth.

    Returns:
        The depth (1 for a leaf).
    """
    deepest = 0
    stack = [(tree, 1)]
    iter_children = ast.iter_child_nodes
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        for child in iter_children(node):
            stack.append((child, depth + 1))
    return deepest


def walk_cst(ctx: Any, rules: Iterable[Any],
             on_error: Callable[[Any, BaseException], None] | None = None) -> None:
    """Run the libcst handlers of every rule in one batched pass over ``ctx.module``.

    Metadata named in the rules' ``METADATA_DEPENDENCIES`` is resolved once for the
    file (``ctx.metadata``) before the pass. libcst's batched visitors cannot skip
    children, so a handler's return value is ignored. A rule whose handler raises is
    reported to ``on_error`` and dropped from the rest of the pass.

    Args:
        ctx: The file's context (its libcst tree is built here if it was not yet).
        rules: :class:`~mlcheck_lint.api.CstVisitorRule` instances, ``begin_file`` called.
        on_error: Called when a handler raises (without it the exception propagates).
    """
    import libcst

    rules = list(rules)
    for rule in rules:
        for provider in getattr(rule, "METADATA_DEPENDENCIES", ()):
            ctx.metadata(provider)
    dead: set[int] = set()
    table: dict[str, list[tuple[int, Callable[[Any], Any]]]] = {}
    for index, rule in enumerate(rules):
        visits, leaves = _handler_names(type(rule))
        for name, attr in visits.items():
            table.setdefault("visit_" + name, []).append((index, getattr(rule, attr)))
        for name, attr in leaves.items():
            table.setdefault("leave_" + name, []).append((index, getattr(rule, attr)))

    def fan_out(handlers: list[tuple[int, Callable[[Any], Any]]]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            for index, handler in handlers:
                if index in dead:
                    continue
                try:
                    handler(*args)
                except Exception as exc:
                    if on_error is None:
                        raise
                    dead.add(index)
                    on_error(rules[index], exc)
        return run

    class _Batch(libcst.BatchableCSTVisitor):
        def get_visitors(self) -> dict[str, Callable[..., None]]:
            return {name: fan_out(handlers) for name, handlers in table.items()}

    if table:
        from libcst._batched_visitor import visit_batched

        visit_batched(ctx.module, [_Batch()])
