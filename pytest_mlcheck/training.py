"""Training and evaluation sanity checks for torch models (the ``train_invariants`` fixture).

Four checks, each a plain function and a method of :class:`TrainInvariants`:

* :func:`assert_trains` (``check_step``): one or a few optimizer steps on one batch.
  Every trainable parameter gets a finite, non-zero gradient and changes; parameters
  declared frozen stay put; nothing trainable hides from ``model.parameters()``.
* :func:`assert_training_loop` (``check_training_loop``): the user's own training step,
  called once per batch, observed through autograd and optimizer hooks. Gradients must
  not leak from one optimizer step into the next (a missing ``zero_grad``), and every
  step must move the weights (a warm-up learning rate of zero).
* :func:`assert_overfits` (``check_overfit``): the model must overfit one tiny batch.
* :func:`assert_eval_clean` (``check_eval``): an evaluation routine must run every module
  in eval mode, change no parameter or buffer, and give the same result under two seeds.

The first three train a deep copy, so the caller's model and optimizer never change.
``check_eval`` observes the caller's own model (``eval_fn`` closes over it) and removes
its hooks afterwards. torch is imported only inside the functions.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import math
from typing import Any, Callable, Iterable, Iterator

from .arrays import require_torch, to_numpy
from . import validation
from .report import emit
from .seeding import seeded

#: Every check that trains runs under this seed (restoring the caller's RNG states
#: afterwards), so its verdict does not depend on test order.
CHECK_SEED = 0

#: The two seeds under which ``check_eval`` runs the evaluation.
EVAL_SEEDS = (1, 2)

#: Learning rate of the default plain SGD of ``check_step`` and ``check_training_loop``.
DEFAULT_SGD_LR = 0.1

#: Learning rate of the default Adam of ``check_overfit``.
DEFAULT_ADAM_LR = 1e-2

#: A parameter whose largest gradient is below this fraction of the largest gradient
#: of any parameter has a gradient that is zero up to rounding (see ``check_step``).
NEGLIGIBLE_GRAD = 1e-6

_MAX_LISTED = 100


# ---- the fixture --------------------------------------------------------------------


class TrainInvariants:
    """The ``train_invariants`` fixture: training and evaluation sanity checks (torch).

    Every method emits a ``train`` record to the session report and raises
    ``AssertionError`` with a teaching message when the check fails.

    Args:
        request: The pytest fixture request of the test using the fixture.
    """

    def __init__(self, request: Any) -> None:
        self.request = request

    def check_step(self, model: Any, loss_fn: Callable, batch: Any, *, optimizer: Any = None,
                   frozen: Iterable[str] | str = (), steps: int = 1) -> dict[str, Any]:
        """Check that optimizer steps on one batch train every trainable parameter.

        Args:
            model: The ``nn.Module`` (a deep copy is trained).
            loss_fn: ``loss_fn(model, batch)`` returning a scalar loss tensor.
            batch: Whatever ``loss_fn`` takes.
            optimizer: A factory ``params -> optimizer`` or an optimizer instance to
                rebuild on the copy; default plain SGD.
            frozen: Names or glob patterns of parameters meant to stay frozen.
            steps: How many optimizer steps to take.

        Returns:
            The record's values (counts of trainable, frozen and updated parameters).
        """
        return assert_trains(model, loss_fn, batch, optimizer=optimizer, frozen=frozen,
                             steps=steps)

    def check_training_loop(self, step_fn: Callable, model: Any, optimizer: Any,
                            batches: Iterable[Any], *, accumulate: int = 1) -> dict[str, Any]:
        """Check a training step function for leaking gradients and steps that do nothing.

        Args:
            step_fn: ``step_fn(model, optimizer, batch) -> loss``, the user's training step.
            model: The ``nn.Module`` (a deep copy is trained).
            optimizer: A factory ``params -> optimizer`` or an optimizer instance to
                rebuild on the copy.
            batches: The batches, fed to ``step_fn`` once each, in order.
            accumulate: How many micro-batches each optimizer step declares to accumulate.

        Returns:
            The record's values (steps, batches, losses).
        """
        return assert_training_loop(step_fn, model, optimizer, batches, accumulate=accumulate)

    def check_overfit(self, model: Any, loss_fn: Callable, batch: Any, *, steps: int = 200,
                      target_loss: float | None = None, reduction: float = 0.1,
                      optimizer: Any = None) -> dict[str, Any]:
        """Check that the model can overfit one tiny batch.

        Args:
            model: The ``nn.Module`` (a deep copy is trained).
            loss_fn: ``loss_fn(model, batch)`` returning a scalar loss tensor.
            batch: One small batch.
            steps: The most optimizer steps to take.
            target_loss: The loss to reach; default ``reduction`` times the first loss.
            reduction: The factor by which the loss must fall when no target is given.
            optimizer: A factory ``params -> optimizer`` or an instance; default Adam.

        Returns:
            The record's values (first, min and last loss, steps taken).
        """
        return assert_overfits(model, loss_fn, batch, steps=steps, target_loss=target_loss,
                               reduction=reduction, optimizer=optimizer)

    def check_eval(self, model: Any, eval_fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Check that an evaluation routine is in eval mode, pure and deterministic.

        Args:
            model: The ``nn.Module`` that ``eval_fn`` uses (observed, not copied).
            eval_fn: The evaluation or inference routine.
            *args: Positional arguments for ``eval_fn``.
            **kwargs: Keyword arguments for ``eval_fn``.

        Returns:
            What ``eval_fn`` returned on its first run.
        """
        return assert_eval_clean(model, eval_fn, *args, **kwargs)


