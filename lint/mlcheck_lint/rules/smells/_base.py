"""Shared machinery of the ML smell rules: the visitor base, positions, edits, facts.

Every smell rule is an :class:`AstVisitorRule`: its ``visit_<Node>``/``leave_<Node>``
handlers run in the engine's one ``ast`` walk of the file, beside every other selected
rule's. Facts several rules need (the file's qualified names, which classes are
``nn.Module`` subclasses, the source lines) are built once per file through
:func:`file_cache`.

Positions: CPython's ``ast`` gives UTF-8 byte columns; findings and edits use
character columns, which ``ctx.position`` converts to.

Fixes are text edits computed from ``ast`` positions (:func:`replace`, :func:`insert_after`);
none needs a concrete tree.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Callable

from ... import api
from ...api import Edit, Finding, Fix
from ...qualnames import QualifiedNames, dotted_name, dotted_parts

__all__ = ["AstVisitorRule", "Edit", "Finding", "Fix", "QualifiedNames", "dotted_name", "dotted_parts"]


def file_cache(ctx: Any, key: str, factory: Callable[[], Any]) -> Any:
    """Return a per-file value, built by ``factory`` on first use (``ctx.cache``).

    Args:
        ctx: The file context.
        key: The value's name, unique across rules (prefix ``smells.``).
        factory: Builds the value.

    Returns:
        The cached value.
    """
    return ctx.cache(key, factory)


# A notebook is linted cell by cell, in order, in one process; its imports usually sit
# in the first cells. What the smell rules learn from earlier cells (imports, which
# names hold frames, optimizers, loss objects) carries over to later cells of the same
# notebook. A path change or a cell number going back starts afresh.
_NOTEBOOK: dict[str, Any] = {"path": None, "cell": 0, "values": {}}


def notebook_state(ctx: Any, key: str, factory: Callable[[], Any]) -> Any:
    """Return state shared by the cells of one notebook (fresh for every ``.py`` file).

    Args:
        ctx: The file (or cell) context.
        key: The state's name, unique across rules.
        factory: Builds the initial state.

    Returns:
        The state object: the same one for every later cell of the notebook.
    """
    if ctx.cell is None:
        return ctx.cache("smells.state." + key, factory)
    if _NOTEBOOK["path"] != ctx.path or ctx.cell < _NOTEBOOK["cell"]:
        _NOTEBOOK.update(path=ctx.path, cell=ctx.cell, values={})
    _NOTEBOOK["cell"] = ctx.cell
    values = _NOTEBOOK["values"]
    if key not in values:
        values[key] = factory()
    return values[key]


def _build_names(ctx: Any) -> QualifiedNames:
    names = QualifiedNames(ctx.tree)
    if ctx.cell is not None:
        earlier = notebook_state(ctx, "bindings", dict)
        for local, qualified in earlier.items():
            names.bindings.setdefault(local, qualified)
        earlier.update(names.bindings)
    return names


def qualified_names(ctx: Any) -> QualifiedNames:
    """Return the file's :class:`~mlcheck_lint.qualnames.QualifiedNames`, built once.

    In a notebook cell, names imported by earlier cells resolve too.

    Args:
        ctx: The file context.

    Returns:
        The imports and aliases of the file.
    """
    return ctx.cache("qualnames", lambda: _build_names(ctx))


def source_lines(ctx: Any) -> list[str]:
    """Return the file's lines without line ends (built once per file).

    Args:
        ctx: The file context.

    Returns:
        The lines; ``lines[n - 1]`` is line ``n``.
    """
    return ctx.cache("smells.lines", lambda: ctx.source.splitlines())


def span(ctx: Any, node: ast.AST) -> tuple[int, int, int, int]:
    """Return ``(line, col, end_line, end_col)`` of a node in character columns.

    Args:
        ctx: The file context.
        node: An ``ast`` node with positions.

    Returns:
        1-based lines and 0-based character columns.
    """
    return ctx.position(node)


def text_of(ctx: Any, node: ast.AST) -> str:
    """Return a node's source text.

    Args:
        ctx: The file context.
        node: An ``ast`` node with positions.

    Returns:
        The exact text between its start and end.
    """
    line, col, end_line, end_col = span(ctx, node)
    lines = source_lines(ctx)
    if line == end_line:
        return lines[line - 1][col:end_col]
    return "\n".join([lines[line - 1][col:], *lines[line:end_line - 1], lines[end_line - 1][:end_col]])


def replace(ctx: Any, node: ast.AST, text: str) -> Edit:
    """Return an edit replacing a node's text.

    Args:
        ctx: The file context.
        node: The node.
        text: The replacement.

    Returns:
        The edit.
    """
    return Edit(*span(ctx, node), text)


def replace_between(ctx: Any, start: ast.AST, start_at_end: bool, end: ast.AST, text: str) -> Edit:
    """Return an edit replacing the text from one node's start (or end) to another's end.

    Args:
        ctx: The file context.
        start: The node where the edit starts.
        start_at_end: Start at the end of ``start`` rather than its beginning.
        end: The node where the edit ends (at its end).
        text: The replacement.

    Returns:
        The edit.
    """
    a = span(ctx, start)
    b = span(ctx, end)
    line, col = (a[2], a[3]) if start_at_end else (a[0], a[1])
    return Edit(line, col, b[2], b[3], text)


def insert_after(ctx: Any, node: ast.AST, text: str) -> Edit:
    """Return an edit inserting text right after a node.

    Args:
        ctx: The file context.
        node: The node.
        text: What to insert.

    Returns:
        The edit (an empty span).
    """
    _, _, line, col = span(ctx, node)
    return Edit(line, col, line, col, text)


AstVisitorRule = api.AstVisitorRule

#: Import lines that make a notebook cell worth reading even when it holds nothing
#: else: later cells resolve their names through it (see :func:`notebook_state`).
ML_IMPORTS = ("import torch", "from torch", "import numpy", "from numpy", "import pandas", "from pandas",
              "import sklearn", "from sklearn", "import math", "from math", "import tensorflow",
              "from tensorflow", "import torchvision", "from torchvision", "import transformers",
              "from transformers", "import timm", "from timm")


class SmellRule(AstVisitorRule):
    """Base of the smell rules: in a notebook, every cell a rule reads records its imports."""

    def begin_file(self, ctx: Any) -> None:
        """Start a file or notebook cell.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        if ctx.cell is not None:
            qualified_names(ctx)


