"""``python -m mlcheck_lint``: the same as the ``mlcheck-lint`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
