"""MUSDB18 ``.stem.mp4`` reading: real AAC multi-stream files written with the ffmpeg CLI.

Each test file holds MUSDB18's five AAC streams (mixture, drums, bass, other, vocals) of sines at
distinct frequencies and levels, the right channel 6 dB below the left. The files are written by
the ffmpeg program directly (not by stempeg, which the reader uses), and the decoded audio is
measured: stream order (dominant frequency), rate, channels, duration, level, time alignment.

ffmpeg is a Debian package that ``./run test`` installs, and stempeg is in the ``dev`` extra:
without them these tests fail with a message saying so (they are never skipped).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from fxdata import open_dataset
from fxdata.audio import rms_dbfs
from fxdata.datasets import MultitrackDataset, SegmentDataset, decode_count, detect_layout

RATE = 44100
SECONDS = 3.0
# (frequency Hz, left amplitude) per stem; the frequencies are whole numbers of Hz, so they sit
# on FFT bins of any whole-second window.
SINES = {
    "drums": (220.0, 0.30),
    "bass": (55.0, 0.20),
    "other": (1320.0, 0.12),
    "vocals": (880.0, 0.08),
}
RIGHT_GAIN = 0.5  # right channel = 0.5 x left (-6.02 dB)
ORDER = ("mixture", "drums", "bass", "other", "vocals")  # MUSDB18's stream order
# AAC at 256 kb/s keeps a sine's level to a few hundredths of a dB (measured: at most 0.03 dB
# per segment, 0.007 dB in the left/right balance); 1 dB let a 5 % gain error in the reader pass.
LEVEL_TOL_DB = 0.05


def _require_tools() -> str:
    """The ffmpeg program's path; fail (never skip) when ffmpeg, ffprobe or stempeg is missing."""
    missing = [p for p in ("ffmpeg", "ffprobe") if shutil.which(p) is None]
    if missing:
        pytest.fail(
            f"the .stem.mp4 tests need {missing} on PATH: ./run test installs the Debian package "
            "ffmpeg when run as root (else: apt-get install --no-install-recommends ffmpeg)"
        )
    try:
        import stempeg  # noqa: F401
    except ImportError:
        pytest.fail("the .stem.mp4 tests need stempeg (in the dev extra): run ./run setup")
    return str(shutil.which("ffmpeg"))


def _stems(rate: int, seconds: float) -> dict[str, np.ndarray]:
    """The written signals, ``{name: (2, samples) float64}``, mixture = sum of the four stems."""
    t = np.arange(round(rate * seconds)) / rate
    out = {}
    for name, (freq, amp) in SINES.items():
        left = amp * np.sin(2 * np.pi * freq * t)
        out[name] = np.stack([left, RIGHT_GAIN * left])
    out = {"mixture": sum(out.values()), **out}
    return out


