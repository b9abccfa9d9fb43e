"""The style-transfer network Ψ: a non-causal TCN with FiLM conditioning.

``MixFXCloner(config)(audio, cond)`` maps stereo audio ``(batch, 2, samples)`` at
``config.sample_rate`` and a conditioning vector ``(batch, cond_dim)`` (the encoder's embedding
of the reference, or any blend of embeddings) to stereo audio of the same shape.

Each block (the reference's): ``h + W₁ₓ₁ · FiLM(LeakyReLU(BN(conv_d(h))), cond)``, with
``FiLM(u, c) = γ(c) ⊙ u + β(c)`` from a linear map of the condition, and the convolution centred
(non-causal, zero "same" padding). See :mod:`cloner.config` for the two time resolutions.

With ``config.level_head`` the level is set apart from the rest: ``u = TCN path(x, cond)`` is
brought to the input's RMS and gained by ``g(cond)`` dB, ``y = u · rms(x) / rms(u) · 10^(g/20)``
(RMS over channels and samples of the item, as the Manipulator's level match), ``g`` a
two-layer MLP of the condition whose output layer starts at zero (an untrained head changes
nothing). :meth:`MixFXCloner.forward` with ``parts=True`` returns ``(u, g)`` for the training.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cloner.config import ClonerConfig
from fxdsp.functional import rms

__all__ = ["MixFXCloner", "mdct_filterbank", "soft_limit"]

#: Floor of an RMS that divides (a silent TCN output is not scaled up without bound).
RMS_FLOOR = 1e-8


def mdct_filterbank(hop: int) -> Tensor:
    """The MDCT's ``(hop, 2·hop)`` basis with a sine window (Princen–Bradley):
    ``sqrt(2/N) · sin(π(n + ½)/(2N)) · cos(π/N · (n + ½ + N/2)(k + ½))``, ``N = hop``. As the
    kernels of a strided conv (stride ``N``) and of the transposed conv, it reconstructs the
    signal exactly where two frames overlap (time-domain aliasing cancellation)."""
    n = torch.arange(2 * hop, dtype=torch.float64)
    k = torch.arange(hop, dtype=torch.float64)
    window = torch.sin(math.pi * (n + 0.5) / (2 * hop))
    phase = math.pi / hop * (n[None, :] + 0.5 + hop / 2) * (k[:, None] + 0.5)
    return (math.sqrt(2.0 / hop) * window[None, :] * torch.cos(phase)).float()


def soft_limit(x: Tensor, limit: float) -> Tensor:
    """Identity for ``|x| ≤ limit / 2``, then a tanh knee that never exceeds ``±limit``.

    ``y = sign(x) · (k + k · tanh((|x| − k) / k))`` above the knee ``k = limit / 2``: continuous
    with slope 1 at the knee, bounded by ``limit``, finite for any finite input.
    """
    knee = 0.5 * limit
    mag = x.abs()
    over = knee + knee * torch.tanh((mag - knee).clamp(min=0.0) / knee)
    return torch.where(mag <= knee, x, torch.sign(x) * over)


class _FiLMBlock(nn.Module):
    """``h + res(FiLM(LeakyReLU(BN(conv(h))), cond))`` with a dilated, centred conv."""

    def __init__(self, cfg: ClonerConfig, dilation: int) -> None:
        super().__init__()
        c = cfg.channels
        self.conv = nn.Conv1d(
            c, c, cfg.kernel, dilation=dilation, padding=dilation * (cfg.kernel - 1) // 2
        )
        self.bn = nn.BatchNorm1d(c)
        self.act = nn.LeakyReLU(cfg.leaky_slope)
        self.film = nn.Linear(cfg.cond_dim, 2 * c)
        self.res = nn.Conv1d(c, c, 1)
        # FiLM starts as the identity (γ = 1, β = 0) whatever the condition's scale.
        nn.init.zeros_(self.film.weight)
        with torch.no_grad():
            self.film.bias.copy_(torch.cat([torch.ones(c), torch.zeros(c)]))

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        gamma, beta = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        u = self.act(self.bn(self.conv(h)))
        return h + self.res(gamma * u + beta)


class MixFXCloner(nn.Module):
    """Converts stereo audio to the mixing style that a conditioning vector describes.

    Args:
        config: the architecture (:class:`ClonerConfig`; default the ``"small"`` preset).

    Shape:
        ``forward(audio, cond)``: audio ``(batch, 2, samples)`` (mono ``(batch, 1, …)`` is
        duplicated), cond ``(batch, cond_dim)`` → ``(batch, 2, samples)``, bounded by
        ``±config.output_limit``.
    """

    def __init__(self, config: ClonerConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else ClonerConfig()
        s = cfg.stride
        if s == 1:
            self.analysis = None
            self.inp = nn.Conv1d(2, cfg.channels, 1)
            self.out = nn.Conv1d(cfg.channels, 2, 1)
            self.synthesis = None
        else:
            # Kernel of two strides (50 % overlap); the input is padded by one stride on each
            # side so that every sample is covered by two frames.
            self.analysis = nn.Conv1d(2, cfg.filters, 2 * s, stride=s, bias=False)
            self.inp = nn.Conv1d(cfg.filters, cfg.channels, 1)
            # Two heads, both starting at zero (an untrained model is the identity): a mask on
            # the analysis frames and a gain on the frames' envelope (see ``forward``).
            self.out = nn.Conv1d(cfg.channels, cfg.filters, 1)
            self.out_env = nn.Conv1d(cfg.channels, cfg.filters, 1)
            for head in (self.out, self.out_env):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
            self.synthesis = nn.ConvTranspose1d(cfg.filters, 2, 2 * s, stride=s, bias=False)
            if cfg.filters >= 2 * s:
                # Start from an MDCT pair (sine window, per channel; the first 2·stride filters):
                # synthesis(analysis(x)) = x exactly, so the mask head is a per-bin gain from
                # the first step (better conditioned than a random filterbank).
                with torch.no_grad():
                    basis = mdct_filterbank(s)
                    self.analysis.weight.zero_()
                    self.synthesis.weight.zero_()
                    for c in range(2):
                        self.analysis.weight[c * s : (c + 1) * s, c] = basis
                        self.synthesis.weight[c * s : (c + 1) * s, c] = basis
        self.blocks = nn.ModuleList(_FiLMBlock(cfg, d) for d in cfg.dilations)
        self.level: nn.Sequential | None = None
        if cfg.level_head:
            self.level = nn.Sequential(
                nn.Linear(cfg.cond_dim, 64), nn.LeakyReLU(cfg.leaky_slope), nn.Linear(64, 1)
            )
            nn.init.zeros_(self.level[2].weight)
            nn.init.zeros_(self.level[2].bias)

    def _envelope(self, z: Tensor) -> Tensor:
        """RMS of the analysis frames over a centred window, ``(batch, 1, frames)``."""
        k = self.config.envelope_frames
        power = z.square().mean(dim=1, keepdim=True)
        if k > 1:
            power = torch.nn.functional.avg_pool1d(
                power, k, stride=1, padding=k // 2, count_include_pad=False
            )
        return torch.sqrt(power + 1e-20) * (power > 0)

    def num_parameters(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[1] not in (1, 2):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"audio must be (batch, 1 or 2, samples), got {shape}")
        if not x.is_floating_point():
            raise ValueError(f"audio must be floating point, got {x.dtype}")
        if not isinstance(cond, Tensor) or cond.ndim != 2 or cond.shape[1] != self.config.cond_dim:
            shape = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
            raise ValueError(
                f"cond must be (batch, {self.config.cond_dim}) (the encoder's embedding size), "
                f"got {shape}"
            )
        if cond.shape[0] != x.shape[0]:
            raise ValueError(f"audio has {x.shape[0]} items but cond has {cond.shape[0]}")
        if x.shape[-1] == 0:
            raise ValueError("audio has no samples")
        return (x.expand(-1, 2, -1) if x.shape[1] == 1 else x), cond.to(x.dtype)

    def level_db(self, cond: Tensor) -> Tensor:
        """The level head's gain in dB, ``(batch,)``, within ``±level_limit_db`` (a tanh)."""
        if self.level is None:
            raise ValueError("this cloner has no level head (ClonerConfig.level_head is false)")
        limit = self.config.level_limit_db
        return limit * torch.tanh(self.level(cond).squeeze(-1) / limit)

    def forward(
        self, x: Tensor, cond: Tensor, parts: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Convert ``x`` to the style of ``cond``.

        Args:
            x: audio ``(batch, 1 or 2, samples)``.
            cond: ``(batch, cond_dim)``.
            parts: with a level head, return ``(u, g)`` instead: the TCN path's output before
                its level is set (not limited) and the head's gain in dB (for the training).

        Returns:
            ``(batch, 2, samples)`` bounded by ``±output_limit`` (or the parts).
        """
        x, cond = self._check(x, cond)
        u = self._path(x, cond)
        if self.level is None:
            if parts:
                raise ValueError("parts=True needs a level head (ClonerConfig.level_head)")
            return soft_limit(u, self.config.output_limit)
        g = self.level_db(cond)
        return (u, g) if parts else self.at_level(x, u, g)

    def at_level(self, x: Tensor, u: Tensor, g: Tensor) -> Tensor:
        """The output of the TCN path ``u`` for the input ``x`` at the level head's gain ``g``
        dB: ``soft_limit(u · rms(x) / rms(u) · 10^(g/20))`` (:func:`fxdsp.functional.rms`, per
        item over channels and samples)."""
        scale = rms(x) / rms(u).clamp_min(RMS_FLOOR) * 10 ** (g / 20)
        return soft_limit(u * scale[:, None, None], self.config.output_limit)

    def _path(self, x: Tensor, cond: Tensor) -> Tensor:
        """The TCN path: ``x`` converted, level included, not limited."""
        s = self.config.stride
        if self.analysis is None:
            h = self.inp(x)
            for block in self.blocks:
                h = block(h, cond)
            y = self.out(h)
        else:
            n = x.shape[-1]
            frames = -(-n // s) + 1  # cover [−s, n + s) with hops of s
            padded = torch.nn.functional.pad(x, (s, frames * s - n))
            z = self.analysis(padded)  # (batch, filters, frames)
            h = self.inp(z)
            for block in self.blocks:
                h = block(h, cond)
            # The correction is proportional to the input: a mask on the frames (gain, EQ,
            # dynamics, stereo) plus a signal shaped by the network and scaled by the frames'
            # RMS envelope over ``envelope_frames`` (tails: reverb). Digital silence in gives
            # silence out, and no bias can add a fixed tone at the frame rate.
            env = self._envelope(z)
            delta = self.out(h) * z + self.out_env(h) * env
            correction = self.synthesis(delta)  # (batch, 2, (frames + 1) · s)
            y = x + correction[..., s : s + n]
        return y
