"""The naive match-EQ baseline and the transfer evaluation's measures, against independent
references (scipy filters, pyloudnorm, closed forms)."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import scipy.signal
import torch

from cloner.baselines import match_eq, match_eq_curve
from cloner.evaluation import FEATURES, bootstrap_mean, feature_errors
from tests.signals import music, noise

FS = 44100


def _third_octave_db(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Band levels in dB of the channel-mean Welch PSD (scipy), third-octave boxes."""
    f, p = scipy.signal.welch(x, FS, nperseg=8192)
    p = p.mean(0)
    lo, hi = centres * 2 ** (-1 / 6), centres * 2 ** (1 / 6)
    return np.array(
        [10 * np.log10(p[(f >= a) & (f < b)].mean()) for a, b in zip(lo, hi, strict=True)]
    )


def test_match_eq_copies_the_reference_spectrum_and_loudness() -> None:
    x = noise(FS, 4.0, seed=1)
    sos = scipy.signal.butter(2, [300, 3000], btype="bandpass", fs=FS, output="sos")
    r = 2.0 * scipy.signal.sosfilt(sos, noise(FS, 4.0, seed=2))
    y = match_eq(torch.from_numpy(x)[None], torch.from_numpy(r)[None], FS)[0].numpy()
    # Spectrum: within 1 dB of the reference in every third-octave band the EQ can reach
    # (at most 24 dB from the input), where the reference is 30 dB below the passband.
    centres = 1000.0 * 2.0 ** (np.arange(-10, 11) / 3)  # 100 Hz .. 10 kHz
    got, want, was = (_third_octave_db(a, centres) for a in (y, r, x))
    reachable = np.abs(want - was) < 23.0
    assert reachable.sum() >= 10
    assert np.max(np.abs(got - want)[reachable]) < 1.0
    # Out of reach: the cut is limited to 24 dB (smoothing aside).
    assert np.all(got[~reachable] - was[~reachable] > -26.0)
    meter = pyloudnorm.Meter(FS)
    assert meter.integrated_loudness(y.T) == pytest.approx(meter.integrated_loudness(r.T), abs=0.1)


def test_match_eq_with_a_same_spectrum_reference_is_a_gain() -> None:
    x = noise(FS, 3.0, seed=3)
    r = 0.25 * noise(FS, 3.0, seed=4)  # white too, 12 dB down
    y = match_eq(torch.from_numpy(x)[None], torch.from_numpy(r)[None], FS)[0].numpy()
    meter = pyloudnorm.Meter(FS)
    gain_db = meter.integrated_loudness(r.T) - meter.integrated_loudness(x.T)
    assert gain_db == pytest.approx(-12.0, abs=0.3)
    # y ≈ g · x: the residual after the least-squares gain is small (the EQ curve of two
    # white-noise estimates is flat within a fraction of a dB).
    g = float((y * x).sum() / (x * x).sum())
    assert 20 * np.log10(g) == pytest.approx(gain_db, abs=0.3)
    assert np.sqrt(np.mean((y - g * x) ** 2)) / np.sqrt(np.mean((g * x) ** 2)) < 0.1


def test_match_eq_silence_and_batches() -> None:
    r = torch.from_numpy(music(FS, 2.0, seed=5))[None].float()
    silent = match_eq(torch.zeros(1, 2, FS), r, FS)
    assert torch.equal(silent, torch.zeros(1, 2, FS))
    x = torch.from_numpy(music(FS, 2.0, seed=6))[None].float()
    flat = match_eq(x, torch.zeros(1, 2, FS), FS)  # silent reference: nothing to copy
    assert torch.allclose(flat, x, atol=1e-5)
    # A short input (under one loudness block) falls back to the RMS level.
    short = match_eq(x[..., :4000], r[..., :4000], FS)
    assert torch.isfinite(short).all()
    rms = lambda a: a.double().square().mean().sqrt()  # noqa: E731
    assert float(rms(short) / rms(r[..., :4000])) == pytest.approx(1.0, rel=1e-3)
    both = match_eq(torch.cat([x, r]), torch.cat([r, x]), FS)
    assert torch.allclose(both[:1], match_eq(x, r, FS), atol=1e-6)
    assert torch.allclose(both[1:], match_eq(r, x, FS), atol=1e-6)


def test_match_eq_curve_limits_and_errors() -> None:
    x = torch.from_numpy(noise(FS, 1.0, seed=7))[None]
    _, gain = match_eq_curve(x, 1000.0 * x, FS, max_gain_db=12.0)
    assert torch.allclose(20 * torch.log10(gain), torch.full_like(gain, 12.0))
    with pytest.raises(ValueError, match="items"):
        match_eq(x, torch.cat([x, x]), FS)
    with pytest.raises(ValueError, match="max_gain_db"):
        match_eq(x, x, FS, max_gain_db=0.0)
    with pytest.raises(ValueError):
        match_eq(x[0], x[0], FS)


def test_feature_errors_closed_forms() -> None:
    t = torch.from_numpy(music(FS, 2.0, seed=8))[None]
    zero = feature_errors(t, t, FS)
    assert set(zero) == set(FEATURES)
    for name, v in zero.items():
        assert float(v) == pytest.approx(0.0, abs=1e-9), name
    loud = feature_errors(t * 10 ** (6 / 20), t, FS)  # +6 dB: only levels move
    assert float(loud["loudness_lu"]) == pytest.approx(6.0, abs=1e-6)
    assert float(loud["bark_db"]) == pytest.approx(6.0, abs=1e-6)
    for name in ("centroid_oct", "crest_db", "width", "balance_db"):
        assert float(loud[name]) == pytest.approx(0.0, abs=1e-6), name
    left = t.clone()
    left[:, 1] *= 0.5  # right channel −6.02 dB: balance moves by 6.02 dB
    assert float(feature_errors(left, t, FS)["balance_db"]) == pytest.approx(
        20 * np.log10(2), abs=0.05
    )


def test_bootstrap_mean_and_paired_change() -> None:
    songs = np.repeat(np.arange(6), 3)
    values = np.repeat(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 3)
    s = bootstrap_mean(values, songs, n_boot=2000, seed=0)
    assert s["mean"] == pytest.approx(3.5)
    assert s["low"] < 3.5 < s["high"]
    assert 1.0 <= s["low"] and s["high"] <= 6.0
    # Every song 20 % below its baseline: the paired change is exactly −20 % in every resample.
    c = bootstrap_mean(0.8 * values, songs, baseline=values, n_boot=500, seed=1)
    assert c["change"] == pytest.approx(-0.2)
    assert c["change_low"] == pytest.approx(-0.2) and c["change_high"] == pytest.approx(-0.2)
    const = bootstrap_mean(np.full(18, 2.5), songs)
    assert const["low"] == const["high"] == pytest.approx(2.5)
    with pytest.raises(ValueError, match="one value per item"):
        bootstrap_mean(values, songs, baseline=values[:-1])
