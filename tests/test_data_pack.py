"""Segment packs: selection, int16 fidelity with per-segment scales, loading, atomic writes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

import fxdata
import fxdata.pack as pack_module
from fxdata.datasets import STEMS, detect_layout, open_dataset
from fxdata.pack import PackedSegments, pack_segments
from mixfx.cli import main

SR = 44100
SECONDS = 8.0
SEG = 1.0  # segment seconds: 8 grid offsets per track
L = round(SEG * SR)
SILENCE_DB = -50.0
QUIET = (2, 1)  # (track, stem): bass of track 2 at -40 dBFS RMS
SILENT = (1, 3)  # vocals of track 1: digital silence
HALF = (0, 0)  # drums of track 0: silent in the second half
MIB = 2**20


def _source(track: int, stem: int) -> np.ndarray:
    """(samples, 2) float64: a distinct two-tone signal with a per-second envelope."""
    t = np.arange(round(SECONDS * SR)) / SR
    f = 110.0 * (stem + 1) * (1.0 + 0.13 * track)
    env = 0.6 + 0.3 * np.sin(2 * np.pi * 0.37 * (track + 1) * t)
    left = env * (0.5 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(2 * np.pi * 2.7 * f * t))
    right = env * 0.6 * np.sin(2 * np.pi * f * 1.01 * t + stem)
    x = 0.5 * np.stack([left, right], axis=1)
    if (track, stem) == QUIET:
        x *= 10 ** (-40 / 20) / np.sqrt(np.mean(x**2))
    elif (track, stem) == SILENT:
        x[:] = 0.0
    elif (track, stem) == HALF:
        x[t >= SECONDS / 2] = 0.0
    return x


def _loud_reference() -> set[tuple[int, int, int]]:
    """Every (track, stem, offset) of the 1 s grid whose float64 RMS reaches the gate."""
    out = set()
    for t in range(3):
        for s in range(4):
            x = _source(t, s)
            for o in range(0, len(x) - L + 1, L):
                if 10 * np.log10(np.mean(x[o : o + L] ** 2) + 1e-12) >= SILENCE_DB:
                    out.add((t, s, o))
    return out


@pytest.fixture(scope="module")
def musdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("musdb")
    for t in range(3):
        folder = root / "train" / f"t{t}"  # names whose sha1 keeps them out of "valid"
        folder.mkdir(parents=True)
        for s, stem in enumerate(STEMS):
            sf.write(folder / f"{stem}.wav", _source(t, s), SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def packed(musdb: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("pack") / "small"
    summary = pack_segments(musdb, out, segment_seconds=SEG, max_mib=3.0, progress=False)
    return summary, out


def _track_id(ds: PackedSegments, t: int) -> int:
    return int(ds.tracks[t].name.removeprefix("t"))


def test_budget_round_robin_and_silence(packed: tuple[dict, Path]) -> None:
    summary, out = packed
    size = out.with_suffix(".npy").stat().st_size + out.with_suffix(".json").stat().st_size
    assert size == summary["bytes"] <= 3.0 * MIB
    n = summary["segments"]
    assert (n + 1) * 2 * L * 2 > 3.0 * MIB - 64 * 1024  # the budget is used, not wasted
    ds = PackedSegments(out.with_suffix(".json"))
    assert len(ds) == n and ds.segment == L and ds.stems == STEMS
    loud = _loud_reference()
    rows = {(_track_id(ds, t), s, o) for t, s, o in ds.index.tolist()}
    assert len(rows) == n and rows <= loud  # no silent segment, no duplicate
    assert all((t, s) != SILENT for t, s, _ in rows)
    assert all(o < SECONDS / 2 * SR for t, s, o in rows if (t, s) == HALF)
    # Round-robin: every track is used and per-track offset counts differ by at most one.
    offsets = Counter(t for t, o in {(t, o) for t, _, o in rows})
    assert sorted(offsets) == [0, 1, 2] and max(offsets.values()) - min(offsets.values()) <= 1
    # All loud stems of an offset are packed together (except the last, partial group).
    groups = {(t, o) for t, _, o in rows}
    partial = [
        g for g in groups
        if {s for t, s, o in rows if (t, o) == g} != {s for t, s, o in loud if (t, o) == g}
    ]  # fmt: skip
    assert len(partial) <= 1
    per_stem = Counter(STEMS[s] for _, s, _ in rows)
    assert summary["seconds_per_stem"] == {k: per_stem[k] * SEG for k in STEMS}


def test_segments_equal_the_source_within_int16(packed: tuple[dict, Path]) -> None:
    _, out = packed
    ds = PackedSegments(out)
    found_quiet = False
    for i in range(len(ds)):
        item = ds[i]
        t, s, o = _track_id(ds, item["track"]), item["stem"], item["offset"]
        assert item["audio"].dtype == torch.float32 and item["audio"].shape == (2, L)
        ref = _source(t, s)[o : o + L].T
        got = item["audio"].double().numpy()
        err = got - ref
        snr = 10 * np.log10(np.sum(ref**2) / (np.sum(err**2) + 1e-30))
        assert snr > 80.0, (t, s, o, snr)
        step = float(ds.scales[i]) / 32767
        assert np.abs(err).max() <= 0.5 * step + 1e-6 * float(ds.scales[i])
        assert float(ds.scales[i]) == pytest.approx(np.abs(ref).max(), rel=1e-6)
        if (t, s) == QUIET:
            found_quiet = True
            # One global full-scale int16 step would lose the quiet stem's resolution.
            naive = np.round(ref * 32767) / 32767
            naive_snr = 10 * np.log10(np.sum(ref**2) / np.sum((naive - ref) ** 2))
            assert naive_snr < 65.0 < 80.0 < snr
    assert found_quiet


def test_deterministic_for_a_seed(musdb: Path, packed: tuple[dict, Path], tmp_path: Path) -> None:
    _, out = packed
    again = pack_segments(musdb, tmp_path / "a", segment_seconds=SEG, max_mib=3.0, progress=False)
    first = json.loads(out.with_suffix(".json").read_text())["segments"]
    assert json.loads(again["json"].read_text())["segments"] == first
    assert again["npy"].read_bytes() == out.with_suffix(".npy").read_bytes()
    other = pack_segments(
        musdb, tmp_path / "b", segment_seconds=SEG, max_mib=3.0, seed=1, progress=False
    )
    assert json.loads(other["json"].read_text())["segments"] != first


def test_large_budget_packs_every_loud_segment(musdb: Path, tmp_path: Path) -> None:
    summary = pack_segments(musdb, tmp_path / "all", segment_seconds=SEG, max_mib=100.0,
                            progress=False)  # fmt: skip
    ds = PackedSegments(summary["json"])
    assert {(_track_id(ds, t), s, o) for t, s, o in ds.index.tolist()} == _loud_reference()


def test_open_dataset_serves_the_pack(packed: tuple[dict, Path]) -> None:
    _, out = packed
    ds = PackedSegments(out)
    for path in (out, out.with_suffix(".json"), out.with_suffix(".npy")):
        assert detect_layout(path) == "pack"
        opened = open_dataset(path, segment_seconds=SEG, cache_dir="unused")
        assert isinstance(opened, fxdata.PackedSegments) and len(opened) == len(ds)
    opened = open_dataset(out)
    for i in (0, len(ds) - 1):
        a, b = opened[i], ds[i]
        assert torch.equal(a["audio"], b["audio"])
        assert (a["track"], a["stem"], a["offset"]) == (b["track"], b["stem"], b["offset"])
    assert opened.source.tracks[a["track"]].name.startswith("t")
    sub = open_dataset(out, "all", ("vocals", "drums"), segment_seconds=SEG, sample_rate=44100)
    assert sub.stems == ("vocals", "drums") and sub.split == opened.split == "train"
    with pytest.raises(ValueError, match="train split, not valid"):
        open_dataset(out, "valid")
    with pytest.raises(ValueError, match="segments of 1 s, not 2 s"):
        open_dataset(out, segment_seconds=2.0)
    with pytest.raises(ValueError, match="do not apply"):
        open_dataset(out, mode="track")
    with pytest.raises(ValueError, match="22050 Hz"):
        open_dataset(out, sample_rate=22050)


def test_sample_and_stem_subset(packed: tuple[dict, Path]) -> None:
    _, out = packed
    ds = PackedSegments(out)
    rng = np.random.default_rng(3)
    draws = [ds.sample(rng, stem=2) for _ in range(20)]
    assert all(d["stem"] == 2 for d in draws)
    first = [ds.sample(np.random.default_rng(5))["offset"] for _ in range(1)]
    assert first == [ds.sample(np.random.default_rng(5))["offset"]]
    stems = Counter(ds.sample(rng)["stem"] for _ in range(400))
    assert set(stems) == set(np.unique(ds.index[:, 1]).tolist())
    assert min(stems.values()) > 400 / len(stems) / 2  # stem types drawn uniformly
    sub = PackedSegments(out, stems=("vocals", "drums"))
    assert sub.stems == ("vocals", "drums") and set(sub.index[:, 1].tolist()) <= {0, 1}
    full_rows = [r for r in ds.index.tolist() if STEMS[r[1]] in ("vocals", "drums")]
    assert len(sub) == len(full_rows)
    for i in range(len(sub)):
        item = sub[i]
        j = int(sub.rows[i])
        assert STEMS[int(ds.index[j, 1])] == sub.stems[item["stem"]]
        assert torch.equal(item["audio"], ds[j]["audio"])
    with pytest.raises(ValueError, match="not \\['guitar'\\]"):
        PackedSegments(out, stems=("guitar",))


def test_dataloader_with_two_workers(packed: tuple[dict, Path]) -> None:
    _, out = packed
    ds = open_dataset(out)
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    audio = torch.cat([b["audio"] for b in batches])
    assert audio.shape == (len(ds), 2, L)
    assert torch.equal(audio, torch.stack([ds[i]["audio"] for i in range(len(ds))]))
    assert torch.cat([b["offset"] for b in batches]).tolist() == ds.index[:, 2].tolist()


def test_interrupted_write_leaves_no_pack(
    musdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "p" / "x"
    real = pack_module._write_npy

    def broken(tmp: str, rows: list[np.ndarray]) -> None:
        real(tmp, rows)
        raise KeyboardInterrupt

    monkeypatch.setattr(pack_module, "_write_npy", broken)
    with pytest.raises(KeyboardInterrupt):
        pack_segments(musdb, out, segment_seconds=SEG, max_mib=1.0, progress=False)
    assert list(out.parent.iterdir()) == []
    monkeypatch.setattr(pack_module, "_write_npy", real)
    pack_segments(musdb, out, segment_seconds=SEG, max_mib=1.0, progress=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.json", "x.npy"]

    def no_json(path: object, text: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pack_module, "atomic_write_text", no_json)
    with pytest.raises(OSError, match="disk full"):
        pack_segments(musdb, out, segment_seconds=SEG, max_mib=2.0, progress=False)
    assert list(out.parent.iterdir()) == []  # neither the new array nor the old JSON


def test_bad_input(musdb: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no tracks"):
        pack_segments(tmp_path / "empty", tmp_path / "o", progress=False)
    silent = tmp_path / "silent" / "train" / "song"
    silent.mkdir(parents=True)
    for stem in STEMS:
        sf.write(silent / f"{stem}.wav", np.zeros((2 * SR, 2)), SR, subtype="FLOAT")
    with pytest.raises(ValueError, match="nothing to pack"):
        pack_segments(tmp_path / "silent", tmp_path / "o", segment_seconds=SEG, progress=False)
    with pytest.raises(ValueError, match="too small for one segment"):
        pack_segments(musdb, tmp_path / "o", segment_seconds=SEG, max_mib=0.1, progress=False)
    assert not list(tmp_path.glob("o*"))


def test_cli_pack(musdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli" / "pack"
    argv = ["corpus", "pack", str(musdb), "--out", str(out), "--max-mib", "1", "--seconds", "1"]
    assert main([*argv, "--no-progress"]) == 0
    assert "5 segments from 2 of 3 tracks" in capsys.readouterr().out  # 4 stems + 1
    assert len(PackedSegments(out)) == 5  # floor((1 MiB - metadata) / 176 400 B)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["corpus", "pack", str(empty), "--out", str(out), "--no-progress"]) == 1
    assert "no tracks" in capsys.readouterr().err


def _copy_pack(packed: tuple[dict, Path], folder: Path) -> tuple[Path, dict]:
    """A private copy of the module's pack (``<folder>/p.json``, ``p.npy``) and its JSON."""
    _, out = packed
    folder.mkdir(parents=True, exist_ok=True)
    meta = json.loads(out.with_suffix(".json").read_text())
    meta["npy"] = "p.npy"
    (folder / "p.npy").write_bytes(out.with_suffix(".npy").read_bytes())
    return folder / "p.json", meta


