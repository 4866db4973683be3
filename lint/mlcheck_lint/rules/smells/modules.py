"""Smells in ``nn.Module`` code: calls that skip hooks, dropout that never turns off,
parameters and submodules that are silently not registered, a ``requires_grad`` typo."""

from __future__ import annotations

import ast
from typing import Any

from ...api import Fix, register
from ._base import (MODEL_NAME, ML_IMPORTS, SmellRule, dotted_name, enclosing_method, first_param, has_star_args, insert_after,
                    is_literal, is_module_class, keyword, module_classes, notebook_state, qualified_names,
                    replace, replace_between, span, text_of)



_MODULE_METHODS_RETURNING_SELF = frozenset({"to", "cuda", "cpu", "eval", "train", "float", "half", "double",
                                            "bfloat16", "requires_grad_", "share_memory", "to_empty"})
_MODEL_FACTORIES = ("torchvision.models.", "timm.create_model", "timm.models.")
_CONTAINER_ITERATORS = frozenset({"children", "modules", "values"})


class _KnownModules:
    """Which names hold ``nn.Module`` instances (carried across notebook cells).

    Attributes (``self.x``) are file-wide; plain names are looked up in the innermost
    function that binds them, then at module level.
    """

    def __init__(self) -> None:
        self.attributes: set[str] = set()
        self.containers: set[str] = set()
        self.classes: set[str] = set()
        self.scopes: list[tuple[set[str], set[str]]] = [(set(), set())]  # (bound, modules)

    def holds_module(self, key: str) -> bool:
        if "." in key:
            return key in self.attributes
        for bound, modules in reversed(self.scopes):
            if key in bound:
                return key in modules
        return False

    def bind(self, key: str, is_module: bool) -> None:
        if "." in key:
            (self.attributes.add if is_module else self.attributes.discard)(key)
            return
        bound, modules = self.scopes[-1]
        bound.add(key)
        (modules.add if is_module else modules.discard)(key)


