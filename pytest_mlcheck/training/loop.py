"""``check_training_loop``: the user's training step, observed through autograd and
optimizer hooks, must not leak gradients across steps nor take steps that do nothing."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from ..arrays import require_torch
from ..report import emit
from .common import (CHECK_SEED, NEGLIGIBLE_GRAD, bad_input, fail, model_fn_count, name_list,
                     plural, quiet_run)
from .copies import build_optimizer, copy_model


def assert_training_loop(step_fn: Callable, model: Any, optimizer: Any, batches: Iterable[Any],
                         *, accumulate: int = 1) -> dict[str, Any]:
    """Run the user's training step over batches and check how gradients flow into steps.

    ``step_fn(model_copy, optimizer_copy, batch)`` is called exactly once per batch, in
    order (real step functions carry state: step counters, schedules), on a deep copy
    of ``model`` whose gradients start cleared, under a fixed seed. Nothing is re-run:
    a hook on each parameter sees every backward pass's contribution and the gradient
    already there before it; optimizer step hooks see the gradient each ``step()``
    applies and whether the weights moved. The check fails when:

    * the first backward pass after an optimizer step adds to a gradient that is not
      zero, i.e. the step applies gradients of earlier batches (``zero_grad`` missing
      or misplaced); likewise when a step applies a gradient no backward pass since the
      previous step produced;
    * inside a declared accumulation window a backward pass finds its gradient reset
      (``zero_grad`` every micro-batch), or a step applies a zeroed gradient
      (``zero_grad`` between ``backward`` and ``step``);
    * ``step()`` is not called once every ``accumulate`` batches (the last, partial
      window may step too);
    * a parameter with a non-zero applied gradient is unchanged by a step (a learning
      rate of zero, e.g. warm-up from zero at step 0, or a parameter the optimizer
      does not hold);
    * a step applies a NaN or infinite gradient, or ``step_fn`` returns a NaN or
      infinite loss.

    Gradient clipping, loss scaling and unscaling between ``backward`` and ``step`` are
    fine: the rules compare gradients before each backward pass, not after clipping.

    Args:
        step_fn: ``step_fn(model, optimizer, batch) -> loss``; it must use the optimizer
            it is given.
        model: The ``nn.Module``; never changed.
        optimizer: A factory ``params -> optimizer`` (given all the copy's parameters;
            build an LR scheduler inside it and attach it to the optimizer if
            ``step_fn`` needs one), or an optimizer instance over ``model``, rebuilt
            on the copy as the same class with the same param groups and a deep copy
            of its state. The caller's optimizer is never changed.
        batches: The batches (any iterable; at least one).
        accumulate: The number of micro-batches each optimizer step declares to sum.

    Returns:
        The record's values: ``steps``, ``batches``, ``accumulate``, ``losses``.

    Raises:
        AssertionError: Gradients leak between steps, or a step does not train.
        TypeError: An argument has the wrong type.
        ValueError: ``batches`` is empty, ``accumulate`` is below 1, or the model has no
            parameters.
    """
    check = "check_training_loop"
    torch = require_torch(check)
    try:
        _, accumulate = model_fn_count(check, model, torch,
                                       ("step_fn", step_fn, "(model, optimizer, batch) -> loss"),
                                       ("accumulate", accumulate))
        if optimizer is None:
            raise TypeError(f"{check}: optimizer is required: a factory `params -> optimizer` "
                            "such as `lambda ps: torch.optim.SGD(ps, lr=0.1)`, or an "
                            "optimizer instance over the model")
        try:
            batch_list = list(batches)
        except TypeError:
            raise TypeError(f"{check}: batches must be an iterable of batches, got "
                            f"{type(batches).__name__}") from None
        if not batch_list:
            raise ValueError(f"{check}: batches is empty; give at least "
                             f"{max(2, accumulate * 2)} batches so that two steps run")
    except (TypeError, ValueError) as exc:
        raise bad_input(check, exc)
    clone = copy_model(check, model, torch)
    for p in clone.parameters():
        p.grad = None
    try:
        opt = build_optimizer(check, optimizer, model, clone, None, torch)
    except (TypeError, ValueError) as exc:
        raise bad_input(check, exc)
    with quiet_run(torch, CHECK_SEED):
        return _run_loop_check(check, model, clone, opt, step_fn, batch_list, accumulate,
                               torch)


class _LoopObserver:
    """Hooks on a model copy and its optimizer that record how gradients reach steps."""

    def __init__(self, clone: Any, opt: Any, torch: Any) -> None:
        self.torch = torch
        self.names: dict[int, str] = {}
        for name, p in clone.named_parameters():
            self.names[id(p)] = name
        for gi, group in enumerate(opt.param_groups):
            for pi, p in enumerate(group["params"]):
                self.names.setdefault(id(p), f"<optimizer group {gi} param {pi}>")
        self.params = {self.names[id(p)]: p for p in clone.parameters()}
        for group in opt.param_groups:
            for p in group["params"]:
                self.params.setdefault(self.names[id(p)], p)
        #: Sum of backward contributions per parameter since the last step (or None).
        self.pending: dict[str, Any] = {n: None for n in self.params}
        self.batch = 0
        self.step_batches: list[int] = []
        self.leaks: list[tuple[int, int, str, float, float]] = []
        self.stale_applied: list[tuple[int, int, str, float]] = []
        self.reset_inside: list[tuple[int, str]] = []
        self.zeroed_before_step: list[tuple[int, int, str]] = []
        self.unchanged: list[tuple[int, int, str, float]] = []
        self.nonfinite_applied: list[tuple[int, int, str]] = []
        self.lrs: list[list[float]] = []
        self._snapshot: dict[str, Any] = {}
        self._applied_nonzero: dict[str, float] = {}
        self.handles = []
        self._inflight: dict[str, tuple] = {}
        for name, p in self.params.items():
            if p.requires_grad and p.grad_fn is None:
                self.handles.append(p.register_hook(self._grad_hook(name)))
                self.handles.append(
                    p.register_post_accumulate_grad_hook(self._accumulated_hook(name)))
        self.handles.append(opt.register_step_pre_hook(self._pre_step))
        self.handles.append(opt.register_step_post_hook(self._post_step))

    def _grad_hook(self, name: str) -> Callable:
        def hook(grad: Any) -> None:
            # A leaf's tensor hook runs before the gradient is accumulated into p.grad, so
            # p.grad here is exactly what this backward pass adds to. Only note it now:
            # torch.autograd.grad() also runs this hook but accumulates nothing, so the
            # contribution counts only once the post-accumulate hook confirms it.
            existing = self.params[name].grad
            self._inflight[name] = (
                existing is None,
                existing is not None and bool(existing.any()),
                0.0 if existing is None else float(existing.detach().float().norm()),
                grad.detach().clone(),
            )
            return None

        return hook

    def _accumulated_hook(self, name: str) -> Callable:
        def hook(param: Any) -> None:
            inflight = self._inflight.pop(name, None)
            if inflight is None:  # pragma: no cover - torch always runs the tensor hook first
                return
            was_none, was_nonzero, existing_norm, grad = inflight
            pending = self.pending[name]
            if pending is None:
                if was_nonzero:
                    self.leaks.append((len(self.step_batches), self.batch, name,
                                       existing_norm, float(grad.float().norm())))
                self.pending[name] = grad
            else:
                if was_none or (bool(pending.any()) and not was_nonzero):
                    self.reset_inside.append((self.batch, name))
                self.pending[name] = pending + grad

        return hook

    def _pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        step = len(self.step_batches)
        self.step_batches.append(self.batch)
        self.lrs.append([float(g.get("lr", float("nan"))) for g in optimizer.param_groups])
        self._snapshot = {}
        self._applied_nonzero = {}
        for name, p in self.params.items():
            applied, pending = p.grad, self.pending[name]
            nonzero = applied is not None and bool(applied.any())
            if pending is None and nonzero:
                self.stale_applied.append((step, self.batch, name,
                                           float(applied.detach().float().norm())))
            elif pending is not None and bool(pending.any()) and not nonzero:
                self.zeroed_before_step.append((step, self.batch, name))
            finite = applied is None or bool(self.torch.isfinite(applied).all())
            if not finite:
                self.nonfinite_applied.append((step, self.batch, name))
            if nonzero and finite:
                self._applied_nonzero[name] = float(applied.detach().abs().max())
                self._snapshot[name] = p.detach().clone()
            self.pending[name] = None
        # Gradients zero up to rounding (a bias before BatchNorm) cannot move weights.
        largest = max(self._applied_nonzero.values(), default=0.0)
        for name, size in list(self._applied_nonzero.items()):
            if size <= NEGLIGIBLE_GRAD * largest:
                del self._snapshot[name]

    def _post_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        step = len(self.step_batches) - 1
        for name, before in self._snapshot.items():
            if self.torch.equal(before, self.params[name].detach()):
                self.unchanged.append((step, self.batch, name, self._applied_nonzero[name]))
        self._snapshot = {}

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _group_by_step(events: list[tuple], step_of: Callable, name_of: Callable) -> list[str]:
    by_step: dict[Any, list[str]] = {}
    for e in events:
        by_step.setdefault(step_of(e), []).append(name_of(e))
    lines = [f"{key}: {name_list(dict.fromkeys(v))}" for key, v in list(by_step.items())[:5]]
    if len(by_step) > 5:
        lines.append(f"... and {len(by_step) - 5} more like these")
    return lines


def _at_step(event: tuple) -> str:
    return f"step {event[0]} (batch {event[1]})"


def _name(event: tuple) -> str:
    return event[2]


def _section(header: str, lines: list[str], *notes: str) -> str:
    """Return a problem's text: its header, then its lines and notes indented under it."""
    return "\n".join([header] + ["    " + line for line in [*lines, *notes]])


