"""Losses of the style-transfer network Ψ: the multi-scale spectral loss and an embedding loss.

The reference's loss (Koo et al., ICASSP 2023; its ``MultiScale_Spectral_Loss_MidSide_DDSP``),
after DDSP's multi-scale spectral loss (Engel et al., ICLR 2020): for each FFT size ``N`` of
4096, 2048, 1024 and 512 (hop ``N/4``, periodic Hann window of ``N`` samples, centred frames with
reflection padding), with ``Y`` and ``T`` the magnitude spectrograms of the output and the
target::

    ℓ_N = 0.9 · mean |Y − T| + 0.1 · mean (log10 Y − log10 T)²

    L_MSS = Σ_N ℓ_N

the means running over channels, frequency bins and frames (and the batch). The loss is computed
on left/right (``channels="lr"``) and on mid/side (``channels="ms"``, ``M = L + R``,
``S = L − R`` as in the reference, mid and side weighted equally); the paper reports both
(``L_MSS L&R`` and ``L_MSS M&S``) and the reference trains on their sum
(:class:`MultiScaleSpectralLoss`).

Magnitudes are ``|X| = sqrt(re² + im² + eps)`` (``eps = 1e-7``, the reference's): the floor
``√eps`` keeps the logarithm finite and the gradient of the magnitude finite (``∂|X|/∂re =
re/|X|``, 0 at ``X = 0``), so silent outputs and silent targets give finite losses and
gradients. Differences to the reference's code, all negligible in value: every frequency bin and
frame is kept (the reference drops the DC bin and, for lengths divisible by the hop, the last
frame), and the logarithm takes the floored magnitude itself (the reference adds its ``eps`` a
second time, ``log10(|X| + eps)``).

Against ``auraloss`` (Steinmetz & Reiss, 2020; not a dependency of this package): its
``STFTLoss`` floors the power instead (``sqrt(max(re² + im², eps))``), uses the natural
logarithm, applies one distance (L1 or L2) to both the linear and the log term, and its
``MultiResolutionSTFTLoss`` *averages* over resolutions where the reference *sums*. With
``eps → 0`` this loss is ``n_scales · (0.9 · A_lin,L1 + 0.1 · A_log,L2 / ln(10)²)`` for the two
auraloss terms, and the mid/side form is auraloss' ``SumAndDifferenceSTFTLoss`` on the same
terms (``tests/test_cloner_loss.py`` checks both). What this module adds: the mid/side term
(auraloss' sum/difference loss has no single-call 0.9/0.1 L1/L2 mix), one STFT per channel
shared by the L/R and M/S terms (the STFT is linear: ``STFT(L ± R) = STFT(L) ± STFT(R)``),
an eps on every square root and logarithm (auraloss' ``STFTMagnitudeLoss`` takes a bare
``log``), per-item results (``reduction="none"``), and clear errors for bad shapes and for
signals too short for the largest FFT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "DEFAULT_FFT_SIZES",
    "MultiScaleSpectralLoss",
    "embedding_loss",
    "mss_loss",
]

#: FFT sizes of the reference's loss (hop = FFT / 4).
DEFAULT_FFT_SIZES: tuple[int, ...] = (4096, 2048, 1024, 512)
_CHANNELS = ("lr", "ms")
_REDUCTIONS = ("mean", "none")


def _check_sizes(fft_sizes: Sequence[int]) -> tuple[int, ...]:
    if isinstance(fft_sizes, (str, bytes)) or not hasattr(fft_sizes, "__iter__"):
        raise ValueError(f"fft_sizes must be a sequence of integers, got {fft_sizes!r}")
    sizes = tuple(fft_sizes)
    if not sizes:
        raise ValueError("fft_sizes must name at least one FFT size")
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 4:
            raise ValueError(f"fft_sizes entries must be integers >= 4, got {n!r}")
    return sizes


def _check_pair(y: Tensor, target: Tensor, sizes: tuple[int, ...], stereo: bool) -> None:
    for name, x in (("y", y), ("target", target)):
        if not isinstance(x, Tensor) or x.ndim != 3:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be (batch, channels, samples), got {shape}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {x.dtype}")
    if y.shape != target.shape:
        raise ValueError(f"y and target differ in shape: {tuple(y.shape)} vs {tuple(target.shape)}")
    if stereo and y.shape[1] != 2:
        raise ValueError(f"the mid/side loss needs stereo audio (2 channels), got {y.shape[1]}")
    if y.shape[0] == 0 or y.shape[1] == 0:
        raise ValueError(f"empty batch or no channels: {tuple(y.shape)}")
    shortest = max(sizes) // 2 + 1
    if y.shape[-1] < shortest:
        raise ValueError(
            f"the largest FFT ({max(sizes)}) needs at least {shortest} samples (centred frames "
            f"with reflection padding), got {y.shape[-1]}"
        )


def _spectra(x: Tensor, n_fft: int) -> Tensor:
    """Complex STFT ``(batch, channels, n_fft/2 + 1, frames)`` of ``(batch, channels, T)``."""
    b, c, n = x.shape
    window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
    spec = torch.stft(
        x.reshape(b * c, n), n_fft, hop_length=n_fft // 4, win_length=n_fft, window=window,
        center=True, pad_mode="reflect", return_complex=True,
    )  # fmt: skip
    return spec.reshape(b, c, *spec.shape[-2:])


def _power(spec: Tensor, eps: float) -> Tensor:
    """``re² + im² + eps`` of a complex tensor (one fused multiply-add pass)."""
    re, im = spec.real, spec.imag
    return torch.addcmul(re.square().add_(eps), im, im)


def _terms(ys: Tensor, ts: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Per item: ``mean |Y − T|`` and ``mean (log10 Y − log10 T)²`` of two complex spectra,
    with ``|X| = sqrt(power)`` and ``log10 |X| = log10(power) / 2``."""
    py, pt = _power(ys, eps), _power(ts, eps)
    dims = tuple(range(1, py.ndim))
    mag = (torch.sqrt(py) - torch.sqrt(pt)).abs().mean(dim=dims)
    log = 0.25 * (torch.log10(py) - torch.log10(pt)).square().mean(dim=dims)
    return mag, log


