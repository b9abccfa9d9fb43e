"""One vocabulary: the registry, the normalized space, and the edges of configs and draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fxdsp
from fxdsp import functional as F
from fxdsp.chain_config import REFERENCE_RANGES, ChainConfig
from fxdsp.manipulator import FxParams, apply_effect, sample_params
from fxdsp.registry import EFFECTS, EQ_BANDS, FAMILIES, STEMS, qualified_names
from fxdsp.space import ParamSpace

SR = 44100
MODULES = {
    "eq": fxdsp.ParametricEQ,
    "compressor": fxdsp.Compressor,
    "pan": fxdsp.Panner,
    "imager": fxdsp.StereoImager,
    "reverb": fxdsp.Reverb,
    "gain": fxdsp.Gain,
    "loudness": fxdsp.LoudnessNormalize,
}


def test_every_name_comes_from_the_registry() -> None:
    assert set(MODULES) == set(FAMILIES)
    for name, cls in MODULES.items():
        module = cls()
        assert module.family() is FAMILIES[name]
        assert module.specs() == FAMILIES[name].specs  # at 44.1 kHz nothing is capped
    # ChainConfig ranges, FxParams values and the space use the same qualified names.
    assert tuple(REFERENCE_RANGES) == qualified_names()
    p = sample_params(3, generator=0)
    assert tuple(FxParams.continuous_fields()) == qualified_names()
    for effect in EFFECTS:
        fam = FAMILIES[effect]
        continuous = {k for k in p.effect(effect) if k in fam.param_names}
        assert continuous == set(fam.param_names), effect
    for col in ParamSpace().names:
        assert col.split("[")[0] in qualified_names()
    # The chain runs each effect through the registry's function with the draw's arguments.
    x = 0.1 * torch.randn(3, 2, 2000, generator=torch.Generator().manual_seed(1))
    ref = F.compressor(x, SR, **{k: v for k, v in p.effect("compressor").items()})
    torch.testing.assert_close(apply_effect("compressor", x, p), ref, rtol=0, atol=0)


def test_space_uses_the_spec_scale_over_the_config_range() -> None:
    """With a config whose ranges are the specs' own, the chain's space is the modules'."""
    full = {
        key: [
            (s.minimum, s.maximum)
            for s in FAMILIES[key.split(".")[0]].band_specs(key.split(".")[1])
        ]
        for key in qualified_names()
    }
    full = {k: v if len(v) > 1 else v[0] for k, v in full.items()}
    cfg = ChainConfig(ranges=full, sample_rate=48000.0)
    space = ParamSpace(cfg)
    comp = fxdsp.Compressor(sample_rate=48000.0)
    cols = [j for j, n in enumerate(space.names) if n.startswith("compressor.")]
    assert len(cols) == len(comp.specs())
    u = torch.rand(5, len(space), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    chain_values = space.to_physical(u)
    module_values = comp.denormalize(u[:, cols])
    for name, value in module_values.items():
        torch.testing.assert_close(chain_values[f"compressor.{name}"], value)
    # Round trip, and log spacing: u = 1/2 is the geometric mean of a log-scaled range.
    torch.testing.assert_close(space.to_normalized(chain_values), u)
    half = space.to_physical(torch.full((1, len(space)), 0.5, dtype=torch.float64))
    torch.testing.assert_close(
        half["compressor.ratio"], torch.tensor([math.sqrt(1.0 * 40.0)], dtype=torch.float64)
    )


def test_eq_follows_its_sample_rate() -> None:
    """ParametricEQ's frequency ranges stay below Nyquist at the module's rate."""
    eq16 = fxdsp.ParametricEQ(sample_rate=16000)  # the 8 kHz default high shelf is capped
    assert float(eq16.freq_hz.detach().max()) < 8000.0
    for rate in (16000, 22050):
        eq = fxdsp.ParametricEQ(sample_rate=rate)
        top = max(s.maximum for s in eq.specs() if s.unit == "Hz")
        assert top < rate / 2
        x = 0.1 * torch.randn(2, 2, 4000, generator=torch.Generator().manual_seed(0))
        y = eq.forward_normalized(x, torch.ones(2, len(eq.specs())))
        assert bool(torch.isfinite(y).all())
        values = eq.denormalize(torch.ones(2, len(eq.specs())))
        assert float(values["freq_hz"].max()) < rate / 2
    with pytest.raises(ValueError, match="too low"):
        fxdsp.ParametricEQ(sample_rate=2000)


def test_eq_takes_plain_lists_per_call() -> None:
    x = 0.1 * torch.randn(2, 2, 3000, generator=torch.Generator().manual_seed(2))
    eq = fxdsp.ParametricEQ()
    gains = [1.0, 2, 3, 4, 5]
    y = eq(x, gain_db=gains)
    ref = eq(x, gain_db=torch.tensor([gains, gains]))
    torch.testing.assert_close(y, ref, rtol=0, atol=0)
    nested = [[1.0, 2, 3, 4, 5], [-1.0, 0, 2, 0, 1]]
    torch.testing.assert_close(eq(x, gain_db=nested), eq(x, gain_db=torch.tensor(nested)))
    with pytest.raises(ValueError, match=r"gain_db must be \(5,\)"):
        eq(x, gain_db=[1.0, 2.0])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"probabilities": None}, "probabilities must be a mapping"),
        ({"ranges": None}, "ranges must be a mapping"),
        ({"ranges": {"gain_db": 5}}, "unknown range name"),
        ({"ranges": {"gain.gain_db": 5}}, r"\(low, high\) pair"),
        ({"ranges": {"gain.gain_db": ["a", 1]}}, "must be a number"),
        ({"ranges": {"eq.freq_hz": [[30, 200]] * 3}}, "one .low, high. pair per band"),
        ({"sample_rate": float("inf")}, "sample_rate must be a finite number"),
        ({"sample_rate": "44100"}, "sample_rate must be a number"),
        ({"reverb_tail_rt60": 1e9}, r"reverb_tail_rt60 must be a finite number in \(0, 3\]"),
        ({"probabilities": {"eq": float("nan")}}, "probability of 'eq'"),
        ({"reverb_probabilities": {"drums": None}}, "must be a number"),
        ({"extra": None}, "unknown ChainConfig field"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_malformed_chain_configs_raise_clear_errors(data, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ChainConfig.from_dict(data)


def test_malformed_config_text_and_files(tmp_path) -> None:
    with pytest.raises(ValueError, match="non-finite number Infinity"):
        ChainConfig.from_json('{"sample_rate": Infinity}')
    with pytest.raises(ValueError, match="malformed JSON in text"):
        ChainConfig.from_json('{"sample_rate": ')
    bad = tmp_path / "chain.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=f"malformed JSON in {bad}"):
        ChainConfig.from_json(bad)
    pytest.importorskip("yaml")
    ybad = tmp_path / "chain.yaml"
    ybad.write_text("ranges: [unclosed\n")
    with pytest.raises(ValueError, match=f"malformed YAML in {ybad}"):
        ChainConfig.from_yaml(ybad)
    with pytest.raises(ValueError, match="must be a mapping"):
        ChainConfig.from_yaml("- a\n- b\n")
    good = tmp_path / "ok.yaml"
    ChainConfig().replace(ranges={"gain.gain_db": (0.0, 1.0)}).to_yaml(good)
    assert ChainConfig.from_file(good).ranges["gain.gain_db"] == (0.0, 1.0)


def test_reverb_impulse_response_of_a_config_is_bounded() -> None:
    cfg = ChainConfig().replace(ranges={"reverb.rt60_s": (0.3, 8.0)}, reverb_tail_rt60=3.0)
    assert cfg.ir_length == math.ceil((0.040 + 3.0 * 8.0) * 44100)  # the largest allowed
    with pytest.raises(ValueError, match="leaves the parameter's range"):
        ChainConfig().replace(ranges={"reverb.rt60_s": (0.3, 1e9)})


def test_sample_params_edges() -> None:
    # An int seed is a seed.
    a = sample_params(4, generator=42)
    b = sample_params(4, generator=torch.Generator().manual_seed(42))
    for key in qualified_names():
        assert torch.equal(a[key], b[key])
    with pytest.raises(ValueError, match="generator"):
        sample_params(4, generator="42")  # type: ignore[arg-type]
    for dtype in (torch.bool, torch.int32, torch.int64):
        with pytest.raises(ValueError, match="floating-point"):
            sample_params(4, dtype=dtype)
    p64 = sample_params(4, generator=1, dtype=torch.float64)
    assert p64["eq.q"].dtype == torch.float64 and float(p64["eq.q"].min()) > 0.1 - 1e-12


def _edit(p: FxParams, **changes) -> FxParams:
    fields = {
        "stem": p.stem,
        "active": p.active,
        "order1": p.order1,
        "order2": p.order2,
        "values": dict(p.values),
        "sample_rate": p.sample_rate,
        "ir_length": p.ir_length,
    }
    fields.update(changes)
    return FxParams(**fields)


def test_fxparams_refuses_inconsistent_draws() -> None:
    p = sample_params(2, generator=0)
    with pytest.raises(ValueError, match="permutation"):
        _edit(p, order1=torch.tensor([[0, 0], [1, 0]]))
    with pytest.raises(ValueError, match="stem indices"):
        _edit(p, stem=torch.tensor([9, 0]))
    with pytest.raises(ValueError, match="stem indices"):
        _edit(p, stem=torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="missing"):
        _edit(p, values={k: v for k, v in p.values.items() if k != "reverb.mix"})
    with pytest.raises(ValueError, match="unknown"):
        _edit(p, values={**p.values, "reverb.dry": p["reverb.mix"]})
    with pytest.raises(ValueError, match=r"eq.gain_db.*\(batch, 5\)"):
        _edit(p, values={**p.values, "eq.gain_db": p["eq.gain_db"][:, :3]})
    with pytest.raises(ValueError, match="bool"):
        _edit(p, values={**p.values, "gain.invert_polarity": torch.tensor([0, 1])})
    with pytest.raises(ValueError, match="item index"):
        p.describe(1.5)  # type: ignore[arg-type]
    # Every stem is described by its own name.
    q = sample_params(4, stems=list(STEMS), generator=0)
    for i, stem in enumerate(STEMS):
        assert f"stem {stem})" in q.describe(i)
    assert p[np.int64(1)].describe(0) == p.describe(1).replace("item 1", "item 0")


def test_the_two_shuffled_groups_are_independent() -> None:
    n = 20000
    p = sample_params(n, generator=7)
    first_swapped = p.order1[:, 0] == 1
    second_swapped = p.order2[:, 0] == 1
    both = (first_swapped & second_swapped).double().mean().item()
    sigma = math.sqrt(0.25 * 0.75 / n)
    assert abs(both - 0.25) <= 3 * sigma


def test_describe_names_bands_and_units() -> None:
    p = sample_params(1, probabilities=dict.fromkeys(EFFECTS, 1.0), generator=3)
    text = p.describe(0)
    for band in EQ_BANDS:
        assert band in text
    assert ":1" in text and "rt60_s" in text and "mix" in text and "law" in text
