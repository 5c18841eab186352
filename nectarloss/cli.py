"""The ``nectarloss`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nectarloss import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nectarloss`` command."""
    parser = argparse.ArgumentParser(
        prog="nectarloss",
        description="nectarloss: named, weighted, scheduled loss terms for PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"nectarloss {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nectarloss`` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
