"""cloner.parametric: the controller's chain, its neutral point, rendering, features, the
controller, refinement, checkpoints (tiny sizes, short audio)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import fxdsp
from cloner.parametric import (
    OFF_VALUES,
    ParamController,
    ParamControllerConfig,
    audio_features,
    controller_chain,
    excerpt,
    feature_distance,
    load_controller,
    neutral_normalized,
    predict,
    refine,
    render,
    render_stages,
    save_controller,
    spread,
    target_normalized,
)
from fxdsp import ParamSpace
from fxdsp.registry import EFFECTS, STEMS
from fxencoder import FXEncoder, FXEncoderConfig
from fxencoder.features import effect_features_raw

SR = 44100
SPACE = ParamSpace(controller_chain(SR))


def _noise(batch: int, seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 2, round(seconds * SR), generator=g)
    # a level envelope and some colour, so that the compressor and the EQ have work to do
    env = torch.linspace(0.2, 1.0, x.shape[-1]) ** 2
    x = torch.nn.functional.avg_pool1d(x, 3, 1, 1) * env
    return 0.2 * x


def _fixed_order(params: fxdsp.FxParams) -> fxdsp.FxParams:
    """The draw with the controller's order, law and polarity (what it can represent)."""
    b = len(params)
    values = dict(params.values)
    values["pan.law"] = torch.zeros(b, dtype=torch.int64)
    values["gain.invert_polarity"] = torch.zeros(b, dtype=torch.bool)
    order = torch.tensor([[0, 1]]).expand(b, 2).clone()
    return replace(params, order1=order, order2=order.clone(), values=values)


def test_space_reaches_every_neutral_value() -> None:
    assert len(SPACE) == 24
    u = neutral_normalized(SPACE, 3)
    assert u.shape == (3, 24) and float(u.min()) >= 0.0 and float(u.max()) <= 1.0
    values = SPACE.to_physical(u)
    for key, neutral in OFF_VALUES.values():
        assert torch.allclose(values[key].double(), torch.full_like(values[key].double(), neutral),
                              atol=1e-6)  # fmt: skip


def test_neutral_chain_is_the_identity() -> None:
    x = _noise(2, 0.3)
    y = render(neutral_normalized(SPACE, 2), x, SR)
    assert y.shape == x.shape and float((y - x).abs().max()) < 1e-6
    mono = x[:, :1]
    assert float((render(neutral_normalized(SPACE, 2), mono, SR) - mono.expand(-1, 2, -1))
                 .abs().max()) < 1e-6  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_output_reproduces_the_drawn_target(seed: int) -> None:
    """A controller whose output is the draw's normalized parameters gives the target: every
    effect on, and effects off (their switch at the neutral value)."""
    probs = {e: 1.0 for e in EFFECTS} if seed == 0 else None
    params = fxdsp.sample_params(
        3, stems=["drums", "bass", "vocals"], generator=torch.Generator().manual_seed(seed),
        probabilities=probs, config=fxdsp.ChainConfig(),
    )  # fmt: skip
    params = _fixed_order(params)
    if seed == 1:
        assert not bool(params.active.all())  # some effects are off in this draw
    x = _noise(3, 0.4, seed)
    target = fxdsp.Manipulator(params)(x)
    u, mask = target_normalized(params, SPACE)
    assert float(u.min()) >= 0 and float(u.max()) <= 1
    y = render(u, x, SR, reverb_seed=params.values["reverb.seed"])
    err = float((y - target).abs().max() / target.abs().max())
    assert err < 1e-4, err
    # masked columns: the parameters of effects that are off
    for e, effect in enumerate(EFFECTS):
        cols = [j for j, (k, _) in enumerate(SPACE.columns) if k.startswith(effect + ".")]
        switch = [j for j in cols if SPACE.columns[j][0] == OFF_VALUES[effect][0]]
        off = ~params.active[:, e]
        assert bool((mask[:, switch] == 1).all())
        for j in set(cols) - set(switch):
            assert torch.equal(mask[:, j], (~off).float())


def test_render_stages_is_the_manipulator_bit_for_bit() -> None:
    """Drawn chains with effects off, swapped orders, pan laws, polarity flips, a mono input:
    the same output, and the RMS-match gains that rebuild it."""
    params = fxdsp.sample_params(4, stems=list(STEMS), generator=torch.Generator().manual_seed(7))
    assert not bool(params.active.all()) and bool((params.order2[:, 0] == 1).any())
    x = _noise(4, 0.3, 7)
    for i in range(4):
        xi = x[i : i + 1, :1] if i == 2 else x[i : i + 1]
        y, levels = render_stages(params[i], xi)
        assert torch.equal(y, fxdsp.Manipulator(params[i])(xi)), i
        assert list(levels) == [e for e in params.chain(i) if e != "gain"]
    with pytest.raises(ValueError, match="one item"):
        render_stages(params, x)


