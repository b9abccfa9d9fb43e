"""Tracks on disk: dataset layouts, track discovery and decoding (no caching, no segments).

Layouts (detected by :func:`detect_layout`):

- ``corpus``: the offline corpus (``corpus.json``, ``{train,valid,test}/<song>/<stem>.flac``).
- ``folders``: MUSDB18-HQ and alike, ``{train,test[,valid]}/<track>/<stem>.{wav,flac,...}``.
- ``flat``: any folder of tracks, ``<track>/<stem>.{wav,flac,...}``.
- ``stem.mp4``: MUSDB18's ``{train,test}/<track>.stem.mp4`` (needs the optional ``stempeg`` and
  ffmpeg: ``pip install 'mixfx[musdb]'``).
- ``pack``: a segment pack (``<out>.json`` + ``<out>.npy``); :func:`find_pack` recognizes one,
  :mod:`fxdata.pack` writes and reads it.

The validation split is reproducible: a layout without a ``valid`` folder takes the tracks whose
``sha1(track name)`` maps below ``valid_fraction`` out of ``train``.

This is the bottom layer of :mod:`fxdata`: :mod:`fxdata.pack` and :mod:`fxdata.datasets` both
import it, and it imports neither.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fxdata.audio import DEFAULT_SAMPLE_RATE, load_audio, resample, to_stereo
from fxdsp.registry import STEMS

__all__ = [
    "AUDIO_EXTENSIONS",
    "MP4_STREAMS",
    "PACK_FORMAT",
    "SPLITS",
    "MultitrackDataset",
    "Track",
    "decode_count",
    "detect_layout",
    "find_pack",
    "find_tracks",
    "not_a_pack",
    "pack_files",
    "pack_prefix",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
SPLITS = ("train", "valid", "test")
# Stream order inside MUSDB18's .stem.mp4 files.
MP4_STREAMS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}
#: The ``format`` a segment pack's JSON declares (its first key).
PACK_FORMAT = "mixfx-segment-pack"

_DECODES = 0  # tracks decoded by this process (the cache tests read it)


def pack_prefix(path: str | Path) -> Path:
    """A pack's ``<out>`` from ``<out>``, ``<out>.json`` or ``<out>.npy``."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".npy") else path


def pack_files(path: str | Path) -> tuple[Path, Path]:
    """The ``(<out>.json, <out>.npy)`` paths of the pack named by ``path`` (existing or not)."""
    prefix = pack_prefix(path)
    return prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".npy")


def find_pack(path: str | Path) -> Path | None:
    """The JSON file of the pack at ``path`` (``<out>``, ``<out>.json`` or ``<out>.npy``), or None.

    Args:
        path: a pack's prefix, JSON file or ``.npy`` file.

    Returns:
        The JSON path when it exists beside its ``.npy`` and declares :data:`PACK_FORMAT`.
    """
    path = Path(path)
    if path.is_dir():
        return None
    meta, npy = pack_files(path)
    if not (meta.is_file() and npy.is_file()):
        return None
    try:
        with open(meta, encoding="utf-8") as fh:
            head = fh.read(4096)  # "format" is written first
    except (OSError, UnicodeDecodeError):
        return None
    return meta if f'"format": "{PACK_FORMAT}"' in head else None


def not_a_pack(path: str | Path) -> str:
    """Why ``path`` (not a folder, and not a pack :func:`find_pack` recognizes) cannot be opened.

    Names the file at fault: a pack JSON that does not parse is *malformed*, one that parses but
    declares another format is not a pack, a JSON or ``.npy`` without its partner is an
    incomplete pack, and a path to nothing does not exist.
    """
    path = Path(path)
    meta, npy = pack_files(path)
    if meta.is_file():
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            return f"malformed segment pack JSON {meta}: {err}"
        if not isinstance(data, dict) or data.get("format") != PACK_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            return f"{meta} is not a segment pack JSON (format {found!r}, expected {PACK_FORMAT!r})"
        if not npy.is_file():
            return f"incomplete segment pack: {npy} is missing beside {meta}"
        return f"malformed segment pack JSON {meta}: the format key must come first"
    if npy.is_file():
        return f"incomplete segment pack: {meta} is missing beside {npy}"
    if path.exists():
        return f"{path} is neither a dataset folder nor a segment pack (<out>.json + <out>.npy)"
    return f"dataset folder {path} does not exist"


