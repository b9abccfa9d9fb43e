"""fxdata: multitrack datasets (MUSDB18-HQ, stem folders) and the offline MIDI-rendered corpus.

``fxdata.open_dataset(path, ...)`` opens any supported folder (see :mod:`fxdata.datasets`);
``fxdata.corpus.build_corpus`` renders the corpus (``mixfx corpus build``);
``fxdata.pack_segments`` writes a compact segment pack (``mixfx corpus pack``);
``fxdata.draw_triplets`` draws training triplets on a device (:mod:`fxdata.triplets`).
Submodules are imported lazily, so ``import fxdata`` pulls in neither torch nor soundfile.

Layers, bottom up: :mod:`fxdata.audio`, :mod:`fxdata.midi` → :mod:`fxdata.tracks` →
:mod:`fxdata.pack` → :mod:`fxdata.datasets` → :mod:`fxdata.triplets`; :mod:`fxdata.corpus` renders
tracks. fxdata imports :mod:`fxdsp` (stem names from :mod:`fxdsp.registry`), never the reverse.
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
    "Triplets",
    "corpus_fxnorm",
    "draw_triplets",
    "open_dataset",
    "pack_segments",
]
_MODULES = {
    "STEMS": "fxdsp.registry",
    "MultitrackDataset": "fxdata.tracks",
    "PackedSegments": "fxdata.pack",
    "pack_segments": "fxdata.pack",
    "Triplets": "fxdata.triplets",
    "draw_triplets": "fxdata.triplets",
}


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = _MODULES.get(name, "fxdata.datasets")
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'fxdata' has no attribute {name!r}")
