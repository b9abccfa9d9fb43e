"""Input validation shared by every effect.

Audio is always ``(batch, channels, samples)``; a scalar parameter is a Python number, a 0-d
tensor or a ``(batch,)`` tensor. The helpers here turn parameters into ``(batch,)`` tensors on the
audio's device and raise :class:`ValueError` with a message that names the problem.

Finite-value checks (NaN/Inf) run only on CPU tensors: on CUDA they would force a device
synchronisation on every call, so there a NaN in the input propagates to the output instead of
raising (run :func:`fxdsp.check_finite` yourself where you need the guarantee on a GPU).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

ParamLike = float | int | Tensor

#: Channel counts above this one get a warning from :func:`check_audio` (a likely layout mix-up).
MAX_QUIET_CHANNELS = 8

__all__ = [
    "MAX_QUIET_CHANNELS",
    "ParamLike",
    "as_band_param",
    "as_number",
    "as_param",
    "check_audio",
    "check_finite",
    "check_sample_rate",
]


def as_number(value: object, name: str) -> float:
    """``value`` as a finite float, or ``ValueError`` naming ``name`` (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


def check_finite(x: Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or Inf (always syncs: use sparingly on CUDA)."""
    # Fast path: a finite sum proves every element finite (NaN and Inf propagate through it);
    # only a non-finite sum (or an overflow of huge finite values) needs the exact check.
    if not x.numel() or bool(torch.isfinite(x.detach().sum())):
        return
    if not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(f"{name} contains non-finite values ({n_nan} NaN, {n_inf} Inf)")


def check_audio(
    x: Tensor,
    name: str = "x",
    *,
    min_samples: int = 2,
    channels: Sequence[int] | None = None,
) -> None:
    """Check that ``x`` is ``(batch, channels, samples)`` floating audio.

    Args:
        x: the audio tensor.
        name: the argument's name, used in error messages.
        min_samples: the fewest samples accepted (2 by default: a 1-sample clip has no
            spectrum, no envelope and no loudness).
        channels: if given, the channel counts accepted.

    The layout is never guessed: more channels than samples (e.g. a channels-last
    ``(batch, samples, channels)`` tensor) is an error, and more than
    :data:`MAX_QUIET_CHANNELS` channels a ``UserWarning``.

    Raises:
        ValueError: wrong type, ndim, dtype, empty axes, too few samples, more channels than
            samples, a channel count not in ``channels``, or (CPU tensors only) NaN/Inf values.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(
            f"{name} must have shape (batch, channels, samples), got {x.ndim}-d shape "
            f"{tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    batch, chans, samples = x.shape
    if batch < 1 or chans < 1:
        raise ValueError(f"{name} has an empty batch or channel axis: shape {tuple(x.shape)}")
    if samples < min_samples:
        raise ValueError(
            f"{name} has {samples} samples; at least {min_samples} are needed "
            f"(shape {tuple(x.shape)})"
        )
    if chans > samples:
        raise ValueError(
            f"{name} has more channels ({chans}) than samples ({samples}), shape "
            f"{tuple(x.shape)}: audio must be (batch, channels, samples); for channels-last "
            f"audio (batch, samples, channels), transpose it first: {name}.transpose(1, 2)"
        )
    if channels is not None and chans not in channels:
        raise ValueError(
            f"{name} must have {' or '.join(str(c) for c in channels)} channel(s), got {chans} "
            f"(shape {tuple(x.shape)})"
        )
    if chans > MAX_QUIET_CHANNELS:
        warnings.warn(
            f"{name} has {chans} channels (shape {tuple(x.shape)}); audio is read as "
            f"(batch, channels, samples): check the layout",
            UserWarning,
            stacklevel=3,
        )
    if x.device.type == "cpu":
        check_finite(x, name)


def check_sample_rate(sample_rate: float) -> float:
    """Return ``sample_rate`` as a float, or raise ``ValueError`` if it is not a positive number."""
    if isinstance(sample_rate, Tensor):
        if sample_rate.numel() != 1:
            raise ValueError("sample_rate must be a single number, not a tensor of many values")
        sample_rate = float(sample_rate)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)):
        raise ValueError(f"sample_rate must be a number, got {type(sample_rate).__name__}")
    if not math.isfinite(sample_rate) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive finite number, got {sample_rate}")
    return float(sample_rate)


def _check_range(t: Tensor, name: str, low: float | None, high: float | None) -> None:
    if t.device.type != "cpu" or t.numel() == 0:
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.detach().flatten().tolist()[:8]}")
    if low is not None and bool((t < low).any()):
        bad = float(t.min())
        raise ValueError(f"{name}={bad:g} is below its minimum {low:g} (range [{low}, {high}])")
    if high is not None and bool((t > high).any()):
        bad = float(t.max())
        raise ValueError(f"{name}={bad:g} is above its maximum {high:g} (range [{low}, {high}])")