def decode_count() -> int:
    """How many tracks this process has decoded from audio files (cache misses)."""
    return _DECODES


@dataclass(frozen=True)
class Track:
    """One multitrack song on disk.

    Attributes:
        name: the track's name (its folder, or the .stem.mp4 file without extension).
        split: ``train``, ``valid`` or ``test``.
        files: ``{stem: path}`` (``mixture`` included when present).
        mp4: the track is a MUSDB ``.stem.mp4`` (all stems in ``files`` point to that file).
    """

    name: str
    split: str
    files: dict[str, str]
    mp4: bool = False


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") / 2**64


def _stem_files(folder: Path) -> dict[str, str]:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
            files.setdefault(path.stem, str(path))
    return files


def detect_layout(root: str | Path) -> str:
    """The layout of a dataset: ``corpus``, ``stem.mp4``, ``folders``, ``flat`` or ``pack``.

    Args:
        root: the dataset folder, or a segment pack's prefix, ``.json`` or ``.npy`` file.

    Returns:
        The layout's name (see the module docstring).

    Raises:
        ValueError: ``root`` is not a folder or holds no recognizable tracks.
    """
    root = Path(root)
    if not root.is_dir():
        if find_pack(root) is not None:
            return "pack"
        raise ValueError(not_a_pack(root))
    if (root / "corpus.json").is_file():
        return "corpus"
    split_dirs = [root / s for s in SPLITS if (root / s).is_dir()]
    if any(any(d.glob("*.stem.mp4")) for d in split_dirs) or any(root.glob("*.stem.mp4")):
        return "stem.mp4"
    if split_dirs:
        return "folders"
    if any(p.is_dir() and _stem_files(p) for p in root.iterdir()):
        return "flat"
    raise ValueError(
        f"no tracks in {root}: expected train|test/<track>/<stem>.wav (MUSDB18-HQ), a corpus "
        "with corpus.json, <track>/<stem>.wav folders or .stem.mp4 files"
    )


def find_tracks(
    root: str | Path,
    split: str = "train",
    stems: Sequence[str] = STEMS,
    *,
    valid_fraction: float = 0.1,
) -> list[Track]:
    """The tracks of one split of a dataset folder, sorted by name.

    Args:
        root: the dataset folder.
        split: ``train``, ``valid``, ``test`` or ``all``.
        stems: the stems a track must have; a track missing one is skipped with a warning.
        valid_fraction: share of ``train`` held out as ``valid`` where there is no ``valid``
            folder (by a hash of the track name).

    Returns:
        The tracks.
    """
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be one of train, valid, test, all; got {split!r}")
    root = Path(root)
    layout = detect_layout(root)
    if layout == "pack":
        raise ValueError(
            f"{root} is a segment pack, not a folder of tracks: open it with "
            "fxdata.open_dataset or fxdata.PackedSegments"
        )
    found: list[Track] = []
    if layout == "stem.mp4":
        for sub in ("", *SPLITS):
            for path in sorted((root / sub).glob("*.stem.mp4")) if (root / sub).is_dir() else []:
                name = path.name[: -len(".stem.mp4")]
                files = {stem: str(path) for stem in MP4_STREAMS}
                found.append(Track(name, sub or "train", files, mp4=True))
    elif layout == "flat":
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if files := _stem_files(folder):
                found.append(Track(folder.name, "train", files))
    else:
        for sub in SPLITS:
            if (root / sub).is_dir():
                for folder in sorted(p for p in (root / sub).iterdir() if p.is_dir()):
                    if not folder.name.startswith(".") and (files := _stem_files(folder)):
                        found.append(Track(folder.name, sub, files))
    has_valid = any(t.split == "valid" for t in found)
    tracks = []
    for track in found:
        track_split = track.split
        if not has_valid and track_split == "train" and _unit_hash(track.name) < valid_fraction:
            track_split = "valid"
        if split not in ("all", track_split):
            continue
        missing = [s for s in stems if s not in track.files]
        if missing:
            warnings.warn(
                f"skipping track {track.name} in {root}: no file for stem(s) {missing}",
                stacklevel=2,
            )
            continue
        tracks.append(Track(track.name, track_split, track.files, track.mp4))
    return tracks


