"""Audio preparation for inference: checks, layout, resampling, segmenting."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from fxdata.audio import resample

__all__ = ["prepare_audio", "segment_starts"]


def prepare_audio(
    audio: Tensor, sample_rate: float, target_rate: int, device: torch.device
) -> Tensor:
    """``(batch, 2, samples)`` float32 on ``device`` at ``target_rate``, checked.

    Accepts ``(batch, 1 or 2, samples)`` or ``(channels, samples)`` (a single item); mono is
    duplicated to stereo.

    Raises:
        ValueError: a bad shape, rate or dtype, or non-finite samples.
    """
    if not isinstance(audio, Tensor):
        raise ValueError(f"audio must be a torch.Tensor, got {type(audio).__name__}")
    if audio.ndim == 2:
        audio = audio[None]
    if audio.ndim != 3 or audio.shape[1] not in (1, 2) or audio.shape[-1] < 2:
        raise ValueError(
            f"audio must be (batch, 1 or 2, samples) or (channels, samples), got "
            f"{tuple(audio.shape)}"
        )
    if not audio.is_floating_point():
        raise ValueError(f"audio must be floating point, got {audio.dtype}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)):
        raise ValueError(f"sample_rate must be a number, got {sample_rate!r}")
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be positive and finite, got {sample_rate}")
    if not bool(torch.isfinite(audio).all()):
        raise ValueError("audio contains NaN or Inf samples")
    if float(sample_rate) != float(target_rate):
        if float(sample_rate) != int(sample_rate):
            raise ValueError(f"sample_rate must be a whole number of Hz, got {sample_rate}")
        flat = audio.detach().cpu().double().numpy()
        b, c, n = flat.shape
        out = resample(flat.reshape(b * c, n), int(sample_rate), int(target_rate))
        audio = torch.from_numpy(np.ascontiguousarray(out)).reshape(b, c, -1)
    x = audio.to(device=device, dtype=torch.float32)
    return x.expand(-1, 2, -1) if x.shape[1] == 1 else x


def segment_starts(samples: int, segment: int) -> list[int]:
    """Start offsets of segments of ``segment`` samples covering ``samples`` (last one aligned to
    the end, no segment past it); ``[0]`` when the audio is shorter than one segment."""
    if samples <= segment:
        return [0]
    count = math.ceil(samples / segment)
    starts = [i * segment for i in range(count - 1)]
    starts.append(samples - segment)
    return starts