class ScopedSmellRule(SmellRule):
    """A smell rule that keeps one state per function: ``self.scopes[-1]`` is the innermost.

    ``_new_scope()`` makes a state: the module's, at the start of a file, then one
    per function. ``_finish(state)`` runs as each function closes, and at the end
    of the file for the scopes still open (the module's).
    """

    def _new_scope(self) -> Any:
        """Return a fresh per-scope state (override)."""
        raise NotImplementedError

    def _finish(self, scope: Any) -> None:
        """Report on a closed scope's state (nothing by default)."""

    def begin_file(self, ctx: Any) -> None:
        """Start a file with the module's scope open.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.scopes: list[Any] = [self._new_scope()]

    def visit_FunctionDef(self, node: ast.AST) -> None:
        """Open a function's scope.

        Args:
            node: The function.
        """
        self.scopes.append(self._new_scope())

    def leave_FunctionDef(self, node: ast.AST) -> None:
        """Close a function's scope and report on it.

        Args:
            node: The function.
        """
        self._finish(self.scopes.pop())

    visit_AsyncFunctionDef = visit_FunctionDef
    leave_AsyncFunctionDef = leave_FunctionDef

    def end_file(self) -> list:
        """Report on the scopes still open (the module's: scripts, notebook cells).

        Returns:
            The findings.
        """
        while self.scopes:
            self._finish(self.scopes.pop())
        return super().end_file()


# --------------------------------------------------------------------------- shared facts

#: variable names that, in ML code, hold a model (``model``, ``net``, ``encoder_a``, ``teacher``).
MODEL_NAME = re.compile(r"(model|net|network|encoder|decoder|classifier|generator|discriminator|backbone|"
                        r"teacher|student)\w*", re.IGNORECASE)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.Module)
LOOPS = (ast.For, ast.AsyncFor, ast.While)
_MODULE_BASE_HINTS = ("LightningModule", "PreTrainedModel", "ModelMixin")


def scope_index(ancestors: list[ast.AST]) -> int:
    """Return the index in ``ancestors`` of the innermost function, class or module.

    Args:
        ancestors: The enclosing nodes, outermost first.

    Returns:
        The index (``-1`` when there is none).
    """
    for i in range(len(ancestors) - 1, -1, -1):
        if isinstance(ancestors[i], _SCOPES):
            return i
    return -1


def loops_in_scope(ancestors: list[ast.AST]) -> list[ast.AST]:
    """Return the loops enclosing a node inside its own function, outermost first.

    Args:
        ancestors: The enclosing nodes, outermost first.

    Returns:
        ``for``/``while`` statements (a loop of an outer function does not count).
    """
    start = scope_index(ancestors)
    return [a for a in ancestors[start + 1:] if isinstance(a, LOOPS)]


def enclosing_method(ancestors: list[ast.AST]) -> tuple[ast.ClassDef, ast.AST] | None:
    """Return ``(class, method)`` when a node sits inside a method of a class.

    The method is the function directly in the class body; a node in a function nested
    in that method still belongs to it.

    Args:
        ancestors: The enclosing nodes, outermost first.

    Returns:
        The pair, or ``None``.
    """
    for i in range(len(ancestors) - 1, -1, -1):
        if type(ancestors[i]) is ast.ClassDef:
            if i + 1 < len(ancestors) and type(ancestors[i + 1]) in (ast.FunctionDef, ast.AsyncFunctionDef):
                return ancestors[i], ancestors[i + 1]  # type: ignore[return-value]
            return None
    return None


def first_param(function: ast.AST) -> str | None:
    """Return the name of a function's first positional parameter (``self``).

    Args:
        function: A function definition.

    Returns:
        The name, or ``None`` for a function without positional parameters or a
        ``staticmethod``.
    """
    args = function.args  # type: ignore[attr-defined]
    for deco in getattr(function, "decorator_list", ()):
        if dotted_name(deco) in ("staticmethod", "classmethod"):
            return None
    params = args.posonlyargs + args.args
    return params[0].arg if params else None


def class_defs(tree: ast.Module) -> list[ast.ClassDef]:
    out: list[ast.ClassDef] = []
    queue: list[list[ast.stmt]] = [tree.body]
    for block in queue:
        for stmt in block:
            if type(stmt) is ast.ClassDef:
                out.append(stmt)
                queue.append(stmt.body)
            elif type(stmt) in (ast.FunctionDef, ast.AsyncFunctionDef, ast.If, ast.Try, ast.With):
                queue.append(stmt.body)  # type: ignore[attr-defined]
                queue.append(getattr(stmt, "orelse", []))
    return out


def is_torch_module_base(qualified: str | None) -> bool:
    """Return whether a base class's qualified name is an ``nn.Module`` we know of.

    Args:
        qualified: The resolved name of a base class.

    Returns:
        True for ``torch.nn.*`` classes and the common framework module bases.
    """
    if not qualified:
        return False
    last = qualified.rsplit(".", 1)[-1]
    return (qualified.startswith("torch.nn.") and last[:1].isupper()) or last in _MODULE_BASE_HINTS


def module_classes(ctx: Any) -> dict[str, bool]:
    """Return ``{class name: is an nn.Module}`` for the classes defined in the file.

    A class is a module when a base is a known ``torch.nn`` class or framework module
    base, or a module class of the same file, or when it derives from some imported
    class and defines ``forward``. A class without bases that defines ``forward`` is
    a hand-written network (``class MLP: def forward``), not a module.

    Args:
        ctx: The file context.

    Returns:
        The map, built once per file.
    """
    def build() -> dict[str, bool]:
        names = qualified_names(ctx)
        classes = class_defs(ctx.tree)
        result: dict[str, bool] = {}
        for cls in classes:
            result[cls.name] = result.get(cls.name, False) or any(
                is_torch_module_base(names.resolve(b)) for b in cls.bases) or any(
                type(s) in (ast.FunctionDef, ast.AsyncFunctionDef) and s.name == "forward"  # type: ignore[attr-defined]
                for s in cls.body) and any(dotted_name(b) not in ("object", None) for b in cls.bases)
        changed = True
        while changed:  # in-file inheritance, to a fixed point
            changed = False
            for cls in classes:
                if not result[cls.name] and any(result.get(dotted_name(b) or "", False) for b in cls.bases):
                    result[cls.name] = changed = True
        return result

    return file_cache(ctx, "smells.module_classes", build)


def is_module_class(ctx: Any, cls: ast.ClassDef) -> bool:
    """Return whether a class of this file is an ``nn.Module`` (see :func:`module_classes`).

    Args:
        ctx: The file context.
        cls: The class definition.

    Returns:
        True for a module class.
    """
    return module_classes(ctx).get(cls.name, False)


def keyword(call: ast.Call, name: str) -> ast.keyword | None:
    """Return a call's keyword argument by name.

    Args:
        call: The call.
        name: The keyword.

    Returns:
        The keyword node, or ``None``.
    """
    for kw in call.keywords:
        if kw.arg == name:
            return kw
    return None


def has_star_args(call: ast.Call) -> bool:
    """Return whether a call passes ``*args`` or ``**kwargs`` (its arguments are unknown).

    Args:
        call: The call.

    Returns:
        True when some argument is unpacked.
    """
    return any(type(a) is ast.Starred for a in call.args) or any(kw.arg is None for kw in call.keywords)


def is_literal(node: ast.AST | None, value: Any) -> bool:
    """Return whether a node is the literal constant ``value`` (``True``, ``0`` ...).

    Args:
        node: An expression or ``None``.
        value: The constant.

    Returns:
        True on an exact match of value and type.
    """
    return type(node) is ast.Constant and type(node.value) is type(value) and node.value == value  # type: ignore[attr-defined]


_NO_GRAD = {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad",
            "torch.autograd.grad_mode.no_grad", "torch.autograd.grad_mode.inference_mode"}


def _is_no_grad(names: QualifiedNames, expr: ast.AST) -> bool:
    if type(expr) is ast.Call:
        q = names.resolve(expr.func)  # type: ignore[attr-defined]
        if q in _NO_GRAD:
            return True
        if q in ("torch.set_grad_enabled", "torch.enable_grad"):
            return q == "torch.set_grad_enabled" and bool(expr.args) and is_literal(expr.args[0], False)  # type: ignore[attr-defined]
        return False
    return names.resolve(expr) in _NO_GRAD


def under_no_grad(ctx: Any, ancestors: list[ast.AST]) -> bool:
    """Return whether a node runs with autograd off (``torch.no_grad`` block or decorator).

    Args:
        ctx: The file context.
        ancestors: The enclosing nodes, outermost first.

    Returns:
        True inside ``with torch.no_grad():``/``inference_mode()`` or a function they
        decorate.
    """
    names = qualified_names(ctx)
    for a in ancestors:
        if type(a) in (ast.With, ast.AsyncWith):
            if any(_is_no_grad(names, item.context_expr) for item in a.items):  # type: ignore[attr-defined]
                return True
        elif type(a) in (ast.FunctionDef, ast.AsyncFunctionDef):
            if any(_is_no_grad(names, d) for d in a.decorator_list):  # type: ignore[attr-defined]
                return True
    return False


#: torch functions and ``Tensor`` methods that apply an activation, by kind.
_ACTIVATIONS = {
    "torch.softmax": "softmax", "torch.nn.functional.softmax": "softmax", "torch.special.softmax": "softmax",
    "torch.log_softmax": "log_softmax", "torch.nn.functional.log_softmax": "log_softmax",
    "torch.special.log_softmax": "log_softmax",
    "torch.sigmoid": "sigmoid", "torch.nn.functional.sigmoid": "sigmoid", "torch.special.expit": "sigmoid",
}
_ACTIVATION_MODULES = {"torch.nn.Softmax": "softmax", "torch.nn.LogSoftmax": "log_softmax",
                       "torch.nn.Sigmoid": "sigmoid"}
_ACTIVATION_METHODS = {"softmax": "softmax", "log_softmax": "log_softmax", "sigmoid": "sigmoid"}


_SEQUENTIAL = {"torch.nn.Sequential", "torch.nn.modules.container.Sequential"}
#: calls that return the module they wrap or move: ``Net().to(device)``, ``nn.DataParallel(net)``.
_SAME_MODULE_METHODS = frozenset({"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval",
                                  "requires_grad_", "share_memory"})
_WRAPPERS = frozenset({"torch.nn.DataParallel", "torch.nn.parallel.DataParallel",
                       "torch.nn.parallel.DistributedDataParallel", "torch.compile"})


def unwrap_module(names: QualifiedNames, node: ast.AST) -> ast.AST:
    """Return the module construction under the calls that return it unchanged.

    ``Net(...)`` for ``Net(...).to(device)``, ``nn.DataParallel(Net(...))`` or
    ``torch.compile(Net(...))``.

    Args:
        names: The file's qualified names.
        node: An expression.

    Returns:
        The innermost expression (``node`` itself when nothing wraps it).
    """
    while type(node) is ast.Call:
        func = node.func  # type: ignore[attr-defined]
        if type(func) is ast.Attribute and func.attr in _SAME_MODULE_METHODS and type(func.value) is ast.Call:
            node = func.value
        elif node.args and (names.resolve(func) or "") in _WRAPPERS:  # type: ignore[attr-defined]
            node = node.args[0]  # type: ignore[attr-defined]
        else:
            break
    return node


def activation_module_kind(names: QualifiedNames, node: ast.AST) -> str | None:
    """Return the activation a module built by ``node`` applies last, if it is one.

    Recognises ``nn.Softmax(dim=1)``, ``nn.LogSoftmax(...)``, ``nn.Sigmoid()`` and an
    ``nn.Sequential(...)`` whose last positional layer is one of those.

    Args:
        names: The file's qualified names.
        node: An expression (the value assigned to a module attribute or a variable).

    Returns:
        ``softmax``, ``log_softmax`` or ``sigmoid``, or ``None``.
    """
    if type(node) is not ast.Call:
        return None
    qual = names.resolve(node.func) or ""  # type: ignore[attr-defined]
    kind = _ACTIVATION_MODULES.get(qual)
    if kind is not None:
        return kind
    args = node.args  # type: ignore[attr-defined]
    if qual in _SEQUENTIAL and args and type(args[-1]) is not ast.Starred:
        return activation_module_kind(names, args[-1])
    return None


def activation_kind(names: QualifiedNames, node: ast.AST) -> str | None:
    """Return ``softmax``, ``log_softmax`` or ``sigmoid`` when an expression applies one.

    Recognises ``torch.softmax(x, 1)``, ``F.softmax(x, dim=1)``, ``x.softmax(1)``,
    ``torch.sigmoid(x)``, ``x.sigmoid()`` and ``nn.Softmax(dim=1)(x)``.

    Args:
        names: The file's qualified names.
        node: An expression.

    Returns:
        The kind, or ``None``.
    """
    if type(node) is not ast.Call:
        return None
    func = node.func  # type: ignore[attr-defined]
    if type(func) is ast.Call:
        return _ACTIVATION_MODULES.get(names.resolve(func.func) or "")
    q = names.resolve(func)
    if q is not None:
        return _ACTIVATIONS.get(q)
    if type(func) is ast.Attribute and func.attr in _ACTIVATION_METHODS:
        root = dotted_parts(func.value)
        if root and root[0] in names.bindings and not names.bindings[root[0]].startswith("torch"):
            return None  # np.x.softmax, tf.nn.sigmoid: another library's function
        return _ACTIVATION_METHODS[func.attr]
    return None
