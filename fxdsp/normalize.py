"""FX normalization: pull stems towards average loudness, EQ, dynamics and stereo image.

Martínez-Ramírez et al., "Automatic music mixing with deep learning and out-of-domain data",
ISMIR 2022: wet (already mixed) stems are normalized per stem type so that they act like dry
stems. The steps, in order (each can be switched off):

1. **loudness**: integrated loudness (BS.1770) to the stem's target
   (:func:`fxdsp.functional.normalize_loudness`).
2. **eq**: the item's average magnitude spectrum (Hann STFT, ``n_fft`` = :data:`N_FFT` = 4096,
   hop 1024, averaged over frames and channels, scaled to unit RMS over bins so that it is a
   *shape*) is compared with the stem's reference spectrum:
   ``D = 20 log10((R + ε)/(X + ε))`` dB, projected onto smooth curves of log-frequency
   (triangular bases every ``eq_smoothing_octaves``, at least four FFT bins wide, on the bins in
   [``eq_low_hz``, ``eq_high_hz``]; 0 dB outside) and clamped to ±``eq_max_db`` (12 dB). The
   projection is orthogonal, hence idempotent: what one pass cannot correct is orthogonal to
   what it can, so a second pass changes little. ``10^(D/20)`` is a
   real, zero-phase response; its inverse FFT, truncated to ``eq_taps`` (4095; the reference
   used 1001) taps around lag 0 and Hann-windowed, is a symmetric linear-phase FIR applied by
   FFT convolution with its ``(taps − 1)/2`` samples of delay removed, so the output stays
   time-aligned (zero phase). Spectral regions more than ``eq_floor_db`` (60 dB) below the
   spectrum's RMS level are treated as that floor, so that near-empty bands are not boosted.
   The reference used a 65536-point FFT (1.35 Hz bins); 4096 points (10.8 Hz bins at 44.1 kHz)
   resolve more detail than a 1/3-octave-smoothed, 4095-tap FIR can apply, and make the
   statistics 16× smaller. The spectra are of the mid channel (see :func:`average_spectrum`).
3. **dynamics**: the onset-peak statistic (:func:`onset_peak_db`) is compared with the stem's
   mean ± std. Items below the interval (more dynamic than the reference) are compressed: their
   peak-normalized (−10 dBFS) audio runs through :func:`fxdsp.functional.compressor` with the
   stem's attack/release on a grid of thresholds −10, −15, …, −40 dB at the stem's ratio, then
   (only if some item is still outside) at ratio 20, every grid point evaluated for all items
   at once. Per item, the setting whose statistic lands inside the interval closest to the
   mean is kept (if none lands inside, the one closest to the interval). The search compresses
   the two-channel envelope (peak, RMS) rather than the audio: the compressor's linked
   max-detector gives it exactly the audio's gain, at a fraction of the statistic's cost.
   Items above the interval (already more compressed than the reference) are left alone: a
   compressor cannot expand.
4. **stereo**: with ``M = (L + R)/2``, ``S = (L − R)/2`` and the mid-energy fraction
   ``f = E_M / (E_M + E_S)``: the part of ``S`` correlated with ``M`` is removed
   (``S ← S − (⟨M, S⟩/E_M) M``: this is what makes ``E_L = E_R``, as ``E_L − E_R = 4⟨M, S⟩``);
   if ``f`` is above 0.975 (0.99 for bass) a Haas-style decorrelated side is added
   (``S ← S + g·M[n − d]``, d = 12 ms, g = 0.5, then decorrelated from ``M`` again); finally
   ``M`` and ``S`` are scaled to give exactly the target fraction with the input's energy
   (``a = √(f* E / E_M)``, ``b = √((1 − f*) E / E_S)``). The result has the target fraction and
   L/R energies equal (50/50) up to float rounding.
5. **loudness** again.

Silent items (integrated loudness −inf: no 400 ms block above −70 LUFS) pass through exactly
untouched. The normalizer is preprocessing: it runs under ``torch.no_grad`` (the compressor
search is a discrete choice) on the audio's device, over the whole batch at once; the stems
of a batch may be mixed.

The statistics (:class:`FxNormStats`) are computed from any multitrack folder by
:func:`compute_stats` (CLI: :func:`stats_main`). :meth:`FxNormStats.reference_musdb18` is the
reference's published scalar MUSDB18 targets; it has no spectra, so with it the EQ step is the
identity (compute your own statistics on MUSDB18 to get EQ).
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import math
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fxdsp._checks import as_number, check_audio, check_sample_rate
from fxdsp.functional.dynamics import compressor
from fxdsp.functional.loudness import loudness, normalize_loudness
from fxdsp.functional.reverb import convolve
from fxdsp.io import atomic_write_text

__all__ = [
    "N_FFT",
    "REFERENCE_COMPRESSOR",
    "SAMPLE_RATE",
    "STEMS",
    "STEPS",
    "WIDEN_ABOVE",
    "FxNormStats",
    "FxNormalizer",
    "StemStats",
    "average_spectrum",
    "compute_stats",
    "find_stem_files",
    "mid_fraction",
    "onset_peak_db",
    "stats_main",
]

#: Stem names; an integer stem index points into this tuple (as in :mod:`fxdsp.manipulator`).
STEMS: tuple[str, ...] = ("drums", "bass", "other", "vocals")
#: The normalizer's steps, in the reference's order.
STEPS: tuple[str, ...] = ("loudness", "eq", "dynamics", "stereo", "loudness")
#: Sample rate of the statistics (Hz).
SAMPLE_RATE = 44100
#: FFT size of the average-spectrum grid (``N_FFT // 2 + 1`` bins).
N_FFT = 4096
#: Per-stem compressor timing of the reference: (attack ms, release ms, ratio).
REFERENCE_COMPRESSOR: dict[str, tuple[float, float, float]] = {
    "vocals": (7.5, 400.0, 4.0),
    "drums": (10.0, 180.0, 6.0),
    "bass": (10.0, 500.0, 5.0),
    "other": (15.0, 666.0, 4.0),
}
#: Mid-energy fraction above which the stereo step widens first.
WIDEN_ABOVE: dict[str, float] = {"drums": 0.975, "bass": 0.99, "other": 0.975, "vocals": 0.975}

_FORMAT = "mixfx.fxnorm-stats/1"
_EPS = 1e-12
_DB_FLOOR = -240.0
_PEAK_DB = -10.0  # peak normalization of the dynamics step
_ONSET_FRAME_S = 512 / 44100  # envelope hop (11.6 ms); the window is two hops
_ONSET_LOOKAHEAD = 5  # frames after an onset searched for its peak (~58 ms)
_ONSET_RISE_DB = 2.0  # energy rise (dB per hop) that makes an onset
_ONSET_FLOOR_DB = -60.0  # frames quieter than this (relative to the loudest) are not onsets
_THRESHOLDS_DB = (-10.0, -15.0, -20.0, -25.0, -30.0, -35.0, -40.0)  # re a -10 dBFS peak
_MAX_RATIO = 20.0
_HAAS_MS = 12.0
_HAAS_GAIN = 0.5


# ------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------


@dataclass
class StemStats:
    """Normalization targets of one stem type.

    Args:
        loudness_lufs: integrated loudness target (LUFS).
        mid_fraction: mid-energy fraction target ``E_M / (E_M + E_S)``, in (0, 1].
        onset_peak_mean_db: mean of the onset-peak statistic (dB, see :func:`onset_peak_db`).
        onset_peak_std_db: its standard deviation (dB, >= 0).
        attack_ms: compressor attack of the dynamics step (ms, > 0).
        release_ms: compressor release (ms, > 0).
        ratio: the compressor's base ratio (>= 1).
        spectrum: average magnitude spectrum, ``N_FFT // 2 + 1`` values on the stats' grid,
            unit RMS over bins; None: no EQ for this stem.
        count: number of files the statistics came from (0 for a preset).
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
            spec = [as_number(v, "spectrum value") for v in self.spectrum]
            if any(v < 0 for v in spec):
                raise ValueError("spectrum values must be >= 0 (magnitudes)")
            self.spectrum = spec
        self.count = int(self.count)


