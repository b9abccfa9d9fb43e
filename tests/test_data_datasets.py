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


def _song(root: Path, name: str, stems: dict[str, np.ndarray], subtype: str = "FLOAT") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for stem, audio in stems.items():
        sf.write(folder / f"{stem}.wav", audio, SR, subtype=subtype)
    return folder


def _write_track(folder: Path, track: int) -> None:
    stems = {stem: _stem_audio(track, s) for s, stem in enumerate(STEMS)}
    _song(folder.parent, folder.name, stems, subtype="PCM_16")


def _all_stems(audio: np.ndarray) -> dict[str, np.ndarray]:
    return {stem: audio for stem in STEMS}


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
    # A stem beyond full scale (float wav), a nearly full-scale one, a quiet one, and noise.
    rng = np.random.default_rng(0)
    sources = {
        "drums": _sine(1.8, 523.0),
        "bass": _sine(0.99, 97.0),
        "other": _sine(0.01, 1234.0),
        "vocals": np.clip(0.3 * rng.standard_normal((round(SECONDS * SR), 2)), -0.95, 0.95),
    }
    _song(root, "song", sources)
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
    gate = -40.0

    def at_db(level_db: float) -> np.ndarray:
        return _sine(np.sqrt(2.0) * 10 ** (level_db / 20))  # RMS of a sine = amplitude / sqrt 2

    levels = {"drums": gate - 0.2, "bass": gate + 0.2, "other": gate - 3.0, "vocals": gate + 3.0}
    _song(root, "song", {stem: at_db(level) for stem, level in levels.items()})
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
    gate = -40.0
    # The last loud grid segment (offset 7 hops = 38584) has only 10 % of its samples before the
    # boundary: just loud enough, so half of its jittered moves (±hop/2) would be too quiet.
    boundary = 7 * 5512 + 1100
    audio = _sine(np.sqrt(2.0) * 10 ** ((gate + 3.0) / 20))
    audio[boundary:] *= 10 ** (-3.2 / 20)
    _song(root, "song", _all_stems(audio))
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
    """Offset = clip(grid + k, 0, n − L) with k uniform in [−(hop // 2), hop // 2] drawn by
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
            half = ds.hop // 2
            k = int(np.random.default_rng([11, epoch, i]).integers(-half, half + 1))
            want = min(max(grid + k, 0), n - ds.segment)
            clipped_low += grid + k < 0
            clipped_high += grid + k > n - ds.segment
            assert ds[i]["offset"] == want, (epoch, i)
    assert clipped_low and clipped_high  # both ends of the track were reached


# -- the segment cache, argument by argument ---------------------------------------------------
def test_durations_are_whole_positive_sample_counts() -> None:
    from fxdata.datasets import _samples

    assert _samples(1 / SR, "hop_seconds", SR) == 1  # one sample is enough
    assert _samples(2.5 / SR, "hop_seconds", SR) == 2  # round half to even, like round()
    with pytest.raises(ValueError) as info:
        _samples(0.4 / SR, "hop_seconds", SR)
    assert str(info.value) == (
        f"hop_seconds={0.4 / SR:g} is shorter than one sample at 44100 Hz (2.27e-05 s)"
    )
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError) as info:
            _samples(bad, "segment_seconds", SR)
        assert str(info.value) == (
            f"segment_seconds must be a positive, finite number of seconds, got {bad}"
        )


def test_bad_mode_dtype_and_durations_name_the_argument(musdb: Path, tmp_path: Path) -> None:
    tracks = MultitrackDataset(musdb, "test")
    cases = [
        ({"mode": "mix"}, "mode must be 'stem' or 'track', got 'mix'"),
        ({"dtype": "float32"}, "dtype must be 'int16' or 'float16', got 'float32'"),
        (
            {"segment_seconds": 0.0},
            "segment_seconds must be a positive, finite number of seconds, got 0.0",
        ),
        (
            {"hop_seconds": -0.5},
            "hop_seconds must be a positive, finite number of seconds, got -0.5",
        ),
    ]
    for kwargs, message in cases:
        options: dict[str, object] = {"segment_seconds": SEGMENT, "cache_dir": tmp_path / "c"}
        options.update(kwargs)
        with pytest.raises(ValueError) as info:
            SegmentDataset(tracks, **options)  # type: ignore[arg-type]
        assert str(info.value) == message


def test_defaults_segment_hop_seed_and_split(
    musdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracks = MultitrackDataset(musdb, "test")
    with pytest.warns(UserWarning, match="shorter than one segment"):  # 2-s tracks, 6-s segments
        ds = SegmentDataset(tracks, cache_dir=tmp_path / "c")
    assert (ds.segment, ds.hop, ds.seed, ds.epoch) == (6 * SR, 3 * SR, 0, 0) and len(ds) == 0
    assert ds.index.shape == (0, 3) and ds.index.dtype == np.int64  # empty, still integer
    assert ds.source is tracks and ds.normalizer_id == ""
    # open_dataset: the train split of a 10 % validation split, at 44.1 kHz, by default.
    opened = open_dataset(musdb)
    reference = MultitrackDataset(musdb, "train", valid_fraction=0.1)
    assert [t.name for t in opened.tracks] == [t.name for t in reference.tracks]
    assert opened.sample_rate == SR
    with pytest.warns(UserWarning, match="resampled to 22050 Hz"):
        half = open_dataset(musdb, "all", ("bass", "vocals"), sample_rate=22050)
        assert half.sample_rate == 22050 and tuple(half.stems) == ("bass", "vocals")
        assert half[0].shape == (2, 2, round(SECONDS * 22050))


def test_cache_lands_in_cache_dir_with_parents_as_int16_or_float16(tmp_path: Path) -> None:
    """The cache file holds int16 (x / scale, scale = max(peak, 1)) or float16 samples, next to a
    JSON record of the track; items are float32 and equal the source within the storage step."""
    rng = np.random.default_rng(1)
    source = np.clip(0.4 * rng.standard_normal((round(SECONDS * SR), 2)), -0.99, 0.99)
    loud = 1.6 * source  # beyond full scale: stored with a scale of its peak
    stems = {"drums": loud, "bass": source, "other": source, "vocals": source}
    _song(tmp_path / "data", "song", stems)
    tracks = MultitrackDataset(tmp_path / "data", "all")
    for dtype, file_dtype in (("int16", np.int16), ("float16", np.float16)):
        cache = tmp_path / dtype / "deeper" / "cache"
        ds = SegmentDataset(tracks, SEGMENT, cache_dir=cache, dtype=dtype, jitter=False)
        assert ds.cache_dir == cache
        assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy", ".npy"]
        stored = np.load(ds.paths[0])
        assert stored.dtype == file_dtype and stored.shape == (4, 2, round(SECONDS * SR))
        meta = json.loads(ds.paths[0].with_suffix(".json").read_text())
        assert meta["track"] == "song" and meta["files"] == tracks.tracks[0].files
        scales = [1.6 * float(np.abs(source).max()), 1.0, 1.0, 1.0]
        assert meta["scales"] == pytest.approx(scales if dtype == "int16" else [1.0] * 4)
        grid = len(range(0, round(SECONDS * SR) - ds.segment + 1, ds.hop))
        assert len(ds) == 4 * grid  # every segment is loud: the loop below checks them all
        for i in range(len(ds)):
            item = ds[i]
            assert item["audio"].dtype == torch.float32
            want = stems[STEMS[item["stem"]]][item["offset"] : item["offset"] + ds.segment].T
            error = np.abs(item["audio"].double().numpy() - want)
            if dtype == "int16":  # half a step of the scale, plus float32 rounding
                bound = scales[item["stem"]] * (0.5 / 32767 + 4e-7)
            else:  # half a float16 ulp (relative 2^-11), plus the float32 wav's rounding
                bound = (2**-11 + 2**-23) * np.abs(want) + 2**-24
            assert np.all(error <= bound), (dtype, item["stem"], error.max())


def test_track_mode_scales_each_stem_and_gates_the_sum(tmp_path: Path) -> None:
    """Track mode serves ``(stems, 2, L)``, each stem with its own int16 scale, and gates on the
    sum of the stems: here drums and bass cancel in the second half, so only offsets in the first
    half are indexed, and no jittered or random segment reaches into the cancelled half."""
    n = round(SECONDS * SR)
    t = np.arange(n) / SR
    x = 0.9 * np.sin(2 * np.pi * 440.0 * t)
    flipped = np.where(t < SECONDS / 2, x, -x)  # x, then -x after the middle
    stems = {
        "drums": np.stack([1.5 * x, 1.5 * x], 1),
        "bass": np.stack([1.5 * flipped, 1.5 * flipped], 1),  # cancels drums after the middle
        "other": np.zeros((n, 2)),
        "vocals": np.zeros((n, 2)),
    }
    _song(tmp_path / "data", "song", stems)
    ds = SegmentDataset(
        MultitrackDataset(tmp_path / "data", "all"), SEGMENT, mode="track",
        cache_dir=tmp_path / "cache", silence_db=-40.0, seed=3,
    )  # fmt: skip
    grid = np.arange(0, n - ds.segment + 1, ds.hop)
    mix = sum(stems.values())
    loud = [int(o) for o in grid if rms_dbfs(mix[o : o + ds.segment]) >= -40.0]
    assert ds.index.tolist() == [[0, -1, o] for o in loud] and max(loud) < n // 2
    seen = [ds[i] for i in range(len(ds))]
    for epoch in range(1, 6):
        ds.set_epoch(epoch)
        seen += [ds[i] for i in range(len(ds))]
    rng = np.random.default_rng(0)
    seen += [ds.sample(rng) for _ in range(40)]
    for item in seen:
        audio = item["audio"].double().numpy()
        assert audio.shape == (4, 2, ds.segment) and item["stem"] == -1
        o = item["offset"]
        for s, stem in enumerate(STEMS):
            want = stems[stem][o : o + ds.segment].T
            assert np.abs(audio[s] - want).max() <= 1.5 / 32767
        assert rms_dbfs(audio.sum(axis=0)) >= -40.0
    assert max(item["offset"] for item in seen) > n // 2 - ds.segment - ds.hop
    assert any(item["offset"] % ds.hop for item in seen)  # moves and random draws happened


def test_normalizer_id_defaults_to_the_qualified_name(musdb: Path, tmp_path: Path) -> None:
    tracks = MultitrackDataset(musdb, "test")

    def halve(audio: np.ndarray, stems: object) -> np.ndarray:
        return 0.5 * audio

    class Quieter:  # an instance has no __qualname__: its class's is used
        def __call__(self, audio: np.ndarray, stems: object) -> np.ndarray:
            return 0.25 * audio

    plain = SegmentDataset(tracks, SEGMENT, cache_dir=tmp_path / "c", jitter=False)
    halved = SegmentDataset(tracks, SEGMENT, cache_dir=tmp_path / "c", jitter=False,
                            normalizer=halve)  # fmt: skip
    quieter = SegmentDataset(tracks, SEGMENT, cache_dir=tmp_path / "c", jitter=False,
                             normalizer=Quieter())  # fmt: skip
    assert plain.normalizer_id == ""
    assert halved.normalizer_id == halve.__qualname__
    assert quieter.normalizer_id == Quieter.__qualname__
    assert len({plain.paths[0], halved.paths[0], quieter.paths[0]}) == 3  # three cache entries
    i = int(np.flatnonzero(plain.index[:, 1] == 2)[0])
    base = plain[i]["audio"]
    assert torch.allclose(halved[i]["audio"], 0.5 * base, atol=1e-4)
    assert torch.allclose(quieter[i]["audio"], 0.25 * base, atol=1e-4)


def test_a_normalizer_of_the_wrong_shape_is_refused(musdb: Path, tmp_path: Path) -> None:
    tracks = MultitrackDataset(musdb, "test")

    def mono(audio: np.ndarray, stems: object) -> np.ndarray:
        return audio[:, :1]

    with pytest.raises(ValueError) as info:
        SegmentDataset(tracks, SEGMENT, cache_dir=tmp_path / "c", normalizer=mono)
    assert str(info.value) == (
        "the normalizer returned shape (4, 1, 88200) (or non-finite values) for track track9; "
        "expected (4, 2, 88200)"
    )


def test_tracks_are_memory_mapped_and_opened_once(
    musdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, object]] = []
    real_load = np.load

    def load(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", load)
    ds = _segments(musdb, tmp_path / "cache", jitter=False)
    assert calls and all(c.get("mmap_mode") == "r" for c in calls)  # the index reads maps too
    calls.clear()
    rows = np.flatnonzero(ds.index[:, 0] == 0)
    for i in rows:
        ds[int(i)]
    assert calls == [{"mmap_mode": "r"}]  # one map for every segment of the track
    assert isinstance(ds._maps[0], np.memmap)


def _at_the_caller(warning: warnings.WarningMessage) -> bool:
    """The warning points at the code that built the dataset (this file). Under mutation
    testing (``MUTANT_UNDER_TEST`` set by mutmut) every call goes through mutmut's trampoline,
    one frame more, so there the stack level cannot be measured (tests/mutation_equivalent.toml
    lists those mutants as not measurable)."""
    return "MUTANT_UNDER_TEST" in os.environ or warning.filename == __file__


def test_short_tracks_warn_and_the_grid_ends_inside_the_track(tmp_path: Path) -> None:
    """A track shorter than one segment is left out with a warning that points at the caller;
    one exactly a segment long gives one segment; the grid never runs past a track's end."""
    segment, hop = round(SEGMENT * SR), round(SEGMENT * SR / 2)
    rng = np.random.default_rng(2)
    lengths = {"a_short": segment - 1, "b_one": segment, "c_almost": segment + hop - 1}
    for name, n in lengths.items():
        _song(tmp_path / "data", name, _all_stems(0.3 * rng.standard_normal((n, 2))))
    tracks = MultitrackDataset(tmp_path / "data", "all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = SegmentDataset(tracks, SEGMENT, cache_dir=tmp_path / "c", jitter=False)
    assert [str(w.message) for w in caught] == [
        "track a_short is shorter than one segment: not used"
    ]
    assert _at_the_caller(caught[0])
    assert [t.name for t in ds.tracks] == ["a_short", "b_one", "c_almost"]  # cached, not indexed
    assert sorted(set(ds.index[:, 2].tolist())) == [0]  # no offset at `hop` in c_almost
    assert sorted(set(ds.index[:, 0].tolist())) == [1, 2]
    assert len(ds) == 2 * 4


def test_unreadable_tracks_warn_at_the_caller(musdb: Path, tmp_path: Path) -> None:
    tracks = MultitrackDataset(musdb, "all")
    missing = Path(tracks.tracks[0].files["bass"])
    missing.unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = SegmentDataset(tracks, SEGMENT, cache_dir=tmp_path / "c")
    assert len(caught) == 1 and _at_the_caller(caught[0])
    assert str(caught[0].message).startswith(f"skipping track {tracks.tracks[0].name}: ")
    assert str(missing) in str(caught[0].message)
    assert [t.name for t in ds.tracks] == [t.name for t in tracks.tracks[1:]]


def test_a_cache_entry_without_its_record_is_rebuilt(musdb: Path, tmp_path: Path) -> None:
    ds = _segments(musdb, tmp_path / "cache", jitter=False)
    first = ds[0]["audio"]
    ds.paths[0].with_suffix(".json").unlink()
    np.save(ds.paths[0], np.zeros((4, 2, 10), np.int16))  # a stale, partial data file
    again = _segments(musdb, tmp_path / "cache", jitter=False)
    assert torch.equal(again[0]["audio"], first)
    assert ds.paths[0].with_suffix(".json").is_file()


def test_power_is_read_in_chunks_exactly(musdb: Path, tmp_path: Path) -> None:
    ds = _segments(musdb, tmp_path / "cache", jitter=False)
    array = ds._array(1)
    n = array.shape[-1]
    for s in (0, 2, -1):
        whole = ds._segment_raw(1, s, 0, n).astype(np.float64)
        if s < 0:
            whole = whole.sum(axis=0)
        want = np.square(whole).sum(axis=0)
        for chunk in (1000, 4097, n, 1 << 20):
            assert np.array_equal(ds._power(array, 1, s, chunk=chunk), want), (s, chunk)


def test_a_gate_at_the_level_floor_keeps_digital_silence(musdb: Path, tmp_path: Path) -> None:
    """Digital silence measures 10 log10(1e-12) = -120 dBFS: a gate at that level keeps the silent
    vocals (at, not only above), both in the index and for jittered and drawn segments."""
    floor = float(10 * np.log10(1e-12))
    tracks = MultitrackDataset(musdb, "test")
    ds = SegmentDataset(tracks, SEGMENT, silence_db=floor, cache_dir=tmp_path / "c", seed=2)
    vocals = np.flatnonzero(ds.index[:, 1] == 3)
    grid = len(range(0, round(SECONDS * SR) - ds.segment + 1, ds.hop))
    assert len(vocals) == grid
    n = round(SECONDS * SR)
    for i in vocals:
        half = ds.hop // 2
        k = int(np.random.default_rng([2, 0, int(i)]).integers(-half, half + 1))
        want = min(max(int(ds.index[i, 2]) + k, 0), n - ds.segment)
        assert ds[int(i)]["offset"] == want  # the silent move passed the gate
    rng, replay = np.random.default_rng(4), np.random.default_rng(4)
    item = ds.sample(rng, stem=3)
    replay.integers(len(vocals))
    assert item["offset"] == int(replay.integers(0, n - ds.segment + 1))  # the first draw kept


def _documented_sample(
    ds: SegmentDataset, rng: np.random.Generator, stem: int | None
) -> tuple[int, int, int]:
    """SegmentDataset.sample's documented draw, replayed on the index: a stem (uniform over the
    stems with loud segments), then up to 8 tries of (track, uniform offset), then a grid row."""
    stems = np.unique(ds.index[:, 1])
    s = int(rng.choice(stems)) if stem is None else stem
    rows = ds.index[ds.index[:, 1] == s]
    for _ in range(8):
        t = int(rows[rng.integers(len(rows)), 0])
        n = ds._array(t).shape[-1]
        offset = int(rng.integers(0, n - ds.segment + 1))
        x = ds._segment(t, s, offset)
        if rms_dbfs(x) >= ds.silence_db:
            return t, s, offset
    t, s, offset = (int(v) for v in rows[rng.integers(len(rows))])
    return t, s, offset


def test_sample_is_the_documented_draw(tmp_path: Path) -> None:
    """Drums are loud only in the last 10 % of each track: most random offsets are refused, so
    the fallback to a grid row is reached, and the tries' count shows in the draws."""
    n = round(SECONDS * SR)
    rng = np.random.default_rng(7)
    for name in ("one", "two"):
        noise = 0.3 * rng.standard_normal((n, 2))
        drums = noise.copy()
        drums[: int(0.85 * n)] = 0.0
        _song(tmp_path / "data", name, {"drums": drums, "bass": noise, "other": noise,
                                        "vocals": np.zeros((n, 2))})  # fmt: skip
    ds = SegmentDataset(
        MultitrackDataset(tmp_path / "data", "all"), SEGMENT, cache_dir=tmp_path / "c",
        silence_db=-40.0,
    )  # fmt: skip
    fallbacks = 0
    for seed in range(60):
        for stem in (None, 0, 1):
            item = ds.sample(np.random.default_rng(seed), stem)
            want = _documented_sample(ds, np.random.default_rng(seed), stem)
            assert (item["track"], item["stem"], item["offset"]) == want, (seed, stem)
            grid = ds.index[(ds.index[:, 0] == want[0]) & (ds.index[:, 1] == want[1]), 2]
            fallbacks += stem == 0 and want[2] in grid
    assert fallbacks > 0
    with pytest.raises(ValueError) as info:
        ds.sample(np.random.default_rng(0), stem=3)
    assert str(info.value) == "no loud segments for stem 3"
    empty = SegmentDataset(ds.source, SEGMENT, cache_dir=tmp_path / "c", silence_db=0.0)
    with pytest.raises(ValueError) as info:
        empty.sample(np.random.default_rng(0))
    assert str(info.value) == "no loud segments in this dataset"


def test_a_dataset_of_one_segment_samples_it(tmp_path: Path) -> None:
    n = round(SEGMENT * SR)
    noise = 0.3 * np.random.default_rng(0).standard_normal((n, 2))
    silent = np.zeros((n, 2))
    _song(tmp_path / "data", "song", {"drums": noise, "bass": silent, "other": silent,
                                       "vocals": silent})  # fmt: skip
    tracks = MultitrackDataset(tmp_path / "data", "all")
    ds = SegmentDataset(tracks, SEGMENT, cache_dir=tmp_path / "c", silence_db=-40.0)
    assert ds.index.tolist() == [[0, 0, 0]]
    assert ds[0]["offset"] == ds[-1]["offset"] == 0
    item = ds.sample(np.random.default_rng(0))
    assert (item["track"], item["stem"], item["offset"]) == (0, 0, 0)


def test_stream_default_seed_rank_and_worker_shares(musdb: Path, tmp_path: Path) -> None:
    """Without a seed or a process group, a stream draws from default_rng([0, 0, 0, worker]);
    with ``length`` its workers share the items: 5 over 2 workers is 3 + 2."""
    ds = _segments(musdb, tmp_path / "cache")
    stream = SegmentStream(ds, length=5)
    assert (stream.seed, stream.rank, stream.epoch) == (0, 0, 0)

    def key(item: dict) -> tuple[int, int, int]:
        return (int(item["track"]), int(item["stem"]), int(item["offset"]))

    rng = np.random.default_rng([0, 0, 0, 0])
    assert [key(d) for d in stream] == [key(ds.sample(rng)) for _ in range(5)]
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    got = [key(d) for d in loader]
    per_worker = []
    for worker, count in ((0, 3), (1, 2)):
        rng = np.random.default_rng([0, 0, 0, worker])
        per_worker.append([key(ds.sample(rng)) for _ in range(count)])
    assert sorted(got) == sorted(per_worker[0] + per_worker[1])


def test_open_dataset_passes_the_split_fraction_and_refuses_a_missing_folder(
    musdb: Path, tmp_path: Path
) -> None:
    half = open_dataset(musdb, valid_fraction=0.0)
    want = MultitrackDataset(musdb, "train", valid_fraction=0.0)
    assert [t.name for t in half.tracks] == [t.name for t in want.tracks]
    assert len(half.tracks) > len(open_dataset(musdb).tracks)  # the fraction changed the split
    with pytest.raises((FileNotFoundError, ValueError)) as direct:
        MultitrackDataset(tmp_path / "missing", "train")
    with pytest.raises(type(direct.value)) as opened:
        open_dataset(tmp_path / "missing")
    assert str(opened.value) == str(direct.value)  # a folder's error, not a pack's


def test_segments_stay_on_the_grid_without_jitter_and_move_with_a_hop_of_two(
    musdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    still = _segments(musdb, tmp_path / "cache", jitter=False)
    assert [still[i]["offset"] for i in range(len(still))] == still.index[:, 2].tolist()
    # A hop of 2 samples: moves of -1, 0 or +1 (the documented draw), kept where loud.
    two = SegmentDataset(MultitrackDataset(musdb, "test"), SEGMENT, hop_seconds=2 / SR,
                         silence_db=SILENCE_DB, cache_dir=tmp_path / "cache", seed=3)  # fmt: skip
    moved = 0
    n = round(SECONDS * SR)
    for i in range(0, len(two), 997):
        grid = int(two.index[i, 2])
        k = int(np.random.default_rng([3, 0, i]).integers(-1, 2))
        got = two[i]["offset"]
        assert got in (grid, min(max(grid + k, 0), n - two.segment))
        moved += got != grid
    assert moved > 0
    # Without a cache_dir the default cache (here $MIXFX_CACHE) is used.
    monkeypatch.setenv("MIXFX_CACHE", str(tmp_path / "default"))
    SegmentDataset(MultitrackDataset(musdb, "test"), SEGMENT)
    assert any((tmp_path / "default" / "segments").glob("*.npy"))


def test_an_endless_stream_keeps_drawing(musdb: Path, tmp_path: Path) -> None:
    stream = iter(SegmentStream(_segments(musdb, tmp_path / "cache"), seed=2))
    items = [next(stream) for _ in range(20)]  # no length: it never stops
    assert len(items) == 20 and all(item["audio"].shape == (2, 11025) for item in items)


def test_corpus_fxnorm_hook_is_the_corpus_normalizer_in_numpy() -> None:
    import fxdsp
    from fxdata import corpus_fxnorm

    options = corpus_fxnorm()
    assert options["normalizer_id"] == "fxdsp.FxNormalizer/corpus_default/1"
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((2, 2, 44100))).astype(np.float32)
    got = options["normalizer"](audio, np.array(["drums", "vocals"]))
    want = fxdsp.FxNormalizer(fxdsp.FxNormStats.corpus_default())(
        torch.from_numpy(audio), ["drums", "vocals"]
    )
    assert got.dtype == np.float32 and got.shape == audio.shape
    np.testing.assert_array_equal(got, want.detach().numpy())
    assert not np.allclose(got, audio)  # it did normalize
