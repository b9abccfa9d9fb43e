"""The effects demo (mixfx/effects_demo.py): its files, measured independently of fxdsp."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import welch

from mixfx import effects_demo as demo

SR = 44100
SECONDS = 2.0
FILES = {"dry.wav", "wet.wav", "spectra.png", "summary.json"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    summary = demo.run_demo(out, seconds=SECONDS, seed=0, sample_rate=SR, progress=False)
    return out, summary


def _read(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    assert rate == SR
    return data  # (samples, channels)


def _band_db(x: np.ndarray, low: float, high: float) -> float:
    """Power of a (samples, channels) signal in [low, high] Hz, in dB (Welch, 8192 points)."""
    f, p = welch(x.T, fs=SR, nperseg=8192)
    band = (f >= low) & (f <= high)
    return float(10.0 * np.log10(p[:, band].sum() + 1e-20))


def test_writes_exactly_the_four_files(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    # No temporary ".part" file may be left next to the results.
    assert set(os.listdir(out)) == FILES


def test_wavs_are_float_stereo_at_the_rate_and_length(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    for name in ("dry.wav", "wet.wav"):
        info = sf.info(str(out / name))
        assert info.format == "WAV" and info.subtype == "FLOAT", name
        assert (info.samplerate, info.channels) == (SR, 2), name
        assert info.frames == round(SECONDS * SR), name
        data = _read(out / name)
        assert np.isfinite(data).all(), name
        rms_db = 10.0 * np.log10(np.mean(data**2))
        assert -40.0 < rms_db < 0.0, f"{name}: RMS {rms_db:.1f} dBFS"
        assert not np.array_equal(data[:, 0], data[:, 1]), f"{name} is dual mono"


def test_loudness_measured_with_pyloudnorm(run: tuple[Path, dict[str, Any]]) -> None:
    out, summary = run
    meter = pyloudnorm.Meter(SR)
    dry = meter.integrated_loudness(_read(out / "dry.wav"))
    wet = meter.integrated_loudness(_read(out / "wet.wav"))
    assert abs(wet - demo.CHAIN["normalize_loudness"]["target_lufs"]) < 0.5, wet
    assert abs(dry - demo.DRY_LUFS) < 0.5, dry
    # The figures in summary.json are what an independent meter reads from the files.
    assert abs(summary["measured"]["wet"]["integrated_lufs"] - wet) < 0.5
    assert abs(summary["measured"]["dry"]["integrated_lufs"] - dry) < 0.5


def test_summary_json_matches_the_files(run: tuple[Path, dict[str, Any]]) -> None:
    out, returned = run
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["sample_rate"] == SR and summary["seconds"] == SECONDS
    assert summary["samples"] == round(SECONDS * SR) and summary["channels"] == 2
    assert set(summary["files"].values()) == FILES
    stages = [e["stage"] for e in summary["chain"]]
    assert stages == ["mix", "eq", "compressor", "stereo_imager", "reverb", "normalize_loudness"]
    for entry in summary["chain"][1:]:
        expected = dict(demo.CHAIN[entry["stage"]])
        if entry["stage"] == "reverb":
            expected["seed"] = 0
        assert entry["params"] == expected, entry["stage"]
        assert entry["seconds"] >= 0.0
    for name in ("dry", "wet"):
        data = _read(out / f"{name}.wav")
        measured = summary["measured"][name]
        peak_db = 20.0 * np.log10(np.abs(data).max())
        assert measured["peak_dbfs"] == pytest.approx(peak_db, abs=0.01)
        mid, side = data.mean(axis=1), (data[:, 0] - data[:, 1]) / 2.0
        ratio_db = 10.0 * np.log10(np.mean(side**2) / np.mean(mid**2))
        assert measured["side_to_mid_db"] == pytest.approx(ratio_db, abs=0.01)
        corr = np.corrcoef(data[:, 0], data[:, 1])[0, 1]
        assert measured["lr_correlation"] == pytest.approx(corr, abs=1e-3)
        assert measured == pytest.approx(returned["measured"][name])


def _side_to_mid_db(x: np.ndarray) -> float:
    mid, side = x.mean(axis=1), (x[:, 0] - x[:, 1]) / 2.0
    return float(10.0 * np.log10(np.mean(side**2) / np.mean(mid**2)))


def test_the_image_is_wider_after(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    dry, wet = _read(out / "dry.wav"), _read(out / "wet.wav")
    # Imager width 1.4 (+2.9 dB side/mid) and a decorrelated reverb tail widen the image.
    assert _side_to_mid_db(wet) - _side_to_mid_db(dry) > 2.0


def test_the_eq_shapes_the_wet_spectrum(
    run: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same demo with every EQ gain at 0 dB, compared band by band (scipy's Welch)."""
    out, _ = run
    monkeypatch.setitem(demo.CHAIN["eq"], "gain_db", [0.0, 0.0, 0.0, 0.0])
    demo.run_demo(tmp_path, seconds=SECONDS, seed=0, sample_rate=SR, progress=False)
    eq, flat = _read(out / "wet.wav"), _read(tmp_path / "wet.wav")

    def change(low: float, high: float) -> float:
        return _band_db(eq, low, high) - _band_db(flat, low, high)

    low_shelf, cut = change(80, 160), change(330, 480)
    presence, top = change(2800, 4400), change(11000, 16000)
    # Designed: +4 dB shelf at 120 Hz, -3 dB at 400 Hz, +3 dB at 3.5 kHz, -2 dB shelf at 8 kHz
    # (band averages about +3, -2.5, +2.5, -2 dB); the final loudness match shifts all alike.
    assert low_shelf - cut > 3.5, (low_shelf, cut)
    assert presence - cut > 3.5, (presence, cut)
    assert presence - top > 3.5, (presence, top)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    assert data[12:16] == b"IHDR", "first chunk is not IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plot_is_a_real_png_with_content(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    raw = (out / "spectra.png").read_bytes()
    width, height = _png_size(raw)
    assert width >= 1000 and height >= 800, (width, height)
    assert len(raw) > 30_000
    pixels = matplotlib.image.imread(str(out / "spectra.png"))[..., :3]
    assert pixels.shape[:2] == (height, width)
    # Lines, text and the two curves' colours are there (not a blank canvas).
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert 0.03 < not_white < 0.6, not_white
    blue = np.array([0x4C, 0x72, 0xB0]) / 255.0
    orange = np.array([0xDD, 0x84, 0x52]) / 255.0
    for colour in (blue, orange):
        assert (np.abs(pixels - colour).max(axis=-1) < 0.05).sum() > 500


