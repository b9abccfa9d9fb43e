"""Gain and polarity."""

from __future__ import annotations

import torch
from torch import Tensor

from fxdsp._checks import ParamLike, as_param, check_audio

__all__ = ["GAIN_DB_RANGE", "gain"]

#: Accepted range of ``gain_db`` in dB (inclusive). ±120 dB stays finite in float32.
GAIN_DB_RANGE: tuple[float, float] = (-120.0, 120.0)


def _polarity_sign(invert_polarity: bool | Tensor, x: Tensor) -> Tensor:
    """Return a ``(batch,)`` tensor of ±1 in ``x.dtype`` (−1 where the polarity is inverted)."""
    batch = x.shape[0]
    if isinstance(invert_polarity, Tensor):
        if invert_polarity.dtype != torch.bool:
            raise ValueError(
                f"invert_polarity must be a bool or a (batch,) bool tensor, got dtype "
                f"{invert_polarity.dtype}"
            )
        if invert_polarity.device != x.device:
            raise ValueError(
                f"invert_polarity is on {invert_polarity.device} but the audio is on {x.device}"
            )
        flags = invert_polarity
        if flags.ndim == 0 or (flags.ndim == 1 and flags.shape[0] == 1):
            flags = flags.reshape(1).expand(batch)
        elif flags.ndim != 1 or flags.shape[0] != batch:
            raise ValueError(
                f"invert_polarity must be a bool or a (batch,) tensor with batch={batch}, got "
                f"shape {tuple(invert_polarity.shape)}"
            )
        return 1.0 - 2.0 * flags.to(x.dtype)
    if not isinstance(invert_polarity, bool):
        raise ValueError(
            f"invert_polarity must be a bool or a bool tensor, got {type(invert_polarity).__name__}"
        )
    return torch.full((batch,), -1.0 if invert_polarity else 1.0, dtype=x.dtype, device=x.device)


def gain(x: Tensor, gain_db: ParamLike, invert_polarity: bool | Tensor = False) -> Tensor:
    """Apply a gain in dB and optionally invert the polarity, per batch item.

    ``y = s · 10^(gain_db / 20) · x`` with ``s = −1`` where the polarity is inverted, else ``+1``.

    Args:
        x: audio, ``(batch, channels, samples)``.
        gain_db: gain in dB, a float or a ``(batch,)`` tensor, in ``GAIN_DB_RANGE``
            (−120…+120 dB). −6.0206 dB halves the amplitude.
        invert_polarity: a bool for the whole batch, or a ``(batch,)`` bool tensor (one flag per
            item).

    Returns:
        The scaled audio, same shape, dtype and device as ``x``. Differentiable w.r.t. ``x`` and
        ``gain_db``.

    Shape:
        x: ``(B, C, T)``; gain_db: ``()`` or ``(B,)``; invert_polarity: ``()`` or ``(B,)``;
        output: ``(B, C, T)``.

    Raises:
        ValueError: malformed audio, ``gain_db`` out of range or of the wrong shape, a
            non-bool ``invert_polarity``.
    """
    check_audio(x)
    g_db = as_param(gain_db, x, "gain_db", low=GAIN_DB_RANGE[0], high=GAIN_DB_RANGE[1])
    sign = _polarity_sign(invert_polarity, x)
    scale = sign * torch.pow(10.0, g_db / 20.0)
    return x * scale[:, None, None]