@dataclass
class FxNormStats:
    """FX-normalization statistics per stem, saved as JSON (never pickled).

    Args:
        stems: ``{stem name: StemStats}``, names from :data:`STEMS`.
        sample_rate: the rate the statistics were measured at (Hz); audio must match it.
        n_fft: FFT size of the spectra (``n_fft // 2 + 1`` values each).
        description: where the statistics come from.
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
            k: v if isinstance(v, StemStats) else StemStats(**v) for k, v in self.stems.items()
        }
        self.sample_rate = check_sample_rate(self.sample_rate)
        if isinstance(self.n_fft, bool) or not isinstance(self.n_fft, int) or self.n_fft < 16:
            raise ValueError(f"n_fft must be an int >= 16, got {self.n_fft!r}")
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
        """Inverse of :meth:`to_dict`. Raises ValueError on another format or bad values."""
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise ValueError(f"not FX-normalization stats (expected format {_FORMAT!r})")
        try:
            stems = {k: StemStats(**v) for k, v in data["stems"].items()}
        except TypeError as err:
            raise ValueError(f"malformed stem statistics: {err}") from None
        return cls(
            stems=stems,
            sample_rate=data.get("sample_rate", SAMPLE_RATE),
            n_fft=data.get("n_fft", N_FFT),
            description=data.get("description", ""),
            extra=dict(data.get("extra", {})),
        )

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialize to JSON text; also write it to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> FxNormStats:
        """Load from JSON text (a string starting with ``{``) or from a file path."""
        if isinstance(source, str) and source.lstrip().startswith("{"):
            text = source
        else:
            path = Path(source)
            if not path.is_file():
                raise ValueError(f"no stats file at {path}")
            text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"stats are not valid JSON: {err}") from None
        return cls.from_dict(data)

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


# ------------------------------------------------------------------------------------------------
# Measurements (batched)
# ------------------------------------------------------------------------------------------------
def _mean_magnitude(x: Tensor, n_fft: int) -> tuple[Tensor, int]:
    """Sum over frames of the mid channel's ``|STFT|`` ``(B, F)``, and the frame count."""
    samples = x.shape[-1]
    mid = x.mean(1)  # (L + R) / 2 for stereo; the channel itself for mono
    if samples < n_fft:
        mid = torch.nn.functional.pad(mid, (0, n_fft - samples))
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(
        mid, n_fft, hop_length=n_fft // 4, window=window, center=False, return_complex=True
    ).abs()
    return spec.sum(-1), spec.shape[-1]


def _unit_rms(mag: Tensor) -> Tensor:
    return mag / torch.sqrt(mag.square().mean(-1, keepdim=True) + _EPS)


def average_spectrum(x: Tensor, n_fft: int = N_FFT) -> Tensor:
    """Average magnitude spectrum of the mid channel per item, as a shape (unit RMS over bins).

    ``X[k] = mean_frames |STFT_M(k)|`` of the mid ``M = mean_c x_c`` (Hann window, hop
    ``n_fft/4``, no centre padding; a clip shorter than ``n_fft`` is zero-padded), then
    ``X / √(mean_k X[k]² + ε)``. Silence gives zeros.

    The mid is used (not each channel) because the later steps of the normalizer keep its
    shape: the stereo step scales the mid by one number and widens only the side, the loudness
    step is a gain. So the EQ a second pass would apply is only what the first pass could not
    realize (and what the compressor changed).

    Args:
        x: audio ``(batch, channels, samples)``.
        n_fft: FFT size.

    Returns:
        ``(batch, n_fft // 2 + 1)`` in ``x.dtype``.
    """
    check_audio(x)
    mag, frames = _mean_magnitude(x, n_fft)
    return _unit_rms(mag / frames)


def mid_fraction(x: Tensor) -> Tensor:
    """Mid-energy fraction ``E_M / (E_M + E_S + ε)`` with ``M = (L+R)/2``, ``S = (L−R)/2``.

    Args:
        x: stereo audio ``(batch, 2, samples)``.

    Returns:
        ``(batch,)``, 0 for silence.
    """
    check_audio(x, channels=(2,))
    e_mid = (x[:, 0] + x[:, 1]).square().sum(-1)
    e_side = (x[:, 0] - x[:, 1]).square().sum(-1)
    return e_mid / (e_mid + e_side + _EPS)


def _onset_stat(peak_env: Tensor, meansq_env: Tensor, sample_rate: float) -> Tensor:
    """:func:`onset_peak_db` from the channel-max ``|x|`` and channel-mean ``x²`` ``(B, T)``."""
    hop = max(1, round(_ONSET_FRAME_S * sample_rate))
    win = 2 * hop
    env = torch.stack([peak_env, meansq_env], 1)
    if env.shape[-1] < win:
        env = torch.nn.functional.pad(env, (0, win - env.shape[-1]))
    peak = torch.nn.functional.max_pool1d(env[:, :1], win, hop)[:, 0]
    energy = torch.nn.functional.avg_pool1d(env[:, 1:], win, hop)[:, 0]
    item_peak = peak.amax(-1, keepdim=True)
    peak_db = _PEAK_DB + 20.0 * torch.log10((peak + _EPS) / (item_peak + _EPS))
    level_db = 10.0 * torch.log10((energy + _EPS**2) / (energy.amax(-1, keepdim=True) + _EPS**2))
    level_db = level_db.clamp_min(_ONSET_FLOOR_DB - 20.0)
    floor = torch.full_like(level_db[:, :1], _ONSET_FLOOR_DB - 20.0)
    rise = (level_db - torch.cat([floor, level_db[:, :-1]], -1)).relu()
    left = torch.cat([torch.zeros_like(rise[:, :1]), rise[:, :-1]], -1)
    right = torch.cat([rise[:, 1:], torch.zeros_like(rise[:, :1])], -1)
    audible = level_db > _ONSET_FLOOR_DB
    onset = (rise > _ONSET_RISE_DB) & (rise >= left) & (rise > right) & audible
    ahead = torch.nn.functional.pad(peak_db, (0, _ONSET_LOOKAHEAD - 1), value=_DB_FLOOR)
    onset_peak = torch.nn.functional.max_pool1d(ahead[:, None], _ONSET_LOOKAHEAD, 1)[:, 0]
    has_onset = onset.any(-1, keepdim=True)
    mask = torch.where(has_onset, onset, audible)
    values = torch.where(mask, onset_peak, torch.full_like(onset_peak, math.nan))
    q75 = torch.nanquantile(values, 0.75, dim=-1, keepdim=True)
    top = mask & (onset_peak >= torch.nan_to_num(q75, nan=_DB_FLOOR))
    count = top.sum(-1)
    stat = (onset_peak * top).sum(-1) / count.clamp_min(1)
    return torch.where(count > 0, stat, torch.full_like(stat, _DB_FLOOR))


def _envelopes(x: Tensor) -> Tensor:
    """``(B, 2, T)``: channel-max ``|x|`` and channel RMS ``√(mean_c x²)``.

    Fed to the (stereo-linked, max-detector) compressor, this pair is compressed by exactly the
    gain the audio gets, since its detector ``max(|x|max, RMS) = |x|max`` is the audio's.
    """
    return torch.stack([x.abs().amax(1), x.square().mean(1).sqrt()], 1)


def onset_peak_db(x: Tensor, sample_rate: float) -> Tensor:
    """Onset-peak statistic in dB: how loud the strong onsets are below the peak.

    After peak normalization to −10 dBFS: the envelope is framed (hop 11.6 ms, window 23.2 ms,
    channel-max peaks and channel-mean energies); the novelty is the frame-to-frame rise of the
    log energy, ``n_j = max(E_j − E_{j−1}, 0)`` in dB; an onset is a local maximum of ``n``
    above 2 dB in a frame no more than 60 dB below the loudest; its peak is the largest frame
    peak in the next 58 ms. The statistic is the mean (in dB) of the onset peaks at or above the
    75th percentile of the item's onset peaks. An item without onsets uses every frame above the
    floor instead. Silence gives a large negative finite value (never NaN).

    Args:
        x: audio ``(batch, channels, samples)``.
        sample_rate: in Hz.

    Returns:
        ``(batch,)`` in dB (float64), at most −10.
    """
    check_audio(x)
    fs = check_sample_rate(sample_rate)
    env = _envelopes(x.detach().to(torch.float64))
    return _onset_stat(env[:, 0], env[:, 1].square(), fs)


# ------------------------------------------------------------------------------------------------
# The normalizer
# ------------------------------------------------------------------------------------------------
def _stem_indices(stems: Sequence[str] | str | Tensor, batch: int, device: torch.device) -> Tensor:
    if isinstance(stems, Tensor):
        if stems.ndim != 1 or stems.shape[0] != batch:
            raise ValueError(
                f"stems tensor must be (batch,)=({batch},), got shape {tuple(stems.shape)}"
            )
        if stems.is_floating_point() or stems.is_complex() or stems.dtype == torch.bool:
            raise ValueError(f"stems tensor must hold integer indices, got dtype {stems.dtype}")
        idx = stems.to(device=device, dtype=torch.long)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(STEMS)):
            raise ValueError(f"stem indices must be in [0, {len(STEMS) - 1}] (into {STEMS})")
        return idx
    if isinstance(stems, str):
        stems = [stems] * batch
    names = list(stems)
    if len(names) != batch:
        raise ValueError(f"got {len(names)} stem names for a batch of {batch}")
    for name in names:
        if name not in STEMS:
            raise ValueError(f"unknown stem name {name!r}; expected one of {STEMS}")
    return torch.tensor([STEMS.index(n) for n in names], dtype=torch.long, device=device)


