"""Dynamics processors: the stereo-linked feed-forward compressor.

Reference: D. Giannoulis, M. Massberg, J. D. Reiss, "Digital Dynamic Range Compressor Design -
A Tutorial and Analysis", J. Audio Eng. Soc. 60(6), 2012, pp. 399-408 (peak detector, log-domain
static curve with soft knee, branching attack/release smoothing of the gain in dB).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fxdsp._checks import ParamLike, as_param, check_audio, check_sample_rate
from fxdsp.functional.gain import GAIN_DB_RANGE
from fxdsp.kernels.compressor import smooth_gain

__all__ = ["compressor"]

_LEVEL_FLOOR = 1e-8  # detector floor: -160 dBFS, keeps log10 finite on silence
_KNEE_EPS = 1e-12  # guards the knee division at knee_db = 0 (hard knee)
_MS_EPS = 1e-9  # guards the time-constant division (CUDA tensors are not range-checked)
_DB_TO_NEPER = math.log(10.0) / 20.0  # 10^(v/20) = exp(v * ln(10)/20)


def _time_param(value: ParamLike, x: Tensor, name: str) -> Tensor:
    """A strictly positive time in ms as a ``(batch,)`` float64 tensor (keeps autograd)."""
    t = as_param(value, x, name, dtype=torch.float64)
    if t.device.type == "cpu" and bool((t.detach() <= 0).any()):
        raise ValueError(f"{name} must be > 0 ms, got {float(t.detach().min()):g}")
    return t


def _pole(time_ms: Tensor, sample_rate: float) -> Tensor:
    """One-pole coefficient ``exp(-1/(tau fs))`` with ``tau = time_ms / 1000`` (float64)."""
    return torch.exp(-1000.0 / (time_ms.clamp_min(_MS_EPS) * sample_rate))


def compressor(
    x: Tensor,
    sample_rate: float,
    threshold_db: ParamLike,
    ratio: ParamLike,
    attack_ms: ParamLike,
    release_ms: ParamLike,
    knee_db: ParamLike = 0.0,
    makeup_db: ParamLike = 0.0,
) -> Tensor:
    """Stereo-linked feed-forward compressor with soft knee and attack/release ballistics.

    Giannoulis, Massberg, Reiss (JAES 2012), gain smoothed in dB with branching:

    - detector ``d[n] = max_c |x_c[n]|``, level ``L[n] = 20 log10(max(d[n], 1e-8))``;
    - static curve, threshold ``T``, ratio ``R``, knee width ``W`` (dB)::

          Y = L                                      if 2 (L - T) < -W
          Y = L + (1/R - 1) (L - T + W/2)^2 / (2 W)  if |2 (L - T)| <= W
          Y = T + (L - T) / R                        if 2 (L - T) > W

      and ``c[n] = Y - L <= 0``, evaluated without branches as ``c = (1/R - 1) (max(L - T, 0) +
      max(W/2 - |L - T|, 0)^2 / (2W))`` (the same function; the hard knee at ``W = 0``);
    - smoothing ``g[n] = a g[n-1] + (1 - a) c[n]`` with ``a = alpha_A`` when ``c[n] < g[n-1]``
      (attack) and ``a = alpha_R`` otherwise (release), ``alpha = exp(-1/(tau fs))``, ``tau`` in
      seconds, ``g[-1] = 0``: a compiled kernel with an analytic backward
      (:func:`fxdsp.kernels.compressor.smooth_gain`);
    - output ``y_c[n] = x_c[n] 10^((g[n] + makeup_db) / 20)``, the same gain on every channel.

    Differentiable w.r.t. ``x`` and every parameter given as a tensor (first order: a
    second-order graph, ``create_graph=True``, raises ``RuntimeError``). Ranges are checked on
    numbers and CPU tensors only (a check on a CUDA tensor would synchronise the device); an
    unchecked CUDA ``ratio < 1`` acts as 1, a ``knee_db < 0`` as 0. Inputs other than float32
    and float64 are processed in float32 and cast back.

    Args:
        x: audio, ``(batch, channels, samples)``, any channel count (all linked).
        sample_rate: sampling rate in Hz, > 0.
        threshold_db: threshold ``T`` in dBFS, float or ``(batch,)``.
        ratio: compression ratio ``R`` >= 1 (1 = no compression), float or ``(batch,)``.
        attack_ms: attack time constant in ms, > 0, float or ``(batch,)``.
        release_ms: release time constant in ms, > 0, float or ``(batch,)``.
        knee_db: knee width ``W`` in dB, >= 0 (0 = hard knee), float or ``(batch,)``.
        makeup_db: make-up gain in dB applied after compression, float or ``(batch,)``, in
            ``GAIN_DB_RANGE`` (−120…+120 dB, as :func:`fxdsp.functional.gain`).

    Returns:
        The compressed audio, same shape, dtype and device as ``x``.

    Shape:
        x: ``(B, C, N)``; parameters: scalars or ``(B,)``; output: ``(B, C, N)``.

    Raises:
        ValueError: bad audio (ndim, dtype, fewer than 2 samples, NaN/Inf on CPU), a sample
            rate <= 0, a parameter of the wrong shape or device, ``ratio < 1``,
            ``attack_ms <= 0``, ``release_ms <= 0``, ``knee_db < 0`` or ``makeup_db`` outside
            ±120 dB.
    """
    check_audio(x)
    fs = check_sample_rate(sample_rate)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()

    threshold = as_param(threshold_db, work, "threshold_db")[:, None]
    ratio_t = as_param(ratio, work, "ratio", low=1.0)[:, None]
    knee = as_param(knee_db, work, "knee_db", low=0.0)[:, None]
    makeup = as_param(makeup_db, work, "makeup_db", low=GAIN_DB_RANGE[0], high=GAIN_DB_RANGE[1])
    makeup = makeup[:, None]
    alpha_attack = _pole(_time_param(attack_ms, work, "attack_ms"), fs)
    alpha_release = _pole(_time_param(release_ms, work, "release_ms"), fs)

    # Gain computer on (batch, samples), levels in units of 20 dB (e = (L - T) / 20). The static
    # curve as one branch-free expression, equal to the three-branch curve for W > 0 and to the
    # hard knee at W = 0 (its derivative in W at W = 0 is the exact one-sided limit):
    #   c = slope (20 max(e, 0) + 200 v^2 / W),  v = max(W / 40 - |e|, 0),  slope = 1/R - 1.
    # In-place steps only touch tensors that no backward formula saved (each large temporary
    # costs an allocation and its page faults).
    slope = ratio_t.clamp_min(1.0).reciprocal() - 1.0
    knee_coef = slope * (200.0 / knee.clamp_min(_KNEE_EPS))
    excess = torch.log10(work.abs().amax(dim=1).clamp_min(_LEVEL_FLOOR)).sub_(threshold / 20.0)
    in_knee = excess.abs().neg_().add_(knee / 40.0).relu_()
    static_gain = in_knee.square().mul_(knee_coef).addcmul_(excess.relu(), 20.0 * slope)

    gain_db = smooth_gain(static_gain, alpha_attack, alpha_release)
    gain = torch.add(makeup * _DB_TO_NEPER, gain_db, alpha=_DB_TO_NEPER).exp_()
    y = work * gain.unsqueeze(1)
    return y.to(x.dtype)  # no copy when the dtypes agree
