"""Numerical smells: comparisons with NaN, activations a loss applies again, softmax
without a dimension, and ``log`` of a probability that underflows."""

from __future__ import annotations

import ast

from ...api import Fix, register
from ._base import (ML_IMPORTS, ScopedSmellRule, SmellRule, activation_kind, activation_module_kind,
                    dotted_name, enclosing_method, first_param, has_star_args, insert_after, keyword,
                    module_classes, notebook_state, qualified_names, replace, text_of, unwrap_module)

# --------------------------------------------------------------------------- MLC304

#: qualified NaN constants -> (module whose isnan tests them, its isnan, its negation).
_NANS = {
    "numpy.nan": ("numpy", "isnan", "~"), "numpy.NaN": ("numpy", "isnan", "~"), "numpy.NAN": ("numpy", "isnan", "~"),
    "math.nan": ("math", "isnan", "not "), "torch.nan": ("torch", "isnan", "~"),
    "pandas.NA": ("pandas", "isna", "notna"), "pandas.NaT": ("pandas", "isna", "notna"),
}
_LOOSE_PARENTS = (ast.Expr, ast.Assign, ast.AnnAssign, ast.Return, ast.If, ast.While, ast.BoolOp, ast.IfExp,
                  ast.Assert, ast.keyword, ast.Call, ast.comprehension, ast.Lambda, ast.List, ast.Tuple,
                  ast.FormattedValue)


def _float_nan(node: ast.AST) -> bool:
    return (type(node) is ast.Call and dotted_name(node.func) in ("float", "numpy.float64")  # type: ignore[attr-defined]
            and len(node.args) == 1 and type(node.args[0]) is ast.Constant  # type: ignore[attr-defined]
            and isinstance(node.args[0].value, str)  # type: ignore[attr-defined]
            and node.args[0].value.strip().lower() in ("nan", "+nan", "-nan"))  # type: ignore[attr-defined]


