"""cloner.api, cloner.inference, cloner.separation: checkpoints, whole-song transfer, Demucs.

The windowed inference is checked against running the network on the whole signal at once
(eval mode, randomised weights and BatchNorm statistics), at the frame rate (stride 8) and at
the waveform rate (stride 1); a context one stride short of the receptive field is shown to
leave seams, so the equality is not vacuous. The cross-fade weights are read back from a model
that outputs its call index; a constant-gain model goes through bit for bit.
"""

from __future__ import annotations

import json
import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

import cloner.api as api
import cloner.inference as inf
import cloner.separation as sep
import fxencoder
from cloner import ClonerConfig, MixFXCloner
from cloner.inference import (
    blend,
    context_samples,
    convert,
    interpolation_conds,
    iter_convert,
    plan_windows,
    reference_embedding,
    transfer,
    transfer_stems,
)
from fxencoder import FXEncoder, FXEncoderConfig

SR = 44100
FRAME = ClonerConfig.preset("tiny", dilations=(1, 2, 4, 8))  # stride 8, context 136 samples
WAVE = ClonerConfig.preset("tiny", stride=1, dilations=(1, 2, 4, 8, 16))  # waveform rate


def randomised(config: ClonerConfig, seed: int = 0, scale: float = 0.15) -> MixFXCloner:
    """A cloner with every weight and BatchNorm statistic random (the synthesis too, so the
    network is far from the identity), in eval mode, its output below the soft limiter's knee."""
    gen = torch.Generator().manual_seed(seed)
    model = MixFXCloner(config)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    return model.eval()


def tiny_encoder(seed: int = 0) -> FXEncoder:
    torch.manual_seed(seed)
    return FXEncoder(FXEncoderConfig.preset("tiny")).eval()


def noise(*shape: int, seed: int = 0, level: float = 0.3) -> Tensor:
    return level * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


class CallIndex(MixFXCloner):
    """Outputs the constant ``k`` on its ``k``-th call (reads the cross-fade weights back)."""

    def __init__(self, config: ClonerConfig) -> None:
        super().__init__(config)
        self.calls = 0

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        self.calls += 1
        return torch.full((x.shape[0], 2, x.shape[-1]), float(self.calls))


class Gain(MixFXCloner):
    """``y = 0.7 x``: a window-independent model."""

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        return 0.7 * x.expand(-1, 2, -1)


# -- windows ----------------------------------------------------------------------------------
def test_context_covers_the_receptive_field() -> None:
    for cfg in (FRAME, WAVE, ClonerConfig.preset("small"), ClonerConfig.preset("paper")):
        c = context_samples(cfg)
        assert c % cfg.stride == 0
        assert 2 * c + 1 >= cfg.receptive_field  # centred: c on each side of the sample
        assert c <= cfg.receptive_field / 2 + 2 * cfg.stride  # not wastefully more


def test_a_level_head_cloner_converts_by_windows_at_its_level() -> None:
    """With a level head each window takes its own RMS ratio: on steady noise the windowed
    output's level is the head's ``g`` (closed form ``rms(y)/rms(x) = 10^(g/20)``) within
    0.2 dB, as one call on the whole signal gives exactly."""
    config = FRAME.replace(level_head=True)
    model = randomised(config)
    x = noise(2, 2, 12000)
    cond = noise(2, config.cond_dim, seed=1, level=1.0)
    with torch.no_grad():
        g = model.level_db(cond)
        whole = model(x, cond)
    y = convert(model, x, SR, cond, window=1000, crossfade=200)
    assert y.shape == x.shape and bool(torch.isfinite(y).all())
    assert float(g.abs().min()) > 0.3  # the head does something
    for i in range(2):
        rx = float(x[i].double().square().mean().sqrt())
        want = float(g[i])
        got_whole = 20 * math.log10(float(whole[i].double().square().mean().sqrt()) / rx)
        got = 20 * math.log10(float(y[i].double().square().mean().sqrt()) / rx)
        assert got_whole == pytest.approx(want, abs=1e-3)
        assert got == pytest.approx(want, abs=0.2)


