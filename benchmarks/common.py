"""Helpers the model benchmarks share: a synchronised median timer and a synthetic song."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["STEMS", "song", "timed"]

STEMS = ("drums", "bass", "other", "vocals")


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], repeats: int, device: torch.device | None = None) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call (CUDA synchronised)."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def song(seconds: float, seed: int, sample_rate: int = 44100) -> dict[str, torch.Tensor]:
    """Four stereo stems of tones and coloured noise (the content does not change the cost)."""
    gen = torch.Generator().manual_seed(seed)
    n = round(seconds * sample_rate)
    t = torch.arange(n) / sample_rate
    out = {}
    for i, name in enumerate(STEMS):
        tone = torch.sin(2 * torch.pi * (55.0 * 2**i) * t)
        noise = torch.randn(2, n, generator=gen).cumsum(-1) * 1e-3
        noise = noise - noise.mean(dim=-1, keepdim=True)
        out[name] = (0.1 * tone + noise).float()
    return out
