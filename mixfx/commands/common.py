"""What the commands share: the one-line error, argparse number types, optional imports, the
device check, labelled model arguments and JSON of numpy values."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "PROG", "CLIError", "check_device", "json_default", "labelled", "number_in_range",
    "parse_labelled", "require",
]  # fmt: skip

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


def check_device(name: str) -> Any:
    """``torch.device(name)``, or :class:`CLIError` for an unknown device or absent CUDA."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise CLIError(f"unknown device {name!r} (try cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    return device


def parse_labelled(text: str, option: str = "--encoder") -> tuple[str, str]:
    """``"label=path"`` → ``(label, path)``; a bare path or name → ``(label, text)`` with the
    file's stem as label (its folder's name for a run's ``last.pt``), or the name itself."""
    label, sep, rest = text.partition("=")
    if sep and label and rest and "/" not in label and "\\" not in label:
        return label, rest
    if not text:
        raise CLIError(f"{option}: an empty name")
    path = Path(text)
    if not path.suffix:
        return path.name, text
    if path.stem == "last" and path.parent.name:
        return path.parent.name, text
    return path.stem, text


def labelled(texts: Iterable[str], option: str) -> list[tuple[str, str]]:
    """:func:`parse_labelled` of every ``option`` value; labels given twice are refused."""
    specs = [parse_labelled(t, option) for t in texts]
    labels = [label for label, _ in specs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise CLIError(f"{option}: label(s) {dupes} given twice; name them with LABEL=PATH")
    return specs


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-able: {type(obj).__name__}")
