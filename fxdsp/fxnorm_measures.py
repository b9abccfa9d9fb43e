"""Measures of the FX normalization: average spectrum shape, mid-energy fraction, onset peaks.

Batched over ``(batch, channels, samples)`` audio, in torch. They are the normalizer's own
measures (used by :class:`fxdsp.normalize.FxNormalizer` to compare an item with its targets, and
by :func:`fxdsp.fxnorm_stats.compute_stats` to compute the targets), kept in one place so that
both sides measure the same thing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fxdsp._checks import check_audio, check_sample_rate

__all__ = ["N_FFT", "average_spectrum", "mid_fraction", "onset_peak_db"]

#: FFT size of the average-spectrum grid (``N_FFT // 2 + 1`` bins).
N_FFT = 4096

_EPS = 1e-12
_DB_FLOOR = -240.0
_PEAK_DB = -10.0  # peak normalization of the onset statistic and of the dynamics step
_ONSET_FRAME_S = 512 / 44100  # envelope hop (11.6 ms); the window is two hops
_ONSET_LOOKAHEAD = 5  # frames after an onset searched for its peak (~58 ms)
_ONSET_RISE_DB = 2.0  # energy rise (dB per hop) that makes an onset
_ONSET_FLOOR_DB = -60.0  # frames quieter than this (relative to the loudest) are not onsets


def _mean_magnitude(x: Tensor, n_fft: int) -> tuple[Tensor, int]:
    """Sum over frames of the mid channel's ``|STFT|`` ``(B, F)``, and the frame count."""
    samples = x.shape[-1]
    mid = x.mean(1)  # (L + R) / 2 for stereo; the channel itself for mono
    if samples < n_fft:
        mid = torch.nn.functional.pad(mid, (0, n_fft - samples))
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(
        mid, n_fft, hop_length=n_fft // 4, window=window, center=False, return_complex=True
    ).abs()
    return spec.sum(-1), spec.shape[-1]


def _unit_rms(mag: Tensor) -> Tensor:
    return mag / torch.sqrt(mag.square().mean(-1, keepdim=True) + _EPS)


def average_spectrum(x: Tensor, n_fft: int = N_FFT) -> Tensor:
    """Average magnitude spectrum of the mid channel per item, as a shape (unit RMS over bins).

    ``X[k] = mean_frames |STFT_M(k)|`` of the mid ``M = mean_c x_c`` (Hann window, hop
    ``n_fft/4``, no centre padding; a clip shorter than ``n_fft`` is zero-padded), then
    ``X / √(mean_k X[k]² + ε)``. Silence gives zeros.

    The mid is used (not each channel) because the later steps of the normalizer keep its
    shape: the stereo step scales the mid by one number and widens only the side, the loudness
    step is a gain. So the EQ a second pass would apply is only what the first pass could not
    realize (and what the compressor changed).

    Args:
        x: audio ``(batch, channels, samples)``.
        n_fft: FFT size.

    Returns:
        ``(batch, n_fft // 2 + 1)`` in ``x.dtype``.
    """
    check_audio(x)
    mag, frames = _mean_magnitude(x, n_fft)
    return _unit_rms(mag / frames)


def mid_fraction(x: Tensor) -> Tensor:
    """Mid-energy fraction ``E_M / (E_M + E_S + ε)`` with ``M = (L+R)/2``, ``S = (L−R)/2``.

    Args:
        x: stereo audio ``(batch, 2, samples)``.

    Returns:
        ``(batch,)``, 0 for silence.
    """
    check_audio(x, channels=(2,))
    e_mid = (x[:, 0] + x[:, 1]).square().sum(-1)
    e_side = (x[:, 0] - x[:, 1]).square().sum(-1)
    return e_mid / (e_mid + e_side + _EPS)


