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
   statistics 16× smaller. The spectra are of the mid channel (see
   :func:`~fxdsp.fxnorm_measures.average_spectrum`).
3. **dynamics**: the onset-peak statistic (:func:`~fxdsp.fxnorm_measures.onset_peak_db`) is
   compared with the stem's mean ± std. Items below the interval (more dynamic than the
   reference) are compressed: their peak-normalized (−10 dBFS) audio runs through
   :func:`fxdsp.functional.compressor` with the stem's attack/release on a grid of thresholds
   −10, −15, …, −40 dB at the stem's ratio, then (only if some item is still outside) at ratio
   20, every grid point evaluated for all items at once. Per item, the setting whose statistic
   lands inside the interval closest to the mean is kept (if none lands inside, the one closest
   to the interval). The search compresses the two-channel envelope (peak, RMS) rather than the
   audio: the compressor's linked max-detector gives it exactly the audio's gain, at a fraction
   of the statistic's cost. Items above the interval (already more compressed than the
   reference) are left alone: a compressor cannot expand.
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

The statistics (:class:`~fxdsp.fxnorm_stats.FxNormStats`) are computed from stems in memory by
:func:`~fxdsp.fxnorm_stats.compute_stats` (from a multitrack folder: ``mixfx fxnorm-stats``);
the measures are :mod:`fxdsp.fxnorm_measures`.
:meth:`~fxdsp.fxnorm_stats.FxNormStats.reference_musdb18` is the reference's published scalar
MUSDB18 targets; it has no spectra, so with it the EQ step is the identity (compute your own
statistics on MUSDB18 to get EQ).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from fxdsp._checks import as_number, check_audio
from fxdsp.analysis import _EPS, _PEAK_DB, _onset_stat, onset_peak_db
from fxdsp.functional.dynamics import compressor
from fxdsp.functional.loudness import loudness, normalize_loudness
from fxdsp.functional.reverb import convolve
from fxdsp.fxnorm_measures import _envelopes, average_spectrum
from fxdsp.fxnorm_stats import FxNormStats
from fxdsp.registry import STEMS

__all__ = ["STEMS", "STEPS", "WIDEN_ABOVE", "FxNormalizer"]

#: The normalizer's steps, in the reference's order.
STEPS: tuple[str, ...] = ("loudness", "eq", "dynamics", "stereo", "loudness")
#: Mid-energy fraction above which the stereo step widens first.
WIDEN_ABOVE: dict[str, float] = {"drums": 0.975, "bass": 0.99, "other": 0.975, "vocals": 0.975}

_THRESHOLDS_DB = (-10.0, -15.0, -20.0, -25.0, -30.0, -35.0, -40.0)  # re a -10 dBFS peak
_MAX_RATIO = 20.0
_HAAS_MS = 12.0
_HAAS_GAIN = 0.5


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
    if stems is None or not isinstance(stems, Iterable):
        raise ValueError(
            f"stems must be a stem name, a list of {batch} names or a ({batch},) tensor of "
            f"indices into {STEMS}, got {type(stems).__name__}"
        )
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
        eq_floor_db: spectrum floor relative to its RMS level (dB, in [-300, 0]) in the EQ
            comparison.

    Raises:
        ValueError: an unknown step, or an argument that is not a finite number or is out of
            range.
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
        eq_max_db = as_number(eq_max_db, "eq_max_db")
        eq_smoothing_octaves = as_number(eq_smoothing_octaves, "eq_smoothing_octaves")
        eq_low_hz = as_number(eq_low_hz, "eq_low_hz")
        eq_high_hz = as_number(eq_high_hz, "eq_high_hz")
        eq_floor_db = as_number(eq_floor_db, "eq_floor_db")
        if not eq_max_db > 0:
            raise ValueError(f"eq_max_db must be > 0, got {eq_max_db}")
        if not eq_smoothing_octaves > 0:
            raise ValueError(f"eq_smoothing_octaves must be > 0, got {eq_smoothing_octaves}")
        if not 0 <= eq_low_hz < eq_high_hz:
            raise ValueError(
                f"need 0 <= eq_low_hz < eq_high_hz, got eq_low_hz={eq_low_hz:g}, "
                f"eq_high_hz={eq_high_hz:g}"
            )
        if not -300.0 <= eq_floor_db <= 0.0:
            raise ValueError(
                f"eq_floor_db must be in [-300, 0] dB (relative to the spectrum's RMS level), "
                f"got {eq_floor_db:g}"
            )
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
            ValueError: malformed audio (not stereo, too short, NaN on CPU), missing (None) or
                unknown stems, or stems that the statistics do not cover.
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
