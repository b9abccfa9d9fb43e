"""Branching one-pole gain smoother of the feed-forward compressor, as a compiled kernel.

The recursion (Giannoulis, Massberg, Reiss, "Digital Dynamic Range Compressor Design - A
Tutorial and Analysis", JAES 60(6), 2012, smoothing in the log domain with branching):

.. math::

    g[n] = \\alpha[n]\\, g[n-1] + (1 - \\alpha[n])\\, c[n], \\qquad
    \\alpha[n] = \\begin{cases} \\alpha_A & c[n] < g[n-1] \\ (\\text{attack}) \\\\
                                \\alpha_R & \\text{otherwise (release)} \\end{cases}, \\qquad
    g[-1] = 0,

runs per batch item in a Numba kernel: ``@njit(parallel=True)`` with ``prange`` over the batch on
CPU (two rows interleaved per task in the forward; serial builds in fork-started children, see
below), one ``numba.cuda`` thread per batch item on CUDA (on torch's current stream). Every sum
is carried in float64 whatever the tensors' dtype.

The backward pass is analytic. With the adjoint :math:`\\lambda[n] = \\partial\\mathcal{L}/\\partial
g[n]` (total, through every later sample), run backwards in time,

.. math::

    \\lambda[n] = \\bar g[n] + \\alpha[n+1]\\, \\lambda[n+1], \\qquad
    \\bar c[n] = (1 - \\alpha[n])\\, \\lambda[n], \\qquad
    \\bar\\alpha_{A,R} = \\sum_{n \\in \\text{attack, release}} \\lambda[n]\\,(g[n-1] - c[n]),

with the branch of every sample taken from the forward pass (stored as a ``uint8`` mask), so
the derivative at an exact switch ``c[n] == g[n-1]`` is the one of the branch the forward took
(release). ``g`` is continuous across a switch, so this is a valid one-sided derivative.

``numba.cuda`` is imported only when a CUDA tensor arrives (CPU-only machines never need it).
Under ``NUMBA_ENABLE_CUDASIM=1`` the kernels of :func:`cuda_kernels` run in Numba's simulator on
NumPy arrays, which is how the CUDA code path is tested without a GPU.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numba
import numpy as np
import torch
from numba import prange
from torch import Tensor
from torch.autograd.function import FunctionCtx

from fxdsp.kernels import in_forked_child

__all__ = [
    "backward_cpu",
    "cuda_kernels",
    "forward_cpu",
    "smooth_gain",
    "smooth_gain_backward",
    "smooth_gain_forward",
    "warm_up",
]

_CUDA_THREADS = 32

# A NumPy array, a Numba CUDA device array or a simulator array: the kernels only index it.
Array = Any


# --------------------------------------------------------------------------------------------
# Per-item recursions, plain Python: compiled for the CPU (njit) and as CUDA device functions.
# --------------------------------------------------------------------------------------------
def _forward_row(c: Array, alpha_a: Array, alpha_r: Array, g: Array, mask: Array, b: int) -> None:
    """Run the branching smoother over row ``b`` of ``c`` into ``g`` and the branch ``mask``."""
    a_att = float(alpha_a[b])
    a_rel = float(alpha_r[b])
    prev = 0.0
    for n in range(c.shape[1]):
        cn = float(c[b, n])
        if cn < prev:
            prev = a_att * prev + (1.0 - a_att) * cn
            mask[b, n] = 1
        else:
            prev = a_rel * prev + (1.0 - a_rel) * cn
            mask[b, n] = 0
        g[b, n] = prev


def _backward_row(
    grad_g: Array,
    g: Array,
    c: Array,
    mask: Array,
    alpha_a: Array,
    alpha_r: Array,
    grad_c: Array,
    grad_alpha_a: Array,
    grad_alpha_r: Array,
    b: int,
) -> None:
    """Adjoint of :func:`_forward_row` for row ``b``, backwards in time with the stored branches."""
    a_att = float(alpha_a[b])
    a_rel = float(alpha_r[b])
    samples = c.shape[1]
    lam = 0.0
    a_next = 0.0
    acc_att = 0.0
    acc_rel = 0.0
    for k in range(samples):
        n = samples - 1 - k
        lam = float(grad_g[b, n]) + a_next * lam
        g_prev = 0.0
        if n > 0:
            g_prev = float(g[b, n - 1])
        diff = g_prev - float(c[b, n])
        if mask[b, n] != 0:
            grad_c[b, n] = (1.0 - a_att) * lam
            acc_att += lam * diff
            a_next = a_att
        else:
            grad_c[b, n] = (1.0 - a_rel) * lam
            acc_rel += lam * diff
            a_next = a_rel
    grad_alpha_a[b] = acc_att
    grad_alpha_r[b] = acc_rel


_forward_row_cpu = numba.njit(cache=True, nogil=True)(_forward_row)
_backward_row_cpu = numba.njit(cache=True, nogil=True)(_backward_row)


@numba.njit(cache=True, nogil=True)
def _step(cn: float, prev: float, a_att: float, a_rel: float) -> tuple[float, int]:
    """One sample of the smoother (same arithmetic as :func:`_forward_row`): ``(g[n], attack)``."""
    if cn < prev:
        return a_att * prev + (1.0 - a_att) * cn, 1
    return a_rel * prev + (1.0 - a_rel) * cn, 0


@numba.njit(parallel=True, cache=True, nogil=True)
def forward_cpu(c: Array, alpha_a: Array, alpha_r: Array, g: Array, mask: Array) -> None:
    """CPU forward kernel: fill ``g`` and ``mask`` (both ``(batch, samples)``) from ``c``.

    Each ``prange`` task runs two batch rows interleaved sample by sample: the recursion is
    latency-bound, and two independent dependency chains in one loop nearly halve its time. An
    odd batch's last task runs its row twice (identical values written).

    Args:
        c: static-curve gain in dB, ``(batch, samples)`` float32/float64 array.
        alpha_a: attack coefficients, ``(batch,)`` float64.
        alpha_r: release coefficients, ``(batch,)`` float64.
        g: output smoothed gain in dB, same shape and dtype as ``c``.
        mask: output branch mask, ``(batch, samples)`` uint8, 1 where the attack branch ran.
    """
    batch = c.shape[0]
    for pair in prange((batch + 1) // 2):
        b0 = 2 * pair
        b1 = min(b0 + 1, batch - 1)
        att0, rel0 = float(alpha_a[b0]), float(alpha_r[b0])
        att1, rel1 = float(alpha_a[b1]), float(alpha_r[b1])
        g0 = 0.0
        g1 = 0.0
        for n in range(c.shape[1]):
            g0, m0 = _step(float(c[b0, n]), g0, att0, rel0)
            g1, m1 = _step(float(c[b1, n]), g1, att1, rel1)
            g[b0, n] = g0
            mask[b0, n] = m0
            g[b1, n] = g1
            mask[b1, n] = m1


@numba.njit(parallel=True, cache=True, nogil=True)
def backward_cpu(
    grad_g: Array,
    g: Array,
    c: Array,
    mask: Array,
    alpha_a: Array,
    alpha_r: Array,
    grad_c: Array,
    grad_alpha_a: Array,
    grad_alpha_r: Array,
) -> None:
    """CPU backward kernel: fill ``grad_c`` ``(batch, samples)`` and ``grad_alpha_*`` ``(batch,)``.

    Args:
        grad_g: upstream gradient w.r.t. ``g``, ``(batch, samples)``.
        g: forward output, ``(batch, samples)``.
        c: forward input, ``(batch, samples)``.
        mask: forward branch mask, ``(batch, samples)`` uint8.
        alpha_a: attack coefficients, ``(batch,)`` float64.
        alpha_r: release coefficients, ``(batch,)`` float64.
        grad_c: output gradient w.r.t. ``c``, ``(batch, samples)``.
        grad_alpha_a: output gradient w.r.t. ``alpha_a``, ``(batch,)`` float64.
        grad_alpha_r: output gradient w.r.t. ``alpha_r``, ``(batch,)`` float64.
    """
    for b in prange(c.shape[0]):
        _backward_row_cpu(
            grad_g, g, c, mask, alpha_a, alpha_r, grad_c, grad_alpha_a, grad_alpha_r, b
        )


# Serial twins of the parallel kernels, for forked children (see ``fxdsp.kernels``). They are
# separate functions: a second ``njit`` of the same Python function would share, and load, the
# parallel one's cache entry.


@numba.njit(cache=True, nogil=True)
def _forward_serial(c: Array, alpha_a: Array, alpha_r: Array, g: Array, mask: Array) -> None:
    """Serial :func:`forward_cpu` (one row after the other), for forked children."""
    for b in range(c.shape[0]):
        _forward_row_cpu(c, alpha_a, alpha_r, g, mask, b)


@numba.njit(cache=True, nogil=True)
def _backward_serial(
    grad_g: Array,
    g: Array,
    c: Array,
    mask: Array,
    alpha_a: Array,
    alpha_r: Array,
    grad_c: Array,
    grad_alpha_a: Array,
    grad_alpha_r: Array,
) -> None:
    """Serial :func:`backward_cpu`, for forked children."""
    for b in range(c.shape[0]):
        _backward_row_cpu(
            grad_g, g, c, mask, alpha_a, alpha_r, grad_c, grad_alpha_a, grad_alpha_r, b
        )


def _cpu_kernel(kernel_index: int) -> Any:
    """The CPU kernel to use in this process (parallel, or serial in a forked child)."""
    if in_forked_child():
        return _forward_serial if kernel_index == 0 else _backward_serial
    return forward_cpu if kernel_index == 0 else backward_cpu


# ``numba.cuda`` and the CUDA device functions, bound by :func:`cuda_kernels` on first use. They
# are module globals (not closure variables) so that Numba's CUDA simulator can swap in its
# per-thread fake ``cuda`` module when the kernels run under ``NUMBA_ENABLE_CUDASIM=1``.
cuda: Any = None
_forward_row_cuda: Any = None
_backward_row_cuda: Any = None


@functools.cache
def cuda_kernels() -> tuple[Any, Any]:
    """Compile (once) and return the CUDA ``(forward, backward)`` kernels.

    One thread per batch item; launch as ``kernel[blocks, threads, stream](...)`` with the
    argument lists of :func:`forward_cpu` and :func:`backward_cpu`. Importing ``numba.cuda``
    happens here, not at module import.

    Returns:
        The forward and backward ``numba.cuda`` kernels.
    """
    global cuda, _forward_row_cuda, _backward_row_cuda
    from numba import cuda as numba_cuda

    cuda = numba_cuda
    _forward_row_cuda = numba_cuda.jit(device=True)(_forward_row)
    _backward_row_cuda = numba_cuda.jit(device=True)(_backward_row)

    def forward_kernel(c: Array, alpha_a: Array, alpha_r: Array, g: Array, mask: Array) -> None:
        b = cuda.grid(1)
        if b < c.shape[0]:
            _forward_row_cuda(c, alpha_a, alpha_r, g, mask, b)

    def backward_kernel(
        grad_g: Array,
        g: Array,
        c: Array,
        mask: Array,
        alpha_a: Array,
        alpha_r: Array,
        grad_c: Array,
        grad_aa: Array,
        grad_ar: Array,
    ) -> None:
        b = cuda.grid(1)
        if b < c.shape[0]:
            _backward_row_cuda(grad_g, g, c, mask, alpha_a, alpha_r, grad_c, grad_aa, grad_ar, b)

    return numba_cuda.jit(forward_kernel), numba_cuda.jit(backward_kernel)


# --------------------------------------------------------------------------------------------
# torch glue
# --------------------------------------------------------------------------------------------
@functools.cache
def _numba_cuda_usable() -> bool:
    """Whether Numba can compile and launch CUDA kernels here (driver and libNVVM found)."""
    try:
        from numba import cuda as numba_cuda
        from numba.cuda.cudadrv import nvvm

        return bool(numba_cuda.is_available()) and bool(nvvm.is_available())
    except Exception:  # any import or driver failure means "not usable"
        return False


def _launch(kernel_index: int, tensors: list[Tensor], n_outputs: int) -> None:
    """Run kernel ``kernel_index`` (0 forward, 1 backward) on contiguous same-device tensors.

    The last ``n_outputs`` tensors are written. CPU tensors go to the Numba CPU kernel; CUDA
    tensors to the ``numba.cuda`` kernel on torch's current stream, or, where Numba cannot use
    CUDA (no libNVVM), to the CPU kernel through host copies, with a warning.
    """
    device = tensors[0].device
    cpu_kernel = _cpu_kernel(kernel_index)
    if device.type == "cpu":
        cpu_kernel(*[t.numpy() for t in tensors])
        return
    if device.type != "cuda":
        raise ValueError(f"the compressor kernel runs on CPU or CUDA tensors, not {device.type}")
    if not _numba_cuda_usable():
        warnings.warn(
            "numba.cuda is not usable here (no CUDA driver or libNVVM: install numba-cuda); "
            "the compressor's smoothing kernel runs on the CPU through host copies",
            RuntimeWarning,
            stacklevel=4,
        )
        host = [t.cpu() for t in tensors]
        cpu_kernel(*[t.numpy() for t in host])
        for t, h in zip(tensors[-n_outputs:], host[-n_outputs:], strict=True):
            t.copy_(h)
        return
    kernel = cuda_kernels()[kernel_index]
    batch = tensors[0].shape[0]
    blocks = math.ceil(batch / _CUDA_THREADS)
    index = device.index if device.index is not None else torch.cuda.current_device()
    from numba.core.errors import NumbaPerformanceWarning

    with cuda.gpus[index], warnings.catch_warnings():
        # one thread per batch item: a small grid is expected, not worth a warning per call
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        stream = cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)
        arrays = [cuda.as_cuda_array(t, sync=False) for t in tensors]
        kernel[blocks, _CUDA_THREADS, stream](*arrays)


def _check_kernel_inputs(c: Tensor, alpha_a: Tensor, alpha_r: Tensor) -> None:
    if c.ndim != 2:
        raise ValueError(f"c must be (batch, samples), got shape {tuple(c.shape)}")
    if c.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"c must be float32 or float64, got {c.dtype}")
    for name, a in (("alpha_a", alpha_a), ("alpha_r", alpha_r)):
        if a.shape != (c.shape[0],):
            raise ValueError(f"{name} must be ({c.shape[0]},), got shape {tuple(a.shape)}")
        if a.device != c.device:
            raise ValueError(f"{name} is on {a.device} but c is on {c.device}")


def smooth_gain_forward(c: Tensor, alpha_a: Tensor, alpha_r: Tensor) -> tuple[Tensor, Tensor]:
    """Run the branching smoother (no autograd).

    Args:
        c: static-curve gain in dB, ``(batch, samples)``, float32 or float64.
        alpha_a: attack pole ``exp(-1/(tau_A fs))`` in ``[0, 1)``, ``(batch,)``.
        alpha_r: release pole ``exp(-1/(tau_R fs))`` in ``[0, 1)``, ``(batch,)``.

    Returns:
        ``(g, mask)``: the smoothed gain in dB (dtype of ``c``) and the uint8 branch mask
        (1 = attack), both ``(batch, samples)``.
    """
    _check_kernel_inputs(c, alpha_a, alpha_r)
    c = c.detach().contiguous()
    alpha_a = alpha_a.detach().to(torch.float64).contiguous()
    alpha_r = alpha_r.detach().to(torch.float64).contiguous()
    g = torch.empty_like(c)
    mask = torch.empty(c.shape, dtype=torch.uint8, device=c.device)
    _launch(0, [c, alpha_a, alpha_r, g, mask], n_outputs=2)
    return g, mask


def smooth_gain_backward(
    grad_g: Tensor, g: Tensor, c: Tensor, mask: Tensor, alpha_a: Tensor, alpha_r: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Analytic vector-Jacobian product of :func:`smooth_gain_forward`.

    Args:
        grad_g: gradient w.r.t. ``g``, ``(batch, samples)``.
        g: the forward output, ``(batch, samples)``.
        c: the forward input, ``(batch, samples)``.
        mask: the forward branch mask, ``(batch, samples)`` uint8.
        alpha_a: attack poles, ``(batch,)``.
        alpha_r: release poles, ``(batch,)``.

    Returns:
        ``(grad_c, grad_alpha_a, grad_alpha_r)``: ``(batch, samples)`` in ``c``'s dtype and two
        ``(batch,)`` float64 tensors.
    """
    # Detached views: ``__cuda_array_interface__`` and ``.numpy()`` refuse tensors needing grad.
    g, c, mask = g.detach().contiguous(), c.detach().contiguous(), mask.detach().contiguous()
    grad_g = grad_g.detach().to(c.dtype).contiguous()
    alpha_a = alpha_a.detach().to(torch.float64).contiguous()
    alpha_r = alpha_r.detach().to(torch.float64).contiguous()
    grad_c = torch.empty_like(c)
    grad_aa = torch.empty_like(alpha_a)
    grad_ar = torch.empty_like(alpha_r)
    _launch(1, [grad_g, g, c, mask, alpha_a, alpha_r, grad_c, grad_aa, grad_ar], n_outputs=3)
    return grad_c, grad_aa, grad_ar


