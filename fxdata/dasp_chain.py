"""A second effects design for training triplets, built on dasp-pytorch's processors.

fxdsp's reference chain is one design of each effect (RBJ biquads, a feed-forward peak
compressor with attack and release, a band-wise decaying-noise reverb, a level match after
each processor). A model
trained only on it learns that design as much as the style. This chain draws its styles from
other implementations with ranges of its own, so that a training run can mix the two
(``ClonerTrainConfig.dasp_fraction``); pedalboard (:mod:`fxencoder.pedalboard_styles`) stays
unseen, as the independent check.

The chain, in this order, each effect on with probability ``probability`` (independently per
item and effect; an effect that is off is skipped, not set neutral):

1. ``eq``: dasp's six-band parametric EQ (:func:`dasp_pytorch.functional.parametric_eq`: RBJ
   low shelf, four peaks, high shelf, applied by frequency sampling, an FFT approximation of
   the IIR filters that wraps each filter's tail around the segment);
2. ``compressor``: dasp's compressor (:func:`dasp_pytorch.functional.compressor`): an
   instantaneous peak detector on the summed channels, a soft knee, one smoothing time
   constant (the attack; it has no release) and a make-up gain;
3. ``width``: dasp's mid/side widener (:func:`dasp_pytorch.functional.stereo_widener`: mid ×
   2(1 − w), side × 2w, unity at w = 0.5);
4. ``pan``: a linear balance law written here, ``L × min(1, 1 − p)``, ``R × min(1, 1 + p)``;
5. ``reverb``: a noise-shaped reverb after dasp's design, written here to run by FFT: per
   channel, white noise split into ten octave bands (31.5 Hz … 16 kHz, cos² crossovers on a
   log-frequency axis that sum to one), each band under an exponential decay that reaches
   −60 dB at its own T60 (``t60 · (f / 1 kHz) ** -tilt``, seconds) and a random band gain
   (±3 dB), the impulse response cut at 2 s and scaled to unit energy per channel;
   ``(1 − mix) · x + mix · (x ∗ h)``. The cut is part of the design: a band whose T60 is over
   2 s (the low bands of long, tilted draws) stops there before reaching −60 dB;
6. ``gain``: :func:`dasp_pytorch.functional.gain`.

The output level is not matched to the input's: the gain, the compressor's make-up and the
widener change it, as they do in a mix. Each control's range (:data:`RANGES`) is drawn
uniformly, or log-uniformly where marked. dasp-pytorch is an optional dependency (the
``bench`` extra).

Example::

    gen = torch.Generator().manual_seed(0)
    params = sample_dasp_params(8, generator=gen, sample_rate=44100.0)
    y_a, y_b = apply_dasp_chain(a, params), apply_dasp_chain(b, params)  # one style, two contents
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from fxdata.drawn_chain import (
    DrawnChain,
    check_chain_input,
    check_draw_arguments,
    draw_controls,
    where_on,
)
from fxdsp.functional import convolve

__all__ = [
    "EFFECTS",
    "RANGES",
    "DaspChainParams",
    "apply_dasp_chain",
    "require_dasp",
    "sample_dasp_params",
]

#: The chain's effects, in processing order.
EFFECTS: tuple[str, ...] = ("eq", "compressor", "width", "pan", "reverb", "gain")

#: Each control's ``(effect, low, high, log)``; drawn log-uniformly when ``log`` is true.
RANGES: dict[str, tuple[str, float, float, bool]] = {
    "low_shelf_db": ("eq", -12.0, 12.0, False),
    "low_shelf_hz": ("eq", 30.0, 300.0, True),
    "low_shelf_q": ("eq", 0.5, 1.0, True),
    "band0_db": ("eq", -10.0, 10.0, False),
    "band0_hz": ("eq", 80.0, 400.0, True),
    "band0_q": ("eq", 0.5, 3.0, True),
    "band1_db": ("eq", -10.0, 10.0, False),
    "band1_hz": ("eq", 300.0, 1500.0, True),
    "band1_q": ("eq", 0.5, 3.0, True),
    "band2_db": ("eq", -10.0, 10.0, False),
    "band2_hz": ("eq", 1000.0, 5000.0, True),
    "band2_q": ("eq", 0.5, 3.0, True),
    "band3_db": ("eq", -10.0, 10.0, False),
    "band3_hz": ("eq", 3000.0, 12000.0, True),
    "band3_q": ("eq", 0.5, 3.0, True),
    "high_shelf_db": ("eq", -12.0, 12.0, False),
    "high_shelf_hz": ("eq", 3000.0, 16000.0, True),
    "high_shelf_q": ("eq", 0.5, 1.0, True),
    "threshold_db": ("compressor", -45.0, -10.0, False),
    "ratio": ("compressor", 1.5, 12.0, True),
    "attack_ms": ("compressor", 0.3, 30.0, True),
    "knee_db": ("compressor", 0.5, 12.0, True),
    "makeup_db": ("compressor", 0.0, 12.0, False),
    "width": ("width", 0.2, 0.8, False),
    "pan": ("pan", -0.5, 0.5, False),
    "t60_s": ("reverb", 0.2, 3.0, True),
    "tilt": ("reverb", 0.0, 0.5, False),
    "mix": ("reverb", 0.05, 0.5, False),
    "gain_db": ("gain", -9.0, 9.0, False),
}

_BAND_CENTRES_HZ = tuple(31.5 * 2.0**k for k in range(10))  # 31.5 Hz … 16 kHz
_BAND_GAIN_DB = 3.0  # each reverb band's gain is drawn within ±3 dB
_IR_SECONDS = 2.0


def require_dasp() -> Any:
    """``dasp_pytorch.functional``, or an ImportError that says how to install it."""
    try:
        import dasp_pytorch.functional as dasp
    except ImportError:
        raise ImportError(
            "the dasp chain needs the 'dasp-pytorch' package: pip install 'mixfx[bench]' "
            "(or pip install dasp-pytorch)"
        ) from None
    return dasp


class DaspChainParams(DrawnChain):
    """One drawn chain per item (see the module and :class:`fxdata.drawn_chain.DrawnChain`):
    ``values``, ``on``, ``ir`` (the reverb's responses, drawn with the chain so that two
    contents get the same reverb) and ``sample_rate``."""

    DESIGN = "dasp"
    EFFECTS = EFFECTS
    RANGES = RANGES


def _band_masks(n_freq: int, n_fft: int, sample_rate: float) -> Tensor:
    """``(10, n_freq)`` cos² octave-band masks on a log-frequency axis; they sum to one."""
    freqs = torch.arange(n_freq, dtype=torch.float64) * (sample_rate / n_fft)
    octave = torch.log2(freqs.clamp_min(1e-3) / _BAND_CENTRES_HZ[0])
    octave = octave.clamp(0.0, float(len(_BAND_CENTRES_HZ) - 1))  # flat beyond the ends
    k = torch.arange(len(_BAND_CENTRES_HZ), dtype=torch.float64)[:, None]
    distance = (octave[None, :] - k).abs()
    return torch.where(distance < 1.0, torch.cos(0.5 * math.pi * distance) ** 2, 0.0)


def _reverb_ir(
    t60: Tensor, tilt: Tensor, band_db: Tensor, generator: torch.Generator, sample_rate: float
) -> Tensor:
    """``(n, 2, L)`` noise-shaped impulse responses, unit energy per channel (CPU)."""
    n = t60.shape[0]
    length = round(_IR_SECONDS * sample_rate)
    n_fft = 1 << (length - 1).bit_length()
    noise = torch.randn(n, 2, n_fft, generator=generator)
    spectrum = torch.fft.rfft(noise)  # (n, 2, F)
    masks = _band_masks(spectrum.shape[-1], n_fft, sample_rate).float()  # (B, F)
    bands = torch.fft.irfft(spectrum[:, :, None, :] * masks, n=n_fft)[..., :length]  # (n,2,B,L)
    centres = torch.tensor(_BAND_CENTRES_HZ)
    t60_band = t60[:, None] * (centres[None, :] / 1000.0) ** (-tilt[:, None])  # (n, B)
    t = torch.arange(length, dtype=torch.float32) / sample_rate
    envelope = torch.exp(-math.log(1000.0) * t / t60_band[:, :, None])  # −60 dB at T60
    gains = 10.0 ** (band_db / 20.0)  # (n, B)
    ir = torch.einsum("ncbl,nbl->ncl", bands, envelope * gains[:, :, None])  # (n, 2, L)
    return ir / ir.square().sum(dim=-1, keepdim=True).sqrt().clamp_min(1e-12)


def sample_dasp_params(
    n: int,
    *,
    generator: torch.Generator,
    sample_rate: float = 44100.0,
    device: torch.device | str = "cpu",
    probability: float = 0.75,
) -> DaspChainParams:
    """Draw ``n`` chains (see the module) from ``generator`` (a CPU ``torch.Generator``).

    Args:
        n: number of chains, >= 1.
        generator: the only source of randomness: the controls, the on/off draws, the reverb's
            band gains and its noise, in that order.
        sample_rate: the audio's rate (Hz), >= 8000: the reverb's length and the filters
            depend on it (the EQ's frequencies are clipped at 0.45 × the rate).
        device: where the returned tensors live.
        probability: each effect's probability of being on, in [0, 1].

    Returns:
        The :class:`DaspChainParams`.
    """
    check_draw_arguments(n, generator, sample_rate, probability)
    values = draw_controls(RANGES, n, generator, float(sample_rate))
    on = {e: torch.rand(n, generator=generator) < probability for e in EFFECTS}
    band_db = 2.0 * torch.rand(n, len(_BAND_CENTRES_HZ), generator=generator) - 1.0
    band_db = band_db * _BAND_GAIN_DB
    ir = _reverb_ir(values["t60_s"], values["tilt"], band_db, generator, float(sample_rate))
    return DaspChainParams(values, on, ir, float(sample_rate)).to(device)


def apply_dasp_chain(x: Tensor, params: DaspChainParams) -> Tensor:
    """``x`` ``(n, 2, T)`` through item ``i``'s chain for every ``i`` (see the module).

    Effects that are off for an item leave it unchanged at that stage; silence stays silent.
    The chains are moved to the audio's device.
    """
    check_chain_input(x, params)
    dasp = require_dasp()
    params = params.to(x.device)
    v, on, sr = params.values, params.on, params.sample_rate
    y = x
    if bool(on["eq"].any()):
        eq = dasp.parametric_eq(
            y, sr,
            v["low_shelf_db"], v["low_shelf_hz"], v["low_shelf_q"],
            v["band0_db"], v["band0_hz"], v["band0_q"],
            v["band1_db"], v["band1_hz"], v["band1_q"],
            v["band2_db"], v["band2_hz"], v["band2_q"],
            v["band3_db"], v["band3_hz"], v["band3_q"],
            v["high_shelf_db"], v["high_shelf_hz"], v["high_shelf_q"],
        )  # fmt: skip
        y = where_on(on["eq"], eq, y)
    if bool(on["compressor"].any()):
        comp = dasp.compressor(
            y, sr, v["threshold_db"], v["ratio"], v["attack_ms"],
            v["attack_ms"],  # dasp's release argument, which it does not use (see the module)
            v["knee_db"], v["makeup_db"],
        )  # fmt: skip
        y = where_on(on["compressor"], comp, y)
    if bool(on["width"].any()):
        y = where_on(on["width"], dasp.stereo_widener(y, sr, v["width"].view(-1, 1)), y)
    if bool(on["pan"].any()):
        p = v["pan"].view(-1, 1)
        gains = torch.stack([(1.0 - p).clamp(max=1.0), (1.0 + p).clamp(max=1.0)], dim=1)
        y = where_on(on["pan"], y * gains, y)
    if bool(on["reverb"].any()):
        mix = v["mix"].view(-1, 1, 1)
        wet = convolve(y, params.ir.to(y.dtype))
        y = where_on(on["reverb"], (1.0 - mix) * y + mix * wet, y)
    if bool(on["gain"].any()):
        y = where_on(on["gain"], dasp.gain(y, sr, v["gain_db"]), y)
    return y
