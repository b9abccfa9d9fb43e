"""Helpers for the tests of the training designs other than fxdsp's (dasp, house)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from fxdata.datasets import MultitrackDataset, SegmentDataset
from fxdata.drawn_chain import DrawnChain
from fxdsp.registry import STEMS

SR = 44100


def only(
    sample: Callable[..., DrawnChain], effect: str | None, n: int = 1, seed: int = 0,
    **values: float,
) -> DrawnChain:  # fmt: skip
    """A chain drawn by ``sample`` with only ``effect`` on and some of its controls set."""
    params = sample(n, generator=torch.Generator().manual_seed(seed), sample_rate=SR)
    for name in params.EFFECTS:
        params.on[name] = torch.full((n,), name == effect)
    for name, value in values.items():
        assert name in params.RANGES, name
        params.values[name] = torch.full((n,), float(value))
    return params


def noise(n: int = 1, seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    """``(n, 2, samples)`` Gaussian noise at 0.1 RMS."""
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(n, 2, round(seconds * SR), generator=gen)


def three_tracks(tmp_path: Path) -> SegmentDataset:
    """0.2-s segments of three tracks of noise stems written as WAV files."""
    rng = np.random.default_rng(0)
    for t in range(3):
        folder = tmp_path / "data" / f"t{t}"
        folder.mkdir(parents=True)
        for stem in STEMS:
            sf.write(folder / f"{stem}.wav", 0.1 * rng.standard_normal((SR, 2)), SR,
                     subtype="FLOAT")  # fmt: skip
    return SegmentDataset(MultitrackDataset(tmp_path / "data", "all"), 0.2,
                          cache_dir=tmp_path / "cache")  # fmt: skip


def check_items_do_not_interact(
    params: DrawnChain, apply: Callable[[torch.Tensor, DrawnChain], torch.Tensor]
) -> None:
    """Each item through a chain of its own equals its row of the batch."""
    x = noise(len(params), seconds=0.3)
    y = apply(x, params)
    for i in range(len(params)):
        one = type(params)(
            values={k: v[i : i + 1] for k, v in params.values.items()},
            on={k: v[i : i + 1] for k, v in params.on.items()},
            ir=params.ir[i : i + 1], sample_rate=params.sample_rate,
        )  # fmt: skip
        # FFT rounding differs with the batch size: ~1e-5 of a 0.1-RMS signal's peak.
        torch.testing.assert_close(apply(x[i : i + 1], one), y[i : i + 1], rtol=0, atol=2e-5)
