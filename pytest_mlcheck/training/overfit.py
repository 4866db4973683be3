"""``check_overfit``: the model must overfit one tiny batch (the classic sanity check)."""

from __future__ import annotations

import math
from typing import Any, Callable

from .. import validation
from ..arrays import require_torch
from ..report import emit
from .common import (CHECK_SEED, LOSS_FN, bad_input, fail, loss_tensor, model_fn_count,
                     name_list, plural, quiet_run)
from .copies import build_optimizer, copy_model

#: Learning rate of the default Adam of ``check_overfit``.
DEFAULT_ADAM_LR = 1e-2


def assert_overfits(model: Any, loss_fn: Callable, batch: Any, *, steps: int = 200,
                    target_loss: float | None = None, reduction: float = 0.1,
                    optimizer: Any = None) -> dict[str, Any]:
    """Check that the model can overfit one tiny batch (the classic sanity check).

    A deep copy in training mode is trained on ``batch`` alone, under a fixed seed,
    until the loss falls below ``target_loss`` (or below ``reduction`` times the first
    loss when no target is given) or ``steps`` run out; it stops as soon as the target
    is reached. A model that cannot memorise a handful of examples has a bug.

    Args:
        model: The ``nn.Module``; never changed.
        loss_fn: ``loss_fn(model, batch)`` returning a scalar loss tensor.
        batch: One small batch (a few to a few dozen examples).
        steps: The most optimizer steps to take.
        target_loss: The loss to reach. Default: ``reduction`` times the first loss.
        reduction: The factor by which the loss must fall when ``target_loss`` is None
            (0 < reduction < 1).
        optimizer: A factory ``params -> optimizer`` or an optimizer instance over
            ``model`` to rebuild on the copy. Default ``torch.optim.Adam(params,
            lr=1e-2)``, which overfits small healthy models well within 200 steps.

    Returns:
        The record's values: ``loss_first``, ``loss_min``, ``loss_last``, ``target``,
        ``steps_run``.

    Raises:
        AssertionError: The loss did not reach the target.
        TypeError: An argument has the wrong type, or ``loss_fn`` returns no tensor.
        ValueError: ``steps`` is below 1, ``reduction`` is outside (0, 1), the loss is
            not positive while no ``target_loss`` is given, ``loss_fn`` returns a
            non-scalar, or the model has no parameters.
    """
    check = "check_overfit"
    torch = require_torch(check)
    try:
        _, steps = model_fn_count(check, model, torch, ("loss_fn", loss_fn, LOSS_FN),
                                  ("steps", steps))
        if target_loss is None:
            validation.number(reduction, "reduction", low=0, high=1, low_open=True,
                              high_open=True, check=check)
        else:
            validation.number(target_loss, "target_loss", check=check)
    except (TypeError, ValueError) as exc:
        raise bad_input(check, exc)
    clone = copy_model(check, model, torch)
    clone.train()
    for p in clone.parameters():
        p.grad = None
    try:
        opt = build_optimizer(check, optimizer, model, clone,
                              lambda ps: torch.optim.Adam(ps, lr=DEFAULT_ADAM_LR), torch)
    except (TypeError, ValueError) as exc:
        raise bad_input(check, exc)
    with quiet_run(torch, CHECK_SEED):
        return _run_overfit(check, model, clone, opt, loss_fn, batch, steps, target_loss,
                            reduction, torch)


