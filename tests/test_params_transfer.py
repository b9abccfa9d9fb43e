"""Parametric transfer end to end: ``cloner.parametric.transfer_params``, ``mixfx transfer
--method params`` (prediction, refinement, blend, presets), the evaluation's parametric rows and
the parameter recovery (tiny encoder, tiny controller with random weights, 1-s stems)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import lfilter

import fxdsp
import fxencoder
from cloner import evaluation as ev
from cloner import parametric as pm
from cloner.api import encoder_record
from cloner.parametric_eval import param_recovery, recovery_markdown, style_chains
from cloner.presets import Preset
from fxdsp.registry import STEMS
from fxencoder import FXEncoder, FXEncoderConfig
from fxencoder.evaluation import load_segments
from mixfx.cli import main
from mixfx.commands.transfer import read_song

RATE = 48000  # the input's rate is not the encoder's: outputs come back at 48 kHz
SR = 44100
SHORT_REVERB = {"ranges": {"reverb.rt60_s": [0.1, 0.3], "reverb.predelay_ms": [0.0, 5.0]}}


def _coloured(rng: np.random.Generator, n: int, level: float = 0.05) -> np.ndarray:
    a = rng.uniform(0.3, 0.95)
    x = lfilter([1 - a], [1, -a], rng.standard_normal(n))
    return level * x / np.sqrt(np.mean(x**2))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("params")
    torch.manual_seed(0)
    enc = root / "enc.pt"
    fxencoder.save(FXEncoder(FXEncoderConfig.preset("tiny")).eval(), enc)
    model = pm.ParamController(pm.ParamControllerConfig.preset("tiny"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen))
    ctl = root / "ctl.pt"
    pm.save_controller(model, ctl, encoder=encoder_record(enc, 16))
    rng = np.random.default_rng(0)
    out = {"enc": enc, "ctl": ctl}
    for name, rate in (("input", RATE), ("ref", SR), ("ref_b", SR)):
        folder = root / name
        folder.mkdir()
        for stem in STEMS:
            x = _coloured(rng, rate)
            sf.write(folder / f"{stem}.wav", np.stack([x, 0.7 * x], 1), rate, subtype="FLOAT")
        out[name] = folder
    return out


def _library(env: dict[str, Path], **kw):
    _, parts, rate = read_song(env["input"], "input")
    _, ref, ref_rate = read_song(env["ref"], "reference")
    controller = pm.load_controller(env["ctl"])
    encoder = fxencoder.load(env["enc"])
    return pm.transfer_params(controller, encoder, parts, rate, ref, ref_rate, **kw), parts


def test_prediction_end_to_end_equals_the_library(env: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    code = main(["transfer", str(env["input"]), str(env["ref"]), "-o", str(out), "--method",
                 "params", "--controller", str(env["ctl"]), "--no-progress",
                 "--save-stems"])  # fmt: skip
    assert code == 0
    audio, rate = sf.read(out, always_2d=True)
    assert rate == RATE and audio.shape == (RATE, 2)
    result, parts = _library(env)
    assert np.abs(audio.T - result.mix.numpy()).max() < 1e-6
    # the chains are not neutral (a random controller): the output differs from the input
    stem, _ = sf.read(tmp_path / "out_stems" / "drums.wav", always_2d=True)
    assert np.abs(stem.T - parts["drums"].numpy()).max() > 1e-3
    assert np.abs(stem.T - result.stems["drums"].numpy()).max() < 1e-6


def test_refine_save_preset_and_apply_it(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, preset_path = tmp_path / "r.wav", tmp_path / "p.json"
    code = main(["transfer", str(env["input"]), str(env["ref"]), "-o", str(out), "--method",
                 "params", "--controller", str(env["ctl"]), "--refine", "1", "--save-preset",
                 str(preset_path), "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "drums:" in printed and "compressor: threshold_db" in printed
    preset = Preset.load(preset_path)
    assert sorted(preset.stems) == sorted(STEMS) and preset.sample_rate == RATE
    assert all(s.level_match_db is not None for s in preset.stems.values())
    result, parts = _library(env, refine_steps=1)
    # the level matches measured in the render are the preset's own measure on the input
    from cloner.presets import stage_levels_db

    measured = stage_levels_db(preset, "vocals", parts["vocals"], RATE)
    assert max(abs(measured[k] - preset.stems["vocals"].level_match_db[k]) for k in measured) < 1e-4
    assert result.refine is not None and bool((result.refine.best <= result.refine.losses[0]).all())
    refined, _ = sf.read(out, always_2d=True)
    assert np.abs(refined.T - result.mix.numpy()).max() < 1e-6
    # the saved preset applied to the input gives the refined output
    again = tmp_path / "again.wav"
    code = main(["transfer", str(env["input"]), str(env["ref"]), "-o", str(again), "--method",
                 "params", "--preset", str(preset_path), "--no-progress"])  # fmt: skip
    assert code == 0
    applied, _ = sf.read(again, always_2d=True)
    assert np.abs(applied - refined).max() < 1e-5 * max(1.0, np.abs(refined).max())


def test_refine_from_neutral_needs_no_controller(env: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "n.wav"
    code = main(["transfer", str(env["input"]), str(env["ref"]), "-o", str(out), "--method",
                 "params", "--refine", "1", "--refine-from", "neutral", "--encoder",
                 str(env["enc"]), "--no-progress"])  # fmt: skip
    assert code == 0
    _, parts, rate = read_song(env["input"], "input")
    _, ref, ref_rate = read_song(env["ref"], "reference")
    result = pm.transfer_params(None, fxencoder.load(env["enc"]), parts, rate, ref, ref_rate,
                                refine_steps=1, refine_from="neutral")  # fmt: skip
    assert torch.equal(result.predicted, pm.neutral_normalized(batch=4))
    audio, _ = sf.read(out, always_2d=True)
    assert np.abs(audio.T - result.mix.numpy()).max() < 1e-6


def _two_references(env: dict[str, Path]) -> tuple:
    """The input, both references, the models, and the transfers towards each reference."""
    _, parts, rate = read_song(env["input"], "input")
    _, ref, ref_rate = read_song(env["ref"], "reference")
    _, ref_b, _ = read_song(env["ref_b"], "reference")
    controller, encoder = pm.load_controller(env["ctl"]), fxencoder.load(env["enc"])
    a = pm.transfer_params(controller, encoder, parts, rate, ref, ref_rate)
    b = pm.transfer_params(controller, encoder, parts, rate, ref_b, ref_rate)
    return parts, rate, ref, ref_rate, ref_b, controller, encoder, a, b


def test_blend_interpolates_the_parameters(env: dict[str, Path]) -> None:
    parts, rate, ref, ref_rate, ref_b, controller, encoder, a, b = _two_references(env)
    mid = pm.transfer_params(controller, encoder, parts, rate, ref, ref_rate, reference_b=ref_b,
                             weight=0.25)  # fmt: skip
    assert torch.allclose(mid.params, 0.25 * a.params + 0.75 * b.params, atol=1e-6)
    assert not torch.allclose(a.params, b.params, atol=1e-3)


def test_interpolation_over_segments(env: dict[str, Path], tmp_path: Path) -> None:
    """Segment i of N gets w_i · u_A + (1 − w_i) · u_B, w_i = 1 − i/(N − 1); each chain renders
    the whole stem and the renders are joined with raised-cosine cross-fades (checked against a
    plain loop over samples)."""
    parts, rate, ref, ref_rate, ref_b, controller, encoder, a, b = _two_references(env)
    res = pm.transfer_params(controller, encoder, parts, rate, ref, ref_rate, reference_b=ref_b,
                             segments=3, crossfade_seconds=0.1)  # fmt: skip
    with pytest.raises(ValueError, match="no single preset"):
        Preset.from_transfer(res)
    assert res.params.shape == (3, 4, 24) and res.levels is None
    torch.testing.assert_close(res.params[0], a.params)
    torch.testing.assert_close(res.params[2], b.params)
    torch.testing.assert_close(res.params[1], 0.5 * (a.params + b.params))
    mid = pm.apply_params(res.params[1], parts, rate)
    length, h = rate, round(0.1 * rate) // 2
    bounds = [round(i * length / 3) for i in range(4)]
    renders = [a.stems, mid, b.stems]
    for name in ("drums", "vocals"):
        expect = np.zeros((2, length))
        for t in range(length):
            i = max(k for k in range(3) if bounds[k] <= t)
            expect[:, t] = renders[i][name][:, t].double().numpy()
            for k in (1, 2):  # inside a cross-fade: the raised cosine between the neighbours
                if bounds[k] - h <= t < bounds[k] + h:
                    f = np.sin(0.5 * np.pi * (t - bounds[k] + h + 0.5) / (2 * h)) ** 2
                    prev = renders[k - 1][name][:, t].double().numpy()
                    nxt = renders[k][name][:, t].double().numpy()
                    expect[:, t] = prev + f * (nxt - prev)
        np.testing.assert_allclose(res.stems[name].double().numpy(), expect, atol=1e-6)
    out = tmp_path / "interp.wav"
    code = main(["transfer", str(env["input"]), str(env["ref"]), "-o", str(out), "--method",
                 "params", "--controller", str(env["ctl"]), "--interpolate", str(env["ref_b"]),
                 "--segments", "3", "--no-progress"])  # fmt: skip
    assert code == 0
    cli = pm.transfer_params(controller, encoder, parts, rate, ref, ref_rate, reference_b=ref_b,
                             segments=3)  # fmt: skip
    audio, _ = sf.read(out, always_2d=True)
    assert np.abs(audio.T - cli.mix.numpy()).max() < 1e-6
    with pytest.raises(ValueError, match="segments >= 2"):
        pm.transfer_params(controller, encoder, parts, rate, ref, ref_rate, reference_b=ref_b,
                           segments=1)  # fmt: skip
    with pytest.raises(ValueError, match="not with params or refinement"):
        pm.transfer_params(controller, encoder, parts, rate, ref, ref_rate, reference_b=ref_b,
                           segments=2, refine_steps=1)  # fmt: skip


def test_join_segments_hard_cuts_clipped_fades_and_generators() -> None:
    renders = [torch.full((2, 30), float(i)) for i in range(3)]  # boundaries 10 and 20
    np.testing.assert_array_equal(pm.join_segments(renders, 0)[0].numpy(),
                                  np.repeat([0.0, 1.0, 2.0], 10))  # fmt: skip
    # A fade longer than a segment is clipped to h = 5 samples each side of the boundaries.
    joined = pm.join_segments(iter(renders), 10**6, segments=3)[0].numpy()
    ramp = np.sin(0.5 * np.pi * (np.arange(10) + 0.5) / 10) ** 2
    np.testing.assert_allclose(joined[5:15], ramp, atol=1e-6)
    np.testing.assert_allclose(joined[15:25], 1.0 + ramp, atol=1e-6)
    assert joined[:5].tolist() == [0.0] * 5 and joined[25:].tolist() == [2.0] * 5
    with pytest.raises(ValueError, match="needs 3 renders"):
        pm.join_segments(iter(renders[:2]), 4, segments=3)
    with pytest.raises(ValueError, match="cannot hold"):
        pm.join_segments([torch.zeros(2, 2)] * 3, 0)


def test_silent_stem_stays_silent(env: dict[str, Path]) -> None:
    _, parts, rate = read_song(env["input"], "input")
    _, ref, ref_rate = read_song(env["ref"], "reference")
    parts = {**parts, "bass": torch.zeros(2, rate)}
    result = pm.transfer_params(pm.load_controller(env["ctl"]), fxencoder.load(env["enc"]), parts,
                                rate, ref, ref_rate)  # fmt: skip
    assert float(result.stems["bass"].abs().max()) == 0.0
    assert bool(torch.isfinite(result.mix).all())


def test_usage_errors(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["transfer", str(env["input"]), str(env["ref"]), "-o", str(tmp_path / "x.wav"),
            "--no-progress"]  # fmt: skip
    cases = [
        (["--method", "params", "--controller", str(env["ctl"]), "--interpolate",
          str(env["ref_b"]), "--segments", "3", "--refine", "2"], "no --refine or --save-preset"),
        (["--method", "params", "--controller", str(env["ctl"]), "--interpolate",
          str(env["ref_b"]), "--segments", "65"], "at most 64"),
        (["--method", "input", "--save-preset", str(tmp_path / "p.json")],
         "only with --method params"),
        (["--cloner", str(env["ctl"]), "--save-preset", str(tmp_path / "p.json")],
         "choose one with --method"),
        (["--method", "params", "--cloner", str(env["ctl"])],
         "--cloner: only with --method cloner"),
        (["--method", "params", "--preset", str(tmp_path / "p.json"), "--refine", "2"],
         "no --controller, --refine"),
        (["--method", "params", "--preset", str(tmp_path / "missing.json")], "cannot read preset"),
        (["--method", "params", "--controller", str(tmp_path / "missing.pt")],
         "no controller file"),
    ]  # fmt: skip
    for extra, message in cases:
        code = main([*base, *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and message in err[0], (extra, err)


# ---------------------------------------------------------------------------------------------
# Evaluation


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(0)
    n = round(1.5 * SR)
    for t in range(3):
        folder = root / "test" / f"song{t}"
        folder.mkdir(parents=True)
        for stem in STEMS:
            x = _coloured(rng, n)
            sf.write(folder / f"{stem}.wav", np.stack([x, 0.8 * x], 1), SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def items(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> ev.TransferItems:
    segments = load_segments(dataset, "test", seconds=1.0, sample_rate=SR, fxnorm=True,
                             cache_dir=tmp_path_factory.mktemp("cache"))  # fmt: skip
    chain = fxdsp.ChainConfig.from_dict(SHORT_REVERB).replace(sample_rate=float(SR))
    return ev.make_items(segments, 2, seed=3, config=chain)


def test_style_chains_are_the_items_chains(items: ev.TransferItems) -> None:
    chain = fxdsp.ChainConfig.from_dict(SHORT_REVERB).replace(sample_rate=float(SR))
    chains = style_chains(items, 3, chain)
    for k, stem in enumerate(STEMS):
        with torch.no_grad():
            y = fxdsp.Manipulator(chains[stem])(items.inputs[:, k])
        assert torch.equal(y, items.targets[:, k]), stem


def test_param_recovery_closed_forms(items: ev.TransferItems) -> None:
    """The drawn parameters themselves recover with zero error; the neutral and midpoint
    baselines' errors are the mean distances computed here directly."""
    chain = fxdsp.ChainConfig.from_dict(SHORT_REVERB).replace(sample_rate=float(SR))
    chains = style_chains(items, 3, chain)
    space = fxdsp.ParamSpace(pm.controller_chain(SR))
    truth = {s: space.to_normalized(chains[s].values).float().clamp(0, 1) for s in STEMS}
    rec = param_recovery({"oracle": truth}, chains, SR, chain)
    names = [row["name"] for row in rec["columns"]]
    assert names == list(space.names) and "eq.q[0]" not in names
    gain = next(r for r in rec["columns"] if r["name"] == "gain.gain_db")
    assert gain["oracle"] < 1e-4
    on = torch.cat([chains[s].active[:, 5] for s in STEMS])
    drawn = torch.cat([chains[s].values["gain.gain_db"].double() for s in STEMS])[on]
    assert gain["n"] == int(on.sum())
    assert gain["neutral (baseline)"] == pytest.approx(float(drawn.abs().mean()), abs=1e-4)
    assert gain["midpoint (baseline)"] == pytest.approx(float((drawn - 1.5).abs().mean()), abs=1e-6)
    md = recovery_markdown(rec)
    assert "| gain.gain_db | dB |" in md and "oracle" in md


