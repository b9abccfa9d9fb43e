"""Datasets and the segment sampler, on small multitrack folders written by the tests."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly
from torch.utils.data import DataLoader, DistributedSampler

from fxdata.audio import load_audio, resample, rms_dbfs
from fxdata.datasets import (
    STEMS,
    MultitrackDataset,
    SegmentDataset,
    SegmentStream,
    decode_count,
    detect_layout,
    find_tracks,
    open_dataset,
)

SR = 44100
SECONDS = 2.0
SEGMENT = 0.25
SILENCE_DB = -40.0


def _stem_audio(track: int, stem: int, sr: int = SR, channels: int = 2) -> np.ndarray:
    """(samples, channels): a sine that is on in the first half of the track only for drums,
    in the second half only for bass, always for other, and never (silence) for vocals."""
    t = np.arange(round(SECONDS * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (220.0 * (stem + 1) + 10 * track) * t)
    if stem == 0:
        x[t >= SECONDS / 2] = 0.0
    elif stem == 1:
        x[t < SECONDS / 2] = 0.0
    elif stem == 3:
        x[:] = 0.0
    return np.repeat(x[:, None], channels, axis=1)


def _write_track(folder: Path, track: int) -> None:
    folder.mkdir(parents=True)
    for s, stem in enumerate(STEMS):
        sf.write(folder / f"{stem}.wav", _stem_audio(track, s), SR, subtype="PCM_16")


@pytest.fixture
def musdb(tmp_path: Path) -> Path:
    root = tmp_path / "musdb"
    for i in range(4):
        _write_track(root / "train" / f"track{i}", i)
    _write_track(root / "test" / "track9", 9)
    return root


def _segments(root: Path, cache: Path, **kw: object) -> SegmentDataset:
    tracks = MultitrackDataset(root, "all")
    return SegmentDataset(tracks, SEGMENT, silence_db=SILENCE_DB, cache_dir=cache, **kw)


def test_layout_detection_and_reproducible_valid_split(musdb: Path, tmp_path: Path) -> None:
    assert detect_layout(musdb) == "folders"
    train = {t.name for t in find_tracks(musdb, "train", valid_fraction=0.5)}
    valid = {t.name for t in find_tracks(musdb, "valid", valid_fraction=0.5)}
    assert train | valid == {f"track{i}" for i in range(4)} and not train & valid
    assert valid == {t.name for t in find_tracks(musdb, "valid", valid_fraction=0.5)}
    assert {t.name for t in find_tracks(musdb, "test")} == {"track9"}
    flat = tmp_path / "flat"
    _write_track(flat / "song", 0)
    assert detect_layout(flat) == "flat"
    (musdb / "corpus.json").write_text(json.dumps({"songs": []}))
    assert detect_layout(musdb) == "corpus"
    with pytest.raises(ValueError, match="no tracks"):
        detect_layout(tmp_path / "flat" / "song")


def test_whole_tracks_are_stereo_at_44k(musdb: Path) -> None:
    ds = MultitrackDataset(musdb, "test")
    x = ds[0]
    assert x.shape == (4, 2, round(SECONDS * SR)) and x.dtype == torch.float32
    ref = _stem_audio(9, 2)[:, 0]
    assert np.abs(x[2, 0].numpy() - ref).max() < 1e-4


def test_segment_shapes_and_silence_skipping(musdb: Path, tmp_path: Path) -> None:
    ds = _segments(musdb, tmp_path / "cache", jitter=False)
    L = round(SEGMENT * SR)
    item = ds[0]
    assert item["audio"].shape == (2, L) and item["audio"].dtype == torch.float32
    # Reference: a float64 loop over the grid, reading the wav files directly.
    hop = L // 2
    expected = 0
    for t, track in enumerate(ds.tracks):
        for s, stem in enumerate(STEMS):
            x, _ = sf.read(track.files[stem], dtype="float64")
            for o in range(0, x.shape[0] - L + 1, hop):
                level = 10 * np.log10(np.mean(x[o : o + L] ** 2) + 1e-12)
                expected += level >= SILENCE_DB
                if level >= SILENCE_DB:
                    assert [t, s, o] in ds.index.tolist()
    assert len(ds) == expected
    assert 3 not in set(ds.index[:, 1].tolist())  # vocals are silent everywhere
    for i in range(len(ds)):
        assert rms_dbfs(ds[i]["audio"].numpy()) >= SILENCE_DB
    track_mode = _segments(musdb, tmp_path / "cache", mode="track", jitter=False)
    assert track_mode[0]["audio"].shape == (4, 2, L) and track_mode[0]["stem"] == -1


def test_jitter_is_deterministic_per_seed_and_epoch(musdb: Path, tmp_path: Path) -> None:
    a = _segments(musdb, tmp_path / "cache", seed=3)
    b = _segments(musdb, tmp_path / "cache", seed=3)
    offsets_a = [a[i]["offset"] for i in range(len(a))]
    assert offsets_a == [b[i]["offset"] for i in range(len(b))]
    assert torch.equal(a[5]["audio"], b[5]["audio"])
    a.set_epoch(1)
    moved = [a[i]["offset"] for i in range(len(a))]
    assert moved != offsets_a
    grid = a.index[:, 2].tolist()
    assert all(abs(m - g) <= a.hop // 2 for m, g in zip(moved, grid, strict=True))
    for i in range(len(a)):
        assert rms_dbfs(a[i]["audio"].numpy()) >= SILENCE_DB
    stream = SegmentStream(a, length=6, seed=1)
    first = [(d["track"], d["stem"], d["offset"]) for d in stream]
    assert first == [(d["track"], d["stem"], d["offset"]) for d in SegmentStream(a, 6, seed=1)]
    assert len(first) == 6


def test_dataloader_workers_draw_distinct_segments(musdb: Path, tmp_path: Path) -> None:
    ds = _segments(musdb, tmp_path / "cache")
    loader = DataLoader(SegmentStream(ds, length=16, seed=0), batch_size=4, num_workers=2)
    keys = []
    for batch in loader:
        assert batch["audio"].shape == (4, 2, round(SEGMENT * SR))
        keys += list(zip(batch["track"].tolist(), batch["stem"].tolist(),
                         batch["offset"].tolist(), strict=True))  # fmt: skip
    assert len(keys) == 16 and len(set(keys)) == 16
    mapped = DataLoader(ds, batch_size=8, num_workers=2, shuffle=False)
    offsets = torch.cat([b["offset"] for b in mapped])
    assert offsets.tolist() == [ds[i]["offset"] for i in range(len(ds))]


def test_distributed_sampler_partitions_the_index(musdb: Path, tmp_path: Path) -> None:
    ds = _segments(musdb, tmp_path / "cache")
    parts = [
        list(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in range(2)
    ]
    padding = (-len(ds)) % 2
    assert set(parts[0]) | set(parts[1]) == set(range(len(ds)))
    assert len(set(parts[0]) & set(parts[1])) <= padding
    assert len(parts[0]) == len(parts[1]) == (len(ds) + padding) // 2


def test_resampling_keeps_frequency_and_amplitude() -> None:
    sr = 22050
    t = np.arange(sr) / sr  # 1 s
    x = np.stack([0.5 * np.sin(2 * np.pi * 1000.0 * t)] * 2).astype(np.float32)
    y = resample(x, sr, SR)
    assert y.shape == (2, SR)
    core = y[0, 2000:-2000].astype(np.float64)
    window = np.hanning(core.size)
    spectrum = np.abs(np.fft.rfft(core * window))
    freqs = np.fft.rfftfreq(core.size, 1 / SR)
    peak = spectrum.argmax()
    # Parabolic interpolation of the peak bin for a sub-bin frequency estimate.
    a, b, c = np.log(spectrum[peak - 1 : peak + 2])
    frac = 0.5 * (a - c) / (a - 2 * b + c)
    assert abs(freqs[peak] + frac * (freqs[1] - freqs[0]) - 1000.0) < 0.5
    amplitude = np.sqrt(2 * np.mean(core**2))
    assert 20 * np.log10(amplitude / 0.5) == pytest.approx(0.0, abs=0.01)
    reference = resample_poly(x.astype(np.float64), 2, 1, axis=1)
    assert np.abs(y[:, 2000:-2000] - reference[:, 2000:-2000]).max() < 2e-3
    expected = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(SR) / SR)
    assert np.abs(y[0, 2000:-2000] - expected[2000:-2000]).max() < 1e-4  # no delay
    back = resample(y, SR, sr)
    assert np.abs(back[:, 1000:-1000] - x[:, 1000:-1000]).max() < 1e-3


def test_bad_files_warn_and_are_handled_or_skipped(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    _write_track(root / "train" / "good", 0)
    _write_track(root / "train" / "garbage", 1)
    truncated = root / "train" / "garbage" / "drums.wav"
    truncated.write_bytes(truncated.read_bytes()[:30])  # a header cut short
    _write_track(root / "train" / "empty", 2)
    (root / "train" / "empty" / "bass.wav").write_bytes(b"")
    _write_track(root / "train" / "noframes", 3)
    sf.write(root / "train" / "noframes" / "other.wav", np.zeros((0, 2)), SR)
    _write_track(root / "train" / "mono", 4)
    mono = root / "train" / "mono" / "drums.wav"
    sf.write(mono, _stem_audio(4, 0, sr=22050, channels=1), 22050, subtype="PCM_16")
    tracks = MultitrackDataset(root, "all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = SegmentDataset(tracks, SEGMENT, silence_db=SILENCE_DB, cache_dir=tmp_path / "c")
    messages = [str(w.message) for w in caught]
    for path in (truncated, root / "train" / "empty" / "bass.wav"):
        assert any("unreadable" in m and str(path) in m for m in messages), messages
    assert any("empty" in m and "noframes" in m for m in messages), messages
    assert any(str(mono) in m and "mono" in m for m in messages), messages
    assert any(str(mono) in m and "22050 Hz: resampled" in m for m in messages), messages
    assert sorted(t.name for t in ds.tracks) == ["good", "mono"]
    m = [t.name for t in ds.tracks].index("mono")
    array = np.load(ds.paths[m], mmap_mode="r")
    assert array.shape == (4, 2, round(SECONDS * SR))
    drums = array[0].astype(np.float64) / 32767
    assert np.abs(drums[0] - drums[1]).max() == 0.0  # upmixed
    level = 10 * np.log10(np.mean(drums[:, 2000 : SR // 2] ** 2))
    assert level == pytest.approx(10 * np.log10(0.3**2 / 2), abs=0.05)
    for i in range(len(ds)):  # every item still loads
        assert ds[i]["audio"].shape == (2, round(SEGMENT * SR))


def test_load_audio_reports_mono_and_rate(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    sf.write(path, _stem_audio(0, 2, sr=22050, channels=1), 22050, subtype="FLOAT")
    with pytest.warns(UserWarning, match="mono"):
        x = load_audio(path)
    assert x is not None and x.shape == (2, round(SECONDS * SR))
    with pytest.warns(UserWarning, match="empty"):
        empty = tmp_path / "empty.wav"
        sf.write(empty, np.zeros((0, 2)), SR)
        assert load_audio(empty) is None


def test_cache_is_reused_without_decoding(musdb: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = decode_count()
    first = _segments(musdb, cache)
    assert decode_count() - before == 5
    files = sorted(cache.glob("*.npy"))
    mtimes = [p.stat().st_mtime_ns for p in files]
    second = _segments(musdb, cache)
    assert decode_count() - before == 5  # nothing decoded again
    assert [p.stat().st_mtime_ns for p in sorted(cache.glob("*.npy"))] == mtimes
    assert np.array_equal(first.index, second.index)
    assert torch.equal(first[3]["audio"], second[3]["audio"])
    os.utime(musdb / "train" / "track0" / "drums.wav", ns=(1, 1))  # a changed file is redone
    _segments(musdb, cache)
    assert decode_count() - before == 6


def test_normalizer_hook_is_applied_at_cache_time(musdb: Path, tmp_path: Path) -> None:
    seen = []

    def halve(audio: np.ndarray, stems: tuple[str, ...]) -> np.ndarray:
        seen.append(stems)
        return audio * 0.5

    plain = _segments(musdb, tmp_path / "c", jitter=False)
    halved = _segments(musdb, tmp_path / "c", jitter=False, normalizer=halve)
    assert seen and seen[0] == STEMS
    i = int(np.flatnonzero(halved.index[:, 1] == 2)[0])  # the "other" stem, never silent
    j = plain.index.tolist().index(halved.index[i].tolist())
    ratio = halved[i]["audio"].double().norm() / plain[j]["audio"].double().norm()
    assert float(ratio) == pytest.approx(0.5, abs=1e-4)


def test_open_dataset_is_the_data_hook(musdb: Path, tmp_path: Path) -> None:
    whole = open_dataset(musdb, "test")
    assert isinstance(whole, MultitrackDataset) and len(whole) == 1
    segs = open_dataset(musdb, "all", segment_seconds=SEGMENT, cache_dir=tmp_path / "c")
    assert isinstance(segs, SegmentDataset) and len(segs) > 0
    with pytest.raises(ValueError, match="segment_seconds"):
        open_dataset(musdb, "test", cache_dir=tmp_path / "c")


# -- arguments that used to be accepted silently -----------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hop_seconds": 0.0}, "hop_seconds"),
        ({"hop_seconds": -0.1}, "hop_seconds"),
        ({"hop_seconds": 1e-6}, "hop_seconds.*one sample"),
        ({"hop_seconds": float("nan")}, "hop_seconds"),
        ({"hop_seconds": float("inf")}, "hop_seconds"),
        ({"segment_seconds": 1e-6}, "segment_seconds.*one sample"),
        ({"segment_seconds": float("inf")}, "segment_seconds"),
        ({"segment_seconds": float("nan")}, "segment_seconds"),
        ({"silence_db": float("nan")}, "silence_db"),
        ({"silence_db": float("inf")}, "silence_db"),
    ],
)
def test_bad_segment_arguments_raise(
    musdb: Path, tmp_path: Path, kwargs: dict[str, float], match: str
) -> None:
    tracks = MultitrackDataset(musdb, "test")
    options: dict[str, object] = {"segment_seconds": SEGMENT, "cache_dir": tmp_path / "c"}
    options.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SegmentDataset(tracks, **options)  # type: ignore[arg-type]


def test_negative_indices_work_like_a_sequence(musdb: Path, tmp_path: Path) -> None:
    for jitter in (False, True):
        ds = _segments(musdb, tmp_path / "cache", jitter=jitter, seed=5)
        n = len(ds)
        assert n > 2
        for i in (1, n - 1):
            neg, pos = ds[i - n], ds[i]
            assert (neg["track"], neg["stem"], neg["offset"]) == (
                pos["track"],
                pos["stem"],
                pos["offset"],
            )
            assert torch.equal(neg["audio"], pos["audio"])
        assert ds[np.int64(-1)]["offset"] == ds[n - 1]["offset"]
        for bad in (n, -n - 1, 10 * n):
            with pytest.raises(IndexError, match=f"index {bad} out of range for {n} segments"):
                ds[bad]


# -- cached samples against the source file ----------------------------------------------------
def _sine(amplitude: float, freq: float = 440.0, seconds: float = SECONDS) -> np.ndarray:
    """(samples, 2): a stereo sine; 440 Hz is 110 whole periods of a 0.25 s segment, so every
    segment's RMS is exactly ``amplitude / sqrt(2)`` wherever it starts."""
    t = np.arange(round(seconds * SR)) / SR
    x = amplitude * np.sin(2 * np.pi * freq * t)
    return np.stack([x, 0.8 * x], axis=1) if freq != 440.0 else np.stack([x, x], axis=1)


