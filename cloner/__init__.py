"""cloner: the style-transfer network Ψ conditioned on the audio-effects encoder Φ.

``MixFXCloner(ClonerConfig.preset("small"))(audio, cond)`` converts stereo audio to the mixing
style that ``cond`` (an :class:`fxencoder.FXEncoder` embedding of a reference) describes.
``cloner.load(name_or_path)`` / ``cloner.save(model, path, encoder=...)`` read and write
checkpoints; ``cloner.transfer`` and ``cloner.transfer_stems`` convert whole songs
(:mod:`cloner.inference`); :mod:`cloner.separation` splits a mix with Demucs (``separate`` extra).
Losses: ``mss_loss`` / ``MultiScaleSpectralLoss`` (the reference's multi-scale spectral loss on
L/R and M/S) and ``embedding_loss`` (:mod:`cloner.loss`); training: :mod:`cloner.training`
(``mixfx train-cloner``).

Parametric transfer: ``ParamController`` predicts one fxdsp chain per stem, ``transfer_params``
predicts, refines and applies it to whole stems (:mod:`cloner.parametric`; training:
:mod:`cloner.parametric_training`, ``mixfx train-params``); ``Preset`` saves, prints and exports
the chains (:mod:`cloner.presets`).
"""

from cloner.api import load, save
from cloner.config import PRESETS, ClonerConfig
from cloner.inference import transfer, transfer_stems
from cloner.loss import MultiScaleSpectralLoss, embedding_loss, mss_loss
from cloner.model import MixFXCloner, soft_limit
from cloner.parametric import ParamController, ParamControllerConfig, transfer_params
from cloner.presets import Preset

__all__ = [
    "PRESETS",
    "ClonerConfig",
    "MixFXCloner",
    "MultiScaleSpectralLoss",
    "ParamController",
    "ParamControllerConfig",
    "Preset",
    "embedding_loss",
    "load",
    "mss_loss",
    "save",
    "soft_limit",
    "transfer",
    "transfer_params",
    "transfer_stems",
]