def _write_stem_mp4(
    path: Path,
    signals: dict[str, np.ndarray],
    rate: int,
    names: tuple[str, ...] = ORDER,
    video_first: bool = False,
) -> None:
    """Write ``names`` as AAC streams of one mp4 (256 kb/s, like MUSDB18) with the ffmpeg CLI."""
    ffmpeg = _require_tools()
    cmd = [ffmpeg, "-nostdin", "-y", "-v", "error"]
    for k, name in enumerate(names):
        wav = path.parent / f"{path.name}.{k}.wav"
        sf.write(wav, signals[name].T.astype(np.float32), rate, subtype="FLOAT")
        cmd += ["-i", str(wav)]
    maps = [arg for k in range(len(names)) for arg in ("-map", f"{k}:a")]
    if video_first:  # a one-frame picture track as stream 0, ahead of the audio streams
        cmd += ["-f", "lavfi", "-i", "color=c=red:s=16x16:d=0.1"]
        maps = ["-map", f"{len(names)}:v", *maps, "-c:v", "mjpeg", "-r", "1"]
    cmd += [*maps, "-c:a", "aac", "-b:a", "256k", "-ar", str(rate), str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    for k in range(len(names)):
        (path.parent / f"{path.name}.{k}.wav").unlink()


def _probe(path: Path) -> list[tuple[str, int, int]]:
    """``(codec_type, sample_rate, channels)`` of each stream, read by ffprobe."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,sample_rate,channels",
         "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rows = []
    for line in out.split():
        fields = line.split(",")
        rows.append((fields[0], int(fields[1] or 0), int(fields[2] or 0)) if len(fields) == 3
                    else (fields[0], 0, 0))  # fmt: skip
    return rows


def _dominant_hz(x: np.ndarray, rate: int) -> float:
    """The frequency (Hz) of the largest FFT bin of the left channel."""
    spectrum = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64)[0]))
    return float(np.argmax(spectrum) * rate / x.shape[-1])


@pytest.fixture(scope="module")
def musdb_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MUSDB18-like folder: ``test/song.stem.mp4``, 3 s, 44.1 kHz, 5 AAC streams."""
    root = tmp_path_factory.mktemp("musdb_mp4")
    (root / "test").mkdir()
    _write_stem_mp4(root / "test" / "song.stem.mp4", _stems(RATE, SECONDS), RATE)
    return root


def test_written_file_is_musdb_like(musdb_mp4: Path) -> None:
    # The fixture itself, by ffprobe: five stereo 44.1 kHz audio streams and nothing else.
    assert _probe(musdb_mp4 / "test" / "song.stem.mp4") == [("audio", RATE, 2)] * 5
    assert detect_layout(musdb_mp4) == "stem.mp4"


def test_multitrack_reads_every_stream_in_musdb_order(musdb_mp4: Path) -> None:
    ds = open_dataset(musdb_mp4, "test", ORDER)
    assert isinstance(ds, MultitrackDataset) and ds.layout == "stem.mp4" and len(ds) == 1
    before = decode_count()
    audio = ds[0]
    assert decode_count() == before + 1
    assert isinstance(audio, torch.Tensor) and audio.dtype == torch.float32
    # Stereo, and exactly 3 s at 44.1 kHz: AAC's priming samples (before) and the padding of
    # its last 1024-sample frame (after) are both gone.
    n = round(RATE * SECONDS)
    assert audio.shape == (5, 2, n)
    x = audio.numpy().astype(np.float64)
    written = _stems(RATE, SECONDS)
    for i, name in enumerate(ORDER):
        # Stream order: the decoded stem's dominant frequency is the one written for it (on a
        # 1 Hz grid over the first second; a wrong rate would move it too).
        expected_hz = SINES[name][0] if name != "mixture" else SINES["drums"][0]
        assert _dominant_hz(x[i, :, :RATE], RATE) == expected_hz, name
        # Levels within AAC tolerance, the left/right balance kept (stereo, not upmixed mono).
        level = rms_dbfs(x[i], axis=1)
        ref = rms_dbfs(written[name], axis=1)
        np.testing.assert_allclose(level, ref, atol=LEVEL_TOL_DB, err_msg=name)
        balance = (level[0] - level[1]) - 20 * np.log10(1 / RIGHT_GAIN)
        assert abs(balance) < LEVEL_TOL_DB, (name, level)
        # Time alignment: the waveform matches the written one sample for sample (a shift of
        # even one sample at 1320 Hz would cost far more than this SNR).
        err = rms_dbfs(x[i] - written[name]) - rms_dbfs(written[name])
        assert err < -28.0, (name, err)  # measured: -32 to -46 dB


def test_stem_selection_by_name(musdb_mp4: Path) -> None:
    # Another order and a subset: each name maps to its stream, not to its position.
    ds = MultitrackDataset(musdb_mp4, "test", ("vocals", "bass"))
    x = ds.load(0)
    assert x is not None and x.shape[:2] == (2, 2)
    assert [_dominant_hz(s[:, :RATE], RATE) for s in x] == [SINES["vocals"][0], SINES["bass"][0]]


def test_segments_from_stem_mp4(musdb_mp4: Path, tmp_path: Path) -> None:
    stems = ("drums", "bass", "other", "vocals")
    segs = open_dataset(
        musdb_mp4, "all", stems, segment_seconds=1.0, cache_dir=tmp_path, jitter=False
    )
    assert isinstance(segs, SegmentDataset) and segs.sample_rate == RATE
    # Every grid segment (hop 0.5 s over ~3 s: offsets 0, 0.5, ..., 2 s) of every stem is loud.
    n = segs._array(0).shape[-1]
    per_stem = len(range(0, n - RATE + 1, RATE // 2))
    assert per_stem == 5 and len(segs) == 4 * per_stem
    written = _stems(RATE, SECONDS)
    for i in range(len(segs)):
        item = segs[i]
        s, offset = item["stem"], item["offset"]
        audio = item["audio"].numpy()
        assert audio.shape == (2, RATE) and audio.dtype == np.float32
        name = stems[s]
        assert _dominant_hz(audio, RATE) == SINES[name][0], (i, name)
        ref = written[name][:, offset : offset + RATE]
        np.testing.assert_allclose(
            rms_dbfs(audio, axis=1), rms_dbfs(ref, axis=1), atol=LEVEL_TOL_DB, err_msg=name
        )
    # The random sampler draws the stem asked for, at its level.
    rng = np.random.default_rng(0)
    for s, name in enumerate(stems):
        item = segs.sample(rng, stem=s)
        assert item["stem"] == s and _dominant_hz(item["audio"].numpy(), RATE) == SINES[name][0]
        amp = SINES[name][1]
        level = rms_dbfs(item["audio"].numpy()[0])
        assert abs(level - 20 * np.log10(amp / np.sqrt(2))) < LEVEL_TOL_DB
    # Track mode: all four stems of one segment, aligned.
    tracks = open_dataset(
        musdb_mp4, "all", stems, segment_seconds=1.0, cache_dir=tmp_path, mode="track"
    )
    audio = tracks[0]["audio"].numpy()
    assert audio.shape == (4, 2, RATE)
    assert [_dominant_hz(a, RATE) for a in audio] == [SINES[s][0] for s in stems]


def test_video_stream_first_and_other_rate(tmp_path: Path) -> None:
    # A 48 kHz file whose first stream is a picture (cover art can be anywhere among a stem
    # file's streams): the stems are the *audio* streams in order,
    # and they are resampled to 44.1 kHz (frequencies, levels and duration kept).
    rate, seconds = 48000, 1.0
    path = tmp_path / "train" / "video.stem.mp4"
    path.parent.mkdir()
    _write_stem_mp4(path, _stems(rate, seconds), rate, video_first=True)
    assert _probe(path) == [("video", 0, 0)] + [("audio", rate, 2)] * 5
    x = MultitrackDataset(tmp_path, "all", ORDER).load(0)
    assert x is not None and x.shape[:2] == (5, 2)
    assert x.shape[-1] == round(RATE * seconds)
    window = x[:, :, : x.shape[-1] // RATE * RATE]  # whole seconds: 1 Hz bins
    found = [_dominant_hz(s, RATE) for s in window]
    assert found == [SINES["drums"][0]] + [SINES[s][0] for s in ORDER[1:]]
    written = _stems(rate, seconds)
    for i, name in enumerate(ORDER):
        np.testing.assert_allclose(
            rms_dbfs(x[i], axis=1), rms_dbfs(written[name], axis=1), atol=LEVEL_TOL_DB
        )


def test_too_few_streams_and_corrupt_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    two = tmp_path / "two" / "test" / "pair.stem.mp4"
    two.parent.mkdir(parents=True)
    _write_stem_mp4(two, _stems(RATE, 0.5), RATE, names=("mixture", "drums"))
    ds = MultitrackDataset(tmp_path / "two", "test", ("drums", "vocals"))
    with pytest.warns(UserWarning) as record:
        assert ds.load(0) is None
    messages = [str(w.message) for w in record]
    assert any("2 audio stream(s), the vocals stem is audio stream 4" in m for m in messages)
    assert any("skipping track pair" in m for m in messages), messages
    bad = tmp_path / "bad" / "test" / "broken.stem.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00" * 64)
    ds = MultitrackDataset(tmp_path / "bad", "test")
    with pytest.warns(UserWarning) as record:
        assert ds.load(0) is None
    messages = [str(w.message) for w in record]
    assert any(m.startswith(f"skipping unreadable stem file {bad}: ") for m in messages), messages
    assert any("skipping track broken" in m for m in messages), messages
    # The dataset's items stay usable: an unreadable track is one second of silence.
    with pytest.warns(UserWarning, match="skipping"):
        silence = ds[0]
    assert silence.shape == (4, 2, RATE) and torch.count_nonzero(silence) == 0


def test_missing_ffmpeg_or_stempeg_raises_a_clear_error(
    musdb_mp4: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ds = MultitrackDataset(musdb_mp4, "test")
    with monkeypatch.context() as m:
        m.setenv("PATH", str(tmp_path))  # no ffmpeg here
        with pytest.raises(RuntimeError, match=r"ffmpeg.*apt-get install"):
            ds.load(0)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "stempeg", None)  # makes `import stempeg` raise ImportError
        with pytest.raises(ImportError, match=r"mixfx\[musdb\]"):
            ds.load(0)