def test_cached_segments_match_the_source_samples_within_int16_quantisation(
    tmp_path: Path,
) -> None:
    root = tmp_path / "levels"
    folder = root / "song"
    folder.mkdir(parents=True)
    # A stem beyond full scale (float wav), a nearly full-scale one, a quiet one, and noise.
    rng = np.random.default_rng(0)
    sources = {
        "drums": _sine(1.8, 523.0),
        "bass": _sine(0.99, 97.0),
        "other": _sine(0.01, 1234.0),
        "vocals": np.clip(0.3 * rng.standard_normal((round(SECONDS * SR), 2)), -0.95, 0.95),
    }
    for stem, audio in sources.items():
        sf.write(folder / f"{stem}.wav", audio, SR, subtype="FLOAT")
    ds = SegmentDataset(
        MultitrackDataset(root, "all"),
        SEGMENT,
        silence_db=-60.0,
        cache_dir=tmp_path / "cache",
        jitter=False,
    )
    assert sorted(set(ds.index[:, 1].tolist())) == [0, 1, 2, 3]
    for i in range(len(ds)):
        item = ds[i]
        stem = STEMS[item["stem"]]
        source, _ = sf.read(ds.tracks[item["track"]].files[stem], dtype="float64")
        expected = source[item["offset"] : item["offset"] + ds.segment].T
        got = item["audio"].double().numpy()
        # int16 storage of x / scale, scale = max(peak, 1): at most half a step of that scale,
        # plus float32 rounding of the stored value times the scale.
        scale = max(float(np.abs(source).max()), 1.0)
        bound = 0.5 * scale / 32767 + 4e-7 * scale
        error = float(np.abs(got - expected).max())
        assert error <= bound, (stem, error, bound)
        # ... and not far below it either: the samples really went through int16.
        assert error > 0.05 * bound or stem == "other", (stem, error, bound)


