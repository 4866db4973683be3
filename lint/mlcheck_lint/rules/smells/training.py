"""Training-loop smells: gradients never cleared, losses accumulated with their graphs."""

from __future__ import annotations

import ast
import re
from typing import Any

from ...api import Fix, register
from ._base import (ML_IMPORTS, MODEL_NAME, ScopedSmellRule, SmellRule, class_defs, dotted_name, dotted_parts, file_cache, insert_after,
                    is_literal, loops_in_scope, module_classes, notebook_state, qualified_names, under_no_grad, unwrap_module)

_OPTIMIZER_NAME = re.compile(r"(.*optim.*|(\w+_)?opt(_\w+)?\d*|.*scaler.*)", re.IGNORECASE)
_SCHEDULER_NAME = re.compile(r".*sched.*", re.IGNORECASE)
_GRAD_RESET_METHODS = frozenset({"zero_", "detach_", "fill_", "zero_grad", "requires_grad_"})


def _receiver_parts(node: ast.AST) -> list[str] | None:
    while type(node) is ast.Subscript:
        node = node.value  # type: ignore[attr-defined]
    if type(node) is ast.Call:  # self.optimizers()
        node = node.func  # type: ignore[attr-defined]
    return dotted_parts(node)


def _mentions_grad(node: ast.AST) -> bool:
    while type(node) in (ast.Attribute, ast.Subscript, ast.Call):
        if type(node) is ast.Attribute and node.attr == "grad":  # type: ignore[attr-defined]
            return True
        node = node.func if type(node) is ast.Call else node.value  # type: ignore[attr-defined]
    return False


