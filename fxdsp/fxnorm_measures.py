"""The FX normalization's measures, defined in :mod:`fxdsp.analysis` and shaped for it here.

The normalizer (:class:`fxdsp.normalize.FxNormalizer`) and its statistics
(:func:`fxdsp.fxnorm_stats.compute_stats`) must measure the same thing: the average spectrum
shape (:func:`average_spectrum`, the mid channel's mean STFT magnitude of
:func:`fxdsp.analysis.average_magnitude_spectrum` scaled to unit RMS over bins), the mid-energy
fraction and the onset-peak statistic (:func:`fxdsp.analysis.mid_fraction`,
:func:`fxdsp.analysis.onset_peak_db`). This module holds only the shaping both sides share.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fxdsp._checks import check_audio
from fxdsp.analysis import _EPS, mid_fraction, onset_peak_db
from fxdsp.analysis import average_magnitude_spectrum as _average_magnitude

__all__ = ["N_FFT", "average_spectrum", "mid_fraction", "onset_peak_db"]

#: FFT size of the average-spectrum grid (``N_FFT // 2 + 1`` bins).
N_FFT = 4096


def _mean_magnitude(x: Tensor, n_fft: int) -> tuple[Tensor, int]:
    """Sum over frames of the mid channel's ``|STFT|`` ``(B, F)``, and the frame count.

    For accumulating the average spectrum of a long file piece by piece.
    """
    frames = 1 + max(0, x.shape[-1] - n_fft) // (n_fft // 4)
    return _average_magnitude(x, n_fft, mode="mid")[:, 0] * frames, frames


def _unit_rms(mag: Tensor) -> Tensor:
    return mag / torch.sqrt(mag.square().mean(-1, keepdim=True) + _EPS)


def average_spectrum(x: Tensor, n_fft: int = N_FFT) -> Tensor:
    """Average magnitude spectrum of the mid channel per item, as a shape (unit RMS over bins).

    ``X[k] = mean_frames |STFT_M(k)|`` of the mid ``M = mean_c x_c``
    (:func:`fxdsp.analysis.average_magnitude_spectrum`: Hann window, hop ``n_fft/4``, no centre
    padding; a clip shorter than ``n_fft`` is zero-padded), then ``X / √(mean_k X[k]² + ε)``.
    Silence gives zeros.

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
    return _unit_rms(_average_magnitude(x, n_fft, mode="mid")[:, 0])


def _envelopes(x: Tensor) -> Tensor:
    """``(B, 2, T)``: channel-max ``|x|`` and channel RMS ``√(mean_c x²)``.

    Fed to the (stereo-linked, max-detector) compressor, this pair is compressed by exactly the
    gain the audio gets, since its detector ``max(|x|max, RMS) = |x|max`` is the audio's.
    """
    return torch.stack([x.abs().amax(1), x.square().mean(1).sqrt()], 1)
