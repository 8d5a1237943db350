"""``python -m pyro_flowzoo``: the command line (see :mod:`pyro_flowzoo.cli`)."""

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
