"""``mixfx transfer``: stem folders and mixes end to end, on real files, with tiny models.

The models are a randomly initialised tiny cloner and encoder saved with ``cloner.save`` /
``fxencoder.save``, and a tiny random HTDemucs saved to a local ``.safetensors`` file; audio files
are written with soundfile. Outputs are compared with the library path on the same files.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import cloner
import cloner.separation as sep
import fxencoder
from cloner import ClonerConfig, MixFXCloner
from cloner.api import encoder_record
from cloner.inference import transfer_stems
from fxencoder import FXEncoder, FXEncoderConfig
from mixfx.cli import main

RATE = 48000  # not the network's 44.1 kHz: the output must come back at the input's rate
STEMS = ("drums", "bass", "other", "vocals")


def _write(path: Path, audio: np.ndarray, rate: int = RATE) -> Path:
    sf.write(str(path), audio.T, rate, subtype="FLOAT" if path.suffix == ".wav" else "PCM_24")
    return path


def _noise(channels: int, samples: int, seed: int, level: float = 0.2) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal((channels, samples))).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Models and songs: input stems (48 kHz, one mono, one shorter), reference stems
    (44.1 kHz FLAC), a second reference, a mix file, and the models' files."""
    root = tmp_path_factory.mktemp("transfer")
    torch.manual_seed(0)
    enc_path = root / "encoder.pt"
    fxencoder.save(FXEncoder(FXEncoderConfig.preset("tiny")).eval(), enc_path)
    cfg = ClonerConfig.preset("tiny", dilations=(1, 2, 4, 8))
    model = MixFXCloner(cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.15 * torch.randn(p.shape, generator=gen))
    cloner_path = root / "cloner.pt"
    cloner.save(model, cloner_path, encoder=encoder_record(enc_path, 16))
    songs = {}
    for name, rate, suffix, seed in (("input", RATE, ".wav", 0), ("ref", 44100, ".flac", 10),
                                     ("ref_b", 32000, ".wav", 20)):  # fmt: skip
        folder = root / name
        folder.mkdir()
        for i, stem in enumerate(STEMS):
            channels = 1 if (name == "input" and stem == "bass") else 2
            samples = int(1.0 * rate) - (300 if (name == "input" and stem == "vocals") else 0)
            _write(folder / f"{stem}{suffix}", _noise(channels, samples, seed + i), rate)
        songs[name] = folder
    mix = root / "mix.wav"
    _write(mix, _noise(2, int(1.1 * RATE), 99))
    ref_mix = root / "ref_mix.wav"
    _write(ref_mix, _noise(2, int(1.0 * 44100), 98), 44100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        demucs = sep._demucs().htdemucs.HTDemucs(
            list(sep.SOURCES), channels=8, depth=2, nfft=512, t_layers=1, t_heads=1,
            t_hidden_scale=1.0, dconv_comp=4, segment=Fraction(1, 1),
        )  # fmt: skip
    sep_path = root / "htdemucs_tiny.safetensors"
    sep.save_separator(demucs.eval(), sep_path)
    return {"root": root, "encoder": enc_path, "cloner": cloner_path, "mix": mix,
            "ref_mix": ref_mix, "separator": sep_path, **songs}  # fmt: skip


def _read_folder(folder: Path) -> tuple[dict[str, torch.Tensor], int]:
    out, rate = {}, 0
    for f in sorted(folder.iterdir()):
        data, rate = sf.read(str(f), dtype="float32", always_2d=True)
        out[f.stem] = torch.from_numpy(data.T.copy())
    return out, rate


def _read(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data.T, rate


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], message: str) -> str:
    assert main(["transfer", *argv, "--no-progress"]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mixfx transfer: error:"), err
    assert message in err, err
    return err


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transfer", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--save-stems", "--method", "--cloner", "--encoder", "--separator",
                   "--separator-weights", "--interpolate", "--segments", "--weight",
                   "--device"):  # fmt: skip
        assert option in out


