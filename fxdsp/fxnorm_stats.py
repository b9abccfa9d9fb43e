"""FX-normalization statistics: the per-stem targets of :class:`fxdsp.normalize.FxNormalizer`.

:class:`FxNormStats` holds, per stem type, the average loudness, spectrum shape, onset-peak
statistic (mean and std) and mid-energy fraction, plus the compressor timing of the dynamics
step; it is saved as JSON (never pickled) and validated on load, so that a malformed file is a
``ValueError`` naming the file and the problem. :func:`compute_stats` computes it from audio
already in memory (arrays or tensors); reading files is the caller's job (the ``mixfx
fxnorm-stats`` command walks a folder and reads it with soundfile).

The measures are :mod:`fxdsp.fxnorm_measures` (shared with the normalizer).
"""

from __future__ import annotations

import importlib.resources
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fxdsp._checks import as_number, check_sample_rate
from fxdsp.config import parse_json
from fxdsp.functional.loudness import loudness
from fxdsp.fxnorm_measures import (
    N_FFT,
    _mean_magnitude,
    _unit_rms,
    mid_fraction,
    onset_peak_db,
)
from fxdsp.io import atomic_write_text
from fxdsp.registry import STEMS

__all__ = [
    "N_FFT",
    "REFERENCE_COMPRESSOR",
    "SAMPLE_RATE",
    "STEMS",
    "FxNormStats",
    "StemStats",
    "compute_stats",
]

#: Sample rate of the statistics (Hz).
SAMPLE_RATE = 44100
#: Per-stem compressor timing of the reference: (attack ms, release ms, ratio).
REFERENCE_COMPRESSOR: dict[str, tuple[float, float, float]] = {
    "vocals": (7.5, 400.0, 4.0),
    "drums": (10.0, 180.0, 6.0),
    "bass": (10.0, 500.0, 5.0),
    "other": (15.0, 666.0, 4.0),
}

_FORMAT = "mixfx.fxnorm-stats/1"


