"""cloner: the style-transfer network Ψ conditioned on the audio-effects encoder Φ.

``MixFXCloner(ClonerConfig.preset("small"))(audio, cond)`` converts stereo audio to the mixing
style that ``cond`` (an :class:`fxencoder.FXEncoder` embedding of a reference) describes.
"""

from cloner.config import PRESETS, ClonerConfig
from cloner.model import MixFXCloner, soft_limit

__all__ = ["PRESETS", "ClonerConfig", "MixFXCloner", "soft_limit"]
