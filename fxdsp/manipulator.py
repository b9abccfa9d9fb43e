"""Random effect chains, drawn first and applied second, batched on the audio's device.

The reference FXmanipulator (``REFERENCE.md``) processes each item through::

    [EQ, Compressor] in a random order  →  [Panner, Imager] in a random order
        →  Reverb (parallel send)  →  Gain (with polarity flips)

every effect switched on with its own probability (the reverb's depends on the stem), every
processor except the gain followed by an RMS match to its input level. Here the randomness and
the processing are split (a positive pair is one draw applied to two contents)::

    params = sample_params(32, stems=["vocals"] * 32, generator=torch.Generator().manual_seed(0))
    y = Manipulator(params)(audio)          # (32, 1 or 2, T) → (32, 2, T)
    print(params.describe(0))

:func:`sample_params` draws every random choice (on the CPU, from an optional
``torch.Generator``, then moves them to ``device``, so a seed gives the same draw on every device).
:class:`Manipulator` applies a draw to a batch with no loop over items: for each of the chain's
slots it gathers the items whose effect is on in that slot (``torch.nonzero`` of the on-mask),
runs the effect on that sub-batch only and scatters the result back (``index_copy``,
differentiable). Items therefore pay only for their own effects, and item ``i`` of a batch equals
item ``i`` processed alone (the reverb uses one impulse-response length for every item, derived
from the config's maximum rt60 and predelay, so that no item depends on the others).

Choices:

- A mono input is duplicated to stereo first (``L = R = x``), so that pan and imager apply to
  every item and the output is always ``(batch, 2, samples)``.
- RMS match: the reference rescales every processor's output to the RMS of that processor's
  input. By induction every such input has the level of the chain's input, so the match uses the
  chain input's RMS (``out · rms(x) / max(rms(out), eps)``, RMS over channels and samples),
  computed once; this is the same function with one reduction fewer per effect.
- The polarity flip is part of the gain stage: it happens only on items whose gain is on.
- ``stems=None`` means the stem "other" (``ChainConfig.default_stem``): reverb probability 0.7.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor, nn

from fxdsp import functional as F
from fxdsp._checks import check_audio
from fxdsp.chain_config import EFFECTS, STEMS, ChainConfig
from fxdsp.functional.filters import DEFAULT_BAND_TYPES

__all__ = [
    "EFFECTS",
    "GROUPS",
    "NORMALIZED_LAYOUT",
    "STEMS",
    "FxParams",
    "Manipulator",
    "sample_params",
]

#: The two shuffled groups, in chain order; ``FxParams.order1``/``order2`` index these tuples.
GROUPS: tuple[tuple[str, str], tuple[str, str]] = (("eq", "compressor"), ("pan", "imager"))

_EQ_FREQ_KEYS = (
    "eq_low_shelf_freq_hz",
    "eq_peak1_freq_hz",
    "eq_peak2_freq_hz",
    "eq_peak3_freq_hz",
    "eq_high_shelf_freq_hz",
)
_BAND_NAMES = ("low_shelf", "peak1", "peak2", "peak3", "high_shelf")
_RMS_EPS = 1e-8

#: Layout of :meth:`Manipulator.from_normalized`'s ``(batch, 24)`` input: column → (FxParams
#: field, band index or None, config range). Each column maps ``u ∈ [0, 1]`` linearly onto its
#: range: EQ gains of the 5 bands, EQ frequencies of the 5 bands, Q of the 3 peaks, compressor
#: threshold, ratio, attack, release, pan position, imager width, reverb rt60, predelay,
#: damping, dry weight, gain.
NORMALIZED_LAYOUT: tuple[tuple[str, int | None, str], ...] = (
    *((("eq_gain_db", b, "eq_gain_db")) for b in range(5)),
    *((("eq_freq_hz", b, _EQ_FREQ_KEYS[b])) for b in range(5)),
    *((("eq_q", b, "eq_peak_q")) for b in (1, 2, 3)),
    ("threshold_db", None, "compressor_threshold_db"),
    ("ratio", None, "compressor_ratio"),
    ("attack_ms", None, "compressor_attack_ms"),
    ("release_ms", None, "compressor_release_ms"),
    ("pan", None, "pan_position"),
    ("width", None, "imager_width"),
    ("rt60_s", None, "reverb_rt60_s"),
    ("predelay_ms", None, "reverb_predelay_ms"),
    ("damping", None, "reverb_damping"),
    ("reverb_dry", None, "reverb_dry"),
    ("gain_db", None, "gain_db"),
)


@dataclass
class FxParams:
    """One draw of the random chain for a batch: every field is a ``(batch, …)`` tensor.

    Attributes:
        stem: ``(B,)`` int64, index into ``STEMS``.
        active: ``(B, 6)`` bool, which effects are on, columns in ``EFFECTS`` order.
        order1: ``(B, 2)`` int64, a permutation of ``GROUPS[0]`` = (eq, compressor): item ``i``
            runs ``GROUPS[0][order1[i, 0]]`` first.
        order2: ``(B, 2)`` int64, the same for ``GROUPS[1]`` = (pan, imager).
        eq_gain_db: ``(B, 5)`` band gains, dB (low shelf, 3 peaks, high shelf).
        eq_freq_hz: ``(B, 5)`` band frequencies, Hz.
        eq_q: ``(B, 5)`` band Q.
        threshold_db, ratio, attack_ms, release_ms, knee_db: ``(B,)`` compressor (dB, ratio,
            ms, ms, dB).
        pan: ``(B,)`` position in [−1, 1]; pan_law: ``(B,)`` int64 index into
            :data:`fxdsp.functional.PAN_LAWS`.
        width: ``(B,)`` imager width in [0, 2].
        rt60_s, predelay_ms, damping: ``(B,)`` reverb (s, ms, 0..1).
        reverb_dry: ``(B,)`` dry weight ``w`` of the send: ``out = w·x + (1 − w)·wet``.
        reverb_seed: ``(B,)`` int64, the reverb's noise seed.
        gain_db: ``(B,)`` dB; invert_polarity: ``(B,)`` bool (only where the gain is on).
        sample_rate: Hz (not batched).
        ir_length: reverb impulse-response length in samples (not batched).

    Continuous fields may be set to tensors that require grad (the Manipulator is
    differentiable with respect to them).
    """

    stem: Tensor
    active: Tensor
    order1: Tensor
    order2: Tensor
    eq_gain_db: Tensor
    eq_freq_hz: Tensor
    eq_q: Tensor
    threshold_db: Tensor
    ratio: Tensor
    attack_ms: Tensor
    release_ms: Tensor
    knee_db: Tensor
    pan: Tensor
    pan_law: Tensor
    width: Tensor
    rt60_s: Tensor
    predelay_ms: Tensor
    damping: Tensor
    reverb_dry: Tensor
    reverb_seed: Tensor
    gain_db: Tensor
    invert_polarity: Tensor
    sample_rate: float = 44100.0
    ir_length: int = 2

    def __post_init__(self) -> None:
        batch = None
        for name, value in self._tensor_items():
            if not isinstance(value, Tensor) or value.ndim < 1:
                raise ValueError(f"FxParams.{name} must be a (batch, ...) tensor")
            if batch is None:
                batch = value.shape[0]
            elif value.shape[0] != batch:
                raise ValueError(
                    f"FxParams.{name} has batch {value.shape[0]}, but stem has {batch}"
                )
        if self.active.shape[1:] != (len(EFFECTS),) or self.active.dtype != torch.bool:
            raise ValueError(f"FxParams.active must be a (batch, {len(EFFECTS)}) bool tensor")

    @classmethod
    def tensor_fields(cls) -> tuple[str, ...]:
        """Names of the batched fields."""
        return tuple(f.name for f in fields(cls) if f.name not in ("sample_rate", "ir_length"))

    @classmethod
    def continuous_fields(cls) -> tuple[str, ...]:
        """Names of the floating-point fields (the ones that can carry gradients)."""
        discrete = {"stem", "active", "order1", "order2", "pan_law", "reverb_seed"}
        return tuple(n for n in cls.tensor_fields() if n not in discrete | {"invert_polarity"})

    def _tensor_items(self) -> Iterator[tuple[str, Tensor]]:
        for name in self.tensor_fields():
            yield name, getattr(self, name)

    def _map(self, fn: Callable[[Tensor], Tensor]) -> FxParams:
        return replace(self, **{name: fn(value) for name, value in self._tensor_items()})

    def __len__(self) -> int:
        return int(self.stem.shape[0])

    @property
    def device(self) -> torch.device:
        return self.stem.device

    def to(self, device: torch.device | str) -> FxParams:
        """The same draw on ``device``."""
        return self._map(lambda t: t.to(device))

    def __getitem__(self, index: int | slice | Tensor | Sequence[int]) -> FxParams:
        """Items ``index`` (an int keeps a batch of 1), as a new :class:`FxParams`."""
        if isinstance(index, bool):
            raise ValueError("FxParams cannot be indexed by a bool")
        if isinstance(index, int):
            n = len(self)
            if not -n <= index < n:
                raise IndexError(f"index {index} out of range for a batch of {n}")
            index = slice(index % n, index % n + 1)
        elif not isinstance(index, (slice, Tensor)):
            index = torch.as_tensor(list(index), dtype=torch.int64)
        if isinstance(index, Tensor):
            index = index.to(self.device)
        return self._map(lambda t: t[index])

    @staticmethod
    def cat(items: Sequence[FxParams]) -> FxParams:
        """Concatenate draws along the batch (same sample rate and IR length)."""
        items = list(items)
        if not items:
            raise ValueError("FxParams.cat needs at least one FxParams")
        first = items[0]
        for other in items[1:]:
            if (other.sample_rate, other.ir_length) != (first.sample_rate, first.ir_length):
                raise ValueError(
                    "FxParams.cat: sample_rate/ir_length differ: "
                    f"{(first.sample_rate, first.ir_length)} vs "
                    f"{(other.sample_rate, other.ir_length)}"
                )
        return replace(
            first,
            **{n: torch.cat([getattr(p, n) for p in items]) for n in FxParams.tensor_fields()},
        )

    def effect_on(self, name: str) -> Tensor:
        """``(B,)`` bool: where effect ``name`` is on."""
        if name not in EFFECTS:
            raise ValueError(f"unknown effect {name!r}; expected one of {EFFECTS}")
        return self.active[:, EFFECTS.index(name)]

    def chain(self, i: int) -> list[str]:
        """The effects that item ``i`` runs, in order."""
        act = self.active[i].tolist()
        on = dict(zip(EFFECTS, act, strict=True))
        names = [GROUPS[0][k] for k in self.order1[i].tolist()]
        names += [GROUPS[1][k] for k in self.order2[i].tolist()]
        names += ["reverb", "gain"]
        return [n for n in names if on[n]]

    def describe(self, i: int | None = None) -> str:
        """Readable text of item ``i`` (every item if None): effects in order, values, units."""
        if i is None:
            return "\n".join(self.describe(k) for k in range(len(self)))
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a batch of {n}")
        i %= n

        def v(t: Tensor, *idx: int) -> float:
            return float(t[(i, *idx)].detach())

        lines = [f"item {i} (stem {STEMS[int(self.stem[i])]}):"]
        for k, name in enumerate(self.chain(i), start=1):
            if name == "eq":
                bands = ", ".join(
                    f"{_BAND_NAMES[b]} {v(self.eq_freq_hz, b):.0f} Hz "
                    f"{v(self.eq_gain_db, b):+.1f} dB Q {v(self.eq_q, b):.2f}"
                    for b in range(self.eq_gain_db.shape[1])
                )
                text = f"eq: {bands}"
            elif name == "compressor":
                text = (
                    f"compressor: threshold {v(self.threshold_db):.1f} dB, ratio "
                    f"{v(self.ratio):.1f}:1, attack {v(self.attack_ms):.1f} ms, release "
                    f"{v(self.release_ms):.0f} ms, knee {v(self.knee_db):.1f} dB"
                )
            elif name == "pan":
                law = F.PAN_LAWS[int(self.pan_law[i])]
                text = f"pan: position {v(self.pan):+.2f} (−1 left, +1 right), law {law}"
            elif name == "imager":
                text = f"imager: width {v(self.width):.2f} (0 mono, 1 unchanged, 2 all side)"
            elif name == "reverb":
                text = (
                    f"reverb: rt60 {v(self.rt60_s):.2f} s, predelay {v(self.predelay_ms):.1f} ms,"
                    f" damping {v(self.damping):.2f}, dry {v(self.reverb_dry):.2f} (wet "
                    f"{1 - v(self.reverb_dry):.2f}), seed {int(self.reverb_seed[i])}"
                )
            else:
                flip = ", polarity inverted" if bool(self.invert_polarity[i]) else ""
                text = f"gain: {v(self.gain_db):+.1f} dB{flip}"
            lines.append(f"  {k}. {text}")
        if len(lines) == 1:
            lines.append("  (no effect: identity)")
        off = [e for e, a in zip(EFFECTS, self.active[i].tolist(), strict=True) if not a]
        if off:
            lines.append(f"  off: {', '.join(off)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        n = len(self)
        counts = torch.bincount(self.stem.detach().cpu(), minlength=len(STEMS)).tolist()
        stems = ", ".join(f"{s}={c}" for s, c in zip(STEMS, counts, strict=True) if c)
        on = self.active.detach().cpu().sum(dim=0).tolist()
        effects = ", ".join(f"{e} {c}/{n}" for e, c in zip(EFFECTS, on, strict=True))
        return (
            f"FxParams(batch={n}, stems: {stems}, on: {effects}, sample_rate="
            f"{self.sample_rate:g}, ir_length={self.ir_length}, device={self.device})"
        )

    def normalized(self, config: ChainConfig | None = None) -> Tensor:
        """The continuous parameters as ``(B, 24)`` in [0, 1] (layout: ``NORMALIZED_LAYOUT``).

        Constant ranges (``low == high``) map to 0. Inverse of :meth:`Manipulator.from_normalized`
        for the continuous values.
        """
        cfg = config or ChainConfig()
        cols = []
        for field_name, band, key in NORMALIZED_LAYOUT:
            t = getattr(self, field_name)
            t = t[:, band] if band is not None else t
            lo, hi = cfg.ranges[key]
            cols.append((t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t))
        return torch.stack(cols, dim=1)


def _uniform(
    batch: int, rng: tuple[float, float], generator: torch.Generator | None, cols: int = 0
) -> Tensor:
    shape = (batch, cols) if cols else (batch,)
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    lo, hi = rng
    return lo + u * (hi - lo)


def _stem_indices(stems: Sequence[str] | str | Tensor | None, batch: int, default: str) -> Tensor:
    if stems is None:
        return torch.full((batch,), STEMS.index(default), dtype=torch.int64)
    if isinstance(stems, str):
        stems = [stems] * batch
    if isinstance(stems, Tensor):
        if stems.dtype == torch.bool or stems.is_floating_point() or stems.ndim != 1:
            raise ValueError(
                f"stems must be a (batch,) integer tensor, got {stems.dtype} "
                f"shape {tuple(stems.shape)}"
            )
        idx = stems.detach().cpu().to(torch.int64)
        if bool(((idx < 0) | (idx >= len(STEMS))).any()):
            raise ValueError(f"stem indices must be in [0, {len(STEMS) - 1}], got {idx.tolist()}")
    else:
        names = list(stems)
        unknown = sorted({s for s in names if s not in STEMS})
        if unknown:
            raise ValueError(f"unknown stem name(s) {unknown}; expected one of {STEMS}")
        idx = torch.tensor([STEMS.index(s) for s in names], dtype=torch.int64)
    if idx.shape[0] != batch:
        raise ValueError(f"stems has {idx.shape[0]} entries but batch_size is {batch}")
    return idx


def sample_params(
    batch_size: int,
    *,
    stems: Sequence[str] | str | Tensor | None = None,
    probabilities: Mapping[str, float | Mapping[str, float]] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    config: ChainConfig | None = None,
    dtype: torch.dtype = torch.float32,
) -> FxParams:
    """Draw every random choice of the chain for ``batch_size`` items.

    For each item: which effects are on (independent Bernoulli draws with the effect's
    probability; the reverb's depends on the stem), the order inside each shuffled group (each
    of the two orders with probability 1/2), every continuous parameter (uniform in its range,
    see :class:`~fxdsp.chain_config.ChainConfig`; EQ bands: gains U(−15, 15) dB, low shelf
    30–200 Hz Q 0.707, peaks 200–1000 / 1000–3000 / 3000–8000 Hz Q U(0.1, 2), high shelf
    5–10 kHz Q 0.707; compressor hard knee, threshold U(−80, −5) dB, ratio U(4, 40), attack
    U(1, 20) ms, release U(50, 500) ms; pan U(−1, 1) with a law drawn uniformly from
    ``PAN_LAWS``; width U(0, 2); reverb rt60 U(0.3, 3) s, predelay U(0, 40) ms, damping
    U(0, 1), dry weight U(0, 0.5); gain U(−6, 9) dB, polarity inverted with probability 0.5),
    and the reverb's noise seed. All values are drawn for every item whether its effect is on or
    not, in a fixed sequence, so a seed gives the same draw whatever the probabilities.

    Draws are made on the CPU (from ``generator``, or torch's global generator) and then moved
    to ``device``, so a seeded generator gives the same parameters on every device.

    Args:
        batch_size: number of items, >= 1.
        stems: the stem of each item: a name, a list of ``batch_size`` names from ``STEMS``, or
            a ``(batch,)`` integer tensor indexing ``STEMS``. None: every item is
            ``config.default_stem`` ("other", reverb probability 0.7).
        probabilities: overrides by effect name (``EFFECTS``, plus ``"invert_polarity"``):
            ``{"eq": 1.0, "compressor": 1.0, "pan": 0.0, "imager": 1.0, "reverb": 0.0,
            "gain": 1.0}``. A number for ``"reverb"`` applies to every stem; a ``{stem: p}``
            mapping overrides those stems.
        ranges: overrides of the config's ranges, ``{name: (low, high)}`` (names in
            ``fxdsp.chain_config.REFERENCE_RANGES``).
        generator: a CPU ``torch.Generator`` for reproducible draws.
        device: where the returned tensors live (default CPU).
        config: the base :class:`ChainConfig` (default: the reference preset).
        dtype: floating dtype of the continuous parameters.

    Returns:
        An :class:`FxParams` of ``batch_size`` items.

    Raises:
        ValueError: a bad batch size, an unknown effect, stem or range name, a probability
            outside [0, 1], an invalid range, stems of the wrong length.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    cfg = config if config is not None else ChainConfig()
    if probabilities is not None or ranges is not None:
        cfg = cfg.replace(probabilities=probabilities, ranges=ranges)
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
    b, g, r = batch_size, generator, cfg.ranges
    stem = _stem_indices(stems, b, cfg.default_stem)

    # Fixed draw sequence (do not reorder: seeds would change meaning).
    p_on = torch.tensor(
        [
            [cfg.probabilities.get(e, 0.0) for e in EFFECTS],
        ],
        dtype=torch.float64,
    ).repeat(b, 1)
    rev_p = torch.tensor([cfg.reverb_probabilities[s] for s in STEMS], dtype=torch.float64)
    p_on[:, EFFECTS.index("reverb")] = rev_p[stem]
    active = torch.rand((b, len(EFFECTS)), generator=g, dtype=torch.float64) < p_on
    swap = torch.rand((b, 2), generator=g, dtype=torch.float64) < 0.5  # (B, groups)
    first = swap.to(torch.int64)
    order1 = torch.stack([first[:, 0], 1 - first[:, 0]], dim=1)
    order2 = torch.stack([first[:, 1], 1 - first[:, 1]], dim=1)

    eq_gain = _uniform(b, r["eq_gain_db"], g, cols=5)
    eq_freq = torch.stack([_uniform(b, r[k], g) for k in _EQ_FREQ_KEYS], dim=1)
    peak_q = _uniform(b, r["eq_peak_q"], g, cols=3)
    shelf_q = torch.full((b, 1), r["eq_shelf_q"][0], dtype=torch.float64)
    shelf_q_hi = torch.full((b, 1), r["eq_shelf_q"][1], dtype=torch.float64)
    eq_q = torch.cat([shelf_q, peak_q, shelf_q_hi], dim=1)
    if r["eq_shelf_q"][1] > r["eq_shelf_q"][0]:
        eq_q[:, [0, 4]] = _uniform(b, r["eq_shelf_q"], g, cols=2)

    values = {
        "threshold_db": _uniform(b, r["compressor_threshold_db"], g),
        "ratio": _uniform(b, r["compressor_ratio"], g),
        "attack_ms": _uniform(b, r["compressor_attack_ms"], g),
        "release_ms": _uniform(b, r["compressor_release_ms"], g),
        "knee_db": _uniform(b, r["compressor_knee_db"], g),
        "pan": _uniform(b, r["pan_position"], g),
        "width": _uniform(b, r["imager_width"], g),
        "rt60_s": _uniform(b, r["reverb_rt60_s"], g),
        "predelay_ms": _uniform(b, r["reverb_predelay_ms"], g),
        "damping": _uniform(b, r["reverb_damping"], g),
        "reverb_dry": _uniform(b, r["reverb_dry"], g),
        "gain_db": _uniform(b, r["gain_db"], g),
    }
    pan_law = torch.randint(0, len(F.PAN_LAWS), (b,), generator=g)
    reverb_seed = torch.randint(0, 2**62, (b,), generator=g)
    invert = torch.rand((b,), generator=g, dtype=torch.float64) < cfg.invert_polarity_probability

    params = FxParams(
        stem=stem,
        active=active,
        order1=order1,
        order2=order2,
        eq_gain_db=eq_gain.to(dtype),
        eq_freq_hz=eq_freq.to(dtype),
        eq_q=eq_q.to(dtype),
        pan_law=pan_law,
        reverb_seed=reverb_seed,
        invert_polarity=invert,
        sample_rate=cfg.sample_rate,
        ir_length=cfg.ir_length,
        **{k: v.to(dtype) for k, v in values.items()},
    )
    return params.to(device) if device is not None else params


