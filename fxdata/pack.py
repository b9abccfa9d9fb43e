"""A compact, memory-mapped segment pack: a subset of a dataset that travels with the code.

The GPU training machine reaches no data host, and the working tree sent there is limited in
size, so :func:`pack_segments` (``mixfx corpus pack``) selects a budget-bounded subset of
non-silent segments of any dataset :func:`fxdata.open_dataset` opens and writes it as two files:

- ``<out>.npy``: int16 ``(N, 2, L)``, segment ``i`` stored as ``round(x / scale_i * 32767)``
  with its own scale ``scale_i = max(peak_i, eps)``, so a quiet stem keeps the full 16-bit
  resolution (a −40 dBFS stem at one global scale would lose about 40 dB of SNR);
- ``<out>.json``: format and version, sample rate, segment length, stems, split, source path and
  per-segment track, stem, offset (samples) and float32 scale.

The selection is deterministic for a seed: tracks are visited in a seeded order, round-robin,
each giving in turn its next non-silent offset (offsets where more stems are non-silent first,
in a seeded order among equals) with every non-silent stem at that offset (aligned stems), so
the stem types stay balanced even where some stems are often silent, until the
int16 payload would exceed ``max_mib``. :class:`PackedSegments` serves the pack with the items of
:class:`~fxdata.datasets.SegmentDataset`; ``fxdata.open_dataset("<out>.json")`` returns one.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fxdata.audio import DEFAULT_SAMPLE_RATE
from fxdata.tracks import (
    PACK_FORMAT,
    MultitrackDataset,
    Track,
    find_pack,
    not_a_pack,
    pack_prefix,
)
from fxdsp.io import atomic_write, atomic_write_text
from fxdsp.registry import STEMS

__all__ = [
    "PACK_FORMAT",
    "PACK_VERSION",
    "PackedSegments",
    "find_pack",
    "open_pack",
    "pack_segments",
]

PACK_VERSION = 1
_MIB = 1 << 20
_FULL = 32767.0
_EPS = 1e-12
_JSON_PER_SEGMENT = 80  # bytes of JSON budgeted per segment (track, stem, offset, scale)
_NPY_HEADER = 128  # np.save's header for a small shape


# -- packing ---------------------------------------------------------------------------------
def _loud_grid(audio: np.ndarray, length: int, silence_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of the non-overlapping grid and the ``(offsets, stems)`` mask of loud segments.

    A segment is loud when ``10 log10(mean(x^2) + eps) >= silence_db`` over both channels.
    """
    stems, channels, n = audio.shape
    count = n // length
    offsets = np.arange(count, dtype=np.int64) * length
    loud = np.zeros((count, stems), dtype=bool)
    for s in range(stems):
        grid = audio[s, :, : count * length].reshape(channels, count, length)
        power = np.square(grid).sum(axis=(0, 2), dtype=np.float64) / (channels * length)
        loud[:, s] = 10.0 * np.log10(power + _EPS) >= silence_db
    return offsets, loud


def _quantize(segment: np.ndarray) -> tuple[np.ndarray, float]:
    """``(int16 (2, L), scale)`` with ``segment ≈ int16 * scale / 32767``, scale = peak."""
    scale = np.float32(max(float(np.abs(segment).max()), _EPS))
    stored = np.clip(np.round(segment.astype(np.float64) / float(scale) * _FULL), -_FULL, _FULL)
    return stored.astype(np.int16), float(scale)


def _write_npy(tmp: str, rows: Sequence[np.ndarray]) -> None:
    """Write the int16 rows as one ``(N, 2, L)`` ``.npy`` file at ``tmp``."""
    array = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.int16, shape=(len(rows), *rows[0].shape)
    )
    for i, row in enumerate(rows):
        array[i] = row
    array.flush()
    del array


def _pack_meta(
    prefix: Path,
    source: Path,
    split: str,
    stems: Sequence[str],
    sample_rate: int,
    length: int,
    silence_db: float,
    seed: int,
    max_mib: float,
    names: list[str],
    chosen: list[tuple[int, int, int, float]],
) -> dict[str, Any]:
    return {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "dtype": "int16",
        "npy": prefix.name + ".npy",
        "count": len(chosen),
        "sample_rate": sample_rate,
        "segment_samples": length,
        "segment_seconds": length / sample_rate,
        "stems": list(stems),
        "split": split,
        "source": str(source.resolve()),
        "silence_db": silence_db,
        "seed": seed,
        "max_mib": max_mib,
        "tracks": names,
        "segments": {
            "track": [c[0] for c in chosen],
            "stem": [c[1] for c in chosen],
            "offset": [c[2] for c in chosen],
            "scale": [c[3] for c in chosen],
        },
    }


