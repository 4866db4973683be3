"""``check_step``: optimizer steps on one batch train every trainable parameter."""

from __future__ import annotations

import copy
import fnmatch
import math
from typing import Any, Callable, Iterable

from ..arrays import require_torch
from ..report import emit
from .common import (CHECK_SEED, DEFAULT_SGD_LR, LOSS_FN, NEGLIGIBLE_GRAD, bad_input, fail,
                     loss_tensor, model_fn_count, name_list, plural, quiet_run)
from .copies import build_optimizer
from .hidden import hidden_section, hidden_trainables


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pat) or name.startswith(pat + ".") for pat in patterns)


def _frozen_patterns(check: str, frozen: Any) -> list[str]:
    if isinstance(frozen, str):
        return [frozen]
    try:
        patterns = list(frozen)
    except TypeError:
        raise TypeError(f"{check}: frozen must be a parameter name, a glob pattern or a list "
                        f"of them, got {type(frozen).__name__}") from None
    for pat in patterns:
        if not isinstance(pat, str):
            raise TypeError(f"{check}: frozen holds {pat!r} ({type(pat).__name__}); give "
                            "parameter names or glob patterns such as 'backbone.*'")
    return patterns



def assert_trains(model: Any, loss_fn: Callable, batch: Any, *, optimizer: Any = None,
                  frozen: Iterable[str] | str = (), steps: int = 1) -> dict[str, Any]:
    """Take optimizer steps on one batch and check that every trainable parameter trains.

    A deep copy of ``model`` is put in training mode and trained with
    ``loss = loss_fn(copy, batch); loss.backward(); optimizer.step()`` (after
    ``zero_grad``), ``steps`` times, under a fixed seed. The check fails, naming every
    offending parameter by its qualified name, when:

    * a loss is NaN or infinite;
    * a trainable parameter gets no gradient, a non-finite one or an all-zero one;
    * a trainable parameter is unchanged after the steps;
    * a parameter matching ``frozen`` gets a gradient or changes;
    * a parameter has ``requires_grad=False`` but does not match ``frozen``;
    * a module holds a tensor requiring grad that is not a registered parameter (the
      ``nn.Parameter(...).to(...)`` bug), or parameters/submodules in a plain list,
      tuple or dict instead of ``nn.ParameterList``/``nn.ModuleList``/``nn.ModuleDict``.

    Args:
        model: The ``nn.Module``; never changed.
        loss_fn: ``loss_fn(model, batch)`` returning a scalar loss tensor.
        batch: Whatever ``loss_fn`` takes.
        optimizer: A factory ``params -> optimizer`` (given all the copy's parameters),
            or an optimizer instance over ``model`` to rebuild on the copy. Default:
            ``torch.optim.SGD(params, lr=0.1)``.
        frozen: Parameter names or glob patterns (``"backbone.*"``; a bare module name
            such as ``"backbone"`` also covers its parameters) meant to stay frozen.
            Default ``()``: every parameter must train.
        steps: How many optimizer steps to take (at least 1).

    Returns:
        The record's values: ``trainable``, ``frozen``, ``updated`` parameter counts,
        ``steps`` and the first and last loss.

    Raises:
        AssertionError: The step does not train the model as declared.
        TypeError: ``model``, ``loss_fn``, ``optimizer`` or ``frozen`` has the wrong type,
            or ``loss_fn`` does not return a tensor.
        ValueError: The model has no parameters, ``loss_fn`` returns a non-scalar, ``steps``
            is below 1, or a ``frozen`` pattern matches no parameter.
    """
    check = "check_step"
    torch = require_torch(check)
    try:
        named, steps = model_fn_count(check, model, torch, ("loss_fn", loss_fn, LOSS_FN),
                                      ("steps", steps))
        patterns = _frozen_patterns(check, frozen)
        hidden_all = hidden_trainables(model, torch)
        hidden = [h for h in hidden_all if not _matches(h[0], patterns)]
        names = [n for n, _ in named] + [h[0] for h in hidden_all]
        unused = [pat for pat in patterns
                  if not any(_matches(n, [pat]) for n in names)]
        if unused:
            raise ValueError(
                f"{check}: frozen pattern(s) {unused} match no parameter of "
                f"{type(model).__name__}; its parameters are: {name_list(names)}"
            )
    except (TypeError, ValueError) as exc:
        raise bad_input(check, exc)

    model_name = type(model).__name__
    try:
        clone = copy.deepcopy(model)
    except Exception as exc:
        if not hidden:
            raise bad_input(check, TypeError(
                f"{check}: could not deep-copy the model ({model_name}): {exc}. The check "
                "trains a copy so that your model is never changed; make it deep-copyable."
            )) from exc
        message = (f"{check}: {model_name} holds trainable tensors that are not registered "
                   f"parameters (and so cannot even be deep-copied: {exc}):\n"
                   + hidden_section(hidden))
        fail(check, {"model": model_name, "unregistered": [h[0] for h in hidden]}, message)

    with quiet_run(torch, CHECK_SEED):
        return _run_step_check(check, model, clone, loss_fn, batch, optimizer, patterns,
                               steps, hidden, torch)


