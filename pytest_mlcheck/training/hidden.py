"""Trainable tensors and submodules hidden from ``model.parameters()`` (never optimized)."""

from __future__ import annotations

from typing import Any

from .common import plural


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


def hidden_trainables(model: Any, torch: Any) -> list[tuple[str, str, str]]:
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
                                    f"{plural(n, 'trainable parameter')}) kept in a plain "
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


def hidden_section(hidden: list[tuple[str, str, str]]) -> str:
    """Return the message section listing hidden trainables and how to fix each.

    Args:
        hidden: What :func:`hidden_trainables` found.

    Returns:
        The section, one line per tensor or submodule.
    """
    lines = [f"* not registered with the module, so model.parameters() and the optimizer "
             f"never see them ({len(hidden)}):"]
    for path, what, fix in hidden:
        lines.append(f"    {path}: {what}; fix: {fix}")
    return "\n".join(lines)