def pack_segments(
    path: str | Path,
    out: str | Path,
    *,
    split: str = "train",
    stems: Sequence[str] = STEMS,
    segment_seconds: float = 6.0,
    max_mib: float = 40.0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    silence_db: float = -50.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Select non-silent segments of a dataset and write them as a pack of at most ``max_mib``.

    Tracks are visited in the order ``default_rng(seed).permutation``; track ``t`` offers its
    grid offsets (``k * L``, non-overlapping) with the most loud stems first (RMS over both
    channels ``>= silence_db`` dBFS), ties in the order ``default_rng([seed, t]).permutation``,
    and never an offset where no stem is loud. Round ``r`` takes the ``r``-th such offset of
    every track, with all its loud stems, until the next segment would take the two files over
    ``max_mib`` MiB (the last offset may contribute only the stems that fit, the least
    represented stem types first). Tracks are
    decoded lazily (those never reached are never decoded) and at most twice; memory holds the
    selected segments (at most ``max_mib``) and one decoded track.

    Args:
        path: any dataset :func:`fxdata.open_dataset` opens as tracks (MUSDB18-HQ folder,
            corpus, folder of stem folders, ``.stem.mp4`` folder).
        out: the pack's prefix: ``<out>.npy`` and ``<out>.json`` are written (a ``.json`` or
            ``.npy`` suffix is dropped); its folder is created.
        split: ``train``, ``valid``, ``test`` or ``all``.
        stems: the stem types to pack, in order.
        segment_seconds: segment length in seconds.
        max_mib: the size limit of the two files together, in MiB (2**20 bytes).
        sample_rate: the rate in Hz segments are stored at (other rates are resampled).
        silence_db: a segment below this RMS in dBFS is not packed.
        seed: seed of the track and offset orders.
        progress: show a tqdm progress bar over the decoded tracks.

    Returns:
        A summary: ``json`` and ``npy`` paths, ``segments`` (N), ``tracks_used``,
        ``tracks_total``, ``seconds_per_stem`` (``{stem: seconds}``), ``bytes`` (both files)
        and ``elapsed`` (seconds).

    Raises:
        ValueError: no tracks, no non-silent segment, or ``max_mib`` too small for one segment.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    if not segment_seconds > 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
    if not max_mib > 0:
        raise ValueError(f"max_mib must be positive, got {max_mib}")
    if find_pack(path) is not None:
        raise ValueError(f"{path} is already a segment pack: pack its source dataset instead")
    tracks = MultitrackDataset(path, split, stems, sample_rate=sample_rate)
    stems = tracks.stems
    length = round(segment_seconds * sample_rate)
    if length < 1:
        raise ValueError(f"segment_seconds={segment_seconds} is shorter than one sample")
    seg_bytes = 2 * length * np.dtype(np.int16).itemsize
    prefix = pack_prefix(out)
    skeleton = _pack_meta(
        prefix, Path(path), split, stems, sample_rate, length, float(silence_db), int(seed),
        float(max_mib), [t.name for t in tracks.tracks], [],
    )  # fmt: skip
    fixed = len(json.dumps(skeleton)) + _NPY_HEADER
    budget = int((max_mib * _MIB - fixed) // (seg_bytes + _JSON_PER_SEGMENT))
    if budget < 1:
        raise ValueError(
            f"max_mib={max_mib:g} is too small for one segment of {segment_seconds:g} s "
            f"({(seg_bytes + fixed + _JSON_PER_SEGMENT) / _MIB:.3f} MiB with the metadata)"
        )

    n_tracks = len(tracks)
    order = np.random.default_rng(seed).permutation(n_tracks)
    groups: dict[int, list[tuple[int, list[int]]]] = {}  # track -> [(offset, loud stems)]
    held: dict[tuple[int, int, int], tuple[np.ndarray, float]] = {}  # selected audio
    chosen: list[tuple[int, int, int]] = []  # (track, stem, offset) in selection order
    counts = np.zeros(len(stems), dtype=np.int64)
    bar = tqdm(total=n_tracks, desc="pack: scan", unit="track", disable=not progress)

    def take(t: int, offset: int, loud: list[int], audio: np.ndarray | None) -> bool:
        """Select the loud stems at ``offset`` of track ``t``; False once the budget is full."""
        room = budget - len(chosen)
        if len(loud) > room:
            loud = sorted(loud, key=lambda s: (counts[s], s))[:room]
        for s in loud:
            chosen.append((t, s, offset))
            counts[s] += 1
            if audio is not None:
                held[(t, s, offset)] = _quantize(audio[s, :, offset : offset + length])
        return len(chosen) < budget

    full = False
    for r in itertools.count():
        active = False
        for t in order.tolist():
            if r == 0:  # first visit: decode, find the loud offsets, take the first one
                audio = tracks.load(t)
                bar.update(1)
                if audio is None:
                    groups[t] = []
                    continue
                offsets, loud = _loud_grid(audio, length, float(silence_db))
                perm = np.random.default_rng([seed, t]).permutation(len(offsets))
                perm = perm[np.argsort(-loud[perm].sum(axis=1), kind="stable")]
                groups[t] = [
                    (int(offsets[k]), np.flatnonzero(loud[k]).tolist())
                    for k in perm
                    if loud[k].any()
                ]
                if groups[t]:
                    active = True
                    if not take(t, *groups[t][0], audio):
                        full = True
                        break
            elif len(groups[t]) > r:
                active = True
                if not take(t, *groups[t][r], None):
                    full = True
                    break
        if full or not active:
            break
    bar.close()
    if not chosen:
        raise ValueError(
            f"nothing to pack in {path} ({split}): no segment of {segment_seconds:g} s of stems "
            f"{list(stems)} reaches {silence_db:g} dBFS"
        )

    missing = sorted({t for t, s, o in chosen if (t, s, o) not in held})
    for t in tqdm(missing, desc="pack: extract", unit="track", disable=not progress):
        audio = tracks.load(t)
        if audio is None:  # readable a moment ago: a file changed while packing
            raise ValueError(f"track {tracks.tracks[t].name} of {path} became unreadable")
        for tt, s, offset in chosen:
            if tt == t:
                held[(t, s, offset)] = _quantize(audio[s, :, offset : offset + length])
        del audio

    used = sorted({t for t, _, _ in chosen}, key=lambda t: tracks.tracks[t].name)
    position = {t: i for i, t in enumerate(used)}
    ordered = sorted(chosen, key=lambda c: (position[c[0]], c[2], c[1]))
    rows = [held[c][0] for c in ordered]
    table = [(position[t], s, o, held[(t, s, o)][1]) for t, s, o in ordered]
    meta = _pack_meta(
        prefix, Path(path), split, stems, sample_rate, length, float(silence_db), int(seed),
        float(max_mib), [tracks.tracks[t].name for t in used], table,
    )  # fmt: skip
    text = json.dumps(meta)
    total = len(text.encode()) + _NPY_HEADER + len(rows) * seg_bytes
    if total > max_mib * _MIB:  # the per-segment JSON allowance is generous; never expected
        raise RuntimeError(f"pack of {total} bytes exceeds max_mib={max_mib:g}")

    prefix.parent.mkdir(parents=True, exist_ok=True)
    meta_path = prefix.with_name(prefix.name + ".json")
    npy_path = prefix.with_name(prefix.name + ".npy")
    meta_path.unlink(missing_ok=True)  # no reader may pair an old JSON with the new array
    atomic_write(npy_path, lambda tmp: _write_npy(tmp, rows))
    try:
        atomic_write_text(meta_path, text)
    except BaseException:
        npy_path.unlink(missing_ok=True)
        raise
    per_stem = {stem: 0.0 for stem in stems}
    for _, s, _, _ in table:
        per_stem[stems[s]] += length / sample_rate
    return {
        "json": meta_path,
        "npy": npy_path,
        "segments": len(rows),
        "tracks_used": len(used),
        "tracks_total": n_tracks,
        "seconds_per_stem": per_stem,
        "bytes": meta_path.stat().st_size + npy_path.stat().st_size,
        "elapsed": time.perf_counter() - start,
    }


# -- reading ---------------------------------------------------------------------------------
class PackedSegments(Dataset):
    """The segments of a pack written by :func:`pack_segments`, memory-mapped.

    Item ``i`` is the dict of :class:`~fxdata.datasets.SegmentDataset` (stem mode): ``audio``
    (float32 tensor ``(2, L)``, ``int16 * scale_i / 32767``), ``track`` (index into
    :attr:`tracks`), ``stem`` (index into :attr:`stems`) and ``offset`` (samples into the source
    track). The array is opened once per process (DataLoader workers included), never copied.

    Args:
        path: the pack's prefix, ``.json`` or ``.npy`` file.
        stems: the stems to serve, a subset of the pack's in any order (default: the pack's).

    Attributes:
        stems: the stem names served.
        sample_rate: Hz.
        segment: segment length L in samples.
        split: the split the pack was made from.
        tracks: :class:`~fxdata.datasets.Track` per track index (``files`` empty).
        index: int64 ``(N, 3)`` rows ``(track, stem, offset)``, like SegmentDataset's.
        scales: float32 ``(N,)`` per-segment scales.
        meta: the pack's JSON.
    """

    def __init__(self, path: str | Path, stems: Sequence[str] | None = None) -> None:
        meta_path = find_pack(path)
        if meta_path is None:
            raise ValueError(not_a_pack(path))
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"malformed segment pack JSON {meta_path}: {err}") from None
        if not isinstance(meta, dict):
            raise ValueError(f"malformed segment pack JSON {meta_path}: not a JSON object")
        if meta.get("version") != PACK_VERSION or meta.get("dtype") != "int16":
            raise ValueError(
                f"{meta_path}: pack version {meta.get('version')} / dtype {meta.get('dtype')} is "
                f"not supported (expected version {PACK_VERSION}, int16)"
            )
        try:
            npy_name = str(meta["npy"])
            sample_rate = int(meta["sample_rate"])
            segment = int(meta["segment_samples"])
            split = str(meta["split"])
            count = int(meta["count"])
            pack_stems = [str(s) for s in meta["stems"]]
            track_names = [str(name) for name in meta["tracks"]]
            seg = meta["segments"]
            columns = [np.asarray(seg[key], dtype=np.int64) for key in ("track", "stem", "offset")]
            scales = np.asarray(seg["scale"], dtype=np.float64)
        except KeyError as err:
            raise ValueError(f"malformed segment pack JSON {meta_path}: no field {err}") from None
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"malformed segment pack JSON {meta_path}: {err}") from None
        if scales.ndim != 1 or any(c.shape != scales.shape for c in columns):
            raise ValueError(
                f"malformed segment pack JSON {meta_path}: the segment columns track, stem, "
                f"offset and scale differ in length ({[len(c) for c in columns]}, {scales.size})"
            )
        index = np.stack(columns, axis=1).reshape(-1, 3)
        bad_track = (index[:, 0] < 0) | (index[:, 0] >= len(track_names))
        bad_stem = (index[:, 1] < 0) | (index[:, 1] >= len(pack_stems))
        if bool((bad_track | bad_stem).any()):
            i = int(np.flatnonzero(bad_track | bad_stem)[0])
            raise ValueError(
                f"malformed segment pack JSON {meta_path}: segment {i} names track "
                f"{index[i, 0]} of {len(track_names)} / stem {index[i, 1]} of {len(pack_stems)}"
            )
        # A scale multiplies every sample of its segment: NaN, inf (also a float64 value beyond
        # float32's range) or <= 0 would serve NaN, inf or silent/inverted audio.
        scales32 = scales.astype(np.float32)
        with np.errstate(invalid="ignore"):
            good = np.isfinite(scales32) & (scales32 > 0)
        if not bool(good.all()):
            i = int(np.flatnonzero(~good)[0])
            t, s, o = (int(v) for v in index[i])
            raise ValueError(
                f"{meta_path}: segment {i} (track {track_names[t]!r}, stem {pack_stems[s]!r}, "
                f"offset {o}) has scale {scales[i]}; a scale must be finite and > 0 "
                f"({int((~good).sum())} bad scale(s)): the pack is damaged"
            )
        self.meta = meta
        self.path = meta_path.with_name(npy_name)
        self.sample_rate = sample_rate
        self.segment = segment
        self.split = split
        self.stems = tuple(pack_stems if stems is None else stems)
        unknown = [s for s in self.stems if s not in pack_stems]
        if unknown:
            raise ValueError(f"{meta_path} holds stems {pack_stems}, not {unknown}")
        self.tracks = [Track(name, self.split, {}) for name in track_names]
        scales = scales32
        array = np.load(self.path, mmap_mode="r")
        expected = (count, 2, self.segment)
        if array.dtype != np.int16 or array.shape != expected or len(index) != expected[0]:
            raise ValueError(
                f"{self.path} holds {array.dtype} {array.shape}, its JSON describes int16 "
                f"{expected} with {len(index)} segments: the pack is damaged"
            )
        del array
        remap = np.full(len(pack_stems), -1, dtype=np.int64)
        for i, stem in enumerate(self.stems):
            remap[pack_stems.index(stem)] = i
        keep = remap[index[:, 1]] >= 0
        self.rows = np.flatnonzero(keep)  # positions in the .npy
        self.index = index[keep]
        self.index[:, 1] = remap[self.index[:, 1]]
        self.scales = scales[keep]
        self._map: np.ndarray | None = None

    @property
    def source(self) -> PackedSegments:
        """Itself, so ``ds.source.tracks[t].name`` works as for a SegmentDataset."""
        return self

    def _array(self) -> np.ndarray:
        if self._map is None:
            self._map = np.load(self.path, mmap_mode="r")
        return self._map

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_map"] = None  # reopened in each worker, never pickled as data
        return state

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} segments")
        raw = self._array()[self.rows[index]]
        audio = raw.astype(np.float32) * np.float32(self.scales[index] / _FULL)
        t, s, offset = (int(v) for v in self.index[index])
        return {"audio": torch.from_numpy(audio), "track": t, "stem": s, "offset": offset}

    def sample(self, rng: np.random.Generator, stem: int | None = None) -> dict[str, Any]:
        """A random segment: a stem type (uniform among those present, or ``stem``), then one of
        its segments uniformly.

        Args:
            rng: the random generator.
            stem: the stem index (default: drawn uniformly).

        Returns:
            An item like :meth:`__getitem__`'s.
        """
        if len(self.index) == 0:
            raise ValueError("no segments in this pack")
        s = int(rng.choice(np.unique(self.index[:, 1]))) if stem is None else int(stem)
        rows = np.flatnonzero(self.index[:, 1] == s)
        if len(rows) == 0:
            raise ValueError(f"no segments for stem {s}")
        return self[int(rows[rng.integers(len(rows))])]


