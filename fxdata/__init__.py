"""fxdata: multitrack datasets (MUSDB18-HQ, stem folders) and the offline MIDI-rendered corpus.

``fxdata.open_dataset(path, ...)`` opens any supported folder (see :mod:`fxdata.datasets`);
``fxdata.corpus.build_corpus`` renders the corpus (``mixfx corpus build``). Submodules are
imported lazily, so ``import fxdata`` pulls in neither torch nor soundfile.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["STEMS", "MultitrackDataset", "SegmentDataset", "SegmentStream", "open_dataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("fxdata.datasets"), name)
    raise AttributeError(f"module 'fxdata' has no attribute {name!r}")
