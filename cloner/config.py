"""Configuration of the style-transfer network Ψ (:class:`cloner.MixFXCloner`).

One architecture, a non-causal TCN with FiLM conditioning (Koo et al., ICASSP 2023), at one of
two time resolutions:

- ``stride == 1``: the reference MixFXcloner, on the stereo waveform itself. The ``"paper"``
  preset is its published layout: 14 blocks, kernel 15, dilations 1, 2, …, 2^13, 128 channels,
  a 2048-d condition, receptive field ≈ 5.2 s at 44.1 kHz, ≈ 10.5 M parameters. It costs about
  ``2 · 14 · 128² · 15 ≈ 7 MFLOP`` per sample (≈ 300 GFLOP per second of 44.1 kHz audio):
  a GPU model.
- ``stride > 1``: a learned filterbank front end (a strided conv with ``filters`` outputs and a
  kernel of two strides, as in Conv-TasNet and Demucs' encoders) takes the TCN to
  ``sample_rate / stride`` frames per second; a transposed conv brings a *correction* back to
  the waveform, added to the input: ``y = x + synthesis(m ⊙ z + a ⊙ e)`` with ``z =
  analysis(x)``, ``m`` and ``a`` the TCN's two 1×1 heads and ``e`` the frames' RMS envelope
  over ``envelope_seconds``. Both heads start at zero, so an untrained model is the identity
  ("input unchanged"), and the correction is proportional to the input: silence in, silence
  out. (A first design, ``synthesis(head(TCN(z)))``, put the heads' biases out as a fixed
  −48 dBFS tone at the frame rate whatever the input, and trained *away* from the identity:
  its MSS loss rose to 1.5× that of the input unchanged in 280 steps.)
  The cost falls by about ``stride`` at equal width. The ``"small"`` preset is this design:
  stride 64 (689 frames/s), 128 filters, 64 channels, kernel 5, dilations 1 … 512 (receptive
  field ≈ 5.9 s, like the reference's), ≈ 0.66 M parameters. Measured on 2 CPU cores (Xeon,
  shared with another job): a training step of 12 × 3-s clips ≈ 1.3 s forward + backward, and
  inference far faster than real time; 128 channels at stride 32 cost ≈ 7× more per step
  (``benchmarks/cloner.py``).

Presets: ``ClonerConfig.preset("paper")``, ``ClonerConfig.preset("small")``,
``ClonerConfig.preset("tiny")`` (for tests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fxdsp.config import ConfigBase, check_number

__all__ = ["PRESETS", "ClonerConfig"]


@dataclass(frozen=True)
class ClonerConfig(ConfigBase):
    """Hyperparameters of a :class:`~cloner.MixFXCloner` (saved in every checkpoint).

    Attributes:
        sample_rate: the rate the network runs at, in Hz (inference resamples to it).
        cond_dim: size of the conditioning vector (the encoder's embedding size).
        channels: channels of the TCN.
        kernel: kernel size of every TCN block.
        dilations: one block per entry, with that dilation (in frames).
        stride: frames are ``stride`` samples apart (1: the waveform itself).
        filters: outputs of the learned analysis filterbank (``stride > 1`` only).
        leaky_slope: negative slope of the LeakyReLU.
        output_limit: the output is soft-limited to ``±output_limit`` (identity up to
            ``output_limit / 2``, a tanh knee above): finite input never gives a runaway output.
        segment_seconds: length of the training crops (inference uses longer, overlapping
            windows: :mod:`cloner.inference`).
        envelope_seconds: ``stride > 1``: the window of the RMS envelope that scales the
            additive part of the correction (capped by the TCN's own span, so the receptive
            field is the TCN's).
        level_head: the output's level comes from its own head instead of the TCN: the TCN's
            output is brought to the input's RMS and then gained by ``g(cond)`` dB, a small MLP
            of the condition alone (bounded by ``±level_limit_db``). Trained in decibels
            (:class:`cloner.training.ClonerTrainConfig`, ``level_weight``) while the spectral
            loss sees the TCN's output at the target's level: the spectral loss's pull towards
            quieter outputs under doubt then has nothing to pull. The RMS ratio is each call's,
            so windowed inference (:mod:`cloner.inference`) is close to, not equal to, one call
            on the whole song. Tried and not shipped (``checkpoints/cloner-level/``).
        level_limit_db: the level head's bound, in dB.
    """

    sample_rate: int = 44100
    cond_dim: int = 256
    channels: int = 64
    kernel: int = 5
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    stride: int = 64
    filters: int = 128
    leaky_slope: float = 0.2
    output_limit: float = 4.0
    segment_seconds: float = 3.0
    envelope_seconds: float = 1.0
    level_head: bool = False
    level_limit_db: float = 24.0

    def __post_init__(self) -> None:
        check_number("sample_rate", self.sample_rate, low=1000, high=384000, integer=True)
        for name in ("cond_dim", "channels", "kernel", "stride", "filters"):
            check_number(name, getattr(self, name), low=1, integer=True)
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (centred, non-causal), got {self.kernel}")
        value = self.dilations
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError(f"dilations must be a sequence of integers, got {value!r}")
        value = tuple(value)
        if not value:
            raise ValueError("dilations must name at least one block")
        for d in value:
            check_number("dilations entries", d, low=1, integer=True)
        object.__setattr__(self, "dilations", value)
        check_number("leaky_slope", self.leaky_slope, low=0.0, high=1.0)
        check_number("output_limit", self.output_limit, low=0.0, low_open=True)
        check_number("segment_seconds", self.segment_seconds, low=0.0, low_open=True, high=60.0)
        check_number("envelope_seconds", self.envelope_seconds, low=0.0, high=60.0)
        if not isinstance(self.level_head, bool):
            raise ValueError(f"level_head must be true or false, got {self.level_head!r}")
        check_number("level_limit_db", self.level_limit_db, low=0.0, low_open=True, high=120.0)

    @property
    def receptive_field(self) -> int:
        """Samples of input that one output sample depends on (centred).

        ``F = 1 + (kernel − 1) · Σ dilations`` frames of the TCN; with ``stride > 1`` an output
        sample comes from the two synthesis frames around it, which see ``F + 1`` analysis
        frames of two strides each: ``F · stride + 2 · stride`` samples.
        """
        frames = 1 + (self.kernel - 1) * sum(self.dilations)
        return frames * self.stride + (2 * self.stride if self.stride > 1 else 0)

    @property
    def envelope_frames(self) -> int:
        """Odd window of the envelope in frames, at most the TCN's span (1: no smoothing)."""
        span = 1 + (self.kernel - 1) * sum(self.dilations)
        k = min(round(self.envelope_seconds * self.sample_rate / self.stride), span)
        return max(1, k - (1 - k % 2))

    @property
    def segment_samples(self) -> int:
        """Samples of one training crop at the network's rate."""
        return round(self.segment_seconds * self.sample_rate)

    def replace(self, **changes: Any) -> ClonerConfig:
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **changes: Any) -> ClonerConfig:
        """A named preset (``"paper"``, ``"small"``, ``"tiny"``), optionally changed."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **changes)


#: The named presets.
PRESETS: dict[str, ClonerConfig] = {
    "paper": ClonerConfig(
        cond_dim=2048,
        channels=128,
        kernel=15,
        dilations=tuple(2**i for i in range(14)),
        stride=1,
        segment_seconds=10.0,
    ),
    "small": ClonerConfig(),
    "tiny": ClonerConfig(
        cond_dim=16,
        channels=8,
        kernel=3,
        dilations=(1, 2),
        stride=8,
        filters=16,
        segment_seconds=0.5,
    ),
}