def open_pack(
    path: str | Path,
    split: str = "train",
    stems: Sequence[str] = STEMS,
    *,
    segment_seconds: float | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    **segment_options: Any,
) -> PackedSegments:
    """Open a pack the way :func:`fxdata.open_dataset` opens a folder, checking the request.

    Args:
        path: the pack's prefix, ``.json`` or ``.npy`` file.
        split: must be the pack's split (or ``all``).
        stems: the stems to serve (a subset of the pack's).
        segment_seconds: ``None`` or the pack's segment length.
        sample_rate: must be the pack's rate.
        **segment_options: only ``cache_dir`` (unused: a pack needs no cache).

    Returns:
        The :class:`PackedSegments`.
    """
    pack = PackedSegments(path, stems)
    if split not in ("all", pack.split):
        raise ValueError(f"the pack {path} holds the {pack.split} split, not {split}")
    if int(sample_rate) != pack.sample_rate:
        raise ValueError(f"the pack {path} is at {pack.sample_rate} Hz, not {sample_rate} Hz")
    if segment_seconds is not None and round(segment_seconds * pack.sample_rate) != pack.segment:
        raise ValueError(
            f"the pack {path} holds segments of {pack.segment / pack.sample_rate:g} s, not "
            f"{segment_seconds:g} s"
        )
    other = sorted(set(segment_options) - {"cache_dir"})
    if other:
        raise ValueError(f"options {other} do not apply to a segment pack ({path})")
    return pack
