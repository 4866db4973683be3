"""ML code-smell rules (MLC3xx): silent training and evaluation bugs visible in the source.

One module per theme; each rule is an ``ast`` visitor run in the engine's single walk,
with imports and aliases resolved once per file by :mod:`mlcheck_lint.qualnames`:

* :mod:`.training` MLC301 (gradients never cleared), MLC305 (loss accumulated with its
  graph);
* :mod:`.modules` MLC302 (``forward`` called directly), MLC303 (functional dropout always
  on), MLC309 (``require_grad`` typo), MLC310 (``Parameter(...).to()``), MLC311
  (submodules in a plain container);
* :mod:`.numerics` MLC304 (comparison with NaN), MLC306 (activation fed to a loss that
  applies it), MLC307 (softmax without ``dim``), MLC317 (``log`` of softmax/sigmoid);
* :mod:`.checkpoints` MLC308 (unsafe ``torch.load``);
* :mod:`.estimators` MLC312 (preprocessing leakage);
* :mod:`.dataframes` MLC313 (chained assignment), MLC314 (discarded pandas result).
"""

from __future__ import annotations

from . import checkpoints, dataframes, estimators, modules, numerics, training  # noqa: F401  (register the rules)