def test_silence_gate_is_exact_at_the_threshold(tmp_path: Path) -> None:
    root = tmp_path / "gate"
    folder = root / "song"
    folder.mkdir(parents=True)
    gate = -40.0

    def at_db(level_db: float) -> np.ndarray:
        return _sine(np.sqrt(2.0) * 10 ** (level_db / 20))  # RMS of a sine = amplitude / sqrt 2

    levels = {"drums": gate - 0.2, "bass": gate + 0.2, "other": gate - 3.0, "vocals": gate + 3.0}
    for stem, level in levels.items():
        sf.write(folder / f"{stem}.wav", at_db(level), SR, subtype="FLOAT")
    ds = SegmentDataset(
        MultitrackDataset(root, "all"),
        SEGMENT,
        silence_db=gate,
        cache_dir=tmp_path / "cache",
        jitter=False,
    )
    per_stem = np.bincount(ds.index[:, 1], minlength=4)
    grid = len(range(0, round(SECONDS * SR) - ds.segment + 1, ds.hop))
    assert per_stem.tolist() == [0, grid, 0, grid]  # just below left out, just above kept
    for i in range(len(ds)):
        level = rms_dbfs(ds[i]["audio"].numpy())
        assert level == pytest.approx(levels[STEMS[ds[i]["stem"]]], abs=0.01)


