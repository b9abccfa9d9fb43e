"""Effect modules and parameter specs: mapping, validation, equivalence with the functional API."""

from __future__ import annotations

import math

import pytest
import torch

import fxdsp
from fxdsp import functional as F
from fxdsp.params import ParamSpec, denormalize, normalize

SR = 44100
ALL_EFFECTS = [
    fxdsp.Gain,
    fxdsp.ParametricEQ,
    fxdsp.Compressor,
    fxdsp.Panner,
    fxdsp.StereoImager,
    fxdsp.Reverb,
    fxdsp.LoudnessNormalize,
]


def test_param_spec_mapping_lin_and_log() -> None:
    lin = ParamSpec("gain_db", -12.0, 12.0, 0.0, "dB")
    log = ParamSpec("freq_hz", 20.0, 20000.0, 1000.0, "Hz", "log")
    u = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(
        lin.to_physical(u), torch.tensor([-12.0, 0.0, 12.0], dtype=torch.float64)
    )
    # log: the midpoint is the geometric mean
    torch.testing.assert_close(
        log.to_physical(u),
        torch.tensor([20.0, math.sqrt(20 * 20000), 20000.0], dtype=torch.float64),
    )
    v = torch.tensor([37.0, 440.0, 15000.0], dtype=torch.float64)
    torch.testing.assert_close(log.to_physical(log.to_normalized(v)), v)
    with pytest.raises(ValueError, match="log scale"):
        ParamSpec("bad", 0.0, 1.0, 0.5, scale="log")
    with pytest.raises(ValueError, match="default"):
        ParamSpec("bad", 0.0, 1.0, 2.0)


def test_denormalize_normalize_round_trip_for_every_effect() -> None:
    gen = torch.Generator().manual_seed(0)
    for cls in ALL_EFFECTS:
        specs = cls().specs()
        assert specs, cls
        u = torch.rand(4, len(specs), generator=gen, dtype=torch.float64)
        values = denormalize(specs, u)
        for s in specs:
            assert bool(((values[s.key] >= s.minimum) & (values[s.key] <= s.maximum)).all())
        torch.testing.assert_close(normalize(specs, values), u)
    with pytest.raises(ValueError, match="normalized parameters"):
        denormalize(fxdsp.Compressor().specs(), torch.rand(4, 3))


@pytest.mark.parametrize("cls", ALL_EFFECTS)
def test_out_of_range_raises_naming_parameter_value_and_range(cls: type[fxdsp.Effect]) -> None:
    module = cls()
    spec = module.specs()[0]
    bad = spec.maximum + 1.0
    others = [s.default for s in module.specs() if s.name == spec.name][1:]  # other bands
    with pytest.raises(ValueError) as err:
        cls(**{spec.name: [bad, *others] if others else bad})
    msg = str(err.value)
    assert spec.key in msg and f"{bad:g}" in msg and spec.range_str in msg
    x = torch.randn(2, 2, SR // 2)
    low = torch.tensor([spec.minimum, spec.minimum - 1.0])
    if others:
        low = torch.stack([low, *(torch.full((2,), d) for d in others)], dim=1)
    with pytest.raises(ValueError, match=spec.name):
        module(x, **{spec.name: low})


def test_modules_equal_functional_calls() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, SR // 2, generator=gen)
    comp = fxdsp.Compressor(
        threshold_db=-30.0, ratio=6.0, attack_ms=5.0, release_ms=80.0, knee_db=3.0, makeup_db=2.0
    )
    ref = F.compressor(x, SR, -30.0, 6.0, 5.0, 80.0, knee_db=3.0, makeup_db=2.0)
    torch.testing.assert_close(comp(x), ref)
    eq = fxdsp.ParametricEQ(
        gain_db=[3, -4, 2, 5, -6], freq_hz=[80, 400, 1500, 6000, 9000], q=[0.7, 1, 2, 0.5, 0.7]
    )
    ref = F.parametric_eq(
        x, SR, [3, -4, 2, 5, -6], [80, 400, 1500, 6000, 9000], [0.7, 1, 2, 0.5, 0.7]
    )
    torch.testing.assert_close(eq(x), ref)
    rv = fxdsp.Reverb(rt60_s=0.5, predelay_ms=5.0, damping=0.2, mix=0.3, seed=7)
    torch.testing.assert_close(rv(x), F.reverb(x, SR, 0.5, 5.0, 0.2, 0.3, 7))
    torch.testing.assert_close(fxdsp.Gain(-6.0, invert_polarity=True)(x), -x * 10 ** (-6 / 20))
    torch.testing.assert_close(
        fxdsp.Panner(0.5, law="linear")(x[:, :1]), F.pan(x[:, :1], 0.5, "linear")
    )
    torch.testing.assert_close(fxdsp.StereoImager(0.3)(x), F.stereo_imager(x, 0.3))


def test_forward_normalized_and_gradients_reach_parameters() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 2, 4000, generator=gen)
    comp = fxdsp.Compressor()
    u = torch.rand(3, len(comp.specs()), generator=gen, requires_grad=True)
    y = comp.forward_normalized(x, u)
    values = comp.denormalize(u.detach())
    torch.testing.assert_close(y, F.compressor(x, SR, **values))
    y.square().mean().backward()
    assert torch.isfinite(u.grad).all() and bool((u.grad.abs() > 0).any())
    # Stored parameters are learnable.
    eq = fxdsp.ParametricEQ()
    eq(x).square().mean().backward()
    assert eq.gain_db.grad is not None and bool(torch.isfinite(eq.gain_db.grad).all())
    assert bool((eq.gain_db.grad.abs() > 0).all())  # every band's gain reaches the output


def test_chain_runs_and_eq_rejects_frequency_above_nyquist() -> None:
    chain = torch.nn.Sequential(
        fxdsp.ParametricEQ(),
        fxdsp.Compressor(),
        fxdsp.StereoImager(1.5),
        fxdsp.Reverb(),
        fxdsp.Gain(-3.0),
        fxdsp.LoudnessNormalize(-20.0),
    )
    x = torch.randn(2, 2, SR)
    y = chain(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert torch.allclose(F.loudness(y, SR), torch.full((2,), -20.0), atol=1e-3)
    with pytest.raises(ValueError, match="Nyquist"):
        fxdsp.ParametricEQ(sample_rate=16000, freq_hz=[100, 500, 2000, 5000, 12000])
    with pytest.raises(ValueError, match="no parameter"):
        fxdsp.Compressor(treshold_db=-3.0)
    with pytest.raises(ValueError, match="pan law"):
        fxdsp.Panner(law="sqrt")


@pytest.mark.parametrize("cls", ALL_EFFECTS)
@pytest.mark.parametrize("edge", [0.0, 1.0])
def test_normalized_range_edges_in_float32(cls: type[fxdsp.Effect], edge: float) -> None:
    """u = 0 and u = 1 map inside the range (no float32 rounding past it); gradients finite."""
    module = cls()
    gen = torch.Generator().manual_seed(3)
    channels = 1 if cls is fxdsp.Panner else 2
    x = (0.1 * torch.randn(2, channels, SR // 2, generator=gen)).requires_grad_(True)
    u = torch.full((2, len(module.specs())), edge, requires_grad=True)
    for name, value in module.denormalize(u.detach()).items():
        for s in module.specs():
            if s.name == name:
                v = value[:, s.band] if s.band is not None else value
                assert bool(((v >= s.minimum) & (v <= s.maximum)).all()), s.key
    y = module.forward_normalized(x, u)
    y.square().mean().backward()
    assert torch.isfinite(y).all() and torch.isfinite(u.grad).all() and torch.isfinite(x.grad).all()
