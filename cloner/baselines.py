"""Baselines every transfer method must beat: "input unchanged" and a naive match EQ.

:func:`match_eq` is what a match-EQ plugin does: it measures the long-term average spectrum of
the input and of the reference, smooths both over fractional-octave bands, and filters the input
by the ratio (a zero-phase FIR designed by frequency sampling), then matches the integrated
loudness (ITU-R BS.1770) to the reference's. It copies the reference's *content* spectrum along
with its mix, which is why it is a weak baseline for style transfer across songs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fxdsp._checks import check_audio, check_sample_rate
from fxdsp.analysis import welch_psd
from fxdsp.functional.loudness import loudness

__all__ = ["match_eq", "match_eq_curve"]

_EPS = 1e-20


def _smooth_octaves(freqs: Tensor, power: Tensor, fraction: float) -> Tensor:
    """Each bin's power averaged over ``[f · 2^(−fraction/2), f · 2^(fraction/2)]``.

    A triangular-free box in log frequency, computed with a cumulative sum over bins (bins at
    or below the first non-zero frequency use the first band).
    """
    f = freqs.clamp(min=float(freqs[1]))
    lo = f * 2.0 ** (-fraction / 2)
    hi = f * 2.0 ** (fraction / 2)
    csum = torch.nn.functional.pad(power.cumsum(-1), (1, 0))
    i_lo = torch.searchsorted(freqs.contiguous(), lo.contiguous(), right=False)
    i_hi = torch.searchsorted(freqs.contiguous(), hi.contiguous(), right=True)
    i_hi = torch.maximum(i_hi, i_lo + 1).clamp(max=freqs.numel())
    i_lo = torch.minimum(i_lo, i_hi - 1)
    total = csum[..., i_hi] - csum[..., i_lo]
    return total / (i_hi - i_lo).to(power.dtype)


def match_eq_curve(
    audio: Tensor,
    reference: Tensor,
    sample_rate: float,
    *,
    n_fft: int = 4096,
    fraction: float = 1 / 3,
    max_gain_db: float = 24.0,
) -> tuple[Tensor, Tensor]:
    """The match EQ's magnitude curve: ``(freqs (F,), gain (batch, F))``, linear amplitude.

    ``gain = sqrt(S_ref / S_in)`` of the channel-averaged Welch spectra (``n_fft`` frames),
    each smoothed over ``fraction``-octave bands, limited to ``±max_gain_db``. A silent input
    or reference gives a flat 0 dB curve.
    """
    _, p_in = welch_psd(audio.double(), sample_rate, n_fft, mode="mean")
    freqs, p_ref = welch_psd(reference.double(), sample_rate, n_fft, mode="mean")
    s_in = _smooth_octaves(freqs, p_in[:, 0], fraction)
    s_ref = _smooth_octaves(freqs, p_ref[:, 0], fraction)
    gain_db = 10.0 * (torch.log10(s_ref + _EPS) - torch.log10(s_in + _EPS))
    gain_db = gain_db.clamp(-max_gain_db, max_gain_db)
    silent = (p_in[:, 0].sum(-1) <= _EPS) | (p_ref[:, 0].sum(-1) <= _EPS)
    gain_db = torch.where(silent[:, None], torch.zeros_like(gain_db), gain_db)
    return freqs, 10.0 ** (gain_db / 20.0)


def _zero_phase_fir(gain: Tensor, taps: int) -> Tensor:
    """A symmetric (zero-phase, centred) FIR of odd length ``taps`` whose response samples
    ``gain`` ``(batch, F)`` (frequency sampling with a Hann window)."""
    h = torch.fft.irfft(gain.to(torch.complex128), n=2 * (gain.shape[-1] - 1))  # (B, N)
    h = torch.fft.fftshift(h, dim=-1)
    mid = h.shape[-1] // 2
    half = taps // 2
    h = h[..., mid - half : mid + half + 1]
    return h * torch.hann_window(taps + 2, periodic=False, dtype=h.dtype, device=h.device)[1:-1]


def _fft_convolve_same(x: Tensor, h: Tensor) -> Tensor:
    """``x`` ``(B, C, N)`` convolved with a centred odd-length ``h`` ``(B, T)``, same length."""
    n, taps = x.shape[-1], h.shape[-1]
    size = 1 << (n + taps - 1 - 1).bit_length()
    y = torch.fft.irfft(torch.fft.rfft(x, size) * torch.fft.rfft(h, size)[:, None], size)
    start = taps // 2
    return y[..., start : start + n]


def match_eq(
    audio: Tensor,
    reference: Tensor,
    sample_rate: float,
    *,
    n_fft: int = 4096,
    fraction: float = 1 / 3,
    max_gain_db: float = 24.0,
    match_loudness: bool = True,
) -> Tensor:
    """Filter ``audio`` so that its average spectrum and loudness match ``reference``'s.

    Args:
        audio: the input, ``(batch, channels, samples)``.
        reference: the reference, ``(batch, channels, samples')`` (any length of at least 16
            samples; its spectrum and loudness are what is copied).
        sample_rate: of both, in Hz.
        n_fft: frame length of the spectra; the FIR has ``n_fft − 1`` taps.
        fraction: smoothing bandwidth in octaves.
        max_gain_db: limit of the EQ's boost and cut.
        match_loudness: then scale to the reference's integrated loudness (BS.1770; the RMS
            level when either is shorter than one 400 ms block; skipped for an item where
            either is silent).

    Returns:
        ``(batch, channels, samples)`` in ``audio``'s dtype.
    """
    check_audio(audio)
    check_audio(reference)
    fs = check_sample_rate(sample_rate)
    if audio.shape[0] != reference.shape[0]:
        raise ValueError(f"audio has {audio.shape[0]} items but reference has {reference.shape[0]}")
    if not math.isfinite(max_gain_db) or max_gain_db <= 0:
        raise ValueError(f"max_gain_db must be positive and finite, got {max_gain_db}")
    _, gain = match_eq_curve(
        audio, reference, fs, n_fft=n_fft, fraction=fraction, max_gain_db=max_gain_db
    )
    x = audio.double()
    y = _fft_convolve_same(x, _zero_phase_fir(gain, gain.shape[-1] * 2 - 3))
    if match_loudness:
        ref = reference.double()
        if min(y.shape[-1], ref.shape[-1]) >= math.ceil(0.4 * fs):
            l_y, l_ref = loudness(y, fs), loudness(ref, fs)
        else:
            l_y = 10.0 * torch.log10(y.square().mean(dim=(1, 2)))
            l_ref = 10.0 * torch.log10(ref.square().mean(dim=(1, 2)))
        ok = torch.isfinite(l_y) & torch.isfinite(l_ref)
        scale = torch.where(ok, 10.0 ** ((l_ref - l_y).clamp(-60, 60) / 20.0), torch.ones_like(l_y))
        y = y * scale[:, None, None]
    return y.to(audio.dtype)