# ---- shared helpers -----------------------------------------------------------------


@contextlib.contextmanager
def _quiet_run(torch: Any, seed: int) -> Iterator[None]:
    """Run under ``seed`` on one CPU thread, restoring RNG states and thread count after.

    The checks run tiny models, for which intra-op threads cost more than they give,
    and under pytest-xdist or a busy CI box they oversubscribe the cores: one thread
    measured 100x faster than two on a loaded 2-core machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with seeded(seed):
            yield
    finally:
        torch.set_num_threads(threads)


def _fail(check: str, values: dict[str, Any], message: str) -> None:
    emit("train", check, "FAILED", values, message)
    raise AssertionError(message)


def _bad_input(check: str, exc: Exception) -> Exception:
    emit("train", check, "ERROR", {"error": type(exc).__name__}, str(exc))
    return exc


def _require_module(check: str, model: Any, torch: Any) -> list[tuple[str, Any]]:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{check}: model must be a torch nn.Module, got {type(model).__name__}")
    named = list(model.named_parameters())
    if not named:
        raise ValueError(
            f"{check}: model {type(model).__name__} has no parameters, so there is nothing "
            "to train. If its layers live in a plain Python list or dict, wrap them in "
            "nn.ModuleList / nn.ModuleDict so they are registered."
        )
    return named


def _require_callable(check: str, what: str, fn: Any, signature: str) -> None:
    validation.function(fn, what, check=check, signature=signature)


def _require_positive_int(check: str, what: str, value: Any) -> int:
    return validation.integer(value, what, low=1, check=check)


_LOSS_FN = "(model, batch) -> scalar loss"


def _model_fn_count(check: str, model: Any, torch: Any, fn: tuple[str, Any, str],
                    count: tuple[str, Any]) -> tuple[list[tuple[str, Any]], int]:
    """Check the arguments every training check takes: a model, a function, a count."""
    named = _require_module(check, model, torch)
    _require_callable(check, *fn)
    return named, _require_positive_int(check, *count)


def _loss_tensor(check: str, loss: Any, what: str, torch: Any) -> Any:
    if not isinstance(loss, torch.Tensor):
        hint = (" (a Python number usually means .item() was called inside it: return the "
                "tensor instead)" if isinstance(loss, (int, float)) else "")
        raise TypeError(f"{check}: {what} must return the loss as a torch tensor, "
                        f"got {type(loss).__name__}{hint}")
    if loss.numel() != 1:
        raise ValueError(
            f"{check}: {what} must return a scalar loss, got a tensor of shape "
            f"{tuple(loss.shape)}. Reduce it (loss.mean() or loss.sum(), or reduction='mean' "
            "on the criterion): backward() on a non-scalar needs an explicit gradient."
        )
    if not (loss.dtype.is_floating_point or loss.dtype.is_complex):
        raise TypeError(f"{check}: {what} returned a {loss.dtype} tensor; a loss must be "
                        "floating point")
    return loss.reshape(())


def _copy_model(check: str, model: Any, torch: Any) -> Any:
    try:
        return copy.deepcopy(model)
    except Exception as exc:
        hidden = _hidden_trainables(model, torch)
        if hidden:
            message = (f"{check}: {type(model).__name__} could not be deep-copied to train "
                       f"safely ({exc}), because it holds trainable tensors that are not "
                       "registered parameters:\n" + _hidden_section(hidden))
            _fail(check, {"model": type(model).__name__,
                          "unregistered": [h[0] for h in hidden]}, message)
        raise _bad_input(check, TypeError(
            f"{check}: could not deep-copy the model ({type(model).__name__}): {exc}. The "
            "check trains a copy so that your model is never changed; make the model "
            "deep-copyable (e.g. replace torch.nn.utils.weight_norm with "
            "torch.nn.utils.parametrizations.weight_norm)."
        )) from exc


def _map_params(original: Any, clone: Any) -> dict[int, Any]:
    """Map ``id`` of each original parameter to the matching parameter of the copy."""
    mapping = {}
    for (name_a, a), (name_b, b) in zip(original.named_parameters(remove_duplicate=False),
                                        clone.named_parameters(remove_duplicate=False)):
        if name_a != name_b:  # pragma: no cover - deepcopy keeps the structure
            raise RuntimeError(f"parameter order changed in the copy: {name_a} vs {name_b}")
        mapping[id(a)] = b
    return mapping


def _build_optimizer(check: str, spec: Any, original: Any, clone: Any, default: Callable,
                     torch: Any) -> Any:
    """Return an optimizer over the copy's parameters.

    ``spec`` is ``None`` (use ``default``), a factory ``params -> optimizer``, or an
    optimizer instance over the original model, rebuilt as the same class with the
    same param groups and a deep copy of its state (momentum buffers, step counts).
    """
    params = list(clone.parameters())
    if spec is None:
        return default(params)
    optim_cls = torch.optim.Optimizer
    if isinstance(spec, optim_cls):
        mapping = _map_params(original, clone)
        groups = []
        for gi, group in enumerate(spec.param_groups):
            new_group = {k: v for k, v in group.items() if k != "params"}
            new_params = []
            for pi, p in enumerate(group["params"]):
                if id(p) not in mapping:
                    raise ValueError(
                        f"{check}: optimizer param group {gi}, parameter {pi} (shape "
                        f"{tuple(p.shape)}) is not a parameter of the model, so the "
                        "optimizer cannot be rebuilt on a copy; pass a factory "
                        "`lambda params: torch.optim.SGD(params, lr=...)` instead"
                    )
                new_params.append(mapping[id(p)])
            new_group["params"] = new_params
            groups.append(new_group)
        try:
            rebuilt = type(spec)(groups, **spec.defaults)
            rebuilt.load_state_dict(copy.deepcopy(spec.state_dict()))
        except Exception as exc:
            raise TypeError(
                f"{check}: could not rebuild {type(spec).__name__} on a copy of the model "
                f"({exc}); pass a factory `lambda params: {type(spec).__name__}(params, ...)`"
            ) from exc
        return rebuilt
    if not callable(spec):
        raise TypeError(f"{check}: optimizer must be a factory `params -> optimizer` or a "
                        f"torch optimizer, got {type(spec).__name__}")
    built = spec(params)
    if not isinstance(built, optim_cls):
        raise TypeError(f"{check}: the optimizer factory must return a "
                        f"torch.optim.Optimizer, got {type(built).__name__}")
    return built


def _names(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f", ... and {len(items) - _MAX_LISTED} more"
    return shown


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}" + ("es" if word.endswith(("ch", "sh", "s", "x")) else "s")


# ---- trainable tensors hidden from model.parameters() ---------------------------------


def _graph_leaves(tensor: Any, limit: int = 10000) -> list[Any]:
    """Return the leaf tensors that ``tensor``'s autograd graph accumulates into."""
    leaves, seen, stack = [], set(), [tensor.grad_fn]
    while stack and len(seen) < limit:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        variable = getattr(fn, "variable", None)
        if variable is not None:
            leaves.append(variable)
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return leaves