def test_synthesis_is_deterministic_and_in_key() -> None:
    a = demo.synth_music(2.0, SR, seed=0)
    b = demo.synth_music(2.0, SR, seed=0)
    c = demo.synth_music(2.0, SR, seed=1)
    assert list(a) == [s.name for s in demo.SOURCES]
    for name in a:
        assert a[name].shape == (2, round(2.0 * SR))
        np.testing.assert_array_equal(a[name], b[name])
        assert np.abs(a[name]).max() == pytest.approx(1.0)
    assert not np.array_equal(a["snare"], c["snare"])  # the seed drives the noise
    assert not np.array_equal(a["pad"][0], a["pad"][1])  # the pad is detuned left/right

    # The first bass note is the root of A minor, A1 = 55 Hz (its first 0.35 s).
    note = a["bass"][0, : round(0.35 * SR)] * np.hanning(round(0.35 * SR))
    spectrum = np.abs(np.fft.rfft(note, 1 << 20))
    freqs = np.fft.rfftfreq(1 << 20, 1.0 / SR)
    assert freqs[np.argmax(spectrum)] == pytest.approx(55.0, abs=0.5)


def test_bad_arguments(tmp_path: Path) -> None:
    taken = tmp_path / "file"
    taken.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        demo.run_demo(taken, seconds=1.0)
    with pytest.raises(ValueError, match="seconds"):
        demo.run_demo(tmp_path / "a", seconds=0.5)
    with pytest.raises(ValueError, match="sample_rate"):
        demo.run_demo(tmp_path / "b", sample_rate=8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
