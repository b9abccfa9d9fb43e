"""Atomic writes leave the old file or the complete new one, never a partial file."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fxdsp.io import atomic_write, atomic_write_text


def test_atomic_write_text_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new content")
    assert path.read_text() == "new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    path.write_bytes(b"complete old file")

    def broken(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_bytes() == b"complete old file"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


# -- a real process killed in the middle of a write -----------------------------------------
# The child loads fxdsp/io.py by path (no torch import: fast), starts an atomic write whose
# writer puts half a file on disk, says so on stdout and sleeps until a signal arrives.
_CHILD = """
import importlib.util, signal, sys, time
# Ctrl-C raises KeyboardInterrupt even when the test runs in a background job (a shell starts
# those with SIGINT ignored, and children inherit that).
signal.signal(signal.SIGINT, signal.default_int_handler)
spec = importlib.util.spec_from_file_location("fxdsp_io", sys.argv[1])
io = importlib.util.module_from_spec(spec)
spec.loader.exec_module(io)

def write(tmp):
    with open(tmp, "wb") as fh:
        fh.write(b"half of the new")
    print("WRITING", flush=True)
    time.sleep(60)

io.atomic_write(sys.argv[2], write)
"""
IO_PY = Path(__file__).resolve().parents[1] / "fxdsp" / "io.py"


def _start_writer(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(IO_PY), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the temporary file holds half the content
    assert line.strip() == "WRITING", proc.stderr.read() if proc.stderr else ""
    return proc


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


@pytest.mark.parametrize(
    ("sig", "status"),
    [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)],
    ids=["SIGTERM", "KeyboardInterrupt"],
)
def test_killed_writer_leaves_old_file_and_no_temporary(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"complete old file")
    proc = _start_writer(path)
    assert len(_parts(tmp_path)) == 1  # the half-written temporary exists while it writes
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode == status  # still ends by its signal (Python re-raises SIGINT)
    assert path.read_bytes() == b"complete old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_sigkill_leftover_is_removed_by_the_next_write_but_a_live_writer_is_not_touched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"complete old file")
    proc = _start_writer(path)
    proc.kill()  # SIGKILL: nothing can clean up in the process itself
    proc.wait(timeout=30)
    assert path.read_bytes() == b"complete old file"
    dead_parts = _parts(tmp_path)
    assert len(dead_parts) == 1  # left behind by the dead writer

    live = _start_writer(path)  # the next write of the same target removes it first ...
    try:
        live_parts = _parts(tmp_path)
        assert len(live_parts) == 1 and live_parts != dead_parts
        atomic_write_text(path, "new content")  # ... and never a running writer's temporary
        assert path.read_text() == "new content"
        assert _parts(tmp_path) == live_parts
        assert (tmp_path / live_parts[0]).read_bytes() == b"half of the new"
    finally:
        live.terminate()
        live.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
