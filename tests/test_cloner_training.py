"""cloner.training: triplet batches, the frozen encoder, exact resume, TensorBoard, the command
line and torchrun (tiny presets, short segments, small FFTs)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import fxdsp
import fxencoder
from cloner.training import (
    ClonerTrainConfig,
    ClonerTrainer,
    level_segments,
    open_training_data,
    train,
    weights_digest,
)
from fxdsp.registry import STEMS
from fxencoder import FXEncoder, FXEncoderConfig

ROOT = Path(__file__).resolve().parents[1]
SR = 44100
SHORT_CHAIN = {"ranges": {"reverb.rt60_s": [0.1, 0.2], "reverb.predelay_ms": [0.0, 5.0]}}
TINY = {
    "model": "tiny", "batch_size": 2, "warmup_steps": 2, "fft_sizes": [512],
    "chain": SHORT_CHAIN,
}  # fmt: skip


def _write_tracks(root: Path, tracks: int = 4, seconds: float = 2.0) -> Path:
    """The encoder tests' fixture: noise with a level envelope, a colour per stem."""
    rng = np.random.default_rng(0)
    for t in range(tracks):
        folder = root / f"song{t}"
        folder.mkdir(parents=True)
        n = round(seconds * SR)
        for s, stem in enumerate(STEMS):
            env = np.repeat(rng.uniform(0.2, 1.0, size=n // 2205 + 1), 2205)[:n]
            x = 0.1 * env * rng.standard_normal(n)
            x = np.convolve(x, np.ones(s + 1) / (s + 1), mode="same")
            sf.write(folder / f"{stem}.wav", np.stack([x, 0.8 * x], 1), SR, subtype="FLOAT")
    return root


def _write_encoder(path: Path, seed: int = 0, **changes) -> Path:
    torch.manual_seed(seed)
    fxencoder.save(FXEncoder(FXEncoderConfig.preset("tiny", **changes)), path)
    return path


@pytest.fixture(scope="module")
def encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_encoder(tmp_path_factory.mktemp("enc") / "tiny.pt")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, encoder_path: Path):
    root = _write_tracks(tmp_path_factory.mktemp("tracks"))
    cfg = _config(encoder_path)
    return open_training_data(root, cfg, "all", tmp_path_factory.mktemp("cache"))


def _config(encoder: Path, **changes) -> ClonerTrainConfig:
    return ClonerTrainConfig.from_dict({**TINY, "encoder": str(encoder), "steps": 4, **changes})


# ---------------------------------------------------------------------------------------------
# Config and encoder checks


def test_config_validates_and_round_trips(encoder_path: Path, tmp_path: Path) -> None:
    cfg = _config(encoder_path, segment_seconds=0.6)
    assert cfg.model_config().segment_seconds == 0.6 and cfg.fft_sizes == (512,)
    assert ClonerTrainConfig.from_json(cfg.to_json()) == cfg
    assert cfg.chain_config().sample_rate == 44100.0
    for bad, match in [
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"ref_crop_min": 0.0}, "ref_crop_min"),
        ({"mss_lr_weight": 0.0, "mss_ms_weight": 0.0}, "every loss weight"),
        ({"fft_sizes": [65536]}, "too short"),
        ({"model": "huge"}, "unknown preset"),
        ({"fxnorm": 1}, "fxnorm"),
        ({"lr_weight": 1.0}, "unknown ClonerTrainConfig field"),
        ({"dasp_fraction": 1.5}, "dasp_fraction"),
        ({"house_fraction": -0.1}, "house_fraction"),
        ({"dasp_fraction": 0.6, "house_fraction": 0.5}, "at most 1"),
        ({"keep_min": 1.2}, "keep_min"),
    ]:
        with pytest.raises(ValueError, match=match):
            _config(encoder_path, **bad)


