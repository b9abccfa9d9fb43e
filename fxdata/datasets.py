"""Training segments of multitrack datasets, and :func:`open_dataset`, the one entry point.

The tracks themselves (layouts, discovery, decoding; :class:`MultitrackDataset`) live in
:mod:`fxdata.tracks` and are re-exported here; segment packs in :mod:`fxdata.pack`.
:func:`open_dataset` opens any of them.

Training draws segments from :class:`SegmentDataset`: every track is decoded once (upmixed to
stereo, resampled to 44.1 kHz, optionally passed through a ``normalizer(audio, stems)``), stored on
disk as int16 (or float16) ``.npy`` and memory-mapped, so a training step only copies samples. Its
items are ``(track, stem, offset)`` segments on a grid (hop = half a segment by default) whose RMS
is above ``silence_db`` dBFS; a seeded per-item jitter moves them within a hop. It is map-style,
so it works with DataLoader workers and ``DistributedSampler``; :class:`SegmentStream` is the
endless random variant (an ``IterableDataset`` seeded per worker and per rank).
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from fxdata.audio import DEFAULT_SAMPLE_RATE, rms_dbfs
from fxdata.pack import PackedSegments, open_pack
from fxdata.tracks import (
    AUDIO_EXTENSIONS,
    MP4_STREAMS,
    SPLITS,
    MultitrackDataset,
    Track,
    _load_track,
    decode_count,
    detect_layout,
    find_tracks,
)
from fxdsp.io import atomic_write, atomic_write_text
from fxdsp.registry import STEMS

__all__ = [
    "AUDIO_EXTENSIONS",
    "MP4_STREAMS",
    "SPLITS",
    "STEMS",
    "MultitrackDataset",
    "Normalizer",
    "SegmentDataset",
    "SegmentStream",
    "Track",
    "decode_count",
    "detect_layout",
    "find_tracks",
    "open_dataset",
]

_CACHE_VERSION = 1

Normalizer = Callable[[np.ndarray, Sequence[str]], np.ndarray]


def _default_cache_dir() -> Path:
    base = os.environ.get("MIXFX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mixfx"
    )
    return Path(base) / "segments"


def _samples(seconds: float, name: str, sample_rate: int) -> int:
    """``round(seconds * sample_rate)``, or ``ValueError`` unless that is a positive count."""
    seconds = float(seconds)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {seconds}")
    samples = round(seconds * sample_rate)
    if samples < 1:
        raise ValueError(
            f"{name}={seconds:g} is shorter than one sample at {sample_rate} Hz "
            f"({1 / sample_rate:.3g} s)"
        )
    return samples


def _save_atomic(path: Path, array: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a handle: np.save would append ".npy" to a name
            np.save(fh, array)

    atomic_write(path, write)


class SegmentDataset(Dataset):
    """Fixed-length segments of cached, memory-mapped tracks, skipping near-silent ones.

    Item ``i`` is a dict: ``audio`` (float32 tensor ``(2, L)`` in ``mode="stem"``, ``(stems, 2,
    L)`` in ``mode="track"``), ``track`` and ``stem`` indices (``stem`` is -1 in track mode) and the
    ``offset`` in samples. The index holds every grid offset (step ``hop_seconds``) whose segment
    RMS, measured exactly at cache time, is at least ``silence_db`` dBFS (in track mode: the RMS of
    the sum of the stems); a level is ``10 log10(mean square + 1e-12)``, so digital silence
    measures -120 dBFS. With ``jitter`` the offset moves by ``k``, an integer uniform in
    ``[-(hop // 2), hop // 2]`` drawn by ``np.random.default_rng([seed, epoch, i])``, clipped to
    the track and kept only if that segment is loud enough too.

    Args:
        tracks: the tracks (a :class:`MultitrackDataset`).
        segment_seconds: segment length in seconds (``L = round(segment_seconds * rate)``).
        hop_seconds: grid step in seconds (default: half a segment); at least one sample.
        silence_db: minimum segment RMS in dBFS (``-inf`` keeps silent segments too; NaN and
            ``+inf`` are refused).
        mode: ``"stem"`` (one stem per item) or ``"track"`` (all stems, aligned).
        cache_dir: where decoded tracks live (default ``$MIXFX_CACHE`` or ``~/.cache/mixfx``).
        dtype: ``"int16"`` or ``"float16"`` storage.
        normalizer: optional ``normalizer(audio, stems) -> audio`` applied to the decoded
            ``(stems, 2, samples)`` float32 array before caching (e.g. a pre-FX normalization).
        normalizer_id: a name for the normalizer in the cache key (default: its qualified name);
            change it when the normalizer's behaviour changes.
        jitter: move segments randomly within a hop.
        seed: seed of the jitter.

    Raises:
        ValueError: a bad ``mode`` or ``dtype``, a segment or hop that is not finite or shorter
            than one sample, or a NaN or ``+inf`` ``silence_db``.

    Indexing works like a sequence's: ``ds[-1]`` is the last segment, and an index outside
    ``[-len(ds), len(ds))`` raises :class:`IndexError`.
    """

    def __init__(
        self,
        tracks: MultitrackDataset,
        segment_seconds: float = 6.0,
        *,
        hop_seconds: float | None = None,
        silence_db: float = -50.0,
        mode: str = "stem",
        cache_dir: str | Path | None = None,
        dtype: str = "int16",
        normalizer: Normalizer | None = None,
        normalizer_id: str | None = None,
        jitter: bool = True,
        seed: int = 0,
    ) -> None:
        if mode not in ("stem", "track"):
            raise ValueError(f"mode must be 'stem' or 'track', got {mode!r}")
        if dtype not in ("int16", "float16"):
            raise ValueError(f"dtype must be 'int16' or 'float16', got {dtype!r}")
        rate = tracks.sample_rate
        segment = _samples(segment_seconds, "segment_seconds", rate)
        hop = _samples(
            segment_seconds / 2 if hop_seconds is None else hop_seconds, "hop_seconds", rate
        )
        silence_db = float(silence_db)
        if math.isnan(silence_db) or silence_db == math.inf:
            raise ValueError(
                f"silence_db must be a level in dBFS (or -inf to keep every segment), got "
                f"{silence_db}: no segment would pass the gate"
            )
        self.source = tracks
        self.stems = tracks.stems
        self.sample_rate = rate
        self.segment = segment
        self.hop = hop
        self.silence_db = silence_db
        self.mode = mode
        self.dtype = dtype
        self.jitter = jitter
        self.seed = int(seed)
        self.epoch = 0
        self.cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if normalizer is not None and normalizer_id is None:
            normalizer_id = getattr(normalizer, "__qualname__", type(normalizer).__qualname__)
        self.normalizer_id = normalizer_id or ""
        self.paths: list[Path] = []
        self.scales: list[np.ndarray] = []
        self.tracks: list[Track] = []
        for track in tracks.tracks:
            cached = self._cache(track, normalizer)
            if cached is not None:
                self.tracks.append(track)
                self.paths.append(cached[0])
                self.scales.append(cached[1])
        self.index = self._build_index()
        self._maps: dict[int, np.ndarray] = {}

    # -- caching ---------------------------------------------------------------------------
    def _track_key(self, track: Track) -> str:
        stats = []
        for stem in self.stems:
            st = os.stat(track.files[stem])
            stats.append([track.files[stem], st.st_size, st.st_mtime_ns])
        key = [_CACHE_VERSION, stats, self.sample_rate, self.dtype, self.normalizer_id]
        return hashlib.sha1(json.dumps(key).encode()).hexdigest()[:20]

    def _cache(self, track: Track, normalizer: Normalizer | None) -> tuple[Path, np.ndarray] | None:
        """Decode ``track`` into the cache unless it is there; ``(path, per-stem scales)``."""
        try:
            key = self._track_key(track)
        except OSError as err:
            warnings.warn(f"skipping track {track.name}: {err}", stacklevel=3)
            return None
        path = self.cache_dir / f"{key}.npy"
        meta_path = self.cache_dir / f"{key}.json"
        if path.is_file() and meta_path.is_file():
            return path, np.asarray(json.loads(meta_path.read_text())["scales"], np.float32)
        audio = _load_track(track, self.stems, self.sample_rate)
        if audio is None:
            return None
        if normalizer is not None:
            out = np.asarray(normalizer(audio, self.stems))
            if out.shape != audio.shape or not np.all(np.isfinite(out)):
                raise ValueError(
                    f"the normalizer returned shape {out.shape} (or non-finite values) for "
                    f"track {track.name}; expected {audio.shape}"
                )
            audio = out
        if self.dtype == "int16":
            peak = np.abs(audio).max(axis=(1, 2))
            scales = np.maximum(peak, 1.0).astype(np.float32)  # values beyond full scale
            stored = np.round(audio / scales[:, None, None] * 32767.0).astype(np.int16)
        else:
            scales = np.ones(len(self.stems), dtype=np.float32)
            stored = audio.astype(np.float16)
        _save_atomic(path, stored)
        meta = {"track": track.name, "files": track.files, "scales": scales.tolist()}
        atomic_write_text(meta_path, json.dumps(meta))
        return path, scales

    def _array(self, t: int) -> np.ndarray:
        """Track ``t``'s memory map, opened once per process (DataLoader workers included)."""
        array = self._maps.get(t)
        if array is None:
            array = np.load(self.paths[t], mmap_mode="r")
            self._maps[t] = array
        return array

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}  # memory maps are reopened in each worker
        return state

    def _segment_raw(
        self, t: int, s: int, offset: int, length: int, array: np.ndarray | None = None
    ) -> np.ndarray:
        """Float32 samples ``[offset, offset + length)`` of stem ``s`` (-1: all) of track ``t``."""
        array = self._array(t) if array is None else array
        raw = (
            array[s, :, offset : offset + length]
            if s >= 0
            else array[..., offset : offset + length]
        )
        x = raw.astype(np.float32)
        unit = np.float32(1.0 / 32767.0 if self.dtype == "int16" else 1.0)
        scale = self.scales[t][s] if s >= 0 else self.scales[t][:, None, None]
        return x * (scale * unit)

    def _segment(self, t: int, s: int, offset: int) -> np.ndarray:
        return self._segment_raw(t, s, offset, self.segment)

    def _loud(self, t: int, s: int, offset: int) -> bool:
        x = self._segment(t, s, offset)
        if s < 0:
            x = x.sum(axis=0)
        return bool(rms_dbfs(x) >= self.silence_db)

    # -- index -----------------------------------------------------------------------------
    def _build_index(self) -> np.ndarray:
        """Rows ``(track, stem, offset)`` of every loud grid segment (cached per settings)."""
        key = [[p.name for p in self.paths], self.segment, self.hop, self.silence_db, self.mode]
        digest = hashlib.sha1(json.dumps(key).encode()).hexdigest()[:20]
        path = self.cache_dir / f"index-{digest}.npy"
        if path.is_file():
            return np.load(path)
        rows: list[tuple[int, int, int]] = []
        for t, p in enumerate(self.paths):
            array = np.load(p, mmap_mode="r")
            n = array.shape[-1]
            if n < self.segment:
                warnings.warn(
                    f"track {self.tracks[t].name} is shorter than one segment: not used",
                    stacklevel=3,
                )
                continue
            offsets = np.arange(0, n - self.segment + 1, self.hop)
            channels = range(len(self.stems)) if self.mode == "stem" else [-1]
            for s in channels:
                power = np.concatenate([[0.0], np.cumsum(self._power(array, t, s))])
                mean = (power[offsets + self.segment] - power[offsets]) / (2 * self.segment)
                loud = 10 * np.log10(np.maximum(mean, 0.0) + 1e-12) >= self.silence_db
                rows += [(t, s, int(o)) for o in offsets[loud]]
        index = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
        _save_atomic(path, index)
        return index

    def _power(self, array: np.ndarray, t: int, s: int, chunk: int = 1 << 20) -> np.ndarray:
        """Per-sample power summed over channels, float64 ``(samples,)``, read in chunks."""
        n = array.shape[-1]
        out = np.empty(n, dtype=np.float64)
        for start in range(0, n, chunk):
            x = self._segment_raw(t, s, start, chunk, array).astype(np.float64)  # the last is short
            if s < 0:
                x = x.sum(axis=0)
            out[start : start + x.shape[-1]] = np.square(x).sum(axis=0)
        return out

    # -- access ----------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Change the jitter draw (call at the start of each epoch, like DistributedSampler)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def item(self, t: int, s: int, offset: int) -> dict[str, Any]:
        """The segment of track ``t``, stem ``s`` (-1: all stems) at ``offset`` samples."""
        return {
            "audio": torch.from_numpy(np.ascontiguousarray(self._segment(t, s, offset))),
            "track": t,
            "stem": s,
            "offset": offset,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.index)
        index = operator.index(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} segments")
        index %= n  # a negative index is the same item (and the same jitter) as its positive
        t, s, offset = (int(v) for v in self.index[index])
        if self.jitter and self.hop > 1:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            n = self._array(t).shape[-1]
            half = self.hop // 2
            moved = min(max(offset + int(rng.integers(-half, half + 1)), 0), n - self.segment)
            if moved != offset and self._loud(t, s, moved):
                offset = moved
        return self.item(t, s, offset)

    def sample(self, rng: np.random.Generator, stem: int | None = None) -> dict[str, Any]:
        """A random segment: a stem type (uniform, or ``stem``), a track and any offset.

        The offset is uniform over the track; a near-silent draw is replaced (up to 8 tries) by
        a random loud grid segment of the same stem.

        Args:
            rng: the random generator.
            stem: the stem index (default: drawn uniformly among stems with loud segments).

        Returns:
            An item like :meth:`__getitem__`'s.
        """
        if len(self.index) == 0:
            raise ValueError("no loud segments in this dataset")
        stems_present = np.unique(self.index[:, 1])
        s = int(rng.choice(stems_present)) if stem is None else int(stem)
        rows = self.index[self.index[:, 1] == s]
        if len(rows) == 0:
            raise ValueError(f"no loud segments for stem {s}")
        for _ in range(8):
            t = int(rows[rng.integers(len(rows)), 0])
            n = self._array(t).shape[-1]
            offset = int(rng.integers(0, n - self.segment + 1))
            if self._loud(t, s, offset):
                return self.item(t, s, offset)
        t, s, offset = (int(v) for v in rows[rng.integers(len(rows))])
        return self.item(t, s, offset)


class SegmentStream(IterableDataset):
    """An endless (or ``length``-long) stream of random segments, seeded per worker and rank.

    Each DataLoader worker of each distributed rank draws from its own generator,
    ``np.random.default_rng([seed, epoch, rank, worker])``, so workers never repeat each other and a
    run is reproducible.

    Args:
        segments: the segment dataset to draw from.
        length: items per epoch over all workers of this rank (``None``: endless).
        seed: base seed.
        rank: distributed rank (default: ``torch.distributed``'s when initialized, else 0).
    """

    def __init__(
        self,
        segments: SegmentDataset,
        length: int | None = None,
        *,
        seed: int = 0,
        rank: int | None = None,
    ) -> None:
        self.segments = segments
        self.length = length
        self.seed = int(seed)
        if rank is None:
            dist = torch.distributed
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self.rank = int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random draws for a new epoch."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        count = None
        if self.length is not None:
            count = self.length // workers + (1 if worker < self.length % workers else 0)
        produced = 0
        while count is None or produced < count:
            yield self.segments.sample(rng)
            produced += 1


#: The cache name of :func:`corpus_fxnorm`'s hook (one shared segment cache for every user).
CORPUS_FXNORM_ID = "fxdsp.FxNormalizer/corpus_default/1"


def corpus_fxnorm() -> dict[str, Any]:
    """The ``normalizer`` and ``normalizer_id`` options of a :class:`SegmentDataset` that
    FX-normalize each decoded track with the shipped corpus statistics
    (``fxdsp.FxNormalizer(fxdsp.FxNormStats.corpus_default())``, in NumPy, no gradients): what
    the encoder, the cloner, the controller and their evaluations train and test on."""
    import torch

    import fxdsp

    normalizer = fxdsp.FxNormalizer(fxdsp.FxNormStats.corpus_default())

    def normalize(audio: np.ndarray, stems: Sequence[str]) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        with torch.no_grad():
            return normalizer(x, [str(s) for s in stems]).numpy()

    return {"normalizer": normalize, "normalizer_id": CORPUS_FXNORM_ID}


def open_dataset(
    path: str | Path,
    split: str = "train",
    stems: Sequence[str] = STEMS,
    *,
    segment_seconds: float | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    valid_fraction: float = 0.1,
    **segment_options: Any,
) -> MultitrackDataset | SegmentDataset | PackedSegments:
    """Open any supported dataset folder: the hook behind training scripts' ``--data PATH``.

    Args:
        path: a MUSDB18-HQ folder, a corpus built by ``mixfx corpus build``, a folder of
            ``<track>/<stem>.wav`` folders, a MUSDB18 ``.stem.mp4`` folder, or a segment pack
            (``mixfx corpus pack``; see :func:`fxdata.pack.open_pack` for what it accepts).
        split: ``train``, ``valid``, ``test`` or ``all``.
        stems: the stems to use, in order.
        segment_seconds: ``None`` for whole tracks (:class:`MultitrackDataset`), else the
            segment length of a :class:`SegmentDataset`.
        sample_rate: the rate in Hz everything is served at.
        valid_fraction: see :func:`find_tracks`.
        **segment_options: further :class:`SegmentDataset` arguments (``cache_dir``,
            ``silence_db``, ``mode``, ``normalizer``, ...).

    Returns:
        The dataset: a :class:`MultitrackDataset`, a :class:`SegmentDataset` or, for a pack, a
        :class:`fxdata.pack.PackedSegments`.
    """
    if not Path(path).is_dir() and detect_layout(path) == "pack":
        return open_pack(
            path, split, stems, segment_seconds=segment_seconds, sample_rate=sample_rate,
            **segment_options,
        )  # fmt: skip
    tracks = MultitrackDataset(
        path, split, stems, sample_rate=sample_rate, valid_fraction=valid_fraction
    )
    if segment_seconds is None:
        if segment_options:
            raise ValueError(
                f"options {sorted(segment_options)} need segment_seconds (a SegmentDataset)"
            )
        return tracks
    return SegmentDataset(tracks, segment_seconds, **segment_options)
