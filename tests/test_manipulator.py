"""Tests of the random effect chain: fxdsp.manipulator and fxdsp.chain_config."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.signal import fftconvolve

from fxdsp import functional as F
from fxdsp.chain_config import EFFECTS, REFERENCE_RANGES, STEMS, ChainConfig
from fxdsp.manipulator import GROUPS, FxParams, Manipulator, sample_params
from fxdsp.registry import qualified_names
from fxdsp.space import ParamSpace

devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SR = 44100.0
# Short reverbs keep the impulse responses (and the tests) small.
SHORT = ChainConfig().replace(
    ranges={"reverb.rt60_s": (0.1, 0.15), "reverb.predelay_ms": (0.0, 2.0)}
)
# All "on" probabilities 1/2: every combination of on/off flags and orders shows up.
HALF = dict.fromkeys(EFFECTS, 0.5)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noise(shape: tuple[int, ...], seed: int = 1, dtype: torch.dtype = torch.float64):
    g = gen(seed)
    return 0.1 * torch.randn(shape, generator=g, dtype=dtype)


def reference_chain(x: torch.Tensor, p: FxParams, match: bool = True) -> torch.Tensor:
    """One item (batch of 1), written out with the functional effects, reference semantics
    (``match=False``: no RMS match after the processors)."""
    assert len(p) == 1
    y = x.expand(-1, 2, -1) if x.shape[1] == 1 else x
    on = dict(zip(EFFECTS, p.active[0].tolist(), strict=True))
    names = [GROUPS[0][k] for k in p.order1[0].tolist()]
    names += [GROUPS[1][k] for k in p.order2[0].tolist()]
    for name in [*names, "reverb", "gain"]:
        if not on[name]:
            continue
        v = p.values
        if name == "eq":
            out = F.parametric_eq(y, SR, v["eq.gain_db"], v["eq.freq_hz"], v["eq.q"])
        elif name == "compressor":
            out = F.compressor(
                y,
                SR,
                v["compressor.threshold_db"],
                v["compressor.ratio"],
                v["compressor.attack_ms"],
                v["compressor.release_ms"],
                knee_db=v["compressor.knee_db"],
                makeup_db=v["compressor.makeup_db"],
            )
        elif name == "pan":
            out = F.pan(y, v["pan.pan"], v["pan.law"])
        elif name == "imager":
            out = F.stereo_imager(y, v["imager.width"])
        elif name == "reverb":
            out = F.reverb(
                y,
                SR,
                v["reverb.rt60_s"],
                v["reverb.predelay_ms"],
                v["reverb.damping"],
                v["reverb.mix"],
                v["reverb.seed"],
                ir_length=p.ir_length,
            )
        else:
            y = F.gain(y, v["gain.gain_db"], v["gain.invert_polarity"])
            continue
        y = F.rms_normalize_to(out, y) if match else out  # RMS match to this processor's input
    return y


# ---------------------------------------------------------------------------------------------
# Applying a draw


def test_determinism_bit_identical() -> None:
    p = sample_params(6, config=SHORT, probabilities=HALF, generator=gen(3))
    x = noise((6, 2, 3000), dtype=torch.float32)
    m = Manipulator(p)
    y1, y2 = m(x), m(x)
    assert torch.equal(y1, y2)
    # A fresh draw from the same seed is the same draw.
    p2 = sample_params(6, config=SHORT, probabilities=HALF, generator=gen(3))
    assert torch.equal(Manipulator(p2)(x), y1)
    # A different seed gives a different output (the test above can fail).
    p3 = sample_params(6, config=SHORT, probabilities=HALF, generator=gen(4))
    assert not torch.allclose(Manipulator(p3)(x), y1)
    # Without a graph the scatter is done in place, with one out of place: same result, and
    # the input is untouched either way.
    x_copy = x.clone()
    with torch.no_grad():
        assert torch.equal(m(x), y1)
    assert torch.equal(x, x_copy)
    x_leaf = x.clone().requires_grad_(True)
    assert torch.equal(m(x_leaf).detach(), y1)
    assert torch.equal(x_leaf.detach(), x_copy)


def test_batched_matches_each_item_through_functional_effects() -> None:
    n = 24
    p = sample_params(n, config=SHORT, probabilities=HALF, generator=gen(7), dtype=torch.float64)
    # The draw must exercise the variety this test is about.
    act = p.active
    both1 = act[:, 0] & act[:, 1]
    both2 = act[:, 2] & act[:, 3]
    assert set(p.order1[both1, 0].tolist()) == {0, 1}
    assert set(p.order2[both2, 0].tolist()) == {0, 1}
    assert 0 < int(act.sum()) < act.numel()
    x = noise((n, 2, 2048))
    y = Manipulator(p)(x)
    for i in range(n):
        ref = reference_chain(x[i : i + 1], p[i])
        torch.testing.assert_close(y[i : i + 1], ref, rtol=1e-7, atol=1e-10)
        # Item i processed alone equals item i in the batch.
        alone = Manipulator(p[i])(x[i : i + 1])
        torch.testing.assert_close(y[i : i + 1], alone, rtol=1e-9, atol=1e-12)


def test_identical_content_gives_identical_outputs_in_one_batch() -> None:
    p = sample_params(5, config=SHORT, probabilities=HALF, generator=gen(11))
    a = noise((5, 2, 2000), seed=2, dtype=torch.float32)
    y = Manipulator(FxParams.cat([p, p]))(torch.cat([a, a]))
    torch.testing.assert_close(y[:5], y[5:], rtol=0, atol=1e-7)
    torch.testing.assert_close(y[:5], Manipulator(p)(a), rtol=0, atol=1e-7)


def test_positive_pair_same_linear_effects_on_two_contents() -> None:
    """Without the compressor, the chain is c(x) · H x with H linear time-invariant per item.

    The RMS matches and the imager's energy normalization only scale each item by a positive
    number. So the chain applied to a unit impulse gives H's response h, and for any content
    a the output is proportional to h ∗ a: two contents get the same effects.
    """
    n, t = 8, 1500
    p = sample_params(
        n,
        config=SHORT,
        probabilities={**HALF, "compressor": 0.0},
        generator=gen(5),
        dtype=torch.float64,
    )
    m = Manipulator(p)
    impulse = torch.zeros(n, 1, t, dtype=torch.float64)
    impulse[:, :, 0] = 1.0
    h = m(impulse).numpy()
    other = sample_params(n, config=SHORT, probabilities={**HALF, "compressor": 0.0})
    h_other = Manipulator(other)(impulse).numpy()
    for seed in (2, 3):  # two contents
        a = noise((n, 1, t), seed=seed)
        y = m(a).numpy()
        for i in range(n):
            for c in range(2):
                ref = fftconvolve(a[i, 0].numpy(), h[i, c])[:t]
                got = y[i, c]
                if np.sqrt(np.mean(ref**2)) < 1e-9:  # a hard-panned silent side
                    assert np.sqrt(np.mean(got**2)) < 1e-9
                    continue
                scale = np.dot(got, ref) / np.dot(ref, ref)
                assert scale > 0
                np.testing.assert_allclose(got, scale * ref, rtol=0, atol=1e-9 * np.abs(ref).max())
        # Another draw's response does not explain the output.
        mismatch = 0
        for i in range(n):
            ref = fftconvolve(a[i, 0].numpy(), h_other[i, 0])[:t]
            scale = np.dot(y[i, 0], ref) / max(np.dot(ref, ref), 1e-30)
            mismatch += not np.allclose(y[i, 0], scale * ref, atol=1e-6 * np.abs(y[i, 0]).max())
        assert mismatch > 0


def test_mono_input_is_upmixed_to_stereo() -> None:
    p = sample_params(4, config=SHORT, probabilities=HALF, generator=gen(2), dtype=torch.float64)
    x = noise((4, 1, 1000))
    y = Manipulator(p)(x)
    assert y.shape == (4, 2, 1000)
    torch.testing.assert_close(y, Manipulator(p)(x.expand(-1, 2, -1)), rtol=0, atol=0)


def test_all_off_is_identity_and_only_gain_is_closed_form() -> None:
    x = noise((6, 2, 800), dtype=torch.float32)
    off = sample_params(6, probabilities=dict.fromkeys(EFFECTS, 0.0), generator=gen(1))
    assert not bool(off.active.any())
    assert torch.equal(Manipulator(off)(x), x)

    only_gain = dict.fromkeys(EFFECTS, 0.0) | {"gain": 1.0}
    p = sample_params(6, probabilities=only_gain, generator=gen(2), dtype=torch.float64)
    inv = p["gain.invert_polarity"]
    assert 0 < int(inv.sum()) < 6
    y = Manipulator(p)(x.double())
    sign = 1.0 - 2.0 * inv.double()
    expected = x.double() * (sign * 10.0 ** (p["gain.gain_db"] / 20.0))[:, None, None]
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=0)


def test_rms_is_matched_after_every_processor_but_gain() -> None:
    probs = dict.fromkeys(EFFECTS, 1.0) | {"gain": 0.0}
    p = sample_params(5, config=SHORT, probabilities=probs, generator=gen(9), dtype=torch.float64)
    x = noise((5, 2, 3000))
    y = Manipulator(p)(x)
    torch.testing.assert_close(F.rms(y), F.rms(x), rtol=1e-9, atol=0)


def test_without_level_match_each_processor_keeps_its_own_level() -> None:
    """``level_match=False`` (``ChainConfig.level_match``): each item equals the functional
    effects in its order with no RMS match (written out in the test), and the level moves."""
    n = 12
    p = sample_params(n, config=SHORT, probabilities=HALF, generator=gen(7), dtype=torch.float64)
    x = noise((n, 2, 2048))
    y = Manipulator(p, level_match=False)(x)
    matched = Manipulator(p)(x)
    moved = 0
    for i in range(n):
        ref = reference_chain(x[i : i + 1], p[i], match=False)
        torch.testing.assert_close(y[i : i + 1], ref, rtol=1e-7, atol=1e-10)
        processors = p.active[i, [EFFECTS.index(e) for e in EFFECTS if e != "gain"]]
        if bool(processors.any()):
            moved += int(abs(float(F.rms(y[i : i + 1]) / F.rms(x[i : i + 1])) - 1) > 1e-3)
        else:  # nothing but the gain: the same either way
            torch.testing.assert_close(y[i : i + 1], matched[i : i + 1], rtol=0, atol=0)
    assert moved >= 3
    assert ChainConfig().level_match is True
    cfg = ChainConfig().replace(level_match=False)
    assert ChainConfig.from_json(cfg.to_json()).level_match is False
    with pytest.raises(ValueError, match="level_match must be true or false"):
        ChainConfig().replace(level_match="no")
    with pytest.raises(ValueError, match="level_match must be true or false"):
        Manipulator(p, level_match=1)


def test_gradients_finite_wrt_audio_and_every_continuous_param() -> None:
    probs = dict.fromkeys(EFFECTS, 1.0)
    p = sample_params(
        3,
        config=SHORT,
        probabilities=probs,
        generator=gen(4),
        dtype=torch.float64,
        ranges={"compressor.threshold_db": (-30.0, -20.0)},
    )
    leaves = {}
    for name in FxParams.continuous_fields():
        leaves[name] = p.values[name].clone().requires_grad_(True)
        p.values[name] = leaves[name]
    x = noise((3, 2, 1024)).requires_grad_(True)
    y = Manipulator(p)(x)
    w = noise((3, 2, 1024), seed=8)
    (y * w).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and x.grad.abs().max() > 0
    zero_ok = {"compressor.knee_db"}  # a hard knee: zero gradient w.r.t. the knee is exact
    for name, leaf in leaves.items():
        assert leaf.grad is not None, name
        assert bool(torch.isfinite(leaf.grad).all()), name
        if name not in zero_ok and name != "eq.q":
            assert leaf.grad.abs().max() > 0, name
    assert leaves["eq.q"].grad[:, 1:4].abs().max() > 0


FIELD_EFFECT = {
    key: key.partition(".")[0]
    for key in FxParams.continuous_fields()
    if key not in ("eq.q", "compressor.knee_db")  # the shelf Qs and the hard knee: no gradient
}


def test_gradients_flow_exactly_to_the_items_whose_effect_is_on() -> None:
    n = 10
    p = sample_params(
        n,
        config=SHORT,
        probabilities=HALF,
        generator=gen(12),
        dtype=torch.float64,
        ranges={"compressor.threshold_db": (-30.0, -20.0)},
    )
    leaves = {}
    for name in FIELD_EFFECT:
        leaves[name] = p.values[name].clone().requires_grad_(True)
        p.values[name] = leaves[name]
    x = noise((n, 2, 1024)).requires_grad_(True)
    w = noise((n, 2, 1024), seed=8)
    (Manipulator(p)(x) * w).sum().backward()
    assert bool(torch.isfinite(x.grad).all()) and bool((x.grad.abs().amax(dim=(1, 2)) > 0).all())
    for name, effect in FIELD_EFFECT.items():
        on = p.effect_on(effect)
        assert 0 < int(on.sum()) < n, effect  # both cases present
        g = leaves[name].grad.reshape(n, -1).abs().amax(dim=1)
        assert bool(torch.isfinite(g).all()), name
        assert bool((g[~on] == 0).all()), name
        if name == "compressor.makeup_db":
            # A constant gain that the RMS match after every processor divides out again: its
            # gradient is zero in closed form, rounding noise here (was asserted > 0 on that
            # noise, and one item came out exactly 0 on another CPU).
            assert float(g.max()) < 1e-12 * float(x.grad.abs().max()), name
            continue
        assert bool((g[on] > 0).all()), name


def test_gradcheck_linear_chain() -> None:
    probs = dict.fromkeys(EFFECTS, 1.0) | {"compressor": 0.0}
    cfg = SHORT.replace(
        ranges={"reverb.rt60_s": (0.1, 0.1), "reverb.predelay_ms": (0.0, 0.0)},
    )
    p = sample_params(2, config=cfg, probabilities=probs, generator=gen(6), dtype=torch.float64)
    p.values["imager.width"] = torch.tensor([0.4, 1.6], dtype=torch.float64)  # not at 1
    x = noise((2, 2, 96))
    keys = ("gain.gain_db", "eq.gain_db", "pan.pan", "reverb.mix", "imager.width")

    def fn(x, *tensors):
        q = FxParams(
            stem=p.stem,
            active=p.active,
            order1=p.order1,
            order2=p.order2,
            values={**p.values, **dict(zip(keys, tensors, strict=True))},
            sample_rate=p.sample_rate,
            ir_length=p.ir_length,
        )
        return Manipulator(q)(x)

    inputs = (x, *(p.values[k] for k in keys))
    inputs = tuple(t.clone().requires_grad_(True) for t in inputs)
    # fast mode: the Jacobian checked along random directions (u^T J v), a few passes, not 400
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


# ---------------------------------------------------------------------------------------------
# Drawing


def _within_3_sigma(flags: torch.Tensor, p: float) -> bool:
    n = flags.numel()
    freq = flags.double().mean().item()
    sigma = math.sqrt(p * (1 - p) / n)
    return abs(freq - p) <= 3 * sigma + 1e-12


def test_stem_dependent_reverb_probability_and_other_frequencies() -> None:
    n = 4000
    expected = {"drums": 0.5, "bass": 0.01, "other": 0.7, "vocals": 0.9}
    g = gen(123)
    for stem, p_rev in expected.items():
        p = sample_params(n, stems=[stem] * n, generator=g)
        assert _within_3_sigma(p.effect_on("reverb"), p_rev), stem
        assert bool((p.stem == STEMS.index(stem)).all())
    p = sample_params(n, generator=g)  # stems=None is "other"
    assert bool((p.stem == STEMS.index("other")).all())
    assert _within_3_sigma(p.effect_on("reverb"), 0.7)
    for name, prob in {
        "eq": 0.9,
        "compressor": 0.9,
        "pan": 0.3,
        "imager": 0.8,
        "gain": 0.5,
    }.items():
        assert _within_3_sigma(p.effect_on(name), prob), name
    assert _within_3_sigma(p["gain.invert_polarity"], 0.5)
    assert _within_3_sigma(p.order1[:, 0] == 1, 0.5)
    assert _within_3_sigma(p.order2[:, 0] == 1, 0.5)
    counts = torch.bincount(p["pan.law"], minlength=3)
    assert counts.shape == (3,) and bool((counts > 0).all())
    # Stems as an index tensor; a float for the reverb overrides every stem.
    stems = torch.tensor([0, 1, 2, 3]).repeat(n // 4)
    q = sample_params(n, stems=stems, probabilities={"reverb": 0.25}, generator=g)
    assert torch.equal(q.stem, stems)
    assert _within_3_sigma(q.effect_on("reverb"), 0.25)


def test_samples_lie_in_reference_ranges() -> None:
    p = sample_params(2000, generator=gen(0), dtype=torch.float64)
    # The reference's ranges, written out (REFERENCE.md), per band for the EQ.
    expected = {
        "eq.gain_db": [(-15.0, 15.0)] * 5,
        "eq.freq_hz": [(30, 200), (200, 1000), (1000, 3000), (3000, 8000), (5000, 10000)],
        "eq.q": [(0.707, 0.707), (0.1, 2.0), (0.1, 2.0), (0.1, 2.0), (0.707, 0.707)],
        "compressor.threshold_db": [(-80.0, -5.0)],
        "compressor.ratio": [(4.0, 40.0)],
        "compressor.attack_ms": [(1.0, 20.0)],
        "compressor.release_ms": [(50.0, 500.0)],
        "compressor.knee_db": [(0.0, 0.0)],
        "compressor.makeup_db": [(0.0, 0.0)],
        "pan.pan": [(-1.0, 1.0)],
        "imager.width": [(0.0, 2.0)],
        "reverb.rt60_s": [(0.3, 3.0)],
        "reverb.predelay_ms": [(0.0, 40.0)],
        "reverb.damping": [(0.0, 1.0)],
        "reverb.mix": [(0.5, 1.0)],  # the reference's dry weight U(0, 0.5) is 1 - mix
        "gain.gain_db": [(-6.0, 9.0)],
    }
    assert set(expected) == set(REFERENCE_RANGES) == set(FxParams.continuous_fields())
    for key, pairs in expected.items():
        t = p[key].reshape(len(p), -1)
        for b, (lo, hi) in enumerate(pairs):
            col = t[:, b]
            assert float(col.min()) >= lo and float(col.max()) <= hi, key
            if hi > lo:  # spread over the range
                assert float(col.max()) - float(col.min()) > 0.95 * (hi - lo), key
            else:
                assert bool((col == lo).all()), key
    assert p.ir_length == math.ceil((0.040 + 1.0 * 3.0) * SR)
    assert len(set(p["reverb.seed"].tolist())) == 2000


def test_probabilities_by_name_like_for_like() -> None:
    probs = {"eq": 1.0, "compressor": 1.0, "pan": 0.0, "imager": 1.0, "reverb": 0.0, "gain": 1.0}
    p = sample_params(50, probabilities=probs, generator=gen(1))
    expected = torch.tensor([probs[e] == 1.0 for e in EFFECTS]).expand(50, -1)
    assert torch.equal(p.active, expected)
    # Overrides change flags only, never the values drawn from the same seed.
    q = sample_params(50, generator=gen(1))
    for key in FxParams.continuous_fields():
        assert torch.equal(p[key], q[key]), key


# ---------------------------------------------------------------------------------------------
# FxParams


@pytest.mark.parametrize("device", devices)
def test_fxparams_index_cat_to(device: str) -> None:
    p = sample_params(7, stems=["drums", "bass"] * 3 + ["vocals"], generator=gen(2))
    assert len(p) == 7
    one = p[3]
    assert len(one) == 1 and torch.equal(one["gain.gain_db"], p["gain.gain_db"][3:4])
    assert torch.equal(p[np.int64(3)]["eq.q"], one["eq.q"])  # numpy integers index too
    assert len(p[-1]) == 1 and int(p[-1].stem[0]) == STEMS.index("vocals")
    sub = p[torch.tensor([0, 5])]
    assert torch.equal(sub["eq.freq_hz"], p["eq.freq_hz"][[0, 5]])
    assert torch.equal(p[[1, 2]].active, p.active[1:3])
    back = FxParams.cat([p[:2], p[2:5], p[5:]])
    for name in FxParams.tensor_fields():
        assert torch.equal(_field(back, name), _field(p, name)), name
    moved = p.to(device)
    assert moved.device.type == device and moved["eq.gain_db"].device.type == device
    assert torch.equal(moved.to("cpu")["reverb.seed"], p["reverb.seed"])
    on_dev = sample_params(
        7, stems=["drums", "bass"] * 3 + ["vocals"], generator=gen(2), device=device
    )
    for name in FxParams.tensor_fields():
        assert torch.equal(_field(on_dev, name).cpu(), _field(p, name)), name
    with pytest.raises(IndexError):
        p[7]
    with pytest.raises(ValueError, match="ir_length"):
        FxParams.cat([p, sample_params(2, config=SHORT)])


@pytest.mark.parametrize("device", devices)
def test_manipulator_on_device(device: str) -> None:
    p = sample_params(4, config=SHORT, probabilities=HALF, generator=gen(8), device=device)
    x = noise((4, 2, 1200), dtype=torch.float32).to(device)
    y = Manipulator(p)(x)
    assert y.device == x.device and y.dtype == x.dtype and y.shape == x.shape
    assert bool(torch.isfinite(y).all())
    assert torch.equal(y, Manipulator(p)(x))
    # Params on the CPU follow the audio.
    torch.testing.assert_close(Manipulator(p.to("cpu"))(x), y, rtol=1e-5, atol=1e-6)
    # Against an independent reference on every device (on the CPU too, where the lines above
    # compare the CPU with itself): each item through the functional effects, in float64.
    p64 = p.to("cpu")
    x64 = x.cpu().double()
    assert bool(p64.active.any())
    for i in range(4):
        ref = reference_chain(x64[i : i + 1], p64[i])
        torch.testing.assert_close(y[i : i + 1].cpu().double(), ref, rtol=1e-4, atol=2e-5)


def _field(p: FxParams, name: str) -> torch.Tensor:
    return p[name] if "." in name else getattr(p, name)


def test_describe_and_repr() -> None:
    p = sample_params(12, stems=["vocals"] * 12, probabilities=HALF, generator=gen(3))
    for i in range(12):
        text = p.describe(i)
        chain = p.chain(i)
        positions = [text.index(f". {name}:") for name in chain]
        assert positions == sorted(positions)
        if "eq" in chain:
            assert "Hz" in text and "dB" in text
        if "compressor" in chain:
            assert "ms" in text and ":1" in text
        if not chain:
            assert "identity" in text
        assert "stem vocals" in text
    r = repr(p)
    assert "batch=12" in r and "vocals=12" in r and "reverb" in r
    assert Manipulator(p).describe(0) == p.describe(0)
    assert "FxParams(batch=12" in repr(Manipulator(p))


# ---------------------------------------------------------------------------------------------
# from_normalized


def test_from_normalized_layout_and_gradient() -> None:
    space = ParamSpace(SHORT)
    assert len(space) == 24
    u = torch.rand(3, len(space), generator=gen(1), dtype=torch.float64)
    u.requires_grad_(True)
    m = Manipulator.from_normalized(u, config=SHORT)
    p = m.params
    assert bool(p.active.all())
    assert p.chain(0) == ["eq", "compressor", "pan", "imager", "reverb", "gain"]
    # The ratio's spec is log-scaled: u maps geometrically onto the config's range.
    lo, hi = SHORT.ranges["compressor.ratio"]
    col = space.names.index("compressor.ratio")
    torch.testing.assert_close(p["compressor.ratio"], lo * (hi / lo) ** u[:, col])
    lo, hi = SHORT.ranges["gain.gain_db"]  # linear
    col = space.names.index("gain.gain_db")
    torch.testing.assert_close(p["gain.gain_db"], lo + u[:, col] * (hi - lo))
    # The constant ranges (shelf Qs, knee, make-up) take their value.
    assert bool((p["eq.q"][:, [0, 4]] == 0.707).all()) and bool(
        (p["compressor.knee_db"] == 0).all()
    )
    torch.testing.assert_close(p.normalized(SHORT), u)
    x = noise((3, 2, 1024))
    m(x).square().sum().backward()
    assert u.grad is not None and bool(torch.isfinite(u.grad).all()) and u.grad.abs().max() > 0
    with pytest.raises(ValueError, match="normalized"):
        Manipulator.from_normalized(torch.rand(3, 5))


# ---------------------------------------------------------------------------------------------
# Errors and config


def test_bad_params_raise() -> None:
    with pytest.raises(ValueError, match="unknown effect"):
        sample_params(2, probabilities={"chorus": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sample_params(2, probabilities={"eq": 1.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sample_params(2, probabilities={"reverb": -0.1})
    with pytest.raises(ValueError, match="unknown stem"):
        sample_params(2, stems=["drums", "piano"])
    with pytest.raises(ValueError, match="entries"):
        sample_params(3, stems=["drums", "bass"])
    with pytest.raises(ValueError, match="stem indices"):
        sample_params(2, stems=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="unknown range"):
        sample_params(2, ranges={"eq_gain": (0.0, 1.0)})
    with pytest.raises(ValueError, match="low <= high"):
        sample_params(2, ranges={"gain.gain_db": (3.0, -3.0)})
    with pytest.raises(ValueError, match=r"leaves the parameter's range \[0, 2\]"):
        sample_params(2, ranges={"imager.width": (0.0, 3.0)})
    with pytest.raises(ValueError, match="batch_size"):
        sample_params(0)
    p = sample_params(3, config=SHORT)
    m = Manipulator(p)
    with pytest.raises(ValueError, match="batch"):
        m(torch.zeros(2, 2, 100))
    with pytest.raises(ValueError, match="shape"):
        m(torch.zeros(3, 100))
    with pytest.raises(ValueError, match="channel"):
        m(torch.zeros(3, 3, 100))
    with pytest.raises(ValueError, match="FxParams"):
        Manipulator({"gain_db": 1.0})  # type: ignore[arg-type]


def test_config_round_trips_json_and_yaml(tmp_path) -> None:
    cfg = ChainConfig().replace(
        probabilities={"pan": 1.0, "reverb": {"bass": 0.2}, "invert_polarity": 0.1},
        ranges={"imager.width": (0.5, 1.5)},
        sample_rate=48000.0,
    )
    assert cfg.probabilities["pan"] == 1.0 and cfg.reverb_probabilities["bass"] == 0.2
    assert cfg.reverb_probabilities["vocals"] == 0.9
    path = tmp_path / "chain.json"
    cfg.to_json(path)
    assert ChainConfig.from_json(path) == cfg
    assert ChainConfig.from_json(cfg.to_json()) == cfg
    assert json.loads(path.read_text())["ranges"]["imager.width"] == [0.5, 1.5]
    # A file may list only what it changes.
    partial = ChainConfig.from_json('{"probabilities": {"gain": 0.25}}')
    assert partial.probabilities["gain"] == 0.25 and partial.ranges == ChainConfig().ranges
    pytest.importorskip("yaml", reason="PyYAML is an optional dependency")
    ypath = tmp_path / "chain.yaml"
    cfg.to_yaml(ypath)
    assert ChainConfig.from_yaml(ypath) == cfg
    assert ChainConfig.from_yaml(cfg.to_yaml()) == cfg
    with pytest.raises(ValueError, match="no such config file"):
        ChainConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="unknown ChainConfig field"):
        ChainConfig.from_dict({"probabilitys": {}})
    # A config's draw uses its sample rate and ranges.
    p = sample_params(500, config=cfg, generator=gen(0))
    assert p.sample_rate == 48000.0
    assert float(p["imager.width"].min()) >= 0.5 and float(p["imager.width"].max()) <= 1.5
    assert bool(p.effect_on("pan").all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_silence_through_every_effect_has_finite_gradients(dtype: torch.dtype) -> None:
    """Silence in: silence out, and no NaN gradient from the RMS matches (sqrt at 0)."""
    params = sample_params(
        3,
        probabilities={name: 1.0 for name in EFFECTS},
        generator=torch.Generator().manual_seed(0),
    )
    x = torch.zeros(3, 2, 8000, dtype=dtype, requires_grad=True)
    y = Manipulator(params)(x)
    assert torch.equal(y, torch.zeros_like(y))
    (y.double() ** 2).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_audio_runs_in_float32_and_keeps_its_dtype(dtype: torch.dtype) -> None:
    p = sample_params(3, config=SHORT, probabilities=dict.fromkeys(EFFECTS, 1.0), generator=gen(5))
    x = noise((3, 2, 4000), dtype=torch.float32).to(dtype)
    y = Manipulator(p)(x)
    ref = Manipulator(p)(x.float())
    assert y.dtype == dtype and bool(torch.isfinite(y).all())
    eps = torch.finfo(dtype).eps
    err = (y.float() - ref).abs().max() / ref.abs().max()
    assert float(err) < 8 * eps  # the dtype's rounding of the float32 result, not more


# ---------------------------------------------------------------------------------------------
# The text, the indexing and the placement of a draw, exactly


def _handmade() -> FxParams:
    """Three items with chosen values: every effect on in swapped orders (bass), every effect
    off (drums), only the gain on (vocals)."""
    base = Manipulator.from_normalized(torch.full((3, len(ParamSpace())), 0.5)).params
    values = dict(base.values)
    values["eq.gain_db"] = torch.tensor([[3.0, -2.5, 0.0, 1.0, -6.0]] * 3)
    values["eq.freq_hz"] = torch.tensor([[100.0, 500.0, 2000.0, 5000.0, 8000.0]] * 3)
    values["eq.q"] = torch.tensor([[0.707, 1.0, 2.0, 0.5, 0.707]] * 3)
    for key, value in {
        "compressor.threshold_db": -20.0, "compressor.ratio": 4.0, "compressor.attack_ms": 10.0,
        "compressor.release_ms": 100.0, "compressor.knee_db": 6.0, "compressor.makeup_db": 2.5,
        "pan.pan": -0.25, "imager.width": 1.5, "reverb.rt60_s": 1.2,
        "reverb.predelay_ms": 12.5, "reverb.damping": 0.3, "reverb.mix": 0.2,
    }.items():  # fmt: skip
        values[key] = torch.full((3,), value)
    values["gain.gain_db"] = torch.tensor([-3.0, 0.0, 0.5])
    values["pan.law"] = torch.tensor([2, 0, 0])
    values["reverb.seed"] = torch.tensor([7, 0, 0])
    values["gain.invert_polarity"] = torch.tensor([True, False, False])
    active = torch.zeros(3, len(EFFECTS), dtype=torch.bool)
    active[0] = True
    active[2, EFFECTS.index("gain")] = True
    swapped = torch.tensor([[1, 0], [0, 1], [0, 1]])
    return FxParams(
        stem=torch.tensor([1, 0, 3]), active=active, order1=swapped, order2=swapped.clone(),
        values=values, sample_rate=48000.0, ir_length=96,
    )  # fmt: skip


DESCRIBED = [
    "item 0 (stem bass):",
    "  1. compressor: threshold_db -20 dB, ratio 4:1, attack_ms 10 ms, release_ms 100 ms, "
    "knee_db 6 dB, makeup_db 2.5 dB",
    "  2. eq: low_shelf 100 Hz +3.0 dB Q 0.71, peak1 500 Hz -2.5 dB Q 1.00, peak2 2000 Hz +0.0 dB "
    "Q 2.00, peak3 5000 Hz +1.0 dB Q 0.50, high_shelf 8000 Hz -6.0 dB Q 0.71",
    "  3. imager: width 1.5",
    "  4. pan: pan -0.25, law -4.5dB",
    "  5. reverb: rt60_s 1.2 s, predelay_ms 12.5 ms, damping 0.3, mix 0.2, seed 7",
    "  6. gain: gain_db -3 dB, polarity inverted",
    "item 1 (stem drums):",
    "  (no effect: identity)",
    "  off: eq, compressor, pan, imager, reverb, gain",
    "item 2 (stem vocals):",
    "  1. gain: gain_db 0.5 dB",
    "  off: eq, compressor, pan, imager, reverb",
]


def test_describe_is_exact_text() -> None:
    p = _handmade()
    assert p.describe() == "\n".join(DESCRIBED)
    assert p.describe(-3) == "\n".join(DESCRIBED[:7]) and p.describe(2) == "\n".join(DESCRIBED[10:])
    for bad in (3, -4):
        with pytest.raises(IndexError) as info:
            p.describe(bad)
        assert str(info.value) == f"index {bad} out of range for a batch of 3"
    assert repr(p) == (
        "FxParams(batch=3, stems: drums=1, bass=1, vocals=1, on: eq 1/3, compressor 1/3, pan 1/3, "
        "imager 1/3, reverb 1/3, gain 2/3, sample_rate=48000, ir_length=96, device=cpu)"
    )
    assert repr(p[0]).startswith("FxParams(batch=1, stems: bass=1, on: eq 1/1,")


def test_indexing_rules_and_messages() -> None:
    p = _handmade()
    with pytest.raises(KeyError) as info:
        p["eq.gain"]
    assert info.value.args[0] == f"no value 'eq.gain'; FxParams has {list(p.values)}"
    for flag in (True, torch.tensor(False)):
        with pytest.raises(ValueError) as info:
            p[flag]
        assert str(info.value) == "FxParams cannot be indexed by a bool"
    mask = p[torch.tensor([True, False, True])]  # a 1-d mask selects items
    assert mask.stem.tolist() == [1, 3]
    one = p[torch.tensor(2)]  # a 0-d integer tensor is an integer: a batch of 1
    assert len(one) == 1 and one.stem.tolist() == [3]
    assert p[-3].stem.tolist() == [1] and p[[2, 0]].stem.tolist() == [3, 1]
    assert len(p[[]]) == 0  # an empty list selects nothing (it is not a float tensor)
    cases = [
        (lambda: p[3], IndexError, "index 3 out of range for a batch of 3"),
        (lambda: p[-4], IndexError, "index -4 out of range for a batch of 3"),
        (lambda: p[["a"]], ValueError, "cannot index FxParams with ['a']"),
        (lambda: p[torch.tensor(1.0)], ValueError,
         "FxParams index must be integer or bool, got torch.float32"),
        (lambda: FxParams.cat([]), ValueError, "FxParams.cat needs at least one FxParams"),
        (lambda: FxParams.cat([p, sample_params(1)]), ValueError,
         "FxParams.cat: sample_rate/ir_length differ: (48000.0, 96) vs (44100.0, 134064)"),
        (lambda: p.effect_on("delay"), ValueError,
         f"unknown effect 'delay'; expected one of {EFFECTS}"),
    ]  # fmt: skip
    for call, error, message in cases:
        with pytest.raises(error) as info:
            call()
        assert str(info.value) == message


def test_draws_are_made_and_moved_on_the_input_device() -> None:
    """The meta device stands in for an accelerator: every tensor of the draw follows ``u``."""
    u = torch.full((2, len(ParamSpace(SHORT))), 0.5, device="meta")
    p = Manipulator.from_normalized(u, config=SHORT, stems="bass").params
    devices = {name: t.device.type for name, t in p._tensor_items()}
    assert set(devices.values()) == {"meta"}, devices
    moved = _handmade().to("meta")
    assert {t.device.type for _, t in moved._tensor_items()} == {"meta"}
    assert moved[torch.tensor([0, 2])].stem.device.type == "meta"


def test_from_normalized_defaults_and_per_item_discrete_values() -> None:
    u = torch.rand(3, len(ParamSpace(SHORT)), generator=gen(2))
    p = Manipulator.from_normalized(u, config=SHORT).params
    assert p["pan.law"].tolist() == [0, 0, 0] and p["reverb.seed"].tolist() == [0, 0, 0]
    assert p["pan.law"].dtype == p["reverb.seed"].dtype == torch.int64
    assert p.stem.tolist() == [STEMS.index(SHORT.default_stem)] * 3
    assert (p.sample_rate, p.ir_length) == (SHORT.sample_rate, SHORT.ir_length)
    q = Manipulator.from_normalized(
        u, config=SHORT, pan_law=torch.tensor([2, 1, 0]), reverb_seed=5, stems=["vocals"] * 3
    ).params
    assert q["pan.law"].tolist() == [2, 1, 0] and q["reverb.seed"].tolist() == [5, 5, 5]
    assert q.stem.tolist() == [3, 3, 3] and not bool(q["gain.invert_polarity"].any())


def _reference_draw(batch: int, seed: int, stems: list[str], dtype: torch.dtype) -> dict:
    """sample_params' documented sequence, written out: on/off flags (B, 6), group swaps (B, 2),
    every continuous value in registry order (B, bands), pan law, reverb seed, polarity, all
    drawn from one CPU generator in float64."""
    cfg = ChainConfig()
    g = torch.Generator().manual_seed(seed)
    p_on = [
        [cfg.reverb_probabilities[s] if e == "reverb" else cfg.probabilities[e] for e in EFFECTS]
        for s in stems
    ]
    u_on = torch.rand((batch, len(EFFECTS)), generator=g, dtype=torch.float64)
    swap = torch.rand((batch, 2), generator=g, dtype=torch.float64)
    out = {
        "active": [[u_on[i, j].item() < p_on[i][j] for j in range(6)] for i in range(batch)],
        "first": [[int(swap[i, k].item() < 0.5) for k in range(2)] for i in range(batch)],
    }
    for key in qualified_names():
        bounds = cfg.band_ranges(key)
        u = torch.rand((batch, len(bounds)), generator=g, dtype=torch.float64)
        values = [[lo + u[i, k].item() * (hi - lo) for k, (lo, hi) in enumerate(bounds)]
                  for i in range(batch)]  # fmt: skip
        out[key] = torch.tensor(values, dtype=torch.float64).to(dtype)
    out["pan.law"] = torch.randint(0, 3, (batch,), generator=g)
    out["reverb.seed"] = torch.randint(0, 2**62, (batch,), generator=g)
    out["invert"] = torch.rand((batch,), generator=g, dtype=torch.float64) < 0.5
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_params_is_the_documented_draw_sequence(dtype: torch.dtype) -> None:
    stems = ["drums", "vocals", "bass", "other", "vocals"]
    p = sample_params(5, stems=stems, generator=21, dtype=dtype)
    want = _reference_draw(5, 21, stems, dtype)
    assert p.active.tolist() == want["active"]
    assert p.order1[:, 0].tolist() == [f[0] for f in want["first"]]
    assert p.order2[:, 0].tolist() == [f[1] for f in want["first"]]
    for key in qualified_names():
        got = p[key] if p[key].ndim == 2 else p[key][:, None]
        assert got.dtype == dtype and torch.equal(got, want[key]), key
    assert torch.equal(p["pan.law"], want["pan.law"])
    assert torch.equal(p["reverb.seed"], want["reverb.seed"])
    assert torch.equal(p["gain.invert_polarity"], want["invert"])
    on_meta = sample_params(5, stems=stems, generator=21, dtype=dtype, device="meta")
    assert {t.device.type for _, t in on_meta._tensor_items()} == {"meta"}
    assert sample_params(2).device.type == "cpu"


class _MetaGenerator(torch.Generator):
    """A generator that reports an accelerator device (none can be made on a CPU-only host)."""

    device = torch.device("meta")


def test_stems_and_generators_are_checked_with_exact_messages() -> None:
    int32 = sample_params(2, stems=torch.tensor([0, 3], dtype=torch.int32))
    assert int32.stem.dtype == torch.int64 and int32.stem.tolist() == [0, 3]
    cases = [
        ({"stems": torch.tensor([0.0, 1.0])},
         "stems must be a (batch,) integer tensor, got torch.float32 shape (2,)"),
        ({"stems": torch.tensor([[0, 1]])},
         "stems must be a (batch,) integer tensor, got torch.int64 shape (1, 2)"),
        ({"stems": torch.tensor([True, False])},
         "stems must be a (batch,) integer tensor, got torch.bool shape (2,)"),
        ({"stems": torch.tensor([0, 4])}, "stem indices must be in [0, 3], got [0, 4]"),
        ({"stems": ["drums", "piano", 7]},
         f"unknown stem name(s) ['7', 'piano']; expected one of {STEMS}"),
        ({"generator": "seed"},
         "generator must be a CPU torch.Generator or an int seed, got str"),
        ({"generator": _MetaGenerator()},
         "generator must be a CPU torch.Generator, got one on meta"),
        ({"config": {"eq": 1.0}}, "config must be a ChainConfig, got dict"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(ValueError) as info:
            sample_params(2, **kwargs)
        assert str(info.value) == message, kwargs
    for bad in (2.5, True, 0):
        with pytest.raises(ValueError) as info:
            sample_params(bad)  # type: ignore[arg-type]
        assert str(info.value) == f"batch_size must be a positive int, got {bad!r}"


def test_fxparams_checks_name_the_field() -> None:
    p = _handmade()

    def with_(**changes: object) -> str:
        fields = {"stem": p.stem, "active": p.active, "order1": p.order1, "order2": p.order2,
                  "values": p.values} | changes  # fmt: skip
        with pytest.raises(ValueError) as info:
            FxParams(**fields)  # type: ignore[arg-type]
        return str(info.value)

    assert with_(values=[1]) == "FxParams.values must be a mapping, got list"
    assert with_(stem=torch.tensor(1)) == "FxParams stem must be a (batch, ...) tensor"
    assert with_(active=p.active[:2]) == "FxParams active has batch 2, but stem has 3"
    assert with_(active=p.active[:, :5]) == "FxParams.active must be a (batch, 6) bool tensor"
    assert with_(order1=p.order1.int()) == "FxParams.order1 must be int64, got torch.int32"
    assert with_(order2=p.order2[:, :1]) == "FxParams.order2 must be (batch, 2), got (3, 1)"
    assert with_(stem=torch.tensor([[1], [0], [3]])) == "FxParams.stem must be (batch,), got (3, 1)"
    assert with_(stem=torch.tensor([1, 0, 4])) == (
        f"FxParams.stem indices must be in [0, 3] ({STEMS}), got [1, 0, 4]"
    )
    values = dict(p.values) | {"compressor.ratio": torch.tensor([4, 4, 4])}
    assert with_(values=values) == (
        "FxParams 'compressor.ratio' must be a floating (batch) tensor, got torch.int64 (3,)"
    )
    values = dict(p.values) | {"eq.q": torch.ones(3, 4)}
    assert with_(values=values) == (
        "FxParams 'eq.q' must be a floating (batch, 5) tensor, got torch.float32 (3, 4)"
    )
    with pytest.raises(ValueError) as info:
        p.effect("delay")
    assert str(info.value) == f"unknown effect 'delay'; expected one of {EFFECTS}"
    with pytest.raises(ValueError) as info:
        Manipulator({"stem": 1})  # type: ignore[arg-type]
    assert str(info.value) == "params must be an FxParams, got dict"
    m = Manipulator(sample_params(2, config=SHORT))
    for x, message in (
        (noise((3, 2, 64)), "the audio has batch 3 but the params have 2 items"),
        (noise((2, 3, 64)), "x must have 1 or 2 channel(s), got 3 (shape (2, 3, 64))"),
    ):
        with pytest.raises(ValueError) as info:
            m(x)
        assert str(info.value) == message


def test_from_normalized_records_the_config_and_int64_discrete_values() -> None:
    cfg = SHORT.replace(sample_rate=48000.0)
    u = torch.rand(3, len(ParamSpace(cfg)), generator=gen(4))
    laws = torch.tensor([2, 1, 0], dtype=torch.int32)
    p = Manipulator.from_normalized(u, config=cfg, pan_law=laws).params
    assert (p.sample_rate, p.ir_length) == (48000.0, cfg.ir_length) != (SR, SHORT.ir_length)
    assert p["pan.law"].dtype == torch.int64 and p["pan.law"].tolist() == [2, 1, 0]