def test_encoder_must_fit_the_cloner(data, encoder_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cond_dim is 256.*'cond_dim': 16"):
        ClonerTrainer(_config(encoder_path, model="small"), data)
    other_rate = _write_encoder(tmp_path / "e48.pt", sample_rate=48000)
    with pytest.raises(ValueError, match="48000 Hz"):
        ClonerTrainer(_config(other_rate), data)
    with pytest.raises(ValueError, match="no encoder file"):
        ClonerTrainer(_config(tmp_path / "missing.pt"), data)
    # An override makes the sizes agree.
    small = _config(encoder_path, model="small", model_overrides={"cond_dim": 16},
                    segment_seconds=0.5)  # fmt: skip
    trainer = ClonerTrainer(small, data)
    assert trainer.model_config.cond_dim == 16


# ---------------------------------------------------------------------------------------------
# The batch and the step


def test_batch_is_triplets_with_the_frozen_encoders_condition(data, encoder_path: Path) -> None:
    trainer = ClonerTrainer(_config(encoder_path, batch_size=4), data)
    batch = trainer.make_batch()
    a1, a2, ref, cond = batch["input"], batch["target"], batch["reference"], batch["cond"]
    trip = batch["triplets"]
    length = data.segment
    assert a1.shape == a2.shape == (4, 2, length)
    assert length // 2 <= ref.shape[-1] <= length and ref.shape[:2] == (4, 2)
    assert all(a != b for a, b in zip(trip.track_a, trip.track_b, strict=True))
    # A2 is the drawn chain on A1; the reference is a crop of the chain on B1.
    torch.testing.assert_close(fxdsp.Manipulator(trip.params)(a1), a2, rtol=0, atol=0)
    offsets = [
        int(np.argmin([float((trip.b2[i, :, o : o + ref.shape[-1]] - ref[i]).abs().max())
                       for o in range(length - ref.shape[-1] + 1)]))
        for i in range(4)
    ]  # fmt: skip
    for i, o in enumerate(offsets):
        assert torch.equal(trip.b2[i, :, o : o + ref.shape[-1]], ref[i])
    # cond is the eval-mode encoder's embedding of the reference.
    encoder = fxencoder.load(encoder_path)
    with torch.no_grad():
        torch.testing.assert_close(cond, encoder(ref), rtol=1e-5, atol=1e-6)
    # Each input sits at its stem's average loudness (fxnorm on).
    stats = fxdsp.FxNormStats.corpus_default()
    measured = fxdsp.functional.loudness(a1, SR)
    for i, stem in enumerate(trip.stems):
        assert float(measured[i]) == pytest.approx(stats.stems[stem].loudness_lufs, abs=0.01)


def test_dasp_fraction_draws_whole_steps_from_the_second_design(data, encoder_path: Path) -> None:
    from fxdata.dasp_chain import DaspChainParams, apply_dasp_chain

    always = ClonerTrainer(_config(encoder_path, dasp_fraction=1.0), data)
    batch = always.make_batch()
    trip = batch["triplets"]
    assert isinstance(trip.params, DaspChainParams)
    torch.testing.assert_close(apply_dasp_chain(trip.a1, trip.params), batch["target"],
                               rtol=0, atol=0)  # fmt: skip
    half = ClonerTrainer(_config(encoder_path, dasp_fraction=0.5, seed=3), data)
    kinds = [isinstance(half.make_batch()["triplets"].params, DaspChainParams) for _ in range(12)]
    assert 0 < sum(kinds) < 12
    assert always.step()["batch/dasp"] == 1.0  # logged, so TensorBoard can split the designs
    never = ClonerTrainer(_config(encoder_path), data)
    assert isinstance(never.make_batch()["triplets"].params, fxdsp.FxParams)
    assert "batch/dasp" not in never.step()


def test_house_fraction_draws_whole_steps_from_the_third_design(data, encoder_path: Path) -> None:
    from fxdata.dasp_chain import DaspChainParams
    from fxdata.house_chain import HouseChainParams, apply_house_chain

    always = ClonerTrainer(_config(encoder_path, house_fraction=1.0), data)
    batch = always.make_batch()
    trip = batch["triplets"]
    assert isinstance(trip.params, HouseChainParams)
    torch.testing.assert_close(apply_house_chain(trip.a1, trip.params), batch["target"],
                               rtol=0, atol=0)  # fmt: skip
    mixed = ClonerTrainer(_config(encoder_path, dasp_fraction=0.4, house_fraction=0.4, seed=3),
                          data)  # fmt: skip
    kinds = [type(mixed.make_batch()["triplets"].params) for _ in range(15)]
    assert {DaspChainParams, HouseChainParams, fxdsp.FxParams} == set(kinds)
    logs = always.step()
    assert logs["batch/house"] == 1.0 and "batch/dasp" not in logs


def test_keep_min_thins_the_steps_chains(data, encoder_path: Path) -> None:
    sparse = ClonerTrainer(_config(encoder_path, keep_min=0.0, house_fraction=0.5, seed=2), data)
    full = ClonerTrainer(_config(encoder_path, house_fraction=0.5, seed=2), data)
    # The first step: the same design and draw, every effect of the thinned chain on in the
    # full one (thinning draws after the chain, so later steps' streams differ).
    thin, whole = sparse.make_batch()["triplets"].params, full.make_batch()["triplets"].params
    assert type(thin) is type(whole)
    assert bool((thin.active <= whole.active).all())
    on_sparse = [sparse.make_batch()["triplets"].params.active.sum() for _ in range(8)]
    on_full = [full.make_batch()["triplets"].params.active.sum() for _ in range(8)]
    assert sum(on_sparse) < 0.8 * sum(on_full)
    logs = sparse.step()
    assert 0.0 <= logs["batch/effects_on"] <= 6.0
    assert "batch/effects_on" not in full.step()


def test_level_segments_per_item_targets() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, SR, generator=gen) * torch.tensor([0.01, 0.1, 0.5])[:, None, None]
    y = level_segments(x, ["bass", "vocals", "unknown"], SR)
    stats = fxdsp.FxNormStats.corpus_default().stems
    expected = [stats["bass"].loudness_lufs, stats["vocals"].loudness_lufs,
                stats["other"].loudness_lufs]  # fmt: skip
    got = fxdsp.functional.loudness(y, SR).tolist()
    assert got == pytest.approx(expected, abs=0.01)
    assert torch.equal(level_segments(torch.zeros(1, 2, SR), ["drums"], SR), torch.zeros(1, 2, SR))


