"""fxdata.dasp_chain: the second effects design for triplets, each stage against a closed form
or scipy, the reverb's decay measured, the common checks in test_drawn_chain.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
from designs import noise, only

from fxdata.dasp_chain import (
    RANGES,
    apply_dasp_chain,
    sample_dasp_params,
)
from fxdata.drawn_chain import DrawnChain

SR = 44100


def _only(effect: str | None, n: int = 1, seed: int = 0, **values: float) -> DrawnChain:
    return only(sample_dasp_params, effect, n, seed, **values)


def test_gain_pan_and_width_closed_forms() -> None:
    x = noise()
    left, right = x[:, 0], x[:, 1]
    y = apply_dasp_chain(x, _only("gain", gain_db=-6.0))
    torch.testing.assert_close(y, x * 10 ** (-6.0 / 20), rtol=1e-6, atol=1e-7)
    y = apply_dasp_chain(x, _only("pan", pan=0.3))  # the linear law: the left side down
    torch.testing.assert_close(y[:, 0], 0.7 * left, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(y[:, 1], right, rtol=0, atol=0)
    y = apply_dasp_chain(x, _only("pan", pan=-0.4))
    torch.testing.assert_close(y[:, 1], 0.6 * right, rtol=1e-6, atol=1e-7)
    w = 0.7  # mid × 2(1 − w), side × 2w: L' = (1 − w)(L + R) + w(L − R)
    y = apply_dasp_chain(x, _only("width", width=w))
    torch.testing.assert_close(y[:, 0], (1 - w) * (left + right) + w * (left - right),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    torch.testing.assert_close(y[:, 1], (1 - w) * (left + right) - w * (left - right),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    y = apply_dasp_chain(x, _only("width", width=0.5))
    torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6)


def test_eq_peak_gain_at_its_centre_frequency() -> None:
    """A peaking biquad's gain at its centre is exactly its gain; the other bands are flat."""
    flat = {k: 0.0 for k in RANGES if k.endswith("_db") and RANGES[k][0] == "eq"}
    f0 = SR / 2**7 * 3  # whole periods in the segment: the FFT-based filter sees no wrap
    params = _only("eq", **{**flat, "band1_db": 7.5, "band1_hz": f0, "band1_q": 1.0})
    t = torch.arange(2**15) / SR
    x = (0.2 * torch.sin(2 * math.pi * f0 * t)).expand(1, 2, -1).contiguous()
    y = apply_dasp_chain(x, params)
    ratio = float(y.square().mean().sqrt() / x.square().mean().sqrt())
    assert 20 * math.log10(ratio) == pytest.approx(7.5, abs=0.05)
    # Two octaves away the same band does little (RBJ peak, Q 1: under 1 dB).
    x2 = (0.2 * torch.sin(2 * math.pi * 4 * f0 * t)).expand(1, 2, -1).contiguous()
    ratio2 = float(apply_dasp_chain(x2, params).square().mean().sqrt() / x2.square().mean().sqrt())
    assert abs(20 * math.log10(ratio2)) < 1.0


@pytest.mark.parametrize("level_db", [-6.0, -20.0])
def test_compressor_static_curve_on_a_constant_signal(level_db: float) -> None:
    """A constant input is at one level: the gain is the static curve plus the make-up."""
    threshold, ratio, makeup = -30.0, 4.0, 3.0
    params = _only("compressor", threshold_db=threshold, ratio=ratio, knee_db=1.0,
                   makeup_db=makeup, attack_ms=5.0)  # fmt: skip
    amplitude = 10 ** (level_db / 20) / 2  # the detector sums the two channels
    x = torch.full((1, 2, SR // 4), amplitude)
    y = apply_dasp_chain(x, params)
    want = threshold + (level_db - threshold) / ratio - level_db + makeup
    measured = 20 * torch.log10(y[..., 1000:-1000] / amplitude)
    torch.testing.assert_close(measured, torch.full_like(measured, want), rtol=0, atol=1e-3)
    # Below threshold minus half the knee, only the make-up.
    quiet = torch.full((1, 2, SR // 4), 10 ** (-50 / 20) / 2)
    out = apply_dasp_chain(quiet, params)[..., 1000:-1000]
    gain = 20 * torch.log10(out / quiet[..., 1000:-1000])
    torch.testing.assert_close(gain, torch.full_like(gain, makeup), rtol=0, atol=1e-3)


def test_reverb_is_the_mix_of_dry_and_the_drawn_response() -> None:
    params = _only("reverb", n=2, t60_s=0.8, tilt=0.0, mix=0.3)
    params.ir = sample_dasp_params(
        2, generator=torch.Generator().manual_seed(3), sample_rate=SR
    ).ir  # any drawn response: the convolution is checked against scipy below
    x = noise(2, seconds=0.4)
    y = apply_dasp_chain(x, params).double().numpy()
    xd, h = x.double().numpy(), params.ir.double().numpy()
    for i in range(2):
        for c in range(2):
            wet = scipy.signal.fftconvolve(xd[i, c], h[i, c])[: xd.shape[-1]]
            np.testing.assert_allclose(y[i, c], 0.7 * xd[i, c] + 0.3 * wet, atol=1e-5)
    # Every response has unit energy per channel.
    torch.testing.assert_close(params.ir.square().sum(-1), torch.ones(2, 2), rtol=1e-4, atol=0)


@pytest.mark.parametrize("t60", [0.4, 1.2])
def test_reverb_response_decays_by_60_db_in_t60(t60: float) -> None:
    """Schroeder's backward integration: the −5 to −35 dB slope of the energy decay, doubled."""
    p = sample_dasp_params(1, generator=torch.Generator().manual_seed(2), sample_rate=SR)
    p.values["t60_s"][:] = t60
    p.values["tilt"][:] = 0.0
    from fxdata.dasp_chain import _reverb_ir

    ir = _reverb_ir(p.values["t60_s"], p.values["tilt"], torch.zeros(1, 10),
                    torch.Generator().manual_seed(4), SR)[0, 0].double().numpy()  # fmt: skip
    edc = np.cumsum(ir[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    t = np.arange(ir.size) / SR
    fit = (edc_db <= -5) & (edc_db >= -35)
    slope = np.polyfit(t[fit], edc_db[fit], 1)[0]
    assert -60.0 / slope == pytest.approx(t60, rel=0.1)


def test_reverb_response_is_cut_at_two_seconds() -> None:
    """A long, tilted draw: the low bands' T60 is over 2 s; the response stops at 2 s."""
    from fxdata.dasp_chain import _reverb_ir

    ir = _reverb_ir(torch.tensor([3.0]), torch.tensor([0.5]), torch.zeros(1, 10),
                    torch.Generator().manual_seed(1), SR)  # fmt: skip
    assert ir.shape == (1, 2, 2 * SR)
    tail = ir[..., -SR // 10 :].square().mean() / ir[..., : SR // 10].square().mean()
    assert -40.0 < 10 * math.log10(float(tail)) < -5.0  # far from −60 dB: the cut is audible
