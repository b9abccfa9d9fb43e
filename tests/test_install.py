"""A real, non-editable install: the wheel works without the source tree.

The project's files (tracked and new, as ``git ls-files`` lists them; without it, the packages,
``pyproject.toml`` and ``README.md``) are copied to a temporary folder, built into a wheel with
this venv's setuptools (``pip wheel --no-deps --no-build-isolation``: offline), and installed
into a fresh venv (``pip install --no-deps --no-index``). The installed ``mixfx`` then runs from
a temporary working directory, so that the checkout is not importable, with ``PYTHONPATH`` set
to this venv's site-packages for the dependencies (torch, numpy, soundfile, ...): an editable
install's ``.pth`` finder is not read from ``PYTHONPATH``, so ``mixfx`` and ``fxdsp`` can only
come from the fresh venv, and the test checks that they do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mixfx", "fxdsp", "fxdata", "fxencoder", "cloner")


def _source_files() -> list[str]:
    try:
        proc = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError):
        files = [
            p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*")
        ]
        return [*files, "pyproject.toml", "README.md"]
    return proc.stdout.splitlines()


def _copy_sources(dest: Path) -> None:
    for name in _source_files():
        if name.split("/")[0] not in (*PACKAGES, "pyproject.toml", "README.md", "LICENSE"):
            continue
        src = ROOT / name
        if src.is_file() and "__pycache__" not in name:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """(the fresh venv's bin folder, the environment to run it with, a working directory)."""
    base = tmp_path_factory.mktemp("install")
    src, wheels, env_dir, work = base / "src", base / "wheels", base / "venv", base / "work"
    for folder in (src, wheels, work):
        folder.mkdir()
    _copy_sources(src)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(src)],
        cwd=base,
    )  # fmt: skip
    (wheel,) = wheels.glob("mixfx-*.whl")
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    _run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--disable-pip-version-check", str(wheel)],
        cwd=base,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    env["MPLBACKEND"] = "Agg"
    return bin_dir, env, work


def test_installed_packages_come_from_the_fresh_venv(
    installed: tuple[Path, dict[str, str], Path],
) -> None:
    bin_dir, env, work = installed
    code = (
        "import json, fxdsp, fxdata, mixfx, mixfx.cli, mixfx.demo; "
        "from fxdsp import FxNormStats; "
        "print(json.dumps({'files': [m.__file__ for m in (fxdsp, fxdata, mixfx, mixfx.cli)], "
        "'stems': sorted(FxNormStats.corpus_default().stems)}))"
    )
    proc = _run([str(bin_dir / "python"), "-c", code], cwd=work, env=env)
    result = json.loads(proc.stdout)
    venv_dir = bin_dir.parent.resolve()
    for file in result["files"]:
        assert Path(file).resolve().is_relative_to(venv_dir), file
    # package data: the shipped statistics load from the installed package
    assert result["stems"] == ["bass", "drums", "other", "vocals"]


def test_installed_mixfx_help(installed: tuple[Path, dict[str, str], Path]) -> None:
    bin_dir, env, work = installed
    proc = _run([str(bin_dir / "mixfx"), "--help"], cwd=work, env=env)
    assert proc.stdout.startswith("usage: mixfx")
    for command in ("demo", "fxnorm-stats", "corpus", "version"):
        assert command in proc.stdout


def test_installed_mixfx_demo(installed: tuple[Path, dict[str, str], Path]) -> None:
    """The wheel carries the demo's example and the shipped models (package data): the
    installed demo runs the parametric method from them, outside the source tree."""
    bin_dir, env, work = installed
    out = work / "demo-out"
    cmd = [str(bin_dir / "mixfx"), "demo", "--out", str(out), "--method", "params",
           "--no-progress"]  # fmt: skip
    proc = _run(cmd, cwd=work, env=env)
    assert sorted(p.name for p in out.iterdir()) == [
        "comparison.png", "input.wav", "output.wav", "output_params.wav", "preset.json",
        "reference.wav", "summary.json", "target.wav",
    ]  # fmt: skip
    assert str(out / "output.wav") in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seconds"] == 6
    figures = summary["figures"]
    assert figures["params"]["mss_lr"] < figures["input unchanged"]["mss_lr"]


def test_installed_app_has_its_page(installed: tuple[Path, dict[str, str], Path]) -> None:
    """The wheel carries the web page's static files (package data)."""
    bin_dir, env, work = installed
    code = (
        "import json; from mixfx.app.server import STATIC; "
        "print(json.dumps([str(STATIC), sorted(p.name for p in STATIC.iterdir())]))"
    )
    proc = _run([str(bin_dir / "python"), "-c", code], cwd=work, env=env)
    where, names = json.loads(proc.stdout)
    assert not where.startswith(str(ROOT)) and names == ["app.css", "app.js", "index.html"]