def _run_overfit(check, model, clone, opt, loss_fn, batch, steps, target_loss, reduction,
                 torch):
    model_name = type(model).__name__
    outputs: list[Any] = []

    def keep_output(module: Any, inputs: Any, output: Any) -> None:
        outputs[:] = [output.detach() if isinstance(output, torch.Tensor) else None]

    handle = clone.register_forward_hook(keep_output)
    losses: list[float] = []
    target = target_loss
    grad_state: dict[str, str] = {}
    taken = 0
    detached = False
    try:
        for step in range(steps + 1):
            opt.zero_grad(set_to_none=True)
            try:
                loss = loss_tensor(check, loss_fn(clone, batch), "loss_fn(model, batch)",
                                   torch)
            except (TypeError, ValueError) as exc:
                raise bad_input(check, exc)
            value = float(loss.detach().real.float())
            losses.append(value)
            if step == 0 and target is None:
                if not (math.isfinite(value) and value > 0):
                    raise bad_input(check, ValueError(
                        f"{check}: the first loss is {value}, so `reduction` cannot define a "
                        "target; pass target_loss=<the loss a memorised batch reaches>"))
                target = value * reduction
            if not math.isfinite(value) or value <= target or step == steps:
                break
            if not loss.requires_grad:
                detached = True
                break
            loss.backward()
            if step == 0:
                for name, p in clone.named_parameters():
                    if not p.requires_grad:
                        grad_state[name] = "requires_grad=False"
                    elif p.grad is None:
                        grad_state[name] = "no gradient"
                    elif not bool(p.grad.any()):
                        grad_state[name] = "all-zero gradient"
            opt.step()
            taken += 1
    finally:
        handle.remove()

    finite = [v for v in losses if math.isfinite(v)]
    values = {
        "model": model_name,
        "optimizer": type(opt).__name__,
        "loss_first": losses[0],
        "loss_min": min(finite) if finite else float("nan"),
        "loss_last": losses[-1],
        "target": target,
        "steps_run": taken,
        "steps": steps,
    }
    if math.isfinite(losses[-1]) and losses[-1] <= target:
        emit("train", check, "ok", values)
        return values

    causes = _overfit_causes(clone, opt, outputs[0] if outputs else None, losses, grad_state,
                             torch)
    if detached:
        causes.insert(0, "the loss does not require grad, so nothing can train: it is computed "
                         "under torch.no_grad(), from detached values, or every parameter is "
                         "frozen.")
    how = (f"target_loss={target_loss:.6g}" if target_loss is not None
           else f"reduction={reduction} of the first loss, i.e. {target:.6g}")
    message = (
        f"{check}: {model_name} did not overfit one batch in {plural(taken, 'step')} "
        f"of {type(opt).__name__} (needed a loss <= {target:.6g}: {how}).\n"
        f"loss: first {losses[0]:.6g}, min {values['loss_min']:.6g}, last {losses[-1]:.6g}\n"
        "Likely causes, most specific first:\n" + "\n".join(f"* {c}" for c in causes) + "\n"
        "Next: fix the first cause that applies; a healthy model memorises a tiny batch. "
        "If it truly needs longer, raise steps= or pass a stronger optimizer factory."
    )
    fail(check, values, message)


def _overfit_causes(clone, opt, output, losses, grad_state, torch) -> list[str]:
    causes: list[str] = []
    if output is not None and output.is_floating_point() and output.numel() > 0:
        out = output.float()
        in_unit = bool(((out >= 0) & (out <= 1)).all())
        if in_unit and out.dim() >= 1 and out.shape[-1] > 1 and bool(
                torch.allclose(out.sum(-1), torch.ones_like(out.sum(-1)), atol=1e-4)):
            causes.append(
                f"the model outputs probabilities (every row of its {tuple(out.shape)} output "
                "sums to 1): a softmax before a loss that expects logits. CrossEntropyLoss "
                "and F.cross_entropy apply log_softmax themselves; remove the softmax from "
                "forward() (apply it only at inference), or use NLLLoss on log_softmax.")
        elif in_unit:
            causes.append(
                f"the model's outputs all lie in [0, 1] (shape {tuple(out.shape)}): a sigmoid "
                "before a loss that expects logits (BCEWithLogitsLoss applies the sigmoid "
                "itself; CrossEntropyLoss expects unbounded logits). Return raw logits.")
    lrs = [g.get("lr") for g in opt.param_groups]
    if any(isinstance(lr, (int, float)) and lr == 0 for lr in lrs):
        causes.append(f"a learning rate of zero in the optimizer's param groups (lr {lrs}).")
    frozen = [n for n, s in grad_state.items() if s == "requires_grad=False"]
    if frozen:
        causes.append(f"{plural(len(frozen), 'parameter')} frozen (requires_grad=False): "
                      f"{name_list(frozen)}.")
    dead = [f"{n} ({s})" for n, s in grad_state.items() if s != "requires_grad=False"]
    if dead:
        causes.append(f"parameters that do not train on the first step: {name_list(dead)}.")
    if not all(math.isfinite(v) for v in losses):
        causes.append("the loss became NaN/inf: the learning rate is too high, or the loss "
                      "takes log(0) (use log_softmax / BCEWithLogitsLoss).")
    elif len(losses) > 1 and losses[-1] > losses[0]:
        causes.append("the loss went up: the learning rate is too high for this model.")
    causes.append("labels misaligned with inputs (shuffled or offset separately, wrong "
                  "column, off-by-one in a dataset __getitem__): a model cannot fit a batch "
                  "whose targets do not follow from its inputs... though a big enough one "
                  "memorises even random labels, so check this after the above.")
    causes.append("too little capacity or too few steps for this batch: try a smaller batch "
                  "(4-16 examples) before suspecting anything else.")
    return causes

