"""experiments.make_pairs on a small MUSDB18-HQ-layout folder written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from signals import music

import fxdsp
from experiments import make_pairs

SR = 44100


def write_musdb(root: Path) -> None:
    for t, name in enumerate(("Artist A - Song", "Artist B - Song", "Artist C - Song")):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        mix = music(SR, 4.0, seed=t)
        for s, stem in enumerate(("drums", "bass", "other", "vocals")):
            sf.write(folder / f"{stem}.wav", (0.25 * np.roll(mix, 997 * s, axis=1)).T, SR)


def test_triplets_follow_one_chain_per_item(tmp_path: Path) -> None:
    write_musdb(tmp_path / "musdb")
    out = tmp_path / "pairs"
    argv = ["--data", str(tmp_path / "musdb"), "--out", str(out), "--items", "3", "--seconds", "2"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--no-progress", "--fxnorm", "none"]
    assert make_pairs.main(argv) == 0
    records = json.loads((out / "triplets.json").read_text())
    assert len(records) == 3
    for i, rec in enumerate(records):
        assert rec["stem"] in fxdsp.STEMS
        for key in ("A1", "A2", "B2"):
            audio, rate = sf.read(out / f"{i:02d}_{key}.wav")
            assert rate == SR and audio.shape == (2 * SR, 2) and np.isfinite(audio).all()
    assert (out / "spectra.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A2 and B2 are one draw applied to two contents; A2 recomputes from A1 exactly.
    trip = make_pairs.draw_triplets(
        tmp_path / "musdb", 3, 2.0, fxnorm="none", cache_dir=tmp_path / "cache", progress=False
    )
    again = fxdsp.Manipulator(trip["params"])(trip["A1"])
    torch.testing.assert_close(again, trip["A2"], rtol=0, atol=0)
    assert [rec["chain"] for rec in records] == [trip["params"].describe(i) for i in range(3)]
    assert all(m["A"]["track"] != m["B"]["track"] for m in trip["meta"])


def test_bad_data_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code = make_pairs.main(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "error" in capsys.readouterr().err
