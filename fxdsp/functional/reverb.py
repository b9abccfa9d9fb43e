"""Parametric stereo reverb and FFT convolution.

The reverb is a convolution with a synthetic impulse response (IR): stereo, band-wise
exponentially decaying Gaussian noise, the usual model of a diffuse late reverberation tail
(e.g. Välimäki et al., "Fifty years of artificial reverberation", IEEE TASLP 2012). White noise
is split into ``len(BAND_CROSSOVERS_HZ) + 1`` = 8 octave bands by smooth complementary masks
(raised-cosine crossfades one octave wide in log-frequency, summing to 1 at every frequency); band
``b`` decays with its own time constant::

    rt60_b = rt60_s · DAMPING_MIN_RATIO ** (damping · b / (bands − 1))
    h(t)   = Σ_b  exp(−ln(1000) · t / rt60_b) · n_b(t)              (60 dB of decay per rt60_b)

so the lowest band (< 125 Hz) decays in ``rt60_s`` and the highest (> 8 kHz) in
``rt60_s · 0.1 ** damping``. Left and right use independent noise (decorrelated).

Computation (GPU-native, no loop over items or samples): the noise is drawn directly as
short-time spectra (frames of ~23 ms, i.e. 1024 samples at 44.1 kHz, 50 % overlap) whose real
and imaginary parts are iid uniform numbers from a counter-based hash PRNG (:mod:`fxdsp.prng`,
bit-identical on every device), one seed per item; the inverse FFT of 513 such bins is Gaussian
white noise by the central limit theorem. Each frame's spectrum is multiplied by
``Σ_b mask_b(f) · exp(−ln(1000) · t_frame / rt60_b)``, inverse-FFT'd, windowed by a sine window
(its squares sum to 1 at 50 % overlap, so the noise power is stationary) and overlap-added. This
equals splitting the noise into bands, decaying each band and summing, except that the decay is
evaluated at frame centres and cross-faded by the windows in between: the energy envelope is an
exact exponential times a small ripple periodic in the hop, which leaves the decay rate (and so
the measured RT60) unchanged. Cost: one hash per four noise values, one batched inverse FFT of
short frames; the convolution itself is one FFT product.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fxdsp._checks import ParamLike, as_param, check_audio, check_finite, check_sample_rate
from fxdsp.functional._scaling import COMPUTE_DTYPES as _COMPUTE_DTYPES
from fxdsp.functional._scaling import check_no_overflow as _check_no_overflow
from fxdsp.functional._scaling import pow2_scale as _pow2_scale
from fxdsp.prng import as_seed, signed_uniform

__all__ = [
    "BAND_CROSSOVERS_HZ",
    "DAMPING_MIN_RATIO",
    "DAMPING_RANGE",
    "MAX_IR_SECONDS",
    "MIX_RANGE",
    "PREDELAY_MS_RANGE",
    "RT60_RANGE",
    "TAIL_RT60_FACTOR",
    "convolve",
    "next_fast_len",
    "reverb",
    "reverb_impulse_response",
]

#: RT60 in seconds: ``0 < rt60_s <= 10``.
RT60_RANGE: tuple[float, float] = (0.0, 10.0)
#: Predelay in milliseconds.
PREDELAY_MS_RANGE: tuple[float, float] = (0.0, 500.0)
#: High-frequency damping (0: same decay in every band).
DAMPING_RANGE: tuple[float, float] = (0.0, 1.0)
#: Wet fraction.
MIX_RANGE: tuple[float, float] = (0.0, 1.0)
#: Crossovers of the 8 octave bands, Hz.
BAND_CROSSOVERS_HZ: tuple[float, ...] = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
#: RT60 of the highest band relative to ``rt60_s`` at ``damping = 1``.
DAMPING_MIN_RATIO: float = 0.1
#: Default IR length: ``predelay + TAIL_RT60_FACTOR · rt60`` (1.5 · 60 dB = 90 dB of decay).
TAIL_RT60_FACTOR: float = 1.5
#: Longest impulse response accepted, in seconds (``length`` / ``ir_length`` above
#: ``MAX_IR_SECONDS · sample_rate`` raise ``ValueError``); the default length is at most
#: ``PREDELAY_MS_RANGE[1] / 1000 + TAIL_RT60_FACTOR · RT60_RANGE[1]`` = 15.5 s.
MAX_IR_SECONDS: float = 60.0

_LN_1000 = math.log(1000.0)  # amplitude decay exponent for 60 dB
_FRAME_SECONDS = 0.0232  # ~1024 samples at 44.1 kHz
_ENERGY_EPS = 1e-30
_ENERGY_CHUNK = 1 << 17  # samples of IR tail per step when only its energy is needed


def next_fast_len(n: int) -> int:
    """Smallest integer ``>= n`` whose only prime factors are 2, 3 and 5 (fast for every FFT).

    Args:
        n: a positive length.

    Returns:
        The 5-smooth length.
    """
    if n <= 1:
        return 1
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # smallest power of two times p35 that reaches n
            q = -(-n // p35)
            cand = p35 * (1 << (q - 1).bit_length())
            best = min(best, cand)
            p35 *= 3
        p5 *= 5
    return best


def _fft_convolve(x: Tensor, h: Tensor) -> Tensor:
    """Linear convolution of ``x (B, C, T)`` with ``h (B|1, C|1, K)``, truncated to ``T``."""
    samples = x.shape[-1]
    taps = min(h.shape[-1], samples)  # later taps cannot reach the first T output samples
    h = h[..., :taps]
    n = next_fast_len(samples + taps - 1)
    spec = torch.fft.rfft(x, n=n) * torch.fft.rfft(h, n=n)
    return torch.fft.irfft(spec, n=n)[..., :samples]


def convolve(x: Tensor, impulse_response: Tensor) -> Tensor:
    """Convolve audio with a user-supplied impulse response (FFT convolution).

    ``y[b, c, t] = Σ_k h[b, c, k] · x[b, c, t − k]`` for ``0 <= t < T``: the output is truncated to
    the input's length (the tail that rings past the end of ``x`` is dropped; pad ``x`` with
    zeros first to keep it). Computed with ``torch.fft.rfft`` at a 5-smooth size
    ``>= T + min(K, T) − 1`` (no circular wrap-around). Inputs with a peak of 2 or more are
    scaled by exact powers of two around the FFT (no overflow of its sums, bit-identical
    results otherwise); float16/bfloat16 are computed in float32 and cast back.

    Args:
        x: audio, ``(batch, channels, samples)``.
        impulse_response: ``(taps,)`` (same IR for every channel and item),
            ``(channels or 1, taps)`` (one per channel, shared by the batch) or
            ``(batch or 1, channels or 1, taps)``. Cast to ``x.dtype``; must be on ``x``'s device.

    Returns:
        ``(batch, channels, samples)``, dtype and device of ``x``. Differentiable w.r.t. both
        arguments.

    Raises:
        ValueError: malformed audio, an IR with a bad ndim, batch or channel count, no taps,
            another device, or (CPU) non-finite values or a result that overflows the dtype.
    """
    check_audio(x)
    h = impulse_response
    if not isinstance(h, Tensor):
        raise ValueError(f"impulse_response must be a torch.Tensor, got {type(h).__name__}")
    if not (h.is_floating_point()):
        raise ValueError(f"impulse_response must be floating point, got dtype {h.dtype}")
    if h.device != x.device:
        raise ValueError(f"impulse_response is on {h.device} but the audio is on {x.device}")
    if h.ndim == 1:
        h = h[None, None]
    elif h.ndim == 2:
        h = h[None]
    elif h.ndim != 3:
        raise ValueError(
            f"impulse_response must be (taps,), (channels, taps) or (batch, channels, taps), "
            f"got shape {tuple(impulse_response.shape)}"
        )
    batch, chans, _ = x.shape
    if h.shape[-1] < 1:
        raise ValueError("impulse_response has no taps")
    if h.shape[0] not in (1, batch):
        raise ValueError(f"impulse_response batch {h.shape[0]} does not match the audio's {batch}")
    if h.shape[1] not in (1, chans):
        raise ValueError(
            f"impulse_response has {h.shape[1]} channels; the audio has {chans} (use 1 or {chans})"
        )
    if h.device.type == "cpu":
        check_finite(h, "impulse_response")
    work = x if x.dtype in _COMPUTE_DTYPES else x.float()
    h = h.to(work.dtype)
    x_scales, h_scales = _pow2_scale(work), _pow2_scale(h)
    if x_scales is not None:
        work = work * x_scales[0]
    if h_scales is not None:
        h = h * h_scales[0]
    y = _fft_convolve(work, h)
    for scales in (x_scales, h_scales):
        if scales is not None:
            y = y * scales[1]
    y = y if y.dtype == x.dtype else y.to(x.dtype)
    _check_no_overflow(y, x_scales is not None or h_scales is not None, "convolve")
    return y


def _frame_size(sample_rate: float) -> int:
    """FFT size of the noise frames: the power of two nearest to ~23 ms (1024 at 44.1 kHz)."""
    return 1 << max(4, round(math.log2(sample_rate * _FRAME_SECONDS)))


def _band_masks(sample_rate: float, n_fft: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Complementary octave-band masks ``(bands, n_fft // 2 + 1)`` that sum to 1 per bin."""
    freqs = torch.arange(n_fft // 2 + 1, device=device, dtype=dtype) * (sample_rate / n_fft)
    cross = torch.tensor(BAND_CROSSOVERS_HZ, device=device, dtype=dtype)
    # position within the one-octave transition around each crossover, 0 below, 1 above
    pos = torch.log2(freqs.clamp_min(1e-3)[None, :] / cross[:, None]) + 0.5
    above = torch.sin(pos.clamp(0.0, 1.0) * (math.pi / 2)).square()  # (crossovers, bins)
    ones = torch.ones_like(above[:1])
    zeros = torch.zeros_like(above[:1])
    upper = torch.cat([ones, above], dim=0)  # s_{b-1}, s_{-1} = 1
    lower = torch.cat([above, zeros], dim=0)  # s_b, s_{last} = 0
    return upper - lower


def _decaying_noise(
    sample_rate: float,
    rt60: Tensor,
    damping: Tensor,
    seeds: Tensor,
    samples: int,
    start_block: int = 0,
) -> Tensor:
    """Band-wise decaying stereo noise ``(batch, 2, samples)`` (not normalized).

    Returns the tail's samples ``[start_block · hop, start_block · hop + samples)``; every
    frame is a pure function of its index, so any such window is bit-identical to the same
    samples of a longer call.
    """
    batch = rt60.shape[0]
    device, dtype = rt60.device, rt60.dtype
    n_fft = _frame_size(sample_rate)
    hop = n_fft // 2
    n_bins = n_fft // 2 + 1
    blocks = -(-samples // hop)
    n_frames = blocks + 1  # frame k covers [(k - 1) hop, (k + 1) hop), centred on k·hop
    first = start_block

    # Noise spectra: iid uniform real and imaginary parts in [-1, 1), four per hash of
    # (seed, counter = channel·2^52 + frame·2^20 + j), i.e. two bins per counter j. The inverse
    # FFT of n_fft/2 + 1 such bins is Gaussian noise (central limit theorem).
    n_pairs = (n_bins + 1) // 2
    chan = torch.arange(2, device=device, dtype=torch.int64) << 52
    frame = torch.arange(first, first + n_frames, device=device, dtype=torch.int64) << 20
    pair = torch.arange(n_pairs, device=device, dtype=torch.int64)
    counter = chan[:, None, None] + frame[None, :, None] + pair[None, None, :]
    lanes = signed_uniform(seeds[:, None, None, None], counter[None], dtype)
    lanes = lanes.reshape(batch, 2, n_frames, 2 * n_pairs, 2)[:, :, :, :n_bins]

    # Gains: Σ_b mask_b(f) · exp(−ln(1000) · t_k / rt60_b), (batch, frames, bins).
    masks = _band_masks(sample_rate, n_fft, device, dtype)
    n_bands = masks.shape[0]
    position = torch.linspace(0.0, 1.0, n_bands, device=device, dtype=dtype)
    rt60_band = rt60[:, None] * DAMPING_MIN_RATIO ** (damping[:, None] * position[None, :])
    t_frame = torch.arange(first, first + n_frames, device=device, dtype=dtype) * (
        hop / sample_rate
    )
    decay = torch.exp(-(_LN_1000 / rt60_band)[:, :, None] * t_frame[None, None, :])
    gains = torch.einsum("bnk,nf->bkf", decay, masks)  # (batch, frames, bins)

    # real x real product on the (re, im) pairs is cheaper than a complex x real one
    spec = torch.view_as_complex(lanes * gains[:, None, :, :, None])
    frames = torch.fft.irfft(spec, n=n_fft, norm="ortho")  # (batch, 2, frames, n_fft)
    window = torch.sin((torch.arange(n_fft, device=device, dtype=dtype) + 0.5) * (math.pi / n_fft))
    frames = frames.mul_(window)  # irfft's backward does not need its output: in place is safe
    # block m = second half of frame m + first half of frame m + 1
    out = frames[:, :, :-1, hop:] + frames[:, :, 1:, :hop]
    return out.reshape(batch, 2, blocks * hop)[..., :samples]


def _common_batch(
    params: dict[str, ParamLike | int | Tensor],
    batch_size: int | None,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> tuple[int, torch.device, torch.dtype]:
    """Batch size, device and dtype shared by the tensor parameters (or the defaults)."""
    sizes = {
        name: int(v.shape[0])
        for name, v in params.items()
        if isinstance(v, Tensor) and v.ndim == 1 and v.shape[0] != 1
    }
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        sizes["batch_size"] = batch_size
    if len(set(sizes.values())) > 1:
        raise ValueError(f"parameters have mismatched batch sizes: {sizes}")
    batch = next(iter(sizes.values()), 1)
    tensors = [v for v in params.values() if isinstance(v, Tensor)]
    if device is None:
        device = tensors[0].device if tensors else torch.device("cpu")
    device = torch.device(device)
    if dtype is None:
        floats = [v.dtype for v in tensors if v.is_floating_point()]
        dtype = floats[0] if floats else torch.get_default_dtype()
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    return batch, device, dtype


def _check_rt60(rt60: Tensor) -> None:
    if rt60.device.type == "cpu" and bool((rt60.detach() <= 0).any()):
        raise ValueError(f"rt60_s must be > 0 (range (0, {RT60_RANGE[1]}]), got {rt60.tolist()}")


def reverb_impulse_response(
    sample_rate: float,
    rt60_s: ParamLike,
    predelay_ms: ParamLike,
    damping: ParamLike,
    seed: int | Tensor,
    *,
    batch_size: int | None = None,
    length: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Synthesize a stereo reverb impulse response (band-wise decaying noise, see the module doc).

    The IR is ``predelay`` samples of silence followed by the decaying noise tail; each channel
    is normalized to unit energy (``Σ_t h² = 1``). The predelay ``d = predelay_ms · sr / 1000``
    may be fractional: the tail is placed by linear interpolation between the shifts
    ``floor(d)`` and ``floor(d) + 1`` (a first-order fractional delay, which slightly low-passes
    the IR at non-integer delays), so the IR is differentiable w.r.t. ``predelay_ms`` too
    (piecewise linear in it).

    The noise is a pure function of ``(seed, channel, frame, bin)``: the same seed gives a
    bit-identical IR (on one device, for one dtype and length), item ``i`` of a batch equals item
    ``i`` drawn alone (with the same ``length``), and a Python-int seed gives every item the same
    noise. Pass a ``(batch,)`` tensor of seeds for independent items.

    Args:
        sample_rate: in Hz, > 0.
        rt60_s: broadband / low-frequency RT60 in seconds, in (0, 10]; float or ``(batch,)``.
        predelay_ms: in [0, 500] ms; float or ``(batch,)``.
        damping: in [0, 1]: 0 same decay in every band, 1 the top band (> 8 kHz) decays
            ``1 / DAMPING_MIN_RATIO`` = 10 times faster; float or ``(batch,)``.
        seed: a Python int or a ``(batch,)`` integer tensor (one seed per item).
        batch_size: number of items, if no parameter is a ``(batch,)`` tensor.
        length: IR length in samples for the whole batch. Default:
            ``ceil(max over items of (predelay_ms / 1000 + TAIL_RT60_FACTOR · rt60_s) ·
            sample_rate)`` (90 dB of decay for the item that needs the longest). Items whose
            tail is cut short by a small ``length`` are normalized after the cut. At most
            ``MAX_IR_SECONDS · sample_rate``.
        device: device of the result (default: that of the tensor parameters, else CPU).
        dtype: floating dtype (default: that of the floating tensor parameters, else torch's
            default dtype).

    Returns:
        ``(batch, 2, taps)`` IR, channel 0 left, 1 right. Differentiable w.r.t. ``rt60_s``,
        ``predelay_ms`` and ``damping``.

    Raises:
        ValueError: a bad sample rate, a parameter out of range, mismatched batch sizes, a bad
            seed, a bad length or one above ``MAX_IR_SECONDS · sample_rate``.
    """
    sr = check_sample_rate(sample_rate)
    params = {"rt60_s": rt60_s, "predelay_ms": predelay_ms, "damping": damping, "seed": seed}
    batch, device, dtype = _common_batch(params, batch_size, device, dtype)
    ref = torch.empty((batch, 1, 1), device=device, dtype=dtype)
    device = ref.device  # with its index ("cuda" -> "cuda:0"), as tensors report it
    rt60 = as_param(rt60_s, ref, "rt60_s", low=RT60_RANGE[0], high=RT60_RANGE[1])
    _check_rt60(rt60)
    pre = as_param(
        predelay_ms, ref, "predelay_ms", low=PREDELAY_MS_RANGE[0], high=PREDELAY_MS_RANGE[1]
    )
    damp = as_param(damping, ref, "damping", low=DAMPING_RANGE[0], high=DAMPING_RANGE[1])
    seeds = as_seed(seed, batch, device)

    taps = _ir_taps(length, "length", sr, rt60, pre)
    return _impulse_response(sr, rt60, pre, damp, seeds, taps, taps)


def _ir_taps(length: int | None, name: str, sr: float, rt60: Tensor, pre: Tensor) -> int:
    """The IR length in samples: ``length`` checked against the maximum, or the default."""
    max_taps = math.floor(MAX_IR_SECONDS * sr)
    if length is None:
        # clamped to the ranges: unchecked (CUDA) values cannot ask for an unbounded IR
        longest = float(
            (
                pre.detach().clamp(*PREDELAY_MS_RANGE) / 1000.0
                + TAIL_RT60_FACTOR * rt60.detach().clamp(*RT60_RANGE)
            ).max()
        )
        return min(max(2, math.ceil(longest * sr)), max(2, max_taps))
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"{name} must be a positive int (samples), got {length!r}")
    if length > max_taps:
        raise ValueError(
            f"{name}={length} samples ({length / sr:.4g} s) is above the maximum IR length "
            f"MAX_IR_SECONDS={MAX_IR_SECONDS:g} s ({max_taps} samples at {sr:g} Hz)"
        )
    return length


def _impulse_response(
    sr: float,
    rt60: Tensor,
    pre: Tensor,
    damp: Tensor,
    seeds: Tensor,
    taps: int,
    keep: int,
) -> Tensor:
    """The first ``keep`` samples of the unit-energy IR of length ``taps``: ``(batch, 2, keep)``.

    Only ``keep`` samples are built; the energy of the samples ``[keep, taps)``, needed for the
    normalization, is accumulated in chunks of ``_ENERGY_CHUNK`` samples (bounded memory without
    autograd). With ``keep == taps`` the result is exactly the full IR.
    """
    batch, device = rt60.shape[0], rt60.device
    tail = _decaying_noise(sr, rt60, damp, seeds, keep)  # (batch, 2, keep)

    # Predelay d = n + f samples: h[t] = (1 - f)·tail[t - n] + f·tail[t - n - 1], zero before.
    delay = pre * (sr / 1000.0)
    whole = torch.floor(delay.detach())
    frac = (delay - whole)[:, None, None]
    shift = whole.to(torch.int64)
    pad = int(shift.max()) + 1
    padded = torch.nn.functional.pad(tail, (pad, 0))  # (batch, 2, pad + keep)
    # taken[..., j] = tail[j - 1 - n] for j in [0, keep]
    index = torch.arange(keep + 1, device=device)[None, :] + (pad - 1 - shift)[:, None]
    taken = padded.gather(-1, index[:, None, :].expand(batch, 2, keep + 1))
    ir = torch.lerp(taken[..., 1:], taken[..., :-1], frac)
    energy = ir.square().sum(dim=-1, keepdim=True)
    if taps > keep:
        energy = energy + _tail_energy(sr, rt60, damp, seeds, frac, shift, keep, taps)
    return ir * torch.rsqrt(energy + _ENERGY_EPS)


def _tail_energy(
    sr: float,
    rt60: Tensor,
    damp: Tensor,
    seeds: Tensor,
    frac: Tensor,
    shift: Tensor,
    keep: int,
    taps: int,
) -> Tensor:
    """``Σ_{t=keep}^{taps-1} h[t]²`` of the unnormalized IR, ``(batch, 2, 1)``, in chunks.

    ``h[t] = v[t - n]`` with ``v[u] = lerp(tail[u], tail[u - 1], f)``: item ``b`` needs
    ``u`` in ``[keep - n_b, taps - n_b)``.
    """
    hop = _frame_size(sr) // 2
    n_max, n_min = int(shift.max()), int(shift.min())
    u_lo = max(0, keep - n_max)
    u_hi = taps - n_min
    lo = (keep - shift)[:, None, None]
    hi = (taps - shift)[:, None, None]
    block = max(0, u_lo - 1) // hop  # start one sample early: the first v needs tail[u - 1]
    chunk_blocks = max(1, _ENERGY_CHUNK // hop)
    prev = None
    total = torch.zeros_like(frac.expand(-1, 2, 1))
    while block * hop < u_hi:
        start = block * hop
        part = _decaying_noise(sr, rt60, damp, seeds, chunk_blocks * hop, start_block=block)
        if prev is None:  # tail[start - 1]: only reaches masked-out samples (start < u_lo)
            prev = torch.zeros_like(part[..., :1])
        v = torch.lerp(part, torch.cat([prev, part[..., :-1]], dim=-1), frac)
        u = torch.arange(start, start + part.shape[-1], device=part.device)
        mask = (u >= lo) & (u < hi)  # (batch, 1, chunk)
        total = total + torch.where(mask, v.square(), 0.0).sum(dim=-1, keepdim=True)
        prev = part[..., -1:]
        block += chunk_blocks
    return total


def reverb(
    x: Tensor,
    sample_rate: float,
    rt60_s: ParamLike,
    predelay_ms: ParamLike,
    damping: ParamLike,
    mix: ParamLike,
    seed: int | Tensor,
    *,
    ir_length: int | None = None,
) -> Tensor:
    """Parametric stereo reverb: convolution with :func:`reverb_impulse_response`.

    ``y = (1 − mix) · x + mix · (x ∗ h)`` channel by channel (left with the left IR, right with
    the right IR; the two IRs are decorrelated, so a centred mono source gets a wide tail). A
    mono input keeps one channel and uses the left IR. The IR has unit energy per channel, so the
    wet signal has about the level of the dry one for broadband input. The convolution is done
    with ``torch.fft.rfft`` at a 5-smooth size ``>= T + min(taps, T) − 1`` and the output is
    truncated to the input length (the tail after the end of ``x`` is dropped). Loud inputs
    (peak >= 2) are scaled by exact powers of two around the FFT; float16/bfloat16 audio is
    processed in float32 and cast back.

    Args:
        x: audio, ``(batch, 1 or 2, samples)``.
        sample_rate: in Hz, > 0.
        rt60_s: RT60 in seconds, in (0, 10]; float or ``(batch,)``.
        predelay_ms: in [0, 500] ms; float or ``(batch,)``. Fractional sample delays use linear
            interpolation (differentiable, piecewise linear).
        damping: high-frequency damping in [0, 1]; float or ``(batch,)``.
        mix: wet fraction in [0, 1]; float or ``(batch,)``.
        seed: a Python int (same noise for every item) or a ``(batch,)`` integer tensor.
        ir_length: IR length in samples (default: predelay + 1.5 · rt60 of the slowest item),
            at most ``MAX_IR_SECONDS · sample_rate``. Only the first ``min(ir_length, T)``
            samples are built (later taps cannot reach the output); the IR is still normalized
            by the energy of all its ``ir_length`` samples, so the output does not depend on
            the clip's length.

    Returns:
        ``(batch, channels, samples)``, dtype and device of ``x``. Differentiable w.r.t. ``x``,
        ``rt60_s``, ``predelay_ms``, ``damping`` and ``mix``.

    Shape:
        x: ``(B, C, T)`` with C in {1, 2}; parameters ``()`` or ``(B,)``; output ``(B, C, T)``.

    Raises:
        ValueError: malformed audio (wrong ndim, < 2 samples, NaN, more than 2 channels), a bad
            sample rate, a parameter out of range or with a mismatched batch size, a bad seed,
            an ``ir_length`` above the maximum, or (CPU) a result that overflows the dtype.
    """
    check_audio(x, channels=(1, 2))
    sr = check_sample_rate(sample_rate)
    work = x if x.dtype in _COMPUTE_DTYPES else x.float()
    wet_fraction = as_param(mix, work, "mix", low=MIX_RANGE[0], high=MIX_RANGE[1])
    rt60 = as_param(rt60_s, work, "rt60_s", low=RT60_RANGE[0], high=RT60_RANGE[1])
    _check_rt60(rt60)
    pre = as_param(
        predelay_ms, work, "predelay_ms", low=PREDELAY_MS_RANGE[0], high=PREDELAY_MS_RANGE[1]
    )
    damp = as_param(damping, work, "damping", low=DAMPING_RANGE[0], high=DAMPING_RANGE[1])
    seeds = as_seed(seed, x.shape[0], x.device)
    taps = _ir_taps(ir_length, "ir_length", sr, rt60, pre)
    # IR samples past the clip's length cannot reach the output: build only the first T
    # (normalized by the energy of the whole IR, so the result is unchanged).
    ir = _impulse_response(sr, rt60, pre, damp, seeds, taps, min(taps, x.shape[-1]))
    if x.shape[1] == 1:
        ir = ir[:, :1]
    scales = _pow2_scale(work)  # exact: no FFT overflow near the dtype's maximum
    dry = work if scales is None else work * scales[0]
    wet = _fft_convolve(dry, ir)
    y = torch.lerp(dry, wet, wet_fraction[:, None, None])  # (1 − mix)·x + mix·wet
    if scales is not None:
        y = y * scales[1]
    y = y if y.dtype == x.dtype else y.to(x.dtype)
    _check_no_overflow(y, scales is not None, "reverb")
    return y