def test_spread_takes_evenly_spaced_windows() -> None:
    x = torch.arange(100.0).expand(1, 2, -1)
    y = spread(x, 10, 3)
    expected = torch.cat([torch.arange(0.0, 10), torch.arange(45.0, 55), torch.arange(90.0, 100)])
    assert y.shape == (1, 2, 30) and torch.equal(y[0, 0], expected)
    assert torch.equal(spread(x, 10, 10), x)
    with pytest.raises(ValueError, match="count"):
        spread(x, 10, 0)


def test_render_gradients_reach_every_parameter() -> None:
    x = _noise(2, 0.3)
    u = torch.rand(2, 24, generator=torch.Generator().manual_seed(3)) * 0.8 + 0.1
    u.requires_grad_(True)
    y = render(u, x, SR)
    (y.square().mean() + y[:, 0].mean()).backward()
    g = u.grad
    assert g is not None and bool(torch.isfinite(g).all())
    assert int((g.abs() > 0).sum()) == g.numel()


def test_render_rejects_bad_input() -> None:
    x = _noise(2, 0.1)
    with pytest.raises(ValueError, match=r"\(batch, 24\)"):
        render(torch.rand(2, 23), x, SR)
    with pytest.raises(ValueError, match="batch"):
        render(torch.rand(3, 24), x, SR)
    with pytest.raises(ValueError, match="Nyquist"):
        render(torch.rand(2, 24), x, 16000)


def test_audio_features_match_the_encoders_and_carry_gradients() -> None:
    x = _noise(3, 0.5).double()
    f = audio_features(x, SR)
    ref = effect_features_raw(x, SR)
    assert f.shape == ref.shape == (3, 52)
    assert float((f - ref).abs().max()) < 1e-9
    x.requires_grad_(True)
    audio_features(x, SR).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    silent = audio_features(torch.zeros(1, 2, 4096), SR)
    assert bool(torch.isfinite(silent).all()) and float(silent[0, -4]) == -100.0


def test_feature_distance_closed_forms() -> None:
    x = _noise(2, 0.5).double()
    f = audio_features(x, SR)
    assert torch.equal(feature_distance(f, f, SR), torch.zeros(2, dtype=f.dtype))
    # +6 dB changes only the RMS column, by 20·log10(2) dB: one group of six, scale 6 dB
    g = audio_features(x * 2.0, SR)
    expected = 20 * math.log10(2.0) / 6.0 / 6.0
    assert torch.allclose(feature_distance(f, g, SR), torch.full((2,), expected,
                          dtype=f.dtype), atol=1e-6)  # fmt: skip
    with pytest.raises(ValueError, match="features"):
        feature_distance(f, g[:, :10], SR)


def test_controller_starts_neutral_and_stays_in_range() -> None:
    torch.manual_seed(0)
    c = ParamController(ParamControllerConfig.preset("tiny"))
    b = 4
    e_in, e_ref = torch.randn(b, 16), torch.randn(b, 16)
    f = audio_features(_noise(b, 0.3), SR)
    u = c(e_in, e_ref, list(STEMS), f, f).detach()
    start = neutral_normalized(c.space, b).clamp(0.01, 0.99)
    assert u.shape == (b, 24) and float((u - start).abs().max()) < 1e-5
    # perturbed weights: outputs still in [0, 1], and item i does not depend on the others
    with torch.no_grad():
        for p in c.parameters():
            p.add_(torch.randn_like(p) * 3)
    u = c(e_in, e_ref, list(STEMS), f, f).detach()
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.0
    assert torch.allclose(u[2:3], c(e_in[2:3], e_ref[2:3], ["other"], f[2:3], f[2:3]), atol=1e-6)
    assert c.names[14] == "compressor.ratio"