def _hidden_trainables(model: Any, torch: Any) -> list[tuple[str, str, str]]:
    """Find trainable tensors and submodules that ``model.parameters()`` cannot see.

    Returns ``(path, what it is, how to fix it)`` for: tensors requiring grad kept as
    plain attributes (``nn.Parameter(...).to(...)`` makes a non-leaf copy; the module
    keeps that copy as a plain tensor), and parameters or submodules with trainable
    parameters kept in plain lists, tuples or dicts. Tensors derived only from the
    model's own parameters (cached activations, old-style weight_norm) are fine, and
    so are hidden modules whose parameters are all frozen (a frozen teacher model).
    """
    internal = set(vars(torch.nn.Module()))
    registered = {id(p) for p in model.parameters()}
    found: list[tuple[str, str, str]] = []

    def visit(path: str, value: Any, container: str, depth: int) -> None:
        if isinstance(value, torch.Tensor):
            if not value.requires_grad:
                return
            if value.grad_fn is None:
                if id(value) in registered:
                    return
                if container:
                    noun = ("parameter" if isinstance(value, torch.nn.Parameter)
                            else "tensor requiring grad")
                    what = f"a {noun} kept in a plain {container}"
                    fix = "hold it in nn.ParameterList / nn.ParameterDict"
                else:
                    what = "a tensor requiring grad that is not an nn.Parameter"
                    fix = "wrap it: self.x = nn.Parameter(tensor)"
                found.append((path, what, fix))
                return
            stray = [leaf for leaf in _graph_leaves(value) if id(leaf) not in registered]
            if stray:
                what = (f"a non-leaf tensor requiring grad (made by {type(value.grad_fn).__name__}"
                        f"{' in a plain ' + container if container else ''}); its leaf of shape "
                        f"{tuple(stray[0].shape)} is not a registered parameter, so no "
                        "optimizer ever updates it")
                fix = ("create the tensor with its final dtype/device before wrapping it: "
                       "nn.Parameter(torch.randn(..., dtype=torch.float64)), not "
                       "nn.Parameter(torch.randn(...)).to(torch.float64) / .cuda() / .double()")
                found.append((path, what, fix))
            return
        if isinstance(value, torch.nn.Module):
            if container and any(p.requires_grad for p in value.parameters()):
                n = sum(1 for p in value.parameters() if p.requires_grad)
                kind = "nn.ModuleDict" if container == "dict" else "nn.ModuleList"
                found.append((path, f"a submodule ({type(value).__name__}, "
                                    f"{_plural(n, 'trainable parameter')}) kept in a plain "
                                    f"{container}", f"hold it in {kind}"))
            return
        if depth >= 3:
            return
        if isinstance(value, dict):
            for key, item in list(value.items()):
                visit(f"{path}[{key!r}]", item, "dict", depth + 1)
        elif isinstance(value, (list, tuple)):
            kind = "list" if isinstance(value, list) else "tuple"
            for i, item in enumerate(value):
                visit(f"{path}[{i}]", item, kind, depth + 1)

    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for attr, value in list(vars(module).items()):
            if attr in internal:
                continue
            visit(prefix + attr, value, "", 0)
    return found


