"""fxdsp.analysis against independent references.

* Loudness range: the synthetic signals of EBU Tech 3342 (cases 1–4), generated here from the
  spec's description, with the spec's expected values and tolerance (±1 LU), and pyloudnorm's
  port of the Tech 3342 reference code.
* Momentary / short-term loudness: EBU Tech 3341 cases 1, 2 (steady sines), 9 (short-term
  constant after 3 s), 12 (momentary constant after 1 s) and case 11/14-style bursts at
  successive levels, tolerance ±0.1 LU as in the spec; pyloudnorm's block values.
* Band spectra: sines and white noise against closed forms, and against scipy.signal.welch.
* Levels and stereo image: closed forms (sine, square, mono, side only, panned); the FX
  normalizer's measures, which this module is to replace, give identical numbers.
* Batch item i equals item i alone; silence is finite (−inf only for loudness) and never NaN;
  shape, dtype and device kept; bad input raises a ValueError that names the problem.

Signal levels in "dBFS" follow the EBU test signals: a sine of peak amplitude ``10^(dBFS/20)``
in each channel (a stereo 1 kHz sine at −23 dBFS reads −23 LUFS).
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm as pyln
import pytest
import scipy.signal as ss
import torch
from signals import music, noise
from torch import Tensor

from fxdsp import analysis as A
from fxdsp.functional.loudness import loudness
from fxdsp.functional.stereo import pan

SR = 48000  # the EBU test signals' rate


def tones(
    levels_dbfs: list[float], seconds: list[float], sr: int = SR, f: float = 1000.0
) -> Tensor:
    """Stereo (in-phase) 1 kHz sine, ``(1, 2, T)`` float64, level changing per segment.

    The phase runs on through the level changes (one sine, a piecewise-constant amplitude);
    a level of ``-inf`` is silence.
    """
    counts = torch.tensor([round(s * sr) for s in seconds])
    amp = torch.tensor([10.0 ** (lv / 20.0) for lv in levels_dbfs], dtype=torch.float64)
    amp = amp.repeat_interleave(counts)
    t = torch.arange(amp.shape[0], dtype=torch.float64) / sr
    x = amp * torch.sin(2 * math.pi * f * t)
    return x.expand(1, 2, -1).contiguous()


# ------------------------------------------------------------------------------------------------
# Loudness range (EBU Tech 3342)
# ------------------------------------------------------------------------------------------------
TECH3342 = {
    # case: (levels dBFS, durations s, expected LRA LU)
    1: ([-20.0, -30.0], [20.0, 20.0], 10.0),
    2: ([-20.0, -15.0], [20.0, 20.0], 5.0),
    3: ([-40.0, -20.0], [20.0, 20.0], 20.0),
    4: ([-50.0, -35.0, -20.0, -35.0, -50.0], [20.0] * 5, 15.0),
}


@pytest.mark.parametrize("case", sorted(TECH3342))
def test_lra_tech3342_cases(case: int) -> None:
    # Generated at 16 kHz rather than the EBU files' 48 kHz, to keep the test fast: a 1 kHz
    # tone's level steps, hence the LRA, do not depend on the rate.
    levels, durations, expected = TECH3342[case]
    lra = float(A.loudness_range(tones(levels, durations, sr=16000), 16000)[0])
    assert abs(lra - expected) <= 1.0  # the spec's tolerance
    assert abs(lra - expected) < 0.05  # what this implementation achieves (regression guard)


def test_lra_matches_pyloudnorm_tech3342_port() -> None:
    # pyloudnorm: 3 s blocks every 90 ms, 1.5 s of silence appended, >= gates, np.percentile.
    sr = 44100
    x = music(sr, 10.5, seed=1) * np.linspace(0.2, 1.0, round(10.5 * sr))  # a crescendo
    ref = pyln.Meter(sr, filter_class="DeMan").loudness_range(x.T.copy())
    padded = np.concatenate([x, np.zeros((2, round(1.5 * sr)))], axis=1)
    ours = float(A.loudness_range(torch.from_numpy(padded)[None], sr, hop_s=0.09)[0])
    assert ref > 5.0  # a real range, not a trivial 0
    assert abs(ours - ref) < 0.01


def test_lra_silence_and_steady_tone() -> None:
    x = torch.cat([tones([-23.0], [4.0]), torch.zeros(1, 2, 4 * SR, dtype=torch.float64)])
    lra = A.loudness_range(x, SR)
    assert lra.tolist() == pytest.approx([0.0, 0.0], abs=1e-9)


# ------------------------------------------------------------------------------------------------
# Momentary and short-term loudness (EBU Tech 3341)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [-23.0, -33.0])
def test_tech3341_cases_1_2_steady_sine(level: float) -> None:
    # Cases 1 and 2: M, S, I = level ± 0.1 LUFS (20 s in the spec; 4 s suffice for a steady tone).
    x = tones([level], [4.0])
    m = A.momentary_loudness(x, SR)
    s = A.short_term_loudness(x, SR)
    assert m.shape == (1, 37) and s.shape == (1, 11)
    assert (m - level).abs().max() < 0.1
    assert (s - level).abs().max() < 0.1
    assert abs(float(loudness(x, SR)[0]) - level) < 0.1


def test_tech3341_case_9_short_term_constant_after_3s() -> None:
    # Case 9: 1.34 s at -20 dBFS and 1.66 s at -30 dBFS, repeated (20 times in the spec);
    # S = -23.0 ± 0.1 LUFS, constant after 3 s. Every reading we make has a full 3 s window.
    x = tones([-20.0, -30.0] * 5, [1.34, 1.66] * 5)
    s = A.short_term_loudness(x, SR)
    assert s.shape[-1] == 121
    assert (s + 23.0).abs().max() < 0.1


def test_tech3341_case_12_momentary_constant_after_1s() -> None:
    # Case 12: 0.18 s at -20 dBFS and 0.22 s at -30 dBFS, repeated 20 times (8 s);
    # M = -23.0 ± 0.1 LUFS, constant after 1 s (finer hop than the spec's 10 Hz minimum).
    x = tones([-20.0, -30.0] * 20, [0.18, 0.22] * 20)
    m = A.momentary_loudness(x, SR, hop_s=0.01)
    assert (m[:, 60:] + 23.0).abs().max() < 0.1  # readings ending at >= 1 s
    assert (m + 23.0).abs().max() < 0.1  # in fact from the first full window on


@pytest.mark.parametrize(("window", "hop"), [("momentary", 0.005), ("short_term", 0.05)])
def test_tech3341_cases_11_14_style_burst_maxima(window: str, hop: float) -> None:
    # Cases 11/14 style: 20 bursts of one window length at -38, -37, ..., -19 dBFS, at offsets
    # off the hop grid, separated by silence; the maximum reading per burst is its level ± 0.1.
    w = 0.4 if window == "momentary" else 3.0
    levels = [-38.0 + k for k in range(20)] if window == "momentary" else [-38.0, -31.0, -19.0]
    gap = w + 0.05
    seq_levels, seq_secs = [], []
    for k, lv in enumerate(levels):
        seq_levels += [-np.inf, lv]
        seq_secs += [gap + 0.0123 * k, w]
    x = tones([*seq_levels, -np.inf], [*seq_secs, gap])
    fn = A.momentary_loudness if window == "momentary" else A.short_term_loudness
    curve = fn(x, SR, hop_s=hop)[0]
    times = A.frame_times(curve.shape[-1], SR, w, hop, at="end")
    ends = np.cumsum(seq_secs)[1::2]  # burst end times
    for lv, end in zip(levels, ends, strict=True):
        near = (times > end - 0.5 * w) & (times < end + 0.5 * w)
        assert abs(float(curve[near].max()) - lv) < 0.1


def test_momentary_and_short_term_match_pyloudnorm_blocks() -> None:
    sr = 44100
    x = music(sr, 6.0, seed=2)
    meter = pyln.Meter(sr, filter_class="DeMan")  # exact K-weighting
    meter.integrated_loudness(x.T.copy())
    ref_m = np.array(meter.blockwise_loudness)
    ours_m = A.momentary_loudness(torch.from_numpy(x)[None], sr)[0].numpy()
    assert ours_m.shape == ref_m.shape
    np.testing.assert_allclose(ours_m, ref_m, atol=1e-3)
    # Short-term: pyloudnorm with 3 s blocks every 100 ms (the same windows).
    meter = pyln.Meter(sr, filter_class="DeMan", block_size=3.0, overlap=1.0 - 0.1 / 3.0)
    meter.integrated_loudness(x.T.copy())
    ref_s = np.array(meter.blockwise_loudness)
    ours_s = A.short_term_loudness(torch.from_numpy(x)[None], sr)[0].numpy()
    assert ours_s.shape == ref_s.shape
    np.testing.assert_allclose(ours_s, ref_s, atol=1e-3)


def test_loudness_curve_window_not_multiple_of_hop_and_float32() -> None:
    sr = 44100
    x = torch.from_numpy(music(sr, 4.0, seed=4))[None]
    a = A.loudness_over_time(x, sr, 0.4, hop_s=0.07)  # 17640 % 3087 != 0: pooled windows
    c = A.loudness_over_time(x, sr, 0.4, hop_s=0.01)  # 17640 = 40 × 441: chunk sums
    np.testing.assert_allclose(a[0].numpy(), c[0, ::7].numpy(), atol=1e-9)
    x32 = A.momentary_loudness(x.float(), sr)
    assert x32.dtype == torch.float32
    assert (x32.double() - A.momentary_loudness(x, sr)).abs().max() < 1e-3


def test_frame_times() -> None:
    t = A.frame_times(3, 48000, 0.4, 0.1)
    assert t.tolist() == pytest.approx([0.4, 0.5, 0.6])
    assert A.frame_times(2, 48000, 3.0, 0.1, at="centre").tolist() == pytest.approx([1.5, 1.6])


# ------------------------------------------------------------------------------------------------
# Spectra
# ------------------------------------------------------------------------------------------------
def test_welch_psd_matches_scipy() -> None:
    sr = 44100
    x = music(sr, 1.5, seed=5)
    for n_fft, hop in ((4096, None), (1024, 256), (1001, 300)):  # odd: no Nyquist bin
        f, p = A.welch_psd(torch.from_numpy(x)[None], sr, n_fft=n_fft, hop=hop)
        noverlap = n_fft // 2 if hop is None else n_fft - hop
        rf, rp = ss.welch(x, sr, nperseg=n_fft, noverlap=noverlap, detrend=False)
        np.testing.assert_allclose(f.numpy(), rf, rtol=1e-12)
        np.testing.assert_allclose(p[0].numpy(), rp, rtol=1e-9, atol=1e-12 * rp.max())


def _bands_from_scipy(x: np.ndarray, sr: int, bands: A.Bands, n_fft: int) -> np.ndarray:
    """Reference band levels: scipy's Welch PSD integrated over each band (bin spans split)."""
    f, p = ss.welch(x, sr, nperseg=n_fft, noverlap=n_fft // 2, detrend=False)
    df = f[1] - f[0]
    out = []
    for lo, hi in zip(bands.lower_hz.tolist(), bands.upper_hz.tolist(), strict=True):
        w = np.clip(np.minimum(f + df / 2, hi) - np.maximum(f - df / 2, lo), 0.0, None)
        out.append(10 * np.log10((p * w).sum(-1) + 1e-20))
    return np.stack(out, -1)


@pytest.mark.parametrize("kind", ["bark", "third_octave"])
def test_band_spectrum_matches_scipy_welch(kind: str) -> None:
    sr = 44100
    x = music(sr, 2.0, seed=6)
    spec = A.band_spectrum(torch.from_numpy(x)[None], sr, kind, n_fft=4096)
    bands = A.bark_bands(sr) if kind == "bark" else A.third_octave_bands(sr)
    ref = _bands_from_scipy(x, sr, bands, 4096)
    np.testing.assert_allclose(spec.levels_db[0].numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(spec.centre_hz.numpy(), bands.centre_hz.numpy())


def test_band_tables() -> None:
    bark = A.bark_bands(44100)
    assert len(bark.centre_hz) == 24
    assert bark.lower_hz[8] == 920.0 and bark.upper_hz[8] == 1080.0  # the 1 kHz band
    third = A.third_octave_bands(44100)
    assert len(third.centre_hz) == 31  # 20 Hz ... 20 kHz nominal
    np.testing.assert_allclose(third.centre_hz[17].item(), 1000.0)
    # IEC 61260: adjacent bands share edges; a third of an octave wide (base-ten ratio).
    np.testing.assert_allclose(third.upper_hz[:-1].numpy(), third.lower_hz[1:].numpy())
    np.testing.assert_allclose(
        (third.upper_hz[:-1] / third.lower_hz[:-1]).numpy(), 10**0.1, rtol=1e-12
    )
    assert float(third.upper_hz[-1]) == 22050.0  # clipped to Nyquist
    assert len(A.bark_bands(16000).centre_hz) == 21  # only bands below 8 kHz
    octaves = A.fractional_octave_bands(48000, 1)
    assert octaves.centre_hz.round().tolist() == [
        16.0, 32.0, 63.0, 126.0, 251.0, 501.0, 1000.0, 1995.0, 3981.0, 7943.0, 15849.0,
    ]  # fmt: skip
    sixth = A.fractional_octave_bands(48000, 6)  # even b: centres between the thirds' centres
    assert float(sixth.centre_hz[sixth.centre_hz > 1000][0]) == pytest.approx(
        1000 * 10 ** (0.3 / 12)
    )


@pytest.mark.parametrize(("f", "kind"), [(1000.0, "bark"), (100.0, "third_octave"),
                                         (4000.0, "third_octave")])  # fmt: skip
def test_band_spectrum_of_a_sine(f: float, kind: str) -> None:
    sr = 44100
    amp = 0.5
    t = np.arange(sr) / sr
    x = torch.from_numpy(amp * np.sin(2 * np.pi * f * t))[None, None]
    spec = A.band_spectrum(x, sr, kind)
    idx = int(torch.argmin((spec.centre_hz - f).abs()))
    expected = 20 * math.log10(amp) - 10 * math.log10(2)  # A²/2
    assert abs(float(spec.levels_db[0, 0, idx]) - expected) < 0.01
    others = torch.cat([spec.levels_db[0, 0, : idx - 1], spec.levels_db[0, 0, idx + 2 :]])
    assert float(others.max()) < expected - 50.0  # Hann leakage stays within the neighbours


@pytest.mark.parametrize("kind", ["bark", "third_octave"])
def test_band_spectrum_of_white_noise(kind: str) -> None:
    sr = 44100
    sigma = 0.1
    x = torch.from_numpy(sigma * np.random.default_rng(7).standard_normal((4, 2, 3 * sr)))
    spec = A.band_spectrum(x, sr, kind, mode="mean")
    width = spec.upper_hz - spec.lower_hz
    expected = 10 * torch.log10(sigma**2 * width / (sr / 2))  # flat PSD 2σ²/fs
    err = (spec.levels_db[:, 0] - expected)[:, spec.lower_hz >= 100.0]
    assert float(err.mean().abs()) < 0.05  # no bias
    assert float(err.abs().max()) < 1.0  # estimation noise of a few bins × frames


def test_band_spectrum_modes() -> None:
    sr = 44100
    mono = torch.from_numpy(music(sr, 1.0, seed=8)[:1]).expand(2, 2, -1).contiguous()
    ms = A.band_spectrum(mono, sr, "bark", mode="mid_side").levels_db
    ch = A.band_spectrum(mono, sr, "bark", mode="channels").levels_db
    assert ms.shape == ch.shape == (2, 2, 24)
    torch.testing.assert_close(ms[:, 0], ch[:, 0])  # M = L when L = R
    assert float(ms[:, 1].max()) == pytest.approx(-200.0)  # no side: the silence floor
    assert A.band_spectrum(mono, sr, "bark", mode="mean").levels_db.shape == (2, 1, 24)


def test_spectral_centroid() -> None:
    sr = 44100
    t = np.arange(sr) / sr
    freqs = [440.0, 1000.0, 5000.0]
    x = torch.from_numpy(np.stack([np.sin(2 * np.pi * f * t) for f in freqs]))[:, None]
    c = A.spectral_centroid(x, sr)
    np.testing.assert_allclose(c.numpy(), freqs, rtol=1e-4)
    two = torch.from_numpy(np.sin(2 * np.pi * 500 * t) + np.sin(2 * np.pi * 3000 * t))[None, None]
    assert float(A.spectral_centroid(two, sr)[0]) == pytest.approx(1750.0, rel=1e-3)
    white = torch.from_numpy(noise(sr, 2.0))[None]
    assert float(A.spectral_centroid(white, sr)[0]) == pytest.approx(sr / 4, rel=0.01)


def test_average_magnitude_spectrum_matches_numpy() -> None:
    """Mean |rfft| of Hann-windowed frames (hop n/4, no centre padding), written in numpy."""
    x = music(44100, 2.0, seed=9)
    n, hop = 4096, 1024
    mid = x.mean(0)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic Hann
    frames = [mid[i : i + n] * window for i in range(0, len(mid) - n + 1, hop)]
    ref = np.mean([np.abs(np.fft.rfft(f)) for f in frames], axis=0)
    got = A.average_magnitude_spectrum(torch.from_numpy(x)[None], n_fft=n)[0, 0].numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10 * ref.max())


# ------------------------------------------------------------------------------------------------
# Levels, dynamics, stereo image
# ------------------------------------------------------------------------------------------------
def test_levels_of_sine_and_square() -> None:
    sr = 48000
    t = np.arange(sr) / sr
    sine = np.sin(2 * np.pi * 1000 * t)  # hits ±1 exactly (48 samples a period)
    square = np.sign(np.sin(2 * np.pi * 1000 * t + 0.1))
    x = torch.from_numpy(np.stack([sine, 0.5 * square]))[:, None]
    np.testing.assert_allclose(A.crest_factor_db(x).numpy(), [10 * math.log10(2), 0.0], atol=1e-9)
    np.testing.assert_allclose(
        A.rms_dbfs(x).numpy(), [-10 * math.log10(2), 20 * math.log10(0.5)], atol=1e-9
    )
    np.testing.assert_allclose(A.peak_dbfs(x).numpy(), [0.0, 20 * math.log10(0.5)], atol=1e-9)


def test_stereo_closed_forms() -> None:
    s = torch.from_numpy(noise(44100, 1.0, channels=1, seed=10))  # (1, T)
    r = torch.from_numpy(noise(44100, 1.0, channels=1, seed=11))
    theta = 0.3
    x = torch.stack(
        [
            torch.cat([s, s]),  # mono
            torch.cat([s, -s]),  # side only
            torch.cat([s, 0 * s]),  # left only
            torch.cat([math.cos(theta) * s, math.sin(theta) * s]),  # panned, constant power
            torch.cat([s, r]),  # uncorrelated, equal level
        ]
    )
    width = A.stereo_width(x).numpy()
    np.testing.assert_allclose(
        width[:4], [0.0, 1.0, 0.5, (1 - math.sin(2 * theta)) / 2], atol=1e-12
    )
    assert abs(width[4] - 0.5) < 0.01
    np.testing.assert_allclose(A.mid_fraction(x).numpy()[:2], [1.0, 0.0], atol=1e-12)
    bal = A.lr_balance_db(x).numpy()
    assert bal[0] == pytest.approx(0.0, abs=1e-9) and bal[1] == pytest.approx(0.0, abs=1e-9)
    assert bal[2] < -200.0 and np.isfinite(bal[2])
    assert bal[3] == pytest.approx(20 * math.log10(math.tan(theta)), abs=1e-9)
    corr = A.lr_correlation(x).numpy()
    np.testing.assert_allclose(corr[:4], [1.0, -1.0, 0.0, 1.0], atol=1e-9)
    assert abs(corr[4]) < 0.01
    s2m = A.side_to_mid_db(x).numpy()
    assert s2m[2] == pytest.approx(0.0, abs=1e-9) and abs(s2m[4]) < 0.1
    assert s2m[0] < -200.0 and s2m[1] > 200.0


def test_balance_of_fxdsp_pan() -> None:
    s = torch.from_numpy(noise(44100, 0.5, channels=1, seed=12))[None].expand(3, 2, -1)
    position = torch.tensor([-0.5, 0.0, 0.5], dtype=torch.float64)
    bal = A.lr_balance_db(pan(s, position))
    p = (position + 1) / 2  # constant power: gL = sin((1 - p)π/2), gR = sin(pπ/2)
    expected = 20 * torch.log10(torch.sin(p * math.pi / 2) / torch.sin((1 - p) * math.pi / 2))
    torch.testing.assert_close(bal, expected, atol=1e-9, rtol=0)


# ------------------------------------------------------------------------------------------------
# measure(), batches, silence, dtype/device, bad input
# ------------------------------------------------------------------------------------------------
STEREO_KEYS = {"stereo_width", "side_to_mid_db", "lr_balance_db", "lr_correlation"}


def test_measure_keys_and_values() -> None:
    x = tones([-23.0], [3.5])
    m = A.measure(x, SR)
    assert set(m) == {
        "integrated_lufs",
        "max_momentary_lufs",
        "max_short_term_lufs",
        "loudness_range_lu",
        "peak_dbfs",
        "rms_dbfs",
        "crest_factor_db",
        "spectral_centroid_hz",
        *STEREO_KEYS,
    }
    assert all(v.shape == (1,) and not v.requires_grad for v in m.values())
    assert float(m["integrated_lufs"][0]) == pytest.approx(-23.0, abs=0.1)
    assert float(m["max_short_term_lufs"][0]) == pytest.approx(-23.0, abs=0.1)
    assert float(m["crest_factor_db"][0]) == pytest.approx(3.0103, abs=1e-3)
    assert float(m["spectral_centroid_hz"][0]) == pytest.approx(1000.0, rel=1e-4)
    short_mono = A.measure(x[:, :1, :SR], SR)  # 1 s mono: no short-term, no stereo keys
    assert not ({"max_short_term_lufs", "loudness_range_lu"} | STEREO_KEYS) & set(short_mono)


def test_batch_item_equals_item_alone() -> None:
    sr = 16000
    x = torch.from_numpy(
        np.stack(
            [music(sr, 3.2, seed=15), 0.3 * noise(sr, 3.2, seed=16), np.zeros((2, round(3.2 * sr)))]
        )
    )
    batch = {
        "m": A.momentary_loudness(x, sr),
        "lra": A.loudness_range(x, sr),
        "bands": A.band_spectrum(x, sr, "third_octave").levels_db,
        "centroid": A.spectral_centroid(x, sr),
        **A.measure(x, sr),
    }
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        alone = {
            "m": A.momentary_loudness(xi, sr),
            "lra": A.loudness_range(xi, sr),
            "bands": A.band_spectrum(xi, sr, "third_octave").levels_db,
            "centroid": A.spectral_centroid(xi, sr),
            **A.measure(xi, sr),
        }
        for key, value in alone.items():
            torch.testing.assert_close(batch[key][i : i + 1], value, rtol=1e-10, atol=1e-10)


def test_silence_is_finite_and_never_nan() -> None:
    sr = 44100
    x = torch.zeros(2, 2, round(3.2 * sr), dtype=torch.float64)
    x[1, :, :sr] = torch.from_numpy(noise(sr, 1.0))  # noise, then digital silence
    m = A.measure(x, sr)
    for key, value in m.items():
        assert not torch.isnan(value).any(), key
        if key not in ("integrated_lufs", "max_momentary_lufs", "max_short_term_lufs"):
            assert torch.isfinite(value).all(), key
    assert float(m["integrated_lufs"][0]) == -math.inf  # BS.1770: no block above the gate
    assert float(m["max_momentary_lufs"][0]) == -math.inf
    assert float(m["loudness_range_lu"][0]) == 0.0
    assert float(m["crest_factor_db"][0]) == 0.0 and float(m["rms_dbfs"][0]) == -200.0
    mom = A.momentary_loudness(x, sr)
    assert torch.isinf(mom[1, -1]) and torch.isfinite(mom[1, 0])  # silent windows: -inf
    bands = A.band_spectrum(x, sr).levels_db
    assert torch.isfinite(bands).all() and float(bands[0].max()) == -200.0
    assert torch.isfinite(A.welch_psd(x, sr)[1]).all()


def test_gradients_are_finite_on_audio_and_silence() -> None:
    sr = 8000
    x = torch.from_numpy(noise(sr, 0.6, seed=17))[None].repeat(2, 1, 1)
    x[1] = 0.0
    x.requires_grad_(True)
    total = (
        A.band_spectrum(x, sr, "bark", n_fft=512).levels_db.sum()
        + A.rms_dbfs(x).sum()
        + A.crest_factor_db(x).sum()
        + A.stereo_width(x).sum()
        + A.lr_balance_db(x).sum()
        + A.spectral_centroid(x, sr, n_fft=512).sum()
        + A.momentary_loudness(x[:1], sr).sum()
    )
    total.backward()
    assert torch.isfinite(x.grad).all() and float(x.grad[0].abs().sum()) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device(device: torch.device, dtype: torch.dtype) -> None:
    sr = 16000
    x = torch.from_numpy(music(sr, 3.2, seed=18)).to(device=device, dtype=dtype)[None]
    x = x.expand(3, 2, -1).contiguous()
    outs = {
        "momentary": (A.momentary_loudness(x, sr), (3, 29)),
        "short_term": (A.short_term_loudness(x, sr), (3, 3)),
        "lra": (A.loudness_range(x, sr), (3,)),
        "psd": (A.welch_psd(x, sr, n_fft=1024, mode="mid_side")[1], (3, 2, 513)),
        "bands": (A.band_spectrum(x, sr, "third_octave").levels_db, (3, 2, 27)),
        "mag": (A.average_magnitude_spectrum(x, 512), (3, 1, 257)),
        "centroid": (A.spectral_centroid(x, sr), (3,)),
        "width": (A.stereo_width(x), (3,)),
        "crest": (A.crest_factor_db(x), (3,)),
    }
    for name, (value, shape) in outs.items():
        assert value.shape == shape, name
        assert value.dtype == dtype and value.device.type == device.type, name
        assert torch.isfinite(value).all(), name
    for value in A.measure(x, sr).values():
        assert value.dtype == dtype and value.device.type == device.type and value.shape == (3,)
    if device.type != "cpu":
        cpu = A.measure(x.cpu(), sr)
        for key, value in A.measure(x, sr).items():
            torch.testing.assert_close(value.cpu(), cpu[key], atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: A.momentary_loudness(torch.zeros(2, 100), SR), "shape"),
        (lambda: A.rms_dbfs(torch.zeros(1, 2, 10, dtype=torch.int32)), "floating"),
        (lambda: A.short_term_loudness(torch.zeros(1, 2, SR), SR), "3 s loudness window"),
        (lambda: A.momentary_loudness(torch.zeros(1, 2, SR), SR, hop_s=0.0), "hop_s"),
        (lambda: A.momentary_loudness(torch.zeros(1, 6, SR), SR), "5 channels"),
        (lambda: A.momentary_loudness(torch.zeros(1, 2, SR), -1), "sample_rate"),
        (lambda: A.stereo_width(torch.zeros(1, 1, 10)), "2 channel"),
        (lambda: A.band_spectrum(torch.zeros(1, 1, 1000), SR, mode="mid_side"), "stereo"),
        (lambda: A.band_spectrum(torch.zeros(1, 2, 1000), SR, bands="mel"), "bands"),
        (lambda: A.band_spectrum(torch.zeros(1, 2, 1000), SR, mode="left"), "mode"),
        (lambda: A.welch_psd(torch.zeros(1, 2, 1000), SR, n_fft=8), "n_fft"),
        (lambda: A.welch_psd(torch.zeros(1, 2, 8), SR), "16 samples"),
        (lambda: A.crest_factor_db(torch.full((1, 2, 10), math.nan)), "non-finite"),
        (lambda: A.fractional_octave_bands(SR, 0), "fraction"),
        (lambda: A.bark_bands(20.0), "Nyquist"),
        (lambda: A.frame_times(3, SR, 0.4, at="middle"), "at must"),
    ],
)
def test_bad_input_raises_value_error(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
