"""The effects demo: a synthesized song section through a chain of fxdsp effects, before and after.

It synthesizes a few bars of music procedurally and deterministically (drums, bass, a chord pad
and an arpeggio in A minor at 120 BPM; numpy only, no sample files), places the instruments in
the stereo field with :func:`fxdsp.functional.stereo.pan`, and runs the mix through a mastering
style chain:

    EQ (low shelf +4 dB at 120 Hz, −3 dB at 400 Hz, +3 dB at 3.5 kHz, high shelf −2 dB at 8 kHz)
    → compressor (−24 dB, 4:1, 10 ms / 150 ms, 6 dB knee) → stereo imager (width 1.4)
    → reverb (RT60 1.2 s, pre-delay 20 ms, damping 0.4, 20 % wet)
    → loudness normalization to −14 LUFS.

It writes, into the output folder (``out/effects-demo/`` by default), each file atomically:
    dry.wav, wet.wav: 32-bit float stereo WAVs at the chosen sample rate;
    spectra.png: average spectra before/after, their difference, and the momentary loudness
        over time with the integrated loudness of each;
    summary.json: the music, the chain's parameters and timings, and the measured figures.

Run it with ``mixfx effects-demo`` (``--help`` lists the options; ``mixfx demo`` is the
style-transfer demo, :mod:`mixfx.demo`); from Python,
:func:`run_demo`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fxdsp import analysis as A
from fxdsp.functional.dynamics import compressor
from fxdsp.functional.filters import parametric_eq
from fxdsp.functional.loudness import normalize_loudness
from fxdsp.functional.reverb import reverb
from fxdsp.functional.stereo import pan, stereo_imager
from fxdsp.io import atomic_write

__all__ = [
    "CHAIN",
    "DRY_LUFS",
    "SOURCES",
    "format_report",
    "run_demo",
    "synth_music",
    "write_json",
    "write_wav",
]

_EPS = 1e-12

# ---------------------------------------------------------------------------------------------
# The music
# ---------------------------------------------------------------------------------------------

TEMPO_BPM = 120.0
STEPS_PER_BAR = 16  # sixteenth notes in 4/4
# Am – F – C – G, one chord a bar: (name, bass root MIDI note, pad voicing MIDI notes)
PROGRESSION: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("Am", 33, (57, 60, 64)),
    ("F", 29, (57, 60, 65)),
    ("C", 36, (55, 60, 64)),
    ("G", 31, (55, 59, 62)),
)

# Drum patterns: step -> velocity, on the 16-step grid.
KICK_STEPS = {0: 1.0, 7: 0.55, 8: 0.9, 10: 0.7}
SNARE_STEPS = {4: 1.0, 12: 1.0, 15: 0.25}
HAT_STEPS = {s: (0.9 if s % 4 == 0 else 0.55 if s % 2 == 0 else 0.35) for s in range(16)}
OPEN_HAT_STEPS = {14: 0.6}
# Bass: (step, semitones above the root, length in steps).
BASS_NOTES = ((0, 0, 3), (3, 0, 2), (6, 12, 2), (8, 0, 3), (11, 7, 2), (14, 12, 2))
# Arpeggio over the pad's chord tones, one note per sixteenth (index into the voicing + octave).
ARP_PATTERN = (0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 2, 3)


@dataclass(frozen=True)
class Source:
    """One instrument of the arrangement: level in the rough mix and pan position."""

    name: str
    gain_db: float
    pan: float


SOURCES: tuple[Source, ...] = (
    Source("kick", -3.0, 0.0),
    Source("snare", -3.0, 0.05),
    Source("hats", -12.0, 0.35),
    Source("bass", -8.0, 0.0),
    Source("pad", -13.0, 0.0),
    Source("arp", -16.0, -0.4),
)
DRY_LUFS = -20.0  # level of the rough mix before the chain


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _shaped_noise(
    rng: np.random.Generator, n: int, sample_rate: float, low_hz: float, high_hz: float, order: int
) -> np.ndarray:
    """White noise band-limited in the frequency domain by Butterworth-like magnitude slopes."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sample_rate) + _EPS
    mag = 1.0 / np.sqrt(1.0 + (low_hz / f) ** (2 * order))
    mag = mag / np.sqrt(1.0 + (f / high_hz) ** (2 * order))
    out = np.fft.irfft(spec * mag, n)
    return out / (np.max(np.abs(out)) + _EPS)