class _FusedTerms(torch.autograd.Function):
    """Per item ``wm · mean |Y − T| + wl · mean (log10 Y − log10 T)²`` for a complex spectrum
    ``Y`` against a constant target, with a hand-written backward.

    With ``P = |Y|² + eps``: ``∂L/∂P = wm · sign(√P − |T|) / (2√P) / n + wl · (log10 P / 2 −
    log10 |T|) / (P · ln 10) / n`` per element (``n`` elements per item), and PyTorch's gradient
    for a complex input is ``2 · ∂L/∂P · Y``. One saved real tensor replaces the dozen
    elementwise backward kernels autograd would run over these large spectrograms (the loss
    costs more than the small model on a CPU).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, ys: Tensor, t_mag: Tensor, t_log: Tensor, eps: float, wm: float, wl: float
    ) -> Tensor:
        p = _power(ys, eps)
        y_mag = torch.sqrt(p)
        d_mag = y_mag - t_mag
        d_log = 0.5 * torch.log10(p) - t_log
        dims = tuple(range(1, p.ndim))
        loss = wm * d_mag.abs().mean(dim=dims) + wl * d_log.square().mean(dim=dims)
        if ctx.needs_input_grad[0]:
            n = p[0].numel()
            g = torch.sign(d_mag).mul_(wm / (2 * n)).div_(y_mag)
            g.addcdiv_(d_log, p, value=wl / (n * math.log(10.0)))
            ctx.save_for_backward(ys, g)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        ys, g = ctx.saved_tensors
        scale = (2.0 * grad).reshape((-1,) + (1,) * (g.ndim - 1))
        return ys * (g * scale), None, None, None, None, None


def _target_terms(ts: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``|T|`` and ``log10 |T|`` of a target spectrum."""
    pt = _power(ts, eps)
    return torch.sqrt(pt), 0.5 * torch.log10(pt)


def _channel_sets(spec: Tensor, channels: str) -> list[Tensor]:
    """The spectra a term averages over: all channels (``"lr"``), or ``M = L + R`` and
    ``S = L − R`` (``"ms"``, the reference's, unscaled; the STFT is linear)."""
    if channels == "lr":
        return [spec]
    return [spec[:, 0] + spec[:, 1], spec[:, 0] - spec[:, 1]]