def _rms_match(out: Tensor, level: Tensor) -> Tensor:
    """``out · level / max(rms(out), eps)`` per item (``level``: ``(B,)``)."""
    ratio = level / F.rms(out).clamp_min(_RMS_EPS)
    return out * ratio[:, None, None]


class Manipulator(nn.Module):
    """Apply a drawn random chain (:class:`FxParams`) to a batch of audio.

    Per item, as drawn: (1) EQ and compressor in the item's order, (2) pan and imager in the
    item's order, (3) the reverb as a parallel send ``w·x + (1 − w)·wet``, (4) the gain with its
    polarity flip; effects that are off are skipped. Every processor but the gain is followed by
    an RMS match to the chain input's level (equal to the processor's input level, see the
    module doc). Each effect runs only on the sub-batch of items that have it on in that slot
    (gathered with ``torch.nonzero``, scattered back with ``index_copy``); no Python loop over
    items. The same params on the same audio give a bit-identical output on one device.

    Args:
        params: the draw, one item per audio item (moved to the audio's device on call).
    """

    def __init__(self, params: FxParams) -> None:
        super().__init__()
        if not isinstance(params, FxParams):
            raise ValueError(f"params must be an FxParams, got {type(params).__name__}")
        self.params = params

    @classmethod
    def from_normalized(
        cls,
        u: Tensor,
        *,
        config: ChainConfig | None = None,
        pan_law: int | Tensor = 0,
        reverb_seed: int | Tensor = 0,
        stems: Sequence[str] | str | Tensor | None = None,
    ) -> Manipulator:
        """A chain driven by a controller's ``[0, 1]`` output, every effect on, fixed order.

        The order is the reference's: EQ, compressor, pan, imager, reverb, gain. Column ``j`` of
        ``u`` maps linearly onto the config range named in ``NORMALIZED_LAYOUT[j]`` (values are
        clamped to [0, 1]): 0–4 EQ gains (low shelf, peak 1–3, high shelf), 5–9 EQ frequencies,
        10–12 peak Qs, 13 threshold, 14 ratio, 15 attack, 16 release, 17 pan, 18 width, 19 rt60,
        20 predelay, 21 damping, 22 reverb dry weight, 23 gain. The shelf Qs and the knee are the
        config's lower bounds; the polarity is never inverted. Differentiable w.r.t. ``u``.

        Args:
            u: ``(batch, 24)`` tensor (the layout above; ``len(NORMALIZED_LAYOUT)`` = 24 columns).
            config: ranges (default: the reference preset).
            pan_law: index into ``PAN_LAWS`` (int or ``(batch,)``), default constant power.
            reverb_seed: the reverb's noise seed (int or ``(batch,)``).
            stems: recorded stems (as in :func:`sample_params`).

        Raises:
            ValueError: ``u`` not ``(batch, 24)`` floating point.
        """
        cfg = config or ChainConfig()
        n_cols = len(NORMALIZED_LAYOUT)
        if not isinstance(u, Tensor) or u.ndim != 2 or u.shape[1] != n_cols:
            shape = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
            raise ValueError(f"normalized parameters must be (batch, {n_cols}), got {shape}")
        if not u.is_floating_point():
            raise ValueError(f"normalized parameters must be floating point, got {u.dtype}")
        b, dev = u.shape[0], u.device
        u = u.clamp(0.0, 1.0)
        phys: dict[str, Any] = {}
        for j, (name, _band, key) in enumerate(NORMALIZED_LAYOUT):
            lo, hi = cfg.ranges[key]
            phys.setdefault(name, []).append(lo + u[:, j] * (hi - lo))
        shelf_q = torch.full((b,), cfg.ranges["eq_shelf_q"][0], dtype=u.dtype, device=dev)
        peaks = phys.pop("eq_q")
        eq_q = torch.stack([shelf_q, *peaks, shelf_q], dim=1)
        scalars = {k: v[0] for k, v in phys.items() if k not in ("eq_gain_db", "eq_freq_hz")}

        def ints(value: int | Tensor) -> Tensor:
            t = torch.as_tensor(value, dtype=torch.int64, device=dev)
            return t.expand(b).clone() if t.ndim == 0 else t

        params = FxParams(
            stem=_stem_indices(stems, b, cfg.default_stem).to(dev),
            active=torch.ones((b, len(EFFECTS)), dtype=torch.bool, device=dev),
            order1=torch.tensor([[0, 1]], device=dev).expand(b, 2).clone(),
            order2=torch.tensor([[0, 1]], device=dev).expand(b, 2).clone(),
            eq_gain_db=torch.stack(phys["eq_gain_db"], dim=1),
            eq_freq_hz=torch.stack(phys["eq_freq_hz"], dim=1),
            eq_q=eq_q,
            knee_db=torch.full(
                (b,), cfg.ranges["compressor_knee_db"][0], dtype=u.dtype, device=dev
            ),
            pan_law=ints(pan_law),
            reverb_seed=ints(reverb_seed),
            invert_polarity=torch.zeros((b,), dtype=torch.bool, device=dev),
            sample_rate=cfg.sample_rate,
            ir_length=cfg.ir_length,
            **scalars,
        )
        return cls(params)

    def describe(self, i: int | None = None) -> str:
        """Readable text of the draw (item ``i``, or every item)."""
        return self.params.describe(i)

    def extra_repr(self) -> str:
        return repr(self.params)

    # Each effect on a sub-batch ``x`` with the sub-batch's params ``p``.
    def _eq(self, x: Tensor, p: FxParams) -> Tensor:
        return F.parametric_eq(
            x, p.sample_rate, p.eq_gain_db, p.eq_freq_hz, p.eq_q, DEFAULT_BAND_TYPES
        )

    def _compressor(self, x: Tensor, p: FxParams) -> Tensor:
        return F.compressor(
            x, p.sample_rate, p.threshold_db, p.ratio, p.attack_ms, p.release_ms, p.knee_db
        )

    def _pan(self, x: Tensor, p: FxParams) -> Tensor:
        return F.pan(x, p.pan, p.pan_law)

    def _imager(self, x: Tensor, p: FxParams) -> Tensor:
        return F.stereo_imager(x, p.width)

    def _reverb(self, x: Tensor, p: FxParams) -> Tensor:
        return F.reverb(
            x,
            p.sample_rate,
            p.rt60_s,
            p.predelay_ms,
            p.damping,
            1.0 - p.reverb_dry,
            p.reverb_seed,
            ir_length=p.ir_length,
        )

    def _gain(self, x: Tensor, p: FxParams) -> Tensor:
        return F.gain(x, p.gain_db, p.invert_polarity)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the chain.

        Args:
            x: audio ``(batch, 1 or 2, samples)``, ``batch == len(params)``.

        Returns:
            ``(batch, 2, samples)`` (a mono input is duplicated to stereo first), dtype and
            device of ``x``.

        Raises:
            ValueError: malformed audio, more than 2 channels, a batch size different from the
                params'.
        """
        check_audio(x, channels=(1, 2))
        p = self.params
        if x.shape[0] != len(p):
            raise ValueError(f"the audio has batch {x.shape[0]} but the params have {len(p)} items")
        if p.device != x.device:
            p = p.to(x.device)
        if x.shape[1] == 1:
            x = x.expand(-1, 2, -1)
        level = F.rms(x)
        active = p.active.cpu()
        slots: list[tuple[str, Tensor]] = []
        for order, group in ((p.order1.cpu(), GROUPS[0]), (p.order2.cpu(), GROUPS[1])):
            for slot in range(2):
                for k, name in enumerate(group):
                    slots.append((name, active[:, EFFECTS.index(name)] & (order[:, slot] == k)))
        slots.append(("reverb", active[:, EFFECTS.index("reverb")]))
        slots.append(("gain", active[:, EFFECTS.index("gain")]))

        y = x
        for name, mask in slots:
            idx_cpu = torch.nonzero(mask).flatten()
            n = idx_cpu.numel()
            if n == 0:
                continue
            effect = getattr(self, f"_{name}")
            if n == len(p):
                out = effect(y, p)
                y = out if name == "gain" else _rms_match(out, level)
                continue
            idx = idx_cpu.to(x.device)
            sub = y.index_select(0, idx)
            out = effect(sub, p[idx])
            if name != "gain":
                out = _rms_match(out, level.index_select(0, idx))
            if y is not x and not (
                torch.is_grad_enabled() and (y.requires_grad or out.requires_grad)
            ):
                y.index_copy_(0, idx, out)  # y is ours and no graph needs it: skip a full copy
            else:
                y = y.index_copy(0, idx, out)
        if y is x:
            y = x.clone()
        return y