def _hidden_section(hidden: list[tuple[str, str, str]]) -> str:
    lines = [f"* not registered with the module, so model.parameters() and the optimizer "
             f"never see them ({len(hidden)}):"]
    for path, what, fix in hidden:
        lines.append(f"    {path}: {what}; fix: {fix}")
    return "\n".join(lines)


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


# ---- check_step ----------------------------------------------------------------------


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
        named, steps = _model_fn_count(check, model, torch, ("loss_fn", loss_fn, _LOSS_FN),
                                       ("steps", steps))
        patterns = _frozen_patterns(check, frozen)
        hidden_all = _hidden_trainables(model, torch)
        hidden = [h for h in hidden_all if not _matches(h[0], patterns)]
        names = [n for n, _ in named] + [h[0] for h in hidden_all]
        unused = [pat for pat in patterns
                  if not any(_matches(n, [pat]) for n in names)]
        if unused:
            raise ValueError(
                f"{check}: frozen pattern(s) {unused} match no parameter of "
                f"{type(model).__name__}; its parameters are: {_names(names)}"
            )
    except (TypeError, ValueError) as exc:
        raise _bad_input(check, exc)

    model_name = type(model).__name__
    try:
        clone = copy.deepcopy(model)
    except Exception as exc:
        if not hidden:
            raise _bad_input(check, TypeError(
                f"{check}: could not deep-copy the model ({model_name}): {exc}. The check "
                "trains a copy so that your model is never changed; make it deep-copyable."
            )) from exc
        message = (f"{check}: {model_name} holds trainable tensors that are not registered "
                   f"parameters (and so cannot even be deep-copied: {exc}):\n"
                   + _hidden_section(hidden))
        _fail(check, {"model": model_name, "unregistered": [h[0] for h in hidden]}, message)

    with _quiet_run(torch, CHECK_SEED):
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
        opt = _build_optimizer(check, optimizer, model, clone,
                               lambda ps: torch.optim.SGD(ps, lr=DEFAULT_SGD_LR), torch)
    except (TypeError, ValueError) as exc:
        raise _bad_input(check, exc)
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
            loss = _loss_tensor(check, loss_fn(clone, batch), "loss_fn(model, batch)", torch)
        except (TypeError, ValueError) as exc:
            raise _bad_input(check, exc)
        value = float(loss.detach().real.float())
        losses.append(value)
        if not math.isfinite(value):
            _fail(check, {"model": model_name, "step": step, "loss": value},
                  f"{check}: the loss of {model_name} is {value} at step {step} (before "
                  f"{'any update' if step == 0 else 'update ' + str(step)}).\n"
                  "Likely causes: log(0) or division by zero in loss_fn (use log_softmax / "
                  "BCEWithLogitsLoss instead of log(softmax) / log(sigmoid)), NaN or inf in "
                  "the batch, a learning rate so high the weights diverged.\n"
                  "Next: run loss_fn on the batch by hand and print intermediate values, or "
                  "run under torch.autograd.detect_anomaly().")
        if not loss.requires_grad:
            _fail(check, {"model": model_name, "step": step},
                  f"{check}: the loss returned by loss_fn does not require grad, so backward "
                  f"cannot reach any parameter of {model_name}.\n"
                  "Likely causes: the loss is computed under torch.no_grad() / "
                  "inference_mode(), from .detach()ed or .item()/.numpy() values, or every "
                  "parameter has requires_grad=False.\n"
                  f"Parameters with requires_grad=False: {_names(accidental) or 'none'}.")
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
        problems.append(("hidden", [h[0] for h in hidden], _hidden_section(hidden)))
    if accidental:
        problems.append(("frozen_by_accident", accidental,
            f"* requires_grad=False but not listed in frozen ({len(accidental)}): "
            f"{_names(accidental)}\n"
            "    Likely causes: a freezing loop that caught more than intended (e.g. `for p "
            "in model.parameters(): p.requires_grad = False` before unfreezing a head), a "
            "pretrained part loaded frozen and never unfrozen.\n"
            "    Next: unfreeze them, or declare the intent with frozen=[...] (globs such as "
            "'backbone.*')."))
    if no_grad:
        problems.append(("no_grad", no_grad,
            f"* trainable but got no gradient ({len(no_grad)}): {_names(no_grad)}\n"
            "    Likely causes: the parameter is not used in the forward pass (a layer "
            "created but never called, a branch not taken), or the graph is cut before it "
            "(.detach(), .data, .item(), torch.no_grad, a numpy round trip)."))
    if bad_grad:
        problems.append(("nonfinite_grad", list(nonfinite_grad),
            f"* non-finite gradient ({len(bad_grad)}): {_names(bad_grad)}\n"
            "    Likely causes: sqrt/log/division at 0 in the forward pass, overflow in "
            "float16, an exploding activation."))
    if zero_grad:
        problems.append(("zero_grad", zero_grad,
            f"* gradient is all zeros ({len(zero_grad)}): {_names(zero_grad)}\n"
            "    Likely causes: dead ReLUs, a saturated sigmoid/tanh, a zero-initialised layer "
            "feeding another zero-initialised layer, an argmax / rounding / comparison in "
            "the path, or a loss that does not depend on this output."))
    if unchanged:
        problems.append(("unchanged", unchanged,
            f"* trainable, has a gradient, but unchanged after {_plural(steps, 'step')} "
            f"({len(unchanged)}): {_names(unchanged)}\n"
            "    Likely causes: the optimizer does not hold these parameters (built from a "
            "subset or before the layer was added), a learning rate of zero, a gradient too "
            "small to move the weights at this learning rate."))
    if frozen_grad:
        problems.append(("frozen_got_grad", frozen_grad,
            f"* listed in frozen but got a gradient ({len(frozen_grad)}): "
            f"{_names(frozen_grad)}\n"
            "    Likely causes: requires_grad was never set to False for them (freezing by "
            "leaving them out of the optimizer still computes their gradients, and weight "
            "decay or momentum may still move them).\n"
            "    Next: param.requires_grad_(False) for each, or run that part under "
            "torch.no_grad()."))
    if frozen_changed:
        problems.append(("frozen_changed", frozen_changed,
            f"* listed in frozen but changed ({len(frozen_changed)}): "
            f"{_names(frozen_changed)}\n"
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
        message = (f"{check}: {_plural(len(problems), 'problem')} training {model_name} "
                   f"({_plural(len(params), 'parameter')}, {_plural(steps, 'step')} of "
                   f"{type(opt).__name__}; loss {losses[0]:.6g} -> {losses[-1]:.6g}):\n"
                   + "\n".join(text for _, _, text in problems))
        if negligible:
            message += (f"\nNote (not a failure): gradient zero up to rounding, so unchanged: "
                        f"{_names(negligible)}; typical of a bias right before BatchNorm, which "
                        "cancels it (build that layer with bias=False).")
        _fail(check, values, message)
    emit("train", check, "ok", values)
    return values


# ---- check_training_loop -------------------------------------------------------------


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
        _, accumulate = _model_fn_count(check, model, torch,
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
        raise _bad_input(check, exc)
    clone = _copy_model(check, model, torch)
    for p in clone.parameters():
        p.grad = None
    try:
        opt = _build_optimizer(check, optimizer, model, clone, None, torch)
    except (TypeError, ValueError) as exc:
        raise _bad_input(check, exc)
    with _quiet_run(torch, CHECK_SEED):
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
    lines = [f"{key}: {_names(dict.fromkeys(v))}" for key, v in list(by_step.items())[:5]]
    if len(by_step) > 5:
        lines.append(f"... and {len(by_step) - 5} more like these")
    return lines


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
            f"* optimizer.step() was never called over {_plural(n, 'batch')}.\n"
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
                f"{_plural(accumulate, 'batch')} (after batches {expected[:10]}"
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
        problems.append(("leak",
            f"* gradients leak across optimizer steps ({_plural(len(leaked), 'parameter')}): "
            "each step applies the gradient of its own batch PLUS the gradients of earlier "
            "batches, because p.grad was not zeroed after the previous step:\n"
            + "\n".join("    " + line for line in lines) + "\n"
            "    Likely causes: optimizer.zero_grad() missing, called on a different "
            "optimizer or model, or placed after backward() instead of before it.\n"
            "    Next: call optimizer.zero_grad(set_to_none=True) once per step, before the "
            "first backward of the step; if the accumulation is intended, pass "
            "accumulate=<micro-batches per step>."))
    if observer.reset_inside:
        lines = _group_by_step(observer.reset_inside, lambda e: f"batch {e[0]}",
                               lambda e: e[1])
        problems.append(("reset_inside_window",
            f"* with accumulate={accumulate}, gradients of earlier micro-batches were "
            "discarded before the optimizer step (p.grad was reset inside the "
            "accumulation window):\n" + "\n".join("    " + line for line in lines) + "\n"
            "    Likely causes: zero_grad() called every micro-batch instead of once per "
            "step, or accumulate larger than the loop's real accumulation."))
    if observer.zeroed_before_step:
        lines = _group_by_step(observer.zeroed_before_step,
                               lambda e: f"step {e[0]} (batch {e[1]})", lambda e: e[2])
        problems.append(("zeroed_before_step",
            "* gradients were computed but zeroed before optimizer.step(), so the step "
            "ignores this batch:\n" + "\n".join("    " + line for line in lines) + "\n"
            "    Likely causes: optimizer.zero_grad() placed between loss.backward() and "
            "optimizer.step()."))
    if observer.unchanged:
        lines = []
        by_step: dict[int, list[tuple]] = {}
        for e in observer.unchanged:
            by_step.setdefault(e[0], []).append(e)
        for step, events in by_step.items():
            lrs = observer.lrs[step] if step < len(observer.lrs) else []
            lines.append(f"step {step} (batch {events[0][1]}, lr {lrs}): "
                         + _names(f"{e[2]} (max |grad| {e[3]:.3g})" for e in events))
        problems.append(("unchanged",
            "* optimizer.step() left parameters with a non-zero gradient unchanged:\n"
            + "\n".join("    " + line for line in lines) + "\n"
            "    Likely causes: a learning rate of zero at that step (a warm-up schedule "
            "starting from 0: LambdaLR(lambda s: s / warmup) gives lr 0 at step 0; use "
            "(s + 1) / warmup), parameters missing from the optimizer's param groups, a "
            "gradient too small for the learning rate."))
    if observer.nonfinite_applied:
        lines = _group_by_step(observer.nonfinite_applied,
                               lambda e: f"step {e[0]} (batch {e[1]})", lambda e: e[2])
        problems.append(("nonfinite_grad",
            "* optimizer.step() applied a NaN/inf gradient:\n"
            + "\n".join("    " + line for line in lines) + "\n"
            "    Likely causes: float16 overflow without a GradScaler (or stepping the "
            "optimizer directly instead of scaler.step), log/sqrt/division at 0, a learning "
            "rate so high the weights diverged."))
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
        message = (f"{check}: {_plural(len(problems), 'problem')} in the training loop of "
                   f"{model_name} ({_plural(n, 'batch')}, {_plural(len(steps), 'optimizer step')}"
                   f" of {type(opt).__name__}, accumulate={accumulate}):\n"
                   + "\n".join(text for _, text in problems))
        _fail(check, values, message)
    emit("train", check, "ok", values)
    return values


# ---- check_overfit -------------------------------------------------------------------


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
        _, steps = _model_fn_count(check, model, torch, ("loss_fn", loss_fn, _LOSS_FN),
                                   ("steps", steps))
        if target_loss is None:
            validation.number(reduction, "reduction", low=0, high=1, low_open=True,
                              high_open=True, check=check)
        else:
            validation.number(target_loss, "target_loss", check=check)
    except (TypeError, ValueError) as exc:
        raise _bad_input(check, exc)
    clone = _copy_model(check, model, torch)
    clone.train()
    for p in clone.parameters():
        p.grad = None
    try:
        opt = _build_optimizer(check, optimizer, model, clone,
                               lambda ps: torch.optim.Adam(ps, lr=DEFAULT_ADAM_LR), torch)
    except (TypeError, ValueError) as exc:
        raise _bad_input(check, exc)
    with _quiet_run(torch, CHECK_SEED):
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
                loss = _loss_tensor(check, loss_fn(clone, batch), "loss_fn(model, batch)",
                                    torch)
            except (TypeError, ValueError) as exc:
                raise _bad_input(check, exc)
            value = float(loss.detach().real.float())
            losses.append(value)
            if step == 0 and target is None:
                if not (math.isfinite(value) and value > 0):
                    raise _bad_input(check, ValueError(
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
        f"{check}: {model_name} did not overfit one batch in {_plural(taken, 'step')} "
        f"of {type(opt).__name__} (needed a loss <= {target:.6g}: {how}).\n"
        f"loss: first {losses[0]:.6g}, min {values['loss_min']:.6g}, last {losses[-1]:.6g}\n"
        "Likely causes, most specific first:\n" + "\n".join(f"* {c}" for c in causes) + "\n"
        "Next: fix the first cause that applies; a healthy model memorises a tiny batch. "
        "If it truly needs longer, raise steps= or pass a stronger optimizer factory."
    )
    _fail(check, values, message)


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
        causes.append(f"{_plural(len(frozen), 'parameter')} frozen (requires_grad=False): "
                      f"{_names(frozen)}.")
    dead = [f"{n} ({s})" for n, s in grad_state.items() if s != "requires_grad=False"]
    if dead:
        causes.append(f"parameters that do not train on the first step: {_names(dead)}.")
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


# ---- check_eval ----------------------------------------------------------------------


def _first_difference(a: Any, b: Any, path: str, torch: Any) -> str | None:
    """Return where two evaluation results differ, or None when they are equal."""
    import numpy as np

    def is_arraylike(x: Any) -> bool:
        return isinstance(x, (np.ndarray, torch.Tensor))

    if is_arraylike(a) or is_arraylike(b):
        if not (is_arraylike(a) and is_arraylike(b)):
            return f"{path}: {type(a).__name__} vs {type(b).__name__}"
        x, y = to_numpy(a), to_numpy(b)
        if x.shape != y.shape:
            return f"{path}: shape {x.shape} vs {y.shape}"
        if x.dtype.kind in "fc" or y.dtype.kind in "fc":
            equal = np.array_equal(x, y, equal_nan=True)
        else:
            equal = np.array_equal(x, y)
        if equal:
            return None
        if x.dtype.kind in "biufc" and y.dtype.kind in "biufc":
            diff = np.abs(x.astype(np.complex128 if x.dtype.kind == "c" else np.float64)
                          - y.astype(np.complex128 if y.dtype.kind == "c" else np.float64))
            diff = np.nan_to_num(diff, nan=np.inf)
            return (f"{path}: {int((diff != 0).sum())} of {diff.size} elements differ, "
                    f"max abs difference {float(diff.max()):.6g}")
        return f"{path}: arrays differ"
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} vs {list(b)}"
        for key in a:
            found = _first_difference(a[key], b[key], f"{path}[{key!r}]", torch)
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]", torch)
            if found:
                return found
        return None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    try:
        equal = bool(a == b)
    except Exception:
        return f"{path}: {type(a).__name__} values cannot be compared with =="
    return None if equal else f"{path}: {a!r} vs {b!r}"


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
    * the results of the two runs differ: the evaluation consumes randomness (dropout
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
        TypeError: ``model`` is not an ``nn.Module`` or ``eval_fn`` is not callable.
        ValueError: ``eval_fn`` returned None, or never ran the model's forward.
    """
    check = "check_eval"
    torch = require_torch(check)
    try:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"{check}: model must be a torch nn.Module, got "
                            f"{type(model).__name__}")
        _require_callable(check, "eval_fn", eval_fn, "(*args, **kwargs) -> result")
    except (TypeError, ValueError) as exc:
        raise _bad_input(check, exc)
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
        with _quiet_run(torch, EVAL_SEEDS[0]):
            first = eval_fn(*args, **kwargs)
        in_training = [name for name, training in ran.items() if training]
        current = tensors()
        changed = []
        for key, old in before.items():
            new = current.get(key)
            if new is None or new.shape != old.shape:
                changed.append(f"{key} (replaced)")
            elif not torch.equal(new.detach(), old):
                if old.is_floating_point() or old.is_complex():
                    delta = float((new.detach() - old).abs().max())
                    changed.append(f"{key} (max change {delta:.3g})")
                else:
                    changed.append(f"{key} ({old.tolist() if old.numel() == 1 else 'changed'}"
                                   f" -> {new.tolist() if new.numel() == 1 else '...'})")
        ran_first = dict(ran)
        # Restore so that the second run starts where the first did (see docstring).
        with torch.no_grad():
            for key, tensor in current.items():
                if key in before and tensor.shape == before[key].shape:
                    tensor.copy_(before[key])
        for name, m in modules.items():
            m.training = modes[name]
        with _quiet_run(torch, EVAL_SEEDS[1]):
            second = eval_fn(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()

    if not ran_first:
        raise _bad_input(check, ValueError(
            f"{check}: eval_fn never ran the forward pass of {model_name} (or of any of its "
            "submodules), so nothing was checked; pass the model that eval_fn uses"))
    if first is None:
        raise _bad_input(check, ValueError(
            f"{check}: eval_fn returned None; return the predictions or metrics so that "
            "check_eval can compare the results of two seeds"))
    difference = _first_difference(first, second, "result", torch)

    problems: list[str] = []
    if in_training:
        dropout_like = (torch.nn.modules.dropout._DropoutNd,
                        torch.nn.modules.batchnorm._NormBase)
        sensitive = [n for n in in_training if isinstance(modules[n], dropout_like)]
        others = [n for n in in_training if n not in sensitive]
        label = lambda n: f"{n or '<root>'} ({type(modules[n]).__name__})"  # noqa: E731
        text = (f"* {_plural(len(in_training), 'module')} ran forward in training mode "
                f"during eval_fn")
        if sensitive:
            text += (f"; these change their output in training mode: "
                     f"{_names(label(n) for n in sensitive)}")
        if others:
            text += f"; also: {_names(label(n) for n in others)}"
        text += ("\n    Likely causes: eval_fn does not call model.eval() (and the model was "
                 "left in training mode), or a submodule is switched back with .train() "
                 "inside forward.\n    Next: call model.eval() at the start of the "
                 "evaluation (and model.train() after it, in the training loop).")
        problems.append(text)
    if changed:
        problems.append(
            f"* {len(changed)} parameter(s)/buffer(s) changed during eval_fn: "
            f"{_names(changed)}\n"
            "    Likely causes: BatchNorm running statistics updated by the evaluation data "
            "because the model was in training mode (the test set leaks into the model), an "
            "optimizer step or in-place write during evaluation.")
    if difference:
        problems.append(
            f"* the result differs between seeds {EVAL_SEEDS[0]} and {EVAL_SEEDS[1]} (both "
            f"runs started from the same model state): {difference}\n"
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
    if problems:
        message = (f"{check}: {_plural(len(problems), 'problem')} evaluating {model_name}:\n"
                   + "\n".join(problems))
        _fail(check, values, message)
    emit("train", check, "ok", values)
    return first
