"""fxdsp: batched, differentiable, GPU-native audio effects for mixing-style research.

Two layers: :mod:`fxdsp.functional` holds pure functions with physical-unit arguments;
:mod:`fxdsp.modules` wraps them as ``nn.Module``s with declarative parameter specs.
"""

from fxdsp import functional
from fxdsp._checks import check_finite
from fxdsp.chain_config import EFFECTS, STEMS, ChainConfig
from fxdsp.fxnorm_stats import FxNormStats, compute_stats
from fxdsp.manipulator import FxParams, Manipulator, sample_params
from fxdsp.modules import (
    Compressor,
    Effect,
    Gain,
    LoudnessNormalize,
    Panner,
    ParametricEQ,
    Reverb,
    StereoImager,
)
from fxdsp.normalize import FxNormalizer
from fxdsp.params import ParamSpec
from fxdsp.registry import EQ_BANDS, FAMILIES, EffectFamily
from fxdsp.scheduler import ProbabilityScheduler
from fxdsp.space import ParamSpace

__version__ = "0.1.0"

__all__ = [
    "EFFECTS",
    "EQ_BANDS",
    "FAMILIES",
    "STEMS",
    "ChainConfig",
    "Compressor",
    "Effect",
    "EffectFamily",
    "FxNormStats",
    "FxNormalizer",
    "FxParams",
    "Gain",
    "LoudnessNormalize",
    "Manipulator",
    "Panner",
    "ParamSpace",
    "ParamSpec",
    "ParametricEQ",
    "ProbabilityScheduler",
    "Reverb",
    "StereoImager",
    "__version__",
    "check_finite",
    "compute_stats",
    "functional",
    "sample_params",
]
