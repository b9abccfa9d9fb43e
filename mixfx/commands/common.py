"""What the commands share: the one-line error, argparse number types, optional imports."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from types import ModuleType

__all__ = ["PROG", "CLIError", "number_in_range", "require"]

PROG = "mixfx"


class CLIError(Exception):
    """An error reported to the user as one line, without a traceback (exit code 1)."""


def number_in_range(
    kind: type[int] | type[float], low: float, high: float, what: str
) -> Callable[[str], float]:
    """An argparse ``type=`` that parses ``kind`` and checks ``low <= value <= high``.

    Args:
        kind: ``int`` or ``float``.
        low: the smallest accepted value.
        high: the largest accepted value.
        what: what the number is, for the messages (e.g. ``"duration in seconds"``).

    Returns:
        The parser; it raises ``argparse.ArgumentTypeError`` (NaN is out of every range).
    """

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'} ({what}), got {text!r}"
            ) from None
        if not low <= value <= high:  # also rejects NaN
            raise argparse.ArgumentTypeError(
                f"{what} must be in [{low:g}, {high:g}], got {text}"
            ) from None
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import an optional package, or raise :class:`CLIError` naming the extra that provides it.

    Args:
        module: the package to import (e.g. ``"soundfile"``).
        extra: the mixfx extra that installs it (e.g. ``"io"``).
        what: the command that needs it, for the message.

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CLIError(
            f"{what} needs the optional package '{module}', which is not installed: "
            f"pip install 'mixfx[{extra}]'"
        ) from None
