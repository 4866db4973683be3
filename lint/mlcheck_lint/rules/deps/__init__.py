"""Dependency rules (MLC2xx): pinning policy, lock sync, the torch family, imports.

Each module holds the rules of one theme; the manifests they read are parsed by
:mod:`mlcheck_lint.manifests`. Everything is static and offline: nothing the project
declares is imported, installed or resolved.

* :mod:`.syntax` MLC200 (a manifest that cannot be parsed);
* :mod:`.pinning` MLC201 (unpinned lock/requirements entries), MLC202 (pyproject policy),
  MLC208 (unpinned notebook installs);
* :mod:`.lock_sync` MLC203 (pip-tools lock vs its ``.in``), MLC209 (``pylock.toml`` /
  ``uv.lock`` vs ``pyproject.toml``);
* :mod:`.torch_family` MLC204 (torch / torchvision / torchaudio / CUDA builds);
* :mod:`.imports` MLC205 (undeclared imports), MLC206 (unused declarations);
* :mod:`.indexes` MLC207 (``--extra-index-url``).
"""

from __future__ import annotations

from ...api import Option

OPTIONS = (
    Option("dependency-policy", str, "auto", choices=("auto", "library", "application"),
           doc="How MLC202 judges pyproject.toml requirements: `library` wants lower bounds "
               "and no `==` pins; `application` wants exact pins or a lock file; `auto` "
               "is library when the project builds a distribution, else application."),
    Option("dependency-unused-allow", tuple, (),
           doc="Distributions MLC206 never reports as unused (plugins, CLIs, build tools "
               "it does not already know)."),
    Option("dependency-module-map", tuple, (),
           doc="Extra import-name to distribution pairs for MLC205/MLC206, as "
               "`module=distribution` (e.g. `mylib=my-lib-dist`)."),
)

from . import imports, indexes, lock_sync, pinning, syntax, torch_family  # noqa: E402,F401  (register the rules)
