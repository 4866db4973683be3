"""ML code-smell rules (MLC3xx): silent training and evaluation bugs visible in the source.

One module per theme; each rule is an ``ast`` visitor run in the engine's single walk,
with imports and aliases resolved once per file by :mod:`mlcheck_lint.qualnames`:

* :mod:`.training` MLC301 (gradients never cleared), MLC305 (loss accumulated with its
  graph), MLC326 (eval mode never undone in a training loop), MLC328 (``zero_grad``
  between ``backward`` and ``step``), MLC329 (optimizer rebuilt in its loop), MLC315
  (evaluation without eval mode, preview);
* :mod:`.modules` MLC302 (``forward`` called directly), MLC303 (functional dropout always
  on), MLC309 (``require_grad`` typo), MLC310 (``Parameter(...).to()``), MLC311
  (submodules in a plain container), MLC330 (``.training`` assigned instead of
  ``.eval()``/``.train()``);
* :mod:`.numerics` MLC304 (comparison with NaN), MLC306 (activation fed to a loss that
  applies it), MLC307 (softmax without ``dim``), MLC317 (``log`` of softmax/sigmoid);
* :mod:`.checkpoints` MLC308 (unsafe ``torch.load``);
* :mod:`.estimators` MLC312 (preprocessing leakage); off: MLC319 (hyperparameters
  left to defaults), MLC322 (threshold-only validation), MLC323 (unscaled features);
* :mod:`.dataframes` MLC313 (chained assignment), MLC314 (discarded pandas result); off:
  MLC320 (merge parameters, read_csv dtypes), MLC321 (``.values``, ``np.dot``, ``iterrows``),
  MLC327 (placeholder column filled with 0 or ``""``);
* :mod:`.reproducibility` MLC316 (unseeded entry point, preview); off: MLC318
  (hard-coded CUDA), MLC325 (determinism never enabled);
* :mod:`.tensorflow` MLC324 (TensorFlow pitfalls, preview).
"""

from __future__ import annotations

from . import (checkpoints, dataframes, estimators, modules, numerics, reproducibility,  # noqa: F401  (register)
               tensorflow, training)
