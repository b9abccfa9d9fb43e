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
- Parameters have the registry's one name (:mod:`fxdsp.registry`): ``params["compressor.ratio"]``
  is the argument ``ratio`` of :func:`fxdsp.functional.compressor`; ``params.effect("reverb")``
  is the keyword arguments of that effect's function for the batch.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from fxdsp import functional as F
from fxdsp._checks import check_audio
from fxdsp.chain_config import ChainConfig
from fxdsp.registry import EFFECTS, EQ_BANDS, FAMILIES, STEMS, qualified_names
from fxdsp.space import ParamSpace

__all__ = [
    "EFFECTS",
    "GROUPS",
    "STEMS",
    "FxParams",
    "Manipulator",
    "sample_params",
]

#: The two shuffled groups, in chain order; ``FxParams.order1``/``order2`` index these tuples.
GROUPS: tuple[tuple[str, str], tuple[str, str]] = (("eq", "compressor"), ("pan", "imager"))

#: Discrete per-item values of the chain, by qualified name, with their dtype.
DISCRETE: dict[str, torch.dtype] = {
    FAMILIES[e].qualified(name): torch.bool if kind == "bool" else torch.int64
    for e in EFFECTS
    for name, kind in FAMILIES[e].discrete
}
_RMS_EPS = 1e-8


#: Every key of ``FxParams.values``: the continuous parameters, then the discrete ones.
VALUE_KEYS: tuple[str, ...] = (*qualified_names(), *DISCRETE)


