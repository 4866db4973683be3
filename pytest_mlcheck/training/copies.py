"""The model copy a training check trains, and the optimizer rebuilt on that copy.

The caller's model and optimizer are never changed: a check deep-copies the model and
builds (or rebuilds, with a deep copy of its state) the optimizer over the copy.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from .common import bad_input, fail
from .hidden import hidden_section, hidden_trainables


def copy_model(check: str, model: Any, torch: Any) -> Any:
    """Return a deep copy of ``model`` to train; a model that cannot be copied is explained.

    Args:
        check: The check's name, for the record and messages.
        model: The caller's ``nn.Module``.
        torch: The torch module.

    Returns:
        The copy.

    Raises:
        AssertionError: The copy fails because the model holds trainable tensors that
            are not registered parameters (the check's own finding).
        TypeError: The model cannot be deep-copied for another reason.
    """
    try:
        return copy.deepcopy(model)
    except Exception as exc:
        hidden = hidden_trainables(model, torch)
        if hidden:
            message = (f"{check}: {type(model).__name__} could not be deep-copied to train "
                       f"safely ({exc}), because it holds trainable tensors that are not "
                       "registered parameters:\n" + hidden_section(hidden))
            fail(check, {"model": type(model).__name__,
                         "unregistered": [h[0] for h in hidden]}, message)
        raise bad_input(check, TypeError(
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


def build_optimizer(check: str, spec: Any, original: Any, clone: Any, default: Callable,
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