@register
class ForwardCalledDirectly(SmellRule):
    """Flags a direct ``module.forward(...)`` call.

    What it does:
        Finds calls of ``.forward(...)`` on an object known to be an ``nn.Module``:
        a name or attribute assigned from a module constructor (a ``torch.nn`` class,
        a module class of the file, ``torchvision.models``, ``timm.create_model``,
        ``from_pretrained``), an element of an ``nn.ModuleList``/``Sequential``/
        ``ModuleDict``, or a parameter annotated as a module. ``super().forward(x)``,
        ``super(Cls, self).forward(x)``, ``Base.forward(self, x)`` and
        ``self.forward(x)`` inside the module's own class (a LightningModule's
        ``training_step`` calling its own ``forward``) are not flagged, and neither is
        ``forward`` of objects of unknown type (RPC references, skorch nets,
        hand-written classes that only look like modules).

    Why is this bad?
        ``nn.Module.__call__`` runs the forward pre-hooks and hooks around ``forward``.
        Calling ``forward`` directly skips them, so hooks registered by pruning,
        quantization observers, weight normalisation, FSDP and DDP, or your own feature
        extraction silently do nothing.

    Example:
        ```python
        model = torchvision.models.resnet18()
        logits = model.forward(images)
        ```

    Use instead:
        ```python
        model = torchvision.models.resnet18()
        logits = model(images)
        ```

    Fix safety:
        Unsafe: the call now runs the module's hooks, which is the point but changes
        behaviour.
    """

    code = "MLC302"
    name = "forward-called-directly"
    summary = "module.forward(...) called directly skips the module's hooks"
    fix_safety = "unsafe"
    requires_text = ("forward(",) + ML_IMPORTS

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.known: _KnownModules = notebook_state(ctx, "MLC302.modules", _KnownModules)
        self.known.classes.update(name for name, is_module in module_classes(ctx).items() if is_module)

    def _key(self, node: ast.AST) -> str | None:
        key = dotted_name(node)
        if key is not None and key.startswith("self."):
            # self.model of one class is not self.model of another
            for a in reversed(self.ctx.ancestors):
                if type(a) is ast.ClassDef:
                    return f"{a.name}:{key}"
        return key

    def _is_module_expr(self, node: ast.AST) -> bool:
        kind = type(node)
        if kind in (ast.Name, ast.Attribute):
            key = self._key(node)
            return key is not None and self.known.holds_module(key)
        if kind is ast.Subscript:
            key = self._key(node.value)  # type: ignore[attr-defined]
            return key is not None and key in self.known.containers
        if kind is not ast.Call:
            return False
        func = node.func  # type: ignore[attr-defined]
        if type(func) is ast.Attribute and func.attr in _MODULE_METHODS_RETURNING_SELF:
            return self._is_module_expr(func.value)
        qual = qualified_names(self.ctx).resolve(func)
        if qual is not None:
            last = qual.rsplit(".", 1)[-1]
            if qual.startswith("torch.nn.") and qual.count(".") == 2 and last[:1].isupper():
                return last not in _NOT_SUBMODULES
            if qual.startswith(_MODEL_FACTORIES) or qual == "torch.compile":
                return True
            if last == "from_pretrained" and qual.startswith(("transformers.", "timm.", "diffusers.")):
                return True
            if qual == "copy.deepcopy":
                return bool(node.args) and self._is_module_expr(node.args[0])  # type: ignore[attr-defined]
            return last in self.known.classes and not qual.startswith(".")
        return type(func) is ast.Name and func.id in self.known.classes

    def _remember(self, target: ast.AST, value: ast.AST) -> None:
        key = self._key(target)
        if key is None:
            return
        is_module = self._is_module_expr(value)
        self.known.bind(key, is_module)
        qual = qualified_names(self.ctx).resolve(value.func) if type(value) is ast.Call else None  # type: ignore[attr-defined]
        if is_module and qual in _CONTAINERS:
            self.known.containers.add(key)
        else:
            self.known.containers.discard(key)

    def visit_Assign(self, node: ast.Assign) -> None:
        """Remember names bound to modules.

        Args:
            node: The assignment.
        """
        for target in node.targets:
            self._remember(target, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        """Remember names bound to modules.

        Args:
            node: The assignment.
        """
        if node.value is not None:
            self._remember(node.target, node.value)

    def visit_For(self, node: ast.For) -> None:
        """A loop over a module container binds a module.

        Args:
            node: The loop.
        """
        iterable, target = node.iter, node.target
        if type(iterable) is ast.Call and dotted_name(iterable.func) == "enumerate" and iterable.args \
                and type(target) is ast.Tuple and len(target.elts) == 2:
            iterable, target = iterable.args[0], target.elts[1]
        if type(target) is not ast.Name:
            return
        key = self._key(iterable)
        over_container = key is not None and key in self.known.containers
        if type(iterable) is ast.Call and type(iterable.func) is ast.Attribute \
                and iterable.func.attr in _CONTAINER_ITERATORS:
            over_container = self._is_module_expr(iterable.func.value) or \
                self._key(iterable.func.value) in self.known.containers or iterable.func.attr != "values"
        self.known.bind(target.id, over_container)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        """Parameters annotated as modules hold modules.

        Args:
            node: The function.
        """
        names = qualified_names(self.ctx)
        self.known.scopes.append((set(), set()))
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is None:
                continue
            annotation = arg.annotation
            qual = (names.resolve(annotation) or "") if annotation is not None else ""
            last = qual.rsplit(".", 1)[-1] if qual else (dotted_name(annotation) or "" if annotation else "")
            self.known.bind(arg.arg, (qual.startswith("torch.nn.") and last[:1].isupper())
                            or last in self.known.classes)

    def leave_FunctionDef(self, node: ast.AST) -> None:
        """Close the function's scope.

        Args:
            node: The function.
        """
        self.known.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]
    leave_AsyncFunctionDef = leave_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        """Check a call.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is not ast.Attribute or func.attr != "forward":
            return
        receiver = func.value
        if type(receiver) is ast.Name and receiver.id in ("self", "cls"):
            return
        if type(receiver) is ast.Call and dotted_name(receiver.func) == "super":
            return
        if not self._is_module_expr(receiver):
            return
        receiver_text = text_of(self.ctx, receiver)
        if len(receiver_text) > 40 or "\n" in receiver_text:
            receiver_text = "module"
        fix = Fix("unsafe", "call the module instead of its forward method",
                  (replace_between(self.ctx, receiver, True, func, ""),))
        self.report(func, f"`{receiver_text}.forward(...)` skips the module's forward hooks; "
                          f"call `{receiver_text}(...)` instead", fix)


_DROPOUTS = {f"torch.nn.functional.{n}" for n in
             ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")}


def _under_training_guard(ancestors: list[ast.AST], node: ast.AST, owner: str) -> bool:
    """Whether ``node`` runs only in training mode: in the body of ``if <owner>.training``
    (``and`` others), or in the ``else`` of ``if not <owner>.training``."""
    def mentions(test: ast.AST) -> bool:
        if type(test) is ast.BoolOp and type(test.op) is ast.And:  # type: ignore[attr-defined]
            return any(mentions(v) for v in test.values)  # type: ignore[attr-defined]
        return (type(test) is ast.Attribute and test.attr == "training"  # type: ignore[attr-defined]
                and dotted_name(test.value) == owner)  # type: ignore[attr-defined]

    chain = [*ancestors, node]
    for i, a in enumerate(ancestors):
        if type(a) not in (ast.If, ast.IfExp):
            continue
        child = chain[i + 1]
        body = a.body if type(a) is ast.If else [a.body]  # type: ignore[attr-defined]
        orelse = a.orelse if type(a) is ast.If else [a.orelse]  # type: ignore[attr-defined]
        test = a.test  # type: ignore[attr-defined]
        if any(c is child for c in body) and mentions(test):
            return True
        negated = type(test) is ast.UnaryOp and type(test.op) is ast.Not  # type: ignore[attr-defined]
        if any(c is child for c in orelse) and negated and mentions(test.operand):  # type: ignore[attr-defined]
            return True
    return False


@register
class FunctionalDropoutAlwaysOn(SmellRule):
    """Flags functional dropout in a module method that never turns off at evaluation.

    What it does:
        Finds ``F.dropout(x, p)`` (and ``dropout1d/2d/3d``, ``alpha_dropout``,
        ``feature_alpha_dropout``) inside a method of an ``nn.Module`` subclass, called
        without a ``training`` argument or with ``training=True``. Passing
        ``self.training`` (by keyword or as the third positional argument) or ``False``
        is fine, and so is ``p=0``.

    Why is this bad?
        Unlike ``nn.Dropout``, the functional form does not follow ``model.eval()``: its
        ``training`` argument defaults to ``True``. The model keeps dropping activations
        at evaluation and inference, so metrics are noisy and lower than they should be,
        with no error. This bug shipped in a widely used MNIST example.

    Example:
        ```python
        def forward(self, x):
            return self.fc(F.dropout(x, 0.5))
        ```

    Use instead:
        ```python
        def forward(self, x):
            return self.fc(F.dropout(x, 0.5, training=self.training))
        ```

    Fix safety:
        Unsafe: evaluation results change (that is the bug being fixed).
    """

    code = "MLC303"
    name = "functional-dropout-always-on"
    summary = "functional dropout in a module without training=self.training stays on at eval"
    fix_safety = "unsafe"
    requires_text = ("dropout",) + ML_IMPORTS

    def visit_Call(self, node: ast.Call) -> None:
        """Check a call.

        Args:
            node: The call.
        """
        func = node.func
        last = func.attr if type(func) is ast.Attribute else func.id if type(func) is ast.Name else ""
        if "dropout" not in last:
            return
        qual = qualified_names(self.ctx).resolve(func)
        if qual not in _DROPOUTS or has_star_args(node):
            return
        method = enclosing_method(self.ctx.ancestors)
        if method is None or not is_module_class(self.ctx, method[0]):
            return
        p = keyword(node, "p")
        p_value = p.value if p is not None else (node.args[1] if len(node.args) > 1 else None)
        if is_literal(p_value, 0) or is_literal(p_value, 0.0):
            return
        training = keyword(node, "training")
        training_value = training.value if training is not None else (node.args[2] if len(node.args) > 2 else None)
        if training_value is not None and not is_literal(training_value, True):
            return
        if training_value is not None and any(type(a) in (ast.If, ast.IfExp) for a in
                                              self.ctx.ancestors[self.ctx.ancestors.index(method[1]):]):
            return  # training=True under a condition: dropout kept on at evaluation on purpose
        owner = first_param(method[1])
        if owner is not None and _under_training_guard(self.ctx.ancestors, node, owner):
            return  # if self.training: F.dropout(x, p): on in training only, as intended
        fn = dotted_name(func) or "F.dropout"
        fix = None
        if owner is not None:
            if training_value is not None:
                edit = replace(self.ctx, training_value, f"{owner}.training")
            else:
                last_arg = max([*node.args, *node.keywords], key=lambda a: (a.end_lineno, a.end_col_offset))
                edit = insert_after(self.ctx, last_arg, f", training={owner}.training")
            fix = Fix("unsafe", f"pass training={owner}.training", (edit,))
        why = "with training=True" if training_value is not None else "without a training argument"
        self.report(node, f"`{fn}(...)` {why} stays on after `model.eval()`; pass "
                          f"`training={owner or 'self'}.training` (or use `nn.Dropout`)", fix)


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of two short names, or ``limit + 1`` once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def is_requires_grad_typo(attr: str) -> bool:
    """Whether an attribute name is a misspelling of ``requires_grad``.

    Args:
        attr: The attribute assigned.

    Returns:
        True for ``require_grad``, ``requires_grads``, ``requiresGrad``, ``requires_grad_``
        and other names at most two edits away (private ``_names`` excepted).
    """
    return (attr != "requires_grad" and not attr.startswith("_") and "grad" in attr.lower()
            and _edit_distance(attr, "requires_grad", 2) <= 2)


@register
class RequireGradTypo(SmellRule):
    """Flags an assignment to ``.require_grad`` or another misspelling of ``requires_grad``.

    What it does:
        Finds ``x.require_grad = ...`` (plain, augmented or annotated assignment), and
        the same for any attribute at most two edits from ``requires_grad``:
        ``requires_grads``, ``requiresGrad``, ``requires_grad_`` (which also hides the
        method of that name).

    Why is this bad?
        Tensors and parameters accept new attributes, so the typo creates an unused
        attribute and raises nothing: layers meant to be frozen keep training, or
        layers meant to train stay frozen.

    Example:
        ```python
        for p in backbone.parameters():
            p.require_grad = False
        ```

    Use instead:
        ```python
        for p in backbone.parameters():
            p.requires_grad = False
        ```

    Fix safety:
        Unsafe: which parameters train changes (that is the bug being fixed).
    """

    code = "MLC309"
    name = "require-grad-typo"
    summary = "assignment to .require_grad (a misspelt requires_grad) does nothing"
    fix_safety = "unsafe"
    requires_text = ("grad", "Grad")

    def _targets(self, targets: list[ast.expr]) -> None:
        for target in targets:
            if type(target) in (ast.Tuple, ast.List):
                self._targets(target.elts)  # type: ignore[attr-defined]
            elif type(target) is ast.Attribute and is_requires_grad_typo(target.attr):  # type: ignore[attr-defined]
                attr = target.attr  # type: ignore[attr-defined]
                line, col, end_line, end_col = span(self.ctx, target)
                from ...api import Edit

                edit = Edit(end_line, end_col - len(attr), end_line, end_col, "requires_grad")
                self.report(target, f"`.{attr}` is a typo: it creates a new attribute and leaves "
                                    f"`requires_grad` unchanged; write `.requires_grad`",
                            Fix("unsafe", "rename to requires_grad", (edit,)))

    def visit_Assign(self, node: ast.Assign) -> None:
        """Check an assignment.

        Args:
            node: The assignment.
        """
        self._targets(node.targets)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        """Check an augmented assignment.

        Args:
            node: The assignment.
        """
        self._targets([node.target])

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        """Check an annotated assignment.

        Args:
            node: The assignment.
        """
        self._targets([node.target])


_FLOAT_FACTORIES = {f"torch.{n}" for n in ("ones", "zeros", "randn", "rand", "empty", "full", "eye", "linspace",
                                            "logspace", "normal")}
_MOVES = frozenset({"to", "cuda", "cpu", "double", "float", "half", "bfloat16", "type"})
_PARAMETER = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}


@register
class ParameterMovedAfterWrapping(SmellRule):
    """Flags ``nn.Parameter(...).to(...)`` (or ``.cuda()``, ``.double()``, ``.float()``,
    ``.half()``) assigned to a name or attribute.

    What it does:
        Finds an assignment whose value is a ``Parameter`` moved or cast after it was
        created.

    Why is this bad?
        ``.to()`` and the casts return a new, non-leaf tensor whenever they change the
        device or dtype. The assigned value is then not a ``Parameter``: the module does
        not register it, the optimizer never sees it, and its gradient flows into a
        leaf nobody holds. Training runs and that weight never changes.

    Example:
        ```python
        self.scale = nn.Parameter(torch.ones(dim)).to(device)
        ```

    Use instead:
        ```python
        self.scale = nn.Parameter(torch.ones(dim, device=device))
        ```
    """

    code = "MLC310"
    name = "parameter-moved-after-wrapping"
    summary = "nn.Parameter(...).to(...) is a plain tensor, not a registered parameter"
    requires_text = ("Parameter",) + ML_IMPORTS

    def visit_Assign(self, node: ast.Assign) -> None:
        """Check an assignment.

        Args:
            node: The assignment.
        """
        value = node.value
        moves = []
        while (type(value) is ast.Call and type(value.func) is ast.Attribute  # type: ignore[attr-defined]
               and value.func.attr in _MOVES):  # type: ignore[attr-defined]
            moves.append(value.func.attr)  # type: ignore[attr-defined]
            value = value.func.value  # type: ignore[attr-defined]
        if not moves or type(value) is not ast.Call:
            return
        names = qualified_names(self.ctx)
        if names.resolve(value.func) not in _PARAMETER:  # type: ignore[attr-defined]
            return
        data = value.args[0] if value.args else None  # type: ignore[attr-defined]
        fresh_float = (type(data) is ast.Call and (names.resolve(data.func) or "") in _FLOAT_FACTORIES
                       and keyword(data, "dtype") is None and keyword(data, "device") is None)
        # .cpu() of new data, and .float() of default-dtype data, return the Parameter itself.
        if all(m == "cpu" or (m == "float" and fresh_float) for m in moves):
            return
        target = dotted_name(node.targets[0]) or "the target"
        self.report(node.value, f"`{target}` gets the result of `Parameter(...).{moves[-1]}(...)`, a plain "
                                f"non-leaf tensor: it is not registered and never trained; move the data "
                                f"first, `nn.Parameter(data.{moves[-1]}(...))`")


_NOT_SUBMODULES = {"Parameter", "ParameterList", "ParameterDict", "Buffer", "UninitializedParameter",
                   "UninitializedBuffer"}
_CONTAINERS = {"torch.nn.ModuleList", "torch.nn.ModuleDict", "torch.nn.Sequential", "torch.nn.ParameterList",
               "torch.nn.ParameterDict"}


@register
class SubmodulesInPlainContainer(SmellRule):
    """Flags submodules kept in a plain list, tuple or dict on an ``nn.Module``.

    What it does:
        Finds ``self.layers = [nn.Linear(...), ...]`` (a list, tuple or dict literal, a
        comprehension, or ``[...] * n``) in a method of an ``nn.Module`` subclass, whose
        elements are newly built modules (``torch.nn`` classes or module classes of the
        same file), and ``self.layers = []`` filled with ``self.layers.append(...)`` (or
        ``self.heads = {}`` with ``self.heads[k] = ...``).
        A container later wrapped in ``nn.ModuleList``/``nn.ModuleDict``/
        ``nn.Sequential``, or a class that registers modules with ``add_module``/
        ``register_module``, is not flagged.

    Why is this bad?
        ``nn.Module`` registers only attributes that are modules themselves. Modules
        inside a plain container are invisible to ``.parameters()``, ``.to(device)``,
        ``.train()``/``.eval()`` and ``state_dict()``: the optimizer never updates them,
        they stay on the CPU, and checkpoints silently lack them.

    Example:
        ```python
        self.blocks = [Block(dim) for _ in range(depth)]
        ```

    Use instead:
        ```python
        self.blocks = nn.ModuleList([Block(dim) for _ in range(depth)])
        ```
    """

    code = "MLC311"
    name = "submodules-in-plain-container"
    summary = "submodules in a plain list/tuple/dict are not registered with the module"
    requires_text = ("torch",) + ML_IMPORTS

    def _is_submodule(self, node: ast.AST) -> bool:
        if type(node) is not ast.Call:
            return False
        func = node.func  # type: ignore[attr-defined]
        qual = qualified_names(self.ctx).resolve(func)
        if qual is not None:
            last = qual.rsplit(".", 1)[-1]
            # Losses have no parameters or train/eval behaviour: a dict of them is harmless.
            return qual.startswith("torch.nn.") and qual.count(".") == 2 and last[:1].isupper() \
                and last not in _NOT_SUBMODULES and not last.endswith("Loss")
        return type(func) is ast.Name and module_classes(self.ctx).get(func.id, False)

    def _elements(self, value: ast.AST) -> list[ast.AST]:
        kind = type(value)
        if kind in (ast.List, ast.Tuple):
            return list(value.elts)  # type: ignore[attr-defined]
        if kind is ast.Dict:
            return [v for v in value.values if v is not None]  # type: ignore[attr-defined]
        if kind is ast.ListComp:
            return [value.elt]  # type: ignore[attr-defined]
        if kind is ast.DictComp:
            return [value.value]  # type: ignore[attr-defined]
        if kind is ast.BinOp and type(value.op) is ast.Mult:  # type: ignore[attr-defined]
            return self._elements(value.left) or self._elements(value.right)  # type: ignore[attr-defined]
        return []

    def _registered_later(self, cls: ast.ClassDef, attr: str, owner: str) -> bool:
        names = qualified_names(self.ctx)
        assigned = 0
        for node in ast.walk(cls):
            if type(node) is ast.Call:
                func = node.func
                if type(func) is ast.Attribute and func.attr in ("add_module", "register_module"):
                    return True
                if names.resolve(func) in _CONTAINERS or (type(func) is ast.Name and func.id == "setattr"):
                    for arg in ast.walk(node):
                        if type(arg) is ast.Attribute and arg.attr == attr and dotted_name(arg.value) == owner:
                            return True
            elif type(node) in (ast.Assign, ast.AnnAssign):
                targets = node.targets if type(node) is ast.Assign else [node.target]  # type: ignore[attr-defined]
                if any(type(t) is ast.Attribute and t.attr == attr and dotted_name(t.value) == owner
                       for t in targets):
                    assigned += 1
        return assigned > 1  # reassigned elsewhere (e.g. wrapped afterwards)

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.reported: set[tuple[str, str]] = set()  # (class, attribute) already reported

    def _own_attribute(self, target: ast.AST) -> tuple[ast.ClassDef, str, str] | None:
        """``(class, owner, attribute)`` for ``self.attr`` in a method of a module class."""
        if type(target) is not ast.Attribute:
            return None
        method = enclosing_method(self.ctx.ancestors)
        if method is None:
            return None
        owner = first_param(method[1])
        if owner is None or dotted_name(target.value) != owner or not is_module_class(self.ctx, method[0]):  # type: ignore[attr-defined]
            return None
        return method[0], owner, target.attr  # type: ignore[attr-defined]

    def _starts_empty(self, cls: ast.ClassDef, owner: str, attr: str) -> str | None:
        """``list``/``dict`` when the class assigns ``self.attr = []`` (``{}``, ``list()``, ``dict()``)."""
        for node in ast.walk(cls):
            if type(node) is ast.Assign and any(type(t) is ast.Attribute and t.attr == attr
                                                and dotted_name(t.value) == owner for t in node.targets):
                value = node.value
                if type(value) is ast.List and not value.elts:
                    return "list"
                if type(value) is ast.Dict and not value.keys:
                    return "dict"
                if type(value) is ast.Call and type(value.func) is ast.Name and value.func.id in ("list", "dict") \
                        and not value.args and not value.keywords:
                    return value.func.id
        return None

    def _filled(self, node: ast.AST, target: ast.AST, module: ast.AST) -> None:
        """Report ``self.layers.append(nn.Linear(...))`` on a list that starts empty."""
        if not self._is_submodule(module):
            return
        found = self._own_attribute(target)
        if found is None:
            return
        cls, owner, attr = found
        if (cls.name, attr) in self.reported:
            return
        container = self._starts_empty(cls, owner, attr)
        if container is None or self._registered_later(cls, attr, owner):
            return
        self.reported.add((cls.name, attr))
        wrapper = "nn.ModuleDict" if container == "dict" else "nn.ModuleList"
        self.report(node, f"`{owner}.{attr}` collects submodules in a plain {container}: their parameters are "
                          f"invisible to `.parameters()`, `.to()` and `state_dict()`; make it `{wrapper}()`")

    def visit_Call(self, node: ast.Call) -> None:
        """Check ``self.layers.append(module)``.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is ast.Attribute and func.attr in ("append", "insert") and node.args:
            self._filled(node, func.value, node.args[-1])

    def visit_Assign(self, node: ast.Assign) -> None:
        """Check an assignment.

        Args:
            node: The assignment.
        """
        if len(node.targets) == 1 and type(node.targets[0]) is ast.Subscript:
            self._filled(node, node.targets[0].value, node.value)  # self.heads[name] = nn.Linear(...)
            return
        if len(node.targets) != 1 or type(node.targets[0]) is not ast.Attribute:
            return
        elements = self._elements(node.value)
        if not elements or not any(self._is_submodule(e) for e in elements):
            return
        method = enclosing_method(self.ctx.ancestors)
        if method is None:
            return
        owner = first_param(method[1])
        target = node.targets[0]
        if owner is None or dotted_name(target.value) != owner or not is_module_class(self.ctx, method[0]):
            return
        if self._registered_later(method[0], target.attr, owner):
            return
        container = {ast.Dict: "dict", ast.DictComp: "dict", ast.Tuple: "tuple"}.get(type(node.value), "list")
        wrapper = "nn.ModuleDict" if container == "dict" else "nn.ModuleList"
        self.report(node.value, f"`{owner}.{target.attr}` holds submodules in a plain {container}: their "
                                f"parameters are invisible to `.parameters()`, `.to()` and `state_dict()`; "
                                f"wrap it in `{wrapper}(...)`")