def test_jittered_and_randomly_drawn_segments_pass_the_silence_gate(tmp_path: Path) -> None:
    """Each stem is 3 dB above the gate up to ``boundary`` and 0.2 dB below it after: a
    jittered offset or a random draw that lands on quieter audio than ``silence_db`` is refused
    (the same exact gate as the index's, at 0.2 dB)."""
    root = tmp_path / "halves"
    folder = root / "song"
    folder.mkdir(parents=True)
    gate = -40.0
    # The last loud grid segment (offset 7 hops = 38584) has only 10 % of its samples before the
    # boundary: just loud enough, so half of its jittered moves (±hop/2) would be too quiet.
    boundary = 7 * 5512 + 1100
    audio = _sine(np.sqrt(2.0) * 10 ** ((gate + 3.0) / 20))
    audio[boundary:] *= 10 ** (-3.2 / 20)
    for stem in STEMS:
        sf.write(folder / f"{stem}.wav", audio, SR, subtype="FLOAT")
    ds = SegmentDataset(
        MultitrackDataset(root, "all"), SEGMENT, silence_db=gate, cache_dir=tmp_path / "cache"
    )
    assert ds.jitter and ds.hop == 5512 and ds.segment == 11025
    assert ds.index[:, 2].max() == 7 * ds.hop
    levels = []
    for epoch in range(16):
        ds.set_epoch(epoch)
        levels += [rms_dbfs(ds[i]["audio"].numpy()) for i in range(len(ds))]
    rng = np.random.default_rng(0)
    drawn = [ds.sample(rng) for _ in range(200)]
    levels += [rms_dbfs(item["audio"].numpy()) for item in drawn]
    assert min(levels) >= gate
    # The test can fail: the draws do reach the quiet half, up to the gate.
    assert max(item["offset"] for item in drawn) > boundary - ds.segment


