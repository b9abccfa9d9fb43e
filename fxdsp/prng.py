"""Counter-based pseudo-random numbers in plain int64 torch ops.

A stateless generator: the value at a ``counter`` for a ``seed`` is a pure function of the two,
computed with the SplitMix64 finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom
number generators", OOPSLA 2014)::

    bits(seed, counter) = mix64(mix64(seed) + counter * GAMMA)

where ``mix64`` is the SplitMix64 output function and ``GAMMA`` the 64-bit golden ratio. Because
nothing depends on a generator state, a whole batch of items, each with its own seed, is drawn in
one vectorised call (no Python loop over items), item ``i`` gets the same numbers whether it is
drawn alone or inside a batch, and the integer stream is bit-identical on every device (the hash
only uses wrapping int64 multiplication, xor, shifts and masks). :func:`signed_uniform` (four
16-bit uniforms per hash, the fast path used by the reverb) is therefore bit-identical on every
device too. Gaussian values (:func:`normal_pair`) go through Box–Muller
(``log``/``sqrt``/``cos``/``sin``), whose last bit may differ between CPU and CUDA math
libraries; on one device they are bit-identical from run to run.

Unsigned 64-bit arithmetic is emulated on signed int64: multiplication wraps modulo 2**64 in
two's complement, and the logical right shift is an arithmetic shift followed by a mask.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "as_seed",
    "mix64",
    "normal_pair",
    "random_bits",
    "signed_uniform",
    "uniform_lanes",
    "uniform_pair",
]

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """Return the unsigned 64-bit ``value`` as the int64 with the same bit pattern."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GAMMA = _signed(0x9E3779B97F4A7C15)
_MUL1 = _signed(0xBF58476D1CE4E5B9)
_MUL2 = _signed(0x94D049BB133111EB)


def _shr(x: Tensor, shift: int) -> Tensor:
    """Logical (unsigned) right shift of an int64 tensor."""
    return (x >> shift) & ((1 << (64 - shift)) - 1)


def _mix64_(z: Tensor) -> Tensor:
    """In-place SplitMix64 output function on an int64 tensor (returns ``z``)."""
    t = z >> 30
    t &= (1 << 34) - 1
    z ^= t
    z *= _MUL1
    t = z >> 27
    t &= (1 << 37) - 1
    z ^= t
    z *= _MUL2
    t = z >> 31
    t &= (1 << 33) - 1
    z ^= t
    return z


def mix64(x: Tensor) -> Tensor:
    """SplitMix64 output function: a bijective avalanche hash of 64-bit integers.

    ``z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31``
    (logical shifts, multiplication modulo 2**64).

    Args:
        x: an int64 tensor of any shape.

    Returns:
        A new int64 tensor of the same shape (the unsigned result's bit pattern).
    """
    if x.dtype != torch.int64:
        raise ValueError(f"mix64 needs an int64 tensor, got {x.dtype}")
    return _mix64_(x.clone())


def as_seed(
    seed: int | Tensor, batch: int | None = None, device: torch.device | None = None
) -> Tensor:
    """Turn a seed into an int64 tensor.

    Args:
        seed: a Python int (any size: it is reduced modulo 2**64), a 0-d integer tensor or a
            ``(batch,)`` integer tensor.
        batch: if given, the seed is expanded to (or checked against) ``(batch,)``.
        device: the device of the result for a Python int (tensors must already be there).

    Returns:
        An int64 tensor, ``(batch,)`` when ``batch`` is given.

    Raises:
        ValueError: a float/bool seed, a tensor of the wrong shape, dtype or device.
    """
    if isinstance(seed, Tensor):
        if seed.dtype == torch.bool or seed.is_floating_point() or seed.is_complex():
            raise ValueError(f"seed must be an integer tensor, got dtype {seed.dtype}")
        if device is not None and seed.device != torch.device(device):
            raise ValueError(f"seed is on {seed.device} but {device} is needed")
        t = seed.to(torch.int64)
        if t.ndim == 0:
            t = t.reshape(1) if batch is None else t.reshape(1).expand(batch)
        elif t.ndim != 1:
            raise ValueError(
                f"seed must be an int or a (batch,) tensor, got shape {tuple(t.shape)}"
            )
        elif batch is not None and t.shape[0] != batch:
            if t.shape[0] != 1:
                raise ValueError(f"seed has {t.shape[0]} values but the batch has {batch} items")
            t = t.expand(batch)
        return t
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int or an integer tensor, got {type(seed).__name__}")
    return torch.full((batch or 1,), _signed(seed), dtype=torch.int64, device=device)


