"""fxencoder: the contrastively trained audio-effects encoder Φ.

``fxencoder.load("default")`` gives the shipped encoder; ``encoder.embed(audio, sample_rate)``
embeds how audio was mixed. Training: :mod:`fxencoder.training` (``mixfx train-encoder``);
evaluation measures: :mod:`fxencoder.metrics` and :mod:`fxencoder.features`.
"""

from fxencoder.api import convert_reference_state_dict, load, save
from fxencoder.config import PRESETS, FXEncoderConfig
from fxencoder.model import FXEncoder

__all__ = [
    "PRESETS",
    "FXEncoder",
    "FXEncoderConfig",
    "convert_reference_state_dict",
    "load",
    "save",
]