def as_param(
    value: ParamLike,
    x: Tensor,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Turn a scalar parameter into a ``(batch,)`` tensor matching the audio ``x``.

    Args:
        value: a number, a 0-d tensor or a ``(batch,)`` tensor.
        x: the audio it applies to, ``(batch, channels, samples)``.
        name: the parameter's name, for error messages.
        low: smallest valid value (inclusive), or None.
        high: largest valid value (inclusive), or None.
        dtype: the result's dtype (default: ``x.dtype``).

    Returns:
        A ``(batch,)`` tensor on ``x.device``. Tensors keep their autograd graph.

    Raises:
        ValueError: a shape that is not ``()``/``(batch,)``, or (numbers and CPU tensors) a value
            outside ``[low, high]`` or not finite.
    """
    batch = x.shape[0]
    dtype = dtype or x.dtype
    if isinstance(value, Tensor):
        if value.ndim == 0:
            t = value.reshape(1).expand(batch)
        elif value.ndim == 1 and value.shape[0] == batch:
            t = value
        elif value.ndim == 1 and value.shape[0] == 1:
            t = value.expand(batch)
        else:
            raise ValueError(
                f"{name} must be a number or a (batch,) tensor with batch={batch}, got shape "
                f"{tuple(value.shape)}"
            )
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but the audio is on {x.device}")
        t = t.to(dtype)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        t = torch.full((batch,), float(value), dtype=dtype, device=x.device)
    else:
        raise ValueError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    _check_range(t.detach(), name, low, high)
    return t


def _nested_floats(value: object, name: str) -> float | list:
    """A number or a (nested, rectangular) sequence of numbers as nested lists of floats."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = [_nested_floats(v, name) for v in value]
        lengths = {len(v) if isinstance(v, list) else -1 for v in items}
        if len(lengths) > 1:
            raise ValueError(f"{name} is a ragged nested sequence (rows of different lengths)")
        return items
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must hold numbers, got an element of type {type(value).__name__}"
        ) from None


def as_band_param(
    value: ParamLike | Sequence[float],
    x: Tensor,
    bands: int,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Turn a per-band parameter into a ``(batch, bands)`` tensor.

    Accepts a number (same for every band and item), a sequence of ``bands`` numbers, a
    ``(bands,)`` tensor (same for every item), a ``(batch, bands)`` tensor or nested sequences
    of that shape.
    """
    batch = x.shape[0]
    dtype = dtype or x.dtype
    if isinstance(value, Tensor):
        t = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        t = torch.full((bands,), float(value), dtype=dtype, device=x.device)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        t = torch.tensor(_nested_floats(value, name), dtype=dtype, device=x.device)
    else:
        raise ValueError(f"{name} must be a number, a sequence or a tensor, got {type(value)}")
    if t.ndim == 0:
        t = t.reshape(1, 1).expand(batch, bands)
    elif t.ndim == 1 and t.shape[0] == bands:
        t = t.unsqueeze(0).expand(batch, bands)
    elif t.ndim == 2 and t.shape == (batch, bands):
        pass
    else:
        raise ValueError(
            f"{name} must be (batch, bands)=({batch}, {bands}) or (bands,)=({bands},), got shape "
            f"{tuple(t.shape)}"
        )
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device} but the audio is on {x.device}")
    t = t.to(dtype)
    _check_range(t.detach(), name, low, high)
    return t