@dataclass
class FxParams:
    """One draw of the random chain for a batch: every value is a ``(batch, …)`` tensor.

    Attributes:
        stem: ``(B,)`` int64, index into ``STEMS``.
        active: ``(B, 6)`` bool, which effects are on, columns in ``EFFECTS`` order.
        order1: ``(B, 2)`` int64, a permutation of ``GROUPS[0]`` = (eq, compressor): item ``i``
            runs ``GROUPS[0][order1[i, 0]]`` first.
        order2: ``(B, 2)`` int64, the same for ``GROUPS[1]`` = (pan, imager).
        values: ``{"<effect>.<argument>": tensor}`` for every argument of the chain's effect
            functions: the continuous ones (``(B,)``, or ``(B, 5)`` for the EQ's ``gain_db``,
            ``freq_hz`` and ``q``; floating point) and the discrete ones: ``"pan.law"`` (int64
            index into :data:`fxdsp.functional.PAN_LAWS`), ``"reverb.seed"`` (int64),
            ``"gain.invert_polarity"`` (bool). Read one with ``params["compressor.ratio"]``.
        sample_rate: Hz (not batched).
        ir_length: reverb impulse-response length in samples (not batched).

    Continuous values may be tensors that require grad (the Manipulator is differentiable with
    respect to them).

    Raises:
        ValueError: a missing or unknown value, mismatched batch sizes, a stem index outside
            ``STEMS``, an order that is not a permutation, wrong dtypes or shapes.
    """

    stem: Tensor
    active: Tensor
    order1: Tensor
    order2: Tensor
    values: dict[str, Tensor] = field(default_factory=dict)
    sample_rate: float = 44100.0
    ir_length: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.values, Mapping):
            raise ValueError(f"FxParams.values must be a mapping, got {type(self.values).__name__}")
        self.values = dict(self.values)
        keys = set(VALUE_KEYS)
        unknown, missing = set(self.values) - keys, keys - set(self.values)
        if unknown or missing:
            raise ValueError(
                f"FxParams.values: unknown {sorted(unknown)}, missing {sorted(missing)}; "
                f"expected {list(VALUE_KEYS)}"
            )
        batch = None
        for name, value in self._tensor_items():
            if not isinstance(value, Tensor) or value.ndim < 1:
                raise ValueError(f"FxParams {name} must be a (batch, ...) tensor")
            if batch is None:
                batch = value.shape[0]
            elif value.shape[0] != batch:
                raise ValueError(
                    f"FxParams {name} has batch {value.shape[0]}, but stem has {batch}"
                )
        if self.active.shape[1:] != (len(EFFECTS),) or self.active.dtype != torch.bool:
            raise ValueError(f"FxParams.active must be a (batch, {len(EFFECTS)}) bool tensor")
        for name in ("stem", "order1", "order2"):
            t = getattr(self, name)
            if t.dtype != torch.int64:
                raise ValueError(f"FxParams.{name} must be int64, got {t.dtype}")
        for name in ("order1", "order2"):
            t = getattr(self, name)
            if t.shape[1:] != (2,):
                raise ValueError(f"FxParams.{name} must be (batch, 2), got {tuple(t.shape)}")
            if t.device.type == "cpu" and not bool((t.sort(dim=1).values == torch.arange(2)).all()):
                raise ValueError(
                    f"FxParams.{name} must hold a permutation of (0, 1) per item (each effect "
                    f"of the group once), got {t.tolist()}"
                )
        if self.stem.ndim != 1:
            raise ValueError(f"FxParams.stem must be (batch,), got {tuple(self.stem.shape)}")
        if self.stem.device.type == "cpu" and self.stem.numel():
            lo, hi = int(self.stem.min()), int(self.stem.max())
            if lo < 0 or hi >= len(STEMS):
                raise ValueError(
                    f"FxParams.stem indices must be in [0, {len(STEMS) - 1}] ({STEMS}), got "
                    f"{self.stem.tolist()}"
                )
        for key in qualified_names():
            t = self.values[key]
            effect, _, name = key.partition(".")
            bands = len(FAMILIES[effect].band_specs(name))
            want = (bands,) if FAMILIES[effect].bands else ()
            if not t.is_floating_point() or t.shape[1:] != want:
                raise ValueError(
                    f"FxParams {key!r} must be a floating (batch{', ' + str(bands) if want else ''}"
                    f") tensor, got {t.dtype} {tuple(t.shape)}"
                )
        for key, dtype in DISCRETE.items():
            t = self.values[key]
            if t.dtype != dtype or t.ndim != 1:
                raise ValueError(
                    f"FxParams {key!r} must be a (batch,) {dtype} tensor, got {t.dtype}"
                )

    @classmethod
    def tensor_fields(cls) -> tuple[str, ...]:
        """Names of the batched entries: the structure fields, then every value key."""
        return ("stem", "active", "order1", "order2", *VALUE_KEYS)

    @classmethod
    def continuous_fields(cls) -> tuple[str, ...]:
        """Keys of the floating-point values (the ones that can carry gradients)."""
        return qualified_names()

    def _tensor_items(self) -> Iterator[tuple[str, Tensor]]:
        for name in ("stem", "active", "order1", "order2"):
            yield name, getattr(self, name)
        yield from self.values.items()

    def _map(self, fn: Any) -> FxParams:
        return replace(
            self,
            stem=fn(self.stem),
            active=fn(self.active),
            order1=fn(self.order1),
            order2=fn(self.order2),
            values={k: fn(v) for k, v in self.values.items()},
        )

    def __len__(self) -> int:
        return int(self.stem.shape[0])

    @property
    def device(self) -> torch.device:
        return self.stem.device

    def to(self, device: torch.device | str) -> FxParams:
        """The same draw on ``device``."""
        return self._map(lambda t: t.to(device))

    def __getitem__(self, index: Any) -> Any:
        """``params["effect.arg"]``: that value; otherwise items ``index`` as a new FxParams.

        An integer (Python or numpy) keeps a batch of 1; slices, index tensors and sequences of
        integers select items.
        """
        if isinstance(index, str):
            if index not in self.values:
                raise KeyError(f"no value {index!r}; FxParams has {list(self.values)}")
            return self.values[index]
        if isinstance(index, bool) or (
            isinstance(index, Tensor) and index.dtype == torch.bool and index.ndim == 0
        ):
            raise ValueError("FxParams cannot be indexed by a bool")
        if isinstance(index, numbers.Integral) or (
            isinstance(index, Tensor) and index.ndim == 0 and not index.is_floating_point()
        ):
            i, n = int(index), len(self)
            if not -n <= i < n:
                raise IndexError(f"index {i} out of range for a batch of {n}")
            index = slice(i % n, i % n + 1)
        elif not isinstance(index, (slice, Tensor)):
            try:
                index = torch.as_tensor([int(i) for i in index], dtype=torch.int64)
            except (TypeError, ValueError) as err:
                raise ValueError(f"cannot index FxParams with {index!r}") from err
        if isinstance(index, Tensor):
            if index.is_floating_point():
                raise ValueError(f"FxParams index must be integer or bool, got {index.dtype}")
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

        def cat(get: Any) -> Tensor:
            return torch.cat([get(p) for p in items])

        return replace(
            first,
            stem=cat(lambda p: p.stem),
            active=cat(lambda p: p.active),
            order1=cat(lambda p: p.order1),
            order2=cat(lambda p: p.order2),
            values={k: cat(lambda p, k=k: p.values[k]) for k in first.values},
        )

    def effect(self, name: str) -> dict[str, Tensor]:
        """Keyword arguments of effect ``name``'s function for this batch (without audio/rate)."""
        if name not in EFFECTS:
            raise ValueError(f"unknown effect {name!r}; expected one of {EFFECTS}")
        prefix = f"{name}."
        return {k[len(prefix) :]: v for k, v in self.values.items() if k.startswith(prefix)}

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
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise ValueError(f"describe() takes an item index, got {i!r}")
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a batch of {n}")
        i %= n

        def v(key: str, *idx: int) -> float:
            return float(self.values[key][(i, *idx)].detach())

        lines = [f"item {i} (stem {STEMS[int(self.stem[i])]}):"]
        for k, name in enumerate(self.chain(i), start=1):
            if name == "eq":
                bands = ", ".join(
                    f"{EQ_BANDS[b]} {v('eq.freq_hz', b):.0f} Hz "
                    f"{v('eq.gain_db', b):+.1f} dB Q {v('eq.q', b):.2f}"
                    for b in range(len(EQ_BANDS))
                )
                text = f"eq: {bands}"
            else:
                fam = FAMILIES[name]
                parts = []
                for spec in fam.specs:
                    unit = f" {spec.unit}" if spec.unit else ""
                    value = v(fam.qualified(spec.name))
                    text = f"{value:.3g}:1" if spec.name == "ratio" else f"{value:.4g}{unit}"
                    parts.append(f"{spec.name} {text}")
                if name == "pan":
                    parts.append(f"law {F.PAN_LAWS[int(self.values['pan.law'][i])]}")
                elif name == "reverb":
                    parts.append(f"seed {int(self.values['reverb.seed'][i])}")
                elif name == "gain" and bool(self.values["gain.invert_polarity"][i]):
                    parts.append("polarity inverted")
                text = f"{name}: " + ", ".join(parts)
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
        """The continuous values as ``(B, len(space))`` in the config's :class:`ParamSpace`.

        Inverse of :meth:`Manipulator.from_normalized` for the continuous values.
        """
        return ParamSpace(config).to_normalized(self.values)


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
        unknown = sorted({str(s) for s in names if s not in STEMS})
        if unknown:
            raise ValueError(f"unknown stem name(s) {unknown}; expected one of {STEMS}")
        idx = torch.tensor([STEMS.index(s) for s in names], dtype=torch.int64)
    if idx.shape[0] != batch:
        raise ValueError(f"stems has {idx.shape[0]} entries but batch_size is {batch}")
    return idx


