"""fxdata: multitrack datasets (MUSDB18-HQ, stem folders) and the offline MIDI-rendered corpus.

``fxdata.open_dataset(path, ...)`` opens any supported folder (see :mod:`fxdata.datasets`);
``fxdata.corpus.build_corpus`` renders the corpus (``mixfx corpus build``);
``fxdata.pack_segments`` writes a compact segment pack (``mixfx corpus pack``). Submodules are
imported lazily, so ``import fxdata`` pulls in neither torch nor soundfile.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "STEMS",
    "MultitrackDataset",
    "PackedSegments",
    "SegmentDataset",
    "SegmentStream",
    "open_dataset",
    "pack_segments",
]
_PACK = ("PackedSegments", "pack_segments")


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = "fxdata.pack" if name in _PACK else "fxdata.datasets"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'fxdata' has no attribute {name!r}")
