"""fxencoder.evaluation and ``mixfx eval-encoder``: the four conditions, end to end and measured.

A tiny dataset written here (4 songs x 4 stems x 2 s of low-passed noise with level envelopes,
24 kHz float WAVs in ``<root>/test/<song>/<stem>.wav``) and a tiny encoder
(``FXEncoderConfig.preset("tiny")`` at 24 kHz, random weights) keep the file fast; a reverb of
0.1-0.3 s (a ``--chain`` file) keeps the full chain cheap. Measured: the command writes every
file and number; on styles that differ only in gain the effect features retrieve the style
and the content embedding cannot (chance, exactly); the oracle embedding (the factors, through
the ``embed_fn`` hook) scores near 1 and a noise embedding near 0, proving the plumbing.
"""

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
from fxdsp.registry import EFFECTS, STEMS
from fxencoder import evaluation as ev
from fxencoder.metrics import retrieval_bootstrap, retrieval_correct
from mixfx.cli import main

pytest.importorskip("sklearn")

SR = 24000
SECONDS = 0.25
SHORT_REVERB = {"ranges": {"reverb.rt60_s": [0.1, 0.3], "reverb.predelay_ms": [0.0, 5.0]}}


def _write_songs(root: Path, songs: int = 4, seconds: float = 2.0, rate: int = SR) -> Path:
    """``root/test/song<i>/<stem>.wav``: low-passed noise (a colour per stem and song) with a
    level envelope, at -26 dBFS RMS per file, stereo with a per-stem channel balance."""
    rng = np.random.default_rng(0)
    n = round(seconds * rate)
    for t in range(songs):
        folder = root / "test" / f"song{t}"
        folder.mkdir(parents=True)
        for stem in STEMS:
            env = np.repeat(rng.uniform(0.7, 1.0, n // 2400 + 1), 2400)[:n]  # 0.1 s steps
            a = rng.uniform(0.3, 0.95)
            x = env * lfilter([1 - a], [1, -a], rng.standard_normal(n))
            x *= 0.05 / np.sqrt(np.mean(x**2))  # -26 dBFS: one level per stem, as after FxNorm
            stereo = np.stack([x, rng.uniform(0.5, 1.0) * x], 1)
            sf.write(folder / f"{stem}.wav", stereo, rate, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_songs(tmp_path_factory.mktemp("songs"))


@pytest.fixture(scope="module")
def segments(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> ev.EvalSegments:
    return ev.load_segments(
        dataset, "test", seconds=SECONDS, sample_rate=SR,
        cache_dir=tmp_path_factory.mktemp("cache"),
    )  # fmt: skip


def _chain() -> fxdsp.ChainConfig:
    return fxdsp.ChainConfig.from_dict(SHORT_REVERB).replace(sample_rate=float(SR))


# ------------------------------------------------------------------------------------------------
# The command, end to end
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def command_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    tmp = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    config = fxencoder.FXEncoderConfig.preset("tiny", sample_rate=SR, f_max=11000.0)
    fxencoder.save(fxencoder.FXEncoder(config), tmp / "tiny.pt")
    (tmp / "chain.json").write_text(json.dumps(SHORT_REVERB))
    out = tmp / "out"
    code = main([
        "eval-encoder", "--encoder", f"tiny={tmp / 'tiny.pt'}", "--data", str(dataset),
        "--out", str(out), "--styles", "2", "--draws", "2", "--seconds", str(SECONDS),
        "--trees", "3", "--bootstrap", "50", "--chain", str(tmp / "chain.json"),
        "--cache-dir", str(tmp / "cache"), "--no-progress",
    ])  # fmt: skip
    return out, code


def test_command_writes_every_file(command_run: tuple[Path, int]) -> None:
    out, code = command_run
    assert code == 0
    for condition in ev.CONDITIONS:
        png = (out / f"tsne_{condition}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (out / "results.md").read_text()
    for name in ("tiny", "content_embedding", "effect_features", "oracle"):
        assert f"| {name}" in md
    for paper_row in ("paper: MEE (MUSDB18)", "paper: Φ∅", "paper: Φnorm", "paper: Φp.s."):
        assert paper_row in md
    assert "0.674 / 0.963" in md  # Φp.s., multitrack full, as the paper prints it


def test_results_json_has_every_condition_and_embedding_in_range(
    command_run: tuple[Path, int],
) -> None:
    out, _ = command_run
    res = json.loads((out / "results.json").read_text())
    assert list(res["conditions"]) == list(ev.CONDITIONS)
    assert res["embeddings"] == ["tiny", "content_embedding", "effect_features", "oracle"]
    assert res["setup"]["songs"] == [f"song{i}" for i in range(4)]
    assert res["setup"]["sample_rate"] == SR and res["setup"]["encoders"]["tiny"]["parameters"] > 0
    for condition, cell in res["conditions"].items():
        multi = condition.startswith("multitrack")
        assert cell["items"] == {
            "styles": 4 * 2 * (1 if multi else 4),
            "draws": 4 * 2 * (1 if multi else 4),
        }
        assert cell["chance"] == 0.5
        for name in res["embeddings"]:
            e = cell["embeddings"][name]
            for key in ("dcimig", "explicitness", "disentanglement", "completeness"):
                assert 0.0 <= e[key] <= 1.0, (condition, name, key, e[key])
            assert 0.0 <= e["retrieval_low"] <= e["retrieval"] <= e["retrieval_high"] <= 1.0
            if condition.endswith("single"):
                assert list(e["per_effect"]) == list(EFFECTS)
                mean = np.mean([e["per_effect"][x]["retrieval"] for x in EFFECTS])
                assert e["retrieval"] == pytest.approx(mean)
        assert cell["embeddings"]["oracle"]["retrieval"] == 1.0
    assert res["conditions"]["multitrack_full"]["factors"] == 4 * 24
    assert res["conditions"]["stem_full"]["factors"] == 24


# ------------------------------------------------------------------------------------------------
# Measured properties
# ------------------------------------------------------------------------------------------------
def test_gain_only_styles_effect_features_retrieve_content_cannot(
    segments: ev.EvalSegments,
) -> None:
    embedders = {"content": ev.ContentEmbedder(), "effect": ev.EffectFeaturesEmbedder()}
    res = ev.evaluate_setting(
        segments, embedders, "gain", styles=8, draws=2, config=_chain(), trees=5
    )
    stem, multi = res.scores["stem"], res.scores["multitrack"]
    # The content embedding is level-normalised: the 8 gain styles of one item embed identically,
    # every candidate ties and the lowest index (style 0) wins: exactly chance.
    assert stem["content"]["retrieval"] == pytest.approx(1 / 8)
    assert multi["content"]["retrieval"] == pytest.approx(1 / 8)
    # The effect features hold the level (their rms column). Measured here: 0.36 single stem
    # (the cosine also weighs the songs' spectra, width and balance), 0.94 multitrack.
    assert stem["effect"]["retrieval"] > 2 * stem["content"]["retrieval"]
    assert multi["effect"]["retrieval"] > 0.8


def test_oracle_embedding_scores_near_one_and_noise_near_zero(
    segments: ev.EvalSegments,
) -> None:
    def oracle(audio: torch.Tensor, sample_rate: int, meta: dict) -> np.ndarray:
        return ev.oracle_codes(meta["factors"])

    def noise(audio: torch.Tensor, sample_rate: int, meta: dict) -> np.ndarray:
        return np.random.default_rng(int(meta["song"][0])).standard_normal((len(audio), 24))

    # The EQ alone: 13 factors per stem (52 multitrack), a cheap render. n_bins=5 keeps the
    # plug-in MI bias small with 512 single-stem and 128 multitrack items.
    res = ev.evaluate_setting(
        segments, {"oracle": oracle, "noise": noise}, "eq", styles=4, draws=32,
        config=_chain(), trees=10, n_bins=5,
    )  # fmt: skip
    stem, multi = res.scores["stem"], res.scores["multitrack"]
    # Measured here: oracle DCIMIG 0.98 / 0.92 (stem / multitrack), explicitness 1.00 / 0.99;
    # noise DCIMIG 0.002 / 0.005, explicitness 0.003 / 0.000, retrieval 0.22 / 0.06.
    assert stem["oracle"]["dcimig"] > 0.95 and multi["oracle"]["dcimig"] > 0.85
    assert stem["oracle"]["explicitness"] > 0.97 and multi["oracle"]["explicitness"] > 0.95
    assert stem["oracle"]["retrieval"] == 1.0 and multi["oracle"]["retrieval"] == 1.0
    for scope in (stem, multi):
        assert scope["noise"]["dcimig"] < 0.05 and scope["noise"]["explicitness"] < 0.05
        assert scope["noise"]["retrieval"] < 0.5  # chance 0.25


# ------------------------------------------------------------------------------------------------
# Pieces
# ------------------------------------------------------------------------------------------------
def test_multitrack_view_concatenates_stems_in_order() -> None:
    songs, count = 3, 2
    song, stem, style = (a.reshape(-1) for a in np.meshgrid(
        np.arange(songs), np.arange(4), np.arange(count), indexing="ij"))  # fmt: skip
    code = (100 * song + 10 * stem + style).astype(float)[:, None]
    items = ev.ItemSet("gain", "styles", "stem", song, stem, style, code + 0.5, ("gain.gain_db",),
                       {"e": code})  # fmt: skip
    mt = ev.multitrack_view(items)
    assert mt.embeddings["e"].shape == (songs * count, 4)
    assert mt.embeddings["e"][3].tolist() == [101.0, 111.0, 121.0, 131.0]  # song 1, style 1
    assert mt.factor_names == tuple(f"{s}:gain.gain_db" for s in STEMS)
    assert mt.song.tolist() == [0, 0, 1, 1, 2, 2] and mt.style.tolist() == [0, 1] * 3


def test_bootstrap_of_one_set_equals_retrieval_bootstrap() -> None:
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((60, 5))
    style, song = np.tile(np.arange(6), 10), np.repeat(np.arange(10), 6)
    emb[:, 0] += style  # some signal
    hits = retrieval_correct(emb, style, song)
    assert ev.bootstrap_accuracy([hits], [song], 200, 7) == pytest.approx(
        retrieval_bootstrap(emb, style, song, n_boot=200, seed=7), abs=1e-12
    )
    two = ev.bootstrap_accuracy([hits, np.ones(60)], [song, song], 200, 7)
    assert two[0] == pytest.approx((np.mean(hits) + 1) / 2)


def test_paired_bootstrap_difference_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(4)
    song = np.repeat(np.arange(8), 12)
    a = (rng.random(96) < 0.5 + 0.04 * song).astype(float)  # songs differ in difficulty
    b = a.copy()
    b[::12] = 0.0  # b misses one more query than a in some songs, never fewer
    a[::12] = 1.0
    diff, lo, hi = ev.bootstrap_difference([a], [b], [song], 500, 11)
    assert diff == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    # The same replicates by hand: the documented song draws, accuracies in a plain loop.
    draws = np.random.default_rng(11).multinomial(8, np.full(8, 1 / 8), size=500)
    reps = []
    for m in draws:
        num_a = num_b = den = 0.0
        for s_ in range(8):
            q = song == s_
            num_a += m[s_] * a[q].sum()
            num_b += m[s_] * b[q].sum()
            den += m[s_] * q.sum()
        reps.append(num_a / den - num_b / den)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])), abs=1e-12)
    assert lo > 0  # a is never worse: the paired interval excludes 0 ...
    a_lo = ev.bootstrap_accuracy([a], [song], 500, 11)[1]
    b_hi = ev.bootstrap_accuracy([b], [song], 500, 11)[2]
    assert a_lo < b_hi  # ... while the two separate intervals overlap
    assert ev.bootstrap_difference([a], [a], [song], 100, 0) == (0.0, 0.0, 0.0)


def test_load_segments_aligns_four_loud_stems(segments: ev.EvalSegments) -> None:
    assert segments.audio.shape == (4, 4, 2, round(SECONDS * SR))
    rms_db = 10 * torch.log10(segments.audio.pow(2).mean(dim=(-1, -2)))
    assert bool((rms_db > -50).all())


# ------------------------------------------------------------------------------------------------
# Errors: one line, exit 1
# ------------------------------------------------------------------------------------------------
def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("mixfx eval-encoder: error: ")
    return err[0]


def test_bad_encoder_path_is_one_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_line_error(capsys, [
        "eval-encoder", "--encoder", str(tmp_path / "missing.pt"), "--data", str(dataset),
        "--out", str(tmp_path / "o"),
    ])  # fmt: skip
    assert "missing.pt" in line and not (tmp_path / "o").exists()


def test_one_song_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _write_songs(tmp_path / "one", songs=1, seconds=0.5, rate=44100)
    line = _one_line_error(capsys, [
        "eval-encoder", "--data", str(root), "--out", str(tmp_path / "o"), "--seconds", "0.25",
        "--cache-dir", str(tmp_path / "c"),
    ])  # fmt: skip
    assert "at least 2" in line


def test_encoder_labels() -> None:
    from mixfx.commands.eval_encoder import parse_encoder

    assert parse_encoder("ps=runs/a/last.pt") == ("ps", "runs/a/last.pt")
    assert parse_encoder("runs/norm/last.pt") == ("norm", "runs/norm/last.pt")
    assert parse_encoder("models/ps.pt") == ("ps", "models/ps.pt")
    assert parse_encoder("default") == ("default", "default")
    assert parse_encoder("runs/x=1/last.pt") == ("x=1", "runs/x=1/last.pt")


# ------------------------------------------------------------------------------------------------
# Styles made by pedalboard
# ------------------------------------------------------------------------------------------------
def test_pedalboard_chain_matches_closed_forms() -> None:
    """Neutral EQ, a compressor whose threshold the signal never reaches and a dry reverb leave
    only the NumPy width/balance and the gain: the output is their closed form, written here
    in float64. A +12 dB low shelf lifts a 40 Hz sine by 12 dB (the shelf's asymptote)."""
    pytest.importorskip("pedalboard")
    from fxencoder import pedalboard_styles as ps

    rng = np.random.default_rng(1)
    x = 0.05 * rng.standard_normal((2, SR)).astype(np.float32)
    neutral = {
        "low_shelf_hz": 100.0, "low_shelf_db": 0.0, "peak_hz": 1000.0, "peak_db": 0.0,
        "peak_q": 1.0, "high_shelf_hz": 5000.0, "high_shelf_db": 0.0, "threshold_db": 0.0,
        "ratio": 4.0, "attack_ms": 5.0, "release_ms": 100.0, "width": 1.6, "balance": 0.4,
        "room_size": 0.5, "damping": 0.5, "wet_level": 0.0, "gain_db": 3.0,
    }  # fmt: skip
    y = ps.render(x, SR, neutral)
    xd = x.astype(np.float64)
    mid, side = (xd[0] + xd[1]) / 2, (xd[0] - xd[1]) / 2 * 1.6
    theta = (0.4 + 1) * np.pi / 4
    expect = np.stack([(mid + side) * np.cos(theta), (mid - side) * np.sin(theta)])
    expect *= np.sqrt(2) * 10 ** (3 / 20)
    np.testing.assert_allclose(y, expect, atol=2e-5 * np.abs(expect).max())

    t = np.arange(SR) / SR
    sine = np.tile(0.01 * np.sin(2 * np.pi * 40 * t), (2, 1)).astype(np.float32)
    boosted = ps.render(sine, SR, {**neutral, "low_shelf_db": 12.0, "width": 1.0,
                                   "balance": 0.0, "gain_db": 0.0})  # fmt: skip
    tail = slice(SR // 2, None)
    gain_db = 20 * np.log10(np.sqrt(np.mean(boosted[0, tail] ** 2) / np.mean(sine[0, tail] ** 2)))
    assert gain_db == pytest.approx(12.0, abs=0.5)
    with pytest.raises(ValueError, match=r"\(2, samples\)"):
        ps.render(x[0], SR, neutral)
    with pytest.raises(ValueError, match="missing \\['ratio'\\]"):
        ps.render(x, SR, {k: v for k, v in neutral.items() if k != "ratio"})


def test_pedalboard_styles_are_drawn_in_their_ranges() -> None:
    from fxencoder import pedalboard_styles as ps

    styles = ps.draw_styles(200, seed=3)
    assert styles == ps.draw_styles(200, seed=3) and styles != ps.draw_styles(200, seed=4)
    for name, (low, high, log) in ps.RANGES.items():
        v = np.array([s[stem][name] for s in styles for stem in STEMS])
        assert v.min() >= low and v.max() <= high
        # Half of a uniform (log-uniform) draw falls below the (geometric) midpoint.
        mid = np.sqrt(low * high) if log else (low + high) / 2
        assert abs(np.mean(v < mid) - 0.5) < 4 * np.sqrt(0.25 / len(v))
    with pytest.raises(ValueError, match="positive integer"):
        ps.draw_styles(0)


def test_pedalboard_retrieval_scores_an_oracle_one_and_a_content_code_at_chance(
    segments: ev.EvalSegments,
) -> None:
    pytest.importorskip("pedalboard")
    from fxencoder import pedalboard_styles as ps

    def oracle(audio: torch.Tensor, sample_rate: int, meta: dict) -> np.ndarray:
        return np.eye(4)[meta["style"]]

    def content(audio: torch.Tensor, sample_rate: int, meta: dict) -> np.ndarray:
        return np.ones((len(audio), 3))  # every item alike: ties go to the lowest index

    res = ps.pedalboard_retrieval(
        segments, {"oracle_code": oracle, "effect_features": content}, styles=4, bootstrap=200
    )
    for cond in ("stem_full", "multitrack_full"):
        o, c = res["conditions"][cond]["oracle_code"], res["conditions"][cond]["effect_features"]
        assert o["retrieval"] == 1.0 and o["retrieval_low"] == 1.0
        assert c["retrieval"] == pytest.approx(1 / 4)  # chance, exactly (style 0 always wins)
        vs = o["vs_effect_features"]
        assert vs["difference"] == pytest.approx(0.75) and vs["low"] <= 0.75 <= vs["high"]
    md = ps.results_markdown(res)
    assert "| oracle_code | 1.000 [1.00, 1.00] (+0.75" in md


def test_command_with_pedalboard_styles_only(dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("pedalboard")
    torch.manual_seed(0)
    config = fxencoder.FXEncoderConfig.preset("tiny", sample_rate=SR, f_max=11000.0)
    fxencoder.save(fxencoder.FXEncoder(config), tmp_path / "tiny.pt")
    code = main([
        "eval-encoder", "--encoder", f"tiny={tmp_path / 'tiny.pt'}", "--data", str(dataset),
        "--out", str(tmp_path / "out"), "--styles", "3", "--seconds", str(SECONDS),
        "--bootstrap", "50", "--style-library", "pedalboard", "--cache-dir",
        str(tmp_path / "cache"), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["conditions"] == {}  # no fxdsp condition was asked for
    table = results["pedalboard_styles"]["conditions"]
    assert set(table) == {"stem_full", "multitrack_full"}
    for cond in table.values():
        assert set(cond) == {"tiny", "content_embedding", "effect_features"}  # no factors here
        assert all(0.0 <= r["retrieval_low"] <= r["retrieval"] <= r["retrieval_high"] <= 1.0
                   for r in cond.values())  # fmt: skip
        assert "vs_effect_features" in cond["tiny"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Styles made by pedalboard" in md and "| tiny |" in md
