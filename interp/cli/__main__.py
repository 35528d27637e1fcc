"""``python -m interp.cli SUBCOMMAND ...``: the same as ``python -m interp``."""

import sys

from interp.cli import main

if __name__ == "__main__":
    sys.exit(main())
