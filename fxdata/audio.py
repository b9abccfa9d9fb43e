"""Audio file reading for datasets: decode, upmix, resample, and measure level.

Every reader here is defensive: an unreadable, empty, mono, multichannel or odd-rate file gets a
``warnings.warn`` naming the file and is handled (upmixed, resampled) or skipped (``None``), so a
dataset never crashes halfway through an epoch.

Resampling uses a Kaiser-windowed sinc polyphase filter written here (no torchaudio): for a
rational ratio ``L/M`` (``L = sr_out/g``, ``M = sr_in/g``, ``g = gcd``) output sample ``n`` sits at
input position ``t = n M / L`` and is ``y[n] = sum_k x[floor(t) + k] h(t - floor(t) - k)`` with
``h(u) = c sinc(c u) w(u)``, ``c = rolloff * min(1, L/M)`` and ``w`` a Kaiser window of half width
``taps`` input samples (Smith, "Digital Audio Resampling", ccrma.stanford.edu/~jos/resample).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "load_audio",
    "resample",
    "rms_dbfs",
    "to_stereo",
]

DEFAULT_SAMPLE_RATE = 44100
_EPS = 1e-12


def rms_dbfs(x: np.ndarray, axis: int | Sequence[int] | None = None) -> np.ndarray:
    """Root mean square level in dB relative to full scale: ``10 log10(mean(x^2) + eps)``.

    Args:
        x: audio, float, any shape (full scale is 1.0).
        axis: axes to average over (default: all).

    Returns:
        The level in dBFS (about -120 dBFS for digital silence, never NaN or -inf).
    """
    x64 = np.asarray(x, dtype=np.float64)
    return 10.0 * np.log10(np.mean(np.square(x64), axis=axis) + _EPS)


def to_stereo(x: np.ndarray) -> np.ndarray:
    """Make ``(channels, samples)`` audio stereo: mono is duplicated, more than 2 keep the first 2.

    Args:
        x: audio of shape ``(channels, samples)``.

    Returns:
        Audio of shape ``(2, samples)``, same dtype.
    """
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"expected audio of shape (channels, samples), got {x.shape}")
    if x.shape[0] == 1:
        return np.concatenate([x, x], axis=0)
    return x[:2]


def _kaiser_sinc_table(up: int, down: int, taps: int, rolloff: float, beta: float) -> np.ndarray:
    """Filter table ``(up, 2 * taps)``: row ``p`` holds the taps for fractional phase ``p / up``."""
    cutoff = rolloff * min(1.0, up / down)
    k = np.arange(-taps + 1, taps + 1, dtype=np.float64)  # input offsets relative to floor(t)
    phase = np.arange(up, dtype=np.float64)[:, None] / up
    u = phase - k[None, :]  # distance from the output instant to each input sample
    window = np.i0(beta * np.sqrt(np.clip(1.0 - (u / taps) ** 2, 0.0, None))) / np.i0(beta)
    return (cutoff * np.sinc(cutoff * u) * window).astype(np.float64)


def resample(
    x: np.ndarray,
    sr_in: int,
    sr_out: int,
    *,
    taps: int = 32,
    rolloff: float = 0.95,
    beta: float = 8.6,
    block: int = 1 << 15,
) -> np.ndarray:
    """Resample audio from ``sr_in`` to ``sr_out`` Hz with a windowed-sinc polyphase filter.

    ``y[n] = sum_k x[floor(n M / L) + k] h(n M / L - floor(n M / L) - k)`` (see the module
    docstring); the passband reaches ``rolloff`` times the lower Nyquist frequency, the stopband
    is attenuated by about 80 dB (Kaiser beta 8.6).

    Args:
        x: audio of shape ``(channels, samples)``, any float dtype.
        sr_in: input sample rate in Hz.
        sr_out: output sample rate in Hz.
        taps: half length of the filter in input samples (at the lower of the two rates).
        rolloff: passband edge as a fraction of the lower Nyquist frequency, in (0, 1].
        beta: Kaiser window parameter.
        block: output samples computed per vectorized block (bounds memory).

    Returns:
        Float32 audio of shape ``(channels, ceil(samples * sr_out / sr_in))``.
    """
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} and {sr_out}")
    if not 0.0 < rolloff <= 1.0:
        raise ValueError(f"rolloff must be in (0, 1], got {rolloff}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected audio of shape (channels, samples), got {x.shape}")
    if sr_in == sr_out:
        return x.copy()
    g = math.gcd(int(sr_in), int(sr_out))
    up, down = int(sr_out) // g, int(sr_in) // g
    # Widen the filter when downsampling so that it spans `taps` samples at the output rate.
    half = math.ceil(taps * max(1.0, down / up))
    table = _kaiser_sinc_table(up, down, half, rolloff, beta).astype(np.float32)
    n_in = x.shape[1]
    n_out = -(-n_in * up // down)
    padded = np.pad(x, ((0, 0), (half, half + 1)))
    offsets = np.arange(-half + 1, half + 1)
    out = np.empty((x.shape[0], n_out), dtype=np.float32)
    for start in range(0, n_out, block):  # blocks of outputs, each fully vectorized
        n = np.arange(start, min(start + block, n_out), dtype=np.int64)
        base = (n * down) // up
        phase = (n * down) % up
        idx = base[:, None] + offsets[None, :] + half  # (block, 2 * half) into `padded`
        out[:, n] = np.einsum("cbk,bk->cb", padded[:, idx], table[phase])
    return out


def load_audio(
    path: str | Path,
    sample_rate: int | None = DEFAULT_SAMPLE_RATE,
    *,
    stereo: bool = True,
) -> np.ndarray | None:
    """Decode an audio file to float32 ``(channels, samples)``, stereo and at ``sample_rate``.

    Problems are reported with ``warnings.warn`` naming the file, never raised: an unreadable or
    empty file returns ``None``; a mono file is upmixed to stereo; more than two channels keep
    the first two; another sample rate is resampled (:func:`resample`).

    Args:
        path: the file (anything libsndfile reads: wav, flac, ogg, ...).
        sample_rate: the wanted rate in Hz, or ``None`` to keep the file's rate.
        stereo: make the result stereo.

    Returns:
        Float32 audio of shape ``(2, samples)`` (or the file's channel count when ``stereo`` is
        false), or ``None`` when the file cannot be used.
    """
    import soundfile as sf

    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile raises several types for corrupt files
        warnings.warn(f"skipping unreadable audio file {path}: {err}", stacklevel=2)
        return None
    if data.shape[0] == 0 or data.shape[1] == 0:
        warnings.warn(f"skipping empty audio file {path} (no samples)", stacklevel=2)
        return None
    audio = np.ascontiguousarray(data.T)
    if not np.all(np.isfinite(audio)):
        warnings.warn(f"audio file {path} holds NaN or Inf samples: set to 0", stacklevel=2)
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    if stereo and audio.shape[0] != 2:
        what = "mono: upmixed" if audio.shape[0] == 1 else f"{audio.shape[0]} channels: kept 2"
        warnings.warn(f"audio file {path} is {what} to stereo", stacklevel=2)
        audio = to_stereo(audio)
    if sample_rate is not None and sr != sample_rate:
        warnings.warn(
            f"audio file {path} is at {sr} Hz: resampled to {sample_rate} Hz", stacklevel=2
        )
        audio = resample(audio, sr, sample_rate)
    return audio