@register
class GradientsNeverCleared(SmellRule):
    """Flags a training loop that never clears gradients.

    What it does:
        Finds a loop (with the loops around it in the same function: the loop nest)
        whose body calls ``.backward()`` and an optimizer's ``.step()`` but never
        clears gradients: no ``zero_grad()`` on the optimizer or the model, no
        ``p.grad = None``, no ``p.grad.zero_()``. Gradient accumulation, where clearing
        sits under an ``if`` in the loop, is fine. A helper (``train_step(batch)``) that
        calls ``backward()`` and ``step()`` without a loop of its own is flagged when a
        loop of the same file calls it and neither clears.

    Why is this bad?
        ``backward()`` adds to ``.grad``. Without clearing, every step applies the sum
        of all gradients so far: the effective learning rate grows with each batch and
        training diverges or converges badly, without any error.

    Example:
        ```python
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        ```

    Use instead:
        ```python
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        ```
    """

    code = "MLC301"
    name = "gradients-never-cleared"
    summary = "training loop calls backward() and step() but never clears gradients"
    requires_text = ("backward",) + ML_IMPORTS

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.nests: dict[int, dict[str, Any]] = {}
        self.optimizers: set[str] = notebook_state(ctx, "MLC301.optimizers", set)
        # helpers: a function that steps without a loop of its own, keyed by its name (kept
        # across a notebook's cells); callers: (helper name, the outer loop, the call)
        self.helpers: dict[str, dict[str, Any]] = notebook_state(ctx, "MLC301.helpers", dict)
        self.callers: list[tuple[str, ast.AST, ast.AST]] = []  # this cell's: its loops are judged here

    def _nest(self) -> dict[str, Any] | None:
        loops = loops_in_scope(self.ctx.ancestors)
        if not loops:
            return self._helper()
        outer = loops[0]
        return self.nests.setdefault(id(outer), {"loop": outer, "backward": None, "step": None, "clear": False})

    def _helper(self) -> dict[str, Any] | None:
        """The facts of the function around a call outside any loop (a ``train_step`` helper)."""
        function = next((a for a in reversed(self.ctx.ancestors)
                         if type(a) in (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)), None)
        if type(function) not in (ast.FunctionDef, ast.AsyncFunctionDef):
            return None
        facts = self.helpers.get(function.name)  # type: ignore[union-attr]
        if facts is None or facts["def"] is not function:
            facts = self.helpers[function.name] = {  # type: ignore[union-attr]
                "def": function, "cell": self.ctx.cell, "backward": None, "step": None, "clear": False}
        return facts

    def visit_Call(self, node: ast.Call) -> None:
        """Record backward, step and gradient-clearing calls.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is ast.Attribute:
            attr = func.attr
        elif type(func) is ast.Name:
            attr = func.id
        else:
            return
        loops = loops_in_scope(self.ctx.ancestors)
        if loops and (type(func) is ast.Name or type(func.value) is ast.Name and func.value.id == "self"):
            self.callers.append((attr, loops[0], node))  # train_step(batch), self.train_step(batch)
        if attr in ("backward", "manual_backward"):
            if (qualified_names(self.ctx).resolve(func) or "").startswith("torch.distributed.autograd"):
                return  # distributed autograd keeps gradients per context: nothing to clear
            kind = "backward"
        elif attr == "step":
            if type(func) is not ast.Attribute or not _is_optimizer(func.value, self.optimizers):
                return
            kind = "step"
        elif "zero_grad" in attr or ("grad" in attr.lower() and ("clear" in attr.lower() or "reset" in attr.lower())):
            kind = "clear"
        elif attr in _GRAD_RESET_METHODS and type(func) is ast.Attribute and _mentions_grad(func.value):
            kind = "clear"
        else:
            return
        nest = self._nest()
        if nest is None:
            return
        if kind == "clear":
            nest["clear"] = True
        elif nest[kind] is None:
            nest[kind] = node

    def visit_Assign(self, node: ast.Assign) -> None:
        """Record ``p.grad = None`` and optimizers built from ``torch.optim``.

        Args:
            node: The assignment.
        """
        for target in node.targets:
            if type(target) is ast.Attribute and target.attr == "grad":
                nest = self._nest()
                if nest is not None:
                    nest["clear"] = True
        _remember_optimizers(self.ctx, node, self.optimizers)

    def end_file(self) -> list:
        """Report the loop nests that step without clearing.

        Returns:
            The findings.
        """
        for nest in self.nests.values():
            if nest["backward"] is not None and nest["step"] is not None and not nest["clear"]:
                step = nest["step"]
                self.report(step, f"this loop (line {nest['loop'].lineno}) calls `.backward()` and "
                                  f"`{dotted_name(step.func) or 'step'}()` but never clears gradients, so they "
                                  f"add up across iterations; call `optimizer.zero_grad()` in the loop")
        for name, facts in self.helpers.items():
            if facts["backward"] is None or facts["step"] is None or facts["clear"] or facts.get("reported"):
                continue
            for callee, loop, call in self.callers:
                nest = self.nests.get(id(loop))
                if callee == name and not (nest is not None and nest["clear"]):
                    step = facts["step"]
                    facts["reported"] = True
                    # in a notebook the helper may sit in an earlier cell: then point at the call
                    where = step if facts["cell"] == self.ctx.cell else call
                    self.report(where, f"`{name}()` calls `.backward()` and `{dotted_name(step.func) or 'step'}()` "
                                      f"but never clears gradients, and the loop that calls it (line "
                                      f"{loop.lineno}) does not either, so they add up across iterations; call "
                                      f"`optimizer.zero_grad()` in `{name}()`")
                    break
        return super().end_file()


_LOSS_CALLEE = re.compile(r"(criterion\w*|\w*_criterion|loss|\w+_loss|loss_\w+|\w*loss_?f(u)?n\w*|\w*lossfn)",
                          re.IGNORECASE)
_TORCH_LOSSES = {"cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
                 "cosine_embedding_loss", "ctc_loss", "gaussian_nll_loss", "hinge_embedding_loss"}
_DETACHING = frozenset({"item", "detach", "tolist", "numpy", "cpu"})
_NUMBER_FUNCTIONS = frozenset({"float", "int", "round", "abs"})


def _loss_kind(names: Any, value: ast.AST, tracked: dict[str, str]) -> str | None:
    """``loss`` for a tensor loss, ``number`` for a plain value, ``None`` for unknown."""
    kind = type(value)
    if kind is ast.Constant:
        return "number"
    if kind is ast.Call:
        func = value.func  # type: ignore[attr-defined]
        if type(func) is ast.Name and func.id in _NUMBER_FUNCTIONS:
            return "number"
        if type(func) is ast.Attribute and func.attr in _DETACHING:
            return "number"
        qual = names.resolve(func)
        if qual is not None:
            if qual.startswith(("numpy.", "sklearn.", "math.", "statistics.")):
                return "number"
            last = qual.rsplit(".", 1)[-1]
            if qual.startswith("torch.nn.functional.") and (last.endswith("_loss") or last in _TORCH_LOSSES):
                return "loss"
            return None
        if type(func) is ast.Call:  # nn.CrossEntropyLoss()(x, y)
            inner = names.resolve(func.func) or ""  # type: ignore[attr-defined]
            return "loss" if inner.startswith("torch.nn.") and inner.endswith("Loss") else None
        parts = dotted_parts(func)
        if parts and (_LOSS_CALLEE.fullmatch(parts[-1]) or ".".join(parts) in tracked):
            return "loss"
        return None
    if kind is ast.Attribute:
        if value.attr == "loss":  # type: ignore[attr-defined]
            return "loss"  # model outputs: outputs.loss
        if value.attr == "data":  # type: ignore[attr-defined]
            return "number"
        return None
    if kind is ast.BinOp:
        sides = [_loss_kind(names, value.left, tracked), _loss_kind(names, value.right, tracked)]  # type: ignore[attr-defined]
        return "loss" if "loss" in sides else None
    return None


def _bare_names(node: ast.AST) -> list[ast.Name]:
    """Names used as values (not through an attribute or a call) in arithmetic."""
    kind = type(node)
    if kind is ast.Name:
        return [node]  # type: ignore[list-item]
    if kind is ast.BinOp:
        return _bare_names(node.left) + _bare_names(node.right)  # type: ignore[attr-defined]
    if kind is ast.UnaryOp:
        return _bare_names(node.operand)  # type: ignore[attr-defined]
    return []


class _Scope:
    def __init__(self) -> None:
        self.status: dict[str, str] = {}  # name -> loss / number
        self.backward: dict[str, set[int]] = {}  # name -> ids of loop nests where .backward() is called
        self.backward_anywhere: set[str] = set()
        self.backward_loops: dict[str, set[int]] = {}  # name -> ids of every loop around its .backward()
        self.returned: set[str] = set()
        self.candidates: list[tuple[ast.AST, str, ast.Name, int, str]] = []  # (node, target, loss, nest, how)


@register
class LossAccumulatedWithGraph(ScopedSmellRule):
    """Flags a loss tensor summed across iterations with its autograd graph.

    What it does:
        Finds ``total += loss`` (or ``total = total + loss``) inside a loop, where
        ``loss`` comes from a loss call (``criterion(...)``, ``F.cross_entropy(...)``,
        ``outputs.loss``) or has ``.backward()`` called on it in the loop, and
        ``losses.append(loss)`` of a loss back-propagated in that loop, where the loss
        is not turned into a number first (``.item()``, ``.detach()``, ``float()``,
        ``.cpu().numpy()``, ``.data``). Accumulators that are themselves
        back-propagated or returned (summing loss terms on purpose), code under
        ``torch.no_grad()``, sklearn metrics (floats), and files that do not import
        torch (a hand-written numpy ``loss()`` returns numbers) are not flagged.

    Why is this bad?
        ``total`` stays a tensor that references every iteration's graph, with all
        their saved activations. Memory grows with each batch until the run dies with
        an out-of-memory error epochs later; on the way, every step is slower.

    Example:
        ```python
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            total_loss += loss
        ```

    Use instead:
        ```python
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            total_loss += loss.item()
        ```

    Fix safety:
        Unsafe: the accumulator becomes a Python float, which changes its type.
    """

    code = "MLC305"
    name = "loss-accumulated-with-graph"
    summary = "loss summed across iterations keeps every iteration's graph alive"
    fix_safety = "unsafe"
    requires_text = ("loss",) + ML_IMPORTS

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.loss_objects: dict[str, str] = notebook_state(ctx, "MLC305.losses", dict)

    def _nest_id(self) -> int | None:
        loops = loops_in_scope(self.ctx.ancestors)
        return id(loops[0]) if loops else None

    def visit_Assign(self, node: ast.Assign) -> None:
        """Track what each name holds; catch ``acc = acc + loss``.

        Args:
            node: The assignment.
        """
        scope = self.scopes[-1]
        names = qualified_names(self.ctx)
        if len(node.targets) == 1 and type(node.value) is ast.BinOp and type(node.value.op) is ast.Add:
            target = dotted_name(node.targets[0])
            left = node.value.left
            if target is not None and dotted_name(left) == target:
                self._candidate(node, target, node.value.right)
        if type(node.value) is ast.Call:
            qual = names.resolve(node.value.func) or ""
            if qual.startswith("torch.nn.") and qual.endswith("Loss"):
                for t in node.targets:
                    key = dotted_name(t)
                    if key:
                        self.loss_objects[key] = qual
        kind = _loss_kind(names, node.value, self.loss_objects)
        value = node.value
        if kind == "loss" and type(value) is ast.Attribute and type(value.value) is ast.Name \
                and scope.status.get(value.value.id) == "number":
            kind = "number"  # outputs.loss of outputs computed under no_grad
        if under_no_grad(self.ctx, self.ctx.ancestors):
            kind = "number"  # no graph to keep: a tensor computed under no_grad
        for t in node.targets:
            if type(t) is ast.Name:
                if kind is None:
                    scope.status.pop(t.id, None)
                else:
                    scope.status[t.id] = kind
            else:  # loss, acc = train(...): whatever the names held before is gone
                for sub in ast.walk(t):
                    if type(sub) is ast.Name:
                        scope.status.pop(sub.id, None)

    def visit_For(self, node: ast.For) -> None:
        """Forget what a loop's target names held (``for loss in losses``).

        Args:
            node: The loop.
        """
        for sub in ast.walk(node.target):
            if type(sub) is ast.Name:
                self.scopes[-1].status.pop(sub.id, None)

    visit_AsyncFor = visit_For

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        """Catch ``acc += loss``.

        Args:
            node: The assignment.
        """
        if type(node.op) is ast.Add:
            target = dotted_name(node.target)
            if target is not None:
                self._candidate(node, target, node.value)

    def _candidate(self, node: ast.AST, target: str, value: ast.AST) -> None:
        nest = self._nest_id()
        if nest is None or not self._torch():
            return
        scope = self.scopes[-1]
        for name in _bare_names(value):
            if scope.status.get(name.id) == "loss" and name.id != target:
                if not under_no_grad(self.ctx, self.ctx.ancestors):
                    scope.candidates.append((node, target, name, nest, "add"))
                return

    def visit_Call(self, node: ast.Call) -> None:
        """Record which names are back-propagated, and in which loop nest.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is not ast.Attribute:
            return
        if func.attr == "append" and len(node.args) == 1 and not node.keywords and type(node.args[0]) is ast.Name:
            self._appended(node, func, node.args[0])
            return
        if func.attr not in ("backward", "manual_backward"):
            return
        scope = self.scopes[-1]
        # loss.backward(), scaler.scale(loss).backward(), accelerator.backward(loss)
        roots = [func.value, *node.args[:1]] if func.attr == "backward" else list(node.args[:1])
        nest = self._nest_id()
        for root in roots:
            for sub in ast.walk(root):
                if type(sub) is ast.Name:
                    scope.backward_anywhere.add(sub.id)
                    if nest is not None:
                        scope.backward.setdefault(sub.id, set()).add(nest)
                        scope.backward_loops.setdefault(sub.id, set()).update(
                            id(loop) for loop in loops_in_scope(self.ctx.ancestors))
                elif type(sub) is ast.Attribute:
                    key = dotted_name(sub)
                    if key:
                        scope.backward_anywhere.add(key)

    def _torch(self) -> bool:
        """Autograd graphs exist only where torch is imported (a numpy ``loss()`` returns floats)."""
        return qualified_names(self.ctx).imports("torch")

    def _appended(self, node: ast.Call, func: ast.Attribute, name: ast.Name) -> None:
        """Catch ``losses.append(loss)`` (judged at the function's end: only a back-propagated loss)."""
        if not self._torch():
            return
        nest = self._nest_id()
        target = dotted_name(func.value)
        scope = self.scopes[-1]
        if (nest is not None and target is not None and scope.status.get(name.id) == "loss"
                and not under_no_grad(self.ctx, self.ctx.ancestors)):
            # judged against the innermost loop: an evaluation loop's list inside the epoch loop
            # holds no-grad losses, even though the epoch loop back-propagates elsewhere
            scope.candidates.append((node, target, name, id(loops_in_scope(self.ctx.ancestors)[-1]), "append"))

    def visit_Return(self, node: ast.Return) -> None:
        """Record returned names (a summed loss returned is meant to keep its graph).

        Args:
            node: The return statement.
        """
        if node.value is not None:
            for sub in ast.walk(node.value):
                key = dotted_name(sub) if type(sub) in (ast.Name, ast.Attribute) else None
                if key:
                    self.scopes[-1].returned.add(key)

    def _new_scope(self) -> _Scope:
        return _Scope()

    def _finish(self, scope: _Scope) -> None:
        for node, target, name, nest, how in scope.candidates:
            if target in scope.backward_anywhere:
                continue  # the sum is back-propagated: summing loss terms on purpose
            backed = nest in scope.backward.get(name.id, set())
            if how == "append":
                if nest in scope.backward_loops.get(name.id, set()):  # a list of loss terms for a later backward() has no backward() in the loop
                    fix = Fix("unsafe", f"append {name.id}.item()", (insert_after(self.ctx, name, ".item()"),))
                    self.report(name, f"`{name.id}` is back-propagated in this loop and is appended to "
                                      f"`{target}` with its autograd graph, which keeps every iteration's graph "
                                      f"in memory; append `{name.id}.item()` (or `.detach()`) instead", fix)
                continue
            if not backed and target in scope.returned:
                continue  # a helper returning the summed loss for its caller's backward()
            fix = Fix("unsafe", f"accumulate {name.id}.item()", (insert_after(self.ctx, name, ".item()"),))
            why = "is back-propagated in this loop" if backed else "comes from a loss call"
            self.report(name, f"`{name.id}` {why} and is added to `{target}` with its autograd graph, which "
                              f"keeps every iteration's graph in memory; add `{name.id}.item()` (or "
                              f"`.detach()`) instead", fix)





