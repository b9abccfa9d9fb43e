"""Baseline embeddings for the encoder's evaluation: a content embedding and effect features.

Issue 8 compares the learned encoder with two hand-made embeddings under the same style
retrieval (:func:`fxencoder.metrics.retrieval_top1`):

* :func:`content_embedding`: the mean log-spectrum, which describes mostly *what is played*
  (and the EQ), a lower bound;
* :func:`effect_features`: the audio features that Diff-MST (Vanka, Steinmetz et al., ISMIR
  2024) and ITO-Master (Koo et al., ISMIR 2025) use as a loss: Bark-band spectra of mid and
  side, RMS, crest factor, stereo width and L/R balance, the baseline to beat.

Both are batched torch functions of audio ``(batch, channels, samples)`` built on
:mod:`fxdsp.analysis` (one definition of every measure) and return ``(batch, dim)`` in the
audio's dtype on its device, without gradients. The raw features are in dB (or fractions);
cosine similarity on raw dB values would be dominated by the mean level of each feature, so
the embeddings are **standardised**: each dimension is z-scored, ``(f − μ)/σ``, with
statistics either fitted on the batch itself (``stats=None``: population mean and standard
deviation over the batch, ``σ`` floored at ``1e-6`` so a constant dimension gives 0) or given
(:class:`FeatureStats`, e.g. fitted with :func:`fit_stats` on a whole evaluation set, which is
what an evaluation should do: fitting on a small batch makes one item's embedding depend on
the others). For the effect features, each of the six feature groups is then scaled by
``1/√(group size)``, so that every group contributes the same expected squared norm (1) and
the 24-band spectra do not outweigh the four scalar features.

Every level is floored at :data:`DB_FLOOR` before standardisation, so silence gives finite
features (never NaN or the −200 dB of ``fxdsp.analysis``' silence, which would wreck the
statistics).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from fxdsp import analysis

__all__ = [
    "DB_FLOOR",
    "EFFECT_GROUPS",
    "FeatureStats",
    "content_embedding",
    "content_features",
    "effect_feature_groups",
    "effect_feature_names",
    "effect_features",
    "effect_features_raw",
    "fit_stats",
    "standardize",
]

#: Floor of every level in dB (absolute or relative) before standardisation.
DB_FLOOR = -100.0
#: Bound of the L/R balance feature in dB (one channel silent reads ±this).
BALANCE_LIMIT_DB = 60.0
#: The effect-feature groups, in the order of the embedding's columns.
EFFECT_GROUPS = ("mid_spectrum", "side_spectrum", "rms", "crest", "width", "balance")
_STD_FLOOR = 1e-6


class FeatureStats(NamedTuple):
    """Per-dimension standardisation statistics: ``mean`` and ``std``, each ``(dim,)``."""

    mean: Tensor
    std: Tensor


def fit_stats(features: Tensor) -> FeatureStats:
    """Population mean and standard deviation of each column of ``(N, dim)`` features.

    ``std`` is floored at ``1e-6`` (a constant column standardises to 0, never NaN).
    """
    if features.ndim != 2 or features.shape[0] < 1:
        raise ValueError(f"features must be (N, dim) with N >= 1, got {tuple(features.shape)}")
    f = features.detach().to(torch.float64)
    return FeatureStats(f.mean(0), f.std(0, correction=0).clamp_min(_STD_FLOOR))


def standardize(
    features: Tensor,
    stats: FeatureStats | None = None,
    group_sizes: tuple[int, ...] | None = None,
) -> Tensor:
    """Z-score each column, then weight each group of columns by ``1/√(group size)``.

    ``y_d = (f_d − μ_d) / σ_d · w_g(d)`` with ``w_g = 1/√|g|`` when ``group_sizes`` is given
    (consecutive groups covering all columns), else ``w = 1``.

    Args:
        features: ``(batch, dim)`` raw features.
        stats: :class:`FeatureStats` to use; ``None`` fits them on ``features`` (the batch).
        group_sizes: sizes of the consecutive column groups, summing to ``dim``.

    Returns:
        ``(batch, dim)`` in ``features.dtype``.
    """
    if stats is None:
        stats = fit_stats(features)
    dim = features.shape[-1]
    if stats.mean.shape != (dim,) or stats.std.shape != (dim,):
        raise ValueError(
            f"stats must have shape ({dim},), got mean {tuple(stats.mean.shape)} and std "
            f"{tuple(stats.std.shape)}"
        )
    f = features.to(torch.float64)
    mean = stats.mean.to(f.device, torch.float64)
    std = stats.std.to(f.device, torch.float64).clamp_min(_STD_FLOOR)
    y = (f - mean) / std
    if group_sizes is not None:
        if sum(group_sizes) != dim or min(group_sizes) < 1:
            raise ValueError(f"group sizes {group_sizes} do not partition {dim} columns")
        weights = torch.cat(
            [torch.full((g,), g**-0.5, dtype=torch.float64, device=f.device) for g in group_sizes]
        )
        y = y * weights
    return y.to(features.dtype)


def _floor_db(x: Tensor) -> Tensor:
    return x.clamp_min(DB_FLOOR)


def content_features(audio: Tensor, sample_rate: float, bands: str = "bark") -> Tensor:
    """Raw content features: the mean log-spectrum of the mid, level-normalised, in dB.

    ``c_b = max(L_b − mean_b' L_b', −100)`` where ``L_b`` is the power of the mid
    ``M = mean over channels`` (``(L + R)/2`` for stereo) in band ``b``, in dB, from
    :func:`fxdsp.analysis.band_spectrum` (Welch PSD, 8192-point frames, ``mode="mid"``). The
    mean over bands is subtracted so that the overall level, an effect (gain), does not enter:
    what is left is the spectral shape of what is played (and of its EQ). Consequently a gain
    change or a stereo imager (which rescales the mid uniformly) leaves it unchanged.

    Args:
        audio: ``(batch, channels, samples)``, at least 16 samples.
        sample_rate: in Hz.
        bands: ``"bark"`` (Zwicker's 24 critical bands, 20 Hz–15.5 kHz; fewer below 31 kHz
            sampling) or ``"third_octave"`` (31 bands, 20 Hz–20 kHz).

    Returns:
        ``(batch, n_bands)`` in dB, ``audio.dtype``.
    """
    with torch.no_grad():  # band_spectrum checks the audio and the sample rate
        levels = analysis.band_spectrum(audio.detach(), sample_rate, bands, mode="mid").levels_db[
            :, 0
        ]
        levels = levels.to(torch.float64)
        return _floor_db(levels - levels.mean(-1, keepdim=True)).to(audio.dtype)


def content_embedding(
    audio: Tensor, sample_rate: float, stats: FeatureStats | None = None, bands: str = "bark"
) -> Tensor:
    """The content baseline: standardised mean log-spectrum of the mid, ``(batch, n_bands)``.

    :func:`content_features` z-scored per band (``stats=None``: fitted on the batch; see the
    module's notes on standardisation).

    Args:
        audio: ``(batch, channels, samples)``.
        sample_rate: in Hz.
        stats: standardisation statistics (from :func:`fit_stats` on :func:`content_features`
            of a reference set), or ``None`` to fit them on this batch.
        bands: ``"bark"`` or ``"third_octave"``.

    Returns:
        ``(batch, n_bands)``, ``audio.dtype``, on ``audio.device``.
    """
    return standardize(content_features(audio, sample_rate, bands), stats)


def effect_feature_groups(sample_rate: float) -> tuple[int, ...]:
    """Sizes of :data:`EFFECT_GROUPS` at a sample rate (the Bark bands below Nyquist)."""
    n = len(analysis.bark_bands(sample_rate).centre_hz)
    return (n, n, 1, 1, 1, 1)


def effect_feature_names(sample_rate: float) -> list[str]:
    """Column names of :func:`effect_features` (``mid_spectrum.50Hz``, …, ``balance``)."""
    centres = analysis.bark_bands(sample_rate).centre_hz.tolist()
    mid = [f"mid_spectrum.{c:g}Hz" for c in centres]
    side = [f"side_spectrum.{c:g}Hz" for c in centres]
    return [*mid, *side, "rms", "crest", "width", "balance"]


def effect_features_raw(audio: Tensor, sample_rate: float) -> Tensor:
    """Raw hand-made effect features of stereo audio, ``(batch, 2·n_bark + 4)``.

    Columns (groups of :data:`EFFECT_GROUPS`), with ``R = rms_dbfs(x)`` the item's RMS level:

    * ``mid_spectrum``, ``side_spectrum``: Bark-band levels of ``M = (L + R)/2`` and
      ``S = (L − R)/2`` (:func:`fxdsp.analysis.band_spectrum`, ``mode="mid_side"``) in dB
      relative to ``R``: ``max(L_b − R, −100)``. Relative, so that the spectra carry EQ and
      stereo image per band while the level lives in one column;
    * ``rms``: ``max(R, −100)`` in dBFS (:func:`fxdsp.analysis.rms_dbfs`);
    * ``crest``: peak over RMS in dB (:func:`fxdsp.analysis.crest_factor_db`), the dynamics;
    * ``width``: side-energy fraction ``E_S/(E_M + E_S)`` in [0, 1]
      (:func:`fxdsp.analysis.stereo_width`);
    * ``balance``: ``10·log10(E_R/E_L)`` in dB, clipped to ±60
      (:func:`fxdsp.analysis.lr_balance_db`).

    A gain of ``g`` dB changes only the ``rms`` column, by ``g``.

    Args:
        audio: stereo ``(batch, 2, samples)``, at least 16 samples.
        sample_rate: in Hz.

    Returns:
        ``(batch, dim)``, ``audio.dtype``, on ``audio.device``, finite (silence included).
    """
    if isinstance(audio, Tensor) and (audio.ndim != 3 or audio.shape[1] != 2):
        raise ValueError(
            f"effect features need stereo audio (batch, 2, samples), got {tuple(audio.shape)}"
        )
    with torch.no_grad():  # band_spectrum checks the audio and the sample rate
        x = audio.detach()
        spec = analysis.band_spectrum(x, sample_rate, "bark", mode="mid_side").levels_db
        spec = spec.to(torch.float64)
        rms = analysis.rms_dbfs(x).to(torch.float64)
        rel = _floor_db(spec - rms[:, None, None])
        scalars = torch.stack(
            [
                _floor_db(rms),
                analysis.crest_factor_db(x).to(torch.float64),
                analysis.stereo_width(x).to(torch.float64),
                analysis.lr_balance_db(x)
                .to(torch.float64)
                .clamp(-BALANCE_LIMIT_DB, BALANCE_LIMIT_DB),
            ],
            -1,
        )
        return torch.cat([rel[:, 0], rel[:, 1], scalars], -1).to(audio.dtype)


def effect_features(audio: Tensor, sample_rate: float, stats: FeatureStats | None = None) -> Tensor:
    """The effect-feature baseline: standardised Diff-MST / ITO-Master audio features.

    :func:`effect_features_raw` z-scored per column, then each group of
    :data:`EFFECT_GROUPS` scaled by ``1/√(group size)`` (so the mid spectrum, the side
    spectrum, RMS, crest factor, width and balance weigh the same in the distance).

    Args:
        audio: stereo ``(batch, 2, samples)``.
        sample_rate: in Hz.
        stats: statistics of the raw features (from :func:`fit_stats` on
            :func:`effect_features_raw` of a reference set), or ``None`` to fit them on this
            batch.

    Returns:
        ``(batch, 2·n_bark + 4)`` (52 at 44.1 kHz), ``audio.dtype``, on ``audio.device``.
    """
    raw = effect_features_raw(audio, sample_rate)
    return standardize(raw, stats, effect_feature_groups(sample_rate))
