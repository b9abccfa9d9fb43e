"""Biquad design (RBJ Audio-EQ-Cookbook) and the exact parametric equaliser.

Sections are designed in float64 and run by :func:`fxdsp.kernels.iir.sosfilt`, which matches
``scipy.signal.sosfilt`` of the same sections (a true IIR recursion, not a frequency-sampled
approximation).

Reference: R. Bristow-Johnson, "Cookbook formulae for audio EQ biquad filter coefficients".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from fxdsp._checks import ParamLike, as_band_param, check_audio, check_sample_rate
from fxdsp.kernels import iir

__all__ = [
    "BAND_TYPES",
    "DEFAULT_BAND_TYPES",
    "biquad",
    "parametric_eq",
    "rbj_biquad",
    "sosfilt",
]

BAND_TYPES = ("peak", "low_shelf", "high_shelf", "lowpass", "highpass", "bandpass", "notch")
DEFAULT_BAND_TYPES = ("low_shelf", "peak", "peak", "peak", "high_shelf")


def sosfilt(x: Tensor, sos: Tensor) -> Tensor:
    """Filter audio with a cascade of second-order sections, per item (exact IIR recursion).

    ``y[n] = b0 s[n] + b1 s[n-1] + b2 s[n-2] - a1 y[n-1] - a2 y[n-2]`` per section (divided by
    ``a0``), zero initial state: the same as ``scipy.signal.sosfilt``, computed in float64.

    Args:
        x: audio ``(batch, channels, samples)``.
        sos: ``(batch, sections, 6)`` or ``(sections, 6)`` rows ``[b0, b1, b2, a0, a1, a2]``.

    Returns:
        Filtered audio, same shape, dtype and device; differentiable w.r.t. ``x`` and ``sos``
        (first order on the CPU kernel: a second-order graph raises ``RuntimeError``, see
        :func:`fxdsp.kernels.iir.sosfilt`). float16/bfloat16 audio is computed in float32; an
        empty cascade (zero sections) returns a copy of ``x``.
    """
    check_audio(x)
    if not isinstance(sos, Tensor) or sos.ndim not in (2, 3) or sos.shape[-1] != 6:
        shape = tuple(sos.shape) if isinstance(sos, Tensor) else type(sos).__name__
        raise ValueError(f"sos must be a (batch, sections, 6) or (sections, 6) tensor, got {shape}")
    if sos.device != x.device:
        raise ValueError(f"sos is on {sos.device} but the audio is on {x.device}")
    if sos.device.type == "cpu":
        a0 = sos[..., 3].detach()
        if not bool(torch.isfinite(sos.detach()).all()) or bool((a0 == 0).any()):
            raise ValueError("sos must be finite with a0 != 0 in every section")
    return iir.sosfilt(x, sos)


def _as_f64(value: ParamLike, like: Tensor | None) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(torch.float64)
    device = like.device if like is not None else None
    return torch.tensor(float(value), dtype=torch.float64, device=device)


def rbj_biquad(
    kind: str,
    gain_db: ParamLike,
    freq_hz: ParamLike,
    q: ParamLike,
    sample_rate: float,
) -> tuple[Tensor, Tensor]:
    """Design one RBJ Audio-EQ-Cookbook biquad.

    With ``A = 10^(gain_db/40)``, ``w0 = 2π·freq_hz/sample_rate`` and ``α = sin(w0)/(2q)``,
    e.g. the peaking section is ``b = [1 + αA, −2cos w0, 1 − αA]``,
    ``a = [1 + α/A, −2cos w0, 1 − α/A]``; shelves use ``2√A·α`` (cookbook, Q form).

    Args:
        kind: one of ``"peak"``, ``"low_shelf"``, ``"high_shelf"``, ``"lowpass"``,
            ``"highpass"``, ``"bandpass"`` (0 dB peak gain), ``"notch"``.
        gain_db: gain in dB (used by peak and shelves), number or tensor.
        freq_hz: centre/corner frequency in Hz, ``0 < f < sample_rate/2``.
        q: quality factor, ``> 0``.
        sample_rate: in Hz.

    Returns:
        ``(b, a)``: float64 tensors of shape ``(..., 3)`` (the broadcast shape of the
        parameters), normalised so that ``a[..., 0] == 1``.

    Raises:
        ValueError: unknown kind, non-positive ``q``, a frequency outside ``(0, fs/2)``, or
            (numbers and CPU tensors) a NaN/Inf parameter, named in the message.
    """
    sample_rate = check_sample_rate(sample_rate)
    if kind not in BAND_TYPES:
        raise ValueError(f"unknown biquad kind {kind!r}; expected one of {BAND_TYPES}")
    like = next((v for v in (gain_db, freq_hz, q) if isinstance(v, Tensor)), None)
    g, f, qq = (_as_f64(v, like) for v in (gain_db, freq_hz, q))
    g, f, qq = torch.broadcast_tensors(g, f, qq)
    for value, name in ((g, "gain_db"), (f, "freq_hz"), (qq, "q")):
        if value.device.type == "cpu" and not bool(torch.isfinite(value.detach()).all()):
            raise ValueError(f"{name} must be finite, got {value.detach().flatten().tolist()[:8]}")
    if f.device.type == "cpu":
        if bool(((f <= 0) | (f >= sample_rate / 2)).any()):
            raise ValueError(
                f"freq_hz must lie in (0, {sample_rate / 2:g}) Hz for sample_rate={sample_rate:g}, "
                f"got {f.detach().flatten().tolist()[:8]}"
            )
        if bool((qq <= 0).any()):
            raise ValueError(f"q must be > 0, got {qq.detach().flatten().tolist()[:8]}")
    big_a = torch.pow(10.0, g / 40.0)
    w0 = 2.0 * math.pi * f / sample_rate
    cos_w0 = torch.cos(w0)
    alpha = torch.sin(w0) / (2.0 * qq)
    one = torch.ones_like(w0)
    if kind == "peak":
        b = [1 + alpha * big_a, -2 * cos_w0, 1 - alpha * big_a]
        a = [1 + alpha / big_a, -2 * cos_w0, 1 - alpha / big_a]
    elif kind in ("low_shelf", "high_shelf"):
        sq = 2.0 * torch.sqrt(big_a) * alpha
        ap1, am1 = big_a + 1, big_a - 1
        if kind == "low_shelf":
            b = [
                big_a * (ap1 - am1 * cos_w0 + sq),
                2 * big_a * (am1 - ap1 * cos_w0),
                big_a * (ap1 - am1 * cos_w0 - sq),
            ]
            a = [ap1 + am1 * cos_w0 + sq, -2 * (am1 + ap1 * cos_w0), ap1 + am1 * cos_w0 - sq]
        else:
            b = [
                big_a * (ap1 + am1 * cos_w0 + sq),
                -2 * big_a * (am1 + ap1 * cos_w0),
                big_a * (ap1 + am1 * cos_w0 - sq),
            ]
            a = [ap1 - am1 * cos_w0 + sq, 2 * (am1 - ap1 * cos_w0), ap1 - am1 * cos_w0 - sq]
    elif kind == "lowpass":
        b = [(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2]
        a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    elif kind == "highpass":
        b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
        a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    elif kind == "bandpass":
        b = [alpha, torch.zeros_like(alpha), -alpha]
        a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    else:  # notch
        b = [one, -2 * cos_w0, one]
        a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    b_t = torch.stack(b, dim=-1)
    a_t = torch.stack(a, dim=-1)
    a0 = a_t[..., :1]
    return b_t / a0, a_t / a0


def biquad(
    x: Tensor,
    sample_rate: float,
    kind: str,
    gain_db: ParamLike,
    freq_hz: ParamLike,
    q: ParamLike,
) -> Tensor:
    """Apply one RBJ biquad of ``kind`` to a batch (see :func:`rbj_biquad`).

    Args:
        x: audio ``(batch, channels, samples)``.
        sample_rate: in Hz.
        kind: section type.
        gain_db, freq_hz, q: numbers or ``(batch,)`` tensors.

    Returns:
        Filtered audio, same shape/dtype/device.
    """
    return parametric_eq(
        x,
        sample_rate,
        _band(gain_db),
        _band(freq_hz),
        _band(q),
        band_types=(kind,),
    )


def _band(value: ParamLike) -> ParamLike:
    return value.unsqueeze(-1) if isinstance(value, Tensor) and value.ndim == 1 else value


def parametric_eq(
    x: Tensor,
    sample_rate: float,
    gain_db: ParamLike | Sequence[float],
    freq_hz: ParamLike | Sequence[float],
    q: ParamLike | Sequence[float],
    band_types: Sequence[str] = DEFAULT_BAND_TYPES,
) -> Tensor:
    """Exact parametric EQ: a cascade of RBJ biquads, one per band.

    ``y = H_K(… H_1(x))`` with ``H_k`` the section of :func:`rbj_biquad` for band ``k``; the
    recursion is exact (matches ``scipy.signal.sosfilt`` of the same sections), differentiable
    with respect to the audio and every band parameter, and computed in float64 internally.

    Args:
        x: audio ``(batch, channels, samples)``.
        sample_rate: in Hz.
        gain_db: band gains in dB, ``(batch, bands)``, ``(bands,)``, a sequence or a number.
        freq_hz: band frequencies in Hz, ``0 < f < sample_rate/2``, same forms.
        q: band quality factors, ``> 0``, same forms.
        band_types: the kind of each band (see :data:`BAND_TYPES`); the default is the
            reference's low shelf, three peaks, high shelf.

    Returns:
        Equalised audio, same shape, dtype and device as ``x``.

    Shape:
        x: ``(B, C, T)``; band parameters ``(B, K)``; output ``(B, C, T)``.
    """
    check_audio(x)
    sample_rate = check_sample_rate(sample_rate)
    band_types = tuple(band_types)
    if not band_types:
        raise ValueError("band_types must name at least one band")
    for kind in band_types:
        if kind not in BAND_TYPES:
            raise ValueError(f"unknown band type {kind!r}; expected one of {BAND_TYPES}")
    bands = len(band_types)
    g = as_band_param(gain_db, x, bands, "gain_db", dtype=torch.float64)
    f = as_band_param(freq_hz, x, bands, "freq_hz", dtype=torch.float64)
    qq = as_band_param(q, x, bands, "q", dtype=torch.float64)
    sections = []  # rbj_biquad checks the frequencies and qs, naming them
    # One design call per distinct band type (a handful), each vectorised over the batch.
    for kind in dict.fromkeys(band_types):
        idx = [k for k, t in enumerate(band_types) if t == kind]
        b, a = rbj_biquad(kind, g[:, idx], f[:, idx], qq[:, idx], sample_rate)
        sections.append((idx, torch.cat([b, a], dim=-1)))
    order = [k for idx, _ in sections for k in idx]
    sos = torch.cat([s for _, s in sections], dim=1)
    sos = sos[:, torch.tensor(order, device=sos.device).argsort()]
    return iir.sosfilt(x, sos)
