"""The audio-effects encoder Φ: waveform (the reference's) and spectral (CPU) architectures.

``FXEncoder(config)(audio)`` maps stereo audio ``(batch, 2, samples)`` at ``config.sample_rate``
to an embedding ``(batch, embed_dim)``; :meth:`FXEncoder.project` gives the contrastive loss
its vectors (through the projection head when there is one); :meth:`FXEncoder.predict_params`
the auxiliary head's output. For inference on any audio use :meth:`FXEncoder.embed` (resamples,
averages over segments, eval mode, no gradients).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fxencoder.config import FXEncoderConfig

__all__ = ["FXEncoder", "log_band_filterbank"]

_EPS = 1e-10


def log_band_filterbank(
    n_fft: int, sample_rate: float, n_bands: int, f_min: float, f_max: float
) -> Tensor:
    """Triangular bands equally spaced on a log-frequency axis, ``(n_bands, n_fft // 2 + 1)``.

    Band ``k`` rises from centre ``c_{k-1}`` to ``c_k`` and falls to ``c_{k+1}``, with
    ``n_bands + 2`` points ``c`` spaced geometrically from ``f_min`` to ``f_max``. A band narrower
    than one FFT bin takes the bin nearest its centre, so every band sees some power. Rows sum
    to 1 (each band is a weighted mean of bin powers).
    """
    freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = torch.logspace(math.log10(f_min), math.log10(f_max), n_bands + 2, dtype=torch.float64)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs - lo) / (mid - lo)
    fall = (hi - freqs) / (hi - mid)
    fb = torch.clamp(torch.minimum(rise, fall), min=0.0)
    empty = fb.sum(dim=1) == 0
    if bool(empty.any()):
        nearest = (freqs[None, :] - mid[empty]).abs().argmin(dim=1)
        fb[empty.nonzero().flatten(), nearest] = 1.0
    return (fb / fb.sum(dim=1, keepdim=True)).to(torch.float32)


class _WaveBlock(nn.Module):
    """The reference's residual block: ``conv2(conv1(x) + x)``, each conv → BN → ReLU.

    ``conv1`` keeps the channels (stride 1), ``conv2`` changes them with the block's stride;
    both use "same" reflection padding (``k − 1`` samples split left/right).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        pad = (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2
        self.pad = nn.ReflectionPad1d(pad)
        self.conv1 = nn.Conv1d(c_in, c_in, kernel)
        self.bn1 = nn.BatchNorm1d(c_in)
        self.conv2 = nn.Conv1d(c_in, c_out, kernel, stride=stride)
        self.bn2 = nn.BatchNorm1d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(self.pad(x)))) + x
        return torch.relu(self.bn2(self.conv2(self.pad(h))))


