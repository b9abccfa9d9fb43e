"""Panning, mid/side and a stereo imager.

Pan laws (``p = (pan + 1) / 2`` in ``[0, 1]``, ``pan = −1`` hard left, ``+1`` hard right)::

    constant_power: gL = sin((1 − p) π/2),   gR = sin(p π/2)        (−3.01 dB at centre)
    linear:         gL = 1 − p,             gR = p                 (−6.02 dB at centre)
    -4.5dB:         g  = g_cp^a · g_lin^(1−a), a = (6.0206 − 4.5) / 3.0103 ≈ 0.505

The "-4.5dB" law is the (weighted) geometric mean of the other two; with equal weights it would
sit at −4.515 dB, so the weight is nudged to put the centre at exactly −4.5 dB. Its gain differs
from the plain geometric mean by at most 20·(a − 1/2)·log10(π/2) ≈ 0.0202 dB (near a hard
pan). Both sides use ``sin`` so that the law is exactly mirror-symmetric and the silent side of a
hard pan is exactly 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fxdsp._checks import ParamLike, as_param, check_audio

__all__ = [
    "PAN_LAWS",
    "PAN_RANGE",
    "WIDTH_RANGE",
    "left_right",
    "mid_side",
    "pan",
    "pan_gains",
    "stereo_imager",
]

#: Pan law names; a ``(batch,)`` integer tensor ``law`` indexes this tuple.
PAN_LAWS: tuple[str, str, str] = ("constant_power", "linear", "-4.5dB")
#: Accepted pan positions (−1 hard left, +1 hard right).
PAN_RANGE: tuple[float, float] = (-1.0, 1.0)
#: Accepted imager widths (0 mono, 1 unchanged, 2 all side).
WIDTH_RANGE: tuple[float, float] = (0.0, 2.0)

_CP_DB = 20.0 * math.log10(math.sqrt(2.0))  # 3.0103 dB
_LIN_DB = 20.0 * math.log10(2.0)  # 6.0206 dB
# Weight of the constant-power law in the "-4.5dB" law's geometric mean.
_W45 = (_LIN_DB - 4.5) / (_LIN_DB - _CP_DB)
_ENERGY_EPS = 1e-20


def _safe_pow(base: Tensor, exponent: float) -> Tensor:
    """``base ** exponent`` for ``base >= 0`` (0 at 0), with a finite gradient at 0."""
    tiny = torch.finfo(base.dtype).tiny
    positive = base > 0
    return torch.where(positive, base.clamp_min(tiny) ** exponent, torch.zeros_like(base))


def _law_gains(position: Tensor, law: str) -> tuple[Tensor, Tensor]:
    """Left/right gains of one law for pan positions in [−1, 1]."""
    p_left = (1.0 - position) * 0.5
    p_right = (1.0 + position) * 0.5
    if law == "linear":
        return p_left, p_right
    cp_left = torch.sin(p_left * (math.pi / 2))
    cp_right = torch.sin(p_right * (math.pi / 2))
    if law == "constant_power":
        return cp_left, cp_right
    if law != "-4.5dB":
        raise ValueError(f"unknown pan law {law!r}; expected one of {PAN_LAWS}")
    return (
        _safe_pow(cp_left, _W45) * _safe_pow(p_left, 1.0 - _W45),
        _safe_pow(cp_right, _W45) * _safe_pow(p_right, 1.0 - _W45),
    )


def _law_index(law: str | Tensor, batch: int, device: torch.device) -> str | Tensor:
    """Validate ``law``: return the name, or a ``(batch,)`` integer tensor of indices."""
    if isinstance(law, str):
        if law not in PAN_LAWS:
            raise ValueError(f"unknown pan law {law!r}; expected one of {PAN_LAWS}")
        return law
    if not isinstance(law, Tensor):
        raise ValueError(f"law must be a string or an integer tensor, got {type(law).__name__}")
    if law.dtype == torch.bool or law.is_floating_point() or law.is_complex():
        raise ValueError(f"law must be an integer tensor indexing PAN_LAWS, got dtype {law.dtype}")
    if law.device != device:
        raise ValueError(f"law is on {law.device} but the audio is on {device}")
    if law.ndim == 0 or (law.ndim == 1 and law.shape[0] == 1):
        idx = law.reshape(1).expand(batch)
    elif law.ndim == 1 and law.shape[0] == batch:
        idx = law
    else:
        raise ValueError(
            f"law must be a string or a (batch,) tensor with batch={batch}, got shape "
            f"{tuple(law.shape)}"
        )
    if idx.device.type == "cpu" and bool(((idx < 0) | (idx >= len(PAN_LAWS))).any()):
        raise ValueError(f"law indices must be in [0, {len(PAN_LAWS) - 1}], got {idx.tolist()}")
    return idx


def pan_gains(position: Tensor, law: str | Tensor = "constant_power") -> tuple[Tensor, Tensor]:
    """Left and right gains of a pan law (the mono → stereo gains).

    Args:
        position: pan positions in [−1, 1], any shape.
        law: a name in ``PAN_LAWS`` or an integer tensor (same shape as ``position``) of indices
            into it. Tensor laws compute all three laws and pick one per element with
            ``torch.where`` (no loop). On CUDA the indices are not checked; values outside
            {0, 1, 2} select the "-4.5dB" law.

    Returns:
        ``(gain_left, gain_right)``, each the shape of ``position``.
    """
    if isinstance(law, str):
        if law not in PAN_LAWS:
            raise ValueError(f"unknown pan law {law!r}; expected one of {PAN_LAWS}")
        return _law_gains(position, law)
    cp = _law_gains(position, "constant_power")
    lin = _law_gains(position, "linear")
    m45 = _law_gains(position, "-4.5dB")
    is_cp, is_lin = law == 0, law == 1
    left = torch.where(is_cp, cp[0], torch.where(is_lin, lin[0], m45[0]))
    right = torch.where(is_cp, cp[1], torch.where(is_lin, lin[1], m45[1]))
    return left, right


def pan(x: Tensor, pan: ParamLike, law: str | Tensor = "constant_power") -> Tensor:
    """Pan a mono signal into stereo, or balance a stereo signal.

    Mono input (1 channel) becomes stereo: ``L = gL(pan)·x``, ``R = gR(pan)·x`` with the law's
    gains (see the module docstring). Stereo input is *balanced*: each side is scaled by the same
    law gain divided by the law's centre gain, ``L' = L·gL(pan)/gL(0)``,
    ``R' = R·gR(pan)/gR(0)``, so that ``pan = 0`` is exactly the identity, a hard pan silences
    the opposite side, and the near side is boosted by the law's centre attenuation (+3 dB for
    constant power, +6 dB for linear, +4.5 dB for "-4.5dB").

    Args:
        x: audio, ``(batch, 1 or 2, samples)``.
        pan: position in [−1, 1] (−1 hard left, 0 centre, +1 hard right), a float or a
            ``(batch,)`` tensor.
        law: ``"constant_power"`` (−3 dB centre), ``"linear"`` (−6 dB) or ``"-4.5dB"``, or a
            ``(batch,)`` integer tensor indexing ``PAN_LAWS`` (one law per item).

    Returns:
        Stereo audio ``(batch, 2, samples)``, dtype and device of ``x``. Differentiable w.r.t.
        ``x`` and ``pan``.

    Shape:
        x: ``(B, 1, T)`` or ``(B, 2, T)``; pan, law: ``()`` or ``(B,)``; output: ``(B, 2, T)``.

    Raises:
        ValueError: malformed audio, a channel count other than 1 or 2, ``pan`` out of range,
            an unknown law name or law index, mismatched batch sizes.
    """
    check_audio(x, channels=(1, 2))
    position = as_param(pan, x, "pan", low=PAN_RANGE[0], high=PAN_RANGE[1])
    law_sel = _law_index(law, x.shape[0], x.device)
    g_left, g_right = pan_gains(position, law_sel)
    if x.shape[1] == 1:
        return torch.cat([x * g_left[:, None, None], x * g_right[:, None, None]], dim=1)
    c_left, c_right = pan_gains(torch.zeros_like(position), law_sel)
    scale = torch.stack([g_left / c_left, g_right / c_right], dim=1)
    return x * scale[:, :, None]


def mid_side(x: Tensor) -> Tensor:
    """Left/right → mid/side: ``M = (L + R)/2``, ``S = (L − R)/2``.

    Args:
        x: stereo audio ``(batch, 2, samples)``.

    Returns:
        ``(batch, 2, samples)`` with channel 0 = mid, 1 = side. :func:`left_right` inverts it
        (exactly up to float rounding of the sums).

    Raises:
        ValueError: malformed audio or not 2 channels.
    """
    check_audio(x, channels=(2,))
    left, right = x[:, 0], x[:, 1]
    return torch.stack([(left + right) * 0.5, (left - right) * 0.5], dim=1)


def left_right(ms: Tensor) -> Tensor:
    """Mid/side → left/right: ``L = M + S``, ``R = M − S`` (inverse of :func:`mid_side`).

    Args:
        ms: ``(batch, 2, samples)`` with channel 0 = mid, 1 = side.

    Returns:
        Stereo audio ``(batch, 2, samples)``.

    Raises:
        ValueError: malformed input or not 2 channels.
    """
    check_audio(ms, "ms", channels=(2,))
    mid, side = ms[:, 0], ms[:, 1]
    return torch.stack([mid + side, mid - side], dim=1)


def stereo_imager(x: Tensor, width: ParamLike) -> Tensor:
    """Narrow or widen the stereo image in mid/side, keeping the total energy.

    With ``M = (L + R)/2`` and ``S = (L − R)/2``, the mid and side gains are::

        g_M = min(1, 2 − width),   g_S = min(1, width)

    (width ≤ 1 scales the side down, width 0 is mono; width > 1 scales the mid down, width 2 is
    all side), ``L' = g_M M + g_S S``, ``R' = g_M M − g_S S``. The result is then rescaled per
    item so that its energy (sum of squares over channels and time) equals the input's::

        y = (L', R') · sqrt((E_in + eps) / (E_out + eps))

    This is the reference's "balance" parameter. Silence stays silence; a signal whose output
    would be silent (e.g. pure side at width 0) stays silent instead of being blown up to NaN.
    Width 1 is exactly the identity (the gains are computed as ``L' = a L + b R`` with
    ``a = (g_M + g_S)/2 = 1`` and ``b = (g_M − g_S)/2 = 0``).

    Args:
        x: stereo audio, ``(batch, 2, samples)``.
        width: in [0, 2], a float or a ``(batch,)`` tensor.

    Returns:
        ``(batch, 2, samples)``, dtype and device of ``x``. Differentiable w.r.t. ``x`` and
        ``width`` (the gradient w.r.t. width has a kink at 1).

    Shape:
        x: ``(B, 2, T)``; width: ``()`` or ``(B,)``; output: ``(B, 2, T)``.

    Raises:
        ValueError: malformed audio, not 2 channels, ``width`` out of range or of the wrong
            shape.
    """
    check_audio(x, channels=(2,))
    w = as_param(width, x, "width", low=WIDTH_RANGE[0], high=WIDTH_RANGE[1])
    g_mid = torch.clamp(2.0 - w, max=1.0)
    g_side = torch.clamp(w, max=1.0)
    a = ((g_mid + g_side) * 0.5)[:, None]
    b = ((g_mid - g_side) * 0.5)[:, None]
    left, right = x[:, 0], x[:, 1]
    y = torch.stack([a * left + b * right, b * left + a * right], dim=1)
    # Energies and scale in float64: with float32 the derivative of the scale w.r.t. a
    # (near-)zero output energy, ~(e_out + eps)^-1.5, overflows to inf and the gradient to NaN.
    e_in = x.to(torch.float64).square().sum(dim=(1, 2))
    e_out = y.to(torch.float64).square().sum(dim=(1, 2))
    scale = torch.sqrt((e_in + _ENERGY_EPS) / (e_out + _ENERGY_EPS))
    return y * scale.to(y.dtype)[:, None, None]
