"""experiments.make_pairs on a small MUSDB18-HQ-layout folder written by the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from signals import music

import fxdata
import fxdsp
from experiments import make_pairs
from fxdata.triplets import draw_triplets

ROOT = Path(__file__).resolve().parents[1]

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

    # The files hold the library's draw for the same seed: same segments, same chain.
    segments = fxdata.open_dataset(
        tmp_path / "musdb", segment_seconds=2.0, cache_dir=tmp_path / "cache"
    )
    batch = draw_triplets(segments, 3, generator=torch.Generator().manual_seed(0))
    assert [{k: r[k] for k in ("stem", "A", "B", "chain")} for r in records] == batch.records()
    assert all(r["A"]["track"] != r["B"]["track"] for r in records)
    for i, rec in enumerate(records):
        a1, _ = sf.read(out / f"{i:02d}_A1.wav", dtype="float32")
        peak = max(float(np.abs(batch.a1[i].numpy()).max()), 1.0)  # louder files are scaled
        np.testing.assert_allclose(a1.T, batch.a1[i].numpy() / peak, rtol=0, atol=1e-7)
        assert rec["rms"]["A2"] == pytest.approx(float(batch.a2[i].square().mean().sqrt()))


def test_bad_data_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code = make_pairs.main(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "error" in capsys.readouterr().err


def _run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "experiments.make_pairs", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _assert_usage_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    """Status 2, no traceback, and the last stderr line names the problem (argparse style)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("make_pairs.py: error: "), proc.stderr
    for word in words:
        assert word in last, last


def test_bad_arguments_exit_2_before_any_data_is_read(tmp_path: Path) -> None:
    # --data names nothing: a data error would be status 1; the argument checks come first, and
    # the segment cache is never created.
    cache = tmp_path / "cache"
    common = ["--data", str(tmp_path / "missing"), "--cache-dir", str(cache), "--no-progress"]
    out_file = tmp_path / "taken.json"
    out_file.write_text("keep me")
    _assert_usage_error(_run_cli(*common, "--device", "bogus"), "--device", "bogus")
    _assert_usage_error(
        _run_cli(*common, "--out", str(out_file)), "--out", str(out_file), "existing file"
    )
    assert out_file.read_text() == "keep me"
    if not torch.cuda.is_available():
        _assert_usage_error(
            _run_cli(*common, "--device", "cuda", "--out", str(tmp_path / "o")),
            "CUDA is not available",
        )
    assert not cache.exists() and not (tmp_path / "o").exists()


def test_argument_checks_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as info:
        make_pairs.main([*base, "--fxnorm", str(tmp_path / "nostats.json")])
    assert info.value.code == 2 and "--fxnorm" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as info:
        make_pairs.main([*base[:2], "--out", str(tmp_path / "file" / "sub")])
    assert info.value.code == 2 and "inside the file" in capsys.readouterr().err
    assert make_pairs.check_device("cpu") is None
    assert "not a device" in (make_pairs.check_device("cuda:x") or "")
