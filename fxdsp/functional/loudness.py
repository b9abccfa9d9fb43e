"""Integrated loudness (ITU-R BS.1770-4), loudness and RMS normalisation, batched.

K-weighting is derived for any sample rate from the analog prototypes of the two BS.1770
stages (a +4 dB high shelf near 1.68 kHz and the RLB high-pass near 38 Hz) by the bilinear
transform; at 48 kHz it reproduces the standard's published coefficients. Gating is done per
item with masks: 400 ms blocks with 75 % overlap, an absolute gate at −70 LUFS and a relative
gate 10 LU below the absolutely-gated loudness.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fxdsp._checks import ParamLike, as_param, check_audio, check_sample_rate
from fxdsp.functional._scaling import pow2_scale
from fxdsp.kernels.iir import sosfilt

__all__ = [
    "MIN_SAMPLE_RATE",
    "k_weighting_sos",
    "loudness",
    "normalize_loudness",
    "rms",
    "rms_normalize_to",
]

# Analog prototype parameters of the BS.1770 K-weighting stages (they reproduce the 48 kHz
# coefficients of the standard to about 1e-9).
_SHELF_F0 = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_SHELF_VB_EXP = 0.4996667741545416
_HP_F0 = 38.13547087602444
_HP_Q = 0.5003270373238773

BLOCK_S = 0.4
OVERLAP = 0.75
ABS_GATE_LUFS = -70.0
REL_GATE_LU = -10.0
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
_EPS = 1e-12
#: Lowest sample rate of the K-weighting (and so of :func:`loudness`), Hz: its +4 dB shelf
#: near 1.68 kHz needs the Nyquist frequency well above it.
MIN_SAMPLE_RATE = 8000.0


def k_weighting_sos(sample_rate: float) -> Tensor:
    """The two K-weighting sections for ``sample_rate`` as a float64 ``(2, 6)`` SOS array.

    Args:
        sample_rate: in Hz, at least :data:`MIN_SAMPLE_RATE` (8 kHz).

    Returns:
        ``[[b0, b1, b2, 1, a1, a2], …]``: the high-shelf pre-filter, then the RLB high-pass.

    Raises:
        ValueError: a sample rate that is not a number or is below :data:`MIN_SAMPLE_RATE`.
    """
    fs = check_sample_rate(sample_rate)
    if fs < MIN_SAMPLE_RATE:
        raise ValueError(
            f"sample_rate={fs:g} Hz is too low for the BS.1770 K-weighting (its shelf is at "
            f"{_SHELF_F0:.0f} Hz): at least {MIN_SAMPLE_RATE:g} Hz is needed"
        )
    k = math.tan(math.pi * _SHELF_F0 / fs)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh**_SHELF_VB_EXP
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = [
        (vh + vb * k / _SHELF_Q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / _SHELF_Q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / _SHELF_Q + k * k) / a0,
    ]
    k = math.tan(math.pi * _HP_F0 / fs)
    a0 = 1.0 + k / _HP_Q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HP_Q + k * k) / a0]
    return torch.tensor([shelf, highpass], dtype=torch.float64)


def _block_powers(x: Tensor, sample_rate: float) -> Tensor:
    """Mean square of the K-weighted signal per channel and gating block: ``(B, C, J)``."""
    block = round(BLOCK_S * sample_rate)
    hop = round(BLOCK_S * (1.0 - OVERLAP) * sample_rate)
    if x.shape[-1] < block:
        raise ValueError(
            f"loudness needs at least one 400 ms block: {x.shape[-1]} samples at "
            f"{sample_rate:g} Hz is {x.shape[-1] / sample_rate * 1000:.1f} ms"
        )
    sos = k_weighting_sos(sample_rate).to(x.device)
    weighted = sosfilt(x, sos).to(torch.float64)
    return torch.nn.functional.avg_pool1d(weighted.square(), kernel_size=block, stride=hop)


def loudness(x: Tensor, sample_rate: float) -> Tensor:
    """Integrated loudness in LUFS per item (ITU-R BS.1770-4).

    ``L = −0.691 + 10·log10(Σ_c G_c · mean_{j∈J} z_{c,j})`` where ``z_{c,j}`` is the mean square
    of the K-weighted channel ``c`` over block ``j`` (400 ms, hop 100 ms) and ``J`` the blocks
    that pass the absolute gate (−70 LUFS) and the relative gate (10 LU below the loudness of
    the absolutely gated blocks). Channel weights ``G`` are 1 for the first three channels and
    1.41 for the fourth and fifth (surrounds).

    Items with a peak of 2 or more are measured on ``x · 2^-k`` (exact) and ``20 log10(2^k)``
    is added back, so levels up to the dtype's maximum do not overflow the filters;
    float16/bfloat16 audio is filtered in float32.

    Args:
        x: audio ``(batch, channels, samples)``, at least 400 ms long.
        sample_rate: in Hz, at least :data:`MIN_SAMPLE_RATE` (8 kHz).

    Returns:
        ``(batch,)`` loudness in LUFS, in ``x.dtype``; ``-inf`` for items that are silent (no
        block above the absolute gate). Never NaN for finite input; differentiable where finite.
    """
    check_audio(x)
    sample_rate = check_sample_rate(sample_rate)
    if sample_rate < MIN_SAMPLE_RATE:
        k_weighting_sos(sample_rate)  # raises, naming the rate
    scales = pow2_scale(x)
    if scales is None:
        return _loudness(x, sample_rate).to(x.dtype)
    lufs = _loudness(x * scales[0], sample_rate)
    return (lufs + 20.0 * torch.log10(scales[1].reshape(-1).to(lufs.dtype))).to(x.dtype)


def _loudness(x: Tensor, sample_rate: float) -> Tensor:
    """Float64 integrated loudness of checked audio (the body of :func:`loudness`)."""
    if x.shape[1] > len(_CHANNEL_WEIGHTS):
        raise ValueError(
            f"loudness supports up to {len(_CHANNEL_WEIGHTS)} channels, got {x.shape[1]}"
        )
    z = _block_powers(x, sample_rate)  # (B, C, J)
    weights = torch.tensor(_CHANNEL_WEIGHTS[: x.shape[1]], dtype=z.dtype, device=z.device)
    power = torch.einsum("bcj,c->bj", z, weights)  # (B, J)
    block_lufs = -0.691 + 10.0 * torch.log10(power.clamp_min(_EPS))

    def gated_power(mask: Tensor) -> tuple[Tensor, Tensor]:
        count = mask.sum(-1)
        mean = (power * mask).sum(-1) / count.clamp_min(1)
        return mean, count

    abs_mask = (block_lufs > ABS_GATE_LUFS).to(power.dtype)
    abs_power, _ = gated_power(abs_mask)
    rel_gate = -0.691 + 10.0 * torch.log10(abs_power.clamp_min(_EPS)) + REL_GATE_LU
    mask = abs_mask * (block_lufs > rel_gate.unsqueeze(-1)).to(power.dtype)
    gated, count = gated_power(mask)
    lufs = -0.691 + 10.0 * torch.log10(gated.clamp_min(_EPS))
    return torch.where(count > 0, lufs, torch.full_like(lufs, -math.inf))


def normalize_loudness(x: Tensor, sample_rate: float, target_lufs: ParamLike) -> Tensor:
    """Scale each item to an integrated loudness of ``target_lufs``.

    ``y = x · 10^((target − L(x))/20)``. Silent items (loudness ``-inf``) are returned
    untouched.

    Args:
        x: audio ``(batch, channels, samples)``, at least 400 ms long.
        sample_rate: in Hz, at least :data:`MIN_SAMPLE_RATE`.
        target_lufs: number or ``(batch,)`` tensor, in LUFS (−100 to +10).

    Returns:
        Normalised audio, same shape/dtype/device.
    """
    check_audio(x)
    target = as_param(target_lufs, x, "target_lufs", low=-100.0, high=10.0)
    current = loudness(x, sample_rate)
    finite = torch.isfinite(current)
    delta = torch.where(finite, target - torch.where(finite, current, target), 0.0)
    return x * torch.pow(10.0, delta / 20.0).reshape(-1, 1, 1)


def rms(x: Tensor, eps: float = 1e-30) -> Tensor:
    """Root-mean-square level per item over channels and samples: ``(batch,)``.

    ``sqrt(mean(x²) + eps)``: the tiny ``eps`` keeps the gradient finite on silence (the
    derivative of ``sqrt`` at 0 is infinite) and changes no audible level. Items with a peak of
    2 or more are computed as ``2^k · rms(x · 2^-k)`` (exact scaling), so ``x²`` cannot
    overflow.
    """
    if x.device.type == "cpu":
        # One pass in the common case: x² overflows only above ~1.8e19 (float32), which the
        # (batch,) result shows as inf; only then is the exact rescaling computed.
        mean_square = x.square().mean(dim=(-2, -1))
        if bool(torch.isfinite(mean_square).all()):
            return torch.sqrt(mean_square + eps)
    # Here either an x² overflowed on the CPU (so some peak is >= 2) or x is on another device:
    # pow2_scale returns scales in both cases.
    scales = pow2_scale(x)
    assert scales is not None
    scale, inv = scales[0].reshape(-1), scales[1].reshape(-1)
    scaled = (x * scale[:, None, None]).square().mean(dim=(-2, -1))
    return torch.sqrt(scaled + eps * scale.square()) * inv


def rms_normalize_to(y: Tensor, reference: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale each item of ``y`` to the RMS level of the same item of ``reference``.

    ``out = y · rms(reference) / max(rms(y), eps)``, RMS taken over channels and samples;
    this is the level match applied after every processor of the random chain. A silent
    ``y`` stays silent.

    Args:
        y: audio ``(batch, channels, samples)``.
        reference: audio with the same batch size (any channel count and length).
        eps: floor of ``rms(y)``.

    Returns:
        Rescaled ``y``, same shape/dtype/device.
    """
    check_audio(y, "y", min_samples=1)
    check_audio(reference, "reference", min_samples=1)
    if reference.shape[0] != y.shape[0]:
        raise ValueError(
            f"y and reference must have the same batch size, got {y.shape[0]} and "
            f"{reference.shape[0]}"
        )
    ratio = rms(reference) / rms(y).clamp_min(eps)
    return y * ratio.reshape(-1, 1, 1)
