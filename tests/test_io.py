"""Atomic writes leave the old file or the complete new one, never a partial file."""

from __future__ import annotations

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