def test_step_starts_at_input_unchanged_and_never_touches_the_encoder(
    data, encoder_path: Path
) -> None:
    cfg = _config(encoder_path, embedding_weight=0.5)
    trainer = ClonerTrainer(cfg, data)
    digest = trainer.encoder_info["digest"]
    first = trainer.step()
    # An untrained small-stride cloner is the identity: its loss is the input-unchanged loss.
    for key in ("mss_lr", "mss_ms", "embedding", "total"):
        assert first[f"loss/{key}"] == pytest.approx(first[f"input_unchanged/{key}"], rel=1e-6)
    assert first["loss/relative"] == pytest.approx(1.0, rel=1e-6)
    total = first["loss/mss_lr"] + first["loss/mss_ms"] + 0.5 * first["loss/embedding"]
    assert first["loss/total"] == pytest.approx(total, rel=1e-6)
    second = trainer.step(measure_input=False)
    assert "input_unchanged/total" not in second and second["loss/total"] != first["loss/total"]
    assert second["lr"] == pytest.approx(cfg.lr) and first["lr"] == pytest.approx(cfg.lr / 2)
    assert weights_digest(trainer.encoder) == digest and not trainer.encoder.training
    assert all(p.grad is None and not p.requires_grad for p in trainer.encoder.parameters())
    assert second["grad_norm"] > 0 and second["throughput/items_per_s"] > 0


def test_training_beats_input_unchanged_on_a_fixed_batch(data, encoder_path: Path) -> None:
    """Gradient, optimizer and schedule work together: 10 steps on one batch bring the loss
    measurably below doing nothing (the model starts as the identity, relative loss 1)."""
    cfg = _config(encoder_path, steps=10, lr=1e-2, warmup_steps=0)
    trainer = ClonerTrainer(cfg, data)
    batch = trainer.make_batch()
    rel = [trainer.step(batch)["loss/relative"] for _ in range(10)]
    assert rel[0] == pytest.approx(1.0, rel=1e-6)
    assert rel[-1] < min(0.95, rel[4]), rel