def _log_projection(
    n_fft: int, sample_rate: float, octaves: float, low_hz: float, high_hz: float
) -> Tensor:
    """``(F, F)`` orthogonal projection onto smooth curves in (warped) log-frequency.

    The basis is triangular "hat" functions centred every ``octaves`` on the warped scale
    ``u = log2(f + f0)`` from ``low_hz`` to ``high_hz`` (a partition of unity), evaluated on the
    FFT bins in ``[low_hz, high_hz]`` (other bins map to 0). ``f0`` makes the hats at least four
    FFT bins wide at low frequencies, where a 1/3 octave is narrower than the FIR can resolve;
    above a few hundred Hz the scale is plain log-frequency. ``P = B B⁺`` is idempotent: the
    part of a spectral difference that one EQ pass cannot correct is orthogonal to what it can,
    so a second pass has (almost) nothing left to do. float64, CPU.
    """
    bins = n_fft // 2 + 1
    bin_hz = sample_rate / n_fft
    freqs = torch.arange(bins, dtype=torch.float64) * bin_hz
    inside = (freqs >= low_hz) & (freqs <= high_hz)
    f0 = 4.0 * bin_hz / (2.0**octaves - 1.0)
    warped = torch.log2(freqs + f0)
    lo, hi = math.log2(low_hz + f0), math.log2(high_hz + f0)
    centres = torch.arange(lo, hi + octaves, octaves, dtype=torch.float64)
    basis = (1.0 - (warped[:, None] - centres[None, :]).abs() / octaves).clamp_min(0.0)
    basis = basis * inside[:, None]
    return basis @ torch.linalg.pinv(basis)