def _mss(
    y: Tensor,
    target: Tensor,
    channels: Sequence[str],
    sizes: tuple[int, ...],
    mag_weight: float,
    log_weight: float,
    eps: float,
) -> dict[str, Tensor]:
    """Per-item losses ``(batch,)`` for each of ``channels``, sharing one STFT per scale."""
    out = {name: y.new_zeros(y.shape[0]) for name in channels}
    for n_fft in sizes:
        # Two transforms, not one of the concatenation: autograd then records only y's side.
        ys, ts = _spectra(y, n_fft), _spectra(target, n_fft)
        for name in channels:
            pairs = list(zip(_channel_sets(ys, name), _channel_sets(ts, name), strict=True))
            for a, b in pairs:
                if b.requires_grad:  # a target that wants gradients: plain autograd
                    mag, log = _terms(a, b, eps)
                    value = mag_weight * mag + log_weight * log
                else:
                    t_mag, t_log = _target_terms(b, eps)
                    value = _FusedTerms.apply(a, t_mag, t_log, eps, mag_weight, log_weight)
                out[name] = out[name] + value / len(pairs)
    return out


def _reduce(x: Tensor, reduction: str) -> Tensor:
    return x.mean() if reduction == "mean" else x


def _check_options(channels: str, reduction: str, eps: float) -> None:
    if channels not in _CHANNELS:
        raise ValueError(f"channels must be one of {_CHANNELS}, got {channels!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")


def mss_loss(
    y: Tensor,
    target: Tensor,
    *,
    channels: str = "lr",
    fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
    mag_weight: float = 0.9,
    log_weight: float = 0.1,
    eps: float = 1e-7,
    reduction: str = "mean",
) -> Tensor:
    """The reference's multi-scale spectral loss (see the module docstring for the definition).

    ``Σ_N [0.9 · mean |Y − T| + 0.1 · mean (log10 Y − log10 T)²]`` over FFT sizes ``N`` (hop
    ``N/4``, Hann), with ``|X| = sqrt(re² + im² + eps)``, on left/right or on mid/side
    (``M = L + R``, ``S = L − R``).

    Args:
        y: the output, ``(batch, channels, samples)`` (2 channels for ``"ms"``).
        target: the target, same shape.
        channels: ``"lr"`` (every channel as it is) or ``"ms"`` (mid and side of stereo).
        fft_sizes: the FFT sizes (window = FFT size, hop = FFT size // 4).
        mag_weight: weight of the linear-magnitude L1 term (0.9 in the reference).
        log_weight: weight of the log10-magnitude L2 term (0.1 in the reference).
        eps: added to the power before the square root (floors magnitudes at ``√eps``).
        reduction: ``"mean"`` (a scalar, the mean over the batch) or ``"none"`` (``(batch,)``).

    Returns:
        The loss: a scalar, or ``(batch,)`` with ``reduction="none"``; differentiable in both
        inputs, finite for silent inputs.

    Raises:
        ValueError: inputs that are not ``(batch, channels, samples)`` floating tensors of one
            shape, mono input for ``"ms"``, fewer than ``max(fft_sizes)/2 + 1`` samples, bad
            options.
    """
    _check_options(channels, reduction, eps)
    sizes = _check_sizes(fft_sizes)
    _check_pair(y, target, sizes, stereo=channels == "ms")
    per_item = _mss(y, target, (channels,), sizes, mag_weight, log_weight, eps)[channels]
    return _reduce(per_item, reduction)