@pytest.mark.parametrize(
    "text",
    [
        '{"format": "mixfx-segment-pack", "version": 1, "dtype": "int16", "npy": "p.np',
        "{not json at all",
        "",
    ],
    ids=["truncated", "garbage", "empty"],
)
def test_malformed_pack_json_is_named_as_such(
    packed: tuple[dict, Path], tmp_path: Path, text: str
) -> None:
    meta_path, _ = _copy_pack(packed, tmp_path)
    meta_path.write_text(text)
    for opener in (open_dataset, PackedSegments):
        for path in (meta_path, tmp_path / "p", tmp_path / "p.npy"):
            with pytest.raises(ValueError, match="malformed") as info:
                opener(path)
            message = str(info.value)
            assert str(meta_path) in message and "does not exist" not in message


def test_pack_json_missing_fields_is_named(packed: tuple[dict, Path], tmp_path: Path) -> None:
    meta_path, meta = _copy_pack(packed, tmp_path)
    del meta["segments"]["scale"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"malformed.*scale") as info:
        PackedSegments(meta_path)
    assert str(meta_path) in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 0.0, -0.5])
def test_bad_scale_in_pack_json_is_refused(
    packed: tuple[dict, Path], tmp_path: Path, bad: float
) -> None:
    meta_path, meta = _copy_pack(packed, tmp_path)
    meta["segments"]["scale"][3] = bad
    meta_path.write_text(json.dumps(meta))  # json writes NaN / Infinity, and reads them back
    for opener in (open_dataset, PackedSegments):
        with pytest.raises(ValueError, match=r"segment 3\b.*scale") as info:
            opener(meta_path)
        assert str(meta_path) in str(info.value)
    meta["segments"]["scale"][3] = 0.25  # the same pack with a good scale serves finite audio
    meta_path.write_text(json.dumps(meta))
    audio = PackedSegments(meta_path)[3]["audio"]
    assert torch.isfinite(audio).all() and 0 < float(audio.abs().max()) <= 0.25
