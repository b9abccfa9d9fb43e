"""Pure, batched, differentiable effect functions.

Audio is ``(batch, channels, samples)`` (float32 or float64, any device); a scalar parameter is
a number or a ``(batch,)`` tensor; EQ band parameters are ``(batch, bands)``. Outputs keep shape,
dtype and device.
"""

from fxdsp.functional.dynamics import compressor
from fxdsp.functional.filters import BAND_TYPES, biquad, parametric_eq, rbj_biquad, sosfilt
from fxdsp.functional.gain import gain
from fxdsp.functional.loudness import (
    k_weighting_sos,
    loudness,
    normalize_loudness,
    rms,
    rms_normalize_to,
)
from fxdsp.functional.reverb import convolve, reverb, reverb_impulse_response
from fxdsp.functional.stereo import PAN_LAWS, left_right, mid_side, pan, pan_gains, stereo_imager

__all__ = [
    "BAND_TYPES",
    "PAN_LAWS",
    "biquad",
    "compressor",
    "convolve",
    "gain",
    "k_weighting_sos",
    "left_right",
    "loudness",
    "mid_side",
    "normalize_loudness",
    "pan",
    "pan_gains",
    "parametric_eq",
    "rbj_biquad",
    "reverb",
    "reverb_impulse_response",
    "rms",
    "rms_normalize_to",
    "sosfilt",
    "stereo_imager",
]
