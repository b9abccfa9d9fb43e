"""``mixfx version``: the versions of mixfx, torch and Python (also ``mixfx --version``)."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform

from mixfx.commands.common import PROG

__all__ = ["DESCRIPTION", "HELP", "NAME", "configure", "run", "version_line"]

NAME = "version"
HELP = "print the versions of mixfx, torch and Python"
DESCRIPTION = "Print the installed versions of mixfx, torch and Python."


def version_line() -> str:
    """``mixfx X (torch Y, python Z)``, from the installed distributions (torch not imported)."""

    def dist_version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"{PROG} {dist_version('mixfx')} (torch {dist_version('torch')}, "
        f"python {platform.python_version()})"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    """Print :func:`version_line`."""
    print(version_line())
    return 0