def _onset_stat(peak_env: Tensor, meansq_env: Tensor, sample_rate: float) -> Tensor:
    """:func:`onset_peak_db` from the channel-max ``|x|`` and channel-mean ``x²`` ``(B, T)``."""
    hop = max(1, round(_ONSET_FRAME_S * sample_rate))
    win = 2 * hop
    env = torch.stack([peak_env, meansq_env], 1)
    if env.shape[-1] < win:
        env = torch.nn.functional.pad(env, (0, win - env.shape[-1]))
    peak = torch.nn.functional.max_pool1d(env[:, :1], win, hop)[:, 0]
    energy = torch.nn.functional.avg_pool1d(env[:, 1:], win, hop)[:, 0]
    item_peak = peak.amax(-1, keepdim=True)
    peak_db = _PEAK_DB + 20.0 * torch.log10((peak + _EPS) / (item_peak + _EPS))
    level_db = 10.0 * torch.log10((energy + _EPS**2) / (energy.amax(-1, keepdim=True) + _EPS**2))
    level_db = level_db.clamp_min(_ONSET_FLOOR_DB - 20.0)
    floor = torch.full_like(level_db[:, :1], _ONSET_FLOOR_DB - 20.0)
    rise = (level_db - torch.cat([floor, level_db[:, :-1]], -1)).relu()
    left = torch.cat([torch.zeros_like(rise[:, :1]), rise[:, :-1]], -1)
    right = torch.cat([rise[:, 1:], torch.zeros_like(rise[:, :1])], -1)
    audible = level_db > _ONSET_FLOOR_DB
    onset = (rise > _ONSET_RISE_DB) & (rise >= left) & (rise > right) & audible
    ahead = torch.nn.functional.pad(peak_db, (0, _ONSET_LOOKAHEAD - 1), value=_DB_FLOOR)
    onset_peak = torch.nn.functional.max_pool1d(ahead[:, None], _ONSET_LOOKAHEAD, 1)[:, 0]
    has_onset = onset.any(-1, keepdim=True)
    mask = torch.where(has_onset, onset, audible)
    values = torch.where(mask, onset_peak, torch.full_like(onset_peak, math.nan))
    q75 = torch.nanquantile(values, 0.75, dim=-1, keepdim=True)
    top = mask & (onset_peak >= torch.nan_to_num(q75, nan=_DB_FLOOR))
    count = top.sum(-1)
    stat = (onset_peak * top).sum(-1) / count.clamp_min(1)
    return torch.where(count > 0, stat, torch.full_like(stat, _DB_FLOOR))


def _envelopes(x: Tensor) -> Tensor:
    """``(B, 2, T)``: channel-max ``|x|`` and channel RMS ``√(mean_c x²)``.

    Fed to the (stereo-linked, max-detector) compressor, this pair is compressed by exactly the
    gain the audio gets, since its detector ``max(|x|max, RMS) = |x|max`` is the audio's.
    """
    return torch.stack([x.abs().amax(1), x.square().mean(1).sqrt()], 1)


def onset_peak_db(x: Tensor, sample_rate: float) -> Tensor:
    """Onset-peak statistic in dB: how loud the strong onsets are below the peak.

    After peak normalization to −10 dBFS: the envelope is framed (hop 11.6 ms, window 23.2 ms,
    channel-max peaks and channel-mean energies); the novelty is the frame-to-frame rise of the
    log energy, ``n_j = max(E_j − E_{j−1}, 0)`` in dB; an onset is a local maximum of ``n``
    above 2 dB in a frame no more than 60 dB below the loudest; its peak is the largest frame
    peak in the next 58 ms. The statistic is the mean (in dB) of the onset peaks at or above the
    75th percentile of the item's onset peaks. An item without onsets uses every frame above the
    floor instead. Silence gives a large negative finite value (never NaN).

    Args:
        x: audio ``(batch, channels, samples)``.
        sample_rate: in Hz.

    Returns:
        ``(batch,)`` in dB (float64), at most −10.
    """
    check_audio(x)
    fs = check_sample_rate(sample_rate)
    env = _envelopes(x.detach().to(torch.float64))
    return _onset_stat(env[:, 0], env[:, 1].square(), fs)
