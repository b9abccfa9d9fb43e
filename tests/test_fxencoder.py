"""fxencoder: the model, its losses, embed(), checkpoints, and training with exact resume."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import fxdsp
import fxencoder
from fxdata.dasp_chain import sample_dasp_params
from fxdsp.registry import STEMS
from fxencoder.config import FXEncoderConfig
from fxencoder.loss import aux_param_loss, nt_xent
from fxencoder.model import FXEncoder, log_band_filterbank
from fxencoder.training import EncoderTrainer, TrainConfig, effect_scores, train

ROOT = Path(__file__).resolve().parents[1]
SR = 44100


# ---------------------------------------------------------------------------------------------
# Model


def test_presets_sizes_and_shapes() -> None:
    paper = FXEncoder(FXEncoderConfig.preset("paper"))
    assert 80e6 < paper.num_parameters() < 82e6  # the reference's ~81 M
    small = FXEncoder(FXEncoderConfig.preset("small"))
    assert 1.0e6 < small.num_parameters() < 1.6e6
    x = 0.1 * torch.randn(3, 2, SR, generator=torch.Generator().manual_seed(0))
    assert small(x).shape == (3, 256)
    # The paper's total stride is 4096: one second gives ceil-ish 11 frames, pooled to 2048.
    with torch.no_grad():
        assert paper.eval()(x[:1]).shape == (1, 2048)
    tiny = FXEncoder(FXEncoderConfig.preset("tiny"))
    assert tiny(x).shape == (3, 16) and tiny.project(tiny(x)).shape == (3, 8)
    assert tiny(x[:, :1]).shape == (3, 16)  # mono is duplicated
    with pytest.raises(ValueError, match=r"\(batch, 1 or 2, samples\)"):
        tiny(torch.zeros(2, 3, 100))
    with pytest.raises(ValueError, match="embed_dim"):
        FXEncoderConfig.preset("paper", embed_dim=128)
    with pytest.raises(ValueError, match="unknown preset"):
        FXEncoderConfig.preset("huge")


def test_filterbank_bands_are_normalized_and_log_spaced() -> None:
    fb = log_band_filterbank(2048, SR, 64, 30.0, 16000.0)
    assert fb.shape == (64, 1025)
    torch.testing.assert_close(fb.sum(dim=1), torch.ones(64))
    freqs = torch.linspace(0, SR / 2, 1025)
    centroid = (fb * freqs).sum(dim=1)
    ratios = centroid[33:] / centroid[32:-1]  # above the low bands, widths are many bins
    expected = (16000 / 30) ** (1 / 65)
    assert torch.allclose(ratios, torch.full_like(ratios, expected), rtol=0.02)


def test_spectral_features_see_side_and_level() -> None:
    model = FXEncoder(FXEncoderConfig.preset("tiny"))
    t = torch.arange(SR // 2) / SR
    sine = 0.1 * torch.sin(2 * math.pi * 1000 * t)
    mono = torch.stack([sine, sine])[None]
    f = model.features(mono).reshape(1, 4, 16, -1)  # L, R, M, S
    assert float(f[0, 3].max()) < -8.0  # no side: log10 of the floor
    louder = model.features(2 * mono).reshape(1, 4, 16, -1)
    band = int(f[0, 2].mean(-1).argmax())
    diff = float((louder - f)[0, 2, band].mean())
    assert diff == pytest.approx(math.log10(4.0), abs=1e-3)  # +6 dB power = log10(4)


def test_embed_resamples_and_averages_segments() -> None:
    torch.manual_seed(0)
    model = FXEncoder(FXEncoderConfig.preset("tiny")).eval()
    seg = model.config.segment_samples
    x = 0.1 * torch.randn(2, 2, 3 * seg, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        parts = [model(x[..., i * seg : (i + 1) * seg]) for i in range(3)]
    torch.testing.assert_close(model.embed(x, SR), torch.stack(parts).mean(0), rtol=1e-5, atol=1e-6)
    # A length that is not a multiple: the last segment ends with the audio.
    y = x[..., : 2 * seg + 100]
    with torch.no_grad():
        ref = torch.stack([model(y[..., :seg]), model(y[..., seg : 2 * seg]), model(y[..., -seg:])])
    torch.testing.assert_close(model.embed(y, SR), ref.mean(0), rtol=1e-5, atol=1e-6)
    # Another rate is resampled first: a 48 kHz copy embeds close to the 44.1 kHz original.
    from fxdata.audio import resample

    x48 = torch.from_numpy(resample(x.reshape(4, -1).double().numpy(), SR, 48000)).reshape(2, 2, -1)
    e48, e44 = model.embed(x48.float(), 48000), model.embed(x, SR)
    cos = torch.nn.functional.cosine_similarity(e48, e44)
    assert bool((cos > 0.99).all())
    assert model.training is False
    with pytest.raises(ValueError, match="NaN"):
        model.embed(torch.full((1, 2, seg), float("nan")), SR)
    with pytest.raises(ValueError, match="sample_rate"):
        model.embed(x, -1)


# ---------------------------------------------------------------------------------------------
# Losses


def _nt_xent_loop(z: np.ndarray, labels: np.ndarray, tau: float) -> float:
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z)
    total, anchors = 0.0, 0
    for i in range(n):
        denom = sum(math.exp(z[i] @ z[a] / tau) for a in range(n) if a != i)
        pos = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        total += -sum(math.log(math.exp(z[i] @ z[p] / tau) / denom) for p in pos) / len(pos)
        anchors += 1
    return total / anchors


def test_nt_xent_matches_a_float64_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(12, 5, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 9])  # 9 has no positive
    got = float(nt_xent(z, labels, 0.2))
    assert got == pytest.approx(_nt_xent_loop(z.numpy(), labels.numpy(), 0.2), rel=1e-10)
    # Two views per label: SimCLR's NT-Xent; perfectly aligned views give a lower loss.
    aligned = torch.cat([torch.eye(4), torch.eye(4)]).double()
    lab = torch.arange(4).repeat(2)
    assert float(nt_xent(aligned, lab, 0.1)) < float(nt_xent(torch.randn(8, 4, generator=gen), lab))
    with pytest.raises(ValueError, match="no anchor"):
        nt_xent(torch.randn(3, 2), torch.arange(3))


def test_aux_loss_masks_parameters_of_effects_that_are_off() -> None:
    params = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    active = torch.tensor([[True, False], [True, True]])
    effect = torch.tensor([0, 1])
    pred = torch.tensor([[0.2, 0.0, 20.0, -20.0], [0.5, 0.7, 20.0, 20.0]])
    loss = float(aux_param_loss(pred, params, active, effect))
    # Only (item 1, param 1) is wrong among the active ones: 0.2² over 3 active entries;
    # the flags are almost exactly right (logits ±20).
    assert loss == pytest.approx(0.04 / 3, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def test_save_load_round_trip_half_and_corruption(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = FXEncoder(FXEncoderConfig.preset("tiny")).eval()
    x = 0.1 * torch.randn(2, 2, SR // 2, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "enc.pt"
    digest = fxencoder.save(model, path, half=True, steps=3)
    assert len(digest) == 64
    obj = torch.load(path, weights_only=True)
    assert obj["format"] == "mixfx.fxencoder/1" and obj["steps"] == 3
    loaded = fxencoder.load(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=5e-3, atol=5e-3)  # float16 storage
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot read encoder checkpoint"):
        fxencoder.load(path)
    with pytest.raises(ValueError, match="no encoder file"):
        fxencoder.load(tmp_path / "missing.pt")


def test_named_weights_are_verified_by_sha256(tmp_path: Path, monkeypatch) -> None:
    import hashlib

    import fxencoder.api as api

    torch.manual_seed(0)
    model = FXEncoder(FXEncoderConfig.preset("tiny")).eval()
    weights = tmp_path / "weights"
    weights.mkdir()
    fxencoder.save(model, weights / "mine.pt", half=True)
    digest = hashlib.sha256((weights / "mine.pt").read_bytes()).hexdigest()
    (weights / "manifest.json").write_text(
        json.dumps({"mine": {"file": "mine.pt", "sha256": digest}})
    )
    monkeypatch.setattr(api, "WEIGHTS_DIR", weights)
    assert fxencoder.load("mine").config == model.config
    data = bytearray((weights / "mine.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: still a readable zip, wrong weights
    (weights / "mine.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt or truncated"):
        fxencoder.load("mine")
    (weights / "mine.pt").write_bytes(bytes(data[:1000]))
    with pytest.raises(ValueError, match="corrupt or truncated"):
        fxencoder.load("mine")
    with pytest.raises(ValueError, match=r"named models: mine"):
        fxencoder.load("other")


def test_shipped_encoders_match_their_manifest() -> None:
    import fxencoder.api as api

    manifest = json.loads((api.WEIGHTS_DIR / "manifest.json").read_text())
    assert "default" in manifest
    for name, entry in manifest.items():
        assert api.sha256_of(api.WEIGHTS_DIR / entry["file"]) == entry["sha256"], name
        model = fxencoder.load(name)
        x = 0.1 * torch.randn(1, 2, SR, generator=torch.Generator().manual_seed(0))
        e = model.embed(x, SR)
        assert e.shape == (1, model.config.embed_dim) and torch.isfinite(e).all()


def test_reference_checkpoint_layout_converts(tmp_path: Path) -> None:
    """A checkpoint in the reference's layout, built here, loads as the paper preset."""
    torch.manual_seed(1)
    ours = FXEncoder(FXEncoderConfig.preset("paper")).eval()
    ref_state = {}
    for key, value in ours.state_dict().items():
        block, name, rest = key.split(".", 3)[1:]
        kind = "conv1d" if name.startswith("conv") else "batch_norm"
        j = name[-1]
        ref_state[f"module.encoder.{block}.conv{j}.conv1d.{kind}.{rest}"] = value.clone()
    assert any(k.endswith("batch_norm.running_var") for k in ref_state)
    path = tmp_path / "FXencoder_ps.pt"
    torch.save({"model": ref_state}, path)
    loaded = fxencoder.load(path)
    x = 0.1 * torch.randn(1, 2, SR // 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ours(x))
    with pytest.raises(ValueError, match="not a reference FXencoder key"):
        fxencoder.convert_reference_state_dict({"module.head.weight": torch.zeros(1)})


# ---------------------------------------------------------------------------------------------
# Training


def _write_tracks(root: Path, tracks: int = 4, seconds: float = 3.0) -> Path:
    rng = np.random.default_rng(0)
    for t in range(tracks):
        folder = root / f"song{t}"
        folder.mkdir(parents=True)
        n = round(seconds * SR)
        for s, stem in enumerate(STEMS):
            env = np.repeat(rng.uniform(0.2, 1.0, size=n // 2205 + 1), 2205)[:n]
            x = 0.1 * env * rng.standard_normal(n)
            x = np.convolve(x, np.ones(s + 1) / (s + 1), mode="same")  # a stem colour
            sf.write(folder / f"{stem}.wav", np.stack([x, 0.8 * x], 1), SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    from fxdata.datasets import MultitrackDataset, SegmentDataset

    root = _write_tracks(tmp_path_factory.mktemp("tracks"))
    return SegmentDataset(
        MultitrackDataset(root, "all"), 1.0, cache_dir=tmp_path_factory.mktemp("cache")
    )


TINY = {"model": "tiny", "contents": 2, "draws": 3, "warmup_steps": 2, "probe_every": 1000}
SHORT_CHAIN = {"ranges": {"reverb.rt60_s": [0.1, 0.2], "reverb.predelay_ms": [0.0, 5.0]}}


def _config(**changes) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "steps": 4, "chain": SHORT_CHAIN, **changes})


def test_resume_is_exact(data, tmp_path: Path) -> None:
    cfg = _config(aux_weight=0.5, prob_schedule=True, probe_every=2, premix=0.5, mild=0.5)
    straight = EncoderTrainer(cfg, data)
    losses = [straight.step()["loss/total"] for _ in range(4)]
    first = EncoderTrainer(cfg, data)
    for _ in range(2):
        first.step()
    first.save(tmp_path / "ckpt.pt")
    resumed = EncoderTrainer(cfg, data)
    resumed.resume(tmp_path / "ckpt.pt")
    assert resumed.step_count == 2
    later = [resumed.step()["loss/total"] for _ in range(2)]
    assert later == losses[2:]
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    assert straight.scheduler.probabilities == resumed.scheduler.probabilities
    # The checkpoint is plain data.
    obj = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert obj["format"] == "mixfx.fxencoder.train/1" and obj["step"] == 2
    assert fxencoder.load(tmp_path / "ckpt.pt").config == cfg.model_config()


def test_cooldown_branch_of_the_schedule(data) -> None:
    # A 100-step cosine run (warm-up 10) cut short at 60 by a linear cooldown from step 40.
    long = EncoderTrainer(_config(steps=100, warmup_steps=10, lr=1e-3), data)
    short = EncoderTrainer(
        _config(steps=60, warmup_steps=10, lr=1e-3, schedule_steps=100, cooldown_from=40), data
    )

    def cosine(step: int) -> float:  # the closed form, written out again
        if step < 10:
            return 1e-3 * (step + 1) / 10
        return 1e-3 * (0.1 + 0.45 * (1 + math.cos(math.pi * (step - 10) / 90)))

    for step in range(0, 41):
        assert long.lr_at(step) == pytest.approx(cosine(step), rel=1e-12)
        assert short.lr_at(step) == pytest.approx(cosine(step), rel=1e-12)
    for step in range(41, 61):
        assert short.lr_at(step) == pytest.approx(cosine(40) * (60 - step) / 20, rel=1e-12)
    assert short.lr_at(60) == 0.0
    with pytest.raises(ValueError, match="cooldown_from"):
        _config(steps=60, cooldown_from=60)


def test_batch_structure_positives_and_strong_negatives(data) -> None:
    trainer = EncoderTrainer(_config(contents=3, draws=4), data)
    batch = trainer.make_batch()
    views, labels, content = batch["views"], batch["labels"], batch["content_ids"]
    assert views.shape[0] == 12 and labels.tolist() == [0, 1, 2, 3] * 3
    assert content.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert len(set(batch["rows"])) == 3
    tracks = {int(data.index[r, 0]) for r in batch["rows"]}
    assert len(tracks) == 3  # three different tracks of one stem
    assert len({int(data.index[r, 1]) for r in batch["rows"]}) == 1
    assert data.segment // 2 <= views.shape[-1] <= data.segment


def test_premix_gives_each_content_its_own_mild_draw(data) -> None:
    from fxencoder.training import PREMIX_CHAIN

    trainer = EncoderTrainer(_config(premix=1.0), data)
    x = torch.stack([data[i]["audio"] for i in range(3)])
    state = trainer.gen.get_state()
    out = trainer.premix(x, "drums")
    # The same draws replayed by hand: one pre-mix chain per content, from the mild ranges.
    replay = torch.Generator()
    replay.set_state(state)
    pre = fxdsp.sample_params(3, stems="drums", generator=replay,
                              config=trainer.config.premix_chain_config())  # fmt: skip
    torch.testing.assert_close(out, fxdsp.Manipulator(pre)(x))
    low, high = PREMIX_CHAIN["ranges"]["eq.gain_db"]
    assert float(pre.values["eq.gain_db"].min()) >= low
    assert float(pre.values["eq.gain_db"].max()) <= high
    assert not any(torch.equal(out[i], x[i]) for i in range(3))
    # Probability 0.3: about 30 % of the contents change, the others are left bit for bit.
    half = EncoderTrainer(_config(premix=0.3), data)
    many = x[:, :, :2205].repeat(100, 1, 1)
    changed = [not torch.equal(a, b) for a, b in zip(half.premix(many, "bass"), many, strict=True)]
    assert abs(np.mean(changed) - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 300)
    # A batch of a premix run differs from the plain run's only through the pre-mix.
    plain = EncoderTrainer(_config(), data).make_batch()
    mixed = EncoderTrainer(_config(premix=1.0), data).make_batch()
    assert np.array_equal(plain["rows"], mixed["rows"])
    assert not torch.equal(plain["contents"], mixed["contents"])
    # The resolved pre-mix chain is recorded with the run (a later edit cannot change it).
    assert trainer.config.premix_chain == PREMIX_CHAIN and _config().premix_chain == {}
    assert TrainConfig.from_dict(trainer.config.to_dict()) == trainer.config
    with pytest.raises(ValueError, match="premix"):
        _config(premix=1.5)
    with pytest.raises(ValueError, match="premix_chain"):
        _config(premix=0.5, premix_chain=[1, 2])


def test_mild_styles_replace_a_steps_chains_with_probability_mild(data) -> None:
    from fxencoder.training import MILD_CHAIN

    mild_chain = {"ranges": {**MILD_CHAIN["ranges"], **SHORT_CHAIN["ranges"]}}
    # mild = 1: every step's chains come from the mild ranges, replayed by hand from the
    # generator's state (the step's choice first, then the draws).
    trainer = EncoderTrainer(_config(mild=1.0, mild_chain=mild_chain), data)
    state = trainer.gen.get_state()
    batch = trainer.make_batch()
    assert batch["mild"] is True
    replay = EncoderTrainer(_config(mild=1.0, mild_chain=mild_chain), data)
    replay.gen.set_state(state)
    replay.sampler.draw(replay.gen)
    assert float(torch.rand((), generator=replay.gen)) < 1.0
    drawn = fxdsp.sample_params(3, stems=batch["stem"], generator=replay.gen,
                                config=trainer.config.mild_chain_config())  # fmt: skip
    for key, value in drawn.values.items():
        torch.testing.assert_close(batch["params"].values[key][:3], value, msg=key)
    for key in ("compressor.ratio", "reverb.mix", "gain.gain_db"):
        low, high = MILD_CHAIN["ranges"][key]
        values = batch["params"].values[key]
        assert low <= float(values.min()) and float(values.max()) <= high, key
    # The reference chain draws ratios from 4 to 40; mild ones stay at or below 10.
    assert float(batch["params"].values["compressor.ratio"].max()) <= 10.0
    # About a fraction `mild` of the steps are mild.
    some = EncoderTrainer(_config(mild=0.3, mild_chain=mild_chain), data)
    flags = []
    for _ in range(200):
        flags.append(some.make_batch()["mild"])
    assert abs(np.mean(flags) - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 200)
    # mild = 0 draws nothing extra: the batch is the plain run's, bit for bit.
    plain = EncoderTrainer(_config(), data).make_batch()
    zero = EncoderTrainer(_config(mild=0.0), data).make_batch()
    torch.testing.assert_close(plain["views"], zero["views"], rtol=0, atol=0)
    assert plain["mild"] is False and zero["mild"] is False
    # The resolved chain is recorded with the run; a step's figures say whether it was mild.
    assert _config(mild=0.5).mild_chain == MILD_CHAIN and _config().mild_chain == {}
    assert TrainConfig.from_dict(trainer.config.to_dict()) == trainer.config
    assert trainer.step()["batch/mild"] == 1.0
    assert "batch/mild" not in EncoderTrainer(_config(), data).step()
    with pytest.raises(ValueError, match="mild"):
        _config(mild=-0.1)
    with pytest.raises(ValueError, match="mild_chain"):
        _config(mild=0.5, mild_chain=[1, 2])


def test_dasp_steps_render_every_content_through_the_second_designs_chains(data) -> None:
    from fxdata.dasp_chain import DaspChainParams, apply_dasp_chain

    trainer = EncoderTrainer(_config(dasp=1.0, aux_weight=0.5, crop_min=1.0), data)
    state = trainer.gen.get_state()
    batch = trainer.make_batch()
    assert batch["dasp"] is True and batch["params"] is None
    # Replayed by hand: contents, the fxdsp draw (made every step), the choice, the dasp draw.
    replay = EncoderTrainer(_config(dasp=1.0, aux_weight=0.5, crop_min=1.0), data)
    replay.gen.set_state(state)
    replay.sampler.draw(replay.gen)
    fxdsp.sample_params(3, stems=batch["stem"], generator=replay.gen,
                        probabilities=replay.probabilities(),
                        config=replay.config.chain_config())  # fmt: skip
    torch.rand((), generator=replay.gen)  # the step's design choice (dasp = 1: always dasp)
    drawn = sample_dasp_params(3, generator=replay.gen, sample_rate=SR)
    assert isinstance(drawn, DaspChainParams)
    x = batch["contents"].repeat_interleave(3, dim=0)
    want = apply_dasp_chain(x, drawn.repeat(batch["contents"].shape[0]))
    views = batch["views"]
    assert views.shape[-1] <= want.shape[-1]
    torch.testing.assert_close(views, want[..., : views.shape[-1]], rtol=0, atol=0)
    # Items with the same label share a chain: the same content under two labels differs.
    assert not torch.equal(views[0], views[1])
    figures = trainer.step()  # the auxiliary loss sits out a dasp step
    assert figures["batch/dasp"] == 1.0 and "loss/aux" not in figures
    assert "batch/dasp" not in EncoderTrainer(_config(), data).step()
    with pytest.raises(ValueError, match="dasp"):
        _config(dasp=2.0)


def test_init_from_starts_from_an_encoders_weights(data, tmp_path: Path) -> None:
    cfg = _config()
    torch.manual_seed(5)
    start = FXEncoder(cfg.model_config())
    fxencoder.save(start, tmp_path / "start.pt")
    trainer = EncoderTrainer(_config(init_from=str(tmp_path / "start.pt")), data)
    for key, value in start.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[key], value, rtol=0, atol=0)
    fresh = EncoderTrainer(_config(), data)
    assert not torch.equal(fresh.model.state_dict()["pool_proj.weight"],
                           start.state_dict()["pool_proj.weight"])  # fmt: skip
    other = FXEncoder(FXEncoderConfig.preset("tiny", embed_dim=8))
    fxencoder.save(other, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"init_from: .* another config"):
        EncoderTrainer(_config(init_from=str(tmp_path / "other.pt")), data)
    with pytest.raises(ValueError, match="init_from"):
        EncoderTrainer(_config(init_from=str(tmp_path / "missing.pt")), data)
    with pytest.raises(ValueError, match="init_from must be an encoder name"):
        _config(init_from="")
    assert _config(init_from=tmp_path / "start.pt").init_from == str(tmp_path / "start.pt")


def test_training_learns_on_a_tiny_problem(data) -> None:
    """A few dozen steps on four tracks: the contrastive loss falls well below its start."""
    cfg = _config(steps=40, draws=6, lr=3e-3, chain={**SHORT_CHAIN, "probabilities": {
        "eq": 1.0, "compressor": 0.0, "pan": 0.0, "imager": 1.0, "gain": 1.0}})  # fmt: skip
    trainer = EncoderTrainer(cfg, data)
    losses = [trainer.step()["loss/contrastive"] for _ in range(40)]
    chance = math.log(2 * 6 - 1)  # uniform similarities: log(N - 1), one positive each
    assert np.mean(losses[:3]) > 0.6 * chance
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:3])
    scores = effect_scores(trainer.model, data[0]["audio"][None].repeat(2, 1, 1), "drums",
                           trainer.chain, torch.Generator().manual_seed(0), draws=2)  # fmt: skip
    assert set(scores) == {"eq", "compressor", "pan", "imager", "reverb", "gain"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_train_loop_writes_tensorboard_and_checkpoints(data, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    trainer = EncoderTrainer(_config(steps=4), data)
    writer = SummaryWriter(str(tmp_path / "tb"))
    path = train(trainer, tmp_path, checkpoint_every=2, log_every=1, writer=writer,
                 progress=False)  # fmt: skip
    writer.close()
    assert path.exists() and torch.load(path, weights_only=True)["step"] == 4
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in ("loss/total", "lr", "batch/sim_positive", "throughput/items_per_s"):
        assert tag in tags
    assert [e.step for e in acc.Scalars("loss/total")] == [1, 2, 3, 4]


def test_command_line_train_and_resume(data, tmp_path: Path) -> None:
    root = _write_tracks(tmp_path / "d" / "train", tracks=3, seconds=2.0).parent
    _write_tracks(tmp_path / "d" / "valid", tracks=2, seconds=2.0)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "steps": 2, "chain": SHORT_CHAIN}))
    base = [sys.executable, "-m", "experiments.train_fxencoder", "--data", str(root), "--out",
            str(tmp_path / "run"), "--config", str(cfg), "--no-progress", "--eval-every", "2",
            "--probe-songs", "2", "--probe-styles", "2",
            "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    probe = json.loads((tmp_path / "run" / "probe.json").read_text())[-1]
    assert probe["step"] == 2 and 0.0 <= probe["full"] <= 1.0 and "single_mean" in probe
    again = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert again.returncode == 1 and "--resume" in again.stderr and "Traceback" not in again.stderr
    more = [*base, "--resume", "--steps", "3"]
    proc = subprocess.run(more, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 3
    # The resumed run extends the probe history instead of starting it again.
    steps = [h["step"] for h in json.loads((tmp_path / "run" / "probe.json").read_text())]
    assert steps == [2, 3]


@pytest.mark.parametrize("extra", [{}, {"dasp": 1.0, "aux_weight": 0.5}], ids=["fxdsp", "dasp"])
def test_torchrun_two_processes_on_cpu(tmp_path: Path, extra: dict) -> None:
    """DistributedDataParallel with gloo: two processes train a few steps and agree (also with
    the auxiliary head on dasp steps, which have no fxdsp targets for it)."""
    root = _write_tracks(tmp_path / "d" / "train", tracks=3, seconds=2.0).parent
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "steps": 2, "chain": SHORT_CHAIN, **extra}))
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m",
           "experiments.train_fxencoder", "--data", str(root), "--out", str(tmp_path / "run"),
           "--config", str(cfg), "--no-progress", "--eval-every", "0",
           "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    obj = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert obj["step"] == 2 and len(obj["rng_ranks"]) == 2
    assert not torch.equal(obj["rng_ranks"][0], obj["rng_ranks"][1])  # each rank its own draws


def test_levelled_contents_sit_at_the_stems_average_loudness() -> None:
    """Every content segment is brought to its stem's loudness target (BS.1770, pyloudnorm)."""
    pyln = pytest.importorskip("pyloudnorm")
    import fxdsp
    from fxencoder.training import level_contents

    gen = torch.Generator().manual_seed(3)
    x = (
        torch.randn(3, 2, 2 * SR, generator=gen, dtype=torch.float64)
        * torch.tensor([0.01, 0.1, 0.5], dtype=torch.float64)[:, None, None]
    )
    y = level_contents(x, "bass", SR)
    target = fxdsp.FxNormStats.corpus_default().stems["bass"].loudness_lufs
    meter = pyln.Meter(SR, filter_class="DeMan")
    for item in y.numpy():
        assert meter.integrated_loudness(item.T) == pytest.approx(target, abs=0.01)
    assert torch.equal(level_contents(torch.zeros(1, 2, SR), "drums", SR), torch.zeros(1, 2, SR))
