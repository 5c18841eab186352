"""Console rendering with rich. Functions here format; they never touch tensors."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console

__all__ = ["format_values", "get_console", "print_line"]

_console: Console | None = None


def get_console() -> Console:
    """The shared rich console (created on first use)."""
    global _console
    if _console is None:
        _console = Console(highlight=False)
    return _console


def format_values(title: str, values: Mapping[str, float], precision: int = 2) -> str:
    """NectarGAN's one-line layout: ``"<title>: name: value name: value ..."``.

    Example:
        >>> format_values("Loss weights", {"G_GAN": 1.0, "G_L1": 100.0})
        'Loss weights: G_GAN: 1.00 G_L1: 100.00'
    """
    body = " ".join(f"{name}: {value:.{precision}f}" for name, value in values.items())
    return f"{title}: {body}" if body else f"{title}:"


def print_line(text: str) -> None:
    """Print ``text`` on the console without rich markup interpretation."""
    get_console().print(text, markup=False, highlight=False, soft_wrap=True)
