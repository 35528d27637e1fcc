"""``python -m interp SUBCOMMAND ...`` (and ``torchrun ... -m interp SUBCOMMAND ...``): the ``interp`` command."""

import sys

from interp.cli import main

if __name__ == "__main__":
    sys.exit(main())