class _SmoothGain(torch.autograd.Function):
    """Autograd wrapper of the branching smoother with the analytic adjoint."""

    @staticmethod
    def forward(ctx: FunctionCtx, c: Tensor, alpha_a: Tensor, alpha_r: Tensor) -> Tensor:
        g, mask = smooth_gain_forward(c, alpha_a, alpha_r)
        ctx.save_for_backward(g, c, mask, alpha_a, alpha_r)
        return g

    @staticmethod
    def backward(ctx: Any, grad_g: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        # Backward runs with grad enabled only under create_graph=True. ``once_differentiable``
        # would return a disconnected gradient there, and a second derivative through the
        # compressor would silently miss this kernel's terms: refuse instead.
        if torch.is_grad_enabled():
            raise RuntimeError(
                "the compressor's gain smoother (fxdsp.kernels.compressor.smooth_gain) has no "
                "second-order gradient: backward with create_graph=True, double backward and "
                "gradgradcheck are not supported (the first-order gradient is exact)"
            )
        g, c, mask, alpha_a, alpha_r = ctx.saved_tensors
        grad_c, grad_aa, grad_ar = smooth_gain_backward(grad_g, g, c, mask, alpha_a, alpha_r)
        need_c, need_a, need_r = ctx.needs_input_grad
        return (
            grad_c if need_c else None,
            grad_aa.to(alpha_a.dtype) if need_a else None,
            grad_ar.to(alpha_r.dtype) if need_r else None,
        )


def smooth_gain(c: Tensor, alpha_attack: Tensor, alpha_release: Tensor) -> Tensor:
    """Differentiable branching attack/release smoother of a gain curve in dB.

    ``g[n] = a g[n-1] + (1 - a) c[n]`` with ``a = alpha_attack`` where ``c[n] < g[n-1]`` and
    ``a = alpha_release`` otherwise, ``g[-1] = 0`` (Giannoulis et al., JAES 2012). Gradients flow
    to ``c`` and to both poles through an analytic backward kernel (first order only: a
    second-order graph, ``create_graph=True``, raises ``RuntimeError``).

    Args:
        c: gain computer output in dB, ``(batch, samples)``, float32 or float64.
        alpha_attack: attack pole ``exp(-1/(tau_A fs))``, ``(batch,)`` (float64 recommended:
            ``1 - alpha`` of a long time constant loses digits in float32).
        alpha_release: release pole ``exp(-1/(tau_R fs))``, ``(batch,)``.

    Returns:
        The smoothed gain in dB, ``(batch, samples)``, dtype and device of ``c``.

    Shape:
        c: ``(B, N)``; alphas: ``(B,)``; output: ``(B, N)``.
    """
    _check_kernel_inputs(c, alpha_attack, alpha_release)
    return _SmoothGain.apply(c, alpha_attack, alpha_release)


def warm_up() -> None:
    """Compile (or load from Numba's cache) the CPU kernels for float32 and float64."""
    for dtype in (np.float32, np.float64):
        c = np.zeros((1, 2), dtype=dtype)
        a = np.zeros(1)
        g = np.empty_like(c)
        m = np.empty((1, 2), dtype=np.uint8)
        forward_cpu(c, a, a, g, m)
        backward_cpu(c, g, c, m, a, a, np.empty_like(c), np.empty(1), np.empty(1))
