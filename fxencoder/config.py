"""Configuration of the audio-effects encoder (:class:`fxencoder.FXEncoder`).

Two architectures share one config:

- ``"waveform"``: the reference FXencoder (Koo et al., ICASSP 2023): stereo waveform in, residual
  strided 1-D conv blocks (reflection padding, BatchNorm, ReLU), global average pooling. The
  ``"paper"`` preset is its published layout: 12 blocks, channels 16 → 2048, kernels
  25, 25, 15, 15, 10, 10, 10, 10, 5, 5, 5, 5, strides 4, 4, 2 × 8, 1, 1 (total 4096), a
  2048-d embedding, about 81 M parameters.
- ``"spectral"``: designed to learn on a CPU. The log power of the L, R, mid and side channels
  in log-spaced bands (the representation effects act on: EQ moves band levels, the imager moves
  side against mid, the compressor and the reverb change how band levels move over time), a
  1-D conv stack over time with the bands as channels, and mean + standard-deviation pooling
  over time. The ``"small"`` preset.

Presets: ``FXEncoderConfig.preset("paper")``, ``FXEncoderConfig.preset("small")``,
``FXEncoderConfig.preset("tiny")`` (for tests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fxdsp.config import ConfigBase, check_number

__all__ = ["PRESETS", "FXEncoderConfig"]

ARCHS = ("waveform", "spectral")


@dataclass(frozen=True)
class FXEncoderConfig(ConfigBase):
    """Hyperparameters of an :class:`~fxencoder.FXEncoder` (saved in every checkpoint).

    Attributes:
        arch: ``"waveform"`` or ``"spectral"``.
        sample_rate: the rate the encoder runs at, in Hz (``embed`` resamples to it).
        segment_seconds: length of the clips it is trained on and of the segments ``embed``
            averages over for long audio.
        embed_dim: size of the embedding (the output of ``forward``/``embed``).
        channels: waveform: output channels of each block.
        kernels: waveform: kernel size of each block.
        strides: waveform: stride of each block.
        n_fft: spectral: FFT size (Hann window).
        hop: spectral: hop between frames in samples.
        n_bands: spectral: number of log-spaced bands (triangular, ``f_min``..``f_max``).
        f_min: spectral: lowest band edge in Hz.
        f_max: spectral: highest band edge in Hz (at most the Nyquist frequency).
        hidden: spectral: channels of the conv stack.
        dilations: spectral: one residual conv block (kernel 3) per entry, with that dilation.
        input_stats: spectral: also pool the input band levels themselves (their mean and
            standard deviation over time, and the mean absolute frame-to-frame change) straight
            into the embedding layer, beside the conv stack's pooled features: the level,
            spectrum, stereo and dynamics statistics effects change most are available from the
            first step, and the conv stack learns what they miss.
        projection_dim: size of the projection head's output used by the contrastive loss
            (0: the loss uses the embedding itself, as the reference does).
        aux_params: size of the auxiliary head that regresses the drawn chain's normalized
            parameters and on/off flags (0: no head).
    """

    arch: str = "spectral"
    sample_rate: int = 44100
    segment_seconds: float = 3.0
    embed_dim: int = 256
    channels: tuple[int, ...] = ()
    kernels: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    n_fft: int = 2048
    hop: int = 1024
    n_bands: int = 64
    f_min: float = 30.0
    f_max: float = 16000.0
    hidden: int = 256
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    input_stats: bool = False
    projection_dim: int = 128
    aux_params: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        check_number("sample_rate", self.sample_rate, low=1000, high=384000, integer=True)
        check_number("segment_seconds", self.segment_seconds, low=0.0, low_open=True, high=60.0)
        for name in ("embed_dim", "n_fft", "hop", "n_bands", "hidden"):
            check_number(name, getattr(self, name), low=1, integer=True)
        if not isinstance(self.input_stats, bool):
            raise ValueError(f"input_stats must be true or false, got {self.input_stats!r}")
        for name in ("projection_dim", "aux_params"):
            check_number(name, getattr(self, name), low=0, integer=True)
        for name in ("channels", "kernels", "strides", "dilations"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ValueError(f"{name} must be a sequence of integers, got {value!r}")
            value = tuple(value)
            for v in value:
                check_number(f"{name} entries", v, low=1, integer=True)
            object.__setattr__(self, name, value)
        if self.arch == "waveform":
            n = len(self.channels)
            if n == 0 or len(self.kernels) != n or len(self.strides) != n:
                raise ValueError(
                    "a waveform encoder needs channels, kernels and strides of one length, got "
                    f"{len(self.channels)}, {len(self.kernels)}, {len(self.strides)}"
                )
            if self.channels[-1] != self.embed_dim:
                raise ValueError(
                    f"a waveform encoder's embedding is its last block's channels: embed_dim "
                    f"{self.embed_dim} != channels[-1] {self.channels[-1]}"
                )
        else:
            if not 0 < self.f_min < self.f_max <= self.sample_rate / 2:
                raise ValueError(
                    f"need 0 < f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, "
                    f"f_max={self.f_max}, sample_rate={self.sample_rate}"
                )
            if self.hop > self.n_fft:
                raise ValueError(f"hop {self.hop} must not exceed n_fft {self.n_fft}")

    @property
    def segment_samples(self) -> int:
        """Samples of one segment at the encoder's rate."""
        return round(self.segment_seconds * self.sample_rate)

    def replace(self, **changes: Any) -> FXEncoderConfig:
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **changes: Any) -> FXEncoderConfig:
        """A named preset (``"paper"``, ``"small"``, ``"tiny"``), optionally changed."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **changes)


#: The named presets.
PRESETS: dict[str, FXEncoderConfig] = {
    "paper": FXEncoderConfig(
        arch="waveform",
        segment_seconds=10.0,
        embed_dim=2048,
        channels=(16, 32, 64, 128, 256, 256, 512, 512, 1024, 1024, 2048, 2048),
        kernels=(25, 25, 15, 15, 10, 10, 10, 10, 5, 5, 5, 5),
        strides=(4, 4, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1),
        projection_dim=0,
    ),
    "small": FXEncoderConfig(),
    "tiny": FXEncoderConfig(
        segment_seconds=1.0,
        embed_dim=16,
        n_bands=16,
        hidden=16,
        dilations=(1, 2),
        projection_dim=8,
        n_fft=512,
        hop=256,
    ),
}
