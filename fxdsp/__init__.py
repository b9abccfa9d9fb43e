"""fxdsp: batched, differentiable, GPU-native audio effects for mixing-style research.

Two layers: :mod:`fxdsp.functional` holds pure functions with physical-unit arguments;
:mod:`fxdsp.modules` wraps them as ``nn.Module``s with declarative parameter specs.
"""

from fxdsp import functional
from fxdsp._checks import check_finite
from fxdsp.chain_config import EFFECTS, STEMS, ChainConfig
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
from fxdsp.normalize import FxNormalizer, FxNormStats, compute_stats
from fxdsp.params import ParamSpec
from fxdsp.scheduler import ProbabilityScheduler

__version__ = "0.1.0"

__all__ = [
    "EFFECTS",
    "STEMS",
    "ChainConfig",
    "Compressor",
    "Effect",
    "FxNormStats",
    "FxNormalizer",
    "FxParams",
    "Gain",
    "LoudnessNormalize",
    "Manipulator",
    "Panner",
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