def test_clamped_outputs_keep_their_gradient() -> None:
    """A column pushed past the end of its range reads exactly 0 but still gets the gradient of
    the unclamped sigmoid, (1 + 2m) σ'(z) (a plain clamp would give 0 and never recover)."""
    c = ParamController(ParamControllerConfig.preset("tiny"))
    with torch.no_grad():
        c.head.bias[22] = -8.0  # the wet fraction, far below 0
    e, f = torch.zeros(1, 16), torch.zeros(1, 52)
    u = c(e, e, ["vocals"], f, f)
    assert float(u[0, 22].detach()) == 0.0
    u[0, 22].backward()
    s = torch.sigmoid(torch.tensor(-8.0))
    assert float(c.head.bias.grad[22]) == pytest.approx(float(1.1 * s * (1 - s)), rel=1e-4)


def test_controller_input_errors() -> None:
    c = ParamController(ParamControllerConfig.preset("tiny"))
    e = torch.randn(2, 16)
    f = torch.zeros(2, 52)
    with pytest.raises(ValueError, match="emb_reference must be"):
        c(e, torch.randn(2, 15), ["drums", "bass"], f, f)
    with pytest.raises(ValueError, match="unknown stem"):
        c(e, e, ["drums", "guitar"], f, f)
    with pytest.raises(ValueError, match="feat_input"):
        c(e, e, ["drums", "bass"])
    with pytest.raises(ValueError, match="finite"):
        c(e * float("nan"), e, ["drums", "bass"], f, f)
    no_feat = ParamController(ParamControllerConfig.preset("tiny", use_features=False))
    with pytest.raises(ValueError, match="takes no features"):
        no_feat(e, e, ["drums", "bass"], f, f)
    with pytest.raises(ValueError, match="unknown preset"):
        ParamControllerConfig.preset("huge")
    with pytest.raises(ValueError, match="sample_rate"):
        ParamControllerConfig(sample_rate=16000)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    c = ParamController(ParamControllerConfig.preset("tiny"))
    with torch.no_grad():
        for p in c.parameters():
            p.add_(torch.randn_like(p))
    save_controller(c, tmp_path / "c.pt", encoder={"source": "x"})
    back = load_controller(tmp_path / "c.pt")
    e, f = torch.randn(2, 16), torch.randn(2, 52)
    assert torch.equal(
        c.eval()(e, e, ["bass", "vocals"], f, f), back(e, e, ["bass", "vocals"], f, f)
    )
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a parameter-controller checkpoint"):
        load_controller(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="no controller file"):
        load_controller(tmp_path / "missing.pt")