@pytest.mark.parametrize("config", [FRAME, WAVE], ids=["stride8", "stride1"])
@pytest.mark.parametrize(
    ("window", "crossfade", "shape"),
    [(1000, 200, "cosine"), (777, 0, "cosine"), (3001, 1000, "linear"), (300, 5000, "linear")],
)
def test_windows_equal_the_whole_signal_at_once(
    config: ClonerConfig, window: int, crossfade: int, shape: str
) -> None:
    model = randomised(config)
    x = noise(2, 2, 12000)
    cond = noise(2, config.cond_dim, seed=1, level=1.0)
    with torch.no_grad():
        whole = model(x, cond)
    assert 0.05 < float(whole.abs().max()) < config.output_limit / 2  # far from trivial
    assert float((whole - x).abs().max()) > 0.05  # and not the identity
    y = convert(model, x, SR, cond, window=window, crossfade=crossfade, shape=shape)
    windows = plan_windows(12000, config, window=window, crossfade=crossfade)
    assert len(windows) >= 4
    assert y.shape == whole.shape
    assert float((y - whole).abs().max()) < 1e-5


@pytest.mark.parametrize("config", [FRAME, WAVE], ids=["stride8", "stride1"])
def test_half_the_context_leaves_seams(
    config: ClonerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The equality above needs the context: with half of it the windows' edges show (the far
    end of a receptive field weighs little with these weights, so a few samples short of it
    stay below the tolerance; half is far outside it)."""
    model = randomised(config)
    x = noise(1, 2, 12000)
    cond = noise(1, config.cond_dim, seed=1, level=1.0)
    with torch.no_grad():
        whole = model(x, cond)
    c = context_samples(config)
    monkeypatch.setattr(inf, "context_samples", lambda cfg: c // 2)
    y = convert(model, x, SR, cond, window=1000, crossfade=0)
    assert float((y - whole).abs().max()) > 1e-3  # vs < 1e-5 (measured 3e-7) with it


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_crossfade_weights_rise_from_0_to_1_and_sum_to_1(shape: str) -> None:
    model = CallIndex(FRAME)
    n, window, fade = 5000, 1000, 400
    plan = plan_windows(n, FRAME, window=window, crossfade=fade)
    y = convert(model, torch.zeros(1, 2, n), SR, torch.zeros(1, 16), window=window,
                crossfade=fade, shape=shape)[0, 0]  # fmt: skip
    assert model.calls == len(plan) == 5
    t = (torch.arange(fade, dtype=torch.float64) + 0.5) / fade
    expected = t if shape == "linear" else torch.sin(0.5 * math.pi * t) ** 2
    for k, w in enumerate(plan[1:], start=1):
        ramp = y[w.out_start : w.out_start + fade].double() - k  # (k) (1 − f) + (k + 1) f − k
        assert torch.allclose(ramp, expected, atol=1e-6)
        assert bool((ramp[1:] >= ramp[:-1]).all())
        if k < len(plan) - 1:  # between fades: window k + 1's output alone
            core = y[w.out_start + fade : plan[k + 1].out_start]
            assert bool((core == k + 1).all())
    assert bool((y[: plan[1].out_start] == 1).all())
    assert bool((y[plan[-1].out_start + fade :] == len(plan)).all())


def test_constant_gain_goes_through_the_overlap_add_exactly() -> None:
    x = noise(3, 2, 20000)
    y = convert(Gain(FRAME), x, SR, torch.zeros(3, 16), window=900, crossfade=300)
    assert torch.equal(y, 0.7 * x)


def test_memory_is_one_window_whatever_the_length() -> None:
    model = randomised(FRAME)
    cond = noise(1, 16, seed=1)
    window, fade = 1000, 200
    bound = window + fade + 2 * context_samples(FRAME) + FRAME.stride
    seen: dict[int, list[int]] = {}
    for n in (8000, 64000):
        lengths: list[int] = []
        hook = model.register_forward_pre_hook(lambda m, a, ls=lengths: ls.append(a[0].shape[-1]))
        stream = iter_convert(model, noise(1, 2, n), cond, window=window, crossfade=fade)
        start, first = next(stream)  # output comes out before the rest of the input is read
        assert (start, len(lengths)) == (0, 1)
        covered = first.shape[-1]
        for start, chunk in stream:
            assert start == covered  # contiguous, in order
            covered += chunk.shape[-1]
        hook.remove()
        assert covered == n
        seen[n] = lengths
    assert max(seen[8000]) == max(seen[64000]) <= bound  # the network never sees more
    assert len(seen[64000]) == pytest.approx(8 * len(seen[8000]), rel=0.15)


def test_progress_bar_counts_windows(capsys: pytest.CaptureFixture[str]) -> None:
    convert(Gain(FRAME), noise(1, 2, 5000), SR, torch.zeros(1, 16), window=1000, crossfade=0,
            progress=True)  # fmt: skip
    err = capsys.readouterr().err
    assert "transfer" in err and "5/5" in err


def test_rate_length_and_channels_are_the_inputs() -> None:
    """48 kHz mono in, 48 kHz stereo of the same length out; with the identity network (a fresh
    frame-rate cloner) the round trip through 44.1 kHz keeps a 1 kHz tone."""
    n = 12345
    t = torch.arange(n) / 48000
    tone = 0.5 * torch.sin(2 * math.pi * 1000 * t)
    model = MixFXCloner(FRAME).eval()  # synthesis starts at zero: y = x
    y = convert(model, tone[None], 48000, torch.zeros(1, 16))
    assert y.shape == (2, n) and y.dtype == torch.float32
    assert torch.equal(y[0], y[1])
    inner = slice(200, n - 200)
    assert float((y[0, inner] - tone[inner]).abs().max()) < 1e-3
    y3 = convert(model, tone[None, None].expand(2, 1, -1), 48000, torch.zeros(2, 16))
    assert y3.shape == (2, 2, n)


def test_bad_inputs_are_clear_errors() -> None:
    model = MixFXCloner(FRAME).eval()
    with pytest.raises(ValueError, match="cloner is conditioned on 16"):
        convert(model, noise(1, 2, 1000), SR, torch.zeros(1, 32))
    with pytest.raises(ValueError, match="NaN or Inf"):
        convert(model, torch.full((1, 2, 1000), math.nan), SR, torch.zeros(1, 16))
    with pytest.raises(ValueError, match="shorter than 40 segments"):
        convert(model, noise(1, 2, 30), SR, torch.zeros(1, 40, 16))
    with pytest.raises(ValueError, match="cond has 3 items"):
        convert(model, noise(2, 2, 1000), SR, torch.zeros(3, 16))


# -- conditions --------------------------------------------------------------------------------
def test_interpolation_and_blend_weights() -> None:
    a, b = torch.randn(2, 16), torch.randn(2, 16)
    c = interpolation_conds(a, b, 3)
    assert c.shape == (2, 3, 16)
    assert torch.allclose(c[:, 0], a) and torch.allclose(c[:, 2], b)
    assert torch.allclose(c[:, 1], 0.5 * (a + b))
    assert torch.allclose(blend(a, b, 0.25), 0.25 * a + 0.75 * b)
    with pytest.raises(ValueError, match="segments >= 2"):
        interpolation_conds(a, b, 1)
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\]"):
        blend(a, b, 1.5)


def test_interpolation_conditions_each_segment_and_crossfades_between() -> None:
    model = randomised(FRAME)
    x = noise(1, 2, 9000)
    conds = noise(1, 3, 16, seed=2, level=2.0)
    fade = 400
    y = convert(model, x, SR, conds, window=10**6, crossfade=fade)[0]
    with torch.no_grad():
        whole = [model(x, conds[:, i])[0] for i in range(3)]
    assert float((whole[0] - whole[2]).abs().max()) > 0.01  # the conditions matter
    for i, (lo, hi) in enumerate([(0, 3000), (3000, 6000), (6000, 9000)]):
        inner = slice(lo + fade // 2 if i else 0, hi - fade // 2 if i < 2 else hi)
        assert float((y[:, inner] - whole[i][:, inner]).abs().max()) < 1e-5
    f = torch.sin(0.5 * math.pi * (torch.arange(fade) + 0.5) / fade) ** 2
    region = slice(3000 - fade // 2, 3000 + fade // 2)
    expected = torch.lerp(whole[0][:, region], whole[1][:, region], f)
    assert float((y[:, region] - expected).abs().max()) < 1e-5


def test_reference_embedding_is_the_mean_over_segments() -> None:
    enc = tiny_encoder()
    ref = noise(1, 2, 3 * SR, seed=4)  # three 1-s segments of the tiny encoder
    emb = reference_embedding(enc, ref, SR)
    with torch.no_grad():
        each = enc(ref.reshape(1, 2, 3, SR).permute(2, 0, 1, 3).reshape(3, 2, SR))
    assert torch.allclose(emb[0], each.mean(dim=0), atol=1e-5)


def test_transfer_is_convert_with_the_reference_embedding() -> None:
    enc, model = tiny_encoder(), randomised(FRAME)
    x, ref, ref_b = noise(2, 2, 6000), noise(1, 1, 30000, seed=5), noise(1, 2, 20000, seed=6)
    a, b = reference_embedding(enc, ref, 32000), reference_embedding(enc, ref_b, 32000)
    got = transfer(model, enc, x, SR, ref, 32000, window=1500)
    assert torch.allclose(got, convert(model, x, SR, a.expand(2, -1), window=1500), atol=1e-6)
    got = transfer(model, enc, x, SR, ref, 32000, reference_b=ref_b, weight=0.3, window=1500)
    assert torch.allclose(got, convert(model, x, SR, blend(a, b, 0.3).expand(2, -1),
                                       window=1500), atol=1e-6)  # fmt: skip
    with pytest.raises(ValueError, match="exactly one of weight"):
        transfer(model, enc, x, SR, ref, 32000, reference_b=ref_b)
    with pytest.raises(ValueError, match="need a second reference"):
        transfer(model, enc, x, SR, ref, 32000, segments=4)
    wide = randomised(FRAME.replace(cond_dim=32))
    with pytest.raises(ValueError, match="conditioned on 32"):
        transfer(wide, enc, x, SR, ref, 32000)


def test_transfer_stems_converts_each_with_its_reference_and_sums() -> None:
    enc, model = tiny_encoder(), randomised(FRAME)
    names = ("drums", "bass", "other", "vocals")
    stems = {n: noise(2, 8000, seed=i) for i, n in enumerate(names)}
    stems["vocals"] = torch.zeros(1, 7000)  # silent, mono and shorter
    refs = {n: noise(2, 20000, seed=10 + i) for i, n in enumerate(names)}
    result = transfer_stems(model, enc, stems, SR, refs, SR, window=2000)
    assert set(result.stems) == set(names)
    for n in ("drums", "bass", "other"):
        alone = transfer(model, enc, stems[n], SR, refs[n], SR, window=2000)
        assert torch.allclose(result.stems[n], alone, atol=1e-5)
    assert result.stems["vocals"].shape == (2, 8000)
    assert not bool(result.stems["vocals"].any())
    assert torch.equal(result.mix, sum(result.stems[n] for n in names))
    with pytest.raises(ValueError, match=r"has no stem\(s\) \['bass'\]"):
        transfer_stems(model, enc, stems, SR, {k: v for k, v in refs.items() if k != "bass"}, SR)


# -- checkpoints ---------------------------------------------------------------------------------
def test_save_load_round_trip_and_half(tmp_path: Path) -> None:
    model = randomised(FRAME)
    x, cond = noise(1, 2, 3000), noise(1, 16, seed=1)
    digest = api.save(model, tmp_path / "c.pt", steps=7)
    assert digest == api.sha256_of(tmp_path / "c.pt")
    back = api.load(tmp_path / "c.pt")
    assert not back.training and back.config == FRAME
    with torch.no_grad():
        assert torch.equal(back(x, cond), model(x, cond))
    assert api.read_info(tmp_path / "c.pt")["steps"] == 7
    api.save(model, tmp_path / "h.pt", half=True)
    half = api.load(tmp_path / "h.pt")
    stored = torch.load(tmp_path / "h.pt", weights_only=True)["state_dict"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    assert {p.dtype for p in half.parameters()} == {torch.float32}
    with torch.no_grad():
        assert float((half(x, cond) - model(x, cond)).abs().max()) < 1e-2


def test_training_checkpoints_load(tmp_path: Path) -> None:
    model = randomised(FRAME)
    obj = {
        "format": api.TRAIN_FORMAT, "config": FRAME.to_dict(), "state_dict": model.state_dict(),
        "optimizer": {"state": {}}, "step": 12, "encoder": {"source": "x", "sha256": None},
    }  # fmt: skip
    torch.save(obj, tmp_path / "last.pt")
    back = api.load(tmp_path / "last.pt")
    assert torch.equal(back.blocks[0].conv.weight, model.blocks[0].conv.weight)
    info = api.read_info(tmp_path / "last.pt")
    assert "optimizer" not in info and info["step"] == 12


def test_named_models_are_checked_against_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"no cloner model named 'default'.*train-cloner"):
        api.load("default")
    digest = api.save(randomised(FRAME), tmp_path / "mine.pt")
    (tmp_path / "manifest.json").write_text(
        json.dumps({"default": {"file": "mine.pt", "sha256": digest}})
    )
    assert api.load("default").config == FRAME
    data = (tmp_path / "mine.pt").read_bytes()
    (tmp_path / "mine.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        api.load("default")


def test_shipped_manifest_is_valid_json() -> None:
    manifest = json.loads((api.WEIGHTS_DIR / "manifest.json").read_text())
    assert "default" in manifest
    for name, entry in manifest.items():
        assert (api.WEIGHTS_DIR / entry["file"]).is_file()
        assert api.sha256_of(api.WEIGHTS_DIR / entry["file"]) == entry["sha256"]
        info = api.read_info(name)
        assert info["encoder"]["source"] == "default"  # trained on the shipped encoder
        model = api.load(name)
        assert model.config.cond_dim == info["encoder"]["embed_dim"]
        stored = torch.load(api.WEIGHTS_DIR / entry["file"], weights_only=True)["state_dict"]
        assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
        both, both_info = api.load_with_info(name)  # one read: the same model and info
        assert both_info == info and both.config == model.config
        for k, v in model.state_dict().items():
            assert torch.equal(both.state_dict()[k], v), k


def test_bad_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read cloner checkpoint"):
        api.load(tmp_path / "junk.pt")
    enc = tmp_path / "enc.pt"
    fxencoder.save(tiny_encoder(), enc)
    with pytest.raises(ValueError, match="not a cloner checkpoint"):
        api.load(enc)
    api.save(randomised(FRAME), tmp_path / "c.pt")
    obj = torch.load(tmp_path / "c.pt", weights_only=True)
    obj["config"]["channels"] = 12
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="do not fit the config"):
        api.load(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="no cloner file"):
        api.load(tmp_path / "missing.pt")


def test_a_recorded_encoder_is_found_in_another_checkout(tmp_path: Path, monkeypatch) -> None:
    # Trained in /old/clone; used from a fresh clone (the working directory) holding the file.
    (tmp_path / "checkpoints" / "enc").mkdir(parents=True)
    here = tmp_path / "checkpoints" / "enc" / "enc.pt"
    fxencoder.save(tiny_encoder(), here)
    record = {"source": "/old/clone/checkpoints/enc/enc.pt", "sha256": api.sha256_of(here)}
    api.save(randomised(FRAME), tmp_path / "c.pt", encoder=record)
    info = api.read_info(tmp_path / "c.pt")
    monkeypatch.chdir(tmp_path)
    enc = api.load_encoder_for(info)
    assert enc.config == FXEncoderConfig.preset("tiny")
    fxencoder.save(tiny_encoder(seed=5), here)  # another file at that place: not taken
    with pytest.raises(ValueError, match="cannot load the encoder the cloner was trained with"):
        api.load_encoder_for(info)


def test_the_checkpoint_names_its_encoder(tmp_path: Path) -> None:
    enc_path = tmp_path / "enc.pt"
    fxencoder.save(tiny_encoder(), enc_path)
    record = api.encoder_record(enc_path, 16)
    assert record["sha256"] == api.sha256_of(enc_path) and record["embed_dim"] == 16
    api.save(randomised(FRAME), tmp_path / "c.pt", encoder=record)
    info = api.read_info(tmp_path / "c.pt")
    enc = api.load_encoder_for(info)
    assert enc.config == FXEncoderConfig.preset("tiny") and not enc.training
    other = tmp_path / "other.pt"
    fxencoder.save(tiny_encoder(seed=3), other)
    with pytest.warns(UserWarning, match="not the one the cloner was trained with"):
        api.load_encoder_for(info, other)
    fxencoder.save(tiny_encoder(seed=4), enc_path)  # the recorded file changed
    with pytest.raises(ValueError, match="has changed since"):
        api.load_encoder_for(info)
    enc_path.unlink()
    with pytest.raises(ValueError, match="cannot load the encoder the cloner was trained with"):
        api.load_encoder_for(info)
    wide = tmp_path / "wide.pt"
    fxencoder.save(FXEncoder(FXEncoderConfig.preset("tiny", embed_dim=8)), wide)
    with pytest.raises(ValueError, match="embeds in 8 dimensions"):
        api.load_encoder_for(info, wide)
    api.save(randomised(FRAME), tmp_path / "anon.pt")
    with pytest.raises(ValueError, match="does not record its encoder"):
        api.load_encoder_for(api.read_info(tmp_path / "anon.pt"))


# -- separation ---------------------------------------------------------------------------------
try:
    import demucs.htdemucs as demucs_htdemucs
except ImportError:  # the separate extra (in dev)
    demucs_htdemucs = None
needs_demucs = pytest.mark.skipif(demucs_htdemucs is None, reason="demucs is not installed")


def tiny_demucs(seed: int = 0) -> torch.nn.Module:
    """A randomly initialised HTDemucs small enough for a test (≈ 22 k parameters, 1-s
    segments)."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = demucs_htdemucs.HTDemucs(
            list(sep.SOURCES), channels=8, depth=2, nfft=512, t_layers=1, t_heads=1,
            t_hidden_scale=1.0, dconv_comp=4, segment=Fraction(1, 1),
        )  # fmt: skip
    return model.eval()