@register
class EvaluationWithoutEvalMode(SmellRule):
    """Flags evaluation under ``torch.no_grad()`` of a model never put into ``.eval()``.

    What it does:
        Finds a call of a model (a name such as ``model``, ``net``, ``encoder``) inside
        a ``torch.no_grad()``/``torch.inference_mode()`` block, where the file never
        calls ``.eval()`` (or ``.train(False)``) on that model.

    Why is this bad?
        ``no_grad`` only turns off gradient tracking. Dropout keeps dropping and
        batch norm keeps using (and updating) batch statistics, so validation scores
        are noisy and too low, and batch norm's running statistics drift.

    Example:
        ```python
        with torch.no_grad():
            val_logits = model(val_x)
        ```

    Use instead:
        ```python
        model.eval()
        with torch.no_grad():
            val_logits = model(val_x)
        ```
    """

    code = "MLC315"
    name = "evaluation-without-eval-mode"
    summary = "evaluation under no_grad with a model never put into eval mode"
    default = "preview"
    requires_text = ("no_grad", "inference_mode")

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.evaluated: set[str] = notebook_state(ctx, "MLC315.eval", set)
        self.calls: dict[str, ast.AST] = {}

    def visit_Call(self, node: ast.Call) -> None:
        """Record ``.eval()`` calls and model calls under ``no_grad``.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is ast.Attribute and _mode_call(node) == "eval":
            key = dotted_name(func.value)
            if key:
                self.evaluated.add(key)
            return
        key = dotted_name(func)
        if key is None or key in self.calls or not MODEL_NAME.fullmatch(key.rsplit(".", 1)[-1]):
            return
        if under_no_grad(self.ctx, self.ctx.ancestors):
            self.calls[key] = node

    def end_file(self) -> list:
        """Report models evaluated but never switched to eval mode.

        Returns:
            The findings.
        """
        for key, node in self.calls.items():
            if key not in self.evaluated:
                self.report(node, f"`{key}` is evaluated under `no_grad` but never put into eval mode: "
                                  f"dropout and batch norm still act as in training; call `{key}.eval()` "
                                  f"first (and `.train()` after)")
        return super().end_file()


def _mode_call(node: ast.Call) -> str | None:
    """``eval`` for ``m.eval()``/``m.train(False)``, ``train`` for ``m.train()``/``m.train(True)``,
    ``toggle`` for ``m.train(mode)`` with a value only known at run time."""
    func = node.func
    if type(func) is not ast.Attribute or func.attr not in ("eval", "train") or len(node.args) > 1:
        return None
    if func.attr == "eval":
        return "eval" if not node.args and not node.keywords else None
    given = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "mode"), None)
    if given is None:
        return "train" if not node.keywords else None
    if type(given) is ast.Constant and type(given.value) is bool:
        return "train" if given.value else "eval"
    return "toggle"


#: words in a file whose modules may behave differently in train and eval mode.
_MODE_WORDS = re.compile(r"dropout|batch_?norm|instance_?norm|\.training\b|\btraining\s*=|rrelu", re.IGNORECASE)


def _mode_free_classes(ctx: Any) -> set[str]:
    """The module classes of a file that provably act the same in train and eval mode.

    Only in a file that mentions no dropout, batch or instance norm or ``training``
    flag: a class whose methods call nothing imported from outside ``torch`` (its
    layers are ``torch.nn`` ones, or classes and functions of the same file; a
    torchvision or timm backbone makes it unknown).
    """
    def build() -> set[str]:
        if _MODE_WORDS.search(ctx.source):
            return set()
        names = qualified_names(ctx)
        free: set[str] = set()
        for cls in class_defs(ctx.tree):
            if not module_classes(ctx).get(cls.name):
                continue
            for node in ast.walk(cls):
                if type(node) is ast.Call:
                    qual = names.resolve(node.func)
                    if qual is not None and not (qual == "torch" or qual.startswith(("torch.", "builtins."))):
                        break
            else:
                free.add(cls.name)
        return free

    return file_cache(ctx, "smells.mode_free_classes", build)


class _ModeScope:
    def __init__(self) -> None:
        self.nests: dict[int, dict[str, Any]] = {}  # outer loop -> facts
        self.train_outside: set[str] = set()  # m.train() outside any loop
        self.trained: set[str] = set()  # m.parameters() seen: an optimizer over m is built here


@register
class TrainModeNotRestored(ScopedSmellRule):
    """Flags a training loop that puts the model into eval mode and never back.

    What it does:
        Finds a loop nest that calls ``.backward()`` and ``model.eval()`` (or
        ``model.train(False)``) but never ``model.train()``, where ``model`` is the model
        being trained: the same function calls ``model.train()`` before the loop or
        builds an optimizer over ``model.parameters()``. A loop that hands the model to
        a helper whose name says it trains (``train_one_epoch(model, ...)``) is left
        alone, since the helper may switch modes itself, and so is a model whose class,
        defined in the same file, provably has no layer that ``eval()`` changes (no
        dropout, batch or instance norm or ``training`` flag in the file, and no layer
        imported from outside ``torch``).

    Why is this bad?
        ``eval()`` turns dropout off and makes batch norm use its running statistics.
        After the first validation pass every later epoch trains in that mode: no
        regularisation from dropout, batch norm statistics frozen, and a model that
        quietly generalises worse. Nothing fails, and the loss still goes down.
        (The "training / evaluation mode improper toggling" smell of the ML code-smell
        catalogue.)

    Example:
        ```python
        model.train()
        for epoch in range(epochs):
            for x, y in train_loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
            model.eval()
            validate(model, val_loader)
        ```

    Use instead:
        ```python
        for epoch in range(epochs):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
            model.eval()
            validate(model, val_loader)
        ```
    """

    code = "MLC326"
    name = "train-mode-not-restored"
    summary = "training loop switches the model to eval mode and never back to train mode"
    requires_text = ("eval",)

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.instances: dict[str, str] = notebook_state(ctx, "MLC326.instances", dict)  # name -> class of this file

    def _new_scope(self) -> _ModeScope:
        return _ModeScope()

    def visit_Assign(self, node: ast.Assign) -> None:
        """Remember which names hold an instance of a module class of this file.

        Args:
            node: The assignment.
        """
        value = node.value
        inner = unwrap_module(qualified_names(self.ctx), value)
        cls = inner.func.id if type(inner) is ast.Call and type(inner.func) is ast.Name else None
        for target in node.targets:
            key = dotted_name(target)
            if key is None:
                continue
            moved = (type(value) is ast.Call and type(value.func) is ast.Attribute
                     and dotted_name(value.func.value) == key)  # model = model.cuda()
            if cls is not None and module_classes(self.ctx).get(cls):
                self.instances[key] = cls
            elif not moved:
                self.instances.pop(key, None)

    def _facts(self) -> dict[str, Any] | None:
        loops = loops_in_scope(self.ctx.ancestors)
        if not loops:
            return None
        return self.scopes[-1].nests.setdefault(id(loops[0]), {
            "backward": False, "eval": {}, "train": set(), "handed": set()})

    def visit_Call(self, node: ast.Call) -> None:
        """Record mode switches, backward passes and optimizers built over a model.

        Args:
            node: The call.
        """
        func = node.func
        scope = self.scopes[-1]
        if type(func) is ast.Attribute:
            if func.attr in ("parameters", "named_parameters"):
                key = dotted_name(func.value)
                if key:
                    scope.trained.add(key)
                return
            mode = _mode_call(node)
            if mode is not None:
                key = dotted_name(func.value)
                if key is None:
                    return
                facts = self._facts()
                if facts is None:
                    if mode != "eval":
                        scope.train_outside.add(key)
                elif mode == "eval":
                    facts["eval"].setdefault(key, node)
                else:
                    facts["train"].add(key)
                return
            if func.attr in ("backward", "manual_backward"):
                facts = self._facts()
                if facts is not None:
                    facts["backward"] = True
                return
        callee = dotted_name(func) or ""
        if "train" in callee.rsplit(".", 1)[-1].lower() or "fit" == callee.rsplit(".", 1)[-1]:
            facts = self._facts()
            if facts is not None:
                for arg in (*node.args, *(k.value for k in node.keywords)):
                    key = dotted_name(arg)
                    if key:
                        facts["handed"].add(key)

    def _finish(self, scope: _ModeScope) -> None:
        for facts in scope.nests.values():
            if not facts["backward"]:
                continue
            for key, node in facts["eval"].items():
                if key in facts["train"] or key in facts["handed"]:
                    continue
                if key not in scope.train_outside and key not in scope.trained:
                    continue  # not evidently the model this loop trains (a frozen teacher, say)
                if self.instances.get(key) in _mode_free_classes(self.ctx):
                    continue  # its class (in this file) has no layer that eval() changes
                call = "eval()" if node.func.attr == "eval" else "train(False)"
                self.report(node, f"`{key}.{call}` in this training loop is never undone: the loop "
                                  f"back-propagates, but no `{key}.train()` follows in the loop, so every step "
                                  f"after the first evaluation trains with dropout off and batch norm frozen; "
                                  f"call `{key}.train()` at the start of each training epoch")


def _remember_optimizers(ctx: Any, node: ast.Assign, known: set[str]) -> None:
    """Add the targets of ``opt = torch.optim.Adam(...)`` to ``known``."""
    if _optimizer_classes(qualified_names(ctx), node.value) is not None:
        for target in node.targets:
            key = dotted_name(target)
            if key:
                known.add(key)


def _is_optimizer(receiver: ast.AST, known: set[str]) -> bool:
    """Whether ``receiver.step()`` steps an optimizer (by name, or built from ``torch.optim`` here)."""
    parts = _receiver_parts(receiver)
    if not parts:
        return False
    return not _SCHEDULER_NAME.fullmatch(parts[-1]) and bool(
        _OPTIMIZER_NAME.fullmatch(parts[-1]) or ".".join(parts) in known)


def _calls_backward(stmt: ast.AST) -> bool:
    return any(type(n) is ast.Call and type(n.func) is ast.Attribute  # type: ignore[attr-defined]
               and n.func.attr in ("backward", "manual_backward") for n in ast.walk(stmt))  # type: ignore[attr-defined]


def _method_statement(stmt: ast.AST, method: str) -> str | None:
    """``recv`` when ``stmt`` is the bare statement ``recv.<method>(...)``."""
    if type(stmt) is not ast.Expr or type(stmt.value) is not ast.Call:  # type: ignore[attr-defined]
        return None
    func = stmt.value.func  # type: ignore[attr-defined]
    if type(func) is not ast.Attribute or func.attr != method:
        return None
    return dotted_name(func.value)


def _block_of(parent: ast.AST, node: ast.AST) -> list[ast.stmt] | None:
    for field in ("body", "orelse", "finalbody"):
        block = getattr(parent, field, None)
        if type(block) is list and any(s is node for s in block):
            return block
    return None


def _optimizer_classes(names: Any, value: ast.AST) -> str | None:
    """``Adam`` when ``value`` builds a ``torch.optim`` optimizer (not a scheduler)."""
    if type(value) is not ast.Call:
        return None
    qual = names.resolve(value.func) or ""  # type: ignore[attr-defined]
    if not qual.startswith("torch.optim.") or "lr_scheduler" in qual or "swa_utils" in qual:
        return None
    last = qual.rsplit(".", 1)[-1]
    return last if last[:1].isupper() and last != "Optimizer" else None


@register
class GradientsClearedBeforeStep(SmellRule):
    """Flags ``optimizer.zero_grad()`` between ``backward()`` and ``optimizer.step()``.

    What it does:
        Finds, in one block of statements, ``loss.backward()`` followed by
        ``opt.zero_grad()`` and then ``opt.step()`` on the same optimizer, with no
        ``backward()`` between the clearing and the step. A step with a closure
        (``opt.step(closure)``, as LBFGS takes) recomputes the gradients and is not
        flagged, and neither is clearing another optimizer (a GAN clearing the
        discriminator's gradients before stepping the generator).

    Why is this bad?
        ``zero_grad()`` throws away the gradients ``backward()`` has just computed, so
        ``step()`` sees zeros (or ``None``) and updates nothing: the model never
        learns, the loss stays flat, and nothing fails.

    Example:
        ```python
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        ```

    Use instead:
        ```python
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ```
    """

    code = "MLC328"
    name = "gradients-cleared-before-step"
    summary = "zero_grad() between backward() and step() discards the gradients"
    requires_text = ("zero_grad",)

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.optimizers: set[str] = notebook_state(ctx, "MLC328.optimizers", set)

    def visit_Assign(self, node: ast.Assign) -> None:
        """Remember names bound to ``torch.optim`` optimizers.

        Args:
            node: The assignment.
        """
        _remember_optimizers(self.ctx, node, self.optimizers)

    def visit_Expr(self, node: ast.Expr) -> None:
        """Check the statements before ``opt.step()``.

        Args:
            node: The statement.
        """
        call = node.value
        if type(call) is not ast.Call or call.args or call.keywords or type(call.func) is not ast.Attribute \
                or call.func.attr != "step" or not self.ctx.ancestors:
            return
        receiver = dotted_name(call.func.value)
        if receiver is None or not _is_optimizer(call.func.value, self.optimizers):
            return
        block = _block_of(self.ctx.ancestors[-1], node)
        if block is None:
            return
        at = next(i for i, s in enumerate(block) if s is node)
        clear = None
        for stmt in reversed(block[:at]):
            if clear is None:
                if _method_statement(stmt, "zero_grad") == receiver:
                    clear = stmt
                elif _calls_backward(stmt) or _method_statement(stmt, "step") == receiver:
                    return  # gradients computed after any clearing, or an earlier step
            elif _method_statement(stmt, "step") == receiver:
                return
            elif _calls_backward(stmt):
                self.report(clear, f"`{receiver}.zero_grad()` runs after `backward()` (line {stmt.lineno}) and "
                                   f"before `{receiver}.step()` (line {node.lineno}): it discards the gradients "
                                   f"just computed, so the step updates nothing; clear the gradients before "
                                   f"`backward()` instead")
                return


@register
class OptimizerRebuiltInLoop(ScopedSmellRule):
    """Flags an optimizer constructed inside the training loop it steps.

    What it does:
        Finds ``opt = torch.optim.Adam(...)`` (any ``torch.optim`` optimizer) inside a
        loop where ``opt.step()`` runs in that same loop, so a new optimizer is built for
        every batch, or inside a loop over epochs (its variable names an epoch) that
        steps it. A loop over folds, trials or learning rates that builds a fresh
        optimizer for each training run is not flagged, nor is plain ``SGD`` without
        momentum, which keeps no state.

    Why is this bad?
        Adam's moment estimates, momentum buffers and step counts live in the
        optimizer. Re-creating it throws them away each time: Adam restarts its bias
        correction and takes its largest steps again, momentum never builds up, and
        training is noisier and worse than intended, without an error.

    Example:
        ```python
        for x, y in loader:
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        ```

    Use instead:
        ```python
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        ```
    """

    code = "MLC329"
    name = "optimizer-rebuilt-in-loop"
    summary = "optimizer constructed inside the loop that steps it, losing its state"
    requires_text = ("torch.optim", "optim.", "from torch")

    def _new_scope(self) -> dict[str, Any]:
        # built: (name, node, enclosing loops); steps: name -> ids of the loops around its
        # step(); inner: name -> ids of the innermost loop of each step()
        return {"built": [], "steps": {}, "inner": {}}

    def visit_Assign(self, node: ast.Assign) -> None:
        """Record optimizers built inside loops.

        Args:
            node: The assignment.
        """
        kind = _optimizer_classes(qualified_names(self.ctx), node.value)
        if kind is None:
            return
        if kind == "SGD" and not any(k.arg == "momentum" and not is_literal(k.value, 0) for k in node.value.keywords):  # type: ignore[attr-defined]
            return  # plain SGD keeps no state between steps
        loops = loops_in_scope(self.ctx.ancestors)
        if not loops:
            return
        for target in node.targets:
            key = dotted_name(target)
            if key:
                self.scopes[-1]["built"].append((key, node, loops))

    def visit_Call(self, node: ast.Call) -> None:
        """Record where each optimizer steps.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is ast.Attribute and func.attr == "step":
            key = dotted_name(func.value)
            loops = loops_in_scope(self.ctx.ancestors)
            if key and loops:
                self.scopes[-1]["steps"].setdefault(key, set()).update(id(loop) for loop in loops)
                self.scopes[-1]["inner"].setdefault(key, set()).add(id(loops[-1]))

    def _finish(self, scope: dict[str, Any]) -> None:
        for key, node, loops in scope["built"]:
            inner = loops[-1]
            if id(inner) in scope["inner"].get(key, set()):
                where = "every iteration of this loop"
            elif id(inner) in scope["steps"].get(key, set()) and _names_epoch(inner):
                where = "every epoch"
            else:
                continue
            self.report(node, f"`{key}` is built anew in {where} (line {inner.lineno}) that steps it: its state "
                              f"(Adam's moments, momentum, step counts) is thrown away each time; build the "
                              f"optimizer once, before the loop")


def _names_epoch(loop: ast.AST) -> bool:
    target = getattr(loop, "target", None)
    return target is not None and any(type(n) is ast.Name and "epoch" in n.id.lower() for n in ast.walk(target))