def _as_generator(generator: Any) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(
                f"generator must be a CPU torch.Generator, got one on {generator.device}"
            )
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(int(generator))
    raise ValueError(
        f"generator must be a CPU torch.Generator or an int seed, got {type(generator).__name__}"
    )


def sample_params(
    batch_size: int,
    *,
    stems: Sequence[str] | str | Tensor | None = None,
    probabilities: Mapping[str, float | Mapping[str, float]] | None = None,
    ranges: Mapping[str, Any] | None = None,
    generator: torch.Generator | int | None = None,
    device: torch.device | str | None = None,
    config: ChainConfig | None = None,
    dtype: torch.dtype = torch.float32,
) -> FxParams:
    """Draw every random choice of the chain for ``batch_size`` items.

    For each item: which effects are on (independent Bernoulli draws with the effect's
    probability; the reverb's depends on the stem), the order inside each shuffled group (each
    of the two orders with probability 1/2, the two groups independently), every continuous
    parameter (uniform in its config range, see :class:`~fxdsp.chain_config.ChainConfig`;
    reference: EQ gains U(−15, 15) dB, low shelf 30–200 Hz Q 0.707, peaks 200–1000 / 1000–3000
    / 3000–8000 Hz Q U(0.1, 2), high shelf 5–10 kHz Q 0.707; compressor hard knee, threshold
    U(−80, −5) dB, ratio U(4, 40), attack U(1, 20) ms, release U(50, 500) ms; pan U(−1, 1)
    with a law drawn uniformly from ``PAN_LAWS``; width U(0, 2); reverb rt60 U(0.3, 3) s,
    predelay U(0, 40) ms, damping U(0, 1), wet mix U(0.5, 1); gain U(−6, 9) dB, polarity
    inverted with probability 0.5), and the reverb's noise seed. All values are drawn for every
    item whether its effect is on or not, in a fixed sequence (registry order), so a seed gives
    the same draw whatever the probabilities.

    Draws are made on the CPU in float64 (from ``generator``, or torch's global generator) and
    then cast and moved to ``device``, so a seeded generator gives the same parameters on every
    device.

    Args:
        batch_size: number of items, >= 1.
        stems: the stem of each item: a name, a list of ``batch_size`` names from ``STEMS``, or
            a ``(batch,)`` integer tensor indexing ``STEMS``. None: every item is
            ``config.default_stem`` ("other", reverb probability 0.7).
        probabilities: overrides by effect name (``EFFECTS``, plus ``"invert_polarity"``).
            A number for ``"reverb"`` applies to every stem; a ``{stem: p}`` mapping overrides
            those stems.
        ranges: overrides of the config's ranges, ``{"effect.arg": (low, high)}``.
        generator: a CPU ``torch.Generator`` (or an int seed) for reproducible draws.
        device: where the returned tensors live (default CPU).
        config: the base :class:`ChainConfig` (default: the reference preset).
        dtype: floating dtype of the continuous parameters.

    Returns:
        An :class:`FxParams` of ``batch_size`` items.

    Raises:
        ValueError: a bad batch size, generator or dtype, an unknown effect, stem or range
            name, a probability outside [0, 1], an invalid range, stems of the wrong length.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    cfg = config if config is not None else ChainConfig()
    if not isinstance(cfg, ChainConfig):
        raise ValueError(f"config must be a ChainConfig, got {type(cfg).__name__}")
    if probabilities is not None or ranges is not None:
        cfg = cfg.replace(probabilities=probabilities, ranges=ranges)
    g = _as_generator(generator)
    b = int(batch_size)
    stem = _stem_indices(stems, b, cfg.default_stem)

    # Fixed draw sequence (do not reorder: seeds would change meaning).
    p_on = torch.tensor(
        [[cfg.probabilities.get(e, 0.0) for e in EFFECTS]], dtype=torch.float64
    ).repeat(b, 1)
    rev_p = torch.tensor([cfg.reverb_probabilities[s] for s in STEMS], dtype=torch.float64)
    p_on[:, EFFECTS.index("reverb")] = rev_p[stem]
    active = torch.rand((b, len(EFFECTS)), generator=g, dtype=torch.float64) < p_on
    swap = torch.rand((b, 2), generator=g, dtype=torch.float64) < 0.5  # (B, groups)
    first = swap.to(torch.int64)
    order1 = torch.stack([first[:, 0], 1 - first[:, 0]], dim=1)
    order2 = torch.stack([first[:, 1], 1 - first[:, 1]], dim=1)

    values: dict[str, Tensor] = {}
    for key in qualified_names():
        bounds = torch.tensor(cfg.band_ranges(key), dtype=torch.float64)  # (bands, 2)
        u = torch.rand((b, bounds.shape[0]), generator=g, dtype=torch.float64)
        t = bounds[:, 0] + u * (bounds[:, 1] - bounds[:, 0])
        values[key] = (t if FAMILIES[key.partition(".")[0]].bands else t[:, 0]).to(dtype)
    values["pan.law"] = torch.randint(0, len(F.PAN_LAWS), (b,), generator=g)
    values["reverb.seed"] = torch.randint(0, 2**62, (b,), generator=g)
    values["gain.invert_polarity"] = (
        torch.rand((b,), generator=g, dtype=torch.float64) < cfg.invert_polarity_probability
    )
    params = FxParams(
        stem=stem,
        active=active,
        order1=order1,
        order2=order2,
        values=values,
        sample_rate=cfg.sample_rate,
        ir_length=cfg.ir_length,
    )
    return params.to(device) if device is not None else params


def _rms_match(out: Tensor, level: Tensor) -> Tensor:
    """``out · level / max(rms(out), eps)`` per item (``level``: ``(B,)``)."""
    ratio = level / F.rms(out).clamp_min(_RMS_EPS)
    return out * ratio[:, None, None]


def apply_effect(name: str, x: Tensor, params: FxParams) -> Tensor:
    """Run chain effect ``name`` of the registry on ``x`` with ``params``' values (no RMS match).

    Args:
        name: one of ``EFFECTS``.
        x: ``(len(params), 2, samples)`` audio.
        params: the draw (its ``effect(name)`` values are the function's arguments).
    """
    fam = FAMILIES[name]
    kwargs: dict[str, Any] = params.effect(name)
    if name == "reverb":
        kwargs["ir_length"] = params.ir_length
    if fam.takes_sample_rate:
        return fam.function(x, params.sample_rate, **kwargs)
    return fam.function(x, **kwargs)


class Manipulator(nn.Module):
    """Apply a drawn random chain (:class:`FxParams`) to a batch of audio.

    Per item, as drawn: (1) EQ and compressor in the item's order, (2) pan and imager in the
    item's order, (3) the reverb as a parallel send ``(1 − mix)·x + mix·wet``, (4) the gain with
    its polarity flip; effects that are off are skipped. Every processor but the gain is followed
    by an RMS match to the chain input's level (equal to the processor's input level, see the
    module doc). Each effect runs only on the sub-batch of items that have it on in that slot
    (gathered with ``torch.nonzero``, scattered back with ``index_copy``); no Python loop over
    items. The same params on the same audio give a bit-identical output on one device.

    Args:
        params: the draw, one item per audio item (moved to the audio's device on call).
        level_match: False skips the RMS matches: each processor changes the level as it does
            alone (:attr:`ChainConfig.level_match <fxdsp.chain_config.ChainConfig>`).
    """

    def __init__(self, params: FxParams, level_match: bool = True) -> None:
        super().__init__()
        if not isinstance(params, FxParams):
            raise ValueError(f"params must be an FxParams, got {type(params).__name__}")
        if not isinstance(level_match, bool):
            raise ValueError(f"level_match must be true or false, got {level_match!r}")
        self.params = params
        self.level_match = level_match

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

        The order is the reference's: EQ, compressor, pan, imager, reverb, gain. ``u``'s columns
        are the config's :class:`~fxdsp.space.ParamSpace` (24 with the reference config: EQ
        gains, frequencies and peak Qs, compressor threshold, ratio, attack, release, pan,
        width, reverb rt60, predelay, damping, mix, gain; log-scaled where the spec is); values
        are clamped to [0, 1]; constant ranges take their value; the polarity is never
        inverted. Differentiable w.r.t. ``u``.

        Args:
            u: ``(batch, len(ParamSpace(config)))`` tensor.
            config: ranges (default: the reference preset).
            pan_law: index into ``PAN_LAWS`` (int or ``(batch,)``), default constant power.
            reverb_seed: the reverb's noise seed (int or ``(batch,)``).
            stems: recorded stems (as in :func:`sample_params`).

        Raises:
            ValueError: ``u`` not ``(batch, len(space))`` floating point.
        """
        cfg = config or ChainConfig()
        values = ParamSpace(cfg).to_physical(u)
        b, dev = u.shape[0], u.device

        def ints(value: int | Tensor) -> Tensor:  # a number for every item, or one per item
            return torch.as_tensor(value, dtype=torch.int64, device=dev).expand(b).clone()

        values["pan.law"] = ints(pan_law)
        values["reverb.seed"] = ints(reverb_seed)
        values["gain.invert_polarity"] = torch.zeros((b,), dtype=torch.bool, device=dev)
        params = FxParams(
            stem=_stem_indices(stems, b, cfg.default_stem).to(dev),
            active=torch.ones((b, len(EFFECTS)), dtype=torch.bool, device=dev),
            order1=torch.tensor([[0, 1]], device=dev).expand(b, 2).clone(),
            order2=torch.tensor([[0, 1]], device=dev).expand(b, 2).clone(),
            values=values,
            sample_rate=cfg.sample_rate,
            ir_length=cfg.ir_length,
        )
        return cls(params)

    def describe(self, i: int | None = None) -> str:
        """Readable text of the draw (item ``i``, or every item)."""
        return self.params.describe(i)

    def extra_repr(self) -> str:
        return repr(self.params)

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
            if n == len(p):
                out = apply_effect(name, y, p)
                y = out if name == "gain" or not self.level_match else _rms_match(out, level)
                continue
            idx = idx_cpu.to(x.device)
            sub = y.index_select(0, idx)
            out = apply_effect(name, sub, p[idx])
            if name != "gain" and self.level_match:
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