@needs_demucs
def test_separator_files_round_trip(tmp_path: Path) -> None:
    model = tiny_demucs()
    sep.save_separator(model, tmp_path / "tiny.safetensors")
    args, kwargs = model._init_args_kwargs
    legacy = {"klass": type(model), "args": args, "kwargs": kwargs, "state": model.state_dict(),
              "training_args": {"epochs": 1}}  # fmt: skip
    torch.save(legacy, tmp_path / "955424e6-0123abcd.th")
    (tmp_path / "htdemucs.yaml").write_text("models: ['955424e6']\n")
    x = noise(2, 30000, seed=3)
    ref = sep.separate(model, x, SR)
    for source in (tmp_path / "tiny.safetensors", tmp_path / "955424e6-0123abcd.th", tmp_path):
        loaded = sep.load_separator(source)
        got = sep.separate(loaded, x, SR)
        for name in sep.SOURCES:
            assert torch.allclose(got[name], ref[name], atol=1e-6), (source, name)


@needs_demucs
def test_separate_keeps_rate_length_and_batch() -> None:
    model = tiny_demucs()
    mono = noise(1, 20001, seed=2)
    stems = sep.separate(model, mono, 48000)
    assert list(stems) == list(sep.SOURCES)
    assert all(s.shape == (2, 20001) for s in stems.values())
    batch = sep.separate(model, torch.stack([mono, noise(1, 20001, seed=3)]), 48000)
    assert all(s.shape == (2, 2, 20001) for s in batch.values())
    assert torch.allclose(batch["bass"][0], stems["bass"], atol=1e-5)


