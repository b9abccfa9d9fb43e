"""The ``mixfx`` command line (mixfx.cli): the installed console script, ``main`` on bad input."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from fxdsp import FxNormStats
from mixfx.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "mixfx"


def _script() -> str:
    assert SCRIPT.is_file(), (
        f"the console script {SCRIPT} is missing: install the project (./run setup)"
    )
    return str(SCRIPT)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_script(), *args], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )


def test_console_script_help_lists_the_subcommands() -> None:
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: mixfx")
    for word in ("demo", "effects-demo", "fxnorm-stats", "corpus", "transfer", "version"):
        assert word in proc.stdout


def test_console_script_effects_demo_help_lists_its_options() -> None:
    proc = _run("effects-demo", "--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("--out", "--seconds", "--seed", "--sample-rate", "--device"):
        assert option in proc.stdout


@pytest.mark.parametrize("args", [("version",), ("--version",)])
def test_console_script_version(args: tuple[str, ...]) -> None:
    proc = _run(*args)
    assert proc.returncode == 0, proc.stderr
    expected = f"mixfx {importlib.metadata.version('mixfx')} (torch {torch.__version__}"
    assert proc.stdout.startswith(expected), proc.stdout


def test_console_script_bad_command_exits_2() -> None:
    proc = _run("frobnicate")
    assert proc.returncode == 2
    assert "invalid choice: 'frobnicate'" in proc.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "a command is required"),
        (["frobnicate"], "invalid choice"),
        (["effects-demo", "--seconds", "-1"], "--seconds: duration in seconds must be in [1, 600]"),
        (["effects-demo", "--seconds", "nan"], "--seconds: duration in seconds must be in"),
        (["effects-demo", "--seconds", "abc"], "argument --seconds: expected a number"),
        (["effects-demo", "--seed", "1.5"], "argument --seed: expected an integer"),
        (["effects-demo", "--sample-rate", "8000"], "--sample-rate: sample rate in Hz must be in"),
        (["effects-demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["demo", "--method", "magic"], "argument --method: invalid choice: 'magic'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_output_path_that_is_a_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    assert main(["effects-demo", "--out", str(target), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mixfx effects-demo: error:") and "is not a folder" in err, err
    assert target.read_text() == "not a folder"


def test_unknown_device_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["effects-demo", "--out", str(tmp_path), "--device", "toaster"]) == 1
    assert "unknown device 'toaster'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_without_a_gpu_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["effects-demo", "--out", str(tmp_path), "--device", "cuda"]) == 1
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.parametrize(("module", "extra"), [("soundfile", "io"), ("matplotlib", "plot")])
def test_missing_optional_package_names_the_extra(
    module: str,
    extra: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    assert main(["effects-demo", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"'{module}'" in err and f"pip install 'mixfx[{extra}]'" in err, err
    assert list(tmp_path.iterdir()) == []


def test_library_import_does_not_pull_optional_packages() -> None:
    code = (
        "import sys, numba, torch; before = set(sys.modules); import fxdsp, mixfx.cli; "
        "extras = ('matplotlib', 'soundfile', 'tqdm', 'scipy', 'pyloudnorm', 'tensorboard', "
        "'yaml'); "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} & set(extras)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    # Plotting, audio I/O, progress bars and dev tools are extras: only a subcommand may import
    # them (torch and numba, core dependencies, may bring some along: only what fxdsp adds counts).
    assert proc.stdout.strip() == "[]", proc.stdout


def test_cli_import_is_light() -> None:
    """``mixfx --help`` builds its parser without importing torch or the libraries."""
    code = (
        "import sys, mixfx.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'numpy', 'numba', 'fxdsp', 'fxdata', 'soundfile', 'matplotlib'}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "[]", proc.stdout


def test_effects_demo_through_main_at_48k(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nested" / "demo"
    argv = ["effects-demo", "--out", str(out), "--seconds", "1", "--sample-rate", "48000",
            "--seed", "3"]  # fmt: skip
    assert main([*argv, "--no-progress"]) == 0
    report = capsys.readouterr().out
    for name in ("dry.wav", "wet.wav", "spectra.png", "summary.json"):
        assert (out / name).is_file()
        assert str(out / name) in report
    info = sf.info(str(out / "wet.wav"))
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, 48000)
    assert info.subtype == "FLOAT"


def test_python_m_mixfx_demo_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mixfx", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: mixfx demo")
    for option in ("--out", "--method", "--controller", "--cloner", "--data", "--device"):
        assert option in proc.stdout


# ------------------------------------------------------------------------------------------------
# mixfx fxnorm-stats
# ------------------------------------------------------------------------------------------------
def _stem_folder(root: Path, songs: tuple[str, ...] = ("a", "b")) -> Path:
    """``root/<song>/<stem>.wav`` for every stem: 1 s of rising noise, 44.1 kHz stereo."""
    rng = np.random.default_rng(0)
    for song in songs:
        folder = root / song
        folder.mkdir(parents=True)
        for stem in ("drums", "bass", "other", "vocals"):
            audio = 0.1 * rng.standard_normal((44100, 2)) * np.linspace(0, 1, 44100)[:, None] ** 2
            sf.write(folder / f"{stem}.wav", audio, 44100)
    return root


def test_fxnorm_stats_writes_loadable_stats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _stem_folder(tmp_path / "data")
    out = tmp_path / "new" / "stats.json"
    assert main(["fxnorm-stats", str(data), "-o", str(out), "--no-progress"]) == 0
    stats = FxNormStats.from_json(out)
    assert set(stats.stems) == {"drums", "bass", "other", "vocals"}
    assert all(st.count == 2 for st in stats.stems.values())
    assert stats.description == "computed from data" and stats.extra["skipped_files"] == 0
    assert f"wrote {out} (0 files skipped)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["fxnorm-stats", "--help"],
        ["fxnorm-stats", "-h"],
    ],
)
def test_fxnorm_stats_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """``mixfx fxnorm-stats --help`` failed with "unrecognized arguments: --help"."""
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mixfx fxnorm-stats") and "--output" in out, out


def test_fxnorm_stats_options_before_the_folder(tmp_path: Path) -> None:
    """``mixfx fxnorm-stats -o out.json DIR`` failed with "unrecognized arguments: -o"."""
    data = _stem_folder(tmp_path / "data", songs=("a",))
    out = tmp_path / "out.json"
    assert main(["fxnorm-stats", "--no-progress", "-o", str(out), str(data)]) == 0
    assert set(FxNormStats.from_json(out).stems) == {"drums", "bass", "other", "vocals"}


def test_fxnorm_stats_skips_bad_files_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupt or 0-byte file died with a raw LibsndfileError; a file with NaN samples
    aborted the run without naming the file. Each is now a warning naming it, and skipped."""
    data = _stem_folder(tmp_path / "data")
    (data / "a" / "drums.wav").write_bytes(b"")  # 0 bytes
    (data / "a" / "bass.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(64))
    nan = 0.1 * np.ones((44100, 2))
    nan[1000, 1] = np.nan
    sf.write(data / "b" / "vocals.wav", nan, 44100, subtype="FLOAT")
    out = tmp_path / "stats.json"
    assert main(["fxnorm-stats", str(data), "-o", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    for name, why in (
        ("a/drums.wav", "unreadable audio file"),
        ("a/bass.wav", "unreadable audio file"),
        ("b/vocals.wav", "1 NaN or Inf samples"),
    ):
        assert any(
            line.startswith("mixfx fxnorm-stats: warning: skipping")
            and name in line
            and why in line
            for line in lines
        ), err
    assert "Traceback" not in err
    stats = FxNormStats.from_json(out)
    counts = {stem: st.count for stem, st in stats.stems.items()}
    assert counts == {"drums": 1, "bass": 1, "other": 2, "vocals": 1}
    assert stats.extra["skipped_files"] == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{tmp}/missing"], "{tmp}/missing is not a folder"),
        (["{tmp}/empty"], "no stem files"),
        (["{tmp}/bad"], "no usable"),
        (["{tmp}/data", "-o", "{tmp}"], "is a folder; give a file name"),
        (["{tmp}/data", "-o", "{tmp}/data/a/drums.wav/x.json"], "error: "),
        (["{tmp}/data", "--n-fft", "8"], "FFT size must be in [16"),
    ],
)
def test_fxnorm_stats_bad_input_is_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _stem_folder(tmp_path / "data", songs=("a",))
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad" / "song").mkdir(parents=True)
    (tmp_path / "bad" / "song" / "drums.wav").write_bytes(b"")
    argv = [a.format(tmp=tmp_path) for a in argv]
    code = main(["fxnorm-stats", *argv, "--no-progress"])
    err = capsys.readouterr().err
    assert code == (2 if "--n-fft" in argv else 1), err
    assert message.format(tmp=tmp_path) in err, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("mixfx fxnorm-stats: error: "), err
