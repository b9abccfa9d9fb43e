"""Parametric style transfer: predict each stem's fxdsp chain, refine it, render it.

Instead of a black-box network that rewrites the waveform (:class:`cloner.MixFXCloner`), a
:class:`ParamController` predicts the parameters of one fxdsp chain per stem from the frozen
encoder's embeddings Φ of the input stem and of the reference stem (and, optionally, cheap
audio features of both), and the chain is rendered by fxdsp: exact, batched and differentiable
end to end, readable, editable and exportable (:mod:`cloner.presets`).

**The chain.** One fixed chain per stem in the reference order, every effect on::

    EQ (low shelf, 3 peaks, high shelf) → compressor → pan → imager → reverb (send) → gain

each processor but the gain followed by fxdsp's RMS match to the input level
(:class:`fxdsp.Manipulator`, ``from_normalized``). The controller predicts the 24 columns of
the :class:`fxdsp.ParamSpace` of :func:`controller_chain`: the reference chain's ranges, except
that the compressor's ratio starts at 1 and the reverb's wet fraction at 0, so that **"off" is
reachable as neutral parameters**: EQ gains 0 dB, ratio 1:1, pan 0, width 1, wet 0, gain 0 dB
(:data:`OFF_VALUES`); each of those is the identity (exactly, up to float rounding). There are
no on/off flags and no order choice to predict: on/off is a continuous parameter, and the order
is the reference's default (the random chain's EQ/compressor and pan/imager swaps, its pan laws
and its polarity flips are not represented; the pan law is constant power, the polarity never
flipped, the reverb's noise seed 0).

**Outputs.** ``u = clamp((1 + 2m) · σ(z) − m, 0, 1)`` with a margin ``m = 0.05``: the sigmoid
reaches the ends of every range (the neutral ratio and wet fraction sit at ``u = 0``) with finite
logits. The clamp is straight-through (its gradient is the unclamped value's): a plain clamp
has no gradient past the ends, and a column pushed there early in training (the wet fraction,
by the many items whose reverb is off) would stay there for every input, for good. The last
layer starts at zero weights and the neutral chain's logits, so an untrained controller is
(almost: ``u = 0.01`` on the two edge columns) "input unchanged".

**Inputs.** ``LayerNorm(Φ(x))``, ``LayerNorm(Φ(r))`` and their difference; with
``use_features`` the raw effect features of both (:func:`audio_features`, the Diff-MST /
ITO-Master audio features of :func:`fxencoder.features.effect_features_raw`, scaled by
:data:`FEATURE_SCALES`) and their difference; and a learned embedding of the stem type.

**Refinement** (:func:`refine`): N gradient steps (Adam) on the normalized parameters of each
stem, projected onto [0, 1], minimising ``w_emb · (1 − cos(Φ(y), Φ(r))) + w_feat ·
feature_distance(f(y), f(r))`` for ``y`` = the chain applied to an excerpt of the input, from the
controller's prediction or from :func:`neutral_normalized`. Each stem is independent (its own
parameters, its own loss term; Adam is element-wise), and the best parameters seen are returned,
so a refinement never ends further from the reference than it started.

Whole songs: :func:`transfer_params` predicts (and refines) one chain per stem, then applies
each chain to its whole stem at once: no windows, so no seams.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import fxdsp
from fxdsp import analysis
from fxdsp.config import ConfigBase, check_number
from fxdsp.io import atomic_write
from fxdsp.manipulator import Manipulator
from fxdsp.registry import EFFECTS, STEMS
from fxdsp.space import ParamSpace

__all__ = [
    "CONTROLLER_MANIFEST",
    "CONTROLLER_RANGES",
    "FEATURE_SCALES",
    "FORMAT",
    "OFF_VALUES",
    "PRESETS",
    "ParamController",
    "ParamControllerConfig",
    "ParamTransfer",
    "RefineResult",
    "apply_params",
    "audio_features",
    "controller_chain",
    "excerpt",
    "feature_distance",
    "load_controller",
    "load_controller_with_info",
    "load_encoder_for_controller",
    "neutral_normalized",
    "predict",
    "read_controller_info",
    "refine",
    "render",
    "render_stages",
    "save_controller",
    "spread",
    "stem_indices",
    "target_normalized",
    "transfer_params",
]

FORMAT = "mixfx.params/1"
TRAIN_FORMAT = "mixfx.params.train/1"

#: The controller's ranges that differ from the reference chain's: the ranges reach the
#: neutral value of every effect (ratio 1:1, wet fraction 0).
CONTROLLER_RANGES: dict[str, tuple[float, float]] = {
    "compressor.ratio": (1.0, 40.0),
    "reverb.mix": (0.0, 1.0),
}
#: The parameter that switches each effect off, and its neutral value (the effect is then the
#: identity, and the RMS match after it a gain of exactly 1).
OFF_VALUES: dict[str, tuple[str, float]] = {
    "eq": ("eq.gain_db", 0.0),
    "compressor": ("compressor.ratio", 1.0),
    "pan": ("pan.pan", 0.0),
    "imager": ("imager.width", 1.0),
    "reverb": ("reverb.mix", 0.0),
    "gain": ("gain.gain_db", 0.0),
}
#: Scale of each effect-feature group (:data:`fxencoder.features.EFFECT_GROUPS`) in
#: :func:`feature_distance` and in the controller's inputs: about one noticeable step each
#: (6 dB of a band, of the level, of the crest factor or of the L/R balance; 0.1 of the
#: side-energy fraction).
FEATURE_SCALES: dict[str, float] = {
    "mid_spectrum": 6.0,
    "side_spectrum": 6.0,
    "rms": 6.0,
    "crest": 6.0,
    "width": 0.1,
    "balance": 6.0,
}
_MARGIN = 0.05  # the output sigmoid's overshoot: u reaches 0 and 1 with finite logits
_EDGE_START = 0.01  # the untrained output on a column whose neutral value is an end of its range
_DB_FLOOR = -100.0  # fxencoder.features.DB_FLOOR
_BALANCE_LIMIT_DB = 60.0  # fxencoder.features.BALANCE_LIMIT_DB
_RMS_EPS = 1e-8  # fxdsp.manipulator's RMS-match floor


# ------------------------------------------------------------------------------------------------
# The chain and its normalized space
# ------------------------------------------------------------------------------------------------
def controller_chain(sample_rate: float = 44100.0) -> fxdsp.ChainConfig:
    """The chain config whose :class:`~fxdsp.ParamSpace` the controller predicts.

    The reference chain's ranges with :data:`CONTROLLER_RANGES` (every effect can be neutral),
    at ``sample_rate`` (the EQ's highest frequency, 10 kHz, must be below its Nyquist).

    Raises:
        ValueError: a bad sample rate (including one of 20 kHz or less).
    """
    return fxdsp.ChainConfig().replace(ranges=CONTROLLER_RANGES, sample_rate=float(sample_rate))


def _column_effects(space: ParamSpace) -> list[str]:
    return [key.partition(".")[0] for key, _ in space.columns]


def neutral_normalized(space: ParamSpace | None = None, batch: int = 1) -> Tensor:
    """``(batch, len(space))`` normalized parameters of the chain that changes nothing.

    The switch of each effect (:data:`OFF_VALUES`) at its neutral value; every other column at
    its spec's default (clamped into the column's range), which does not matter while the
    effect is neutral.
    """
    space = space if space is not None else ParamSpace(controller_chain())
    off = {key: value for key, value in OFF_VALUES.values()}
    cols = []
    for key, spec in space.columns:
        value = off.get(key, spec.default)
        cols.append(float(spec.to_normalized(float(value)).clamp(0.0, 1.0)))
    return torch.tensor(cols, dtype=torch.float32).expand(batch, -1).clone()


def target_normalized(
    params: fxdsp.FxParams, space: ParamSpace | None = None
) -> tuple[Tensor, Tensor]:
    """A drawn chain in the controller's space: ``(u, mask)``, each ``(batch, len(space))``.

    ``u`` is the draw's normalized values (clamped to [0, 1]) where the effect is on; where it
    is off, the effect's switch column takes its neutral value and the effect's other columns
    (which then change nothing) get ``mask = 0``. What the controller cannot represent (the
    order swaps, the pan law, the polarity) is ignored.
    """
    space = space if space is not None else ParamSpace(controller_chain(params.sample_rate))
    u = space.to_normalized(params.values).to(torch.float32).clamp(0.0, 1.0)
    neutral = neutral_normalized(space, len(params)).to(u.device)
    mask = torch.ones_like(u)
    effects = _column_effects(space)
    for e, effect in enumerate(EFFECTS):
        off = ~params.active[:, e].to(u.device)
        switch = OFF_VALUES[effect][0]
        for j, (key, _) in enumerate(space.columns):
            if effects[j] != effect:
                continue
            if key == switch:
                u[:, j] = torch.where(off, neutral[:, j], u[:, j])
            else:
                mask[:, j] = torch.where(off, 0.0, 1.0)
    return u, mask


def stem_indices(stems: Sequence[str] | Tensor, batch: int | None = None) -> Tensor:
    """``(batch,)`` int64 indices into :data:`fxdsp.STEMS` of stem names (or checked indices).

    Raises:
        ValueError: an unknown stem name, an index outside ``STEMS``, or a length other than
            ``batch``.
    """
    if isinstance(stems, Tensor):
        idx = stems.detach().to(torch.int64).cpu()
        if idx.ndim != 1 or bool(((idx < 0) | (idx >= len(STEMS))).any()):
            raise ValueError(f"stem indices must be (batch,) in [0, {len(STEMS) - 1}]")
    else:
        if isinstance(stems, str):
            raise ValueError(f"stems must be a sequence of names, got the string {stems!r}")
        names = list(stems)
        unknown = sorted({str(s) for s in names if s not in STEMS})
        if unknown:
            raise ValueError(f"unknown stem name(s) {unknown}; expected some of {STEMS}")
        idx = torch.tensor([STEMS.index(s) for s in names], dtype=torch.int64)
    if batch is not None and idx.shape[0] != batch:
        raise ValueError(f"{idx.shape[0]} stems for a batch of {batch}")
    return idx


def render(
    u: Tensor,
    audio: Tensor,
    sample_rate: float,
    *,
    stems: Sequence[str] | Tensor | None = None,
    reverb_seed: int | Tensor = 0,
) -> Tensor:
    """Apply the controller's chain with normalized parameters ``u`` to ``audio``.

    ``Manipulator.from_normalized(u, config=controller_chain(sample_rate))(audio)``: every
    effect on, the reference order, constant-power pan, no polarity flip. Differentiable with
    respect to ``u`` (and ``audio``).

    Args:
        u: ``(batch, 24)`` normalized parameters (clamped to [0, 1]).
        audio: ``(batch, 1 or 2, samples)``.
        sample_rate: in Hz.
        stems: the stem of each item (recorded only; the chain does not depend on it).
        reverb_seed: the reverb's noise seed (an int or ``(batch,)``).

    Returns:
        ``(batch, 2, samples)``, audio's dtype and device.

    Raises:
        ValueError: ``u`` not ``(batch, 24)``, audio of another batch size or malformed.
    """
    chain = controller_chain(sample_rate)
    if isinstance(audio, Tensor) and audio.is_floating_point():
        u = u.to(device=audio.device, dtype=audio.dtype)
    manip = Manipulator.from_normalized(u, config=chain, stems=stems, reverb_seed=reverb_seed)
    return manip(audio)


def render_stages(params: fxdsp.FxParams, audio: Tensor) -> tuple[Tensor, dict[str, float]]:
    """``Manipulator(params)(audio)`` for one item, and the gain in dB of the RMS match after
    each of its processors (all but the gain), measured in the same pass.

    The same operations in the same order as the Manipulator (for a batch whose items all run
    their effect), so the output is bit-identical to it.

    Args:
        params: a chain of one item.
        audio: ``(1, 1 or 2, samples)``.

    Returns:
        ``((1, 2, samples), {effect: dB})``.

    Raises:
        ValueError: a chain of more than one item, malformed audio.
    """
    from fxdsp import functional as F
    from fxdsp.manipulator import apply_effect

    if len(params) != 1:
        raise ValueError(f"render_stages takes a chain of one item, got {len(params)}")
    x = _stereo(audio, "audio")
    if x.shape[0] != 1:
        raise ValueError(f"render_stages takes one item of audio, got {x.shape[0]}")
    p = params.to(x.device) if params.device != x.device else params
    level = F.rms(x)
    order = [("eq", "compressor")[k] for k in p.order1[0].tolist()]
    order += [("pan", "imager")[k] for k in p.order2[0].tolist()] + ["reverb", "gain"]
    active = dict(zip(EFFECTS, p.active[0].tolist(), strict=True))
    y, levels = x, {}
    for name in order:
        if not active[name]:
            continue
        out = apply_effect(name, y, p)
        if name == "gain":
            y = out
            continue
        ratio = level / F.rms(out).clamp_min(_RMS_EPS)
        y = out * ratio[:, None, None]
        levels[name] = float(20.0 * torch.log10(ratio.clamp_min(1e-30))[0])
    return (x.clone() if y is x else y), levels


# ------------------------------------------------------------------------------------------------
# Audio features (differentiable)
# ------------------------------------------------------------------------------------------------
def _feature_groups(sample_rate: float) -> tuple[int, ...]:
    n = len(analysis.bark_bands(sample_rate).centre_hz)
    return (n, n, 1, 1, 1, 1)


def audio_features(audio: Tensor, sample_rate: float) -> Tensor:
    """The raw effect features of stereo audio, **differentiable**: ``(batch, 2·n_bark + 4)``.

    The same values as :func:`fxencoder.features.effect_features_raw` (Bark-band levels of mid
    and side relative to the RMS level, the RMS level in dBFS, the crest factor in dB, the
    side-energy fraction and the L/R balance in dB; every level floored at −100 dB), computed
    with gradients (that function runs under ``no_grad``). Float64 inside.

    Raises:
        ValueError: audio that is not stereo ``(batch, 2, samples)`` with at least 16 samples.
    """
    if not isinstance(audio, Tensor) or audio.ndim != 3 or audio.shape[1] != 2:
        shape = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
        raise ValueError(f"audio features need stereo audio (batch, 2, samples), got {shape}")
    x = audio.to(torch.float64)
    spec = analysis.band_spectrum(x, sample_rate, "bark", mode="mid_side").levels_db
    rms = analysis.rms_dbfs(x)
    rel = (spec - rms[:, None, None]).clamp_min(_DB_FLOOR)
    scalars = torch.stack(
        [
            rms.clamp_min(_DB_FLOOR),
            analysis.crest_factor_db(x),
            analysis.stereo_width(x),
            analysis.lr_balance_db(x).clamp(-_BALANCE_LIMIT_DB, _BALANCE_LIMIT_DB),
        ],
        -1,
    )
    return torch.cat([rel[:, 0], rel[:, 1], scalars], -1).to(audio.dtype)


def _feature_scale(sample_rate: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    sizes = _feature_groups(sample_rate)
    return torch.cat(
        [
            torch.full((n,), FEATURE_SCALES[g], device=device, dtype=dtype)
            for g, n in zip(FEATURE_SCALES, sizes, strict=True)
        ]
    )


def feature_distance(a: Tensor, b: Tensor, sample_rate: float) -> Tensor:
    """Distance between two sets of :func:`audio_features`, per item: ``(batch,)``.

    ``d = mean_g mean_{k∈g} |a_k − b_k| / s_g`` over the six groups ``g`` with the scales
    ``s_g`` of :data:`FEATURE_SCALES`: each group weighs the same whatever its size (the two
    Bark spectra do not outweigh the four scalars), and 1 means one "noticeable step" of
    difference on average.

    Raises:
        ValueError: shapes that differ or do not match the sample rate's feature count.
    """
    sizes = _feature_groups(sample_rate)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != sum(sizes):
        raise ValueError(
            f"features must both be (batch, {sum(sizes)}) at {sample_rate:g} Hz, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    diff = (a - b).abs() / _feature_scale(sample_rate, a.device, a.dtype)
    parts = torch.split(diff, list(sizes), dim=1)
    return torch.stack([p.mean(dim=1) for p in parts], dim=1).mean(dim=1)


# ------------------------------------------------------------------------------------------------
# The controller
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamControllerConfig(ConfigBase):
    """Hyperparameters of a :class:`ParamController` (saved in every checkpoint).

    Attributes:
        sample_rate: the rate of the encoder and of the training audio, in Hz.
        embed_dim: the encoder's embedding size.
        hidden: width of the MLP's hidden layers.
        layers: hidden layers of the MLP (>= 1).
        stem_dim: size of the learned stem-type embedding.
        use_features: also take the raw effect features (:func:`audio_features`) of the input
            and of the reference.
        segment_seconds: length of the training crops (inference uses whole stems).
    """

    sample_rate: int = 44100
    embed_dim: int = 256
    hidden: int = 256
    layers: int = 3
    stem_dim: int = 8
    use_features: bool = True
    segment_seconds: float = 3.0

    def __post_init__(self) -> None:
        check_number("sample_rate", self.sample_rate, low=20001, high=384000, integer=True)
        for name in ("embed_dim", "hidden", "layers", "stem_dim"):
            check_number(name, getattr(self, name), low=1, integer=True)
        if not isinstance(self.use_features, bool):
            raise ValueError(f"use_features must be true or false, got {self.use_features!r}")
        check_number("segment_seconds", self.segment_seconds, low=0.0, low_open=True, high=60.0)

    @property
    def segment_samples(self) -> int:
        """Samples of one training crop."""
        return round(self.segment_seconds * self.sample_rate)

    @property
    def feature_dim(self) -> int:
        """Size of :func:`audio_features` at the config's rate (0 without features)."""
        return sum(_feature_groups(self.sample_rate)) if self.use_features else 0

    @classmethod
    def preset(cls, name: str, **changes: Any) -> ParamControllerConfig:
        """A named preset (``"small"``, ``"tiny"``), optionally changed."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name].to_dict(), **changes})


#: The named presets: ``"small"`` (the small encoder's 256-d embeddings, a 3 × 256 MLP,
#: ≈ 0.3 M parameters; trains on this CPU within a session) and ``"tiny"`` (for tests).
PRESETS: dict[str, ParamControllerConfig] = {
    "small": ParamControllerConfig(),
    "tiny": ParamControllerConfig(
        embed_dim=16, hidden=16, layers=2, stem_dim=2, segment_seconds=0.5
    ),
}


class ParamController(nn.Module):
    """Maps (Φ(input), Φ(reference)[, features], stem) to a chain's normalized parameters.

    Args:
        config: the :class:`ParamControllerConfig` (default the ``"small"`` preset).

    Shape:
        ``forward(emb_input (B, D), emb_reference (B, D), stems (B,), feat_input (B, F),
        feat_reference (B, F))`` → ``(B, 24)`` in [0, 1].
    """

    def __init__(self, config: ParamControllerConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else ParamControllerConfig()
        self.space = ParamSpace(controller_chain(cfg.sample_rate))
        n_out = len(self.space)
        n_in = 3 * cfg.embed_dim + 3 * cfg.feature_dim + cfg.stem_dim
        self.stem_embedding = nn.Embedding(len(STEMS), cfg.stem_dim)
        layers: list[nn.Module] = []
        width = n_in
        for _ in range(cfg.layers):
            layers += [nn.Linear(width, cfg.hidden), nn.GELU()]
            width = cfg.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_out)
        start = neutral_normalized(self.space)[0].clamp(_EDGE_START, 1.0 - _EDGE_START)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.copy_(torch.logit((start + _MARGIN) / (1.0 + 2.0 * _MARGIN)))
        if cfg.use_features:
            self.register_buffer(
                "feature_scale", _feature_scale(cfg.sample_rate, torch.device("cpu"),
                                                torch.float32), persistent=False,
            )  # fmt: skip

    @property
    def names(self) -> tuple[str, ...]:
        """The output columns' names (the :class:`~fxdsp.ParamSpace` columns)."""
        return self.space.names

    def num_parameters(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check(self, name: str, t: Tensor | None, batch: int, dim: int) -> Tensor:
        if not isinstance(t, Tensor) or t.ndim != 2 or t.shape != (batch, dim):
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be ({batch}, {dim}), got {shape}")
        if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must be finite floating-point values")
        return t.float()

    def forward(
        self,
        emb_input: Tensor,
        emb_reference: Tensor,
        stems: Sequence[str] | Tensor,
        feat_input: Tensor | None = None,
        feat_reference: Tensor | None = None,
    ) -> Tensor:
        """Normalized chain parameters ``(batch, 24)`` in [0, 1].

        Raises:
            ValueError: inputs of the wrong shape, non-finite inputs, unknown stems, features
                missing (or given) against ``config.use_features``.
        """
        cfg = self.config
        b = emb_input.shape[0] if isinstance(emb_input, Tensor) and emb_input.ndim == 2 else -1
        e_in = self._check("emb_input", emb_input, b, cfg.embed_dim)
        e_ref = self._check("emb_reference", emb_reference, b, cfg.embed_dim)
        idx = stem_indices(stems, b).to(e_in.device)
        e_in = nn.functional.layer_norm(e_in, (cfg.embed_dim,))
        e_ref = nn.functional.layer_norm(e_ref, (cfg.embed_dim,))
        parts = [e_in, e_ref, e_ref - e_in]
        if cfg.use_features:
            f_in = self._check("feat_input", feat_input, b, cfg.feature_dim) / self.feature_scale
            f_ref = self._check("feat_reference", feat_reference, b, cfg.feature_dim)
            f_ref = f_ref / self.feature_scale
            parts += [f_in, f_ref, f_ref - f_in]
        elif feat_input is not None or feat_reference is not None:
            raise ValueError("this controller takes no features (config.use_features is false)")
        parts.append(self.stem_embedding(idx))
        z = self.head(self.body(torch.cat(parts, dim=1)))
        v = (1.0 + 2.0 * _MARGIN) * torch.sigmoid(z) - _MARGIN
        # Straight-through clamp: the value is clamped to [0, 1], the gradient is v's, so a
        # column pushed past an end (e.g. the wet fraction to 0 by items whose reverb is off)
        # is never cut off from the gradient for good.
        return v + (v.clamp(0.0, 1.0) - v).detach()


def _stereo(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[1] not in (1, 2):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be (batch, 1 or 2, samples), got {shape}")
    return x.expand(-1, 2, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def predict(
    controller: ParamController,
    encoder: Any,
    audio: Tensor,
    sample_rate: float,
    reference: Tensor,
    reference_rate: float,
    stems: Sequence[str] | Tensor,
    *,
    max_segments: int | None = 16,
) -> Tensor:
    """The controller's parameters for audio of any length and rate: ``(batch, 24)`` on the CPU.

    The embeddings are ``encoder.embed`` (resampled, averaged over its segments) and the
    features :func:`audio_features` (at each one's own rate), both of :func:`spread`: at most
    ``max_segments`` evenly spaced encoder segments of each item (16 × 3 s by default), so that
    a long song costs what 48 s do (None: the whole audio).

    Args:
        controller: the controller (eval mode is used).
        encoder: the :class:`fxencoder.FXEncoder` it was trained with.
        audio: ``(batch, 1 or 2, samples)`` input stems.
        sample_rate: their rate in Hz.
        reference: ``(batch, 1 or 2, samples')`` reference stems (item ``i`` for input ``i``).
        reference_rate: their rate in Hz.
        stems: the stem type of each item.
        max_segments: see above.
    """
    x, r = _stereo(audio, "audio"), _stereo(reference, "reference")
    if r.shape[0] != x.shape[0]:
        raise ValueError(f"{x.shape[0]} inputs but {r.shape[0]} references")
    if max_segments is not None:
        seconds = float(encoder.config.segment_seconds)
        x = spread(x, round(seconds * sample_rate), max_segments)
        r = spread(r, round(seconds * reference_rate), max_segments)
    device = next(controller.parameters()).device
    was = controller.training
    controller.eval()
    try:
        e_in = encoder.embed(x, sample_rate).to(device)
        e_ref = encoder.embed(r, reference_rate).to(device)
        feats: dict[str, Tensor] = {}
        if controller.config.use_features:
            feats = {
                "feat_input": audio_features(x.float(), sample_rate).to(device),
                "feat_reference": audio_features(r.float(), reference_rate).to(device),
            }
        return controller(e_in, e_ref, stems, **feats).float().cpu()
    finally:
        controller.train(was)


# ------------------------------------------------------------------------------------------------
# Refinement
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefineResult:
    """What :func:`refine` returns.

    Attributes:
        params: ``(batch, 24)`` the best normalized parameters seen per item (CPU).
        losses: ``(steps + 1, batch)`` the loss of every item at every step (the last row after
            the last update), float64 on the CPU.
        best: ``(batch,)`` each item's lowest loss (the loss of ``params``).
        seconds_per_step: wall-clock seconds of one step (forward and backward).
    """

    params: Tensor
    losses: Tensor
    best: Tensor
    seconds_per_step: float


def _embed_segments(encoder: Any, y: Tensor) -> Tensor:
    """Φ averaged over whole encoder segments of ``y`` (as ``embed`` does), with gradients to
    ``y`` but not to the encoder's parameters (eval mode)."""
    seg = int(encoder.config.segment_samples)
    n = y.shape[-1]
    if n > seg:
        count = n // seg
        starts = [i * seg for i in range(count)]
        if count * seg < n:
            starts.append(n - seg)
        pieces = torch.stack([y[..., s : s + seg] for s in starts], dim=1)
        b, s = pieces.shape[:2]
        flat = pieces.reshape(b * s, 2, seg)
    else:
        b, s, flat = y.shape[0], 1, y
    params = {name: p.detach() for name, p in encoder.named_parameters()}
    emb = torch.func.functional_call(encoder, params, (flat.float(),))
    return emb.reshape(b, s, -1).mean(dim=1)


def refine(
    params: Tensor,
    audio: Tensor,
    sample_rate: float,
    encoder: Any,
    reference_embedding: Tensor | None,
    reference_features: Tensor | None = None,
    *,
    steps: int,
    lr: float = 0.05,
    embedding_weight: float = 1.0,
    feature_weight: float = 1.0,
    stems: Sequence[str] | Tensor | None = None,
    progress: bool = False,
) -> RefineResult:
    """N gradient steps on each item's chain parameters towards a reference.

    Minimises, per item, ``L(u) = w_emb · (1 − cos(Φ(y), e_ref)) + w_feat ·
    feature_distance(f(y), f_ref)`` with ``y = render(u, audio)``, by Adam on ``u`` (projected
    onto [0, 1] after each update). Items are independent. Returns the best ``u`` seen per item
    (so ``best <= losses[0]``).

    Args:
        params: ``(batch, 24)`` the starting point (the controller's prediction, or
            :func:`neutral_normalized`).
        audio: ``(batch, 1 or 2, samples)`` at the encoder's rate, e.g. an :func:`excerpt` of
            each stem.
        sample_rate: its rate in Hz (must be the encoder's).
        encoder: the frozen :class:`fxencoder.FXEncoder` (its parameters get no gradient).
        reference_embedding: ``(batch, D)`` Φ of the references (``encoder.embed``), or None
            when ``embedding_weight`` is 0.
        reference_features: ``(batch, F)`` :func:`audio_features` of the references, or None
            when ``feature_weight`` is 0.
        steps: N >= 1.
        lr: Adam's learning rate on the normalized parameters.
        embedding_weight: ``w_emb`` >= 0.
        feature_weight: ``w_feat`` >= 0 (not both 0).
        stems: recorded in the chain (optional).
        progress: show a tqdm bar over the steps.

    Raises:
        ValueError: bad shapes, a rate other than the encoder's, a missing reference term,
            bad steps, learning rate or weights.
    """
    import time

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    check_number("lr", lr, low=0.0, low_open=True)
    check_number("embedding_weight", embedding_weight, low=0.0)
    check_number("feature_weight", feature_weight, low=0.0)
    if embedding_weight + feature_weight <= 0:
        raise ValueError("embedding_weight and feature_weight are both 0: nothing to minimise")
    x = _stereo(audio, "audio").detach()
    b = x.shape[0]
    space = ParamSpace(controller_chain(sample_rate))
    if not isinstance(params, Tensor) or params.shape != (b, len(space)):
        shape = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
        raise ValueError(f"params must be ({b}, {len(space)}), got {shape}")
    rate = int(getattr(encoder.config, "sample_rate", sample_rate))
    if int(sample_rate) != rate:
        raise ValueError(f"refinement runs at the encoder's rate {rate} Hz, got {sample_rate} Hz")
    if embedding_weight > 0 and (
        reference_embedding is None or tuple(reference_embedding.shape)[:1] != (b,)
    ):
        raise ValueError(f"reference_embedding must be ({b}, D) when embedding_weight > 0")
    if feature_weight > 0 and (
        reference_features is None or tuple(reference_features.shape)[:1] != (b,)
    ):
        raise ValueError(f"reference_features must be ({b}, F) when feature_weight > 0")
    device = x.device
    e_ref = reference_embedding.detach().to(device).float() if embedding_weight > 0 else None
    f_ref = reference_features.detach().to(device).float() if feature_weight > 0 else None
    u = params.detach().to(device=device, dtype=torch.float32).clamp(0.0, 1.0).clone()
    u.requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    best = torch.full((b,), math.inf, dtype=torch.float64)
    best_u = u.detach().cpu().clone()
    history = []
    was = encoder.training
    encoder.eval()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc="refine", unit="step")
    start = time.perf_counter()
    try:
        for k in range(steps + 1):
            last = k == steps
            with torch.set_grad_enabled(not last):
                y = render(u, x, sample_rate, stems=stems)
                loss = y.new_zeros(b)
                if e_ref is not None:
                    emb = _embed_segments(encoder, y)
                    cos = nn.functional.cosine_similarity(emb, e_ref, dim=1, eps=1e-8)
                    loss = loss + embedding_weight * (1.0 - cos)
                if f_ref is not None:
                    feats = audio_features(y, sample_rate).float()
                    loss = loss + feature_weight * feature_distance(feats, f_ref, sample_rate)
            values = loss.detach().double().cpu()
            history.append(values)
            better = values < best
            best = torch.where(better, values, best)
            best_u[better] = u.detach().cpu()[better]
            if last:
                break
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            with torch.no_grad():
                u.clamp_(0.0, 1.0)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(values.mean()):.4f}")
    finally:
        encoder.train(was)
        if bar is not None:
            bar.close()
    seconds = (time.perf_counter() - start) / steps
    return RefineResult(best_u, torch.stack(history), best, seconds)


def spread(audio: Tensor, window: int, count: int) -> Tensor:
    """``count`` evenly spaced windows of ``window`` samples of each item, end to end (the
    first at the start, the last at the end), or the whole item when it is not longer than
    ``count · window``: ``(batch, C, min(n, count · window))``."""
    x = _stereo(audio, "audio")
    for name, value in (("window", window), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    n = x.shape[-1]
    if n <= window * count:
        return x
    starts = torch.linspace(0, n - window, count).round().long()
    idx = (starts[:, None] + torch.arange(window)[None, :]).flatten().to(x.device)
    return x.index_select(-1, idx)


def excerpt(audio: Tensor, samples: int, *, hop: int | None = None) -> Tensor:
    """The loudest stretch of ``samples`` of each item (highest mean square, on a grid of
    ``hop``; default ``samples // 4``), or the whole item if it is shorter: ``(batch, C, n)``."""
    x = _stereo(audio, "audio")
    n = x.shape[-1]
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if n <= samples:
        return x
    hop = max(1, samples // 4) if hop is None else hop
    starts = torch.arange(0, n - samples + 1, hop)
    power = x.double().square().mean(dim=1)  # (batch, n)
    csum = torch.nn.functional.pad(power.cumsum(-1), (1, 0))
    energy = csum[:, starts + samples] - csum[:, starts]  # (batch, windows)
    best = starts[energy.argmax(dim=1)]
    idx = best[:, None] + torch.arange(samples)[None, :]
    return x.gather(2, idx[:, None, :].to(x.device).expand(-1, x.shape[1], -1))


# ------------------------------------------------------------------------------------------------
# Whole songs
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamTransfer:
    """The result of :func:`transfer_params`.

    Attributes:
        stems: the processed stems by name, ``(2, samples)`` float32 each.
        mix: their sum, ``(2, samples)``.
        sample_rate: the rate of both, the input's.
        params: ``(stems, 24)`` the normalized parameters applied, rows in ``stems``' order
            (for a preset: :meth:`cloner.presets.Preset.from_normalized`); ``(segments,
            stems, 24)`` for an interpolation over segments.
        predicted: ``(stems, 24)`` the controller's prediction before refinement (or the
            parameters given); ``(segments, stems, 24)`` for an interpolation over segments.
        refine: the :class:`RefineResult` when refined, else None.
        levels: ``{stem: {effect: dB}}``, the RMS-match gains of each chain on its stem
            (:func:`render_stages`; what a preset records for its pedalboard export); None for
            an interpolation over segments.
    """

    stems: dict[str, Tensor]
    mix: Tensor
    sample_rate: float
    params: Tensor
    predicted: Tensor
    refine: RefineResult | None = None
    levels: dict[str, dict[str, float]] | None = None


def _as_stem(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"stem {name!r} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2 or x.shape[0] not in (1, 2) or x.shape[1] < 16:
        raise ValueError(f"stem {name!r} must be (1 or 2, samples >= 16), got {tuple(x.shape)}")
    return x.float().expand(2, -1)


def _resample(x: Tensor, rate: float, target: int) -> Tensor:
    from fxencoder.audio import prepare_audio

    return prepare_audio(x, rate, target, x.device)


def apply_params(
    params: Tensor,
    stems: Mapping[str, Tensor],
    sample_rate: float,
    *,
    progress: bool = False,
    levels: dict[str, dict[str, float]] | None = None,
) -> dict[str, Tensor]:
    """Each stem through its chain (row ``i`` of ``params`` for the ``i``-th stem), whole.

    One stem at a time (item ``i`` of a batch equals item ``i`` alone, so this is the batched
    result with a quarter of the memory). Shorter stems are zero-padded to the longest. With
    ``levels`` (a dict), each stem's RMS-match gains are stored in it (:func:`render_stages`,
    in the same pass).
    """
    names = list(stems)
    if params.shape[0] != len(names):
        raise ValueError(f"{params.shape[0]} parameter rows for {len(names)} stems")
    items = {n: _as_stem(stems[n], n) for n in names}
    length = max(x.shape[-1] for x in items.values())
    out: dict[str, Tensor] = {}
    it: Any = enumerate(names)
    if progress:
        from tqdm import tqdm

        it = tqdm(list(it), desc="chains", unit="stem")
    chain = controller_chain(sample_rate)
    for i, n in it:
        x = torch.nn.functional.pad(items[n], (0, length - items[n].shape[-1]))[None]
        stem = [n] if n in STEMS else None
        with torch.no_grad():
            u = params[i : i + 1].float().to(x.device)
            manip = Manipulator.from_normalized(u, config=chain, stems=stem)
            y, measured = render_stages(manip.params, x)
        out[n] = y[0].cpu()
        if levels is not None:
            levels[n] = measured
    return out


def transfer_params(
    controller: ParamController | None,
    encoder: Any,
    stems: Mapping[str, Tensor],
    sample_rate: float,
    reference: Mapping[str, Tensor] | None,
    reference_rate: float | None,
    *,
    params: Tensor | None = None,
    reference_b: Mapping[str, Tensor] | None = None,
    reference_b_rate: float | None = None,
    weight: float | None = None,
    segments: int | None = None,
    refine_steps: int = 0,
    refine_lr: float = 0.05,
    refine_seconds: float = 3.0,
    refine_from: str = "prediction",
    embedding_weight: float = 1.0,
    feature_weight: float = 1.0,
    crossfade_seconds: float = 0.5,
    progress: bool = False,
) -> ParamTransfer:
    """Multitrack parametric transfer: one chain per stem, predicted, refined, applied whole.

    1. Parameters: ``params`` when given (e.g. a loaded preset), else the controller's
       prediction from the input stem and the reference's matching stem (:func:`predict`);
       with a second reference and ``weight``, the blend ``w · u_A + (1 − w) · u_B`` of the two
       predictions (the *parameters* are interpolated, so the result is one readable chain).
       With ``segments = N`` instead of ``weight``, an interpolation over time: segment ``i``
       of ``N`` equal parts of the song gets ``w_i · u_A + (1 − w_i) · u_B`` with
       ``w_i = 1 − i / (N − 1)`` (the cloner's scheme, :func:`cloner.inference.transfer`).
    2. With ``refine_steps`` > 0: :func:`refine` on the loudest ``refine_seconds`` of each
       input stem (resampled to the encoder's rate) towards the reference stem's embedding and
       features (of 16 evenly spaced encoder segments, as :func:`predict`'s), from the
       prediction (``refine_from="prediction"``) or from the neutral chain (``"neutral"``; no
       controller needed).
    3. Each chain is applied to its whole stem at the input's rate (:func:`apply_params`): no
       windows, so no seams. A silent stem stays silent. With ``segments``, each of the N
       chains is applied to the whole stem (so every compressor and reverb has its whole past
       and the RMS match is the whole stem's) and the N results are joined at the segment
       boundaries with raised-cosine cross-fades of ``crossfade_seconds``
       (:func:`join_segments`): N renders' cost.

    Args:
        controller: the controller (None with ``params`` or ``refine_from="neutral"``).
        encoder: the encoder it was trained with (None when nothing is predicted or refined).
        stems: ``{name: (1 or 2, samples)}`` at ``sample_rate`` (names from ``STEMS``).
        sample_rate: their rate in Hz.
        reference: ``{name: (1 or 2, samples)}`` with every name of ``stems`` (None with
            ``params`` and no refinement).
        reference_rate: its rate in Hz.
        params: ``(len(stems), 24)`` normalized parameters to apply instead of predicting.
        reference_b: a second reference for a blend (with ``weight``).
        reference_b_rate: its rate (default ``reference_rate``).
        weight: the blend weight in [0, 1].
        segments: the interpolation's number of segments (>= 2; with ``reference_b``, not
            with ``weight``, ``params`` or refinement).
        refine_steps: gradient steps of refinement (0: none).
        refine_lr: Adam's learning rate of the refinement.
        refine_seconds: length of the excerpt refined on.
        refine_from: ``"prediction"`` or ``"neutral"``.
        embedding_weight: weight of the embedding distance in the refinement.
        feature_weight: weight of the feature distance in the refinement.
        crossfade_seconds: the cross-fade between interpolation segments.
        progress: show progress bars.

    Raises:
        ValueError: no stems, missing reference stems, inconsistent options.
    """
    if not stems:
        raise ValueError("no stems to convert")
    names = list(stems)
    if refine_from not in ("prediction", "neutral"):
        raise ValueError(f"refine_from must be 'prediction' or 'neutral', got {refine_from!r}")
    if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or refine_steps < 0:
        raise ValueError(f"refine_steps must be an integer >= 0, got {refine_steps!r}")
    if segments is not None:
        if isinstance(segments, bool) or not isinstance(segments, int) or segments < 2:
            raise ValueError(f"interpolation needs segments >= 2, got {segments!r}")
        if reference_b is None or weight is not None:
            raise ValueError("segments needs a second reference (reference_b) and no weight")
        if params is not None or refine_steps > 0:
            raise ValueError(
                "an interpolation over segments predicts both ends: not with params or refinement"
            )
    elif (reference_b is None) != (weight is None):
        raise ValueError("a blend needs both a second reference (reference_b) and a weight")
    if weight is not None and not (isinstance(weight, (int, float)) and 0.0 <= weight <= 1.0):
        raise ValueError(f"weight must be in [0, 1], got {weight!r}")
    needs_reference = params is None or refine_steps > 0
    if needs_reference:
        if reference is None or reference_rate is None:
            raise ValueError("a reference (and its rate) is needed to predict or refine")
        missing = [n for n in names if n not in reference]
        if missing:
            raise ValueError(f"the reference has no stem(s) {missing} (it has {sorted(reference)})")
    if reference_b is not None:
        missing = [n for n in names if n not in reference_b]
        if missing:
            raise ValueError(f"the second reference has no stem(s) {missing}")
    stem_names = [n if n in STEMS else "other" for n in names]
    items = {n: _as_stem(stems[n], n) for n in names}
    length = max(x.shape[-1] for x in items.values())
    batch = torch.stack(
        [torch.nn.functional.pad(x, (0, length - x.shape[-1])) for x in items.values()]
    )
    space = ParamSpace(controller_chain(sample_rate))

    def refs(source: Mapping[str, Tensor]) -> Tensor:
        parts = [_as_stem(source[n], n) for n in names]
        n_max = max(p.shape[-1] for p in parts)
        return torch.stack([torch.nn.functional.pad(p, (0, n_max - p.shape[-1])) for p in parts])

    if params is not None:
        if not isinstance(params, Tensor) or params.shape != (len(names), len(space)):
            shape = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
            raise ValueError(f"params must be ({len(names)}, {len(space)}), got {shape}")
        u = params.detach().float().clamp(0.0, 1.0).cpu()
    elif refine_steps > 0 and refine_from == "neutral":
        u = neutral_normalized(space, len(names))
    else:
        if controller is None or encoder is None:
            raise ValueError("predicting parameters needs a controller and its encoder")
        ref = refs(reference)  # type: ignore[arg-type]
        u = predict(controller, encoder, batch, sample_rate, ref, reference_rate, stem_names)  # type: ignore[arg-type]
        if reference_b is not None:
            ref_b = refs(reference_b)
            rate_b = reference_rate if reference_b_rate is None else reference_b_rate
            u_b = predict(controller, encoder, batch, sample_rate, ref_b, rate_b, stem_names)  # type: ignore[arg-type]
            if segments is not None:
                w = 1.0 - torch.arange(segments, dtype=u.dtype) / (segments - 1)
                u = w[:, None, None] * u + (1.0 - w[:, None, None]) * u_b  # (N, stems, 24)
            else:
                u = weight * u + (1.0 - weight) * u_b  # type: ignore[operator]
    predicted = u.clone()
    result = None
    if refine_steps > 0:
        if encoder is None:
            raise ValueError("refinement needs the encoder")
        rate = int(encoder.config.sample_rate)
        device = next(encoder.parameters()).device
        x = _resample(batch, sample_rate, rate)
        x = excerpt(x, max(16, round(refine_seconds * rate)))
        ref = _resample(refs(reference), float(reference_rate), rate)  # type: ignore[arg-type]
        ref = spread(ref, int(encoder.config.segment_samples), 16)  # as predict's
        e_ref = encoder.embed(ref, rate) if embedding_weight > 0 else None
        f_ref = audio_features(ref.float(), rate) if feature_weight > 0 else None
        result = refine(
            u, x.to(device), rate, encoder, e_ref, f_ref, steps=refine_steps, lr=refine_lr,
            embedding_weight=embedding_weight, feature_weight=feature_weight, stems=stem_names,
            progress=progress,
        )  # fmt: skip
        u = result.params
    levels: dict[str, dict[str, float]] = {}
    parts = dict(zip(names, batch, strict=True))
    if segments is not None:
        # One stem at a time, one render at a time: memory is three copies of a stem.
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(names) * len(u), desc="chains", unit="render")

        def renders(i: int, n: str) -> Iterator[Tensor]:
            for u_i in u:
                yield apply_params(u_i[i : i + 1], {n: parts[n]}, sample_rate)[n]
                if bar is not None:
                    bar.update(1)

        fade = round(crossfade_seconds * sample_rate)
        try:
            out = {n: join_segments(renders(i, n), fade, len(u)) for i, n in enumerate(names)}
        finally:
            if bar is not None:
                bar.close()
        levels = None  # type: ignore[assignment]
    else:
        out = apply_params(u, parts, sample_rate, progress=progress, levels=levels)
    mix = torch.stack(list(out.values())).sum(dim=0)
    return ParamTransfer(out, mix, sample_rate, u, predicted, result, levels)


def join_segments(renders: Iterable[Tensor], crossfade: int, segments: int | None = None) -> Tensor:
    """Segment ``i`` of ``N`` equal parts from ``renders[i]``, joined with raised-cosine
    cross-fades.

    The boundaries are ``b_i = round(i · L / N)``; around each, over ``[b_i − h, b_i + h)``
    with ``h = min(crossfade // 2, shortest segment // 2)`` (an odd ``crossfade`` loses a
    sample), the output is ``y_{i-1} + f · (y_i − y_{i-1})`` with ``f = sin²(π t / 2)`` rising
    from 0 to 1 (amplitude-complementary, as :mod:`cloner.inference`'s windows; where two
    renders agree the result is theirs bit for bit). ``renders`` may be a generator: only the
    output, the previous render and the current one are held at a time.

    Args:
        renders: ``N`` tensors ``(channels, L)`` of one shape (a sequence, or any iterable
            with ``segments``).
        crossfade: ``2h`` in samples (0: hard cuts).
        segments: ``N`` (default ``len(renders)``).

    Returns:
        ``(channels, L)``.
    """
    from cloner.inference import _fade

    n = len(renders) if segments is None else int(segments)  # type: ignore[arg-type]
    if n < 1:
        raise ValueError("join_segments needs at least one render")
    it = iter(renders)
    prev = next(it, None)
    if prev is None:
        raise ValueError(f"join_segments needs {n} renders of one shape, got 0")
    length = prev.shape[-1]
    if length < n:
        raise ValueError(f"{length} samples cannot hold {n} segments")
    bounds = [round(k * length / n) for k in range(n + 1)]
    shortest = min(b - a for a, b in itertools.pairwise(bounds))
    h = min(max(int(crossfade), 0) // 2, shortest // 2)
    fade = _fade(2 * h, "cosine").to(prev) if h > 0 else None
    out = prev.clone()
    count = 1
    for i, cur in enumerate(it, start=1):
        count += 1
        if cur.shape != out.shape or i >= n:
            raise ValueError(f"join_segments needs {n} renders of one shape")
        b = bounds[i]
        out[..., b + h :] = cur[..., b + h :]
        if fade is not None:
            out[..., b - h : b + h] = torch.lerp(
                prev[..., b - h : b + h], cur[..., b - h : b + h], fade
            )
        prev = cur
    if count != n:
        raise ValueError(f"join_segments needs {n} renders of one shape, got {count}")
    return out


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------
def save_controller(
    model: ParamController, path: str | Path, *, half: bool = False, **extra: Any
) -> None:
    """Write an inference checkpoint ``{"format": "mixfx.params/1", "config", "state_dict",
    **extra}`` atomically (``encoder=cloner.api.encoder_record(...)`` names the encoder;
    ``half`` stores floating tensors as float16, loaded back as float32)."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model.state_dict().items()
    }
    obj = {"format": FORMAT, "config": asdict(model.config), "state_dict": state, **extra}
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def read_controller_info(path: str | Path) -> dict[str, Any]:
    """A controller checkpoint's entries other than the weights and the training state.

    Raises:
        ValueError: a missing or unreadable file, or not a controller checkpoint.
    """
    return _controller_info(_read(path))


def _controller_info(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in _SKIP}


_SKIP = {"state_dict", "optimizer", "rng", "rng_ranks"}


#: Shipped controllers: ``{name: {"file", "sha256"}}`` beside the cloners' manifest.
CONTROLLER_MANIFEST = Path(__file__).resolve().parent / "weights" / "controllers.json"
_CONTROLLER_HINT = (
    "train one with `mixfx train-params --data DIR --out RUN` and pass its checkpoint "
    "(--controller RUN/last.pt)"
)


def _read(path: str | Path) -> Mapping[str, Any]:
    from cloner.api import check_digest, resolve_shipped

    p, expected = resolve_shipped(path, CONTROLLER_MANIFEST, "controller", _CONTROLLER_HINT)
    check_digest(p, expected)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read controller checkpoint {p}: {err}") from None
    if not isinstance(obj, Mapping) or obj.get("format") not in (FORMAT, TRAIN_FORMAT):
        fmt = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(
            f"{p} is not a parameter-controller checkpoint (format {fmt!r}; expected {FORMAT!r}"
            f" or {TRAIN_FORMAT!r})"
        )
    return obj


def load_controller(path: str | Path, device: str | torch.device | None = None) -> ParamController:
    """A controller in eval mode from an inference or a training checkpoint.

    Raises:
        ValueError: as :func:`read_controller_info`, or weights that do not fit the config.
    """
    return _build_controller(path, _read(path), device)


def load_controller_with_info(
    path: str | Path, device: str | torch.device | None = None
) -> tuple[ParamController, dict[str, Any]]:
    """:func:`load_controller` and :func:`read_controller_info` from one read of the file."""
    obj = _read(path)
    return _build_controller(path, obj, device), _controller_info(obj)


def _build_controller(
    path: str | Path, obj: Mapping[str, Any], device: str | torch.device | None
) -> ParamController:
    try:
        config = ParamControllerConfig.from_dict(dict(obj["config"]))
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: bad controller config: {err}") from None
    model = ParamController(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"{path}: the weights do not fit the config: {err}") from None
    return model.to(device or "cpu").eval()


def load_encoder_for_controller(
    info: Mapping[str, Any],
    encoder: str | Path | None = None,
    device: str | torch.device | None = None,
) -> Any:
    """The encoder a controller was trained with (recorded in its checkpoint), or ``encoder``
    checked against it.

    Args:
        info: :func:`read_controller_info` of the controller's checkpoint.
        encoder: an encoder name or file to use instead (a warning if its SHA-256 differs from
            the recorded one).
        device: where the encoder goes.

    Raises:
        ValueError: none given and none recorded (or the recorded file is gone or changed), or
            an embedding size other than the controller's ``embed_dim``.
    """
    from cloner.api import load_encoder_for

    return load_encoder_for(info, encoder, device, model_name="controller", dim_key="embed_dim")
