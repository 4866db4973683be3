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

The package is split by concern:

* :mod:`.common`: the seeded run, failure and bad-input records, argument checks;
* :mod:`.hidden`: trainable tensors that ``model.parameters()`` cannot see;
* :mod:`.copies`: the model copy and the optimizer rebuilt on it;
* :mod:`.step`: :func:`assert_trains`; :mod:`.loop`: :func:`assert_training_loop`;
  :mod:`.overfit`: :func:`assert_overfits`; :mod:`.evaluation`: :func:`assert_eval_clean`
  (its results compared through :mod:`pytest_mlcheck.compare`);
* :mod:`.fixture`: the ``train_invariants`` fixture class.
"""

from __future__ import annotations

from .common import CHECK_SEED, DEFAULT_SGD_LR, NEGLIGIBLE_GRAD
from .evaluation import EVAL_SEEDS, assert_eval_clean
from .fixture import TrainInvariants
from .loop import assert_training_loop
from .overfit import DEFAULT_ADAM_LR, assert_overfits
from .step import assert_trains

__all__ = ["CHECK_SEED", "DEFAULT_ADAM_LR", "DEFAULT_SGD_LR", "EVAL_SEEDS", "NEGLIGIBLE_GRAD",
           "TrainInvariants", "assert_eval_clean", "assert_overfits", "assert_trains",
           "assert_training_loop"]
