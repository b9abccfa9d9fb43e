"""cloner.parametric_training and ``mixfx train-params``: the batch, the loss terms, fitting,
exact resume, TensorBoard and the command line (tiny presets, 0.5-s segments, small FFTs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import fxencoder
from cloner.parametric import load_controller, neutral_normalized, render
from cloner.parametric_training import ParamTrainConfig, ParamTrainer
from cloner.training import open_training_data, train
from fxdsp.registry import STEMS
from fxencoder import FXEncoder, FXEncoderConfig

ROOT = Path(__file__).resolve().parents[1]
SR = 44100
SHORT_CHAIN = {"ranges": {"reverb.rt60_s": [0.1, 0.2], "reverb.predelay_ms": [0.0, 5.0]}}
TINY = {
    "model": "tiny", "batch_size": 2, "warmup_steps": 2, "fft_sizes": [512],
    "chain": SHORT_CHAIN,
}  # fmt: skip


def _write_tracks(root: Path, tracks: int = 3, seconds: float = 1.5) -> Path:
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


@pytest.fixture(scope="module")
def encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("enc") / "tiny.pt"
    fxencoder.save(FXEncoder(FXEncoderConfig.preset("tiny")), path)
    return path


@pytest.fixture(scope="module")
def tracks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_tracks(tmp_path_factory.mktemp("tracks"))


@pytest.fixture(scope="module")
def data(tracks: Path, encoder_path: Path, tmp_path_factory: pytest.TempPathFactory):
    return open_training_data(tracks, _config(encoder_path), "all",  # type: ignore[arg-type]
                              tmp_path_factory.mktemp("cache"))  # fmt: skip


def _config(encoder: Path, **changes) -> ParamTrainConfig:
    return ParamTrainConfig.from_dict({**TINY, "encoder": str(encoder), "steps": 4, **changes})


def test_config_validates_and_round_trips(encoder_path: Path) -> None:
    cfg = _config(encoder_path, param_weight=1.0, segment_seconds=0.6)
    assert cfg.model_config().segment_seconds == 0.6 and cfg.fft_sizes == (512,)
    assert ParamTrainConfig.from_json(cfg.to_json()) == cfg
    for bad, match in [
        ({"steps": 0}, "steps"),
        ({"mss_lr_weight": 0.0, "mss_ms_weight": 0.0}, "every loss weight"),
        ({"param_weight": -1.0}, "param_weight"),
        ({"fft_sizes": [65536]}, "too short"),
        ({"model": "huge"}, "unknown preset"),
        ({"fxnorm": 1}, "fxnorm"),
        ({"refine": 3}, "unknown ParamTrainConfig field"),
    ]:
        with pytest.raises(ValueError, match=match):
            _config(encoder_path, **bad)


def test_encoder_must_fit(data, encoder_path: Path) -> None:
    with pytest.raises(ValueError, match=r"embed_dim is 256.*'embed_dim': 16"):
        ParamTrainer(_config(encoder_path, model="small", segment_seconds=0.5), data)


def test_batch_and_loss_terms(data, encoder_path: Path) -> None:
    cfg = _config(encoder_path, embedding_weight=0.5, feature_weight=0.5, param_weight=1.0)
    trainer = ParamTrainer(cfg, data)
    batch = trainer.make_batch()
    n = trainer.model_config.segment_samples
    assert batch["input"].shape == batch["target"].shape == (2, 2, n)
    assert batch["emb_input"].shape == batch["emb_reference"].shape == (2, 16)
    assert batch["feat_input"].shape == (2, 52) and batch["target_params"].shape == (2, 24)
    with torch.no_grad():
        assert torch.allclose(batch["emb_input"], trainer.encoder(batch["input"]))
    # the target itself scores 0 on every audio term; the input scores what input unchanged does
    u_star = batch["target_params"]
    zero = trainer.losses(batch["target"], batch, u_star)
    for key in ("mss_lr", "mss_ms", "embedding", "features", "params"):
        assert abs(float(zero[key])) < 1e-5, key
    y = render(neutral_normalized(trainer.model.space, 2), batch["input"], SR)
    same = trainer.losses(y, batch)
    unchanged = trainer.losses(batch["input"], batch)
    for key in ("mss_lr", "mss_ms", "embedding", "features", "total"):
        assert abs(float(same[key]) - float(unchanged[key])) < 1e-4 * max(1.0, float(same[key]))
    total = same["mss_lr"] + same["mss_ms"] + 0.5 * same["embedding"] + 0.5 * same["features"]
    assert abs(float(same["total"]) - float(total)) < 1e-5
    logs = trainer.step(batch, keep_examples=True)
    for key in ("loss/total", "loss/params", "input_unchanged/mss_lr", "loss/relative"):
        assert np.isfinite(logs[key]), key
    assert trainer.examples is not None and trainer.examples["output"].shape == (2, 2, n)


def test_param_loss_fits_a_fixed_batch(data, encoder_path: Path) -> None:
    """Twenty steps of the parameter loss alone on one batch: the masked distance to the drawn
    parameters falls by more than half."""
    cfg = _config(encoder_path, mss_lr_weight=0.0, mss_ms_weight=0.0, param_weight=1.0,
                  lr=0.02, warmup_steps=0, steps=20)  # fmt: skip
    trainer = ParamTrainer(cfg, data)
    batch = trainer.make_batch()
    first = trainer.step(batch, measure_input=False)["loss/params"]
    for _ in range(19):
        last = trainer.step(batch, measure_input=False)["loss/params"]
    assert last < 0.5 * first, (first, last)


def test_resume_is_exact(data, encoder_path: Path, tmp_path: Path) -> None:
    cfg = _config(encoder_path, steps=4, checkpoint_every=2, feature_weight=0.2)
    a = ParamTrainer(cfg, data)
    a.step(measure_input=False)
    a.step(measure_input=False)
    a.save(tmp_path / "mid.pt")
    a.step(measure_input=False)
    a.step(measure_input=False)
    b = ParamTrainer(cfg, data)
    b.resume(tmp_path / "mid.pt")
    assert b.step_count == 2
    b.step(measure_input=False)
    b.step(measure_input=False)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values(),
                           strict=True):  # fmt: skip
        assert torch.equal(va, vb), k
    other = ParamTrainer(_config(encoder_path, model_overrides={"hidden": 8}), data)
    with pytest.raises(ValueError, match="config differs"):
        other.resume(tmp_path / "mid.pt")
    # the training checkpoint loads as a controller
    model = load_controller(tmp_path / "mid.pt")
    assert model.config == a.model_config


class _Writer:
    def __init__(self) -> None:
        self.scalars: dict[str, list[tuple[int, float]]] = {}
        self.audio: list[str] = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.setdefault(tag, []).append((step, value))

    def add_audio(self, tag: str, audio, step: int, sample_rate: int) -> None:
        self.audio.append(tag)


def test_train_loop_logs_and_checkpoints(data, encoder_path: Path, tmp_path: Path) -> None:
    cfg = _config(encoder_path, steps=3, log_every=1, audio_every=2, checkpoint_every=2)
    trainer = ParamTrainer(cfg, data)
    writer = _Writer()
    path = train(trainer, tmp_path, writer=writer, progress=False)  # type: ignore[arg-type]
    assert path == tmp_path / "last.pt" and trainer.step_count == 3
    assert [s for s, _ in writer.scalars["loss/total"]] == [1, 2, 3]
    assert "loss/params" in writer.scalars and "input_unchanged/total" in writer.scalars
    assert sorted(writer.audio) == sorted(f"{k}/{i}" for k in ("input", "reference", "output",
                                          "target") for i in (0, 1))  # fmt: skip
    state = torch.load(path, weights_only=True)
    assert state["step"] == 3 and state["format"] == "mixfx.params.train/1"


def test_command_line_trains_resumes_and_reports(
    tracks: Path, encoder_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({**TINY, "encoder": str(encoder_path), "steps": 2,
                                  "checkpoint_every": 1, "audio_every": 0}))  # fmt: skip
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "experiments.train_params", "--data", str(tracks), "--out",
            str(out), "--no-progress"]  # fmt: skip
    done = subprocess.run([*base, "--config", str(config), "--param-weight", "0.5"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 steps" in done.stdout and (out / "last.pt").exists()
    assert any((out / "tb").iterdir())
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["param_weight"] == 0.5 and saved["steps"] == 2
    from mixfx.cli import main

    common = ["train-params", "--data", str(tracks), "--out", str(out), "--no-progress"]
    assert main([*common, "--resume", "--steps", "3"]) == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3
    assert main([*common, "--config", str(config)]) == 1
    assert "exists: pass --resume" in capsys.readouterr().err
