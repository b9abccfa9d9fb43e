"""The ``mixfx`` command line: the installed console script, and ``main`` on bad arguments."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from fxdsp.cli import main

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
    for word in ("demo", "version"):
        assert word in proc.stdout


def test_console_script_demo_help_lists_its_options() -> None:
    proc = _run("demo", "--help")
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
        (["demo", "--seconds", "-1"], "--seconds: duration in seconds must be in [1, 600]"),
        (["demo", "--seconds", "nan"], "argument --seconds: duration in seconds must be in"),
        (["demo", "--seconds", "abc"], "argument --seconds: expected a number"),
        (["demo", "--seed", "1.5"], "argument --seed: expected an integer"),
        (["demo", "--sample-rate", "8000"], "argument --sample-rate: sample rate in Hz must be in"),
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
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
    assert main(["demo", "--out", str(target), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mixfx demo: error:") and "is not a folder" in err, err
    assert target.read_text() == "not a folder"


def test_unknown_device_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--device", "toaster"]) == 1
    assert "unknown device 'toaster'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_without_a_gpu_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--device", "cuda"]) == 1
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
    assert main(["demo", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"'{module}'" in err and f"pip install 'mixfx[{extra}]'" in err, err
    assert list(tmp_path.iterdir()) == []


def test_library_import_does_not_pull_optional_packages() -> None:
    code = (
        "import sys, numba, torch; before = set(sys.modules); import fxdsp, fxdsp.cli; "
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


def test_demo_through_main_at_48k(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nested" / "demo"
    argv = ["demo", "--out", str(out), "--seconds", "1", "--sample-rate", "48000", "--seed", "3"]
    assert main([*argv, "--no-progress"]) == 0
    report = capsys.readouterr().out
    for name in ("dry.wav", "wet.wav", "spectra.png", "summary.json"):
        assert (out / name).is_file()
        assert str(out / name) in report
    info = sf.info(str(out / "wet.wav"))
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, 48000)
    assert info.subtype == "FLOAT"


def test_python_m_experiments_demo_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.demo", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--sample-rate" in proc.stdout


def test_fxnorm_stats_subcommand_writes_loadable_stats(tmp_path) -> None:
    """``mixfx fxnorm-stats`` reaches fxdsp.normalize.stats_main; bad folders give exit 1."""
    import numpy as np
    import soundfile as sf

    from fxdsp.cli import main
    from fxdsp.normalize import FxNormStats

    rng = np.random.default_rng(0)
    for song in ("a", "b"):
        folder = tmp_path / "data" / song
        folder.mkdir(parents=True)
        for stem in ("drums", "bass", "other", "vocals"):
            audio = 0.1 * rng.standard_normal((44100, 2)) * np.linspace(0, 1, 44100)[:, None] ** 2
            sf.write(folder / f"{stem}.wav", audio, 44100)
    out = tmp_path / "stats.json"
    assert main(["fxnorm-stats", str(tmp_path / "data"), "-o", str(out), "--no-progress"]) == 0
    stats = FxNormStats.from_json(out)
    assert set(stats.stems) == {"drums", "bass", "other", "vocals"}
    assert main(["fxnorm-stats", str(tmp_path / "missing"), "-o", str(out)]) == 1
    assert main(["fxnorm-stats", "--bogus-option"]) == 2