def _place(one_shot: np.ndarray, onsets: np.ndarray, velocities: np.ndarray, n: int) -> np.ndarray:
    """Trigger ``one_shot`` at every onset (samples) with its velocity: one FFT convolution."""
    trigger = np.zeros(n)
    np.add.at(trigger, onsets, velocities)
    size = 1 << math.ceil(math.log2(n + len(one_shot)))
    out = np.fft.irfft(np.fft.rfft(trigger, size) * np.fft.rfft(one_shot, size), size)
    return out[:n]


def _additive(
    freq_hz: float,
    t: np.ndarray,
    sample_rate: float,
    tilt: float,
    count: int,
    decay_s: float | None = None,
    detune_cents: float = 0.0,
) -> np.ndarray:
    """A harmonic tone: partials k·f with amplitude k^-tilt (only those below 0.45·fs).

    With ``decay_s`` each partial decays as exp(−t·k/decay_s), so the tone darkens as it rings.
    """
    f0 = freq_hz * 2.0 ** (detune_cents / 1200.0)
    k = np.arange(1, count + 1)
    k = k[k * f0 < 0.45 * sample_rate]
    amps = k.astype(float) ** -tilt
    partials = np.sin(2.0 * np.pi * f0 * k[:, None] * t[None, :] + 0.3 * k[:, None])
    if decay_s is not None:
        partials = partials * np.exp(-t[None, :] * k[:, None] / decay_s)
    return (amps[:, None] * partials).sum(axis=0) / amps.sum()


def _envelope(t: np.ndarray, attack_s: float, length_s: float, release_s: float) -> np.ndarray:
    """Linear attack, hold until ``length_s``, then a raised-cosine release."""
    rise = np.clip(t / max(attack_s, _EPS), 0.0, 1.0)
    fall = np.clip((t - length_s) / max(release_s, _EPS), 0.0, 1.0)
    return rise * 0.5 * (1.0 + np.cos(np.pi * fall))


