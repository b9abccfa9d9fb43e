"""The audio a person hands over, read and checked once for ``mixfx transfer`` and the web page.

A song is one mix file or four stem files named ``drums``, ``bass``, ``other`` and ``vocals``
(any of :data:`AUDIO_SUFFIXES`). :func:`read_audio_file` reads one file after checking its
header (so a file over ``max_seconds`` is refused before it is decoded); :func:`group_stems`
finds the four stems among named files; :func:`read_stems` reads them and checks that they
share one rate. Every problem is the caller's exception type (``CLIError``, ``AppError``) with a
message that names the file and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from fxdsp.registry import STEMS

__all__ = ["AUDIO_SUFFIXES", "group_stems", "read_audio_file", "read_stems"]

#: File suffixes taken as audio (what libsndfile reads).
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")

T = TypeVar("T")


def read_audio_file(
    path: Path,
    label: str,
    error: Callable[[str], Exception],
    *,
    min_seconds: float,
    max_seconds: float | None = None,
) -> tuple[Any, int]:
    """One audio file as ``(float32 tensor (channels, samples), rate)``, checked.

    Args:
        path: the file.
        label: how messages name it (``"the input stem /x/drums.wav"``).
        error: the exception type raised with a message.
        min_seconds: the shortest accepted length.
        max_seconds: the longest (None: no limit).

    Raises:
        error: an empty file, not audio, no samples, too short or too long, more than two
            channels, a decoding error, NaN or Inf samples.
    """
    import numpy as np
    import soundfile as sf
    import torch

    if path.stat().st_size == 0:
        raise error(f"{label} is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception:  # libsndfile raises several types for files it cannot parse
        raise error(
            f"cannot read {label}: not an audio file soundfile can read (WAV, FLAC, OGG, ...)"
        ) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise error(f"{label} is empty (no samples)")
    seconds = info.frames / info.samplerate
    if max_seconds is not None and seconds > max_seconds:
        raise error(f"{label} is {seconds:.1f} s long; at most {max_seconds:g} s are accepted")
    if seconds < min_seconds:
        raise error(f"{label} is too short ({seconds:.3f} s; at least {min_seconds:g} s)")
    if info.channels > 2:
        raise error(f"{label} has {info.channels} channels (mono or stereo expected)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:
        raise error(f"{label} cannot be decoded: {err}") from None
    if not np.isfinite(data).all():
        raise error(f"{label} contains NaN or Inf samples")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)


def group_stems(
    named: Iterable[tuple[str, T]],
    label: str,
    error: Callable[[str], Exception],
    *,
    others: str = "ignore",
) -> dict[str, T]:
    """The four stems among named files: ``{stem: item}`` in :data:`STEMS` order.

    Args:
        named: ``(file name, item)`` pairs; a file is a stem when its name without the suffix
            is a stem's (any case) and its suffix one of :data:`AUDIO_SUFFIXES`.
        label: how messages name the song (``"the input folder /x"``).
        error: the exception type raised with a message.
        others: ``"ignore"`` other files (a folder) or ``"refuse"`` them (an upload).

    Raises:
        error: a file that is not a stem (``others="refuse"``), two files for one stem, a
            missing stem.
    """
    if others not in ("ignore", "refuse"):
        raise ValueError(f"others must be 'ignore' or 'refuse', got {others!r}")
    found: dict[str, list[tuple[str, T]]] = {s: [] for s in STEMS}
    for name, item in named:
        p = Path(name)
        stem = p.stem.lower()
        if stem in found and p.suffix.lower() in AUDIO_SUFFIXES:
            found[stem].append((name, item))
        elif others == "refuse":
            raise error(
                f"{label}: {name!r} is not a stem file; give one mix file, or four stems named "
                f"{', '.join(STEMS)} ({', '.join(AUDIO_SUFFIXES)})"
            )
    twice = {s: [n for n, _ in f] for s, f in found.items() if len(f) > 1}
    if twice:
        stem, names = next(iter(twice.items()))
        raise error(f"{label} has more than one file for the {stem} ({', '.join(names)})")
    missing = [s for s, f in found.items() if not f]
    if missing:
        raise error(
            f"{label} has no stem(s) {', '.join(missing)} (four are needed: "
            f"{'/'.join(STEMS)} as {', '.join(AUDIO_SUFFIXES)})"
        )
    return {s: f[0][1] for s, f in found.items()}


def read_stems(
    files: dict[str, tuple[Path, str]],
    label: str,
    error: Callable[[str], Exception],
    **limits: float | None,
) -> tuple[dict[str, Any], int]:
    """Read grouped stems (``{stem: (path, how messages name it)}``) with
    :func:`read_audio_file` (``limits``: its ``min_seconds``, ``max_seconds``); they must share
    one rate.

    Raises:
        error: a bad file, or stems at different rates.
    """
    stems, rates = {}, {}
    for stem, (path, name) in files.items():
        stems[stem], rates[stem] = read_audio_file(path, name, error, **limits)  # type: ignore[arg-type]
    if len(set(rates.values())) > 1:
        listed = ", ".join(f"{k} {v} Hz" for k, v in rates.items())
        raise error(f"{label}: the stems have different sample rates ({listed})")
    return stems, next(iter(rates.values()))