def test_half_precision_checkpoint_and_shipped_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import cloner.parametric as pm
    from fxencoder.api import sha256_of

    torch.manual_seed(2)
    c = ParamController(ParamControllerConfig.preset("tiny")).eval()
    save_controller(c, tmp_path / "h.pt", half=True, encoder={"source": "x"})
    stored = torch.load(tmp_path / "h.pt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    back = load_controller(tmp_path / "h.pt")
    for (name, a), b in zip(c.state_dict().items(), back.state_dict().values(), strict=True):
        assert b.dtype == a.dtype and torch.equal(b, a.half().to(a.dtype)), name
    # a name of the manifest, checked against its SHA-256
    monkeypatch.setattr(pm, "CONTROLLER_MANIFEST", tmp_path / "controllers.json")
    with pytest.raises(ValueError, match=r"no controller model named 'default'.*train-params"):
        load_controller("default")
    (tmp_path / "controllers.json").write_text(
        json.dumps({"default": {"file": "h.pt", "sha256": sha256_of(tmp_path / "h.pt")}})
    )
    assert load_controller("default").config == c.config
    both, info = pm.load_controller_with_info("default")  # one read: model and info
    assert info == pm.read_controller_info("default") and info["encoder"] == {"source": "x"}
    assert all(torch.equal(a, b) for a, b in zip(
        back.state_dict().values(), both.state_dict().values(), strict=True))  # fmt: skip
    data = (tmp_path / "h.pt").read_bytes()
    (tmp_path / "h.pt").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_controller("default")


def test_the_shipped_controllers_match_their_manifest() -> None:
    import json

    import cloner.parametric as pm
    from fxencoder.api import sha256_of

    manifest = json.loads(pm.CONTROLLER_MANIFEST.read_text())
    assert "default" in manifest
    for name, entry in manifest.items():
        path = pm.CONTROLLER_MANIFEST.parent / entry["file"]
        assert sha256_of(path) == entry["sha256"], name
        info = pm.read_controller_info(name)
        assert info["encoder"]["source"] == "default"  # trained on the shipped encoder
        assert load_controller(name).num_parameters() > 0


def test_excerpt_finds_the_loudest_stretch() -> None:
    x = torch.zeros(2, 2, 10000)
    x[0, :, 6000:7000] = 1.0
    x[1, :, 1000:2000] = 1.0
    y = excerpt(x, 1000, hop=250)
    assert y.shape == (2, 2, 1000)
    assert float(y[0].sum()) == 2000.0 and float(y[1].sum()) == 2000.0
    assert torch.equal(excerpt(x, 20000), x)


@pytest.fixture(scope="module")
def encoder() -> FXEncoder:
    torch.manual_seed(0)
    return FXEncoder(FXEncoderConfig.preset("tiny")).eval()


def test_refine_reduces_the_distance_it_minimises(encoder: FXEncoder) -> None:
    """From the neutral chain towards a reference made by a known chain on the same content:
    the loss falls, the best seen is returned, and the reported first loss is the neutral
    chain's, recomputed here independently."""
    x = _noise(2, 0.6, 5)
    u_true = neutral_normalized(SPACE, 2)
    u_true[:, 0:5] = torch.tensor([0.9, 0.2, 0.8, 0.3, 0.9])  # strong EQ moves
    u_true[:, 23] = 0.9  # +7.5 dB
    with torch.no_grad():
        ref = render(u_true, x, SR)
        e_ref = encoder(ref)
        f_ref = audio_features(ref, SR)
    start = neutral_normalized(SPACE, 2)
    res = refine(start, x, SR, encoder, e_ref, f_ref, steps=6, lr=0.05)
    assert res.losses.shape == (7, 2) and res.params.shape == (2, 24)
    with torch.no_grad():
        y0 = render(start, x, SR)
        cos = torch.nn.functional.cosine_similarity(encoder(y0), e_ref, dim=1, eps=1e-8)
        l0 = (1 - cos) + feature_distance(audio_features(y0, SR), f_ref, SR)
    assert torch.allclose(res.losses[0], l0.double(), rtol=1e-4)
    assert bool((res.best < 0.8 * res.losses[0]).all()), (res.best, res.losses[0])
    assert torch.equal(res.best, res.losses.min(dim=0).values)
    assert float(res.params.min()) >= 0 and float(res.params.max()) <= 1
    # the best parameters give the best loss
    with torch.no_grad():
        yb = render(res.params, x, SR)
        cos = torch.nn.functional.cosine_similarity(encoder(yb), e_ref, dim=1, eps=1e-8)
        lb = (1 - cos) + feature_distance(audio_features(yb, SR), f_ref, SR)
    assert torch.allclose(lb.double(), res.best, rtol=1e-4)
    # the gain moved towards +7.5 dB
    assert bool((res.params[:, 23] > start[:, 23]).all())


def test_refine_and_predict_errors(encoder: FXEncoder) -> None:
    x = _noise(1, 0.2)
    u = neutral_normalized(SPACE, 1)
    e = torch.zeros(1, 16)
    with pytest.raises(ValueError, match="steps"):
        refine(u, x, SR, encoder, e, steps=0, feature_weight=0.0)
    with pytest.raises(ValueError, match="both 0"):
        refine(u, x, SR, encoder, e, steps=1, embedding_weight=0.0, feature_weight=0.0)
    with pytest.raises(ValueError, match="reference_features"):
        refine(u, x, SR, encoder, e, steps=1)
    with pytest.raises(ValueError, match="encoder's rate"):
        refine(u, x, 48000, encoder, e, steps=1, feature_weight=0.0)
    with pytest.raises(ValueError, match=r"params must be \(1, 24\)"):
        refine(u[:, :5], x, SR, encoder, e, steps=1, feature_weight=0.0)
    c = ParamController(ParamControllerConfig.preset("tiny"))
    out = predict(c, encoder, x, SR, x[:, :1], SR, ["vocals"])
    assert out.shape == (1, 24)
    # long audio: the embeddings and features of 3 evenly spaced encoder segments (1 s each)
    with torch.no_grad():
        for p in c.parameters():
            p.add_(0.1 * torch.randn_like(p))
    long = _noise(1, 5.0, 9)
    got = predict(c, encoder, long, SR, long, SR, ["bass"], max_segments=3)
    short = spread(long, SR, 3)
    assert torch.equal(got, predict(c, encoder, short, SR, short, SR, ["bass"], max_segments=None))
    whole = predict(c, encoder, long, SR, long, SR, ["bass"], max_segments=None)
    assert not torch.equal(got, whole)
    with pytest.raises(ValueError, match="references"):
        predict(c, encoder, x, SR, torch.cat([x, x]), SR, ["vocals"])
