"""A third effects design for training triplets, written here without an effects library.

fxdsp's reference chain (RBJ biquads, a recursive peak compressor, a band-wise
decaying-noise reverb, levels matched) and dasp's (:mod:`fxdata.dasp_chain`: frequency-sampled
biquads, an instantaneous peak compressor, a noise-shaped reverb) are two designs of each
effect, and neither reverb is algorithmic. This one is a third, of other families again, so
that a model trained on a mixture of designs learns the style rather than a design; pedalboard
(:mod:`fxencoder.pedalboard_styles`) stays unseen, as the independent check.

The chain, in this order, each effect on with probability ``probability`` (independently per
item and effect; an effect that is off is skipped):

1. ``compressor``: a look-ahead compressor on a windowed RMS: the power of the mid,
   ``(L + R) / 2``, averaged over a centred window of ``window_ms``, a soft-knee static curve
   (threshold, ratio, knee, after Giannoulis, Massberg & Reiss, JAES 2012), the gain
   reduction averaged again over the same window (no attack or release: the window is the
   time constant), and a make-up gain; stereo-linked;
2. ``eq``: a free-form zero-phase EQ: a smooth curve in dB over log frequency, the sum of ten
   raised-cosine bumps one octave wide (centres 31.25 Hz … 16 kHz, each ``±depth_db``;
   neighbours sum to one, so equal bands make a flat shelf) and a tilt around 1 kHz (dB per
   octave; it goes on below the lowest bump and above the highest, e.g. ±8.5 dB at 20 Hz for
   the steepest tilt), applied as a real gain per FFT bin;
3. ``width``: mid/side with the side scaled by a frequency-dependent width, ``bass_width ×
   width`` below ``crossover_hz`` and ``width`` above, joined by a one-octave cos² fade (the
   "mono bass" of mastering), zero-phase like the EQ;
4. ``pan``: a −4.5 dB balance law, ``L × (1 − p) ** 0.75``, ``R × (1 + p) ** 0.75`` (unity
   at the centre);
5. ``reverb``: a feedback delay network (after Jot & Chaigne, AES 1991): eight delay lines (lengths
   from a fixed set of mutually prime-ish times scaled by ``size``), a Householder feedback
   matrix, in each line a one-pole absorbent filter whose gains at DC and at Nyquist set the
   decay to exactly ``t60_s`` and ``t60_s × hf_ratio``, input, left and right tap vectors
   from three rows of a Hadamard matrix (orthogonal: left and right decorrelated),
   ``predelay_ms``; its impulse response (3 s, unit energy per channel) is drawn with the
   chain and added to the dry signal, ``x + wet × (x ∗ h)``;
6. ``gain``: a gain in dB.

The output level is not matched to the input's. Each control's range (:data:`RANGES`) is
drawn uniformly, or log-uniformly where marked. Needs torch, numpy and numba only.

Example::

    gen = torch.Generator().manual_seed(0)
    params = sample_house_params(8, generator=gen, sample_rate=44100.0)
    y_a, y_b = apply_house_chain(a, params), apply_house_chain(b, params)  # one style
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

from fxdata.drawn_chain import (
    DrawnChain,
    check_chain_input,
    check_draw_arguments,
    draw_controls,
    where_on,
)
from fxdsp.functional import convolve, gain, left_right, mid_side
from fxdsp.functional.reverb import next_fast_len

__all__ = [
    "EFFECTS",
    "RANGES",
    "HouseChainParams",
    "apply_house_chain",
    "eq_curve_db",
    "sample_house_params",
    "static_curve_db",
]

#: The chain's effects, in processing order.
EFFECTS: tuple[str, ...] = ("compressor", "eq", "width", "pan", "reverb", "gain")

#: The EQ's bump centres (Hz): ten octaves.
EQ_CENTRES_HZ: tuple[float, ...] = tuple(31.25 * 2.0**k for k in range(10))

#: Each control's ``(effect, low, high, log)``; drawn log-uniformly when ``log`` is true.
RANGES: dict[str, tuple[str, float, float, bool]] = {
    "threshold_db": ("compressor", -42.0, -12.0, False),
    "ratio": ("compressor", 1.5, 10.0, True),
    "knee_db": ("compressor", 0.5, 12.0, True),
    "window_ms": ("compressor", 5.0, 80.0, True),
    "makeup_db": ("compressor", 0.0, 6.0, False),
    **{f"band{k}_db": ("eq", -1.0, 1.0, False) for k in range(len(EQ_CENTRES_HZ))},
    "depth_db": ("eq", 2.0, 9.0, False),
    "tilt_db": ("eq", -1.5, 1.5, False),
    "width": ("width", 0.0, 1.8, False),
    "bass_width": ("width", 0.0, 1.0, False),
    "crossover_hz": ("width", 80.0, 400.0, True),
    "pan": ("pan", -0.6, 0.6, False),
    "t60_s": ("reverb", 0.3, 2.5, True),
    "hf_ratio": ("reverb", 0.2, 0.9, True),
    "size": ("reverb", 0.5, 1.5, True),
    "predelay_ms": ("reverb", 0.0, 50.0, False),
    "wet": ("reverb", 0.05, 0.6, True),
    "gain_db": ("gain", -9.0, 9.0, False),
}

_FDN_DELAYS_MS = (29.7, 37.1, 41.1, 43.7, 53.3, 59.9, 67.7, 79.1)
_IR_SECONDS = 3.0
_FFT_PAD = 16384  # zero padding of the zero-phase filters (their responses are short)


class HouseChainParams(DrawnChain):
    """One drawn chain per item (see the module and :class:`fxdata.drawn_chain.DrawnChain`).
    ``values["band{k}_db"]`` are in units of ``depth_db`` (the bump's gain is their product)."""

    DESIGN = "house"
    EFFECTS = EFFECTS
    RANGES = RANGES


def eq_curve_db(values: dict[str, Tensor], freqs: Tensor) -> Tensor:
    """The EQ's gain in dB, ``(n, F)``, at ``freqs`` (Hz, ``(F,)``) for drawn ``values``."""
    f = freqs.clamp_min(1.0).double()
    curve = values["tilt_db"].double()[:, None] * torch.log2(f / 1000.0)[None, :]
    depth = values["depth_db"].double()
    for k, centre in enumerate(EQ_CENTRES_HZ):
        distance = torch.log2(f / centre).abs()
        bump = torch.where(distance < 1.0, torch.cos(0.5 * math.pi * distance) ** 2, 0.0)
        curve = curve + (values[f"band{k}_db"].double() * depth)[:, None] * bump[None, :]
    return curve


def _filter_zero_phase(x: Tensor, gains: Tensor, n_fft: int) -> Tensor:
    """``x (n, C, T)`` times real gains ``(n, F)`` per bin of an ``n_fft``-point FFT."""
    work = x if x.dtype == torch.float64 else x.float()
    spectrum = torch.fft.rfft(work, n=n_fft) * gains.to(work.dtype)[:, None, :]
    return torch.fft.irfft(spectrum, n=n_fft)[..., : x.shape[-1]].to(x.dtype)


def _grid(x: Tensor, sample_rate: float) -> tuple[int, Tensor]:
    n_fft = next_fast_len(x.shape[-1] + _FFT_PAD)
    freqs = torch.fft.rfftfreq(n_fft, d=1.0 / sample_rate, dtype=torch.float64)
    return n_fft, freqs.to(x.device)


def _moving_average(x: Tensor, width: Tensor) -> Tensor:
    """Centred moving average of ``x (n, T)`` over ``width`` samples per item (``(n,)``
    int64, >= 1), divided by the samples inside the window (the ends see a shorter one)."""
    samples = x.shape[-1]
    cum = torch.nn.functional.pad(x.double().cumsum(-1), (1, 0))  # (n, T + 1)
    t = torch.arange(samples, device=x.device)[None, :]
    half = (width[:, None] - 1) // 2
    lo = (t - half).clamp(0, samples)
    hi = (t - half + width[:, None]).clamp(0, samples)
    total = cum.gather(1, hi) - cum.gather(1, lo)
    return total / (hi - lo).clamp_min(1)


def static_curve_db(level_db: Tensor, threshold: Tensor, ratio: Tensor, knee: Tensor) -> Tensor:
    """The soft-knee gain change (dB, <= 0) at an input level (dB), per item: Giannoulis et
    al.'s static characteristic, ``(1/R − 1) · over`` above the knee."""
    over = level_db - threshold[:, None]
    slope = (1.0 / ratio - 1.0)[:, None]
    k = knee[:, None]
    in_knee = slope * (over + k / 2).square() / (2 * k.clamp_min(1e-6))
    return torch.where(2 * over < -k, 0.0, torch.where(2 * over > k, slope * over, in_knee))


def _compress(x: Tensor, v: dict[str, Tensor], sample_rate: float) -> Tensor:
    width = (v["window_ms"].double() * 1e-3 * sample_rate).round().clamp_min(1).long()
    power = _moving_average(x.double().mean(1).square(), width)
    level = 10.0 * torch.log10(power + 1e-12)
    change = static_curve_db(level, v["threshold_db"].double(), v["ratio"].double(),
                             v["knee_db"].double())  # fmt: skip
    change = _moving_average(change, width) + v["makeup_db"].double()[:, None]
    return (x.double() * (10.0 ** (change / 20.0))[:, None, :]).to(x.dtype)


def _width_curve(v: dict[str, Tensor], freqs: Tensor) -> Tensor:
    """The side's linear gain per frequency, ``(n, F)``: ``bass_width × width`` below the
    crossover, ``width`` above, a one-octave cos² fade centred on it."""
    pos = torch.log2(freqs.clamp_min(1.0)[None, :] / v["crossover_hz"].double()[:, None])
    fade = torch.cos(0.5 * math.pi * (0.5 - pos.clamp(-0.5, 0.5))) ** 2  # 0 below, 1 above
    high = v["width"].double()[:, None]
    low = high * v["bass_width"].double()[:, None]
    return low + (high - low) * fade


@numba.njit(cache=True, nogil=True)
def _fdn_kernel(delays: np.ndarray, g: np.ndarray, b: np.ndarray, taps: np.ndarray,
                length: int) -> np.ndarray:  # fmt: skip
    """Impulse responses ``(n, 2, length)`` of ``n`` eight-line FDNs (see the module);
    ``taps[:, 0]`` are the lines' input gains, ``taps[:, 1:]`` the left and right outputs'."""
    n, lines = delays.shape
    out = np.zeros((n, 2, length))
    for item in range(n):
        size = delays[item].max()
        buf = np.zeros((lines, size))
        pos = np.zeros(lines, dtype=np.int64)
        state = np.zeros(lines)
        filtered = np.zeros(lines)
        for t in range(length):
            total = 0.0
            for i in range(lines):
                read = buf[i, pos[i]]
                state[i] = g[item, i] * (1.0 - b[item, i]) * read + b[item, i] * state[i]
                filtered[i] = state[i]
                total += state[i]
                out[item, 0, t] += taps[item, 1, i] * state[i]
                out[item, 1, t] += taps[item, 2, i] * state[i]
            feedback = 2.0 / lines * total
            for i in range(lines):
                buf[i, pos[i]] = filtered[i] - feedback + (taps[item, 0, i] if t == 0 else 0.0)
                pos[i] += 1
                if pos[i] == delays[item, i]:
                    pos[i] = 0
    return out


def _hadamard(size: int) -> Tensor:
    """Sylvester's ``size × size`` Hadamard matrix (``size`` a power of two)."""
    h = torch.ones(1, 1)
    while h.shape[0] < size:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def _fdn_ir(v: dict[str, Tensor], taps: Tensor, jitter: Tensor, sample_rate: float) -> Tensor:
    """``(n, 2, L)`` FDN impulse responses, pre-delayed, unit energy per channel (CPU)."""
    base = torch.tensor(_FDN_DELAYS_MS, dtype=torch.float64) * 1e-3 * sample_rate
    lengths = (base[None, :] * v["size"].double()[:, None] * jitter).round().long().clamp_min(2)
    t60 = v["t60_s"].double()[:, None]
    # Per line, the gain over its delay that decays by 60 dB in T60 at DC (g) and in
    # T60 × hf_ratio at Nyquist (g_ny); the one-pole g (1 − b) / (1 − b z⁻¹) has exactly these
    # gains at DC and at Nyquist when b = (1 − r) / (1 + r), r = g_ny / g, with 0 <= b < 1.
    g = 10.0 ** (-3.0 * lengths.double() / (sample_rate * t60))
    g_ny = 10.0 ** (-3.0 * lengths.double() / (sample_rate * t60 * v["hf_ratio"].double()[:, None]))
    r = g_ny / g
    b = (1.0 - r) / (1.0 + r)
    length = round(_IR_SECONDS * sample_rate)
    ir = _fdn_kernel(lengths.numpy(), g.numpy(), b.numpy(), taps.double().numpy(), length)
    ir = torch.from_numpy(ir)
    shift = (v["predelay_ms"].double() * 1e-3 * sample_rate).round().long()
    delayed = torch.zeros_like(ir)
    for i, s in enumerate(shift.tolist()):
        delayed[i, :, s:] = ir[i, :, : length - s]
    energy = delayed.square().sum(-1, keepdim=True).sqrt().clamp_min(1e-12)
    return (delayed / energy).float()


def sample_house_params(
    n: int,
    *,
    generator: torch.Generator,
    sample_rate: float = 44100.0,
    device: torch.device | str = "cpu",
    probability: float = 0.75,
) -> HouseChainParams:
    """Draw ``n`` chains (see the module) from ``generator`` (a CPU ``torch.Generator``).

    Args:
        n: number of chains, >= 1.
        generator: the only source of randomness: the controls, the on/off draws, the FDN's
            delay jitter (±5 % per line), its tap vectors and their signs, in that order.
        sample_rate: the audio's rate (Hz), >= 8000.
        device: where the returned tensors live.
        probability: each effect's probability of being on, in [0, 1].

    Returns:
        The :class:`HouseChainParams`.
    """
    check_draw_arguments(n, generator, sample_rate, probability)
    values = draw_controls(RANGES, n, generator, float(sample_rate))
    on = {e: torch.rand(n, generator=generator) < probability for e in EFFECTS}
    lines = len(_FDN_DELAYS_MS)
    jitter = 1.0 + 0.1 * (torch.rand(n, lines, generator=generator, dtype=torch.float64) - 0.5)
    # Input, left and right taps: three different rows of an 8 × 8 Hadamard matrix other
    # than the all-ones one (orthogonal, so the two outputs are decorrelated), signs drawn.
    rows = torch.stack([torch.randperm(lines - 1, generator=generator)[:3] + 1 for _ in range(n)])
    signs = torch.where(torch.rand(n, 3, 1, generator=generator) < 0.5, -1.0, 1.0)
    taps = _hadamard(lines)[rows] * signs
    ir = _fdn_ir(values, taps, jitter, float(sample_rate))
    return HouseChainParams(values, on, ir, float(sample_rate)).to(device)


def apply_house_chain(x: Tensor, params: HouseChainParams) -> Tensor:
    """``x`` ``(n, 2, T)`` through item ``i``'s chain for every ``i`` (see the module).

    Effects that are off for an item leave it unchanged at that stage; silence stays silent.
    The chains are moved to the audio's device.
    """
    check_chain_input(x, params)
    params = params.to(x.device)
    v, on, sr = params.values, params.on, params.sample_rate
    y = x
    if bool(on["compressor"].any()):
        y = where_on(on["compressor"], _compress(y, v, sr), y)
    if bool(on["eq"].any()) or bool(on["width"].any()):
        n_fft, freqs = _grid(y, sr)
        if bool(on["eq"].any()):
            gains = 10.0 ** (eq_curve_db(v, freqs) / 20.0)
            y = where_on(on["eq"], _filter_zero_phase(y, gains, n_fft), y)
        if bool(on["width"].any()):
            ms = mid_side(y)
            side = _filter_zero_phase(ms[:, 1:], _width_curve(v, freqs), n_fft)
            y = where_on(on["width"], left_right(torch.cat([ms[:, :1], side], 1)), y)
    if bool(on["pan"].any()):
        p = v["pan"].view(-1, 1)
        gains = torch.stack([(1.0 - p) ** 0.75, (1.0 + p) ** 0.75], dim=1)
        y = where_on(on["pan"], y * gains, y)
    if bool(on["reverb"].any()):
        wet = v["wet"].view(-1, 1, 1) * convolve(y, params.ir.to(y.dtype))
        y = where_on(on["reverb"], y + wet, y)
    if bool(on["gain"].any()):
        y = where_on(on["gain"], gain(y, v["gain_db"]), y)
    return y