class FxNormalizer(nn.Module):
    """Batched FX normalization of stems (see the module docstring for every step).

    Args:
        stats: the per-stem targets.
        steps: the steps to run, in this order (default :data:`STEPS`, the reference's);
            each one of ``"loudness"``, ``"eq"``, ``"dynamics"``, ``"stereo"``. Leave one out
            to switch it off; ``()`` is the identity.
        eq_taps: FIR length of the EQ step (odd, at most ``n_fft − 1``). The reference used
            1001; the default 4095 uses the whole spectrum grid, so that the smoothed curve is
            realized in the bass range too (a 1001-tap Hann-windowed FIR smears the response
            over about 90 Hz at 44.1 kHz). The cost hardly depends on it (FFT convolution).
        eq_max_db: largest EQ boost/cut (dB).
        eq_smoothing_octaves: width of the log-frequency smoothing of the EQ curve (octaves).
        eq_low_hz: the EQ curve is 0 dB below this frequency.
        eq_high_hz: and above this one.
        eq_floor_db: spectrum floor relative to its RMS level (dB) in the EQ comparison.

    Raises:
        ValueError: an unknown step or an argument out of range.
    """

    def __init__(
        self,
        stats: FxNormStats,
        steps: Sequence[str] = STEPS,
        *,
        eq_taps: int = 4095,
        eq_max_db: float = 12.0,
        eq_smoothing_octaves: float = 1.0 / 3.0,
        eq_low_hz: float = 30.0,
        eq_high_hz: float = 18000.0,
        eq_floor_db: float = -60.0,
    ) -> None:
        super().__init__()
        if not isinstance(stats, FxNormStats):
            raise ValueError(f"stats must be FxNormStats, got {type(stats).__name__}")
        if isinstance(steps, str):
            raise ValueError("steps must be a sequence of step names, not one string")
        steps = tuple(steps)
        for s in steps:
            if s not in ("loudness", "eq", "dynamics", "stereo"):
                raise ValueError(f"unknown step {s!r}; steps are loudness, eq, dynamics, stereo")
        if isinstance(eq_taps, bool) or not isinstance(eq_taps, int) or eq_taps < 3:
            raise ValueError(f"eq_taps must be an odd int >= 3, got {eq_taps!r}")
        if eq_taps % 2 == 0:
            raise ValueError(f"eq_taps must be odd (a symmetric FIR), got {eq_taps}")
        if eq_taps > stats.n_fft - 1:
            raise ValueError(
                f"eq_taps={eq_taps} exceeds the spectrum grid (at most n_fft - 1 = "
                f"{stats.n_fft - 1})"
            )
        if not eq_max_db > 0 or not eq_smoothing_octaves > 0:
            raise ValueError("eq_max_db and eq_smoothing_octaves must be > 0")
        if not 0 <= eq_low_hz < eq_high_hz:
            raise ValueError(f"need 0 <= eq_low_hz < eq_high_hz, got {eq_low_hz}, {eq_high_hz}")
        self.stats = stats
        self.steps = steps
        self.sample_rate = stats.sample_rate
        self.eq_taps = eq_taps
        self.eq_max_db = float(eq_max_db)
        self.eq_smoothing_octaves = float(eq_smoothing_octaves)
        self.eq_low_hz = float(eq_low_hz)
        self.eq_high_hz = float(eq_high_hz)
        self.eq_floor = 10.0 ** (float(eq_floor_db) / 20.0)

        nan = math.nan
        rows = [stats.stems.get(s) for s in STEMS]
        self._present = torch.tensor([r is not None for r in rows])

        def table(attr: str) -> Tensor:
            return torch.tensor(
                [getattr(r, attr) if r is not None else nan for r in rows], dtype=torch.float64
            )

        self._loudness = table("loudness_lufs")
        self._mid = table("mid_fraction")
        self._onset_mean = table("onset_peak_mean_db")
        self._onset_std = table("onset_peak_std_db")
        self._attack = table("attack_ms")
        self._release = table("release_ms")
        self._ratio = table("ratio")
        self._widen = torch.tensor([WIDEN_ABOVE[s] for s in STEMS], dtype=torch.float64)
        bins = stats.n_fft // 2 + 1
        self._has_spectrum = torch.tensor([r is not None and r.spectrum is not None for r in rows])
        self._spectra = torch.stack(
            [
                torch.tensor(r.spectrum, dtype=torch.float64)
                if r is not None and r.spectrum is not None
                else torch.ones(bins, dtype=torch.float64)
                for r in rows
            ]
        )
        self._cache: dict[tuple[str, torch.dtype], Tensor] = {}

    def extra_repr(self) -> str:
        return f"steps={self.steps}, stems={tuple(self.stats.stems)}, eq_taps={self.eq_taps}"

    # -- helpers ---------------------------------------------------------------------------------
    def _smoother(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        key = (str(device), dtype)
        if key not in self._cache:
            m = _log_projection(
                self.stats.n_fft,
                self.sample_rate,
                self.eq_smoothing_octaves,
                self.eq_low_hz,
                self.eq_high_hz,
            )
            self._cache[key] = m.to(device=device, dtype=dtype)
        return self._cache[key]

    def _eq_curve_db(self, x: Tensor, idx: Tensor) -> Tensor:
        """The smoothed, clamped EQ curve ``(B, F)`` in dB for each item."""
        n_fft = self.stats.n_fft
        dtype = x.dtype
        item = average_spectrum(x, n_fft)
        ref = self._spectra.to(device=x.device, dtype=dtype)[idx]
        floor = self.eq_floor
        diff = 20.0 * torch.log10((ref + floor) / (item + floor))
        diff = diff @ self._smoother(x.device, dtype).T
        return diff.clamp(-self.eq_max_db, self.eq_max_db)

    def _eq(self, x: Tensor, idx: Tensor, on: Tensor) -> Tensor:
        """Zero-phase linear-phase FIR EQ towards the stem's reference spectrum."""
        n_fft = self.stats.n_fft
        half = self.eq_taps // 2
        curve = self._eq_curve_db(x, idx)
        response = torch.pow(10.0, curve / 20.0)
        impulse = torch.fft.irfft(response, n=n_fft)  # zero phase: symmetric around lag 0
        fir = torch.cat([impulse[:, n_fft - half :], impulse[:, : half + 1]], -1)
        fir = (
            fir
            * torch.hann_window(self.eq_taps + 2, periodic=False, dtype=x.dtype).to(x.device)[1:-1]
        )
        padded = torch.nn.functional.pad(x, (0, half))
        y = convolve(padded, fir[:, None, :])[..., half:]
        return torch.where(on[:, None, None], y, x)

    def _dynamics(self, x: Tensor, idx: Tensor, on: Tensor) -> Tensor:
        """Compress items whose onset-peak statistic is below mean − std (batched grid search)."""
        fs = self.sample_rate
        stat = onset_peak_db(x, fs)
        mean = self._onset_mean.to(x.device)[idx]
        std = self._onset_std.to(x.device)[idx]
        need = on & (stat < mean - std)
        sub = need.nonzero().squeeze(1)
        if sub.numel() == 0:
            return x
        xs = x[sub]
        mean, low, high = mean[sub], (mean - std)[sub], (mean + std)[sub]
        sidx = idx[sub]
        attack = self._attack.to(x.device)[sidx]
        release = self._release.to(x.device)[sidx]
        base_ratio = self._ratio.to(x.device)[sidx]
        peak = xs.detach().abs().amax(dim=(1, 2))
        scale = (10.0 ** (_PEAK_DB / 20.0) / peak.clamp_min(_EPS)).to(xs.dtype)[:, None, None]
        xn = xs * scale
        env = _envelopes(xn.to(torch.float64))
        attack, release = attack.to(torch.float64), release.to(torch.float64)
        # Batched grid search, every item at once: thresholds -10 ... -40 dB at the stem's ratio,
        # then (if some item is still outside) at ratio 20. The statistic is not monotonic in
        # the threshold (the attack lets transients through), hence a grid, not a bisection.
        # Per item, keep the setting that lands inside the interval closest to the mean, or
        # else the one closest to the interval.
        best_cost = torch.full_like(mean, math.inf)
        best_thr = torch.full_like(mean, _THRESHOLDS_DB[0])
        best_ratio = base_ratio.clone()
        for ratio in (base_ratio, torch.full_like(base_ratio, _MAX_RATIO).maximum(base_ratio)):
            for thr in _THRESHOLDS_DB:
                y = compressor(env, fs, thr, ratio, attack, release)
                stat_c = _onset_stat(y[:, 0], y[:, 1].square(), fs)
                inside = (stat_c >= low) & (stat_c <= high)
                outside = (low - stat_c).relu() + (stat_c - high).relu()
                cost = torch.where(inside, (stat_c - mean).abs(), 1e3 + outside)
                better = cost < best_cost
                best_cost = torch.where(better, cost, best_cost)
                best_thr = torch.where(better, thr, best_thr)
                best_ratio = torch.where(better, ratio, best_ratio)
            if bool((best_cost < 1e3).all()):
                break
        thr_t, ratio_t = best_thr.to(xs.dtype), best_ratio.to(xs.dtype)
        y = compressor(xn, fs, thr_t, ratio_t, attack.to(xs.dtype), release.to(xs.dtype)) / scale
        return x.index_copy(0, sub, y)

    def _stereo(self, x: Tensor, idx: Tensor, on: Tensor) -> Tensor:
        """Mid-energy fraction to the target, L/R energies balanced (energy kept).

        A stem whose channels are out of phase (mid-energy fraction below ``1 − widen``
        threshold, e.g. a polarity-inverted channel: almost no mid to scale) first gets its
        right channel's polarity inverted, then is treated like any other.
        """
        e_l, e_r = x[:, 0].square().sum(-1), x[:, 1].square().sum(-1)
        frac0 = ((x[:, 0] + x[:, 1]) * 0.5).square().sum(-1) / ((e_l + e_r) * 0.5 + _EPS)
        flip = on & (frac0 < 1.0 - self._widen.to(x.device)[idx]) & (e_l + e_r > 0)
        x = torch.where(flip[:, None, None], torch.stack([x[:, 0], -x[:, 1]], 1), x)
        mid = (x[:, 0] + x[:, 1]) * 0.5
        side = (x[:, 0] - x[:, 1]) * 0.5
        e_total = mid.square().sum(-1) + side.square().sum(-1)
        e_mid = mid.square().sum(-1)

        def decorrelate(s: Tensor) -> Tensor:
            proj = (mid * s).sum(-1) / (e_mid + _EPS)
            return s - proj[:, None] * mid

        side = decorrelate(side)
        frac = e_mid / (e_mid + side.square().sum(-1) + _EPS)
        widen = on & (frac > self._widen.to(x.device)[idx])
        delay = max(1, round(_HAAS_MS * 1e-3 * self.sample_rate))
        delayed = torch.nn.functional.pad(mid, (delay, 0))[:, : mid.shape[-1]]
        widened = decorrelate(side + _HAAS_GAIN * delayed)
        side = torch.where(widen[:, None], widened, side)
        e_side = side.square().sum(-1)
        target = self._mid.to(device=x.device, dtype=x.dtype)[idx]
        a = torch.sqrt(target * e_total / (e_mid + _EPS))
        b = torch.sqrt((1.0 - target) * e_total / (e_side + _EPS))
        mid = mid * a[:, None]
        side = side * b[:, None]
        y = torch.stack([mid + side, mid - side], dim=1)
        return torch.where(on[:, None, None], y, x)

    # -- call ------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, audio: Tensor, stems: Sequence[str] | str | Tensor) -> Tensor:
        """Normalize a batch of stems.

        Args:
            audio: stereo audio ``(batch, 2, samples)`` at ``stats.sample_rate``, at least
                400 ms long.
            stems: the stem of each item: a name, a list of ``batch`` names from
                :data:`STEMS`, or a ``(batch,)`` integer tensor indexing :data:`STEMS`.

        Returns:
            Normalized audio, same shape, dtype and device; silent items unchanged.

        Raises:
            ValueError: malformed audio (not stereo, too short, NaN on CPU), unknown stems, or
                stems that the statistics do not cover.
        """
        check_audio(audio, "audio", channels=(2,))
        min_len = round(0.4 * self.sample_rate)
        if audio.shape[-1] < min_len:
            raise ValueError(
                f"audio has {audio.shape[-1]} samples; normalization needs at least 400 ms "
                f"({min_len} samples at {self.sample_rate:g} Hz)"
            )
        idx = _stem_indices(stems, audio.shape[0], audio.device)
        present = self._present.to(audio.device)[idx]
        if not bool(present.all()):
            missing = sorted({STEMS[i] for i in idx[~present].tolist()})
            raise ValueError(
                f"the statistics have no entry for stem(s) {missing} (they cover "
                f"{sorted(self.stats.stems)})"
            )
        work = audio if audio.dtype in (torch.float32, torch.float64) else audio.float()
        silent = ~torch.isfinite(loudness(work, self.sample_rate))
        on = ~silent
        target_lufs = self._loudness.to(work.device)[idx]
        # Silent items get their own target: normalize_loudness leaves them alone anyway.
        x = work
        for step in self.steps:
            if step == "loudness":
                x = normalize_loudness(x, self.sample_rate, target_lufs.to(x.dtype))
            elif step == "eq":
                eq_on = on & self._has_spectrum.to(x.device)[idx]
                if bool(eq_on.any()):
                    x = self._eq(x, idx, eq_on)
            elif step == "dynamics":
                x = self._dynamics(x, idx, on)
            elif step == "stereo":
                x = self._stereo(x, idx, on)
        x = torch.where(silent[:, None, None], work, x)
        return x if x.dtype == audio.dtype else x.to(audio.dtype)


# ------------------------------------------------------------------------------------------------
# Computing statistics
# ------------------------------------------------------------------------------------------------
def find_stem_files(root: str | Path, stems: Sequence[str] = STEMS) -> list[tuple[str, Path]]:
    """Every ``<anything>/<song>/<stem>.{wav,flac}`` below ``root``, sorted by path.

    Raises:
        ValueError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in (".wav", ".flac"):
            name = path.stem.lower()
            if name in stems:
                out.append((name, path))
    return out


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


def compute_stats(
    source: str | Path | Iterable[tuple[str, Any, float]],
    *,
    stems: Sequence[str] = STEMS,
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    progress: bool = True,
    description: str | None = None,
) -> FxNormStats:
    """Compute FX-normalization statistics from a multitrack folder or stream of stems.

    Per file (non-silent, stereo or mono duplicated to stereo, at ``sample_rate``): integrated
    loudness, average spectrum shape (:func:`average_spectrum`, accumulated over the whole file
    in chunks), :func:`onset_peak_db` and :func:`mid_fraction`. Per stem: the means of
    loudness (LUFS, arithmetic mean), of the spectrum shapes (renormalized to unit RMS), and of
    the mid fractions; the mean and (population) standard deviation of the onset-peak
    statistic. The compressor timing is the reference's per stem (:data:`REFERENCE_COMPRESSOR`).

    Args:
        source: a folder (``<anything>/<song>/<stem>.{wav,flac}``, read with soundfile), or an
            iterable of ``(stem name, audio array (channels, samples) or (samples,), rate)``.
        stems: stem names to collect.
        sample_rate: files at another rate are skipped with a warning naming the file
            (resampling is out of scope).
        n_fft: FFT size of the spectra.
        progress: show a tqdm progress bar (if tqdm is installed).
        description: stored in the stats (default: the folder).

    Returns:
        :class:`FxNormStats` covering the stems that had at least one usable file.

    Raises:
        ValueError: no usable stem file found, unknown stem names.
    """
    stems = tuple(stems)
    unknown = set(stems) - set(STEMS)
    if unknown:
        raise ValueError(f"unknown stem name(s) {sorted(unknown)}; expected names in {STEMS}")
    fs = float(check_sample_rate(sample_rate))
    if isinstance(source, (str, Path)):
        files = find_stem_files(source, stems)
        if not files:
            raise ValueError(
                f"no stem files (<song>/{{{','.join(stems)}}}.wav|flac) found under {source}"
            )
        items: Iterable[tuple[str, Any, Any]] = files
        total: int | None = len(files)
        desc = description if description is not None else f"computed from {Path(source).name}"
    else:
        items = source
        total = len(source) if isinstance(source, Sequence) else None
        desc = description or "computed from an iterable of stems"

    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="fxnorm-stats", unit="file")
        except ImportError:
            bar = None

    collected: dict[str, list[dict[str, Any]]] = {s: [] for s in stems}
    skipped = 0
    try:
        for stem, data, *rest in items:
            if bar is not None:
                bar.update(1)
            if stem not in stems:
                if stem in STEMS:
                    continue
                raise ValueError(f"unknown stem name {stem!r}; expected one of {STEMS}")
            if isinstance(data, Path):
                import soundfile as sf

                name = str(data)
                array, rate = sf.read(str(data), dtype="float64", always_2d=True)
                array = array.T
            else:
                name = f"item {stem!r}"
                array = np.asarray(data, dtype=np.float64)
                rate = rest[0] if rest else fs
                if array.ndim == 1:
                    array = array[None]
            if float(rate) != fs:
                warnings.warn(
                    f"skipping {name}: sample rate {rate} Hz, not {fs:g} Hz (resample it first)",
                    stacklevel=2,
                )
                skipped += 1
                continue
            if array.ndim != 2 or array.shape[0] not in (1, 2):
                warnings.warn(f"skipping {name}: {array.shape[0]} channels", stacklevel=2)
                skipped += 1
                continue
            if array.shape[1] < round(0.4 * fs):
                warnings.warn(f"skipping {name}: shorter than 400 ms", stacklevel=2)
                skipped += 1
                continue
            if array.shape[0] == 1:
                array = np.repeat(array, 2, axis=0)
            audio = torch.from_numpy(np.ascontiguousarray(array))[None]
            m = _file_measures(audio, fs, n_fft, chunk=round(30 * fs))
            if m is None:
                skipped += 1
                continue
            collected[stem].append(m)
    finally:
        if bar is not None:
            bar.close()

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
            f"no usable (non-silent, {fs:g} Hz, stereo or mono) stem file in the source "
            f"({skipped} skipped)"
        )
    return FxNormStats(
        stems=out,
        sample_rate=fs,
        n_fft=n_fft,
        description=desc,
        extra={"skipped_files": skipped},
    )


def stats_main(argv: list[str] | None = None) -> int:
    """``mixfx fxnorm-stats DATA_DIR -o stats.json``: compute and save normalization stats.

    Returns:
        The exit code: 0 on success, 1 on a user error (message on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="mixfx fxnorm-stats",
        description=(
            "Compute FX-normalization statistics (loudness, spectrum, onset peaks, stereo "
            "image per stem) from a multitrack folder <anything>/<song>/<stem>.{wav,flac}."
        ),
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", help="multitrack folder")
    parser.add_argument("-o", "--output", default="fxnorm_stats.json", help="output JSON file")
    parser.add_argument("--n-fft", type=int, default=N_FFT, help="FFT size of the spectra")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        stats = compute_stats(args.data_dir, n_fft=args.n_fft, progress=not args.no_progress)
        out = Path(args.output)
        if out.parent != Path("."):
            out.parent.mkdir(parents=True, exist_ok=True)
        stats.to_json(out)
    except (ValueError, OSError) as err:
        print(f"mixfx fxnorm-stats: error: {err}", file=sys.stderr)
        return 1
    for stem, st in stats.stems.items():
        print(
            f"{stem:7s} files={st.count:4d} loudness={st.loudness_lufs:7.2f} LUFS "
            f"mid={st.mid_fraction:.3f} onset_peak={st.onset_peak_mean_db:.2f}"
            f"±{st.onset_peak_std_db:.2f} dB"
        )
    print(f"wrote {out}")
    return 0