def test_params_method_rows(items: ev.TransferItems) -> None:
    torch.manual_seed(0)
    encoder = FXEncoder(FXEncoderConfig.preset("tiny")).eval()
    controller = pm.ParamController(pm.ParamControllerConfig.preset("tiny")).eval()
    record: dict[str, list[torch.Tensor]] = {}
    method = ev.params_method(controller, encoder, record=record)
    x, r = items.inputs[:, 0], items.references[:, 0]
    y = method(x, r, "drums", SR)
    # an untrained controller is (almost) the neutral chain: the input, to within the edge
    # columns' 0.01 (ratio 1.04:1, wet 1 %)
    assert y.shape == x.shape and float((y - x).abs().max()) < 0.05 * float(x.abs().max())
    assert record["drums"][0].shape == (len(items), 24)
    refined = ev.params_method(None, encoder, refine=1, refine_from="neutral")
    assert refined(x, r, "drums", SR).shape == x.shape
    with pytest.raises(ValueError, match="needs refine"):
        ev.params_method(None, encoder, refine_from="neutral")
    with pytest.raises(ValueError, match="needs a controller"):
        ev.params_method(None, encoder)


def test_eval_transfer_command_with_params(
    dataset: Path, env: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "chain.json").write_text(json.dumps(SHORT_REVERB))
    out = tmp_path / "out"
    code = main([
        "eval-transfer", "--params", f"tiny={env['ctl']}", "--params-refine", "0", "--data",
        str(dataset), "--out", str(out), "--styles", "1", "--seconds", "0.5", "--bootstrap", "20",
        "--songs", "2",
        "--chain", str(tmp_path / "chain.json"), "--examples", "0", "--no-match-eq",
        "--cache-dir", str(tmp_path / "cache"), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    # (the refined rows are the same Method factory, tested above; --params-refine 0 keeps
    # this end-to-end run short)
    assert list(results["stems"]["methods"]) == [ev.INPUT, "params tiny"]
    rec = results["param_recovery"]
    assert rec["methods"] == ["params tiny", "midpoint (baseline)", "neutral (baseline)"]
    assert all(np.isfinite(row["params tiny"]) for row in rec["columns"] if row["n"])
    md = (out / "results.md").read_text()
    assert "| params tiny |" in md and "## Parameter recovery" in md


def test_pedalboard_items_are_the_styles_rendered_by_pedalboard(
    dataset: Path, env: dict[str, Path], tmp_path: Path
) -> None:
    """Targets and references are the inputs (and the reference songs) through the style's
    pedalboard chain of their stem; the command runs with them and leaves out the
    parameter-recovery table (pedalboard's controls are not fxdsp's parameters)."""
    pytest.importorskip("pedalboard")
    from fxencoder import pedalboard_styles as ps

    segments = load_segments(dataset, "test", seconds=0.5, sample_rate=SR, fxnorm=True,
                             cache_dir=tmp_path / "cache")  # fmt: skip
    items = ev.make_pedalboard_items(segments, 2, seed=5)
    styles = ps.draw_styles(2, 5)
    plain = ev.make_items(segments, 2, seed=5)
    assert np.array_equal(items.ref_song, plain.ref_song)  # the same reference songs
    assert all(items.ref_song != items.song)
    for i in (0, len(items) - 1):
        for k, stem in enumerate(STEMS):
            values = styles[int(items.style[i])][stem]
            target = ps.render(segments.audio[items.song[i], k].numpy(), SR, values)
            ref = ps.render(segments.audio[items.ref_song[i], k].numpy(), SR, values)
            assert np.array_equal(items.targets[i, k].numpy(), target)
            assert np.array_equal(items.references[i, k].numpy(), ref)
    # fixed controls override every style's draw (here: the gain and reverb switched off).
    fixed = {"gain_db": 0.0, "wet_level": 0.0}
    quiet = ev.make_pedalboard_items(segments, 2, seed=5, fixed=fixed)
    values = {**styles[int(quiet.style[0])][STEMS[1]], **fixed}
    target = ps.render(segments.audio[quiet.song[0], 1].numpy(), SR, values)
    assert np.array_equal(quiet.targets[0, 1].numpy(), target)
    assert not np.array_equal(quiet.targets[0, 1].numpy(), items.targets[0, 1].numpy())
    with pytest.raises(ValueError, match=r"does not have: \['wet'\]"):
        ev.make_pedalboard_items(segments, 2, seed=5, fixed={"wet": 0.0})
    out = tmp_path / "out"
    code = main([
        "eval-transfer", "--params", f"tiny={env['ctl']}", "--params-refine", "0", "--data",
        str(dataset), "--out", str(out), "--styles", "1", "--seconds", "0.5", "--bootstrap", "20",
        "--songs", "2", "--style-library", "pedalboard", "--examples", "0", "--no-match-eq",
        "--cache-dir", str(tmp_path / "cache"), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["setup"]["style_library"] == "pedalboard" and "param_recovery" not in results
    assert "styles made by pedalboard" in (out / "results.md").read_text()


def test_pedalboard_styles_refuse_an_fxdsp_chain(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--chain used to be ignored without a word when the styles came from pedalboard."""
    chain = tmp_path / "chain.json"
    chain.write_text("{}")
    code = main(["eval-transfer", "--params", f"tiny={env['ctl']}", "--data", str(tmp_path),
                 "--out", str(tmp_path / "out"), "--style-library", "pedalboard", "--chain",
                 str(chain), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "give one of the two" in err[0], err
    assert not (tmp_path / "out").exists()