_LEAF_CONTAINERS = {"torch.nn.Sequential", "torch.nn.ModuleList", "torch.nn.ModuleDict", "torch.nn.Module"}




@register
class TrainingFlagSetDirectly(SmellRule):
    """Flags ``model.training = False`` (or ``True``) in place of ``model.eval()``/``.train()``.

    What it does:
        Finds an assignment to the ``training`` attribute of a model: a name such as
        ``model``, ``net`` or ``encoder``, or ``self`` in a method of an ``nn.Module``
        subclass of the same file. Methods named ``train`` or ``eval`` (overrides that
        implement the switch, usually for every child too) are not flagged, nor are
        dataset or configuration classes with a ``training`` option of their own.

    Why is this bad?
        ``training`` is a per-module flag. Setting it changes only that one module:
        every submodule, where dropout and batch norm actually live, stays in the mode it
        was in, so evaluation still drops activations and updates running statistics
        while the flag reads ``False``.

    Example:
        ```python
        model.training = False
        with torch.no_grad():
            score = evaluate(model, val_loader)
        ```

    Use instead:
        ```python
        model.eval()
        with torch.no_grad():
            score = evaluate(model, val_loader)
        ```
    """

    code = "MLC330"
    name = "training-flag-set-directly"
    summary = "assigning .training changes one module's flag, not its submodules' mode"
    # "nn." and the layer names too: a notebook cell that only builds `model = nn.Dropout()`
    # must still be read for a later cell's `model.training = False`
    requires_text = (".training", "nn.", "Dropout", "Norm")

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.leaves: set[str] = notebook_state(ctx, "MLC330.leaves", set)  # names bound to nn.Dropout(...) and co.

    def visit_Assign(self, node: ast.Assign) -> None:
        """Check an assignment; remember names bound to single ``torch.nn`` layers.

        Args:
            node: The assignment.
        """
        value = node.value
        qual = qualified_names(self.ctx).resolve(value.func) if type(value) is ast.Call else None
        leaf = bool(qual) and qual.startswith("torch.nn.") and qual.count(".") == 2 \
            and qual.rsplit(".", 1)[-1][:1].isupper() and qual not in _LEAF_CONTAINERS  # type: ignore[union-attr]
        for target in node.targets:
            key = dotted_name(target)
            if key is None or type(target) is ast.Attribute and target.attr == "training":
                continue
            if leaf:
                self.leaves.add(key)
            else:
                self.leaves.discard(key)
        for target in node.targets:
            if type(target) is not ast.Attribute or target.attr != "training":
                continue
            receiver = dotted_name(target.value)
            if receiver is None or receiver in self.leaves:
                continue  # a single layer (nn.Dropout()) has no submodules: its flag is its mode
            method = enclosing_method(self.ctx.ancestors)
            if method is not None and receiver == first_param(method[1]):
                if method[1].name in ("train", "eval") or not is_module_class(self.ctx, method[0]):  # type: ignore[attr-defined]
                    continue
            elif not MODEL_NAME.fullmatch(receiver.rsplit(".", 1)[-1]):
                continue
            call = "eval()" if is_literal(node.value, False) else "train()" if is_literal(node.value, True) \
                else "train(mode)"
            self.report(target, f"`{receiver}.training = ...` sets the flag of that one module: its submodules "
                                f"(dropout, batch norm) keep their mode; call `{receiver}.{call}`, which "
                                f"switches every submodule")
