"""cloner.evaluation and ``mixfx eval-transfer``: items, measures and the command, end to end.

A tiny dataset written here (3 songs x 4 stems x 2 s of coloured noise with level envelopes,
44.1 kHz float WAVs in ``<root>/test/<song>/<stem>.wav``), a short reverb (0.1-0.3 s), a tiny
encoder and a tiny cloner with random weights keep the file fast. Measured: references and
targets are the same chains on other songs (the reference of item (i, s) is exactly the target
of (j, s)); a method that returns the targets scores zero MSS and a -100 % change; the input's
MSS is the loss computed independently; the command writes every file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import lfilter

import cloner
import fxdsp
import fxencoder
from cloner import evaluation as ev
from cloner.loss import mss_loss
from fxdsp.functional.loudness import loudness
from fxdsp.registry import STEMS
from fxencoder.evaluation import load_segments

SR = 44100
SECONDS = 1.0
SHORT_REVERB = {"ranges": {"reverb.rt60_s": [0.1, 0.3], "reverb.predelay_ms": [0.0, 5.0]}}


def _write_songs(root: Path, songs: int = 3, seconds: float = 2.0) -> Path:
    rng = np.random.default_rng(0)
    n = round(seconds * SR)
    for t in range(songs):
        folder = root / "test" / f"song{t}"
        folder.mkdir(parents=True)
        for stem in STEMS:
            env = np.repeat(rng.uniform(0.7, 1.0, n // 4410 + 1), 4410)[:n]
            a = rng.uniform(0.3, 0.95)
            x = env * lfilter([1 - a], [1, -a], rng.standard_normal(n))
            x *= 0.05 / np.sqrt(np.mean(x**2))
            stereo = np.stack([x, rng.uniform(0.5, 1.0) * x], 1)
            sf.write(folder / f"{stem}.wav", stereo, SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_songs(tmp_path_factory.mktemp("songs"))


@pytest.fixture(scope="module")
def items(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> ev.TransferItems:
    segments = load_segments(
        dataset, "test", seconds=SECONDS, sample_rate=SR, fxnorm=True,
        cache_dir=tmp_path_factory.mktemp("cache"),
    )  # fmt: skip
    chain = fxdsp.ChainConfig.from_dict(SHORT_REVERB).replace(sample_rate=float(SR))
    return ev.make_items(segments, 2, seed=3, config=chain)


def test_items_pair_references_and_targets_through_the_same_chains(
    items: ev.TransferItems,
) -> None:
    n = len(items)
    assert n == 3 * 2
    assert items.inputs.shape == items.references.shape == items.targets.shape
    assert items.inputs.shape[1:3] == (4, 2)
    assert np.all(items.ref_song != items.song)
    for i in range(n):
        # The reference of (song i, style s) is song j through style s: the target of (j, s).
        j = int(
            np.flatnonzero((items.song == items.ref_song[i]) & (items.style == items.style[i]))[0]
        )
        assert torch.allclose(items.references[i], items.targets[j], atol=1e-6)
    # The chains change the audio (targets differ from inputs), and styles differ.
    assert not torch.allclose(items.targets, items.inputs, atol=1e-3)
    assert not torch.allclose(items.targets[0], items.targets[1], atol=1e-3)


def test_measures_of_input_and_of_a_perfect_method(items: ev.TransferItems) -> None:
    def oracle(x: torch.Tensor, r: torch.Tensor, stem: str, fs: int) -> torch.Tensor:
        return items.targets[:, STEMS.index(stem)]

    res = ev.evaluate(items, {"oracle": oracle, "half": lambda x, r, s, fs: 0.5 * x}, n_boot=50)
    methods = res["methods"]
    assert list(methods) == [ev.INPUT, "oracle", "half"]
    want = float(
        np.mean([
            float(mss_loss(items.inputs[i : i + 1, k], items.targets[i : i + 1, k]))
            for i in range(len(items)) for k in range(4)
        ])
    )  # fmt: skip
    assert methods[ev.INPUT]["stem_mean"]["mss_lr"]["mean"] == pytest.approx(want, rel=1e-5)
    mix_want = float(
        np.mean([
            float(mss_loss(items.inputs[i : i + 1].sum(1), items.targets[i : i + 1].sum(1)))
            for i in range(len(items))
        ])
    )  # fmt: skip
    assert methods[ev.INPUT]["mix"]["mss_lr"]["mean"] == pytest.approx(mix_want, rel=1e-5)
    perfect = methods["oracle"]
    for scope in ("mix", "stem_mean", *STEMS):
        assert perfect[scope]["mss_lr"]["mean"] == pytest.approx(0.0, abs=1e-6)
        assert perfect[scope]["mss_lr"]["change"] == pytest.approx(-1.0, abs=1e-6)
        for f in ev.FEATURES:
            assert perfect[scope][f]["mean"] == pytest.approx(0.0, abs=1e-6), (scope, f)
    # Halving every stem: the loudness error moves by 6.02 LU against input unchanged, item by
    # item (the loudness of a sum of equally scaled stems scales the same way).
    base = np.array(res["per_item"][ev.INPUT]["mix"]["loudness_lu"])
    half = np.array(res["per_item"]["half"]["mix"]["loudness_lu"])
    lufs = lambda a: loudness(a.double(), SR)  # noqa: E731
    signed = (lufs(items.inputs.sum(1)) - lufs(items.targets.sum(1))).numpy()
    assert np.allclose(half, np.abs(signed - 20 * np.log10(2)), atol=1e-6)
    assert np.allclose(base, np.abs(signed), atol=1e-6)
    assert "emb_gt" not in methods[ev.INPUT]["mix"]  # no encoder: no embedding distances
    md = ev.results_markdown(res)
    assert "| oracle |" in md and "paper: Ψ with Φp.s. (MUSDB18)" in md
    assert "-100.0 %" in md


def test_embedding_distances_with_an_encoder(items: ev.TransferItems) -> None:
    torch.manual_seed(0)
    enc = fxencoder.FXEncoder(fxencoder.FXEncoderConfig.preset("tiny")).eval()
    res = ev.evaluate(items, {}, encoder=enc, n_boot=20)
    stats = res["methods"][ev.INPUT]["drums"]
    e_in = enc.embed(items.inputs[:, 0], SR)
    e_gt = enc.embed(items.targets[:, 0], SR)
    want = (1 - torch.nn.functional.cosine_similarity(e_in, e_gt)).mean()
    assert stats["emb_gt"]["mean"] == pytest.approx(float(want), rel=1e-4)


def test_bad_methods_are_named(items: ev.TransferItems) -> None:
    items = dataclasses.replace(
        items, inputs=items.inputs[:2], references=items.references[:2],
        targets=items.targets[:2], song=items.song[:2], ref_song=items.ref_song[:2],
        style=items.style[:2],
    )  # fmt: skip
    with pytest.raises(ValueError, match="'short' returned"):
        ev.evaluate(items, {"short": lambda x, r, s, fs: x[..., :-1]}, n_boot=10)
    with pytest.raises(ValueError, match="'nan' returned non-finite"):
        ev.evaluate(items, {"nan": lambda x, r, s, fs: x * float("nan")}, n_boot=10)
    with pytest.raises(ValueError, match="styles"):
        ev.make_items(None, 0)


def test_command_writes_tables_plot_and_examples(dataset: Path, tmp_path: Path) -> None:
    from mixfx.cli import main

    torch.manual_seed(0)
    enc_cfg = fxencoder.FXEncoderConfig.preset("tiny")
    fxencoder.save(fxencoder.FXEncoder(enc_cfg), tmp_path / "enc.pt")
    model = cloner.MixFXCloner(cloner.ClonerConfig.preset("tiny", cond_dim=enc_cfg.embed_dim))
    cloner.save(model, tmp_path / "cl.pt", encoder=str(tmp_path / "enc.pt"))
    (tmp_path / "chain.json").write_text(json.dumps(SHORT_REVERB))
    out = tmp_path / "out"
    code = main([
        "eval-transfer", "--cloner", f"tiny={tmp_path / 'cl.pt'}", "--data", str(dataset),
        "--out", str(out), "--styles", "2", "--seconds", str(SECONDS), "--bootstrap", "30",
        "--chain", str(tmp_path / "chain.json"), "--examples", "2",
        "--cache-dir", str(tmp_path / "cache"), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    methods = results["stems"]["methods"]
    assert list(methods) == [ev.INPUT, ev.MATCH_EQ, "cloner tiny"]
    # An untrained cloner with an identity-initialised correction path is the input itself.
    assert methods["cloner tiny"]["mix"]["mss_lr"]["mean"] == pytest.approx(
        methods[ev.INPUT]["mix"]["mss_lr"]["mean"], rel=1e-4
    )
    assert methods[ev.INPUT]["stem_mean"]["emb_gt"]["mean"] > 0
    md = (out / "results.md").read_text()
    assert "| match EQ |" in md and "| cloner tiny |" in md
    png = (out / "spectra.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    wavs = sorted(p.name for p in (out / "examples" / "item0").iterdir())
    assert wavs == sorted(["input.wav", "reference.wav", "match_EQ.wav", "cloner_tiny.wav",
                           "target.wav"])  # fmt: skip
    audio, rate = sf.read(out / "examples" / "item1" / "target.wav")
    assert rate == SR and audio.shape == (round(SECONDS * SR), 2)


def test_command_errors_are_one_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mixfx.cli import main

    code = main([
        "eval-transfer", "--cloner", str(tmp_path / "missing.pt"), "--data", str(dataset),
        "--out", str(tmp_path / "o"), "--no-progress",
    ])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("mixfx eval-transfer: error: ")
    assert "missing.pt" in err[0]