class MultiScaleSpectralLoss(nn.Module):
    """``lr_weight · L_MSS(L/R) + ms_weight · L_MSS(M/S)``, one STFT per channel and scale.

    See :func:`mss_loss` for each term; the reference trains on their plain sum (both weights
    1). :meth:`terms` gives the two terms separately (what the paper reports).

    Args:
        fft_sizes: the FFT sizes (hop = FFT size // 4).
        lr_weight: weight of the left/right term (0 leaves it out).
        ms_weight: weight of the mid/side term (0 leaves it out).
        mag_weight: weight of the linear-magnitude L1 term per scale.
        log_weight: weight of the log10-magnitude L2 term per scale.
        eps: power floor before the square root.

    Shape:
        ``forward(y, target)``: two ``(batch, 2, samples)`` tensors → a scalar (or ``(batch,)``
        with ``reduction="none"``).
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
        *,
        lr_weight: float = 1.0,
        ms_weight: float = 1.0,
        mag_weight: float = 0.9,
        log_weight: float = 0.1,
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        self.fft_sizes = _check_sizes(fft_sizes)
        for name, value in (("lr_weight", lr_weight), ("ms_weight", ms_weight)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not lr_weight + ms_weight > 0:
            raise ValueError("lr_weight and ms_weight are both 0: the loss would be empty")
        _check_options("lr", "mean", eps)
        self.lr_weight = float(lr_weight)
        self.ms_weight = float(ms_weight)
        self.mag_weight = float(mag_weight)
        self.log_weight = float(log_weight)
        self.eps = float(eps)

    def terms(self, y: Tensor, target: Tensor, reduction: str = "mean") -> dict[str, Tensor]:
        """``{"lr": L_MSS(L/R), "ms": L_MSS(M/S)}``, unweighted (both always computed)."""
        _check_options("lr", reduction, self.eps)
        _check_pair(y, target, self.fft_sizes, stereo=True)
        out = _mss(y, target, _CHANNELS, self.fft_sizes, self.mag_weight, self.log_weight,
                   self.eps)  # fmt: skip
        return {k: _reduce(v, reduction) for k, v in out.items()}

    def combine(self, terms: dict[str, Tensor]) -> Tensor:
        """The weighted sum of :meth:`terms`' output."""
        return self.lr_weight * terms["lr"] + self.ms_weight * terms["ms"]

    def forward(self, y: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        _check_options("lr", reduction, self.eps)
        _check_pair(y, target, self.fft_sizes, stereo=True)
        wanted = tuple(
            name for name, w in (("lr", self.lr_weight), ("ms", self.ms_weight)) if w > 0
        )
        out = _mss(y, target, wanted, self.fft_sizes, self.mag_weight, self.log_weight, self.eps)
        total = sum(
            (w * out[name] for name, w in (("lr", self.lr_weight), ("ms", self.ms_weight))
             if name in out),
            start=y.new_zeros(y.shape[0]),
        )  # fmt: skip
        return _reduce(total, reduction)

    def extra_repr(self) -> str:
        return (
            f"fft_sizes={self.fft_sizes}, lr_weight={self.lr_weight}, ms_weight={self.ms_weight},"
            f" mag_weight={self.mag_weight}, log_weight={self.log_weight}, eps={self.eps}"
        )


def embedding_loss(
    encoder: nn.Module,
    y: Tensor,
    target: Tensor,
    *,
    distance: str = "cosine",
) -> Tensor:
    """Distance between the encoder's embeddings of ``y`` and of a target, through a frozen
    encoder: gradients reach ``y`` but never the encoder's parameters.

    ``1 − cos(Φ(y), e)`` (default; the geometry the encoder was trained in, blind to the
    embedding's scale) or ``‖Φ(y) − e‖₂`` (``distance="l2"``), averaged over the batch, with
    ``e = Φ(target)`` for audio or ``e = target`` for an embedding. The encoder runs in eval
    mode (its BatchNorm statistics untouched; the mode is restored after) with its parameters
    detached, so it is never updated even when its ``requires_grad`` flags are on.

    Args:
        encoder: an :class:`fxencoder.FXEncoder` (anything mapping ``(batch, 2, samples)`` to
            ``(batch, dim)``) at the audio's sample rate.
        y: ``(batch, 2, samples)``, usually the cloner's output.
        target: audio ``(batch, 2, samples')`` (embedded without gradients) or embeddings
            ``(batch, dim)``.
        distance: ``"cosine"`` or ``"l2"``.

    Returns:
        The scalar loss (cosine: in ``[0, 2]``; 0 for parallel embeddings).

    Raises:
        ValueError: an unknown distance, or shapes that do not pair up.
    """
    if distance not in ("cosine", "l2"):
        raise ValueError(f"distance must be 'cosine' or 'l2', got {distance!r}")
    if not isinstance(y, Tensor) or y.ndim != 3:
        raise ValueError(
            f"y must be audio (batch, channels, samples), got {getattr(y, 'shape', y)}"
        )
    if not isinstance(target, Tensor) or target.ndim not in (2, 3):
        raise ValueError(
            "target must be audio (batch, channels, samples) or embeddings (batch, dim), got "
            f"{getattr(target, 'shape', target)}"
        )
    if target.shape[0] != y.shape[0]:
        raise ValueError(f"y has {y.shape[0]} items but target has {target.shape[0]}")
    was = encoder.training
    encoder.eval()
    try:
        params = {name: p.detach() for name, p in encoder.named_parameters()}
        emb = torch.func.functional_call(encoder, params, (y,))
        if target.ndim == 3:
            with torch.no_grad():
                ref = encoder(target)
        else:
            ref = target.detach()
    finally:
        encoder.train(was)
    if ref.shape != emb.shape:
        raise ValueError(f"embedding shapes differ: {tuple(emb.shape)} vs {tuple(ref.shape)}")
    ref = ref.to(emb.dtype)
    if distance == "cosine":
        return (1.0 - torch.nn.functional.cosine_similarity(emb, ref, dim=1, eps=1e-8)).mean()
    return torch.sqrt((emb - ref).square().sum(dim=1) + 1e-12).mean()
