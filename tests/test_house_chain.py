"""fxdata.house_chain: the third effects design for triplets. Each stage against a closed form
written here, a plain float64 loop or scipy; the reverb's decay measured (the checks every
design shares are in test_drawn_chain.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
from designs import noise, only

from fxdata.drawn_chain import DrawnChain
from fxdata.house_chain import (
    EQ_CENTRES_HZ,
    apply_house_chain,
    sample_house_params,
)

SR = 44100


def _only(effect: str | None, n: int = 1, seed: int = 0, **values: float) -> DrawnChain:
    return only(sample_house_params, effect, n, seed, **values)


def _sine(freq: float, seconds: float = 1.0, channels: tuple[float, float] = (1.0, 1.0)):
    t = torch.arange(round(seconds * SR), dtype=torch.float64) / SR
    s = 0.2 * torch.sin(2 * math.pi * freq * t)
    return torch.stack([channels[0] * s, channels[1] * s])[None].float()


def _mid_rms(x: torch.Tensor) -> float:
    """RMS of the middle half (away from the ends' transients)."""
    n = x.shape[-1]
    return float(x[..., n // 4 : 3 * n // 4].double().square().mean().sqrt())


def test_gain_and_pan_closed_forms() -> None:
    x = noise()
    y = apply_house_chain(x, _only("gain", gain_db=-6.0))
    torch.testing.assert_close(y, x * 10 ** (-6.0 / 20), rtol=1e-6, atol=1e-7)
    for p in (0.5, -0.3):  # −4.5 dB law, unity at the centre
        y = apply_house_chain(x, _only("pan", pan=p))
        torch.testing.assert_close(y[:, 0], x[:, 0] * (1 - p) ** 0.75, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(y[:, 1], x[:, 1] * (1 + p) ** 0.75, rtol=1e-6, atol=1e-7)
    edge = apply_house_chain(x, _only("pan", pan=1.0))  # hard right: left silent, +4.5 dB
    assert float(edge[:, 0].abs().max()) == 0.0
    assert float(edge[:, 1].square().sum() / x[:, 1].square().sum()) == pytest.approx(2**1.5)


def _curve_db(values: dict[str, float], f: float) -> float:
    """The EQ curve written out: tilt around 1 kHz plus one-octave cos² bumps."""
    total = values["tilt_db"] * math.log2(f / 1000.0)
    for k, centre in enumerate(EQ_CENTRES_HZ):
        d = abs(math.log2(f / centre))
        if d < 1.0:
            total += values[f"band{k}_db"] * values["depth_db"] * math.cos(0.5 * math.pi * d) ** 2
    return total


@pytest.mark.parametrize("seed", [0, 1])
def test_eq_gain_follows_the_drawn_curve(seed: int) -> None:
    params = _only("eq", seed=seed)
    values = {k: float(v[0]) for k, v in params.values.items()}
    for f in (45.0, 180.0, 700.0, 2500.0, 9000.0):
        y = apply_house_chain(_sine(f), params)
        measured = 20 * math.log10(_mid_rms(y) / _mid_rms(_sine(f)))
        assert measured == pytest.approx(_curve_db(values, f), abs=0.1), f
    # Zero phase: an impulse in the middle comes out symmetric about it.
    impulse = torch.zeros(1, 2, SR)
    impulse[..., SR // 2] = 1.0
    h = apply_house_chain(impulse, params)[0, 0].double()
    k = torch.arange(1, 8000)
    torch.testing.assert_close(
        h[SR // 2 + k], h[SR // 2 - k], rtol=0, atol=1e-6 * float(h.abs().max())
    )


def test_equal_bands_make_a_flat_curve() -> None:
    """Neighbouring cos² bumps one octave apart sum to one: equal bands are a flat gain."""
    bands = {f"band{k}_db": -1.0 for k in range(len(EQ_CENTRES_HZ))}
    params = _only("eq", **bands, depth_db=7.0, tilt_db=0.0)
    for f in (40.0, 333.0, 5000.0, 15000.0):
        y = apply_house_chain(_sine(f), params)
        assert 20 * math.log10(_mid_rms(y) / _mid_rms(_sine(f))) == pytest.approx(-7.0, abs=0.05)


def test_width_scales_the_side_by_band_and_keeps_the_mid() -> None:
    params = _only("width", width=1.6, bass_width=0.25, crossover_hz=200.0)
    for f, gain in ((50.0, 1.6 * 0.25), (200.0, 1.6 * (0.25 + 0.75 * 0.5)), (2000.0, 1.6)):
        x = _sine(f, channels=(1.0, 0.2))  # mid 0.6, side 0.4 of the sine
        y = apply_house_chain(x, params)
        mid, side = (y[:, 0] + y[:, 1]) / 2, (y[:, 0] - y[:, 1]) / 2
        x_mid, x_side = (x[:, 0] + x[:, 1]) / 2, (x[:, 0] - x[:, 1]) / 2
        assert _mid_rms(mid) / _mid_rms(x_mid) == pytest.approx(1.0, abs=1e-3), f
        assert _mid_rms(side) / _mid_rms(x_side) == pytest.approx(gain, rel=2e-3), f


def _static_db(level: float, threshold: float, ratio: float, knee: float) -> float:
    """Giannoulis, Massberg & Reiss' soft-knee static curve, as a gain change in dB."""
    over = level - threshold
    if 2 * over < -knee:
        return 0.0
    if 2 * over > knee:
        return (1 / ratio - 1) * over
    return (1 / ratio - 1) * (over + knee / 2) ** 2 / (2 * knee)


@pytest.mark.parametrize("level_db", [-50.0, -33.0, -28.0, -10.0])
def test_compressor_static_curve_on_a_constant_signal(level_db: float) -> None:
    """A constant input is at one level everywhere (the window's ends included)."""
    threshold, ratio, knee, makeup = -30.0, 4.0, 6.0, 2.5
    params = _only("compressor", threshold_db=threshold, ratio=ratio, knee_db=knee,
                   makeup_db=makeup, window_ms=20.0)  # fmt: skip
    amplitude = 10 ** (level_db / 20)  # the power of the mean of the two channels
    x = torch.full((1, 2, SR // 4), amplitude)
    y = apply_house_chain(x, params)
    want = _static_db(level_db, threshold, ratio, knee) + makeup
    measured = 20 * torch.log10(y / amplitude)
    torch.testing.assert_close(measured, torch.full_like(measured, want), rtol=0, atol=1e-3)


def test_compressor_against_a_float64_loop() -> None:
    """The windowed level, the static curve and the smoothed gain, written as plain loops."""
    from fxdata.house_chain import _compress

    threshold, ratio, knee, makeup, window = -25.0, 3.0, 4.0, 1.0, 7
    n = 300
    gen = torch.Generator().manual_seed(5)
    x = (torch.randn(1, 2, n, generator=gen, dtype=torch.float64)
         * torch.linspace(0.01, 1.0, n, dtype=torch.float64))  # fmt: skip
    v = {"threshold_db": torch.tensor([threshold]), "ratio": torch.tensor([ratio]),
         "knee_db": torch.tensor([knee]), "makeup_db": torch.tensor([makeup]),
         "window_ms": torch.tensor([window / SR * 1e3])}  # fmt: skip
    y = _compress(x, v, float(SR))[0].numpy()
    xs = x[0].numpy()
    power = ((xs[0] + xs[1]) / 2) ** 2

    def box(seq: list[float], t: int) -> float:
        lo, hi = max(0, t - (window - 1) // 2), min(n, t - (window - 1) // 2 + window)
        return sum(seq[lo:hi]) / (hi - lo)

    change = [_static_db(10 * math.log10(box(list(power), t) + 1e-12), threshold, ratio, knee)
              for t in range(n)]  # fmt: skip
    gain = [10 ** ((box(change, t) + makeup) / 20) for t in range(n)]
    np.testing.assert_allclose(y, xs * np.array(gain)[None], rtol=1e-9, atol=1e-12)


def _fdn_loop(delays, g, b, taps, length):
    """An FDN written from its equations: line outputs read from full histories; ``taps``
    the input, left and right gains."""
    lines = len(delays)
    history = [[0.0] * length for _ in range(lines)]  # what entered each line, per sample
    state = [0.0] * lines
    out = np.zeros((2, length))
    for t in range(length):
        for i in range(lines):
            read = history[i][t - delays[i]] if t >= delays[i] else 0.0
            state[i] = g[i] * (1 - b[i]) * read + b[i] * state[i]
        out[0, t] = sum(taps[1][i] * state[i] for i in range(lines))
        out[1, t] = sum(taps[2][i] * state[i] for i in range(lines))
        s = sum(state)
        for i in range(lines):  # Householder feedback, I − (2/N)·11ᵀ, plus the impulse
            history[i][t] = state[i] - 2.0 / lines * s + (taps[0][i] if t == 0 else 0.0)
    return out


def test_fdn_kernel_against_a_plain_loop() -> None:
    from fxdata.house_chain import _fdn_kernel

    rng = np.random.default_rng(0)
    delays = np.array([[7, 11, 13, 17, 19, 23, 29, 31]])
    g = rng.uniform(0.8, 0.99, (1, 8))
    b = rng.uniform(0.0, 0.6, (1, 8))
    taps = np.where(rng.random((1, 3, 8)) < 0.5, -1.0, 1.0)
    got = _fdn_kernel(delays, g, b, taps, 400)[0]
    want = _fdn_loop(delays[0].tolist(), g[0].tolist(), b[0].tolist(), taps[0].tolist(), 400)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    from fxdata.house_chain import _hadamard

    h = _hadamard(8)
    torch.testing.assert_close(h @ h.T, 8 * torch.eye(8), rtol=0, atol=0)


def _t60(ir: np.ndarray) -> float:
    """Schroeder backward integration: the −5 to −35 dB slope of the energy decay."""
    edc = np.cumsum(ir[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    t = np.arange(ir.size) / SR
    fit = (edc_db <= -5) & (edc_db >= -35)
    return -60.0 / np.polyfit(t[fit], edc_db[fit], 1)[0]


@pytest.mark.parametrize("t60", [0.5, 1.5])
def test_reverb_decays_by_60_db_in_t60_and_faster_at_high_frequencies(t60: float) -> None:
    params = _only("reverb", seed=2, t60_s=t60, hf_ratio=1.0, predelay_ms=0.0)
    from fxdata.house_chain import _fdn_ir, _hadamard

    taps = _hadamard(8)[torch.tensor([[1, 2, 4]])]  # input, left, right: orthogonal rows
    jitter = torch.ones(1, 8, dtype=torch.float64)
    flat = _fdn_ir(params.values, taps, jitter, float(SR))[0].double().numpy()
    assert _t60(flat[0]) == pytest.approx(t60, rel=0.1)
    assert abs(np.corrcoef(flat[0], flat[1])[0, 1]) < 0.3  # left and right decorrelated
    params.values["hf_ratio"][:] = 0.4
    damped = _fdn_ir(params.values, taps, jitter, float(SR))[0, 0].double().numpy()
    sos_lo = scipy.signal.butter(4, 500, "low", fs=SR, output="sos")
    sos_hi = scipy.signal.butter(4, 8000, "high", fs=SR, output="sos")
    low, high = (
        _t60(scipy.signal.sosfilt(sos_lo, damped)),
        _t60(scipy.signal.sosfilt(sos_hi, damped)),
    )
    assert low == pytest.approx(t60, rel=0.15)
    assert high < 0.6 * low  # the absorbent filters shorten the top


def test_reverb_is_dry_plus_wet_response_and_predelayed() -> None:
    params = _only("reverb", n=2, wet=0.3, predelay_ms=20.0)
    from fxdata.house_chain import _fdn_ir, _hadamard

    taps = _hadamard(8)[torch.tensor([[3, 5, 6], [1, 2, 7]])]
    params.ir = _fdn_ir(params.values, taps, torch.ones(2, 8, dtype=torch.float64), float(SR))
    first = int(np.argmax(np.abs(params.ir[0, 0].numpy()) > 0))
    base = round(29.7e-3 * float(params.values["size"][0]) * SR)  # the shortest line
    assert first == round(20e-3 * SR) + base
    torch.testing.assert_close(params.ir.square().sum(-1), torch.ones(2, 2), rtol=1e-4, atol=0)
    x = noise(2, seconds=0.4)
    y = apply_house_chain(x, params).double().numpy()
    xd, h = x.double().numpy(), params.ir.double().numpy()
    for i in range(2):
        for c in range(2):
            wet = scipy.signal.fftconvolve(xd[i, c], h[i, c])[: xd.shape[-1]]
            np.testing.assert_allclose(y[i, c], xd[i, c] + 0.3 * wet, atol=1e-5)