def test_stem_folders_end_to_end(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = env["root"] / "a" / "out.wav"
    argv = ["transfer", str(env["input"]), str(env["ref"]), "-o", str(out), "--cloner",
            str(env["cloner"]), "--save-stems", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    y, rate = _read(out)
    assert rate == RATE and y.shape == (2, RATE)  # the input's rate, longest stem
    stems, _ = _read_folder(env["input"])
    refs, ref_rate = _read_folder(env["ref"])
    model = cloner.load(env["cloner"])
    enc = fxencoder.load(env["encoder"])
    expected = transfer_stems(model, enc, stems, RATE, refs, ref_rate)
    assert np.abs(y - expected.mix.numpy()).max() < 1e-6
    assert np.abs(y - stems_sum(out)).max() < 1e-5
    mixed_in = sum(torch.nn.functional.pad(s.expand(2, -1), (0, y.shape[1] - s.shape[1]))
                   for s in stems.values())  # fmt: skip
    assert np.abs(y - mixed_in.numpy()).max() > 0.05  # the network did something


def stems_sum(out: Path) -> np.ndarray:
    folder = out.with_name(out.stem + "_stems")
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.wav" for s in STEMS)
    return sum(_read(folder / f"{s}.wav")[0] for s in STEMS)


def test_mix_through_a_local_htdemucs(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Mix file → tiny HTDemucs from a local file → each stem converted → sum, and the reference
    a mix too; equal to the library path."""
    out = env["root"] / "mix_out.flac"
    argv = ["transfer", str(env["mix"]), str(env["ref_mix"]), "-o", str(out), "--cloner",
            str(env["cloner"]), "--separator-weights", str(env["separator"]),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    y, rate = _read(out)
    assert rate == RATE and y.shape == (2, int(1.1 * RATE))
    separator = sep.load_separator(env["separator"])
    mix, _ = _read(env["mix"])
    ref, _ = _read(env["ref_mix"])
    stems = sep.separate(separator, torch.from_numpy(mix), RATE)
    refs = sep.separate(separator, torch.from_numpy(ref), 44100)
    model, enc = cloner.load(env["cloner"]), fxencoder.load(env["encoder"])
    expected = transfer_stems(model, enc, stems, RATE, refs, 44100).mix.numpy()
    assert np.abs(y - np.clip(expected, -1, 1)).max() < 1e-4  # 24-bit FLAC


def test_interpolation_and_blend(env: dict[str, Path]) -> None:
    stems, _ = _read_folder(env["input"])
    refs, _ = _read_folder(env["ref"])
    refs_b, _ = _read_folder(env["ref_b"])
    model, enc = cloner.load(env["cloner"]), fxencoder.load(env["encoder"])
    for extra, kw in ((["--segments", "3"], {"segments": 3}), (["--weight", "0.25"],
                                                                {"weight": 0.25})):  # fmt: skip
        out = env["root"] / f"interp_{extra[0][2:]}.wav"
        argv = ["transfer", str(env["input"]), str(env["ref"]), "-o", str(out), "--cloner",
                str(env["cloner"]), "--interpolate", str(env["ref_b"]), *extra,
                "--no-progress"]  # fmt: skip
        assert main(argv) == 0
        y, _ = _read(out)
        expected = transfer_stems(model, enc, stems, RATE, refs, 44100, reference_b=refs_b,
                                  reference_b_rate=32000, **kw).mix.numpy()  # fmt: skip
        assert np.abs(y - expected).max() < 1e-6


def test_method_input_copies_the_stems(env: dict[str, Path]) -> None:
    out = env["root"] / "copy.wav"
    assert main(["transfer", str(env["input"]), str(env["ref"]), "-o", str(out), "--method",
                 "input", "--no-progress"]) == 0  # fmt: skip
    y, _ = _read(out)
    stems, _ = _read_folder(env["input"])
    expected = sum(torch.nn.functional.pad(s.expand(2, -1), (0, y.shape[1] - s.shape[1]))
                   for s in stems.values())  # fmt: skip
    assert np.array_equal(y, expected.numpy())


def test_fxnorm_normalizes_the_input_stems_first(env: dict[str, Path]) -> None:
    """``--fxnorm`` with ``--method input``: the written stems are the FX-normalized input
    (48 kHz, one stem mono, one shorter), each at its stem's corpus loudness (pyloudnorm)."""
    pyln = pytest.importorskip("pyloudnorm")
    import fxdsp
    from cloner.inference import fx_normalize_stems

    out = env["root"] / "normed.wav"
    assert main(["transfer", str(env["input"]), str(env["ref"]), "-o", str(out), "--method",
                 "input", "--fxnorm", "--save-stems", "--no-progress"]) == 0  # fmt: skip
    stems, rate = _read_folder(env["input"])
    want = fx_normalize_stems(stems, rate)
    stats = fxdsp.FxNormStats.corpus_default()
    for name, x in want.items():
        got, fs = _read(env["root"] / "normed_stems" / f"{name}.wav")
        n = stems[name].shape[-1]
        np.testing.assert_allclose(got[:, :n], x.numpy(), atol=1e-6)
        assert not np.allclose(got[:, :n], stems[name].expand(2, -1).numpy(), atol=1e-3)
        lufs = pyln.Meter(fs).integrated_loudness(got[:, :n].T.astype(np.float64))
        assert abs(lufs - stats.stems[name].loudness_lufs) < 1.0, (name, lufs)


def test_recorded_encoder_is_used_and_can_be_overridden(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = env["root"] / "enc.wav"
    other = env["root"] / "other_encoder.pt"
    torch.manual_seed(5)
    fxencoder.save(FXEncoder(FXEncoderConfig.preset("tiny")), other)
    argv = ["transfer", str(env["input"]), str(env["ref"]), "-o", str(out), "--cloner",
            str(env["cloner"]), "--encoder", str(other), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "warning: the encoder" in capsys.readouterr().err
    wide = env["root"] / "wide_encoder.pt"
    fxencoder.save(FXEncoder(FXEncoderConfig.preset("tiny", embed_dim=8)), wide)
    _fails([str(env["input"]), str(env["ref"]), "-o", str(out), "--cloner", str(env["cloner"]),
            "--encoder", str(wide)], capsys, "embeds in 8 dimensions")  # fmt: skip


def _bad_files(root: Path) -> dict[str, Path]:
    bad = root / "bad"
    if bad.exists():
        return {p.stem: p for p in bad.iterdir()}
    bad.mkdir()
    (bad / "garbage.wav").write_bytes(b"RIFF\x00\x00not really audio")
    _write(bad / "empty.wav", np.zeros((2, 0), np.float32))
    _write(bad / "short.wav", _noise(2, 100, 1))
    _write(bad / "six.wav", _noise(6, RATE, 1))
    nan = _noise(2, RATE, 1)
    nan[0, 10] = np.nan
    _write(bad / "nan.wav", nan)
    return {p.stem: p for p in bad.iterdir()}


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("garbage", "cannot read the input"),
        ("empty", "is empty (no samples)"),
        ("short", "is too short (0.002 s; at least 0.1 s)"),
        ("six", "has 6 channels (mono or stereo expected)"),
        ("nan", "contains NaN or Inf samples"),
    ],
)
def test_bad_input_files_are_one_line_errors(
    env: dict[str, Path], which: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = env["root"] / "never.wav"
    bad = _bad_files(env["root"])
    _fails([str(bad[which]), str(env["ref"]), "-o", str(out), "--cloner", str(env["cloner"])],
           capsys, message)  # fmt: skip
    assert not out.exists()


def test_usage_errors_are_one_line(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.wav"
    base = [str(env["input"]), str(env["ref"]), "-o", str(out), "--cloner", str(env["cloner"])]
    partial = tmp_path / "partial"
    partial.mkdir()
    _write(partial / "drums.wav", _noise(2, RATE, 1))
    _write(partial / "Bass.flac", _noise(2, RATE, 2))
    _fails([str(partial), *base[1:]], capsys, "has no stem(s) other, vocals")
    for stem in ("other", "vocals"):
        _write(partial / f"{stem}.wav", _noise(2, RATE, 3))
    _write(partial / "notes.txt.wav", _noise(2, RATE, 3))  # not a stem's name: ignored
    _write(partial / "drums.flac", _noise(2, RATE, 4))
    _fails(
        [str(partial), *base[1:]],
        capsys,
        "more than one file for the drums (drums.flac, drums.wav)",
    )
    _fails([str(tmp_path / "nothing.wav"), *base[1:]], capsys, "does not exist")
    _fails([*base[:3], str(tmp_path / "out.mp3"), *base[4:]], capsys, "must end in .wav or .flac")
    _fails([*base, "--segments", "3"], capsys, "need a second reference (--interpolate")
    _fails([*base, "--interpolate", str(env["ref_b"])], capsys, "exactly one of --segments")
    _fails([*base[:4], "--cloner", "nonexistent"], capsys, "no cloner model named 'nonexistent'")
    _fails([*base[:4], "--cloner", str(env["encoder"])], capsys, "is not a cloner checkpoint")
    _fails([*base, "--device", "toaster"], capsys, "unknown device 'toaster'")
    assert main(["transfer", *base, "--segments", "1"]) == 2  # argparse: out of range
    assert not out.exists()


def test_missing_separator_weights_say_how_to_get_them(
    env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(sep, "find_weights", lambda name="htdemucs": None)
    out = tmp_path / "out.wav"
    argv = [str(env["mix"]), str(env["ref"]), "-o", str(out), "--cloner", str(env["cloner"])]
    err = _fails(argv, capsys, "no local weights for the separator 'htdemucs'")
    assert "--separator-weights PATH" in err and "folder of stems" in err
    argv += ["--separator-weights", str(tmp_path / "nope.th")]
    _fails(argv, capsys, "no separator weights at")
    assert not out.exists()


def test_missing_recorded_encoder_names_the_option(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enc = tmp_path / "gone.pt"
    fxencoder.save(FXEncoder(FXEncoderConfig.preset("tiny")), enc)
    path = tmp_path / "c.pt"
    cloner.save(cloner.load(env["cloner"]), path, encoder=encoder_record(enc, 16))
    enc.unlink()
    _fails([str(env["input"]), str(env["ref"]), "-o", str(tmp_path / "o.wav"), "--cloner",
            str(path)], capsys, "pass it with --encoder PATH")  # fmt: skip


def test_output_is_atomic(
    env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A write that fails halfway leaves the previous file as it was and no temporary file."""
    out = tmp_path / "out.wav"
    out.write_bytes(b"previous")
    real_write = sf.write

    def failing(file: str, data: np.ndarray, rate: int, **kw: object) -> None:
        real_write(file, data[: len(data) // 2], rate, **kw)  # half the file is on disk
        raise OSError("No space left on device")

    monkeypatch.setattr(sf, "write", failing)
    _fails([str(env["input"]), str(env["ref"]), "-o", str(out), "--cloner", str(env["cloner"])],
           capsys, "No space left on device")  # fmt: skip
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_mono_input_gives_stereo_output_of_the_same_length(env: dict[str, Path]) -> None:
    mono = env["root"] / "mono.wav"
    _write(mono, 0.3 * np.sin(2 * math.pi * 440 * np.arange(7001) / 22050)[None], 22050)
    out = env["root"] / "mono_out.wav"
    argv = ["transfer", str(mono), str(env["ref"]), "-o", str(out), "--method", "input",
            "--separator-weights", str(env["separator"]), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    y, rate = _read(out)
    assert rate == 22050 and y.shape == (2, 7001)
    assert np.isfinite(y).all()


def test_max_peak_turns_the_mix_and_its_stems_down_together(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    stems, _ = _read_folder(env["input"])
    n = max(s.shape[-1] for s in stems.values())  # shorter stems are padded with silence
    summed = sum(torch.nn.functional.pad(s.expand(2, -1), (0, n - s.shape[-1]))
                 for s in stems.values()).numpy()  # fmt: skip
    peak = np.abs(summed).max()
    out = env["root"] / "peak" / "out.wav"
    argv = ["transfer", str(env["input"]), str(env["ref"]), "-o", str(out), "--method", "input",
            "--save-stems", "--max-peak", "-20", "--no-progress"]  # fmt: skip
    assert 20 * np.log10(peak) > -20  # the test input is louder than the ceiling
    assert main(argv) == 0
    assert "turned down" in capsys.readouterr().out
    y, _ = _read(out)
    assert 20 * np.log10(np.abs(y).max()) == pytest.approx(-20.0, abs=1e-4)
    np.testing.assert_allclose(y, summed * (10 ** (-20 / 20) / peak), atol=1e-6)
    np.testing.assert_allclose(stems_sum(out), y, atol=1e-5)  # one gain for all
    # A ceiling above the peak changes nothing (the gain never turns up).
    from mixfx.commands.transfer import _limit_peak

    quiet = torch.full((2, 8), 0.1)
    mix, parts, gain_db = _limit_peak(quiet, {"bass": quiet}, -6.0)
    assert gain_db == 0.0 and mix is quiet and parts["bass"] is quiet