def synth_music(seconds: float, sample_rate: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Synthesize the demo's instruments, deterministically for a given seed.

    A loop of Am–F–C–G at 120 BPM (one chord a bar, 2 s a bar): kick (pitch-swept sine),
    snare (two damped modes plus band-passed noise), closed/open hats (high-passed noise), a
    plucked bass (harmonics that decay faster the higher they are), a stereo chord pad (slow
    attack, detuned left/right) and a sixteenth-note arpeggio. The seed drives the noise and a
    little velocity humanization.

    Args:
        seconds: duration in seconds (> 0).
        sample_rate: in Hz.
        seed: seed of the noise and the humanization.

    Returns:
        One ``(2, samples)`` float64 array per name in :data:`SOURCES` (dual mono except the pad),
        each peak-normalized to 1 before its mix gain.
    """
    if seconds <= 0 or sample_rate <= 0:
        raise ValueError(f"seconds and sample_rate must be > 0, got {seconds}, {sample_rate}")
    sr = float(sample_rate)
    n = round(seconds * sr)
    rng = np.random.default_rng(seed)
    step_s = 60.0 / TEMPO_BPM / 4.0
    total_steps = math.ceil(seconds / step_s) + 1

    def hits(pattern: dict[int, float], jitter: float) -> tuple[np.ndarray, np.ndarray]:
        steps = np.arange(total_steps)
        vel = np.array([pattern.get(int(s % STEPS_PER_BAR), 0.0) for s in steps])
        keep = vel > 0
        on = np.round(steps[keep] * step_s * sr).astype(int)
        v = vel[keep] * (1.0 + jitter * rng.uniform(-1.0, 1.0, keep.sum()))
        inside = on < n
        return on[inside], v[inside]

    # Drums: one-shots placed by convolution with a velocity impulse train.
    t = np.arange(round(0.5 * sr)) / sr
    sweep = 48.0 + 110.0 * np.exp(-t / 0.03)
    kick = np.sin(2.0 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / 0.2)
    click = _shaped_noise(rng, len(t), sr, 1500.0, 6000.0, 2) * np.exp(-t / 0.003)
    kick = np.tanh(1.6 * (kick + 0.25 * click))
    snare_body = 0.6 * np.sin(2 * np.pi * 185.0 * t) + 0.3 * np.sin(2 * np.pi * 330.0 * t)
    snare = snare_body * np.exp(-t / 0.05)
    snare += 0.8 * _shaped_noise(rng, len(t), sr, 1800.0, 9000.0, 2) * np.exp(-t / 0.12)
    hat = _shaped_noise(rng, len(t), sr, 7000.0, 16000.0, 3) * np.exp(-t / 0.03)
    open_hat = _shaped_noise(rng, len(t), sr, 6000.0, 16000.0, 3) * np.exp(-t / 0.2)

    drums = {
        "kick": _place(kick, *hits(KICK_STEPS, 0.05), n),
        "snare": _place(snare, *hits(SNARE_STEPS, 0.08), n),
        "hats": _place(hat, *hits(HAT_STEPS, 0.15), n)
        + _place(open_hat, *hits(OPEN_HAT_STEPS, 0.1), n),
    }

    bass = np.zeros(n)
    pad = np.zeros((2, n))
    arp = np.zeros(n)
    bar_s = STEPS_PER_BAR * step_s
    for bar in range(math.ceil(seconds / bar_s)):
        _, root, voicing = PROGRESSION[bar % len(PROGRESSION)]
        bar_start = bar * bar_s
        for step, interval, length in BASS_NOTES:
            start = round((bar_start + step * step_s) * sr)
            if start >= n:
                continue
            dur = length * step_s
            tt = np.arange(min(round((dur + 0.05) * sr), n - start)) / sr
            tone = _additive(_midi_hz(root + interval), tt, sr, 1.0, 12, decay_s=0.9)
            tone += 0.5 * np.sin(2 * np.pi * _midi_hz(root + interval) * tt)  # solid fundamental
            bass[start : start + len(tt)] += tone * _envelope(tt, 0.004, dur * 0.85, 0.05)
        # Pad: the bar's chord held for the whole bar with a slow swell, crossfading into the next.
        start = round(bar_start * sr)
        if start < n:
            tt = np.arange(min(round((bar_s + 0.4) * sr), n - start)) / sr
            env = _envelope(tt, 0.35, bar_s, 0.4) * (1.0 + 0.08 * np.sin(2 * np.pi * 4.5 * tt))
            for side, cents in enumerate((-5.0, 5.0)):
                voice = sum(
                    _additive(_midi_hz(m), tt, sr, 1.6, 8, detune_cents=cents) for m in voicing
                )
                pad[side, start : start + len(tt)] += voice * env
        # Arpeggio: chord tones one and two octaves above the pad, plucked.
        tones = [*voicing, voicing[0] + 12, voicing[1] + 12]
        for step, idx in enumerate(ARP_PATTERN):
            start = round((bar_start + step * step_s) * sr)
            if start >= n:
                continue
            tt = np.arange(min(round(0.35 * sr), n - start)) / sr
            pluck = _additive(_midi_hz(tones[idx] + 12), tt, sr, 1.3, 10, decay_s=0.25)
            accent = 1.0 if step % 4 == 0 else 0.7
            arp[start : start + len(tt)] += accent * pluck * _envelope(tt, 0.002, 0.05, 0.25)

    mono = {**drums, "bass": bass, "arp": arp}
    out: dict[str, np.ndarray] = {}
    for src in SOURCES:
        sig = pad if src.name == "pad" else np.stack([mono[src.name], mono[src.name]])
        out[src.name] = sig / (np.max(np.abs(sig)) + _EPS)
    return out


# ---------------------------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------------------------

EQ_BANDS = ("low_shelf", "peak", "peak", "high_shelf")
CHAIN: dict[str, dict[str, Any]] = {
    "eq": {
        "band_types": list(EQ_BANDS),
        "gain_db": [4.0, -3.0, 3.0, -2.0],
        "freq_hz": [120.0, 400.0, 3500.0, 8000.0],
        "q": [0.707, 1.0, 0.9, 0.707],
    },
    "compressor": {
        "threshold_db": -24.0,
        "ratio": 4.0,
        "attack_ms": 10.0,
        "release_ms": 150.0,
        "knee_db": 6.0,
        "makeup_db": 0.0,
    },
    "stereo_imager": {"width": 1.4},
    "reverb": {"rt60_s": 1.2, "predelay_ms": 20.0, "damping": 0.4, "mix": 0.2},
    "normalize_loudness": {"target_lufs": -14.0},
}


def _describe(stage: str, p: dict[str, Any]) -> str:
    if stage == "mix":
        return f"{len(SOURCES)} instruments panned, rough mix at {DRY_LUFS:g} LUFS"
    if stage == "eq":
        names = {"low_shelf": "low shelf", "high_shelf": "high shelf", "peak": "peak"}
        return ", ".join(
            f"{names.get(k, k)} {g:+g} dB @ {f:g} Hz"
            for k, g, f in zip(p["band_types"], p["gain_db"], p["freq_hz"], strict=True)
        )
    if stage == "compressor":
        return (
            f"{p['threshold_db']:g} dB, {p['ratio']:g}:1, attack {p['attack_ms']:g} ms, "
            f"release {p['release_ms']:g} ms, knee {p['knee_db']:g} dB"
        )
    if stage == "stereo_imager":
        return f"width {p['width']:g}"
    if stage == "reverb":
        return (
            f"RT60 {p['rt60_s']:g} s, pre-delay {p['predelay_ms']:g} ms, damping "
            f"{p['damping']:g}, mix {p['mix']:g}"
        )
    if stage == "normalize_loudness":
        return f"to {p['target_lufs']:g} LUFS"
    return ", ".join(f"{k}={v}" for k, v in p.items())


def _stages(
    sample_rate: float, seed: int
) -> list[tuple[str, str, dict[str, Any], Callable[[Tensor], Tensor]]]:
    """The chain as (name, function path, parameters, callable) in processing order."""
    c = CHAIN
    return [
        (
            "eq",
            "fxdsp.functional.filters.parametric_eq",
            c["eq"],
            lambda x: parametric_eq(
                x,
                sample_rate,
                c["eq"]["gain_db"],
                c["eq"]["freq_hz"],
                c["eq"]["q"],
                band_types=EQ_BANDS,
            ),
        ),
        (
            "compressor",
            "fxdsp.functional.dynamics.compressor",
            c["compressor"],
            lambda x: compressor(x, sample_rate, **c["compressor"]),
        ),
        (
            "stereo_imager",
            "fxdsp.functional.stereo.stereo_imager",
            c["stereo_imager"],
            lambda x: stereo_imager(x, **c["stereo_imager"]),
        ),
        (
            "reverb",
            "fxdsp.functional.reverb.reverb",
            {**c["reverb"], "seed": seed},
            lambda x: reverb(x, sample_rate, **c["reverb"], seed=seed),
        ),
        (
            "normalize_loudness",
            "fxdsp.functional.loudness.normalize_loudness",
            c["normalize_loudness"],
            lambda x: normalize_loudness(x, sample_rate, **c["normalize_loudness"]),
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def measure(x: Tensor, sample_rate: float) -> dict[str, float]:
    """Level, dynamics, stereo and spectral figures of one stereo item (:mod:`fxdsp.analysis`).

    Args:
        x: ``(1, 2, samples)`` audio, at least 3 s (for the short-term loudness and LRA).
        sample_rate: in Hz.

    Returns:
        :func:`fxdsp.analysis.measure`'s figures as floats: ``integrated_lufs`` (BS.1770),
        ``loudness_range_lu`` (EBU Tech 3342), ``max_momentary_lufs``, ``max_short_term_lufs``,
        ``peak_dbfs``, ``rms_dbfs``, ``crest_factor_db``, ``stereo_width`` (side-energy
        fraction), ``side_to_mid_db``, ``lr_balance_db``, ``lr_correlation`` and
        ``spectral_centroid_hz``.
    """
    return {k: float(v[0]) for k, v in A.measure(x.detach().to(torch.float64), sample_rate).items()}


def momentary_loudness(
    x: Tensor, sample_rate: float, hop_s: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Momentary loudness (:func:`fxdsp.analysis.momentary_loudness`) for a plot.

    Returns:
        Block centre times in seconds and the loudness in LUFS floored at −70 (silence reads
        −inf in :mod:`fxdsp.analysis`), both ``(J,)``.
    """
    lufs = A.momentary_loudness(x.detach().to(torch.float64), sample_rate, hop_s=hop_s)[0]
    times = A.frame_times(lufs.shape[-1], sample_rate, A.MOMENTARY_S, hop_s, at="centre")
    return np.asarray(times, dtype=np.float64), np.maximum(lufs.cpu().numpy(), -70.0)


def band_levels(x: Tensor, sample_rate: float, fraction: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Average level per fractional-octave band (:func:`fxdsp.analysis.band_spectrum`).

    Returns:
        Band centre frequencies in Hz and levels in dB (power averaged over the channels; a
        full-scale sine reads −3 dB in its band), both ``(bands,)``.
    """
    bands = A.fractional_octave_bands(sample_rate, fraction=fraction)
    spec = A.band_spectrum(x.detach().to(torch.float64), sample_rate, bands, mode="mean")
    return spec.centre_hz.cpu().numpy(), spec.levels_db[0, 0].cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def write_wav(path: Path, audio: Tensor, sample_rate: int) -> None:
    """``(1, channels, samples)`` audio as a 32-bit float WAV, written atomically."""
    import soundfile as sf

    data = audio.detach()[0].to(torch.float32).cpu().numpy().T  # (samples, channels)
    atomic_write(path, lambda tmp: sf.write(tmp, data, sample_rate, "FLOAT", format="WAV"))


def _plot(path: Path, dry: Tensor, wet: Tensor, sample_rate: float, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    dry_lufs = summary["measured"]["dry"]["integrated_lufs"]
    wet_lufs = summary["measured"]["wet"]["integrated_lufs"]
    colors = {"dry": "#4C72B0", "wet": "#DD8452"}
    f, s_dry = band_levels(dry, sample_rate, fraction=6)
    _, s_wet = band_levels(wet, sample_rate, fraction=6)
    top = min(20000.0, sample_rate / 2)
    band = (f >= 20.0) & (f <= top)

    fig = plt.figure(figsize=(11, 8.5), layout="constrained")
    grid = fig.add_gridspec(3, 1, height_ratios=[2.2, 1.0, 1.8])
    ax_spec = fig.add_subplot(grid[0])
    ax_diff = fig.add_subplot(grid[1], sharex=ax_spec)
    ax_time = fig.add_subplot(grid[2])

    ax_spec.semilogx(
        f[band],
        s_dry[band],
        color=colors["dry"],
        lw=1.6,
        label=f"before (dry)  {dry_lufs:.1f} LUFS",
    )
    ax_spec.semilogx(
        f[band], s_wet[band], color=colors["wet"], lw=1.6, label=f"after (wet)  {wet_lufs:.1f} LUFS"
    )
    peak = max(s_dry[band].max(), s_wet[band].max())
    floor = min(s_dry[band].min(), s_wet[band].min())
    ax_spec.set_ylim(max(floor, peak - 80.0) - 5.0, peak + 5.0)
    ax_spec.set_ylabel("band level (dB, full-scale sine = −3)")
    ax_spec.set_title("Average spectrum (1/6-octave bands)")
    ax_spec.legend(loc="lower left")
    ax_spec.grid(True, which="both", alpha=0.3)
    ax_spec.tick_params(labelbottom=False)

    f3, d_dry = band_levels(dry, sample_rate, fraction=3)
    _, d_wet = band_levels(wet, sample_rate, fraction=3)
    band3 = (f3 >= 20.0) & (f3 <= top)
    ax_diff.semilogx(f3[band3], (d_wet - d_dry)[band3], color="#55A868", lw=1.6, marker=".")
    ax_diff.axhline(
        wet_lufs - dry_lufs,
        color="0.4",
        ls="--",
        lw=1.0,
        label=f"loudness change {wet_lufs - dry_lufs:+.1f} LU",
    )
    ax_diff.set_ylabel("after − before (dB)")
    ax_diff.set_title("Change per frequency (1/3-octave bands)", fontsize="medium")
    ax_diff.set_xlabel("frequency (Hz)")
    ax_diff.set_xlim(20.0, top)
    ax_diff.legend(loc="lower left")
    ax_diff.grid(True, which="both", alpha=0.3)
    ax_diff.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}")
    )

    lows, highs = [], []
    for name, sig, lufs in (("dry", dry, dry_lufs), ("wet", wet, wet_lufs)):
        times, m = momentary_loudness(sig, sample_rate)
        lows.append(min(m.min(), lufs))
        highs.append(max(m.max(), lufs))
        label = "before (dry)" if name == "dry" else "after (wet)"
        ax_time.plot(times, m, color=colors[name], lw=1.6, label=f"{label} momentary")
        ax_time.axhline(
            lufs, color=colors[name], ls="--", lw=1.2, label=f"{label} integrated {lufs:.1f} LUFS"
        )
    # Headroom above the curves for the legend, so that it never hides them.
    span = max(highs) - min(lows)
    ax_time.set_ylim(min(lows) - 0.1 * span - 0.5, max(highs) + 0.55 * span + 1.0)
    ax_time.set_xlim(0.0, dry.shape[-1] / sample_rate)
    ax_time.set_xlabel("time (s)")
    ax_time.set_ylabel("loudness (LUFS)")
    ax_time.set_title("Momentary loudness (BS.1770, 400 ms window)")
    ax_time.legend(loc="upper center", ncol=2, fontsize="small")
    ax_time.grid(True, alpha=0.3)

    fig.suptitle(
        "mixfx effects-demo: EQ → compressor → stereo imager → reverb → loudness normalization",
        fontsize="large",
    )
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """``obj`` as indented JSON (no NaN), written atomically."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic_write(path, write)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def _progress(items: Sequence[Any], enabled: bool) -> Any:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc="effects-demo", unit="stage", leave=False)


def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    seconds: float = 6.0,
    seed: int = 0,
    sample_rate: int = 44100,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Synthesize the example, run the chain, write the four files and return the summary.

    Args:
        out_dir: output folder (created if missing).
        seconds: duration in seconds (at least 1).
        seed: seed of the synthesis and the reverb.
        sample_rate: in Hz (at least 22050, so the 8 kHz shelf lies below Nyquist).
        device: torch device the effects run on.
        progress: show a progress bar over the stages (on a terminal, with tqdm installed).

    Returns:
        The summary written to ``summary.json``.

    Raises:
        ValueError: a duration or sample rate out of range.
        OSError: the output folder cannot be created or written (e.g. it is a file).
    """
    if not 1.0 <= seconds <= 600.0:
        raise ValueError(f"seconds must be in [1, 600], got {seconds}")
    if not 22050 <= sample_rate <= 192000:
        raise ValueError(f"sample_rate must be in [22050, 192000] Hz, got {sample_rate}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    sr = float(sample_rate)

    timings: dict[str, float] = {}
    tic = time.perf_counter()
    sources = synth_music(seconds, sample_rate, seed)
    timings["synth"] = time.perf_counter() - tic

    stages = _stages(sr, seed)
    chain_log: list[dict[str, Any]] = []
    wet = dry = torch.empty(0)
    for name in _progress(["mix", *[s[0] for s in stages]], progress):
        tic = time.perf_counter()
        if name == "mix":
            # All instruments as one batch, each panned by its own (batch,) position.
            stems = torch.from_numpy(np.stack([sources[s.name] for s in SOURCES])).to(device)
            gains = torch.tensor([10.0 ** (s.gain_db / 20.0) for s in SOURCES], device=device)
            stems = (stems * gains.reshape(-1, 1, 1)).to(torch.float32)
            positions = torch.tensor([s.pan for s in SOURCES], device=device)
            mixed = pan(stems, positions).sum(dim=0, keepdim=True)
            dry = normalize_loudness(mixed, sr, DRY_LUFS)
            wet = dry
            entry: dict[str, Any] = {
                "stage": "mix",
                "function": "fxdsp.functional.stereo.pan + fxdsp.functional.loudness."
                "normalize_loudness",
                "params": {
                    "sources": {s.name: {"gain_db": s.gain_db, "pan": s.pan} for s in SOURCES},
                    "target_lufs": DRY_LUFS,
                },
            }
        else:
            _, function, params, apply = next(s for s in stages if s[0] == name)
            wet = apply(wet)
            entry = {"stage": name, "function": function, "params": params}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        entry["seconds"] = time.perf_counter() - tic
        entry["description"] = _describe(name, entry["params"] if name != "mix" else {})
        chain_log.append(entry)
        if not bool(torch.isfinite(wet).all()):
            raise RuntimeError(f"the {name} stage produced non-finite samples")

    try:
        import importlib.metadata

        version = importlib.metadata.version("mixfx")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    summary: dict[str, Any] = {
        "mixfx_version": version,
        "seconds": seconds,
        "samples": int(dry.shape[-1]),
        "sample_rate": sample_rate,
        "channels": int(dry.shape[1]),
        "seed": seed,
        "device": str(device),
        "music": {
            "tempo_bpm": TEMPO_BPM,
            "key": "A minor",
            "progression": [c[0] for c in PROGRESSION],
            "instruments": [s.name for s in SOURCES],
        },
        "chain": chain_log,
        "measured": {"dry": measure(dry, sr), "wet": measure(wet, sr)},
        "timings_s": {**timings, "chain": sum(e["seconds"] for e in chain_log)},
        "files": {
            "dry": "dry.wav",
            "wet": "wet.wav",
            "plot": "spectra.png",
            "summary": "summary.json",
        },
    }
    write_wav(out / "dry.wav", dry, sample_rate)
    write_wav(out / "wet.wav", wet, sample_rate)
    _plot(out / "spectra.png", dry, wet, sr, summary)
    write_json(out / "summary.json", summary)
    summary["out_dir"] = str(out)
    return summary


def format_report(summary: dict[str, Any]) -> str:
    """A short human-readable table of what the demo did and where its files are."""
    lines = [
        f"mixfx effects-demo: {summary['seconds']:g} s of synthesized music "
        f"({summary['music']['key']}, {summary['music']['tempo_bpm']:g} BPM, "
        f"{' '.join(summary['music']['progression'])}), {summary['sample_rate']} Hz stereo, "
        f"seed {summary['seed']}, on {summary['device']}",
        "",
        f"  {'stage':<20} {'time':>8}  parameters",
    ]
    for e in summary["chain"]:
        lines.append(f"  {e['stage']:<20} {e['seconds'] * 1000:>6.0f} ms  {e['description']}")
    dry, wet = summary["measured"]["dry"], summary["measured"]["wet"]
    lines += ["", f"  {'measured':<26} {'before':>9} {'after':>9}"]
    rows = (
        ("integrated loudness (LUFS)", "integrated_lufs", "{:.1f}"),
        ("loudness range (LU)", "loudness_range_lu", "{:.1f}"),
        ("sample peak (dBFS)", "peak_dbfs", "{:.1f}"),
        ("crest factor (dB)", "crest_factor_db", "{:.1f}"),
        ("stereo width (side fraction)", "stereo_width", "{:.2f}"),
        ("side/mid energy (dB)", "side_to_mid_db", "{:.1f}"),
        ("L/R correlation", "lr_correlation", "{:.2f}"),
        ("spectral centroid (Hz)", "spectral_centroid_hz", "{:.0f}"),
    )
    for label, key, fmt in rows:
        if key not in dry:  # e.g. the loudness range of a clip shorter than 3 s
            continue
        lines.append(f"  {label:<26} {fmt.format(dry[key]):>9} {fmt.format(wet[key]):>9}")
    if wet["peak_dbfs"] > 0.0:
        lines.append("  (the wet peak is above 0 dBFS: kept intact in the float WAV, no limiter)")
    out = Path(summary.get("out_dir", "."))
    lines += ["", "  files:"]
    lines += [f"    {out / name}" for name in summary["files"].values()]
    return "\n".join(lines)