def _mp4_stream_samples(info: Any, k: int, rate: int) -> int:
    """Samples in audio stream ``k`` by the container's duration (0 when it does not say)."""
    try:
        return round(info.duration(k) * rate)
    except (KeyError, TypeError, ValueError):
        return 0


def _mp4_stems(path: str, stems: Sequence[str], sample_rate: int) -> list[np.ndarray] | None:
    """Decode ``stems`` of a MUSDB ``.stem.mp4`` to float32 ``(2, samples)`` arrays, or ``None``.

    Reads with stempeg (imported lazily) and the ffmpeg/ffprobe programs. Stem ``k`` of
    :data:`MP4_STREAMS` is the ``k``-th *audio* stream, so a cover-art (attached picture) stream
    anywhere in the file does not shift the stems. Each stream is decoded at its own rate and
    resampled here (:func:`~fxdata.audio.resample`) when that differs from ``sample_rate``.

    Args:
        path: the ``.stem.mp4`` file.
        stems: stem names, keys of :data:`MP4_STREAMS`.
        sample_rate: the wanted rate in Hz.

    Returns:
        One stereo float32 array per stem, or ``None`` (with a warning) for an unreadable file,
        a missing stream or a stream that decodes to no samples.

    Raises:
        ImportError: stempeg is not installed.
        RuntimeError: the ffmpeg or ffprobe program is not on ``PATH``.
    """
    try:
        import stempeg
    except ImportError:
        raise ImportError(
            f"reading {path} needs the optional package 'stempeg' and the ffmpeg program: "
            "pip install 'mixfx[musdb]' (and apt-get install ffmpeg)"
        ) from None
    missing = [prog for prog in ("ffmpeg", "ffprobe") if shutil.which(prog) is None]
    if missing:
        raise RuntimeError(
            f"reading {path} needs the program(s) {missing} on PATH (Debian: apt-get install "
            "--no-install-recommends ffmpeg; ./run test installs it when run as root)"
        )
    try:
        info = stempeg.Info(path)  # one ffprobe call, shared by the stream reads below
    except Exception as err:  # ffmpeg-python raises ffmpeg.Error; a bad file may raise others
        stderr = getattr(err, "stderr", None)  # ffprobe's own message, when there is one
        why = stderr.decode(errors="replace").strip().splitlines()[-1:] if stderr else []
        warnings.warn(f"skipping unreadable stem file {path}: {' '.join(why) or err}", stacklevel=3)
        return None
    streams = info.audio_stream_idx()  # container indices of the audio streams, in order
    out = []
    for stem in stems:
        k = MP4_STREAMS[stem]
        if k >= len(streams):
            warnings.warn(
                f"skipping stem file {path}: it has {len(streams)} audio stream(s), the {stem} "
                f"stem is audio stream {k}",
                stacklevel=3,
            )
            return None
        rate = info.sample_rate(k)
        try:
            audio, _ = stempeg.read_stems(
                path,
                stem_id=streams[k],
                always_3d=True,
                dtype=np.float32,
                info=info,
                sample_rate=rate,
            )
        except Exception as err:
            warnings.warn(f"skipping unreadable stem file {path} ({stem}): {err}", stacklevel=3)
            return None
        audio = np.ascontiguousarray(np.asarray(audio, dtype=np.float32)[0].T)  # (ch, samples)
        if audio.shape[0] == 0 or audio.shape[1] == 0:
            warnings.warn(
                f"skipping stem file {path}: its {stem} stream (audio stream {k}) decoded to no "
                "samples",
                stacklevel=3,
            )
            return None
        # ffmpeg trims the AAC encoder's priming samples (the mp4 edit list) but keeps the
        # padding of the last frame: cut to the stream's declared duration.
        declared = _mp4_stream_samples(info, k, rate)
        if 0 < declared < audio.shape[1]:
            audio = audio[:, :declared]
        if not np.all(np.isfinite(audio)):
            warnings.warn(f"stem file {path} ({stem}) holds NaN or Inf: set to 0", stacklevel=3)
            audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
        audio = to_stereo(audio)
        if rate != sample_rate:
            audio = resample(audio, rate, sample_rate)
        out.append(audio)
    return out