def test_default_cache_dir_follows_mixfx_cache_then_xdg_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from fxdata.datasets import _default_cache_dir

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MIXFX_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert _default_cache_dir() == tmp_path / "home" / ".cache" / "mixfx" / "segments"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _default_cache_dir() == tmp_path / "xdg" / "mixfx" / "segments"
    monkeypatch.setenv("MIXFX_CACHE", str(tmp_path / "mine"))
    assert _default_cache_dir() == tmp_path / "mine" / "segments"


def test_dataset_pickles_without_its_memory_maps(musdb: Path, tmp_path: Path) -> None:
    """Spawned DataLoader workers receive a pickled dataset: maps are reopened there."""
    import pickle

    ds = _segments(musdb, tmp_path / "cache")
    first = ds[3]["audio"]  # opens a memory map
    assert ds._maps
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._maps == {} and ds._maps  # the original keeps its maps
    assert torch.equal(copy[3]["audio"], first) and len(copy) == len(ds)


def test_stream_epochs_draw_differently_and_reproducibly(musdb: Path, tmp_path: Path) -> None:
    ds = _segments(musdb, tmp_path / "cache")

    def draws(epoch: int) -> list[tuple[int, int, int]]:
        stream = SegmentStream(ds, length=8, seed=4)
        stream.set_epoch(epoch)
        return [(d["track"], d["stem"], d["offset"]) for d in stream]

    assert draws(0) == draws(0) and draws(1) == draws(1)
    assert draws(1) != draws(0)


def test_jitter_is_the_documented_uniform_draw(musdb: Path, tmp_path: Path) -> None:
    """Offset = clip(grid + k, 0, n − L) with k uniform in [−hop//2, hop//2] drawn by
    ``np.random.default_rng([seed, epoch, i]).integers`` (the stem "other" is loud everywhere,
    so every move is kept); the first and last segments are clipped to the track."""
    ds = _segments(musdb, tmp_path / "cache", seed=11)
    n = round(SECONDS * SR)
    clipped_low = clipped_high = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            _, stem, grid = (int(v) for v in ds.index[i])
            if STEMS[stem] != "other":
                continue
            k = int(np.random.default_rng([11, epoch, i]).integers(-ds.hop // 2, ds.hop // 2 + 1))
            want = min(max(grid + k, 0), n - ds.segment)
            clipped_low += grid + k < 0
            clipped_high += grid + k > n - ds.segment
            assert ds[i]["offset"] == want, (epoch, i)
    assert clipped_low and clipped_high  # both ends of the track were reached