def random_bits(seed: Tensor, counter: Tensor) -> Tensor:
    """64 random bits per counter: ``mix64(mix64(seed) + counter * GAMMA)``.

    Args:
        seed: int64 tensor broadcastable against ``counter`` (e.g. ``(batch, 1, 1)``).
        counter: int64 tensor of stream positions (e.g. built from channel and sample indices).

    Returns:
        int64 tensor of the broadcast shape.
    """
    if seed.dtype != torch.int64 or counter.dtype != torch.int64:
        raise ValueError(f"seed and counter must be int64, got {seed.dtype} and {counter.dtype}")
    # counter * GAMMA has the counter's (often small) shape; the sum is the one full-size tensor.
    return _mix64_(mix64(seed) + counter * _GAMMA)


def uniform_pair(bits: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Two uniform numbers from the two 24-bit halves of 64 random bits.

    ``u1 = (hi + 1) / 2**24`` lies in ``(0, 1]`` (safe for ``log``), ``u2 = lo / 2**24`` in
    ``[0, 1)``. 24 bits are exact in float32 and float64, so both dtypes get the same values.

    Args:
        bits: int64 tensor from :func:`random_bits`.
        dtype: floating dtype of the result.

    Returns:
        ``(u1, u2)``, each the shape of ``bits``.
    """
    hi = _shr(bits, 40)
    lo = _shr(bits, 8) & ((1 << 24) - 1)
    scale = 1.0 / (1 << 24)
    return (hi + 1).to(dtype) * scale, lo.to(dtype) * scale


def uniform_lanes(bits: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Four signed uniform numbers in ``[-1, 1)`` from the four 16-bit lanes of 64 random bits.

    The int64 tensor is reinterpreted as int16 (lowest 16 bits first: every CPU and GPU torch
    runs on is little-endian) and scaled by ``2**-15``. The resolution is 2**-15, plenty for noise.

    Args:
        bits: int64 tensor from :func:`random_bits`.
        dtype: floating dtype of the result.

    Returns:
        ``bits.shape + (4,)`` tensor of values ``k / 32768`` with ``k`` in ``[-32768, 32767]``.
    """
    if bits.dtype != torch.int64:
        raise ValueError(f"bits must be int64, got {bits.dtype}")
    lanes = bits.contiguous().unsqueeze(-1).view(torch.int16)
    return lanes.to(dtype).mul_(1.0 / 32768.0)


def signed_uniform(seed: Tensor, counter: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Four independent uniform values in ``[-1, 1)`` per counter (mean 0, variance 1/3).

    The cheapest noise here: one hash per four numbers, no transcendental functions.

    Args:
        seed: int64 tensor broadcastable against ``counter``.
        counter: int64 tensor of stream positions.
        dtype: floating dtype of the result.

    Returns:
        Tensor of the broadcast shape plus a trailing axis of 4.
    """
    return uniform_lanes(random_bits(seed, counter), dtype)


def normal_pair(
    seed: Tensor, counter: Tensor, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """Two independent standard normal values per counter (Box–Muller).

    ``r = sqrt(-2 ln u1)``, ``z1 = r cos(2 pi u2)``, ``z2 = r sin(2 pi u2)``.

    Args:
        seed: int64 tensor broadcastable against ``counter``.
        counter: int64 tensor of stream positions.
        dtype: floating dtype of the result.

    Returns:
        ``(z1, z2)`` of the broadcast shape, each N(0, 1).
    """
    u1, u2 = uniform_pair(random_bits(seed, counter), dtype)
    # u1 is in (0, 1], so the log is finite and -2 ln u1 >= 0; clamp guards -0.0 rounding.
    r = torch.sqrt((-2.0 * torch.log(u1)).clamp_min(0.0))
    theta = (2.0 * math.pi) * u2
    return r * torch.cos(theta), r * torch.sin(theta)
