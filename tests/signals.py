"""Deterministic test signals: noise and a music-like multi-instrument mix (float64 numpy)."""

from __future__ import annotations

import numpy as np


def noise(sample_rate: int, seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    """White Gaussian noise ``(channels, samples)`` at about −15 dBFS RMS."""
    rng = np.random.default_rng(seed)
    return 0.18 * rng.standard_normal((channels, round(sample_rate * seconds)))


def music(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A stereo music-like mix ``(2, samples)``: kick, hats, bass line and a chord pad.

    Notes have attack/decay envelopes and harmonics, so the signal has the crest factor,
    spectral tilt and level changes of music (unlike stationary noise).
    """
    rng = np.random.default_rng(seed)
    n = round(sample_rate * seconds)
    t = np.arange(n) / sample_rate
    out = np.zeros((2, n))
    beat = 60.0 / 120.0
    for k in range(int(seconds / beat) + 1):
        start = int(k * beat * sample_rate)
        if start >= n:
            break
        seg = np.arange(n - start) / sample_rate
        # kick: pitch sweep 120 → 45 Hz, fast decay
        phase = 2 * np.pi * (45 * seg + 75 * 0.03 * (1 - np.exp(-seg / 0.03)))
        kick = np.sin(phase) * np.exp(-seg / 0.12)
        out[:, start:] += 0.6 * kick
        # hat on the off-beat: high-passed noise burst
        hstart = start + int(beat / 2 * sample_rate)
        if hstart < n:
            m = min(n - hstart, int(0.08 * sample_rate))
            burst = np.diff(rng.standard_normal(m + 1)) * np.exp(
                -np.arange(m) / (0.015 * sample_rate)
            )
            out[0, hstart : hstart + m] += 0.12 * burst
            out[1, hstart : hstart + m] += 0.08 * burst
    # bass line and pad
    roots = [55.0, 55.0 * 2 ** (3 / 12), 55.0 * 2 ** (7 / 12), 55.0 * 2 ** (5 / 12)]
    for k in range(int(seconds / (2 * beat)) + 1):
        start = int(k * 2 * beat * sample_rate)
        if start >= n:
            break
        f0 = roots[k % 4]
        seg = t[start:] - t[start]
        env = np.exp(-seg / 0.6) * (1 - np.exp(-seg / 0.005))
        bass = sum(np.sin(2 * np.pi * f0 * h * seg) / h**1.5 for h in range(1, 6))
        out[:, start:] += 0.35 * env * bass
        for j, ratio in enumerate((4.0, 4.0 * 2 ** (4 / 12), 4.0 * 2 ** (7 / 12))):
            pad = sum(np.sin(2 * np.pi * f0 * ratio * h * seg + j) / h**2 for h in range(1, 8))
            pan = (0.3 + 0.2 * j, 0.7 - 0.2 * j)
            out[0, start:] += 0.06 * pan[0] * env * pad
            out[1, start:] += 0.06 * pan[1] * env * pad
    return out