def _json_type(value: object) -> str:
    """How JSON would call ``value``'s type (for error messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


@dataclass
class StemStats:
    """Normalization targets of one stem type.

    Args:
        loudness_lufs: integrated loudness target (LUFS).
        mid_fraction: mid-energy fraction target ``E_M / (E_M + E_S)``, in (0, 1].
        onset_peak_mean_db: mean of the onset-peak statistic (dB, see
            :func:`fxdsp.fxnorm_measures.onset_peak_db`).
        onset_peak_std_db: its standard deviation (dB, >= 0).
        attack_ms: compressor attack of the dynamics step (ms, > 0).
        release_ms: compressor release (ms, > 0).
        ratio: the compressor's base ratio (>= 1).
        spectrum: average magnitude spectrum, ``N_FFT // 2 + 1`` values on the stats' grid,
            unit RMS over bins; None: no EQ for this stem.
        count: number of files the statistics came from (0 for a preset).

    Raises:
        ValueError: a value of the wrong type or out of range.
    """

    loudness_lufs: float
    mid_fraction: float
    onset_peak_mean_db: float
    onset_peak_std_db: float
    attack_ms: float
    release_ms: float
    ratio: float
    spectrum: list[float] | None = None
    count: int = 0

    def __post_init__(self) -> None:
        for name in (
            "loudness_lufs",
            "mid_fraction",
            "onset_peak_mean_db",
            "onset_peak_std_db",
            "attack_ms",
            "release_ms",
            "ratio",
        ):
            setattr(self, name, as_number(getattr(self, name), name))
        if not -100.0 <= self.loudness_lufs <= 10.0:
            raise ValueError(f"loudness_lufs must be in [-100, 10], got {self.loudness_lufs}")
        if not 0.0 < self.mid_fraction <= 1.0:
            raise ValueError(f"mid_fraction must be in (0, 1], got {self.mid_fraction}")
        if self.onset_peak_std_db < 0:
            raise ValueError(f"onset_peak_std_db must be >= 0, got {self.onset_peak_std_db}")
        if self.attack_ms <= 0 or self.release_ms <= 0:
            raise ValueError("attack_ms and release_ms must be > 0")
        if self.ratio < 1:
            raise ValueError(f"ratio must be >= 1, got {self.ratio}")
        if self.spectrum is not None:
            if isinstance(self.spectrum, (str, bytes, Mapping)) or not isinstance(
                self.spectrum, (Sequence, np.ndarray, Tensor)
            ):
                raise ValueError(
                    f"spectrum must be a list of numbers or null, got {_json_type(self.spectrum)}"
                )
            values = self.spectrum.tolist() if hasattr(self.spectrum, "tolist") else self.spectrum
            spec = [as_number(v, "spectrum value") for v in values]
            if any(v < 0 for v in spec):
                raise ValueError("spectrum values must be >= 0 (magnitudes)")
            self.spectrum = spec
        count = self.count
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an integer >= 0, got {self.count!r}")
        self.count = count


_STEM_FIELDS = tuple(f.name for f in fields(StemStats))
_STEM_REQUIRED = _STEM_FIELDS[:7]


@dataclass
class FxNormStats:
    """FX-normalization statistics per stem, saved as JSON (never pickled).

    Args:
        stems: ``{stem name: StemStats}``, names from :data:`STEMS`.
        sample_rate: the rate the statistics were measured at (Hz); audio must match it.
        n_fft: FFT size of the spectra (``n_fft // 2 + 1`` values each).
        description: where the statistics come from.
        extra: free-form JSON-ready information (e.g. ``skipped_files``).

    Raises:
        ValueError: no stems, unknown stem names, values of the wrong type or out of range.
    """

    stems: dict[str, StemStats]
    sample_rate: float = float(SAMPLE_RATE)
    n_fft: int = N_FFT
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.stems, Mapping) or not self.stems:
            raise ValueError("stats must hold at least one stem")
        unknown = set(self.stems) - set(STEMS)
        if unknown:
            raise ValueError(f"unknown stem name(s) {sorted(unknown)}; expected names in {STEMS}")
        self.stems = {
            k: v if isinstance(v, StemStats) else _stem_stats(k, v) for k, v in self.stems.items()
        }
        self.sample_rate = check_sample_rate(self.sample_rate)
        if isinstance(self.n_fft, bool) or not isinstance(self.n_fft, int) or self.n_fft < 16:
            raise ValueError(f"n_fft must be an int >= 16, got {self.n_fft!r}")
        if not isinstance(self.description, str):
            raise ValueError(f"description must be a string, got {_json_type(self.description)}")
        if not isinstance(self.extra, Mapping):
            raise ValueError(f"extra must be an object (a dict), got {_json_type(self.extra)}")
        self.extra = dict(self.extra)
        bins = self.n_fft // 2 + 1
        for name, st in self.stems.items():
            if st.spectrum is not None and len(st.spectrum) != bins:
                raise ValueError(
                    f"spectrum of {name!r} has {len(st.spectrum)} values; n_fft={self.n_fft} "
                    f"needs {bins}"
                )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``format``, ``sample_rate``, ``n_fft``, ``stems``, ...)."""
        return {
            "format": _FORMAT,
            "description": self.description,
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "stems": {k: asdict(v) for k, v in self.stems.items()},
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FxNormStats:
        """Inverse of :meth:`to_dict`.

        ``format`` and ``stems`` are required; ``sample_rate``, ``n_fft``, ``description`` and
        ``extra`` take their defaults when absent (``null`` is not absent: it is an error).

        Raises:
            ValueError: another format, a missing or malformed field, a bad value; the message
                names the field (and the stem).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {_json_type(data)}")
        if data.get("format") != _FORMAT:
            raise ValueError(
                f"not FX-normalization stats: format is {data.get('format')!r}, expected "
                f"{_FORMAT!r}"
            )
        if "stems" not in data:
            raise ValueError("'stems' is missing (an object of stem name → statistics)")
        stems = data["stems"]
        if not isinstance(stems, Mapping):
            raise ValueError(
                f"'stems' must be an object of stem name → statistics, got {_json_type(stems)}"
            )
        optional = ("sample_rate", "n_fft", "description", "extra")
        kwargs = {key: data[key] for key in optional if key in data}
        for key in optional:
            if key in kwargs and kwargs[key] is None:
                raise ValueError(f"'{key}' is null; leave it out to use the default")
        try:
            return cls(stems={k: _stem_stats(k, v) for k, v in stems.items()}, **kwargs)
        except TypeError as err:  # a last guard: every known problem is a ValueError already
            raise ValueError(f"malformed statistics: {err}") from None

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialize to JSON text; also write it to ``path`` if given (atomically)."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> FxNormStats:
        """Load from JSON text (a string starting with ``{``) or from a file path.

        Raises:
            ValueError: no such file, unreadable, not JSON, or not valid statistics; the message
                starts with the file (or ``stats JSON text``) and names the problem.
        """
        text_given = isinstance(source, str) and source.lstrip().startswith("{")
        where = "stats JSON text" if text_given else str(source)
        try:
            data = parse_json(source, what="stats")
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    @classmethod
    def reference_musdb18(cls) -> FxNormStats:
        """The reference's scalar MUSDB18 targets (no spectra: EQ is the identity with them).

        Loudness, mid-energy fractions, onset-peak mean/std and compressor timing as published
        with the reference implementation (``fxdsp/data/fxnorm_musdb18_reference.json``). Its
        onset-peak statistic was measured with librosa's onset detector, ours with an
        energy-novelty detector, so the dynamics targets are approximate for this library.
        """
        res = importlib.resources.files("fxdsp") / "data" / "fxnorm_musdb18_reference.json"
        return cls.from_json(res.read_text(encoding="utf-8"))

    @classmethod
    def corpus_default(cls) -> FxNormStats:
        """Full statistics (spectra included) of the project's own corpus, train split.

        Computed by ``mixfx fxnorm-stats data/corpus/train -o fxdsp/data/fxnorm_corpus.json``
        on the MIDI-rendered corpus of ``mixfx corpus build`` (79 songs). Users training on
        MUSDB18 should compute their own with the same command on its training set.
        """
        res = importlib.resources.files("fxdsp") / "data" / "fxnorm_corpus.json"
        return cls.from_json(res.read_text(encoding="utf-8"))


def _stem_stats(name: object, value: object) -> StemStats:
    """:class:`StemStats` from a JSON object, or a ``ValueError`` naming the stem and field."""
    if not isinstance(value, Mapping):
        raise ValueError(f"stem {name!r}: expected an object, got {_json_type(value)}")
    missing = [k for k in _STEM_REQUIRED if k not in value]
    if missing:
        raise ValueError(f"stem {name!r}: missing field(s) {missing}")
    unknown = sorted(set(value) - set(_STEM_FIELDS))
    if unknown:
        raise ValueError(f"stem {name!r}: unknown field(s) {unknown}")
    try:
        return StemStats(**value)
    except (ValueError, TypeError) as err:
        raise ValueError(f"stem {name!r}: {err}") from None


def _file_measures(
    audio: Tensor, sample_rate: float, n_fft: int, chunk: int
) -> dict[str, Any] | None:
    """Loudness, spectrum shape, onset-peak statistic and mid fraction of one ``(1, 2, T)``."""
    lufs = float(loudness(audio, sample_rate)[0])
    if not math.isfinite(lufs):
        return None
    total = torch.zeros(n_fft // 2 + 1, dtype=torch.float64)
    frames = 0
    hop = n_fft // 4
    step = max(chunk - chunk % hop, hop)
    for start in range(0, audio.shape[-1], step):
        piece = audio[..., start : start + step + n_fft - hop]
        if piece.shape[-1] < n_fft and start > 0:
            break
        mag, count = _mean_magnitude(piece, n_fft)
        total += mag[0]
        frames += count
    spectrum = _unit_rms(total / max(frames, 1))
    return {
        "loudness": lufs,
        "spectrum": spectrum,
        "onset": float(onset_peak_db(audio, sample_rate)[0]),
        "mid": float(mid_fraction(audio)[0]),
    }


def _usable_audio(data: object, rate: object, fs: float) -> tuple[Tensor | None, str]:
    """``(2, samples)`` float64 CPU audio, or ``(None, why it cannot be used)``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or float(rate) != fs:
        return None, f"sample rate {rate} Hz, not {fs:g} Hz (resample it first)"
    try:
        if isinstance(data, Tensor):
            audio = data.detach().to("cpu", torch.float64)
        else:
            audio = torch.from_numpy(np.asarray(data, dtype=np.float64))
    except (TypeError, ValueError) as err:
        return None, f"not audio ({err})"
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        return None, f"shape {tuple(audio.shape)}: expected (channels, samples), 1 or 2 channels"
    if audio.shape[1] < round(0.4 * fs):
        return None, "shorter than 400 ms"
    bad = int((~torch.isfinite(audio)).sum())
    if bad:
        return None, f"{bad} NaN or Inf samples"
    return audio.expand(2, -1).contiguous(), ""


def compute_stats(
    items: Iterable[tuple[Any, ...]],
    *,
    stems: Sequence[str] = STEMS,
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    description: str | None = None,
) -> FxNormStats:
    """Compute FX-normalization statistics from stems in memory.

    Per item (non-silent, stereo or mono duplicated to stereo, at ``sample_rate``): integrated
    loudness, average spectrum shape (:func:`~fxdsp.fxnorm_measures.average_spectrum`,
    accumulated over the whole item in 30 s chunks), the onset-peak statistic and the
    mid-energy fraction. Per stem: the means of loudness (LUFS, arithmetic mean), of the
    spectrum shapes (renormalized to unit RMS), and of the mid fractions; the mean and
    (population) standard deviation of the onset-peak statistic. The compressor timing is the
    reference's per stem (:data:`REFERENCE_COMPRESSOR`).

    An item that cannot be used (another sample rate: resample it first; more than two
    channels; shorter than 400 ms; NaN or Inf samples) is skipped with a warning naming it;
    silent items are skipped quietly. Items of a stem not in ``stems`` are ignored.

    Args:
        items: ``(stem name, audio, sample rate)`` or ``(stem name, audio, sample rate, name)``
            tuples; audio is an array or tensor ``(channels, samples)`` or ``(samples,)``;
            ``name`` (e.g. the file it came from) is used in warnings. A lazy iterable (a
            generator that reads files one by one) keeps memory flat.
        stems: stem names to collect.
        sample_rate: the rate of the statistics (Hz).
        n_fft: FFT size of the spectra.
        description: stored in the stats.

    Returns:
        :class:`FxNormStats` covering the stems that had at least one usable item; its
        ``extra["skipped_files"]`` counts the skipped items.

    Raises:
        ValueError: no usable item, unknown stem names, a folder given instead of audio.
    """
    if isinstance(items, (str, Path)):
        raise ValueError(
            f"compute_stats takes audio, not a folder ({items}): read the files first, e.g. "
            "with `mixfx fxnorm-stats FOLDER -o stats.json`"
        )
    stems = tuple(stems)
    unknown = set(stems) - set(STEMS)
    if unknown:
        raise ValueError(f"unknown stem name(s) {sorted(unknown)}; expected names in {STEMS}")
    fs = float(check_sample_rate(sample_rate))
    if isinstance(n_fft, bool) or not isinstance(n_fft, int) or n_fft < 16:
        raise ValueError(f"n_fft must be an int >= 16, got {n_fft!r}")

    collected: dict[str, list[dict[str, Any]]] = {s: [] for s in stems}
    skipped = 0
    for number, item in enumerate(items):
        if not isinstance(item, tuple) or len(item) not in (3, 4):
            length = f" of length {len(item)}" if isinstance(item, tuple) else ""
            raise ValueError(
                f"item {number}: expected (stem, audio, sample rate[, name]), got "
                f"{type(item).__name__}{length}"
            )
        stem, data, rate = item[:3]
        name = str(item[3]) if len(item) == 4 else f"item {number} ({stem})"
        if stem not in stems:
            if stem in STEMS:
                continue
            raise ValueError(f"{name}: unknown stem name {stem!r}; expected one of {STEMS}")
        audio, problem = _usable_audio(data, rate, fs)
        if audio is None:
            warnings.warn(f"skipping {name}: {problem}", stacklevel=2)
            skipped += 1
            continue
        m = _file_measures(audio[None], fs, n_fft, chunk=round(30 * fs))
        if m is None:  # silent
            skipped += 1
            continue
        collected[stem].append(m)

    out: dict[str, StemStats] = {}
    for stem, ms in collected.items():
        if not ms:
            continue
        onsets = np.array([m["onset"] for m in ms])
        spectrum = _unit_rms(torch.stack([m["spectrum"] for m in ms]).mean(0))
        attack, release, ratio = REFERENCE_COMPRESSOR[stem]
        out[stem] = StemStats(
            loudness_lufs=float(np.mean([m["loudness"] for m in ms])),
            mid_fraction=float(np.mean([m["mid"] for m in ms])),
            onset_peak_mean_db=float(onsets.mean()),
            onset_peak_std_db=float(onsets.std()),
            attack_ms=attack,
            release_ms=release,
            ratio=ratio,
            spectrum=spectrum.tolist(),
            count=len(ms),
        )
    if not out:
        raise ValueError(
            f"no usable (non-silent, {fs:g} Hz, stereo or mono) stem audio among the items "
            f"({skipped} skipped)"
        )
    return FxNormStats(
        stems=out,
        sample_rate=fs,
        n_fft=n_fft,
        description=description if description is not None else "computed from stems in memory",
        extra={"skipped_files": skipped},
    )