def _run_loop_check(check, model, clone, opt, step_fn, batch_list, accumulate, torch):
    model_name = type(model).__name__
    observer = _LoopObserver(clone, opt, torch)
    losses: list[float | None] = []
    nonfinite_loss: list[tuple[int, float]] = []
    try:
        for i, batch in enumerate(batch_list):
            observer.batch = i
            loss = step_fn(clone, opt, batch)
            value = None
            if isinstance(loss, torch.Tensor) and loss.numel() == 1:
                value = float(loss.detach().real.float())
            elif isinstance(loss, (int, float)) and not isinstance(loss, bool):
                value = float(loss)
            losses.append(value)
            if value is not None and not math.isfinite(value):
                nonfinite_loss.append((i, value))
    finally:
        observer.remove()

    n = len(batch_list)
    steps = observer.step_batches
    problems: list[tuple[str, str]] = []
    if not steps:
        problems.append(("no_step",
            f"* optimizer.step() was never called over {plural(n, 'batch')}.\n"
            "    Likely causes: step_fn steps an optimizer of its own (it must use the one it "
            "is given), or only steps after more batches than were given."))
    else:
        expected = [i for i in range(n) if (i + 1) % accumulate == 0]
        allowed_extra = {n - 1}
        wrong = [i for i in steps if i not in expected and i not in allowed_extra]
        missed = [i for i in expected if i not in steps]
        doubled = sorted({i for i in steps if steps.count(i) > 1})
        if wrong or missed or doubled:
            detail = []
            if wrong:
                detail.append(f"stepped during batch(es) {wrong[:20]}")
            if missed:
                detail.append(f"did not step during batch(es) {missed[:20]}")
            if doubled:
                detail.append(f"stepped more than once during batch(es) {doubled[:20]}")
            problems.append(("schedule",
                f"* with accumulate={accumulate} the optimizer should step once every "
                f"{plural(accumulate, 'batch')} (after batches {expected[:10]}"
                f"{'...' if len(expected) > 10 else ''}), but step_fn "
                + "; ".join(detail) + ".\n"
                "    Next: pass accumulate=<micro-batches per step> if step_fn accumulates "
                "on purpose; otherwise step (and zero_grad) once per batch."))
    if observer.leaks or observer.stale_applied:
        lines = _group_by_step(
            observer.leaks,
            lambda e: f"step {e[0]} (first backward in batch {e[1]})",
            lambda e: f"{e[2]} (|stale grad| {e[3]:.3g} vs |this batch| {e[4]:.3g})")
        lines += _group_by_step(
            observer.stale_applied,
            lambda e: f"step {e[0]} (batch {e[1]}, no backward since the previous step)",
            lambda e: f"{e[2]} (|applied grad| {e[3]:.3g})")
        leaked = {e[2] for e in observer.leaks} | {e[2] for e in observer.stale_applied}
        problems.append(("leak", _section(
            f"* gradients leak across optimizer steps ({plural(len(leaked), 'parameter')}): "
            "each step applies the gradient of its own batch PLUS the gradients of earlier "
            "batches, because p.grad was not zeroed after the previous step:", lines,
            "Likely causes: optimizer.zero_grad() missing, called on a different "
            "optimizer or model, or placed after backward() instead of before it.",
            "Next: call optimizer.zero_grad(set_to_none=True) once per step, before the "
            "first backward of the step; if the accumulation is intended, pass "
            "accumulate=<micro-batches per step>.")))
    if observer.reset_inside:
        problems.append(("reset_inside_window", _section(
            f"* with accumulate={accumulate}, gradients of earlier micro-batches were "
            "discarded before the optimizer step (p.grad was reset inside the "
            "accumulation window):",
            _group_by_step(observer.reset_inside, lambda e: f"batch {e[0]}", lambda e: e[1]),
            "Likely causes: zero_grad() called every micro-batch instead of once per "
            "step, or accumulate larger than the loop's real accumulation.")))
    if observer.zeroed_before_step:
        problems.append(("zeroed_before_step", _section(
            "* gradients were computed but zeroed before optimizer.step(), so the step "
            "ignores this batch:", _group_by_step(observer.zeroed_before_step, _at_step, _name),
            "Likely causes: optimizer.zero_grad() placed between loss.backward() and "
            "optimizer.step().")))
    if observer.unchanged:
        lines = []
        by_step: dict[int, list[tuple]] = {}
        for e in observer.unchanged:
            by_step.setdefault(e[0], []).append(e)
        for step, events in by_step.items():
            lrs = observer.lrs[step] if step < len(observer.lrs) else []
            lines.append(f"step {step} (batch {events[0][1]}, lr {lrs}): "
                         + name_list(f"{e[2]} (max |grad| {e[3]:.3g})" for e in events))
        problems.append(("unchanged", _section(
            "* optimizer.step() left parameters with a non-zero gradient unchanged:", lines,
            "Likely causes: a learning rate of zero at that step (a warm-up schedule "
            "starting from 0: LambdaLR(lambda s: s / warmup) gives lr 0 at step 0; use "
            "(s + 1) / warmup), parameters missing from the optimizer's param groups, a "
            "gradient too small for the learning rate.")))
    if observer.nonfinite_applied:
        problems.append(("nonfinite_grad", _section(
            "* optimizer.step() applied a NaN/inf gradient:",
            _group_by_step(observer.nonfinite_applied, _at_step, _name),
            "Likely causes: float16 overflow without a GradScaler (or stepping the "
            "optimizer directly instead of scaler.step), log/sqrt/division at 0, a learning "
            "rate so high the weights diverged.")))
    if nonfinite_loss:
        problems.append(("nonfinite_loss",
            f"* step_fn returned a non-finite loss at batch(es) "
            f"{[i for i, _ in nonfinite_loss][:20]} (first: {nonfinite_loss[0][1]})."))

    finite = [v for v in losses if v is not None]
    values = {
        "model": model_name,
        "optimizer": type(opt).__name__,
        "batches": n,
        "steps": len(steps),
        "accumulate": accumulate,
        "losses": losses,
        "loss_first": finite[0] if finite else None,
        "loss_last": finite[-1] if finite else None,
    }
    if problems:
        values["problems"] = [key for key, _ in problems]
        message = (f"{check}: {plural(len(problems), 'problem')} in the training loop of "
                   f"{model_name} ({plural(n, 'batch')}, {plural(len(steps), 'optimizer step')}"
                   f" of {type(opt).__name__}, accumulate={accumulate}):\n"
                   + "\n".join(text for _, text in problems))
        fail(check, values, message)
    emit("train", check, "ok", values)
    return values