def _run_step_check(check, model, clone, loss_fn, batch, optimizer, patterns, steps, hidden,
                    torch):
    model_name = type(model).__name__
    clone.train()
    for p in clone.parameters():
        p.grad = None
    params = dict(clone.named_parameters())
    declared = {n for n in params if _matches(n, patterns)}
    accidental = [n for n, p in params.items() if not p.requires_grad and n not in declared]
    trainable = [n for n, p in params.items() if p.requires_grad and n not in declared]
    try:
        opt = build_optimizer(check, optimizer, model, clone,
                              lambda ps: torch.optim.SGD(ps, lr=DEFAULT_SGD_LR), torch)
    except (TypeError, ValueError) as exc:
        raise bad_input(check, exc)
    before = {n: p.detach().clone() for n, p in params.items()}

    got_grad: dict[str, bool] = {n: False for n in params}
    nonzero_grad: dict[str, bool] = {n: False for n in params}
    grad_max: dict[str, float] = {n: 0.0 for n in params}
    nonfinite_grad: dict[str, int] = {}
    losses: list[float] = []
    problems: list[tuple[str, list[str], str]] = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        try:
            loss = loss_tensor(check, loss_fn(clone, batch), "loss_fn(model, batch)", torch)
        except (TypeError, ValueError) as exc:
            raise bad_input(check, exc)
        value = float(loss.detach().real.float())
        losses.append(value)
        if not math.isfinite(value):
            fail(check, {"model": model_name, "step": step, "loss": value},
                 f"{check}: the loss of {model_name} is {value} at step {step} (before "
                 f"{'any update' if step == 0 else 'update ' + str(step)}).\n"
                 "Likely causes: log(0) or division by zero in loss_fn (use log_softmax / "
                 "BCEWithLogitsLoss instead of log(softmax) / log(sigmoid)), NaN or inf in "
                 "the batch, a learning rate so high the weights diverged.\n"
                 "Next: run loss_fn on the batch by hand and print intermediate values, or "
                 "run under torch.autograd.detect_anomaly().")
        if not loss.requires_grad:
            fail(check, {"model": model_name, "step": step},
                 f"{check}: the loss returned by loss_fn does not require grad, so backward "
                 f"cannot reach any parameter of {model_name}.\n"
                 "Likely causes: the loss is computed under torch.no_grad() / "
                 "inference_mode(), from .detach()ed or .item()/.numpy() values, or every "
                 "parameter has requires_grad=False.\n"
                 f"Parameters with requires_grad=False: {name_list(accidental) or 'none'}.")
        loss.backward()
        for n, p in params.items():
            g = p.grad
            if g is None:
                continue
            got_grad[n] = True
            if not bool(torch.isfinite(g).all()):
                nonfinite_grad.setdefault(n, step)
            elif bool(g.any()):
                nonzero_grad[n] = True
                grad_max[n] = max(grad_max[n], float(g.detach().abs().max()))
        opt.step()

    changed = {n: not torch.equal(before[n], p.detach()) for n, p in params.items()}
    no_grad = [n for n in trainable if not got_grad[n]]
    bad_grad = [f"{n} (step {s})" for n, s in nonfinite_grad.items() if n in trainable]
    zero_grad = [n for n in trainable
                 if got_grad[n] and not nonzero_grad[n] and n not in nonfinite_grad]
    flagged = set(no_grad) | set(nonfinite_grad) | set(zero_grad)
    # A gradient that is zero up to rounding (a bias right before BatchNorm, which the
    # normalisation cancels) cannot move the weights; the parameter has no effect on the
    # output either, so it is noted, not failed.
    largest = max((grad_max[n] for n in trainable), default=0.0)
    negligible = [n for n in trainable if n not in flagged and not changed[n]
                  and grad_max[n] <= NEGLIGIBLE_GRAD * largest]
    unchanged = [n for n in trainable
                 if not changed[n] and n not in flagged and n not in negligible]
    frozen_grad = [n for n in params if n in declared and got_grad[n]]
    frozen_changed = [n for n in params if n in declared and changed[n]]

    if hidden:
        problems.append(("hidden", [h[0] for h in hidden], hidden_section(hidden)))
    if accidental:
        problems.append(("frozen_by_accident", accidental,
            f"* requires_grad=False but not listed in frozen ({len(accidental)}): "
            f"{name_list(accidental)}\n"
            "    Likely causes: a freezing loop that caught more than intended (e.g. `for p "
            "in model.parameters(): p.requires_grad = False` before unfreezing a head), a "
            "pretrained part loaded frozen and never unfrozen.\n"
            "    Next: unfreeze them, or declare the intent with frozen=[...] (globs such as "
            "'backbone.*')."))
    if no_grad:
        problems.append(("no_grad", no_grad,
            f"* trainable but got no gradient ({len(no_grad)}): {name_list(no_grad)}\n"
            "    Likely causes: the parameter is not used in the forward pass (a layer "
            "created but never called, a branch not taken), or the graph is cut before it "
            "(.detach(), .data, .item(), torch.no_grad, a numpy round trip)."))
    if bad_grad:
        problems.append(("nonfinite_grad", list(nonfinite_grad),
            f"* non-finite gradient ({len(bad_grad)}): {name_list(bad_grad)}\n"
            "    Likely causes: sqrt/log/division at 0 in the forward pass, overflow in "
            "float16, an exploding activation."))
    if zero_grad:
        problems.append(("zero_grad", zero_grad,
            f"* gradient is all zeros ({len(zero_grad)}): {name_list(zero_grad)}\n"
            "    Likely causes: dead ReLUs, a saturated sigmoid/tanh, a zero-initialised layer "
            "feeding another zero-initialised layer, an argmax / rounding / comparison in "
            "the path, or a loss that does not depend on this output."))
    if unchanged:
        problems.append(("unchanged", unchanged,
            f"* trainable, has a gradient, but unchanged after {plural(steps, 'step')} "
            f"({len(unchanged)}): {name_list(unchanged)}\n"
            "    Likely causes: the optimizer does not hold these parameters (built from a "
            "subset or before the layer was added), a learning rate of zero, a gradient too "
            "small to move the weights at this learning rate."))
    if frozen_grad:
        problems.append(("frozen_got_grad", frozen_grad,
            f"* listed in frozen but got a gradient ({len(frozen_grad)}): "
            f"{name_list(frozen_grad)}\n"
            "    Likely causes: requires_grad was never set to False for them (freezing by "
            "leaving them out of the optimizer still computes their gradients, and weight "
            "decay or momentum may still move them).\n"
            "    Next: param.requires_grad_(False) for each, or run that part under "
            "torch.no_grad()."))
    if frozen_changed:
        problems.append(("frozen_changed", frozen_changed,
            f"* listed in frozen but changed ({len(frozen_changed)}): "
            f"{name_list(frozen_changed)}\n"
            "    Likely causes: they are still in the optimizer with requires_grad=True, or "
            "the forward pass writes to them in place."))

    values = {
        "model": type(model).__name__,
        "trainable": len(trainable),
        "frozen": len(declared) + len(accidental),
        "updated": sum(1 for n in trainable if changed[n]),
        "parameters": len(params),
        "steps": steps,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "optimizer": type(opt).__name__,
    }
    if negligible:
        values["negligible_grad"] = negligible
    if problems:
        values["problems"] = {key: names for key, names, _ in problems}
        message = (f"{check}: {plural(len(problems), 'problem')} training {model_name} "
                   f"({plural(len(params), 'parameter')}, {plural(steps, 'step')} of "
                   f"{type(opt).__name__}; loss {losses[0]:.6g} -> {losses[-1]:.6g}):\n"
                   + "\n".join(text for _, _, text in problems))
        if negligible:
            message += (f"\nNote (not a failure): gradient zero up to rounding, so unchanged: "
                        f"{name_list(negligible)}; typical of a bias right before BatchNorm, which "
                        "cancels it (build that layer with bias=False).")
        fail(check, values, message)
    emit("train", check, "ok", values)
    return values