def _load_track(track: Track, stems: Sequence[str], sample_rate: int) -> np.ndarray | None:
    """Decode all ``stems`` of a track into ``(stems, 2, samples)`` float32, or ``None``."""
    global _DECODES
    _DECODES += 1
    if track.mp4:
        path = next(iter(track.files.values()))  # every stem points to the same file
        audios = _mp4_stems(path, stems, sample_rate)
        if audios is None:
            warnings.warn(f"skipping track {track.name}: {path} cannot be used", stacklevel=2)
            return None
    else:
        audios = []
        for stem in stems:
            path = track.files[stem]
            audio = load_audio(path, sample_rate)
            if audio is None:
                warnings.warn(
                    f"skipping track {track.name}: its {stem} stem {path} cannot be used",
                    stacklevel=2,
                )
                return None
            audios.append(audio)
    n = max(a.shape[1] for a in audios)
    if min(a.shape[1] for a in audios) < n - sample_rate // 10:
        warnings.warn(
            f"track {track.name}: stems differ in length ({[a.shape[1] for a in audios]} "
            "samples); the shorter ones are padded with silence",
            stacklevel=2,
        )
    out = np.zeros((len(stems), 2, n), dtype=np.float32)
    for i, a in enumerate(audios):
        out[i, :, : a.shape[1]] = a
    return out


class MultitrackDataset(Dataset):
    """The tracks of one split of a dataset folder, decoded whole on access.

    Item ``i`` is a float32 tensor ``(len(stems), 2, samples)`` at ``sample_rate`` (stereo; a stem
    that cannot be decoded is silence, with a warning). For training, wrap it in
    :class:`SegmentDataset`, which decodes once and caches.

    Args:
        root: the dataset folder (any layout of :func:`detect_layout`).
        split: ``train``, ``valid``, ``test`` or ``all``.
        stems: the stems to load, in order (``mixture`` may be one).
        sample_rate: the output rate in Hz (other rates are resampled).
        valid_fraction: see :func:`find_tracks`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        stems: Sequence[str] = STEMS,
        *,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        valid_fraction: float = 0.1,
    ) -> None:
        self.root = Path(root)
        self.layout = detect_layout(self.root)
        self.split = split
        self.stems = tuple(stems)
        self.sample_rate = int(sample_rate)
        self.tracks = find_tracks(root, split, self.stems, valid_fraction=valid_fraction)
        if not self.tracks:
            raise ValueError(f"no {split} tracks with stems {list(self.stems)} in {root}")

    def __len__(self) -> int:
        return len(self.tracks)

    def load(self, index: int) -> np.ndarray | None:
        """Decode track ``index`` to ``(stems, 2, samples)`` float32, or ``None`` if unusable."""
        return _load_track(self.tracks[index], self.stems, self.sample_rate)

    def __getitem__(self, index: int) -> torch.Tensor:
        audio = self.load(index)
        if audio is None:
            audio = np.zeros((len(self.stems), 2, self.sample_rate), dtype=np.float32)
        return torch.from_numpy(audio)
