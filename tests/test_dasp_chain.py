"""fxdata.dasp_chain: the second effects design for triplets, each stage against a closed form
or scipy, the reverb's decay measured, seeded draws, and its use in triplets and training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from fxdata.dasp_chain import (
    EFFECTS,
    RANGES,
    DaspChainParams,
    apply_dasp_chain,
    sample_dasp_params,
)
from fxdata.datasets import MultitrackDataset, SegmentDataset
from fxdata.triplets import draw_triplets
from fxdsp.registry import STEMS

SR = 44100


def _only(effect: str | None, n: int = 1, seed: int = 0, **values: float) -> DaspChainParams:
    """A drawn chain with only ``effect`` on and some of its controls set."""
    params = sample_dasp_params(n, generator=torch.Generator().manual_seed(seed), sample_rate=SR)
    for name in EFFECTS:
        params.on[name] = torch.full((n,), name == effect)
    for name, value in values.items():
        assert name in RANGES, name
        params.values[name] = torch.full((n,), float(value))
    return params


def _noise(n: int = 1, seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(n, 2, round(seconds * SR), generator=gen)


def test_every_effect_off_is_the_identity_and_silence_stays_silent() -> None:
    x = _noise(3)
    torch.testing.assert_close(apply_dasp_chain(x, _only(None, 3)), x, rtol=0, atol=0)
    full = sample_dasp_params(3, generator=torch.Generator().manual_seed(1), probability=1.0)
    assert all(bool(full.on[e].all()) for e in EFFECTS)
    y = apply_dasp_chain(torch.zeros(3, 2, SR // 2), full)
    assert torch.isfinite(y).all() and float(y.abs().max()) == 0.0
    loud = apply_dasp_chain(10.0 * x, full)  # far above every threshold: finite
    assert torch.isfinite(loud).all()


def test_gain_pan_and_width_closed_forms() -> None:
    x = _noise()
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
    x = _noise(2, seconds=0.4)
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


def test_draws_are_seeded_and_items_do_not_interact() -> None:
    a = sample_dasp_params(4, generator=torch.Generator().manual_seed(7), sample_rate=SR)
    b = sample_dasp_params(4, generator=torch.Generator().manual_seed(7), sample_rate=SR)
    assert all(torch.equal(a.values[k], b.values[k]) for k in RANGES)
    assert all(torch.equal(a.on[k], b.on[k]) for k in EFFECTS) and torch.equal(a.ir, b.ir)
    for name, (_effect, low, high, _log) in RANGES.items():
        assert float(a.values[name].min()) >= low and float(a.values[name].max()) <= high, name
    x = _noise(4, seconds=0.3)
    y = apply_dasp_chain(x, a)
    for i in range(4):
        one = DaspChainParams(
            values={k: v[i : i + 1] for k, v in a.values.items()},
            on={k: v[i : i + 1] for k, v in a.on.items()},
            ir=a.ir[i : i + 1], sample_rate=a.sample_rate,
        )  # fmt: skip
        # FFT rounding differs with the batch size: ~1e-5 of a 0.1-RMS signal's peak.
        torch.testing.assert_close(apply_dasp_chain(x[i : i + 1], one), y[i : i + 1],
                                   rtol=0, atol=2e-5)  # fmt: skip
    controls = a.controls(0)
    assert list(controls) == a.chain(0)
    assert all(set(v) == {k for k, r in RANGES.items() if r[0] == e} for e, v in controls.items())
    text = a.describe(0)  # readable text, as fxdsp.FxParams.describe
    assert text.startswith("item 0 (dasp design):")
    assert all(f"  {effect}:" in text for effect in a.chain(0))
    assert a.describe().count("item ") == 4
    with pytest.raises(IndexError, match="out of range"):
        a.describe(4)
    with pytest.raises(ValueError, match="integer"):
        a.chain(0.5)  # type: ignore[arg-type]


def test_bad_arguments_are_named() -> None:
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="n must be"):
        sample_dasp_params(0, generator=gen)
    with pytest.raises(ValueError, match="sample_rate"):
        sample_dasp_params(2, generator=gen, sample_rate=100.0)
    with pytest.raises(ValueError, match="probability"):
        sample_dasp_params(2, generator=gen, probability=1.5)
    params = sample_dasp_params(2, generator=gen)
    with pytest.raises(ValueError, match=r"\(batch, 2, samples\)"):
        apply_dasp_chain(torch.zeros(2, 1, 100), params)
    with pytest.raises(ValueError, match="3 items of audio for 2 drawn chains"):
        apply_dasp_chain(torch.zeros(3, 2, 100), params)


def test_triplets_of_the_dasp_design(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for t in range(3):
        folder = tmp_path / "data" / f"t{t}"
        folder.mkdir(parents=True)
        for stem in STEMS:
            sf.write(folder / f"{stem}.wav", 0.1 * rng.standard_normal((SR, 2)), SR,
                     subtype="FLOAT")  # fmt: skip
    segments = SegmentDataset(MultitrackDataset(tmp_path / "data", "all"), 0.2,
                              cache_dir=tmp_path / "cache")  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    trip = draw_triplets(segments, 5, generator=gen, design="dasp")
    assert isinstance(trip.params, DaspChainParams) and len(trip.params) == 5
    torch.testing.assert_close(apply_dasp_chain(trip.a1, trip.params), trip.a2, rtol=0, atol=0)
    torch.testing.assert_close(apply_dasp_chain(trip.b1, trip.params), trip.b2, rtol=0, atol=0)
    assert all(a != b for a, b in zip(trip.track_a, trip.track_b, strict=True))
    again = draw_triplets(segments, 5, generator=torch.Generator().manual_seed(0), design="dasp")
    assert torch.equal(again.a2, trip.a2) and torch.equal(again.b2, trip.b2)
    with pytest.raises(ValueError, match="design must be one of"):
        draw_triplets(segments, 2, generator=gen, design="pedalboard")
    with pytest.raises(ValueError, match="probabilities are fxdsp's"):
        draw_triplets(segments, 2, generator=gen, design="dasp", probabilities={"eq": 1.0})
    assert trip.records()[0]["chain"] == trip.params.describe(0)