@register
class ComparisonWithNaN(SmellRule):
    """Flags ``==``, ``!=``, ``is`` and ``is not`` comparisons with NaN.

    What it does:
        Finds comparisons against ``np.nan``, ``numpy.nan``, ``math.nan``,
        ``float("nan")``, ``torch.nan``, ``pd.NA`` or ``pd.NaT``, in any expression
        (conditions, lambdas, comprehensions, masks).

    Why is this bad?
        NaN is not equal to anything, itself included: ``x == np.nan`` is always
        ``False`` and ``x != np.nan`` always ``True``, element-wise too. ``x is np.nan``
        only holds for that one object, not for the NaNs arithmetic produces. Filters
        and checks written this way silently keep every NaN. ``pd.NA`` comparisons
        return ``NA``, which raises or propagates.

    Example:
        ```python
        clean = [v for v in values if v != np.nan]
        ```

    Use instead:
        ```python
        clean = [v for v in values if not np.isnan(v)]
        ```

    Fix safety:
        Unsafe: the comparison now detects NaN, which changes the result (that is the
        bug being fixed). ``!=`` becomes ``~np.isnan(x)`` (``not math.isnan(x)``,
        ``pd.notna(x)``) so arrays keep working.
    """

    code = "MLC304"
    name = "comparison-with-nan"
    summary = "comparison with NaN is always False (or True for !=)"
    fix_safety = "unsafe"
    requires_text = ("nan", "NaN", "NAN", "NA", "NaT") + ML_IMPORTS

    def _nan(self, node: ast.AST) -> tuple[str, str, str] | None:
        if _float_nan(node):
            return ("float", "isnan", "")
        if type(node) not in (ast.Attribute, ast.Name):
            return None
        last = node.attr if type(node) is ast.Attribute else node.id  # type: ignore[attr-defined]
        if last not in ("nan", "NaN", "NAN", "NA", "NaT"):
            return None
        return _NANS.get(qualified_names(self.ctx).resolve(node) or "")

    def visit_Compare(self, node: ast.Compare) -> None:
        """Check a comparison.

        Args:
            node: The comparison.
        """
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            if type(op) not in (ast.Eq, ast.NotEq, ast.Is, ast.IsNot):
                continue
            left, right = operands[i], operands[i + 1]
            found = self._nan(right)
            other = left
            if found is None:
                found, other = self._nan(left), right
            if found is None:
                continue
            negated = type(op) in (ast.NotEq, ast.IsNot)
            fix = self._fix(node, found, other, negated) if len(node.ops) == 1 else None
            symbol = {ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not"}[type(op)]
            always = "True" if negated else "False"
            suggestion = fix.edits[0].text if fix else "an isnan/isna test"
            if type(op) in (ast.Is, ast.IsNot):
                why = "tests for that one NaN object and misses every NaN arithmetic or parsing produces"
            else:
                why = f"is always {always} (NaN equals nothing, itself included)"
            self.report(node, f"`{symbol}` against NaN {why}; use `{suggestion}`", fix)

    def _fix(self, node: ast.Compare, found: tuple[str, str, str], other: ast.AST, negated: bool) -> Fix | None:
        names = qualified_names(self.ctx)
        module, test, negation = found
        if module == "float":
            for candidate in ("numpy", "math"):
                if names.local_name(candidate + ".isnan"):
                    module, negation = candidate, "~" if candidate == "numpy" else "not "
                    break
            else:
                return None
        func = names.local_name(f"{module}.{test}")
        if func is None:
            return None
        arg = text_of(self.ctx, other)
        if type(other) in (ast.NamedExpr, ast.Lambda, ast.IfExp):
            arg = f"({arg})"
        if not negated:
            text = f"{func}({arg})"
        elif negation == "notna":
            text = f"{names.local_name(module + '.notna')}({arg})"
        else:
            text = f"{negation}{func}({arg})"
            parent = self.ctx.ancestors[-1] if self.ctx.ancestors else None
            if negation == "not " and parent is not None and not isinstance(parent, _LOOSE_PARENTS):
                text = f"({text})"
        return Fix("unsafe", f"test with {text.split('(')[0].strip('(~ ').replace('not ', '')}",
                   (replace(self.ctx, node, text),))


# --------------------------------------------------------------------------- MLC306

_LOSS_FUNCTIONS = {"torch.nn.functional.cross_entropy": "cross_entropy",
                   "torch.nn.functional.binary_cross_entropy_with_logits": "binary_cross_entropy_with_logits",
                   "torch.nn.functional.nll_loss": "nll_loss"}
_LOSS_CLASSES = {"torch.nn.CrossEntropyLoss": "CrossEntropyLoss", "torch.nn.BCEWithLogitsLoss": "BCEWithLogitsLoss",
                 "torch.nn.NLLLoss": "NLLLoss", "torch.nn.modules.loss.CrossEntropyLoss": "CrossEntropyLoss",
                 "torch.nn.modules.loss.BCEWithLogitsLoss": "BCEWithLogitsLoss",
                 "torch.nn.modules.loss.NLLLoss": "NLLLoss"}
#: which activations each loss already applies.
_APPLIES = {"cross_entropy": ("softmax", "log_softmax", "sigmoid"), "CrossEntropyLoss": ("softmax", "log_softmax", "sigmoid"),
            "binary_cross_entropy_with_logits": ("softmax", "log_softmax", "sigmoid"),
            "BCEWithLogitsLoss": ("softmax", "log_softmax", "sigmoid"),
            "nll_loss": ("softmax",), "NLLLoss": ("softmax",)}
_WHY = {"cross_entropy": "applies log_softmax itself", "CrossEntropyLoss": "applies log_softmax itself",
        "binary_cross_entropy_with_logits": "applies sigmoid itself", "BCEWithLogitsLoss": "applies sigmoid itself",
        "nll_loss": "expects log-probabilities (use log_softmax)", "NLLLoss": "expects log-probabilities (use log_softmax)"}


class _ActivationScope:
    def __init__(self, params: set[str]) -> None:
        self.values: dict[str, tuple[str, ast.AST, str]] = {}  # variable -> (kind, where, how)
        self.modules: dict[str, tuple[str, str]] = {}  # callable -> (kind, what it is)
        self.params = params  # names bound here, hiding the module's


@register
class ActivationBeforeLoss(ScopedSmellRule):
    """Flags an activation fed to a loss that applies its own.

    What it does:
        Finds softmax, log_softmax or sigmoid output passed as the input of
        ``CrossEntropyLoss``/``F.cross_entropy`` or ``BCEWithLogitsLoss``/
        ``F.binary_cross_entropy_with_logits``, and plain softmax passed to
        ``NLLLoss``/``F.nll_loss``. It sees nested calls, a local variable assigned
        from the activation, an activation module (``nn.Softmax(dim=1)``, or an
        ``nn.Sequential`` ending in one) called on the logits, and the output of a
        model whose class, defined in the same file, ends ``forward`` in an
        activation (``model = Net().to(device)``, ``self(x)`` in a LightningModule).
        Sigmoid into plain ``binary_cross_entropy`` is correct and not flagged.

    Why is this bad?
        These losses take logits (``nll_loss``: log-probabilities). A second softmax or
        sigmoid squashes the scores, so gradients shrink, training stalls or converges
        to a worse model, and nothing fails. (``log_softmax`` into ``cross_entropy`` is
        numerically harmless, since ``log_softmax`` of log-probabilities changes
        nothing, but it hides which of the two was meant: ``nll_loss`` states it.)

    Example:
        ```python
        probs = torch.softmax(logits, dim=1)
        loss = F.cross_entropy(probs, target)
        ```

    Use instead:
        ```python
        loss = F.cross_entropy(logits, target)
        ```
    """

    code = "MLC306"
    name = "activation-before-loss"
    summary = "softmax/sigmoid output fed to a loss that applies it again"
    requires_text = ("softmax", "sigmoid", "Softmax", "Sigmoid") + ML_IMPORTS

    def begin_file(self, ctx: object) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        self._params: set[str] = set()
        super().begin_file(ctx)
        self.loss_objects: dict[str, str] = notebook_state(ctx, "MLC306.losses", dict)  # name -> loss class
        module_state = notebook_state(ctx, "MLC306.module", lambda: _ActivationScope(set()))
        self.scopes[0] = module_state
        # module classes of this file whose forward ends in an activation, learnt as the walk
        # leaves each forward: {class: kind}; and {(class, attribute): (kind, what)}
        self.outputs: dict[str, str] = notebook_state(ctx, "MLC306.outputs", dict)
        self.self_modules: dict[tuple[str, str], tuple[str, str]] = notebook_state(ctx, "MLC306.self", dict)
        self.forward_returns: dict[int, list[str | None]] = {}  # id(forward) -> the kind of each return

    def _new_scope(self) -> _ActivationScope:
        return _ActivationScope(self._params)

    def visit_FunctionDef(self, node: ast.AST) -> None:
        """Open a function's scope; its parameters hide the module's names.

        Args:
            node: The function.
        """
        args = node.args  # type: ignore[attr-defined]
        self._params = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
                        if a is not None}
        super().visit_FunctionDef(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def leave_FunctionDef(self, node: ast.AST) -> None:
        """Close a function's scope; a ``forward`` whose every return is an activation marks its class.

        Args:
            node: The function.
        """
        kinds = self.forward_returns.pop(id(node), None)
        if kinds is not None:
            owner = self.ctx.ancestors[-1]
            if len(set(kinds)) == 1 and kinds[0] is not None:
                self.outputs[owner.name] = kinds[0]  # type: ignore[attr-defined]
            else:
                self.outputs.pop(owner.name, None)  # type: ignore[attr-defined]
        super().leave_FunctionDef(node)

    leave_AsyncFunctionDef = leave_FunctionDef

    def visit_Return(self, node: ast.Return) -> None:
        """Record what a module's ``forward`` returns.

        Args:
            node: The return statement.
        """
        ancestors = self.ctx.ancestors
        function = next((a for a in reversed(ancestors) if type(a) in (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                       ast.Lambda, ast.ClassDef)), None)
        if type(function) not in (ast.FunctionDef, ast.AsyncFunctionDef) or function.name != "forward":  # type: ignore[union-attr]
            return
        at = ancestors.index(function)  # type: ignore[arg-type]
        cls = ancestors[at - 1] if at > 0 else None
        if type(cls) is not ast.ClassDef or not module_classes(self.ctx).get(cls.name):
            return
        kind = None
        if node.value is not None:
            found = self._kind(node.value)
            if found is not None:
                kind = found[0]
            elif type(node.value) is ast.Name:
                held = self.scopes[-1].values.get(node.value.id)
                kind = held[0] or None if held is not None else None
        self.forward_returns.setdefault(id(function), []).append(kind)

    def _module(self, func: ast.AST) -> tuple[str, str] | None:
        """``(kind, what)`` when calling ``func`` applies an activation last."""
        if type(func) is ast.Name:
            scope = self.scopes[-1]
            found = scope.modules.get(func.id)
            if found is None and func.id not in scope.params and func.id not in scope.values and len(self.scopes) > 1:
                found = self.scopes[0].modules.get(func.id)
            return found
        if type(func) is ast.Attribute and type(func.value) is ast.Name:
            owner = enclosing_method(self.ctx.ancestors)
            if owner is not None and func.value.id == first_param(owner[1]):
                return self.self_modules.get((owner[0].name, func.attr))
        return None

    def _kind(self, node: ast.AST) -> tuple[str, str] | None:
        """``(kind, why)`` when an expression is an activation's output (``why`` may be empty)."""
        kind = activation_kind(qualified_names(self.ctx), node)
        if kind is not None:
            return kind, ""
        if type(node) is not ast.Call:
            return None
        func = node.func
        found = self._module(func)
        if found is not None:
            return found[0], f"`{dotted_name(func)}` is {found[1]}"
        owner = enclosing_method(self.ctx.ancestors)
        if (owner is not None and type(func) is ast.Name and func.id == first_param(owner[1])
                and owner[0].name in self.outputs):  # self(x) in a LightningModule step
            kind = self.outputs[owner[0].name]
            return kind, f"`{owner[0].name}.forward` ends in {kind}"
        return None

    def _built_module(self, value: ast.AST) -> tuple[str, str] | None:
        """``(kind, what)`` when ``value`` builds a module whose output is an activation."""
        names = qualified_names(self.ctx)
        kind = activation_module_kind(names, value)
        if kind is not None:
            return kind, f"a module ending in {kind}"
        inner = unwrap_module(names, value)
        if type(inner) is ast.Call and type(inner.func) is ast.Name and inner.func.id in self.outputs:
            kind = self.outputs[inner.func.id]
            return kind, f"a `{inner.func.id}`, whose `forward` ends in {kind}"
        return None

    def visit_Assign(self, node: ast.Assign) -> None:
        """Remember loss objects, activation modules, models and activation outputs.

        Args:
            node: The assignment.
        """
        names = qualified_names(self.ctx)
        value = node.value
        scope = self.scopes[-1]
        call = type(value) is ast.Call
        held = self._kind(value) if call else None
        built = self._built_module(value) if call else None
        for target in node.targets:
            key = dotted_name(target)
            if key is None:
                continue
            if type(target) is ast.Name:
                if held is not None:
                    scope.values[key] = (held[0], value, held[1])
                else:
                    scope.values.pop(key, None)
                if built is not None:
                    scope.modules[key] = built
                else:
                    scope.modules.pop(key, None)
                    if held is None:
                        scope.values[key] = ("", value, "")  # bound here: hides the module's name
            elif type(target) is ast.Attribute and type(target.value) is ast.Name \
                    and (call or any(attr == target.attr for _, attr in self.self_modules)):
                owner = enclosing_method(self.ctx.ancestors)
                if owner is not None and target.value.id == first_param(owner[1]):
                    if built is not None:
                        self.self_modules[(owner[0].name, target.attr)] = built
                    else:
                        self.self_modules.pop((owner[0].name, target.attr), None)
            if type(value) is ast.Call:
                loss = _LOSS_CLASSES.get(names.resolve(value.func) or "")
                if loss is not None:
                    self.loss_objects[key] = loss

    def _loss(self, node: ast.Call) -> str | None:
        func = node.func
        names = qualified_names(self.ctx)
        if type(func) is ast.Call:
            return _LOSS_CLASSES.get(names.resolve(func.func) or "")
        qual = names.resolve(func)
        if qual is not None:
            return _LOSS_FUNCTIONS.get(qual)
        key = dotted_name(func)
        return self.loss_objects.get(key) if key is not None else None

    def visit_Call(self, node: ast.Call) -> None:
        """Check a call.

        Args:
            node: The call.
        """
        loss = self._loss(node)
        if loss is None:
            return
        given = keyword(node, "input")
        arg = given.value if given is not None else (node.args[0] if node.args else None)
        if arg is None:
            return
        found = self._kind(arg)
        kind, via = (found[0], f" ({found[1]})" if found[1] else "") if found is not None else (None, "")
        if kind is None and type(arg) is ast.Name:
            scope = self.scopes[-1]
            held = scope.values.get(arg.id)
            if held is None and arg.id not in scope.params and len(self.scopes) > 1:
                held = self.scopes[0].values.get(arg.id)
            if held is not None and held[0]:
                why = f": {held[2]}" if held[2] else ""
                kind, via = held[0], f" (`{arg.id}` holds the {held[0]} output from line {held[1].lineno}{why})"
        if kind is None or kind not in _APPLIES[loss]:
            return
        if kind == "log_softmax" and loss in ("cross_entropy", "CrossEntropyLoss"):
            self.report(arg, f"log_softmax output is fed to `{loss}`, which {_WHY[loss]}{via}: the result is "
                             f"the same (log_softmax of log-probabilities changes nothing) but it hides which "
                             f"was meant; use `nll_loss` on log-probabilities, or pass the raw logits")
            return
        self.report(arg, f"{kind} output is fed to `{loss}`, which {_WHY[loss]}{via}: pass the raw "
                         f"logits, or the gradients shrink and training silently degrades")


# --------------------------------------------------------------------------- MLC307

_IMPLICIT_DIM_FUNCTIONS = {"torch.nn.functional.softmax", "torch.nn.functional.log_softmax",
                           "torch.nn.functional.softmin"}
_IMPLICIT_DIM_MODULES = {"torch.nn.Softmax", "torch.nn.LogSoftmax", "torch.nn.Softmin",
                         "torch.nn.modules.activation.Softmax", "torch.nn.modules.activation.LogSoftmax"}
_TORCH_DIM_REQUIRED = {"torch.softmax", "torch.log_softmax"}


def _rank_at_most_two(node: ast.AST) -> bool:
    """Whether an expression evidently has rank 1 or 2 (where implicit dim equals -1)."""
    if type(node) is not ast.Call:
        return False
    func = node.func  # type: ignore[attr-defined]
    if type(func) is not ast.Attribute:
        return False
    args = node.args  # type: ignore[attr-defined]
    if node.keywords or any(type(a) is ast.Starred for a in args):  # type: ignore[attr-defined]
        return False
    if func.attr in ("view", "reshape"):
        return 1 <= len(args) <= 2 and not (len(args) == 1 and type(args[0]) in (ast.Tuple, ast.List, ast.Name,
                                                                                   ast.Attribute, ast.Call))
    if func.attr == "flatten":
        if dotted_name(func.value) == "torch":
            return len(args) == 1 or (len(args) == 2 and type(args[1]) is ast.Constant and args[1].value == 1)
        return not args or (len(args) == 1 and type(args[0]) is ast.Constant and args[0].value == 1)
    return False


@register
class SoftmaxWithoutDim(SmellRule):
    """Flags softmax and log_softmax called without an explicit ``dim``.

    What it does:
        Finds ``F.softmax(x)``, ``F.log_softmax(x)``, ``nn.Softmax()``,
        ``nn.LogSoftmax()``, and ``torch.softmax(x)``/``x.softmax()`` without ``dim``.

    Why is this bad?
        Without ``dim``, the functional forms and modules guess: dimension 0 for 0-, 1-
        and 3-D input, 1 otherwise. For a ``(seq, batch, classes)`` tensor that
        normalises across the sequence instead of the classes, silently; the guess
        is deprecated. ``torch.softmax``/``Tensor.softmax`` have no default and fail.

    Example:
        ```python
        probs = F.softmax(logits)
        ```

    Use instead:
        ```python
        probs = F.softmax(logits, dim=-1)
        ```

    Fix safety:
        Unsafe, and offered only where the input evidently has rank 1 or 2 (a
        ``view``/``reshape`` to at most two sizes, ``flatten(1)``), where ``dim=-1``
        is what the guess picks. Elsewhere no fix is offered: choose the dimension.
    """

    code = "MLC307"
    name = "softmax-without-dim"
    summary = "softmax/log_softmax without an explicit dim"
    fix_safety = "unsafe"
    requires_text = ("softmax", "Softmax", "softmin", "Softmin") + ML_IMPORTS

    def visit_Call(self, node: ast.Call) -> None:
        """Check a call.

        Args:
            node: The call.
        """
        func = node.func
        last = func.attr if type(func) is ast.Attribute else func.id if type(func) is ast.Name else ""
        if "oftm" not in last or has_star_args(node):
            return
        names = qualified_names(self.ctx)
        qual = names.resolve(func)
        dim = keyword(node, "dim") or keyword(node, "axis")  # torch accepts numpy's `axis` too
        if qual in _IMPLICIT_DIM_MODULES:
            if (dim is None and not node.args) or (dim is not None and _is_none(dim.value)) or \
                    (node.args and _is_none(node.args[0])):
                self.report(node, f"`{dotted_name(func)}()` without `dim` guesses the dimension from the "
                                  f"input's rank (0 for 1-D and 3-D input, 1 otherwise); pass `dim=` explicitly")
            return
        if qual in _IMPLICIT_DIM_FUNCTIONS or qual in _TORCH_DIM_REQUIRED:
            positional_dim = node.args[1] if len(node.args) > 1 else None
            given = dim.value if dim is not None else positional_dim
            if given is not None and not _is_none(given):
                return
            if not node.args:
                return
            source = node.args[0]
        elif qual is None and type(func) is ast.Attribute and last in ("softmax", "log_softmax"):
            if node.args or dim is not None or not names.imports("torch"):
                return
            source = func.value
        else:
            return
        fix = None
        if _rank_at_most_two(source) and dim is None and len(node.args) <= 1 and qual not in _TORCH_DIM_REQUIRED \
                and qual is not None:
            anchor = node.args[-1] if not node.keywords else max(
                [*node.args, *node.keywords], key=lambda a: (a.end_lineno, a.end_col_offset))
            fix = Fix("unsafe", "pass dim=-1 (the input has rank 1 or 2, so the guess was -1)",
                      (insert_after(self.ctx, anchor, ", dim=-1"),))
        spelled = dotted_name(func) or last
        if qual is None or qual in _TORCH_DIM_REQUIRED:
            why = "has no default dimension and raises"
        else:
            why = "guesses the dimension from the input's rank (0 for 1-D and 3-D input, 1 otherwise)"
        tail = "" if fix else "; no automatic fix: the input's rank is not evident here, so choose the dimension"
        self.report(node, f"`{spelled}(...)` without `dim` {why}; pass `dim=` explicitly{tail}", fix)


def _is_none(node: ast.AST) -> bool:
    return type(node) is ast.Constant and node.value is None  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- MLC317

_LOG = {"torch.log", "torch.special.log"}  # torch.special has no log; harmless


@register
class LogOfSoftmax(SmellRule):
    """Flags ``torch.log`` of a softmax or sigmoid output.

    What it does:
        Finds ``torch.log(torch.softmax(x, d))``, ``torch.log(F.softmax(x, dim=d))``,
        ``x.softmax(d).log()``, ``torch.log(torch.sigmoid(x))`` and
        ``x.sigmoid().log()``.

    Why is this bad?
        Softmax and sigmoid round small probabilities to exactly ``0`` in float32
        (below about ``1e-38``, much sooner in half precision), and ``log(0)`` is
        ``-inf``: the loss becomes ``inf`` or ``nan`` and training diverges.
        ``log_softmax`` and ``logsigmoid`` compute the same values stably.

    Example:
        ```python
        log_probs = torch.log(torch.softmax(logits, dim=-1))
        ```

    Use instead:
        ```python
        log_probs = torch.log_softmax(logits, dim=-1)
        ```

    Fix safety:
        Unsafe: results differ where the old form underflowed (``-inf`` becomes a
        finite value), which is the point.
    """

    code = "MLC317"
    name = "log-of-softmax"
    summary = "log(softmax(x)) underflows to -inf; use log_softmax / logsigmoid"
    fix_safety = "unsafe"
    requires_text = ("log",) + ML_IMPORTS

    def visit_Call(self, node: ast.Call) -> None:
        """Check a call.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is ast.Attribute:
            if func.attr != "log":
                return
        elif type(func) is not ast.Name or func.id != "log":
            return
        if node.keywords:
            return
        names = qualified_names(self.ctx)
        qual = names.resolve(func)
        if qual in _LOG and len(node.args) == 1:
            inner = node.args[0]
        elif qual is None and type(func) is ast.Attribute and not node.args:
            inner = func.value
        else:
            return
        kind = activation_kind(names, inner)
        if kind not in ("softmax", "sigmoid"):
            return
        fix = self._fix(node, inner, kind)  # type: ignore[arg-type]
        better = "log_softmax" if kind == "softmax" else "logsigmoid"
        self.report(node, f"log of a {kind} output underflows to -inf for small probabilities; use "
                          f"`{fix.edits[0].text if fix else better}`, which is stable", fix)

    def _fix(self, outer: ast.Call, inner: ast.Call, kind: str) -> Fix | None:
        if has_star_args(inner) or any(kw.arg == "out" for kw in inner.keywords):
            return None
        names = qualified_names(self.ctx)
        inner_func = inner.func
        if type(inner_func) is ast.Call:
            return None  # nn.Softmax(dim)(x): no one-call replacement
        func_text = text_of(self.ctx, inner_func)
        call_text = text_of(self.ctx, inner)
        rest = call_text[len(func_text):]
        if kind == "softmax":
            if type(inner_func) is not ast.Attribute or inner_func.attr != "softmax":
                return None
            new = func_text[: -len("softmax")] + "log_softmax" + rest
        else:
            functional = names.local_name("torch.nn.functional.logsigmoid")
            if functional is None:
                return None
            if names.resolve(inner_func) is not None:
                new = functional + rest
            elif type(inner_func) is ast.Attribute and not inner.args and not inner.keywords:
                new = f"{functional}({text_of(self.ctx, inner_func.value)})"
            else:
                return None
        return Fix("unsafe", "use the stable log form", (replace(self.ctx, outer, new),))
