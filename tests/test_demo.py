"""The style-transfer demo (mixfx/demo.py) with the shipped models on the bundled held-out example.

Issue 11's check: the shipped models convert a held-out example and get closer to the known
target than the unprocessed input, on the multi-scale spectral loss and on the encoder distance.
The figures are recomputed here from the files the demo wrote (the loss itself is checked
against auraloss in test_cloner_loss.py, the loudness against pyloudnorm below).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import torch

import fxencoder
from cloner.loss import mss_loss
from cloner.presets import Preset, apply_preset
from fxdsp.registry import STEMS
from mixfx import demo
from mixfx.cli import main
from mixfx.commands.transfer import DEFAULT_METHOD

RATE = 44100
MIXES = ("input", "reference", "target")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    summary = demo.run_demo(out, progress=False)
    return out, summary


def _read(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    assert rate == RATE
    return data.T  # (channels, samples)


def test_the_bundled_example_is_held_out_and_freely_licensed() -> None:
    ex = demo.load_example()
    assert ex.sample_rate == RATE and set(ex.input) == set(ex.reference) == set(STEMS)
    for stems in (ex.input, ex.reference):
        for x in stems.values():
            assert x.shape == (2, 6 * RATE) and bool(torch.isfinite(x).all())
            assert float(x.abs().max()) > 0.01  # every stem plays
    assert ex.info["input"] != ex.info["reference"]
    for song in ex.info["songs"].values():
        assert song["licence"].startswith("BSD-3-Clause") and song["soundfont_licence"] == "MIT"
    # Neither song is in the corpus' training or validation split (the test split is held out).
    import experiments.make_demo_example as maker

    assert {maker.INPUT_SONG, maker.REFERENCE_SONG} == {ex.info["input"], ex.info["reference"]}
    assert set(ex.style.stems) == set(STEMS)
    total = sum(p.stat().st_size for p in demo.DATA_DIR.rglob("*") if p.is_file())
    assert total < 5e6


def test_writes_the_files_and_nothing_half_written(run: tuple[Path, dict[str, Any]]) -> None:
    out, summary = run
    expected = {f"{m}.wav" for m in MIXES} | {"output.wav", "preset.json", "comparison.png",
                                              "summary.json"}  # fmt: skip
    expected |= {f"output_{m}.wav" for m in demo.METHODS}
    assert set(os.listdir(out)) == expected
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    for name in expected - {"preset.json", "comparison.png", "summary.json"}:
        info = sf.info(str(out / name))
        assert (info.samplerate, info.channels, info.frames) == (RATE, 2, 6 * RATE), name
        assert info.subtype == "FLOAT" and np.isfinite(_read(out / name)).all(), name
    assert summary["default_method"] == DEFAULT_METHOD
    assert np.array_equal(_read(out / "output.wav"), _read(out / f"output_{DEFAULT_METHOD}.wav"))
    image = matplotlib.image.imread(str(out / "comparison.png"))
    assert image.shape[0] > 400 and image.shape[1] > 600 and float(image[..., :3].std()) > 0.05


def test_each_shipped_method_moves_the_input_towards_the_target(
    run: tuple[Path, dict[str, Any]],
) -> None:
    """The issue's assertion: lower spectral loss and encoder distance to the target than the
    unprocessed input, for every shipped method, recomputed from the written files."""
    out, summary = run
    target = torch.from_numpy(_read(out / "target.wav"))[None]
    encoder = fxencoder.load("default")
    ex = demo.load_example()
    t_stems = apply_preset(ex.style, ex.input, RATE)
    e_target = encoder.embed(torch.stack([t_stems[s] for s in STEMS]), RATE)
    base = float(mss_loss(torch.from_numpy(_read(out / "input.wav"))[None], target))
    assert base == pytest.approx(summary["figures"]["input unchanged"]["mss_lr"], rel=1e-4)
    for method in demo.METHODS:
        y = torch.from_numpy(_read(out / f"output_{method}.wav"))[None]
        loss = float(mss_loss(y, target))
        assert loss == pytest.approx(summary["figures"][method]["mss_lr"], rel=1e-4), method
        assert loss < base, (method, loss, base)
        fig = summary["figures"][method]
        assert fig["emb_target"] < summary["figures"]["input unchanged"]["emb_target"], method
        assert fig["emb_reference"] < summary["figures"]["input unchanged"]["emb_reference"]
    # the encoder distance of the input, recomputed from its stems
    e_in = encoder.embed(torch.stack([ex.input[s] for s in STEMS]), RATE)
    dist = 1 - torch.nn.functional.cosine_similarity(e_in.double(), e_target.double())
    assert float(dist.mean()) == pytest.approx(
        summary["figures"]["input unchanged"]["emb_target"], rel=1e-4
    )


def test_the_target_is_the_input_through_the_style(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    ex = demo.load_example()
    stems = apply_preset(Preset.load(demo.DATA_DIR / "style.json"), ex.input, RATE)
    mix = sum(stems[s].double().numpy() for s in STEMS)
    assert np.allclose(_read(out / "target.wav"), mix, atol=1e-5)
    assert np.allclose(_read(out / "input.wav"),
                       sum(ex.input[s].double().numpy() for s in STEMS), atol=1e-6)  # fmt: skip


def test_the_preset_renders_the_parametric_output(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    preset = Preset.load(out / "preset.json")
    stems = apply_preset(preset, demo.load_example().input, RATE)
    mix = sum(stems[s].double().numpy() for s in STEMS)
    y = _read(out / "output_params.wav")
    assert float(np.abs(mix - y).max()) < 1e-3 * float(np.abs(y).max())


def test_loudness_figures_match_pyloudnorm(run: tuple[Path, dict[str, Any]]) -> None:
    out, summary = run
    meter = pyloudnorm.Meter(RATE)
    for name in (*MIXES, *(f"output_{m}" for m in demo.METHODS)):
        want = meter.integrated_loudness(_read(out / f"{name}.wav").T)
        assert summary["mixes"][name]["integrated_lufs"] == pytest.approx(want, abs=0.05), name


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--method", "params", "--no-progress"]) == 0
    report = capsys.readouterr().out
    assert "input unchanged" in report and "params" in report and str(out / "output.wav") in report
    assert not (out / "output_cloner.wav").exists()


def test_bad_example_and_output_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "example"
    shutil.copytree(demo.DATA_DIR, broken)
    (broken / "reference" / "vocals.flac").unlink()
    out = tmp_path / "out"
    assert main(["demo", "--data", str(broken), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vocals.flac is missing" in err[0], err
    assert not out.exists()
    (broken / "reference" / "vocals.flac").write_bytes(b"not audio")
    assert main(["demo", "--data", str(broken), "--out", str(out), "--no-progress"]) == 1
    assert "cannot read" in capsys.readouterr().err
    taken = tmp_path / "taken"
    taken.write_text("a file")
    assert main(["demo", "--out", str(taken), "--no-progress"]) == 1
    assert "is not a folder" in capsys.readouterr().err and taken.read_text() == "a file"
    assert main(["demo", "--controller", str(tmp_path / "none.pt"), "--out", str(out),
                 "--no-progress"]) == 1  # fmt: skip
    assert "no controller file" in capsys.readouterr().err and not out.exists()
