"""``check_eval``: an evaluation routine runs in eval mode, changes nothing, and gives
the same result under two seeds."""

from __future__ import annotations

import textwrap
from typing import Any, Callable

from .. import validation
from ..arrays import require_torch
from ..compare import Leaf, UncomparableOutputError, compare, diff_leaves, flatten, summarize
from ..report import emit
from .common import bad_input, fail, name_list, plural, quiet_run

#: The two seeds under which ``check_eval`` runs the evaluation.
EVAL_SEEDS = (1, 2)

#: How many differing leaves of the two results the message shows in full.
_SHOWN_DIFFERENCES = 3

_LABELS = (f"seed {EVAL_SEEDS[0]}", f"seed {EVAL_SEEDS[1]}")


def _result_leaves(check: str, result: Any) -> list[Leaf]:
    """Flatten (and so copy) one result of ``eval_fn``; an uncomparable one is bad input."""
    try:
        return flatten(result, "result")
    except UncomparableOutputError as exc:
        raise bad_input(check, UncomparableOutputError(f"{check}: {exc}")) from None


def _state_change(key: str, old: Any, new: Any) -> str | None:
    """Say how a parameter or buffer changed during the evaluation, or ``None`` if it did not.

    The comparison is :func:`pytest_mlcheck.compare.compare` at zero tolerance: bitwise,
    with NaN equal to NaN in the same place, so a buffer holding NaN is not "changed".
    """
    if new is None:
        return f"{key} (removed)"
    diff = compare(old, new, root=key, labels=("before", "after"))
    if diff is None:
        return None
    facts = diff.values
    if diff.what != "values":
        return f"{key} (replaced: {facts['detail']})"
    if facts["n_total"] == 1:
        before, after = facts["first_values"]
        return f"{key} ({before} -> {after})"
    parts = [f"{facts['n_diff']} of {facts['n_total']} elements"]
    if facts["max_abs_diff"] is not None:
        parts.append(f"max change {facts['max_abs_diff']:.3g}")
    if facts["became_nonfinite"]:
        parts.append(f"{facts['became_nonfinite']} became NaN/Inf")
    return f"{key} ({', '.join(parts)})"