# ---------------------------------------------------------------------------------------------
# Checkpoints and exact resume


def test_resume_is_exact(data, encoder_path: Path, tmp_path: Path) -> None:
    cfg = _config(encoder_path, embedding_weight=0.2)
    straight = ClonerTrainer(cfg, data)
    losses = [straight.step()["loss/total"] for _ in range(4)]
    first = ClonerTrainer(cfg, data)
    assert [first.step()["loss/total"] for _ in range(2)] == losses[:2]
    first.save(tmp_path / "ckpt.pt")
    resumed = ClonerTrainer(cfg, data)
    resumed.resume(tmp_path / "ckpt.pt")
    assert resumed.step_count == 2
    assert [resumed.step()["loss/total"] for _ in range(2)] == losses[2:]
    for (k, a), b in zip(straight.model.state_dict().items(),
                         resumed.model.state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(a, b), k
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for i in sa:
        assert all(torch.equal(sa[i][k], sb[i][k]) for k in sa[i])
    assert torch.equal(straight.gen.get_state(), resumed.gen.get_state())
    # The checkpoint is plain data, names its encoder, and refuses another one.
    obj = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert obj["format"] == "mixfx.cloner.train/1" and obj["step"] == 2
    record = obj["encoder"]  # what cloner.api.load_encoder_for reads back, and the digest
    assert record["source"] == str(encoder_path.resolve()) and record["embed_dim"] == 16
    assert record["sha256"] == fxencoder.api.sha256_of(encoder_path)
    assert obj["encoder"]["digest"] == weights_digest(fxencoder.load(encoder_path))
    assert obj["train_config"]["embedding_weight"] == 0.2
    # Inference reads it: cloner.load gives the trained weights, and the recorded encoder.
    import cloner.api

    loaded = cloner.api.load(tmp_path / "ckpt.pt")
    for k, v in first.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    info = cloner.api.read_info(tmp_path / "ckpt.pt")
    assert weights_digest(cloner.api.load_encoder_for(info)) == record["digest"]
    other = ClonerTrainer(cfg, data, encoder=fxencoder.load(_write_encoder(tmp_path / "o.pt", 1)))
    with pytest.raises(ValueError, match="another encoder"):
        other.resume(tmp_path / "ckpt.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        resumed.resume(tmp_path / "bad.pt")


def test_init_from_starts_from_the_weights_with_a_fresh_optimizer(
    data, encoder_path: Path, tmp_path: Path
) -> None:
    trained = ClonerTrainer(_config(encoder_path), data)
    for _ in range(2):
        trained.step()
    trained.save(tmp_path / "start.pt")
    cfg = _config(encoder_path, init_from=str(tmp_path / "start.pt"), seed=3)
    assert ClonerTrainConfig.from_json(cfg.to_json()).init_from == str(tmp_path / "start.pt")
    tuned = ClonerTrainer(cfg, data)
    for k, v in trained.model.state_dict().items():
        assert torch.equal(tuned.model.state_dict()[k], v), k
    assert tuned.step_count == 0 and not tuned.optimizer.state_dict()["state"]
    fresh = ClonerTrainer(_config(encoder_path, seed=3), data)
    differs = [
        not torch.equal(a, b)
        for a, b in zip(
            fresh.model.state_dict().values(), tuned.model.state_dict().values(), strict=True
        )
    ]
    assert any(differs)
    tuned.step()  # trains on from there
    assert tuned.step_count == 1
    # Another model config, a missing file and a bad value are named.
    other = _config(encoder_path, init_from=str(tmp_path / "start.pt"), segment_seconds=0.6)
    with pytest.raises(ValueError, match=r"init_from: .*another config"):
        ClonerTrainer(other, data)
    with pytest.raises(ValueError, match="init_from: "):
        ClonerTrainer(_config(encoder_path, init_from=str(tmp_path / "nope.pt")), data)
    with pytest.raises(ValueError, match="init_from must be"):
        _config(encoder_path, init_from="")


def test_level_head_run_starts_from_a_plain_cloner_and_learns_the_level_in_db(
    data, encoder_path: Path, tmp_path: Path
) -> None:
    """A level-head fine-tune of a plain cloner: the TCN's weights copied, the head neutral;
    the logged level error is ``mean |g − 20·log10(rms(A2)/rms(A1))|`` (a float64 loop here);
    the spectral terms see the path at the target's RMS; steps on one batch shrink the error.
    A level-head checkpoint cannot start a plain run."""
    plain = ClonerTrainer(_config(encoder_path), data)
    plain.step()
    plain.save(tmp_path / "plain.pt")
    cfg = _config(
        encoder_path, init_from=str(tmp_path / "plain.pt"), model_overrides={"level_head": True},
        lr=0.01, warmup_steps=0, steps=40,
    )  # fmt: skip
    tuned = ClonerTrainer(cfg, data)
    state = tuned.model.state_dict()
    for k, v in plain.model.state_dict().items():
        assert torch.equal(state[k], v), k
    assert not bool(state["level.2.weight"].any()) and float(state["level.2.bias"]) == 0.0
    batch = tuned.make_batch()
    x, t = batch["input"].double(), batch["target"].double()
    want = []
    for i in range(x.shape[0]):
        rx = float(x[i].square().mean()) ** 0.5
        rt = float(t[i].square().mean()) ** 0.5
        want.append(20 * np.log10(rt / rx))
    logs = tuned.step(batch)
    assert logs["loss/level_db"] == pytest.approx(np.mean(np.abs(want)), rel=1e-4)  # g = 0
    assert {"output/total", "loss/relative", "loss/relative_at_target_level"} <= set(logs)
    assert logs["loss/relative"] == pytest.approx(1.0, abs=0.05)  # the head is at 0 dB still
    first = logs["loss/level_db"]
    for _ in range(30):
        logs = tuned.step(batch)
    assert logs["loss/level_db"] < 0.5 * first
    with torch.no_grad():
        g = tuned.model.level_db(batch["cond"]).double()
    assert float((g - torch.tensor(want)).abs().mean()) == pytest.approx(
        logs["loss/level_db"], abs=0.5 * first
    )
    tuned.save(tmp_path / "headed.pt")
    with pytest.raises(ValueError, match=r"init_from: .*another config"):
        ClonerTrainer(_config(encoder_path, init_from=str(tmp_path / "headed.pt")), data)


# ---------------------------------------------------------------------------------------------
# The loop: TensorBoard scalars, stereo audio, checkpoints


def test_train_loop_writes_tensorboard_audio_and_checkpoints(
    data, encoder_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    cfg = _config(encoder_path, steps=4, log_every=2, audio_every=4, checkpoint_every=3)
    trainer = ClonerTrainer(cfg, data)
    writer = SummaryWriter(str(tmp_path / "tb"))
    seen: list[int] = []
    path = train(trainer, tmp_path, writer=writer, progress=False,
                 callbacks=(lambda tr, logs: seen.append(tr.step_count),))  # fmt: skip
    writer.close()
    assert seen == [1, 2, 3, 4]
    assert path == tmp_path / "last.pt" and torch.load(path, weights_only=True)["step"] == 4
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"audio": 0})
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    for tag in ("loss/total", "loss/mss_lr", "loss/mss_ms", "input_unchanged/total",
                "loss/relative", "lr", "throughput/items_per_s", "time/step_s"):  # fmt: skip
        assert tag in scalars, tag
    assert [e.step for e in acc.Scalars("loss/total")] == [2, 4]
    rel = acc.Scalars("loss/relative")[0].value
    total = acc.Scalars("loss/total")[0].value
    assert rel == pytest.approx(total / acc.Scalars("input_unchanged/total")[0].value, rel=1e-5)
    audio_tags = set(acc.Tags()["audio"])
    assert {"input/0", "reference/0", "output/0", "target/0", "target/1"} <= audio_tags
    event = acc.Audio("output/0")[0]
    assert event.step == 4
    with wave.open(io.BytesIO(event.encoded_audio_string)) as w:
        assert w.getnchannels() == 2 and w.getframerate() == SR
        assert w.getnframes() == data.segment


# ---------------------------------------------------------------------------------------------
# Command line and torchrun


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_command_line_train_resume_and_errors(
    encoder_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorboard")
    from mixfx.cli import main

    root = _write_tracks(tmp_path / "d", tracks=3, seconds=1.5)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "log_every": 1, "audio_every": 2}))
    run_dir = tmp_path / "run"
    base = ["-m", "experiments.train_cloner", "--data", str(root), "--out", str(run_dir),
            "--encoder", str(encoder_path), "--preset", "tiny", "--config", str(cfg),
            "--steps", "2", "--no-progress", "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    proc = subprocess.run([sys.executable, *base], capture_output=True, text=True, cwd=ROOT,
                          env=_cli_env(), timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "2 steps" in proc.stdout
    obj = torch.load(run_dir / "last.pt", weights_only=True)
    assert obj["step"] == 2 and obj["train_config"]["batch_size"] == 2
    assert json.loads((run_dir / "train_config.json").read_text())["steps"] == 2
    events = list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 1000

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/total")] == [1, 2]
    assert "output/0" in acc.Tags()["audio"]

    # In-process from here on (the same entry point, without another interpreter start).
    args = base[2:]
    assert main(["train-cloner", *args]) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    # --resume continues with the saved settings; only --steps changes.
    resume = ["train-cloner", "--data", str(root), "--out", str(run_dir), "--resume",
              "--steps", "3", "--no-progress", "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    assert main(resume) == 0
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == 3
    # --init-from fine-tunes from those weights in a new run folder (step count from 0).
    tune = ["train-cloner", "--data", str(root), "--out", str(tmp_path / "tuned"),
            "--init-from", str(run_dir / "last.pt"), "--encoder", str(encoder_path), "--preset",
            "tiny", "--config", str(cfg), "--steps", "1", "--no-progress", "--cache-dir",
            str(tmp_path / "c")]  # fmt: skip
    assert main(tune) == 0
    tuned = torch.load(tmp_path / "tuned" / "last.pt", weights_only=True)
    assert tuned["step"] == 1
    assert tuned["train_config"]["init_from"] == str((run_dir / "last.pt").resolve())
    capsys.readouterr()
    bad = ["train-cloner", "--data", str(root), "--out", str(tmp_path / "r2"), "--preset",
           "small", "--encoder", str(encoder_path), "--no-progress", "--steps", "1",
           "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    assert main(bad) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "cond_dim" in errors[0] and "Traceback" not in err
    missing = [*bad[:3], "--out", str(tmp_path / "r3"), "--preset", "tiny", "--encoder",
               str(tmp_path / "nope.pt"), "--no-progress"]  # fmt: skip
    assert main(missing) == 1
    assert "no encoder file" in capsys.readouterr().err
    assert main(["train-cloner", "--data", str(root), "--out", str(tmp_path / "r4"), "--steps",
                 "0"]) == 2  # fmt: skip


def test_torchrun_two_processes_on_cpu(encoder_path: Path, tmp_path: Path) -> None:
    """DistributedDataParallel with gloo: two processes train two steps and agree."""
    root = _write_tracks(tmp_path / "d", tracks=3, seconds=1.5)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "steps": 2}))
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m",
           "experiments.train_cloner", "--data", str(root), "--out", str(tmp_path / "run"),
           "--encoder", str(encoder_path), "--config", str(cfg), "--no-progress",
           "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_cli_env(),
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    obj = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert obj["step"] == 2 and len(obj["rng_ranks"]) == 2
    assert not torch.equal(obj["rng_ranks"][0], obj["rng_ranks"][1])  # each rank its own draws
