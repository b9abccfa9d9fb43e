"""Compiled recursions (Numba) behind the effects: biquad cascades and compressor smoothing.

Fork safety: Numba's default OpenMP threading layer aborts a forked child that runs a parallel
region after its parent did ("fork() called from a process already using GNU OpenMP"), which
would kill fork-started DataLoader workers. Every parallel CPU kernel here therefore has a serial
twin, and :func:`in_forked_child` tells which one to run (workers are parallel among themselves
anyway).
"""

from __future__ import annotations

import os

__all__ = ["in_forked_child"]

_in_forked_child = False


def _mark_forked_child() -> None:
    global _in_forked_child
    _in_forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked_child)


def in_forked_child() -> bool:
    """True in a process created by ``fork()`` (after this module was imported)."""
    return _in_forked_child