def assert_eval_clean(model: Any, eval_fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Check that an evaluation routine runs in eval mode, changes nothing and is seeded-stable.

    ``eval_fn(*args, **kwargs)`` is the user's evaluation or inference routine, closing
    over ``model`` (or receiving it in ``args``); the caller's own model is observed
    through forward pre-hooks, which are removed afterwards. ``eval_fn`` runs twice:

    1. under seed 1, from the model's current state; every parameter and buffer is
       compared with a snapshot taken just before, so a mutation is detected before
       anything is restored;
    2. under seed 2, after restoring the snapshot (parameters, buffers and each
       module's ``training`` flag), so both runs start from the same state. A
       difference between the two results can then only come from randomness; without
       the restore, a mutation (BatchNorm running statistics) would masquerade as
       randomness, or hide it.

    The model is left as one ``eval_fn`` call leaves it. The check fails when:

    * a submodule runs its forward in training mode (named, with its class; dropout and
      normalisation layers, whose output depends on the mode, are listed first);
    * a parameter or buffer (BatchNorm ``running_mean``/``running_var``/
      ``num_batches_tracked``) changed during the call;
    * the results of the two runs differ (compared bitwise, leaf by leaf, by
      :mod:`pytest_mlcheck.compare`): the evaluation consumes randomness (dropout
      left on, e.g. ``F.dropout(x, p)`` whose ``training`` defaults to True, sampling).

    Args:
        model: The ``nn.Module`` that ``eval_fn`` uses.
        eval_fn: The evaluation routine; it must return its result (predictions,
            metrics; tensors, arrays, numbers, and dicts/lists/tuples of them).
        *args: Positional arguments for ``eval_fn``.
        **kwargs: Keyword arguments for ``eval_fn``.

    Returns:
        What ``eval_fn`` returned on its first run.

    Raises:
        AssertionError: The evaluation is not clean.
        TypeError: ``model`` is not an ``nn.Module``, ``eval_fn`` is not callable, or a
            result holds an object that cannot be compared
            (:class:`~pytest_mlcheck.compare.UncomparableOutputError`).
        ValueError: ``eval_fn`` returned None, or never ran the model's forward.
    """
    check = "check_eval"
    torch = require_torch(check)
    try:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"{check}: model must be a torch nn.Module, got "
                            f"{type(model).__name__}")
        validation.function(eval_fn, "eval_fn", check=check,
                            signature="(*args, **kwargs) -> result")
    except (TypeError, ValueError) as exc:
        raise bad_input(check, exc)
    model_name = type(model).__name__

    modules = dict(model.named_modules())
    ran: dict[str, bool] = {}

    def pre_hook_for(name: str) -> Callable:
        def pre_hook(module: Any, inputs: Any) -> None:
            ran[name] = ran.get(name, False) or bool(module.training)
        return pre_hook

    def snapshot() -> dict[str, Any]:
        state = {f"parameter {n}": p.detach().clone() for n, p in model.named_parameters()}
        state.update({f"buffer {n}": b.detach().clone() for n, b in model.named_buffers()})
        return state

    def tensors() -> dict[str, Any]:
        state = {f"parameter {n}": p for n, p in model.named_parameters()}
        state.update({f"buffer {n}": b for n, b in model.named_buffers()})
        return state

    modes = {name: m.training for name, m in modules.items()}
    before = snapshot()
    handles = [m.register_forward_pre_hook(pre_hook_for(name)) for name, m in modules.items()]
    try:
        with quiet_run(torch, EVAL_SEEDS[0]):
            first = eval_fn(*args, **kwargs)
        # Copied now: a second run that overwrites a returned buffer cannot hide a difference.
        first_leaves = _result_leaves(check, first)
        in_training = [name for name, training in ran.items() if training]
        current = tensors()
        changes = (_state_change(key, old, current.get(key)) for key, old in before.items())
        changed = [change for change in changes if change is not None]
        ran_first = dict(ran)
        # Restore so that the second run starts where the first did (see docstring).
        with torch.no_grad():
            for key, tensor in current.items():
                if key in before and tensor.shape == before[key].shape:
                    tensor.copy_(before[key])
        for name, m in modules.items():
            m.training = modes[name]
        with quiet_run(torch, EVAL_SEEDS[1]):
            second = eval_fn(*args, **kwargs)
        second_leaves = _result_leaves(check, second)
    finally:
        for handle in handles:
            handle.remove()

    if not ran_first:
        raise bad_input(check, ValueError(
            f"{check}: eval_fn never ran the forward pass of {model_name} (or of any of its "
            "submodules), so nothing was checked; pass the model that eval_fn uses"))
    if first is None:
        raise bad_input(check, ValueError(
            f"{check}: eval_fn returned None; return the predictions or metrics so that "
            "check_eval can compare the results of two seeds"))
    differences = diff_leaves(first_leaves, second_leaves, labels=_LABELS)

    problems: list[str] = []
    if in_training:
        dropout_like = (torch.nn.modules.dropout._DropoutNd,
                        torch.nn.modules.batchnorm._NormBase)
        sensitive = [n for n in in_training if isinstance(modules[n], dropout_like)]
        others = [n for n in in_training if n not in sensitive]
        label = lambda n: f"{n or '<root>'} ({type(modules[n]).__name__})"  # noqa: E731
        text = (f"* {plural(len(in_training), 'module')} ran forward in training mode "
                f"during eval_fn")
        if sensitive:
            text += (f"; these change their output in training mode: "
                     f"{name_list(label(n) for n in sensitive)}")
        if others:
            text += f"; also: {name_list(label(n) for n in others)}"
        text += ("\n    Likely causes: eval_fn does not call model.eval() (and the model was "
                 "left in training mode), or a submodule is switched back with .train() "
                 "inside forward.\n    Next: call model.eval() at the start of the "
                 "evaluation (and model.train() after it, in the training loop).")
        problems.append(text)
    if changed:
        problems.append(
            f"* {len(changed)} parameter(s)/buffer(s) changed during eval_fn: "
            f"{name_list(changed)}\n"
            "    Likely causes: BatchNorm running statistics updated by the evaluation data "
            "because the model was in training mode (the test set leaks into the model), an "
            "optimizer step or in-place write during evaluation.")
    difference = summarize(differences, limit=_SHOWN_DIFFERENCES) or None
    if difference:
        problems.append(
            f"* the result differs between seeds {EVAL_SEEDS[0]} and {EVAL_SEEDS[1]} (both "
            f"runs started from the same model state):\n{textwrap.indent(difference, '    ')}\n"
            "    Likely causes: dropout active during evaluation (F.dropout(x, p) defaults "
            "to training=True: pass training=self.training), random augmentation or "
            "sampling in the evaluation path, a random subset of the data.")
    values = {
        "model": model_name,
        "modules_run": len(ran_first),
        "modules_in_training_mode": in_training,
        "changed": changed,
        "seeds": list(EVAL_SEEDS),
        "result_differs": difference,
    }
    if differences:
        values["difference"] = differences[0].values
    if problems:
        message = (f"{check}: {plural(len(problems), 'problem')} evaluating {model_name}:\n"
                   + "\n".join(problems))
        fail(check, values, message)
    emit("train", check, "ok", values)
    return first
