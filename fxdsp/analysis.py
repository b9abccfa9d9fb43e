"""Audio measures, batched: spectra, loudness over time, loudness range, levels, stereo image.

The one place for the figures that the demo, the data tools, the FX normalizer and the
evaluations compute. Every function takes audio ``(batch, channels, samples)`` (float32 or
float64, any device), runs the whole batch at once (frames by ``torch.stft`` and pooling, no
Python loop over items or samples) and returns per-item tensors on the audio's device, in its
dtype unless said otherwise. Sums of powers are accumulated in float64.

Level conventions (the same in every function):

* **dB of a power** ``P`` (a mean square, full scale = 1): ``10·log10(P + ε)`` with
  ``ε = 1e-20``, so silence reads −200 dB, finite. A full-scale square wave reads 0 dB, a
  full-scale sine −3.01 dB (AES17 would add 3.01 dB so that the sine reads 0 dBFS; we do not).
* **Loudness** (LUFS, ITU-R BS.1770-4 / EBU R 128): ``−0.691 + 10·log10(Σ_c G_c z_c)``, with
  ``z_c`` the mean square of the K-weighted channel ``c`` and ``G = (1, 1, 1, 1.41, 1.41)``.
  It is ``-inf`` where that power is exactly zero (digital silence), as the formula says; it is
  never NaN.
* **Stereo**: mid ``M = (L + R)/2``, side ``S = (L − R)/2``, energies ``E = Σ_n x[n]²``.

Contents:

* spectra: :func:`welch_psd` (one-sided power spectral density, as ``scipy.signal.welch``),
  :func:`band_spectrum` (band levels in dB over :func:`bark_bands` or
  :func:`third_octave_bands` / :func:`fractional_octave_bands`), :func:`spectral_centroid`,
  :func:`average_magnitude_spectrum` (the FX normalizer's mean ``|STFT|``);
* loudness: :func:`momentary_loudness` (400 ms), :func:`short_term_loudness` (3 s),
  :func:`loudness_over_time` (any window), :func:`frame_times`, :func:`loudness_range`
  (EBU Tech 3342 LRA); integrated loudness is :func:`fxdsp.functional.loudness.loudness`;
* levels and dynamics: :func:`peak_dbfs`, :func:`rms_dbfs`, :func:`crest_factor_db`,
  :func:`onset_peak_db`;
* stereo: :func:`stereo_width` (side-energy fraction), :func:`mid_fraction`,
  :func:`side_to_mid_db`, :func:`lr_balance_db`, :func:`lr_correlation`;
* :func:`measure`: a dict of per-item summaries to print.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from fxdsp._checks import check_audio, check_sample_rate
from fxdsp.functional.loudness import k_weighting_sos, loudness
from fxdsp.kernels.iir import sosfilt

__all__ = [
    "BARK_EDGES_HZ",
    "DB_EPS",
    "BandSpectrum",
    "Bands",
    "average_magnitude_spectrum",
    "band_spectrum",
    "bark_bands",
    "crest_factor_db",
    "fractional_octave_bands",
    "frame_times",
    "loudness_over_time",
    "loudness_range",
    "lr_balance_db",
    "lr_correlation",
    "measure",
    "mid_fraction",
    "momentary_loudness",
    "onset_peak_db",
    "peak_dbfs",
    "rms_dbfs",
    "short_term_loudness",
    "side_to_mid_db",
    "spectral_centroid",
    "stereo_width",
    "third_octave_bands",
    "welch_psd",
]

#: Power added inside every ``10·log10`` of a level: silence reads −200 dB.
DB_EPS = 1e-20
_EPS = 1e-12  # floor of denominators of ratios (energies)

#: Critical-band edges in Hz (Zwicker, "Subdivision of the audible frequency range into
#: critical bands", JASA 33(2), 1961): 24 bands from 20 Hz to 15.5 kHz.
BARK_EDGES_HZ: tuple[float, ...] = (
    20.0, 100.0, 200.0, 300.0, 400.0, 510.0, 630.0, 770.0, 920.0, 1080.0, 1270.0, 1480.0,
    1720.0, 2000.0, 2320.0, 2700.0, 3150.0, 3700.0, 4400.0, 5300.0, 6400.0, 7700.0, 9500.0,
    12000.0, 15500.0,
)  # fmt: skip
#: Their centre frequencies in Hz (same table).
BARK_CENTRES_HZ: tuple[float, ...] = (
    50.0, 150.0, 250.0, 350.0, 450.0, 570.0, 700.0, 840.0, 1000.0, 1170.0, 1370.0, 1600.0,
    1850.0, 2150.0, 2500.0, 2900.0, 3400.0, 4000.0, 4800.0, 5800.0, 7000.0, 8500.0, 10500.0,
    13500.0,
)  # fmt: skip

# BS.1770-4 channel weights (L, R, C, Ls, Rs).
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
MOMENTARY_S = 0.4
SHORT_TERM_S = 3.0
# EBU Tech 3342 loudness range.
LRA_ABS_GATE_LUFS = -70.0
LRA_REL_GATE_LU = -20.0
LRA_PERCENTILES = (0.10, 0.95)

_MODES = ("channels", "mean", "mid", "mid_side")


def _db(power: Tensor) -> Tensor:
    return 10.0 * torch.log10(power + DB_EPS)


# ------------------------------------------------------------------------------------------------
# Spectra
# ------------------------------------------------------------------------------------------------
class Bands(NamedTuple):
    """Frequency bands: lower edges, centres and upper edges in Hz, each ``(bands,)`` float64."""

    lower_hz: Tensor
    centre_hz: Tensor
    upper_hz: Tensor


class BandSpectrum(NamedTuple):
    """Band levels and the bands they are measured in.

    Attributes:
        levels_db: ``(batch, K, bands)`` band powers in dB (``10·log10(P + 1e-20)``, ``P`` the
            mean square of the signal within the band; full-scale sine inside one band:
            −3.01 dB). ``K`` depends on the mode (see :func:`welch_psd`).
        lower_hz, centre_hz, upper_hz: ``(bands,)`` in Hz, on the audio's device, float64.
    """

    levels_db: Tensor
    lower_hz: Tensor
    centre_hz: Tensor
    upper_hz: Tensor


def _clip_bands(lower: Tensor, centre: Tensor, upper: Tensor, sample_rate: float) -> Bands:
    nyquist = sample_rate / 2.0
    keep = (lower < nyquist) & (centre < nyquist)
    if not bool(keep.any()):
        raise ValueError(f"no band lies below the Nyquist frequency {nyquist:g} Hz")
    return Bands(lower[keep], centre[keep], upper[keep].clamp(max=nyquist))


def bark_bands(sample_rate: float) -> Bands:
    """Zwicker's 24 critical bands (Bark scale), 20 Hz – 15.5 kHz.

    Band ``z`` spans ``[BARK_EDGES_HZ[z], BARK_EDGES_HZ[z+1])`` (Zwicker 1961, Table I); bands
    whose centre lies at or above Nyquist are dropped and the last upper edge is clipped to it.

    Args:
        sample_rate: in Hz.

    Returns:
        :class:`Bands` (float64, CPU).
    """
    fs = check_sample_rate(sample_rate)
    edges = torch.tensor(BARK_EDGES_HZ, dtype=torch.float64)
    centres = torch.tensor(BARK_CENTRES_HZ, dtype=torch.float64)
    return _clip_bands(edges[:-1], centres, edges[1:], fs)


def fractional_octave_bands(
    sample_rate: float, fraction: int = 3, low_hz: float = 20.0, high_hz: float = 20000.0
) -> Bands:
    """Base-ten fractional-octave bands of IEC 61260-1:2014 (1/``fraction`` octave).

    ``G = 10^(3/10)``; centres ``f_m = 1000·G^(x/b)`` for odd ``b`` and
    ``1000·G^((2x+1)/(2b))`` for even ``b``; edges ``f_m·G^(±1/(2b))``. The bands kept are those
    whose span reaches into ``[low_hz, high_hz]`` (for thirds: 20 Hz … 20 kHz nominal, 31
    bands), without any centre at or above Nyquist; the last upper edge is clipped to Nyquist.

    Args:
        sample_rate: in Hz.
        fraction: ``b`` (1 for octaves, 3 for third octaves, 6, 12, …), a positive integer.
        low_hz: lowest frequency to cover, in Hz (> 0).
        high_hz: highest frequency to cover, in Hz (> ``low_hz``).

    Returns:
        :class:`Bands` (float64, CPU).
    """
    fs = check_sample_rate(sample_rate)
    if isinstance(fraction, bool) or not isinstance(fraction, int) or fraction < 1:
        raise ValueError(f"fraction must be a positive integer, got {fraction!r}")
    if not (0.0 < low_hz < high_hz):
        raise ValueError(f"need 0 < low_hz < high_hz, got low_hz={low_hz}, high_hz={high_hz}")
    g = 10.0**0.3
    b = fraction
    half = g ** (1.0 / (2 * b))

    def centre(x: Tensor) -> Tensor:
        return 1000.0 * g ** (x / b) if b % 2 else 1000.0 * g ** ((2 * x + 1) / (2 * b))

    # Band index range: solve f_m·G^(±1/2b) against the limits (with a margin), then filter.
    lo_x = math.floor(b * math.log(low_hz / 1000.0, g)) - 2
    hi_x = math.ceil(b * math.log(high_hz / 1000.0, g)) + 2
    x = torch.arange(lo_x, hi_x + 1, dtype=torch.float64)
    fm = centre(x)
    # A band is kept if its centre lies within half a band of [low, high] (nominal 20 Hz …
    # 20 kHz thirds have centres 19.95 Hz and 19.95 kHz).
    tol = 1e-9
    keep = (fm * half > low_hz * (1 + tol)) & (fm / half < high_hz * (1 - tol))
    fm = fm[keep]
    return _clip_bands(fm / half, fm, fm * half, fs)


def third_octave_bands(sample_rate: float) -> Bands:
    """Third-octave bands, 20 Hz – 20 kHz nominal: ``fractional_octave_bands(sr, 3)``."""
    return fractional_octave_bands(sample_rate, 3)


def _check_mode(x: Tensor, mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
    if mode == "mid_side" and x.shape[1] != 2:
        raise ValueError(f"mode 'mid_side' needs stereo audio (2 channels), got {x.shape[1]}")


def _mode_signals(x: Tensor, mode: str) -> Tensor:
    """The signals whose spectra are taken: ``(B, K, T)``."""
    if mode == "mid":
        return x.mean(1, keepdim=True)
    if mode == "mid_side":
        return torch.stack([0.5 * (x[:, 0] + x[:, 1]), 0.5 * (x[:, 0] - x[:, 1])], 1)
    return x


def _fft_size(n_fft: int, samples: int) -> int:
    if isinstance(n_fft, bool) or not isinstance(n_fft, int) or n_fft < 16:
        raise ValueError(f"n_fft must be an integer >= 16, got {n_fft!r}")
    if samples < 16:
        raise ValueError(f"a spectrum needs at least 16 samples, got {samples}")
    return min(n_fft, 1 << (samples.bit_length() - 1))


def welch_psd(
    x: Tensor,
    sample_rate: float,
    n_fft: int = 8192,
    hop: int | None = None,
    mode: str = "channels",
) -> tuple[Tensor, Tensor]:
    """One-sided power spectral density by Welch's method (periodic Hann window).

    ``P[k] = c_k · mean_j |Σ_n w[n] s[jH + n] e^{−2πikn/N}|² / (f_s · Σ_n w[n]²)`` with
    ``c_k = 2`` for ``0 < k < N/2`` and 1 at DC and Nyquist (even ``N``), frames ``j`` that
    fit entirely in the signal (no padding, no detrending): ``scipy.signal.welch(s, fs,
    nperseg=N, noverlap=N−H, detrend=False)``. ``Σ_k P[k]·f_s/N`` is the mean square of the
    framed signal (Parseval), so band powers are sums of ``P·Δf``.

    Args:
        x: audio ``(batch, channels, samples)``, at least 16 samples.
        sample_rate: in Hz.
        n_fft: frame length ``N`` (an integer ≥ 16); lowered to the largest power of two that
            fits in the signal when the signal is shorter.
        hop: frame hop ``H`` in samples (default ``N // 2``, Welch's 50 % overlap).
        mode: which spectra: ``"channels"`` (each channel, ``K = channels``), ``"mean"`` (the
            PSD averaged over channels, ``K = 1``), ``"mid"`` (of the channel mean, ``M = (L +
            R)/2`` for stereo, ``K = 1``), ``"mid_side"`` (of ``M`` and ``S = (L − R)/2``, stereo
            only, ``K = 2``).

    Returns:
        ``(freqs, psd)``: ``(N//2 + 1,)`` frequencies in Hz and ``(batch, K, N//2 + 1)`` in
        full-scale²/Hz, both in ``x.dtype`` on ``x.device``.
    """
    check_audio(x)
    fs = check_sample_rate(sample_rate)
    _check_mode(x, mode)
    psd, freqs = _psd64(x, fs, n_fft, hop, mode)
    return freqs.to(x.dtype), psd.to(x.dtype)


def _psd64(x: Tensor, fs: float, n_fft: int, hop: int | None, mode: str) -> tuple[Tensor, Tensor]:
    """:func:`welch_psd` in float64: ``(psd (B, K, F), freqs (F,))``."""
    n = _fft_size(n_fft, x.shape[-1])
    if hop is None:
        hop = n // 2
    if isinstance(hop, bool) or not isinstance(hop, int) or hop < 1:
        raise ValueError(f"hop must be a positive integer, got {hop!r}")
    s = _mode_signals(x, mode).to(torch.float64)
    batch, k, samples = s.shape
    window = torch.hann_window(n, periodic=True, dtype=torch.float64, device=x.device)
    spec = torch.stft(
        s.reshape(batch * k, samples),
        n,
        hop_length=hop,
        window=window,
        center=False,
        return_complex=True,
    )  # (B·K, F, J)
    power = spec.real.square() + spec.imag.square()
    psd = power.mean(-1) / (fs * window.square().sum())
    scale = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64, device=x.device)
    scale[0] = 1.0
    if n % 2 == 0:
        scale[-1] = 1.0  # the Nyquist bin has no mirror image
    psd = (psd * scale).reshape(batch, k, -1)
    if mode == "mean":
        psd = psd.mean(1, keepdim=True)
    freqs = torch.arange(n // 2 + 1, dtype=torch.float64, device=x.device) * (fs / n)
    return psd, freqs


def _band_matrix(freqs: Tensor, bands: Bands) -> Tensor:
    """``(F, bands)`` overlap in Hz of bin ``k``'s span ``[f_k − Δf/2, f_k + Δf/2]`` and band."""
    df = freqs[1] - freqs[0]
    lo = (freqs - 0.5 * df)[:, None]
    hi = (freqs + 0.5 * df)[:, None]
    b_lo = bands.lower_hz.to(freqs.device)[None, :]
    b_hi = bands.upper_hz.to(freqs.device)[None, :]
    return (torch.minimum(hi, b_hi) - torch.maximum(lo, b_lo)).clamp_min(0.0)


def band_spectrum(
    x: Tensor,
    sample_rate: float,
    bands: str | Bands = "bark",
    n_fft: int = 8192,
    hop: int | None = None,
    mode: str = "channels",
) -> BandSpectrum:
    """Average spectrum in bands: the power of the signal within each band, in dB.

    ``P_b = Σ_k P[k] · |[f_k − Δf/2, f_k + Δf/2] ∩ [f_lo,b, f_hi,b]|`` with ``P`` the Welch PSD
    of :func:`welch_psd` (each bin's power is shared between the bands its span overlaps, so
    bands narrower than a bin still get their share and adjacent bands add up), then
    ``10·log10(P_b + 1e-20)``. For white noise of variance ``σ²``: ``P_b = σ²·(f_hi − f_lo) /
    (f_s/2)``; for a sine of amplitude ``A`` well inside a band: ``P_b = A²/2``.

    Args:
        x: audio ``(batch, channels, samples)``, at least 16 samples.
        sample_rate: in Hz.
        bands: ``"bark"`` (:func:`bark_bands`), ``"third_octave"`` (:func:`third_octave_bands`)
            or any :class:`Bands`.
        n_fft: frame length (8192: 5.4 Hz bins at 44.1 kHz, finer than the narrowest band
            above 50 Hz); see :func:`welch_psd`.
        hop: frame hop in samples (default ``n_fft // 2``).
        mode: ``"channels"``, ``"mean"``, ``"mid"`` or ``"mid_side"`` (see :func:`welch_psd`).

    Returns:
        :class:`BandSpectrum` with ``levels_db`` ``(batch, K, bands)`` in ``x.dtype``. Silence
        reads −200 dB.
    """
    check_audio(x)
    fs = check_sample_rate(sample_rate)
    _check_mode(x, mode)
    if isinstance(bands, str):
        table = {"bark": bark_bands, "third_octave": third_octave_bands}
        if bands not in table:
            raise ValueError(f"bands must be 'bark', 'third_octave' or Bands, got {bands!r}")
        bands = table[bands](fs)
    elif not isinstance(bands, Bands):
        raise ValueError(f"bands must be 'bark', 'third_octave' or Bands, got {type(bands)}")
    psd, freqs = _psd64(x, fs, n_fft, hop, mode)
    power = psd @ _band_matrix(freqs, bands)
    dev = x.device
    return BandSpectrum(
        _db(power).to(x.dtype),
        bands.lower_hz.to(dev),
        bands.centre_hz.to(dev),
        bands.upper_hz.to(dev),
    )


def spectral_centroid(x: Tensor, sample_rate: float, n_fft: int = 8192) -> Tensor:
    """Spectral centroid in Hz per item: ``Σ_k f_k P[k] / (Σ_k P[k] + ε)``.

    ``P`` is the Welch PSD averaged over channels (:func:`welch_psd`, mode ``"mean"``). A sine
    of frequency ``f`` (away from DC and Nyquist) gives ``f``; silence gives 0 Hz.

    Args:
        x: audio ``(batch, channels, samples)``, at least 16 samples.
        sample_rate: in Hz.
        n_fft: frame length (see :func:`welch_psd`).

    Returns:
        ``(batch,)`` in Hz, ``x.dtype``.
    """
    check_audio(x)
    fs = check_sample_rate(sample_rate)
    psd, freqs = _psd64(x, fs, n_fft, None, "mean")
    p = psd[:, 0]
    return ((p * freqs).sum(-1) / (p.sum(-1) + DB_EPS)).to(x.dtype)


def average_magnitude_spectrum(
    x: Tensor, n_fft: int = 4096, hop: int | None = None, mode: str = "mid"
) -> Tensor:
    """Mean STFT magnitude over frames: ``X[k] = mean_j |STFT(k, j)|`` (linear, not power).

    Periodic Hann window, hop ``n_fft // 4`` by default, no centre padding; a clip shorter than
    ``n_fft`` is zero-padded to one frame. Unscaled (``|STFT|`` of a unit sine on a bin is
    ``Σw/2``). This is the shape statistic of the FX normalizer's EQ step (which divides it by
    its RMS over bins) and of the data tools' spectrum plots (``20·log10`` of it).

    Args:
        x: audio ``(batch, channels, samples)``.
        n_fft: FFT size (an integer ≥ 16).
        hop: hop in samples (default ``n_fft // 4``).
        mode: ``"mid"`` (default, channel mean), ``"channels"``, ``"mean"`` (magnitudes
            averaged over channels) or ``"mid_side"``.

    Returns:
        ``(batch, K, n_fft // 2 + 1)`` in ``x.dtype``.
    """
    check_audio(x)
    _check_mode(x, mode)
    if isinstance(n_fft, bool) or not isinstance(n_fft, int) or n_fft < 16:
        raise ValueError(f"n_fft must be an integer >= 16, got {n_fft!r}")
    hop = n_fft // 4 if hop is None else hop
    if isinstance(hop, bool) or not isinstance(hop, int) or hop < 1:
        raise ValueError(f"hop must be a positive integer, got {hop!r}")
    s = _mode_signals(x, mode)
    if s.shape[-1] < n_fft:
        s = torch.nn.functional.pad(s, (0, n_fft - s.shape[-1]))
    batch, k, samples = s.shape
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(
        s.reshape(batch * k, samples),
        n_fft,
        hop_length=hop,
        window=window,
        center=False,
        return_complex=True,
    ).abs()
    mag = spec.mean(-1).reshape(batch, k, -1)
    return mag.mean(1, keepdim=True) if mode == "mean" else mag


# ------------------------------------------------------------------------------------------------
# Loudness over time
# ------------------------------------------------------------------------------------------------
def _frame_samples(sample_rate: float, window_s: float, hop_s: float) -> tuple[int, int]:
    for name, value in (("window_s", window_s), ("hop_s", hop_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number of seconds, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number of seconds, got {value}")
    window = round(window_s * sample_rate)
    hop = round(hop_s * sample_rate)
    if window < 1 or hop < 1:
        raise ValueError(
            f"window_s={window_s:g} s and hop_s={hop_s:g} s must each be at least one sample "
            f"at {sample_rate:g} Hz"
        )
    return window, hop


def _weighted_power(x: Tensor, sample_rate: float) -> Tensor:
    """``Σ_c G_c y_c[n]²`` of the K-weighted signal ``y``, float64 ``(B, T)``."""
    if x.shape[1] > len(_CHANNEL_WEIGHTS):
        raise ValueError(
            f"BS.1770 loudness supports up to {len(_CHANNEL_WEIGHTS)} channels, got {x.shape[1]}"
        )
    sos = k_weighting_sos(sample_rate).to(x.device)
    y = sosfilt(x, sos).to(torch.float64)
    g = torch.tensor(_CHANNEL_WEIGHTS[: x.shape[1]], dtype=torch.float64, device=x.device)
    return torch.einsum("bct,c->bt", y.square(), g)


def _windowed_mean(p: Tensor, window: int, hop: int) -> Tensor:
    """Means of ``p`` ``(B, T)`` over windows ``[jH, jH + W)`` that fit: ``(B, J)``."""
    p = p[:, None]
    if window % hop == 0:
        # O(T): exact means of hop-long chunks, then means of W/H consecutive chunks.
        chunks = torch.nn.functional.avg_pool1d(p, hop, hop)
        return torch.nn.functional.avg_pool1d(chunks, window // hop, 1)[:, 0]
    return torch.nn.functional.avg_pool1d(p, window, hop)[:, 0]


def _lufs(power: Tensor) -> Tensor:
    """``−0.691 + 10·log10(power)``, ``-inf`` where the power is exactly 0 (never NaN)."""
    tiny = torch.finfo(power.dtype).tiny
    value = -0.691 + 10.0 * torch.log10(power.clamp_min(tiny))
    return torch.where(power > 0, value, torch.full_like(value, -math.inf))


def _loudness_curve64(x: Tensor, fs: float, window_s: float, hop_s: float) -> Tensor:
    window, hop = _frame_samples(fs, window_s, hop_s)
    if x.shape[-1] < window:
        raise ValueError(
            f"a {window_s:g} s loudness window needs {window} samples at {fs:g} Hz; the audio "
            f"has {x.shape[-1]} ({x.shape[-1] / fs:.3f} s)"
        )
    return _lufs(_windowed_mean(_weighted_power(x, fs), window, hop))


def loudness_over_time(
    x: Tensor, sample_rate: float, window_s: float, hop_s: float = 0.1
) -> Tensor:
    """Ungated BS.1770 loudness of a sliding rectangular window, per item.

    ``L[j] = −0.691 + 10·log10(Σ_c G_c · mean_{n ∈ [jH, jH+W)} y_c[n]²)`` with ``y`` the
    K-weighted audio (:func:`fxdsp.functional.loudness.k_weighting_sos`, filtered by the
    project's exact SOS kernel from zero state), ``W = round(window_s·f_s)``,
    ``H = round(hop_s·f_s)``; only windows that fit entirely in the audio:
    ``J = ⌊(T − W)/H⌋ + 1`` values; frame ``j`` is the meter reading at time ``(jH + W)/f_s``
    (see :func:`frame_times`).

    Args:
        x: audio ``(batch, channels, samples)``, at most 5 channels (L, R, C, Ls, Rs), at
            least one window long.
        sample_rate: in Hz.
        window_s: window length in seconds (0.4 momentary, 3 short-term).
        hop_s: time between readings in seconds (EBU R 128 asks for at least 10 per second).

    Returns:
        ``(batch, J)`` in LUFS, ``x.dtype``; ``-inf`` where the window is digitally silent.
    """
    check_audio(x)
    fs = check_sample_rate(sample_rate)
    return _loudness_curve64(x, fs, window_s, hop_s).to(x.dtype)


def momentary_loudness(x: Tensor, sample_rate: float, hop_s: float = 0.1) -> Tensor:
    """Momentary loudness M (EBU R 128 / Tech 3341): 400 ms window, in LUFS ``(batch, J)``.

    :func:`loudness_over_time` with ``window_s = 0.4``; the audio must be at least 400 ms.
    """
    return loudness_over_time(x, sample_rate, MOMENTARY_S, hop_s)


def short_term_loudness(x: Tensor, sample_rate: float, hop_s: float = 0.1) -> Tensor:
    """Short-term loudness S (EBU R 128 / Tech 3341): 3 s window, in LUFS ``(batch, J)``.

    :func:`loudness_over_time` with ``window_s = 3``; the audio must be at least 3 s.
    """
    return loudness_over_time(x, sample_rate, SHORT_TERM_S, hop_s)


def frame_times(
    num_frames: int, sample_rate: float, window_s: float, hop_s: float = 0.1, at: str = "end"
) -> Tensor:
    """Times in seconds of the readings of :func:`loudness_over_time`: ``(num_frames,)`` float64.

    Frame ``j`` covers ``[jH, jH + W)`` samples; ``at`` picks its ``"start"``, ``"centre"`` or
    ``"end"`` (the time a real-time meter shows the reading; default).
    """
    fs = check_sample_rate(sample_rate)
    window, hop = _frame_samples(fs, window_s, hop_s)
    offsets = {"start": 0.0, "centre": window / 2.0, "end": float(window)}
    if at not in offsets:
        raise ValueError(f"at must be 'start', 'centre' or 'end', got {at!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 0:
        raise ValueError(f"num_frames must be a non-negative integer, got {num_frames!r}")
    return (torch.arange(num_frames, dtype=torch.float64) * hop + offsets[at]) / fs


def loudness_range(x: Tensor, sample_rate: float, hop_s: float = 0.1) -> Tensor:
    """Loudness range LRA in LU (EBU Tech 3342), per item.

    From the short-term loudness ``S_j`` (3 s windows every ``hop_s``,
    :func:`short_term_loudness`): keep ``S_j ≥ −70 LUFS`` (absolute gate); with
    ``S_int = 10·log10(mean_j 10^(S_j/10))`` over those, keep ``S_j ≥ S_int − 20 LU`` (relative
    gate); ``LRA = Q(0.95) − Q(0.10)`` of the kept values, quantiles by linear interpolation
    (``numpy.percentile``'s default, as in pyloudnorm's port of the Tech 3342 code).

    Args:
        x: audio ``(batch, channels, samples)``, at most 5 channels, at least 3 s.
        sample_rate: in Hz.
        hop_s: time between short-term readings in seconds (Tech 3342: at least 10 per second).

    Returns:
        ``(batch,)`` in LU, ``x.dtype``; 0 for items with no short-term value above the gate
        (e.g. silence), never NaN.
    """
    check_audio(x)
    fs = check_sample_rate(sample_rate)
    st = _loudness_curve64(x, fs, SHORT_TERM_S, hop_s)
    return _lra(st).to(x.dtype)


def _lra(st: Tensor) -> Tensor:
    """LRA from short-term loudness ``(B, J)`` float64 (may hold ``-inf``)."""
    abs_mask = st >= LRA_ABS_GATE_LUFS
    count = abs_mask.sum(-1).clamp_min(1)
    safe = torch.where(abs_mask, st, torch.zeros_like(st))
    mean_power = (torch.pow(10.0, safe / 10.0) * abs_mask).sum(-1) / count
    gate = 10.0 * torch.log10(mean_power.clamp_min(1e-300)) + LRA_REL_GATE_LU
    mask = abs_mask & (st >= gate[:, None])
    values = torch.where(mask, st, torch.full_like(st, math.nan))
    q = torch.tensor(LRA_PERCENTILES, dtype=st.dtype, device=st.device)
    low, high = torch.nanquantile(values, q, dim=-1)
    lra = torch.nan_to_num(high - low, nan=0.0)
    return torch.where(mask.any(-1), lra, torch.zeros_like(lra))


# ------------------------------------------------------------------------------------------------
# Levels and dynamics
# ------------------------------------------------------------------------------------------------
def peak_dbfs(x: Tensor) -> Tensor:
    """Sample peak in dBFS per item: ``10·log10(max_{c,n} x² + 1e-20)`` (``(batch,)``).

    Full scale (|x| = 1) is 0 dBFS; silence −200 dBFS. Not a true-peak (oversampled) meter.
    """
    check_audio(x, min_samples=1)
    return _db(x.to(torch.float64).square().amax(dim=(-2, -1))).to(x.dtype)


def rms_dbfs(x: Tensor) -> Tensor:
    """RMS level in dB per item, over channels and samples: ``10·log10(mean x² + 1e-20)``.

    A full-scale square wave reads 0 dB, a full-scale sine −3.01 dB (no AES17 +3 dB), silence
    −200 dB.

    Returns:
        ``(batch,)`` in ``x.dtype``.
    """
    check_audio(x, min_samples=1)
    return _db(x.to(torch.float64).square().mean(dim=(-2, -1))).to(x.dtype)


def crest_factor_db(x: Tensor) -> Tensor:
    """Crest factor in dB per item: peak over RMS, ``10·log10((max x² + ε)/(mean x² + ε))``.

    Over all channels and samples, ``ε = 1e-20``. A sine reads 3.01 dB (``√2``), a square wave
    0 dB; silence 0 dB.

    Returns:
        ``(batch,)`` in ``x.dtype``.
    """
    check_audio(x, min_samples=1)
    x64 = x.to(torch.float64)
    sq = x64.square()
    return (_db(sq.amax(dim=(-2, -1))) - _db(sq.mean(dim=(-2, -1)))).to(x.dtype)


# Onset-peak statistic (the FX normalizer's dynamics measure).
_DB_FLOOR = -240.0
_PEAK_DB = -10.0  # peak normalization before the statistic
_ONSET_FRAME_S = 512 / 44100  # envelope hop (11.6 ms); the window is two hops
_ONSET_LOOKAHEAD = 5  # frames after an onset searched for its peak (~58 ms)
_ONSET_RISE_DB = 2.0  # energy rise (dB per hop) that makes an onset
_ONSET_FLOOR_DB = -60.0  # frames quieter than this (relative to the loudest) are not onsets


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


def onset_peak_db(x: Tensor, sample_rate: float) -> Tensor:
    """Onset-peak statistic in dB: how loud the strong onsets are below the peak.

    The FX normalizer's dynamics measure (after Martínez-Ramírez et al., ISMIR 2022, with an
    onset detector of our own). After peak normalization to −10 dBFS, the envelope is framed
    (hop 11.6 ms, window 23.2 ms, channel-max peaks and channel-mean energies); the novelty is
    the frame-to-frame rise of the log energy, ``n_j = max(E_j − E_{j−1}, 0)`` in dB; an onset
    is a local maximum of ``n`` above 2 dB in a frame no more than 60 dB below the loudest; its
    peak is the largest frame peak in the next 58 ms. The statistic is the mean (in dB) of the
    onset peaks at or above the 75th percentile of the item's onset peaks. An item without
    onsets uses every frame above the floor instead. Silence gives −240 dB (never NaN).

    Args:
        x: audio ``(batch, channels, samples)``.
        sample_rate: in Hz.

    Returns:
        ``(batch,)`` in dB (float64, detached), at most −10.
    """
    check_audio(x)
    fs = check_sample_rate(sample_rate)
    x64 = x.detach().to(torch.float64)
    return _onset_stat(x64.abs().amax(1), x64.square().mean(1), fs)


# ------------------------------------------------------------------------------------------------
# Stereo image
# ------------------------------------------------------------------------------------------------
def _mid_side_energies(x: Tensor) -> tuple[Tensor, Tensor]:
    check_audio(x, min_samples=1, channels=(2,))
    x64 = x.to(torch.float64)
    e_mid = (0.5 * (x64[:, 0] + x64[:, 1])).square().sum(-1)
    e_side = (0.5 * (x64[:, 0] - x64[:, 1])).square().sum(-1)
    return e_mid, e_side


def stereo_width(x: Tensor) -> Tensor:
    """Stereo width as the side-energy fraction ``E_S / (E_M + E_S + ε)`` per item.

    With ``M = (L + R)/2``, ``S = (L − R)/2``: ``E_M + E_S = (E_L + E_R)/2``, so the width is
    0 for mono (L = R), 1 for side only (L = −R), 0.5 for one channel alone or for two
    uncorrelated channels of equal level, and ``(1 − ρ·2√(E_L E_R)/(E_L + E_R))/2`` in
    general (``ρ`` the L/R correlation). Silence gives 0.

    Args:
        x: stereo audio ``(batch, 2, samples)``.

    Returns:
        ``(batch,)`` in [0, 1], ``x.dtype``.
    """
    e_mid, e_side = _mid_side_energies(x)
    return (e_side / (e_mid + e_side + _EPS)).to(x.dtype)


def mid_fraction(x: Tensor) -> Tensor:
    """Mid-energy fraction ``E_M / (E_M + E_S + ε)`` per item (the FX normalizer's target).

    ``1 − stereo_width`` except on silence, where both are 0.

    Args:
        x: stereo audio ``(batch, 2, samples)``.

    Returns:
        ``(batch,)`` in [0, 1], ``x.dtype``.
    """
    e_mid, e_side = _mid_side_energies(x)
    return (e_mid / (e_mid + e_side + _EPS)).to(x.dtype)


def side_to_mid_db(x: Tensor) -> Tensor:
    """Side-to-mid energy ratio in dB: ``10·log10((E_S + ε)/(E_M + ε))``, ``ε = 1e-20``.

    0 dB for uncorrelated channels of equal level and for silence; very negative for mono
    (``−200 − 10·log10 E_M`` dB) and very positive for side only, but always finite.

    Args:
        x: stereo audio ``(batch, 2, samples)``.

    Returns:
        ``(batch,)`` in dB, ``x.dtype``.
    """
    e_mid, e_side = _mid_side_energies(x)
    return (_db(e_side) - _db(e_mid)).to(x.dtype)


def lr_balance_db(x: Tensor) -> Tensor:
    """Left/right balance in dB: ``10·log10((E_R + ε)/(E_L + ε))``, ``ε = 1e-20``.

    Positive means the right channel carries more energy (as ``pan > 0`` in
    :func:`fxdsp.functional.stereo.pan`); 0 dB for mono or silence. A constant-power pan by
    angle ``θ`` (``L = cos θ``, ``R = sin θ``) reads ``20·log10(tan θ)``.

    Args:
        x: stereo audio ``(batch, 2, samples)``.

    Returns:
        ``(batch,)`` in dB, ``x.dtype``.
    """
    check_audio(x, min_samples=1, channels=(2,))
    e = x.to(torch.float64).square().sum(-1)
    return (_db(e[:, 1]) - _db(e[:, 0])).to(x.dtype)


def lr_correlation(x: Tensor) -> Tensor:
    """Pearson correlation of the left and right channels over the whole clip, per item.

    ``ρ = Σ (L − L̄)(R − R̄) / √(Σ (L − L̄)² · Σ (R − R̄)² + ε)``: 1 for mono, −1 for side only,
    0 for uncorrelated channels and for silence.

    Args:
        x: stereo audio ``(batch, 2, samples)``.

    Returns:
        ``(batch,)`` in [−1, 1], ``x.dtype``.
    """
    check_audio(x, min_samples=1, channels=(2,))
    x64 = x.to(torch.float64)
    c = x64 - x64.mean(-1, keepdim=True)
    num = (c[:, 0] * c[:, 1]).sum(-1)
    den = torch.sqrt(c[:, 0].square().sum(-1) * c[:, 1].square().sum(-1) + _EPS**2)
    return (num / den).to(x.dtype)


# ------------------------------------------------------------------------------------------------
# Summary
# ------------------------------------------------------------------------------------------------
def measure(audio: Tensor, sample_rate: float) -> dict[str, Tensor]:
    """Per-item summaries to print or tabulate (detached, no gradient).

    Keys, each a ``(batch,)`` tensor in ``audio.dtype`` on its device:

    * ``integrated_lufs`` (:func:`fxdsp.functional.loudness.loudness`; ``-inf`` for silence),
      ``max_momentary_lufs`` (:func:`momentary_loudness`, 100 ms hop);
    * only for audio of at least 3 s: ``max_short_term_lufs`` (:func:`short_term_loudness`) and
      ``loudness_range_lu`` (:func:`loudness_range`);
    * ``peak_dbfs``, ``rms_dbfs``, ``crest_factor_db``, ``spectral_centroid_hz``;
    * only for stereo audio: ``stereo_width`` (side-energy fraction), ``side_to_mid_db``,
      ``lr_balance_db`` and ``lr_correlation``.

    Args:
        audio: ``(batch, channels, samples)``, at least 400 ms, at most 5 channels.
        sample_rate: in Hz.

    Returns:
        A dict from the names above to ``(batch,)`` tensors.
    """
    check_audio(audio)
    fs = check_sample_rate(sample_rate)
    with torch.no_grad():
        x = audio.detach()
        if x.shape[1] > len(_CHANNEL_WEIGHTS):
            raise ValueError(
                f"BS.1770 loudness supports up to {len(_CHANNEL_WEIGHTS)} channels, "
                f"got {x.shape[1]}"
            )
        out: dict[str, Tensor] = {"integrated_lufs": loudness(x, fs)}
        power = _weighted_power(x, fs)  # K-weighted once for M and S
        window, hop = _frame_samples(fs, MOMENTARY_S, 0.1)
        out["max_momentary_lufs"] = _lufs(_windowed_mean(power, window, hop)).amax(-1)
        window, hop = _frame_samples(fs, SHORT_TERM_S, 0.1)
        if x.shape[-1] >= window:
            st = _lufs(_windowed_mean(power, window, hop))
            out["max_short_term_lufs"] = st.amax(-1)
            out["loudness_range_lu"] = _lra(st)
        out = {k: v.to(x.dtype) for k, v in out.items()}
        out["peak_dbfs"] = peak_dbfs(x)
        out["rms_dbfs"] = rms_dbfs(x)
        out["crest_factor_db"] = crest_factor_db(x)
        out["spectral_centroid_hz"] = spectral_centroid(x, fs)
        if x.shape[1] == 2:
            out["stereo_width"] = stereo_width(x)
            out["side_to_mid_db"] = side_to_mid_db(x)
            out["lr_balance_db"] = lr_balance_db(x)
            out["lr_correlation"] = lr_correlation(x)
    return out
