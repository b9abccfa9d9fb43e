"""Exact power-of-two rescaling that keeps FFT and filter sums of very loud audio finite."""

from __future__ import annotations

import torch
from torch import Tensor

#: The dtypes the kernels and FFTs compute in; float16/bfloat16 audio is processed in float32.
COMPUTE_DTYPES = (torch.float32, torch.float64)


def pow2_scale(x: Tensor) -> tuple[Tensor, Tensor] | None:
    """Per-item powers of two ``(s, 1/s)``, ``(batch, 1, 1)``, with ``peak(x · s) < 2``.

    ``s = 1`` for items whose peak is below 2 (ordinary audio: the result is untouched); louder
    items are scaled down so that FFT sums cannot overflow. Scaling by a power of two is exact,
    so ``f(x · s) / s`` is bit-identical to ``f(x)`` wherever the latter does not overflow.

    Returns ``None`` for a CPU tensor that needs no scaling (the common case: callers skip the
    two multiplications); on other devices the scales are always returned (no device sync).
    """
    peak = x.detach().abs().amax(dim=tuple(range(1, x.ndim)), keepdim=True)
    if x.device.type == "cpu" and not bool((peak >= 2.0).any()):
        return None
    exponent = (torch.frexp(peak)[1] - 1).clamp_min(0)  # peak < 2^(exponent + 1)
    one = torch.ones_like(peak)
    return torch.ldexp(one, -exponent), torch.ldexp(one, exponent)


def check_no_overflow(y: Tensor, scaled: bool, name: str) -> None:
    """On the CPU, raise if rescaling (or a cast to a narrow dtype) overflowed ``y``."""
    if y.device.type != "cpu":
        return
    if y.dtype in COMPUTE_DTYPES and not scaled:
        return  # a peak below 2 cannot overflow the float32 FFT: no extra pass
    if not bool(torch.isfinite(y.detach()).all()):
        raise ValueError(
            f"{name}: the result overflows {y.dtype} (its largest values exceed "
            f"{torch.finfo(y.dtype).max:.3g}); scale the input down"
        )