@needs_demucs
def test_separator_weights_missing_or_foreign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sep, "find_weights", lambda name="htdemucs": None)
    with pytest.raises(
        sep.MissingWeightsError, match=r"nothing is downloaded here.*folder of stems"
    ):
        sep.load_separator(None)
    with pytest.raises(sep.MissingWeightsError, match="no separator weights at"):
        sep.load_separator(tmp_path / "nope.th")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "evil.safetensors"),
              metadata={"klass": "os.system", "args": '["true"]', "kwargs": "{}"})  # fmt: skip
    with pytest.raises(ValueError, match="is not a Demucs model"):
        sep.load_separator(tmp_path / "evil.safetensors")
    torch.save({"a": torch.zeros(1)}, tmp_path / "plain.th")
    with pytest.raises(ValueError, match="not a Demucs model package"):
        sep.load_separator(tmp_path / "plain.th")


@needs_demucs
def test_find_weights_never_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    assert sep.find_weights("htdemucs") is None
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    bag = Path(sep._demucs().__file__).parent / "remote" / "htdemucs.yaml"
    import yaml

    (sig,) = yaml.safe_load(bag.read_text())["models"]
    torch.save({}, tmp_path / "hub" / "checkpoints" / f"{sig}-00000000.th")
    assert sep.find_weights("htdemucs") == tmp_path / "hub" / "checkpoints" / f"{sig}-00000000.th"


