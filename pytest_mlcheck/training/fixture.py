"""The ``train_invariants`` fixture class: the training checks, recorded for one test."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .evaluation import assert_eval_clean
from .loop import assert_training_loop
from .overfit import assert_overfits
from .step import assert_trains


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
