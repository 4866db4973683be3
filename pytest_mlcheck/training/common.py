"""What every training check shares: the seeded run, failing and bad-input records,
argument checks, the loss tensor, and how names and counts are written in messages."""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

from .. import validation
from ..report import emit
from ..seeding import seeded

#: Every check that trains runs under this seed (restoring the caller's RNG states
#: afterwards), so its verdict does not depend on test order.
CHECK_SEED = 0

#: Learning rate of the default plain SGD of ``check_step`` and ``check_training_loop``.
DEFAULT_SGD_LR = 0.1

#: A parameter whose largest gradient is below this fraction of the largest gradient
#: of any parameter has a gradient that is zero up to rounding (see ``check_step``).
NEGLIGIBLE_GRAD = 1e-6

#: The signature of ``loss_fn`` that messages name.
LOSS_FN = "(model, batch) -> scalar loss"

_MAX_LISTED = 100


@contextlib.contextmanager
def quiet_run(torch: Any, seed: int) -> Iterator[None]:
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


def fail(check: str, values: dict[str, Any], message: str) -> None:
    """Emit a ``FAILED`` train record for ``check`` with ``values``, then raise ``message``."""
    emit("train", check, "FAILED", values, message)
    raise AssertionError(message)


def bad_input(check: str, exc: Exception) -> Exception:
    """Emit an ``ERROR`` train record for bad input and return the exception to raise.

    Args:
        check: The check's name.
        exc: The ``TypeError`` or ``ValueError`` describing the input.

    Returns:
        ``exc``, for ``raise bad_input(check, exc)``.
    """
    emit("train", check, "ERROR", {"error": type(exc).__name__}, str(exc))
    return exc


def require_module(check: str, model: Any, torch: Any) -> list[tuple[str, Any]]:
    """Return the named parameters of ``model``, which must be an ``nn.Module`` with some.

    Args:
        check: The check's name, for messages.
        model: What the caller passed as the model.
        torch: The torch module.

    Returns:
        ``model.named_parameters()`` as a list.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: It has no parameters.
    """
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


def model_fn_count(check: str, model: Any, torch: Any, fn: tuple[str, Any, str],
                   count: tuple[str, Any]) -> tuple[list[tuple[str, Any]], int]:
    """Check the arguments every training check takes: a model, a function, a count.

    Args:
        check: The check's name, for messages.
        model: The model argument.
        torch: The torch module.
        fn: ``(argument name, the function, its signature in words)``.
        count: ``(argument name, the count)``; it must be a whole number of at least 1.

    Returns:
        The model's named parameters and the count.
    """
    named = require_module(check, model, torch)
    name, function, signature = fn
    validation.function(function, name, check=check, signature=signature)
    return named, validation.integer(count[1], count[0], low=1, check=check)


def loss_tensor(check: str, loss: Any, what: str, torch: Any) -> Any:
    """Return what ``loss_fn`` returned as a 0-d tensor, after checking it is a scalar loss.

    Args:
        check: The check's name, for messages.
        loss: What the loss function returned.
        what: How messages name the call (``loss_fn(model, batch)``).
        torch: The torch module.

    Returns:
        The loss reshaped to ``()``.

    Raises:
        TypeError: It is not a tensor, or not floating point.
        ValueError: It has more than one element.
    """
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


def name_list(items: Iterable[str]) -> str:
    """Return names joined by commas, the first hundred, then how many more.

    Args:
        items: The names.

    Returns:
        The text.
    """
    items = list(items)
    shown = ", ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f", ... and {len(items) - _MAX_LISTED} more"
    return shown


def plural(n: int, word: str) -> str:
    """Return ``1 step``, ``2 steps``, ``3 batches``.

    Args:
        n: The count.
        word: The singular noun.

    Returns:
        The count and the noun, plural when ``n`` is not 1.
    """
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}" + ("es" if word.endswith(("ch", "sh", "s", "x")) else "s")

