"""``python -m nectarloss``: the ``nectarloss`` console script without the script."""

import sys

from nectarloss.cli import main

if __name__ == "__main__":
    sys.exit(main())