class _SpectralBlock(nn.Module):
    """Residual dilated conv over time: ``x + BN(conv(ReLU(BN(conv(x)))))``, then ReLU."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, 1)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(h)))


class FXEncoder(nn.Module):
    """Embeds how stereo audio was mixed (EQ, dynamics, stereo image, reverb, level).

    Args:
        config: the architecture (:class:`FXEncoderConfig`; default the ``"small"`` preset).

    Shape:
        ``forward``: ``(batch, 2, samples)`` at ``config.sample_rate`` (mono ``(batch, 1, …)``
        is duplicated) → ``(batch, embed_dim)``.
    """

    def __init__(self, config: FXEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else FXEncoderConfig()
        if cfg.arch == "waveform":
            chans = (2, *cfg.channels)
            self.blocks = nn.Sequential(
                *(
                    _WaveBlock(chans[i], chans[i + 1], cfg.kernels[i], cfg.strides[i])
                    for i in range(len(cfg.channels))
                )
            )
            body_out = cfg.channels[-1]
        else:
            fb = log_band_filterbank(cfg.n_fft, cfg.sample_rate, cfg.n_bands, cfg.f_min, cfg.f_max)
            self.register_buffer("filterbank", fb, persistent=False)
            self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
            self.input_norm = nn.BatchNorm1d(4 * cfg.n_bands)
            self.stem = nn.Conv1d(4 * cfg.n_bands, cfg.hidden, 1)
            self.blocks = nn.Sequential(*(_SpectralBlock(cfg.hidden, d) for d in cfg.dilations))
            pooled = 2 * cfg.hidden + (3 * 4 * cfg.n_bands if cfg.input_stats else 0)
            self.pool_proj = nn.Linear(pooled, cfg.embed_dim)
            body_out = cfg.embed_dim
        self.head = (
            nn.Sequential(
                nn.Linear(body_out, body_out), nn.ReLU(), nn.Linear(body_out, cfg.projection_dim)
            )
            if cfg.projection_dim
            else None
        )
        self.aux = nn.Linear(body_out, cfg.aux_params) if cfg.aux_params else None

    def num_parameters(self) -> int:
        """Trainable parameters of the encoder (projection and auxiliary heads included)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[1] not in (1, 2):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"audio must be (batch, 1 or 2, samples), got {shape}")
        if not x.is_floating_point():
            raise ValueError(f"audio must be floating point, got {x.dtype}")
        return x.expand(-1, 2, -1) if x.shape[1] == 1 else x

    def features(self, x: Tensor) -> Tensor:
        """Spectral front end: ``(batch, 4 · n_bands, frames)`` log band powers (dB / 10) of
        L, R, mid ``(L + R)/2`` and side ``(L − R)/2``."""
        cfg = self.config
        b, _, n = x.shape
        if n < cfg.n_fft:
            x = torch.nn.functional.pad(x, (0, cfg.n_fft - n))
        lr = x.float()
        chans = torch.cat([lr, 0.5 * (lr[:, :1] + lr[:, 1:]), 0.5 * (lr[:, :1] - lr[:, 1:])], 1)
        spec = torch.stft(
            chans.reshape(b * 4, -1),
            cfg.n_fft,
            hop_length=cfg.hop,
            window=self.window,
            center=False,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (b·4, F, T)
        bands = torch.matmul(self.filterbank, power)  # (b·4, n_bands, T)
        logp = torch.log10(bands + _EPS)
        return logp.reshape(b, 4 * cfg.n_bands, -1)

    def forward(self, x: Tensor) -> Tensor:
        x = self._check(x)
        if self.config.arch == "waveform":
            return self.blocks(x).mean(dim=-1)
        f = self.input_norm(self.features(x))
        h = self.blocks(self.stem(f))
        parts = [h.mean(dim=-1), h.std(dim=-1, unbiased=False)]
        if self.config.input_stats:
            change = (
                (f[..., 1:] - f[..., :-1]).abs().mean(dim=-1) if f.shape[-1] > 1 else f[..., 0] * 0
            )
            parts += [f.mean(dim=-1), f.std(dim=-1, unbiased=False), change]
        return self.pool_proj(torch.cat(parts, dim=1))

    def project(self, embedding: Tensor) -> Tensor:
        """The vectors the contrastive loss compares: the projection head's output (or the
        embedding itself when ``projection_dim`` is 0)."""
        return embedding if self.head is None else self.head(embedding)

    def predict_params(self, embedding: Tensor) -> Tensor:
        """The auxiliary head's ``(batch, aux_params)`` output (raises if there is none)."""
        if self.aux is None:
            raise ValueError("this encoder has no auxiliary head (config.aux_params = 0)")
        return self.aux(embedding)

    @torch.no_grad()
    def embed(self, audio: Tensor, sample_rate: float, *, batch_segments: int = 16) -> Tensor:
        """Embeddings of audio of any length and rate, in eval mode, without gradients.

        The audio is resampled to ``config.sample_rate``, cut into segments of
        ``config.segment_seconds`` (the last one aligned to the end; audio shorter than one
        segment is used whole), and the segments' embeddings are averaged per item.

        Args:
            audio: ``(batch, 1 or 2, samples)`` or ``(channels, samples)``.
            sample_rate: its rate in Hz.
            batch_segments: segments per forward pass (memory bound).

        Returns:
            ``(batch, embed_dim)`` float32 on the encoder's device.

        Raises:
            ValueError: malformed audio, a bad sample rate, or non-finite samples.
        """
        from fxencoder.audio import prepare_audio, segment_starts

        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            x = prepare_audio(audio, sample_rate, self.config.sample_rate, device)
            seg = self.config.segment_samples
            starts = segment_starts(x.shape[-1], seg)
            width = min(seg, x.shape[-1])
            pieces = torch.stack([x[..., s : s + width] for s in starts], dim=1)  # (B, S, 2, L)
            b, s = pieces.shape[:2]
            flat = pieces.reshape(b * s, 2, width)
            out = torch.cat(
                [self(flat[i : i + batch_segments]) for i in range(0, b * s, batch_segments)]
            )
            return out.reshape(b, s, -1).mean(dim=1)
        finally:
            self.train(was_training)