@needs_demucs
def test_mixture_path_separates_converts_and_sums() -> None:
    """Mix → tiny HTDemucs → each stem converted with the reference's stem → sum."""
    separator, enc, model = tiny_demucs(), tiny_encoder(), randomised(FRAME)
    mix = noise(2, 2 * SR, seed=7)
    reference = {n: noise(2, SR, seed=20 + i) for i, n in enumerate(sep.SOURCES)}
    stems = sep.separate(separator, mix, SR)
    result = transfer_stems(model, enc, stems, SR, reference, SR)
    assert result.mix.shape == (2, 2 * SR)
    assert torch.equal(result.mix, sum(result.stems.values()))
    for name in sep.SOURCES:
        alone = transfer(model, enc, stems[name], SR, reference[name], SR)
        assert torch.allclose(result.stems[name], alone, atol=1e-5)
    assert bool(torch.isfinite(result.mix).all()) and float(result.mix.abs().max()) > 0.01


@needs_demucs
def test_silence_gives_finite_output() -> None:
    model = randomised(FRAME)
    y = convert(model, torch.zeros(1, 2, 4000), SR, torch.zeros(1, 16), window=1000)
    assert bool(torch.isfinite(y).all())
    stems = sep.separate(tiny_demucs(), torch.zeros(2, 20000), SR)
    assert all(bool(torch.isfinite(s).all()) for s in stems.values())
    assert np.isfinite(sum(float(s.abs().sum()) for s in stems.values()))


def test_fx_normalize_stems_is_the_corpus_normalizer_on_whole_stems() -> None:
    import fxdsp
    from cloner.inference import fx_normalize_stems

    gen = torch.Generator().manual_seed(3)
    stems = {"drums": 0.3 * torch.randn(2, 44100, generator=gen),
             "vocals": 0.01 * torch.randn(1, 40000, generator=gen)}  # fmt: skip
    got = fx_normalize_stems(stems, 44100)
    norm = fxdsp.FxNormalizer(fxdsp.FxNormStats.corpus_default())
    for name, x in stems.items():
        want = norm(x.expand(2, -1)[None], [name])[0]
        assert got[name].shape == (2, x.shape[-1])
        torch.testing.assert_close(got[name], want, rtol=0, atol=0)
    silent = fx_normalize_stems({"bass": torch.zeros(2, 30000)}, 32000)["bass"]
    assert silent.shape == (2, 30000) and not silent.any()
    with pytest.raises(ValueError, match="stem 'drums' must be"):
        fx_normalize_stems({"drums": torch.zeros(3, 30000)}, 44100)
