"""Presets: one fxdsp chain per stem, as JSON with units, readable, loadable, exportable.

A :class:`Preset` holds, for each stem, its chain (:class:`StemPreset`): the effects in
processing order, which are on, every continuous value in the registry's units (the one
vocabulary of :mod:`fxdsp.registry`), the pan law, the reverb's noise seed and the polarity.
It is made from a predicted chain (:meth:`Preset.from_normalized`) or any drawn one
(:meth:`Preset.from_params`), saved and loaded as JSON (:meth:`Preset.save`,
:meth:`Preset.load`; values round-trip exactly: JSON keeps every float64 digit), printed
(:meth:`Preset.describe`), applied to any input with fxdsp (:func:`apply_preset`), and exported
to a ``pedalboard.Pedalboard`` (:meth:`Preset.to_pedalboard`).

The file::

    {"format": "mixfx.preset/1", "sample_rate": 44100.0, "reverb_ir_length": 134064,
     "stems": {"vocals": {"chain": [
        {"effect": "eq", "on": true, "bands": {"low_shelf": {
            "gain_db": {"value": -2.5, "unit": "dB"}, "freq_hz": {"value": 90.0, "unit": "Hz"},
            "q": {"value": 0.707, "unit": ""}}, ...}},
        {"effect": "compressor", "on": true, "params": {"threshold_db": {...}, ...}},
        {"effect": "pan", "on": true, "params": {"pan": {...}}, "law": "constant_power"},
        {"effect": "imager", ...}, {"effect": "reverb", ..., "seed": 0},
        {"effect": "gain", ..., "invert_polarity": false}],
       "level_match_db": {"eq": 0.8, "compressor": 5.1, ...}}}}

``level_match_db`` (optional) records the gain of fxdsp's RMS match after each processor
(every one but the gain: each processor's output is brought back to the chain input's RMS
level) as measured on the input the preset was made from (:meth:`Preset.with_levels`). fxdsp
recomputes the match on whatever it processes; a static plug-in chain cannot, so the pedalboard
export puts these measured gains in as fixed ``Gain`` plug-ins.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fxdsp import functional as F
from fxdsp.io import atomic_write_text
from fxdsp.manipulator import GROUPS, FxParams, Manipulator
from fxdsp.registry import EFFECTS, EQ_BAND_TYPES, EQ_BANDS, FAMILIES, STEMS, qualified_names

__all__ = [
    "PRESET_FORMAT",
    "Preset",
    "StemPreset",
    "apply_preset",
    "stage_levels_db",
]

PRESET_FORMAT = "mixfx.preset/1"
_RMS_EPS = 1e-8  # fxdsp.manipulator's RMS-match floor
_JUCE_IR_NORM = 0.125  # JUCE's Convolution scales an IR to 0.125 / sqrt(max channel energy)
_PAN_IR_TAPS = 64  # JUCE's Convolution needs an IR longer than one tap


def _orders() -> tuple[tuple[str, ...], ...]:
    a, b = GROUPS
    return tuple((*g1, *g2, "reverb", "gain") for g1 in (a, a[::-1]) for g2 in (b, b[::-1]))


#: The processing orders fxdsp's chain supports (EQ/compressor and pan/imager each either way).
ORDERS = _orders()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclass(frozen=True)
class StemPreset:
    """One stem's chain.

    Attributes:
        order: the six effects of :data:`fxdsp.EFFECTS` in processing order (one of
            :data:`ORDERS`).
        active: ``{effect: on}`` for the six effects.
        values: every continuous parameter by qualified name (``"compressor.ratio"``), a float,
            or a tuple of one float per band for the EQ's ``gain_db``, ``freq_hz`` and ``q``; in
            the registry's units, inside its ranges.
        pan_law: a name of :data:`fxdsp.functional.PAN_LAWS`.
        reverb_seed: the reverb's noise seed.
        invert_polarity: the gain stage's polarity flip.
        level_match_db: the RMS match's gain after each active processor but the gain, as
            measured on the source input (None: not measured).
    """

    order: tuple[str, ...]
    active: dict[str, bool]
    values: dict[str, float | tuple[float, ...]]
    pan_law: str = "constant_power"
    reverb_seed: int = 0
    invert_polarity: bool = False
    level_match_db: dict[str, float] | None = None

    def __post_init__(self) -> None:
        order = tuple(self.order)
        if order not in ORDERS:
            raise ValueError(
                f"the chain order {list(order)} is not one fxdsp supports: EQ and compressor "
                "(either order), pan and imager (either order), reverb, gain"
            )
        object.__setattr__(self, "order", order)
        if set(self.active) != set(EFFECTS) or not all(
            isinstance(v, bool) for v in self.active.values()
        ):
            raise ValueError(f"active must give true/false for each of {list(EFFECTS)}")
        names = set(qualified_names())
        unknown, missing = set(self.values) - names, names - set(self.values)
        if unknown or missing:
            raise ValueError(f"preset values: unknown {sorted(unknown)}, missing {sorted(missing)}")
        values: dict[str, float | tuple[float, ...]] = {}
        for key in qualified_names():
            effect, _, name = key.partition(".")
            specs = FAMILIES[effect].band_specs(name)
            v = self.values[key]
            if specs[0].band is not None:
                if not isinstance(v, (list, tuple)) or len(v) != len(specs):
                    raise ValueError(f"{key} needs one value per band {EQ_BANDS}, got {v!r}")
                if not all(_is_number(x) for x in v):
                    raise ValueError(f"{key} must be finite numbers, got {v!r}")
                for spec, x in zip(specs, v, strict=True):
                    spec.validate(float(x))
                values[key] = tuple(float(x) for x in v)
            else:
                if not _is_number(v):
                    raise ValueError(f"{key} must be a finite number, got {v!r}")
                specs[0].validate(float(v))
                values[key] = float(v)
        object.__setattr__(self, "values", values)
        if self.pan_law not in F.PAN_LAWS:
            raise ValueError(f"unknown pan law {self.pan_law!r}; expected one of {F.PAN_LAWS}")
        if isinstance(self.reverb_seed, bool) or not isinstance(self.reverb_seed, int):
            raise ValueError(f"reverb_seed must be an integer, got {self.reverb_seed!r}")
        if not 0 <= self.reverb_seed < 2**63:
            raise ValueError(f"reverb_seed must be in [0, 2**63), got {self.reverb_seed}")
        if not isinstance(self.invert_polarity, bool):
            raise ValueError(f"invert_polarity must be true or false, got {self.invert_polarity!r}")
        if self.level_match_db is not None:
            levels = dict(self.level_match_db)
            allowed = {e for e in EFFECTS if e != "gain"}
            if set(levels) - allowed or not all(_is_number(v) for v in levels.values()):
                raise ValueError(
                    f"level_match_db must map effects of {sorted(allowed)} to finite dB, got "
                    f"{levels!r}"
                )
            object.__setattr__(self, "level_match_db", {k: float(v) for k, v in levels.items()})

    @property
    def chain(self) -> list[str]:
        """The active effects in processing order."""
        return [e for e in self.order if self.active[e]]

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON layout (see the module docstring)."""
        chain = []
        for effect in self.order:
            fam = FAMILIES[effect]
            entry: dict[str, Any] = {"effect": effect, "on": self.active[effect]}
            if fam.bands:
                entry["bands"] = {
                    band: {
                        "type": EQ_BAND_TYPES[b],
                        **{
                            name: {
                                "value": self.values[fam.qualified(name)][b],  # type: ignore[index]
                                "unit": fam.spec(name, b).unit,
                            }
                            for name in fam.param_names
                        },
                    }
                    for b, band in enumerate(fam.bands)
                }
            else:
                entry["params"] = {
                    s.name: {"value": self.values[fam.qualified(s.name)], "unit": s.unit}
                    for s in fam.specs
                }
            if effect == "pan":
                entry["law"] = self.pan_law
            elif effect == "reverb":
                entry["seed"] = self.reverb_seed
            elif effect == "gain":
                entry["invert_polarity"] = self.invert_polarity
            chain.append(entry)
        out: dict[str, Any] = {"chain": chain}
        if self.level_match_db is not None:
            out["level_match_db"] = dict(self.level_match_db)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "stem") -> StemPreset:
        """Parse :meth:`to_dict`'s layout (units checked against the registry's).

        Raises:
            ValueError: a malformed entry, an unknown or missing effect or parameter, a unit
                that is not the registry's, a value outside its range, an unsupported order.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("chain"), list):
            raise ValueError(f"{where}: a stem preset needs a 'chain' list")
        unknown_keys = set(data) - {"chain", "level_match_db"}
        if unknown_keys:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown_keys)}")
        order, active, values = [], {}, {}
        extra: dict[str, Any] = {}
        for k, entry in enumerate(data["chain"]):
            at = f"{where}.chain[{k}]"
            if not isinstance(entry, Mapping) or entry.get("effect") not in EFFECTS:
                effect = entry.get("effect") if isinstance(entry, Mapping) else entry
                raise ValueError(f"{at}: unknown effect {effect!r}; expected one of {EFFECTS}")
            effect = entry["effect"]
            if effect in active:
                raise ValueError(f"{at}: effect {effect!r} appears twice")
            if not isinstance(entry.get("on"), bool):
                raise ValueError(f"{at}: 'on' must be true or false")
            order.append(effect)
            active[effect] = entry["on"]
            fam = FAMILIES[effect]
            if fam.bands:
                bands = entry.get("bands")
                if not isinstance(bands, Mapping) or set(bands) != set(fam.bands):
                    raise ValueError(f"{at}: 'bands' must have exactly {list(fam.bands)}")
                for name in fam.param_names:
                    per_band = []
                    for b, band in enumerate(fam.bands):
                        item = bands[band]
                        if not isinstance(item, Mapping):
                            raise ValueError(f"{at}.bands.{band}: must be a mapping")
                        if item.get("type", EQ_BAND_TYPES[b]) != EQ_BAND_TYPES[b]:
                            raise ValueError(
                                f"{at}.bands.{band}: type must be {EQ_BAND_TYPES[b]!r}"
                            )
                        per_band.append(_value(item, name, fam.spec(name, b), f"{at}.{band}"))
                    values[fam.qualified(name)] = tuple(per_band)
            else:
                params = entry.get("params")
                if not isinstance(params, Mapping):
                    raise ValueError(f"{at}: 'params' must be a mapping")
                unknown = set(params) - set(fam.param_names)
                if unknown:
                    raise ValueError(
                        f"{at}: unknown parameter(s) {sorted(unknown)} of {effect}; expected "
                        f"{list(fam.param_names)}"
                    )
                for spec in fam.specs:
                    values[fam.qualified(spec.name)] = _value(params, spec.name, spec, at)
            for key in ("law", "seed", "invert_polarity"):
                if key in entry:
                    extra[key] = entry[key]
        missing = [e for e in EFFECTS if e not in active]
        if missing:
            raise ValueError(f"{where}: the chain has no {missing}")
        return cls(
            order=tuple(order),
            active=active,
            values=values,
            pan_law=extra.get("law", "constant_power"),
            reverb_seed=extra.get("seed", 0),
            invert_polarity=extra.get("invert_polarity", False),
            level_match_db=data.get("level_match_db"),
        )

    def describe(self) -> str:
        """Readable lines: each active effect in order with its values and units."""
        lines = []
        for k, effect in enumerate(self.chain, start=1):
            fam = FAMILIES[effect]
            if fam.bands:
                parts = []
                for b, band in enumerate(fam.bands):
                    g, f, q = (self.values[f"eq.{n}"][b] for n in ("gain_db", "freq_hz", "q"))  # type: ignore[index]
                    parts.append(f"{band} {f:.0f} Hz {g:+.1f} dB Q {q:.2f}")
                text = "; ".join(parts)
            else:
                parts = []
                for s in fam.specs:
                    v = float(self.values[fam.qualified(s.name)])  # type: ignore[arg-type]
                    unit = f" {s.unit}" if s.unit else ""
                    parts.append(
                        f"{s.name} " + (f"{v:.3g}:1" if s.name == "ratio" else f"{v:.4g}{unit}")
                    )
                if effect == "pan":
                    parts.append(f"law {self.pan_law}")
                elif effect == "gain" and self.invert_polarity:
                    parts.append("polarity inverted")
                text = ", ".join(parts)
            level = ""
            if self.level_match_db is not None and effect in self.level_match_db:
                level = f"  [level match {self.level_match_db[effect]:+.2f} dB]"
            lines.append(f"  {k}. {effect}: {text}{level}")
        off = [e for e in EFFECTS if not self.active[e]]
        if off:
            lines.append(f"  off: {', '.join(off)}")
        return "\n".join(lines) if lines else "  (no effect)"


def _value(params: Mapping[str, Any], name: str, spec: Any, at: str) -> float:
    item = params.get(name)
    if not isinstance(item, Mapping) or "value" not in item:
        raise ValueError(f"{at}: parameter {name!r} needs {{'value': ..., 'unit': {spec.unit!r}}}")
    unit = item.get("unit", spec.unit)
    if unit != spec.unit:
        raise ValueError(f"{at}: {name} is in {spec.unit!r}, not {unit!r}")
    v = item["value"]
    if not _is_number(v):
        raise ValueError(f"{at}: {name} must be a finite number, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class Preset:
    """One chain per stem, the rate it was made at and the reverb's impulse-response length.

    Attributes:
        stems: ``{stem name: StemPreset}``.
        sample_rate: the rate the chain was made at, in Hz (values are in physical units and
            apply at any rate; the reverb's IR length scales with the rate).
        reverb_ir_length: the reverb's impulse-response length in samples at ``sample_rate``.
        source: free text (what made it).
    """

    stems: dict[str, StemPreset]
    sample_rate: float = 44100.0
    reverb_ir_length: int = 2
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.stems, Mapping) or not self.stems:
            raise ValueError("a preset needs at least one stem")
        for name, stem in self.stems.items():
            if not isinstance(name, str) or not isinstance(stem, StemPreset):
                raise ValueError(f"stem {name!r} must be a StemPreset")
        if not _is_number(self.sample_rate) or not self.sample_rate > 0:
            raise ValueError(f"sample_rate must be a positive number, got {self.sample_rate!r}")
        object.__setattr__(self, "sample_rate", float(self.sample_rate))
        if (
            isinstance(self.reverb_ir_length, bool)
            or not isinstance(self.reverb_ir_length, int)
            or self.reverb_ir_length < 1
        ):
            raise ValueError(
                f"reverb_ir_length must be a positive integer, got {self.reverb_ir_length!r}"
            )
        object.__setattr__(self, "stems", dict(self.stems))

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_params(cls, params: FxParams, stems: Sequence[str], source: str = "") -> Preset:
        """Item ``i`` of a drawn or predicted chain is stem ``stems[i]``."""
        if len(stems) != len(params):
            raise ValueError(f"{len(stems)} stem names for {len(params)} chains")
        if len(set(stems)) != len(stems):
            raise ValueError(f"stem names must be distinct, got {list(stems)}")
        p = params.to("cpu")
        out = {}
        for i, name in enumerate(stems):
            order = [GROUPS[0][k] for k in p.order1[i].tolist()]
            order += [GROUPS[1][k] for k in p.order2[i].tolist()] + ["reverb", "gain"]
            values: dict[str, float | tuple[float, ...]] = {}
            for key in qualified_names():
                t = p.values[key][i].detach().double()
                values[key] = tuple(t.tolist()) if t.ndim else float(t)
            out[name] = StemPreset(
                order=tuple(order),
                active={e: bool(a) for e, a in zip(EFFECTS, p.active[i].tolist(), strict=True)},
                values=values,
                pan_law=F.PAN_LAWS[int(p.values["pan.law"][i])],
                reverb_seed=int(p.values["reverb.seed"][i]),
                invert_polarity=bool(p.values["gain.invert_polarity"][i]),
            )
        return cls(out, params.sample_rate, params.ir_length, source)

    @classmethod
    def from_normalized(
        cls, u: Tensor, stems: Sequence[str], sample_rate: float, source: str = ""
    ) -> Preset:
        """The controller's chains (:func:`cloner.parametric.render`'s) for ``(len(stems), 24)``
        normalized parameters."""
        from cloner.parametric import controller_chain

        kinds = [s if s in STEMS else None for s in stems]
        manip = Manipulator.from_normalized(
            u.detach().double().cpu(), config=controller_chain(sample_rate),
            stems=[k or "other" for k in kinds],
        )  # fmt: skip
        return cls.from_params(manip.params, stems, source)

    # -- rendering --------------------------------------------------------------------------
    @classmethod
    def from_transfer(cls, transfer: Any, source: str = "") -> Preset:
        """The chains a parametric transfer applied (:class:`cloner.parametric.ParamTransfer`),
        with the RMS-match gains it measured on its input.

        Raises:
            ValueError: an interpolation over segments (its chains change over time).
        """
        if transfer.params.ndim != 2:
            raise ValueError("an interpolation over segments has no single preset")
        preset = cls.from_normalized(transfer.params, list(transfer.stems), transfer.sample_rate,
                                     source=source)  # fmt: skip
        return preset if transfer.levels is None else preset.with_measured_levels(transfer.levels)

    def to_params(
        self,
        stems: Sequence[str],
        sample_rate: float | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> FxParams:
        """The chains of ``stems`` (in that order) as an :class:`fxdsp.FxParams` at
        ``sample_rate`` (default the preset's; the IR length is scaled to it).

        Raises:
            ValueError: a stem the preset does not have.
        """
        missing = [s for s in stems if s not in self.stems]
        if missing:
            raise ValueError(f"the preset has no stem(s) {missing} (it has {sorted(self.stems)})")
        rate = self.sample_rate if sample_rate is None else float(sample_rate)
        items = [self.stems[s] for s in stems]
        values: dict[str, Tensor] = {
            key: torch.tensor([p.values[key] for p in items], dtype=dtype)
            for key in qualified_names()
        }
        values["pan.law"] = torch.tensor([F.PAN_LAWS.index(p.pan_law) for p in items])
        values["reverb.seed"] = torch.tensor([p.reverb_seed for p in items], dtype=torch.int64)
        values["gain.invert_polarity"] = torch.tensor([p.invert_polarity for p in items])

        def order(p: StemPreset, group: tuple[str, str]) -> list[int]:
            return [group.index(e) for e in p.order if e in group]

        ir = self.reverb_ir_length
        if rate != self.sample_rate:
            ir = max(2, math.ceil(ir * rate / self.sample_rate))
        return FxParams(
            stem=torch.tensor([STEMS.index(s) if s in STEMS else 2 for s in stems]),
            active=torch.tensor([[p.active[e] for e in EFFECTS] for p in items]),
            order1=torch.tensor([order(p, GROUPS[0]) for p in items]),
            order2=torch.tensor([order(p, GROUPS[1]) for p in items]),
            values=values,
            sample_rate=rate,
            ir_length=ir,
        )

    def with_measured_levels(self, levels: Mapping[str, Mapping[str, float]]) -> Preset:
        """A copy whose stems record the given RMS-match gains (e.g.
        :attr:`cloner.parametric.ParamTransfer.levels`); stems not in ``levels`` keep theirs."""
        out = {
            name: replace(stem, level_match_db=dict(levels[name])) if name in levels else stem
            for name, stem in self.stems.items()
        }
        return replace(self, stems=out)

    def with_levels(self, stems: Mapping[str, Tensor], sample_rate: float) -> Preset:
        """A copy whose stems record the RMS match measured on ``stems`` (see the module doc)."""
        out = {}
        for name, stem in self.stems.items():
            if name not in stems:
                out[name] = stem
                continue
            levels = stage_levels_db(self, name, stems[name], sample_rate)
            out[name] = replace(stem, level_match_db=levels)
        return replace(self, stems=out)

    # -- files ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON layout."""
        return {
            "format": PRESET_FORMAT,
            "sample_rate": self.sample_rate,
            "reverb_ir_length": self.reverb_ir_length,
            "source": self.source,
            "stems": {name: stem.to_dict() for name, stem in self.stems.items()},
        }

    @classmethod
    def from_dict(cls, data: Any) -> Preset:
        """Parse :meth:`to_dict`'s layout.

        Raises:
            ValueError: another format, a malformed stem (see :meth:`StemPreset.from_dict`).
        """
        if not isinstance(data, Mapping) or data.get("format") != PRESET_FORMAT:
            fmt = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"not a mixfx preset (format {fmt!r}; expected {PRESET_FORMAT!r})")
        unknown = set(data) - {"format", "sample_rate", "reverb_ir_length", "source", "stems"}
        if unknown:
            raise ValueError(f"unknown preset field(s) {sorted(unknown)}")
        stems = data.get("stems")
        if not isinstance(stems, Mapping):
            raise ValueError("a preset needs a 'stems' mapping")
        return cls(
            {str(k): StemPreset.from_dict(v, f"stems.{k}") for k, v in stems.items()},
            data.get("sample_rate", 44100.0),
            data.get("reverb_ir_length", 2),
            str(data.get("source", "")),
        )

    def to_json(self) -> str:
        """JSON text (floats written with every digit: they load back bit for bit)."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Preset:
        """Parse JSON text (see :meth:`from_dict`)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"malformed preset JSON: {err}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the JSON file atomically."""
        return atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Preset:
        """Read a JSON preset file.

        Raises:
            ValueError: a missing or unreadable file, or a malformed preset (naming the file).
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read preset {p}: {err}") from None
        try:
            return cls.from_json(text)
        except ValueError as err:
            raise ValueError(f"{p}: {err}") from None

    def describe(self) -> str:
        """A readable printout of every stem's chain."""
        head = f"preset ({self.source})" if self.source else "preset"
        lines = [f"{head}, made at {self.sample_rate:g} Hz:"]
        for name, stem in self.stems.items():
            lines += [f"{name}:", stem.describe()]
        return "\n".join(lines)

    # -- pedalboard -------------------------------------------------------------------------
    def to_pedalboard(
        self, stem: str, sample_rate: float | None = None, *, strict: bool = False
    ) -> Any:
        """The stem's chain as a ``pedalboard.Pedalboard`` (needs the ``bench`` extra).

        Effect by effect (active ones, in order):

        - **EQ**: ``LowShelfFilter``, three ``PeakFilter``, ``HighShelfFilter`` with the same
          frequencies, gains and Qs. JUCE designs the same RBJ cookbook biquads; it runs them in
          float32 (fxdsp in float64), so the responses agree to rounding.
        - **compressor**: ``Compressor(threshold_db, ratio, attack_ms, release_ms)`` and a
          ``Gain`` for a make-up gain. *Differs*: JUCE's compressor smooths the detected level
          (a peak envelope with attack and release) and has a hard knee, per channel; fxdsp's
          detects the stereo-linked peak and smooths the gain in dB (Giannoulis et al.) with an
          optional knee (a knee is dropped). Expect the same static curve with different
          ballistics.
        - **pan**: a ``Convolution`` with a short stereo impulse response whose first tap is
          each side's balance gain (JUCE normalises an IR to 0.125 / √(largest channel
          energy); a ``Gain`` undoes it): exact.
        - **imager**: no equivalent (pedalboard has no mid/side processing): left out, with a
          warning (``strict=True``: a ``ValueError``) unless the width is 1 (the identity).
        - **reverb**: the fxdsp impulse response (:func:`fxdsp.functional.reverb_impulse_response`
          with the preset's seed and IR length) in a ``Convolution`` (normalisation undone) as
          the wet path of a ``Mix`` with the dry path, weights ``mix`` and ``1 − mix``: exact
          up to the convolution's float32 rounding; the IR is the same noise only at the
          preset's rate.
        - **gain**: ``Gain(gain_db)`` and ``Invert()`` when the polarity is inverted: exact.
        - **RMS match**: fxdsp brings each processor's output back to the chain input's level
          (a gain that depends on the input); a plug-in chain cannot, so the gains recorded in
          ``level_match_db`` (:meth:`with_levels`, measured on the input the preset was made
          from) follow each processor as fixed ``Gain`` plug-ins. Without them the export
          warns that levels will differ.

        Args:
            stem: which stem's chain.
            sample_rate: the rate the board will run at (default the preset's): the reverb's
                impulse response is built at it.
            strict: raise instead of warning when an active effect has no equivalent.

        Raises:
            ValueError: an unknown stem, an imager that is not neutral with ``strict``, or
                pedalboard not installed.
        """
        try:
            import pedalboard as pb
        except ImportError:
            raise ValueError(
                "exporting to pedalboard needs the optional package 'pedalboard': "
                "pip install 'mixfx[bench]'"
            ) from None
        import numpy as np

        if stem not in self.stems:
            raise ValueError(f"the preset has no stem {stem!r} (it has {sorted(self.stems)})")
        p = self.stems[stem]
        rate = self.sample_rate if sample_rate is None else float(sample_rate)
        v = p.values
        plugins: list[Any] = []
        levels = p.level_match_db
        if levels is None:
            warnings.warn(
                f"preset stem {stem!r} records no level_match_db: the exported chain leaves out "
                "fxdsp's RMS match after each processor (use Preset.with_levels first)",
                stacklevel=2,
            )
        for effect in p.chain:
            if effect == "eq":
                kinds = {"low_shelf": pb.LowShelfFilter, "peak": pb.PeakFilter,
                         "high_shelf": pb.HighShelfFilter}  # fmt: skip
                for b, kind in enumerate(EQ_BAND_TYPES):
                    plugins.append(kinds[kind](
                        cutoff_frequency_hz=v["eq.freq_hz"][b], gain_db=v["eq.gain_db"][b],  # type: ignore[index]
                        q=v["eq.q"][b],  # type: ignore[index]
                    ))  # fmt: skip
            elif effect == "compressor":
                plugins.append(pb.Compressor(
                    threshold_db=v["compressor.threshold_db"], ratio=v["compressor.ratio"],
                    attack_ms=v["compressor.attack_ms"], release_ms=v["compressor.release_ms"],
                ))  # fmt: skip
                if v["compressor.makeup_db"] != 0.0:
                    plugins.append(pb.Gain(gain_db=v["compressor.makeup_db"]))
            elif effect == "pan":
                position = torch.tensor([float(v["pan.pan"])], dtype=torch.float64)  # type: ignore[arg-type]
                left, right = F.pan_gains(position, p.pan_law)
                c_left, c_right = F.pan_gains(torch.zeros_like(position), p.pan_law)
                gains = np.array([float(left / c_left), float(right / c_right)])
                ir = np.zeros((2, _PAN_IR_TAPS), dtype=np.float32)
                ir[:, 0] = gains
                peak = float(np.abs(gains).max())
                if peak > 0:
                    plugins.append(pb.Convolution(ir, mix=1.0, sample_rate=rate))
                    plugins.append(pb.Gain(gain_db=20 * math.log10(peak / _JUCE_IR_NORM)))
                else:  # pragma: no cover - a law never silences both sides
                    plugins.append(pb.Gain(gain_db=-200.0))
            elif effect == "imager":
                if float(v["imager.width"]) != 1.0:  # type: ignore[arg-type]
                    message = (
                        f"preset stem {stem!r}: the stereo imager (width "
                        f"{float(v['imager.width']):.3g}) has no pedalboard equivalent; left out"  # type: ignore[arg-type]
                    )
                    if strict:
                        raise ValueError(message)
                    warnings.warn(message, stacklevel=2)
            elif effect == "reverb":
                ir_len = self.reverb_ir_length
                if rate != self.sample_rate:
                    ir_len = max(2, math.ceil(ir_len * rate / self.sample_rate))
                ir = F.reverb_impulse_response(
                    rate,
                    float(v["reverb.rt60_s"]),
                    float(v["reverb.predelay_ms"]),  # type: ignore[arg-type]
                    float(v["reverb.damping"]),
                    torch.tensor([p.reverb_seed]),  # type: ignore[arg-type]
                    length=ir_len,
                    dtype=torch.float64,
                )[0]
                energy = float(ir.square().sum(-1).max())
                mix = float(v["reverb.mix"])  # type: ignore[arg-type]
                wet_gain = mix * math.sqrt(energy) / _JUCE_IR_NORM
                paths = []
                if mix < 1.0:
                    paths.append(pb.Gain(gain_db=20 * math.log10(1.0 - mix)))
                if mix > 0.0:
                    paths.append(pb.Chain([
                        pb.Convolution(ir.numpy().astype(np.float32), mix=1.0, sample_rate=rate),
                        pb.Gain(gain_db=20 * math.log10(wet_gain)),
                    ]))  # fmt: skip
                plugins.append(pb.Mix(paths) if len(paths) > 1 else paths[0])
            elif effect == "gain":
                plugins.append(pb.Gain(gain_db=v["gain.gain_db"]))
                if p.invert_polarity:
                    plugins.append(pb.Invert())
            if effect != "gain" and levels is not None and effect in levels:
                plugins.append(pb.Gain(gain_db=levels[effect]))
        return pb.Pedalboard(plugins)


def stage_levels_db(
    preset: Preset,
    stem: str,
    audio: Tensor,
    sample_rate: float,
    dtype: torch.dtype = torch.float32,
) -> dict[str, float]:
    """The gain in dB of fxdsp's RMS match after each active processor but the gain, for one
    stem's chain applied to ``audio`` (``(1 or 2, samples)``): ``20·log10(rms(x) /
    max(rms(out), 1e-8))`` with ``x`` the chain's input and ``out`` the processor's output,
    computed in ``dtype`` (float32 by default, as fxdsp renders: one more pass of the chain).

    Raises:
        ValueError: an unknown stem, malformed audio.
    """
    if not isinstance(audio, Tensor) or audio.ndim != 2 or audio.shape[0] not in (1, 2):
        shape = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
        raise ValueError(f"audio must be (1 or 2, samples), got {shape}")
    from cloner.parametric import render_stages

    params = preset.to_params([stem], sample_rate, dtype=dtype)
    with torch.no_grad():
        return render_stages(params, audio.to(dtype)[None])[1]


def apply_preset(
    preset: Preset,
    stems: Mapping[str, Tensor],
    sample_rate: float,
    *,
    progress: bool = False,
) -> dict[str, Tensor]:
    """Each stem through its chain in the preset with fxdsp, whole (the RMS match recomputed on
    this input): ``{name: (2, samples)}`` float32 on the CPU, at the input's rate and length.

    Raises:
        ValueError: a stem the preset does not have, malformed audio.
    """
    missing = [s for s in stems if s not in preset.stems]
    if missing:
        raise ValueError(f"the preset has no stem(s) {missing} (it has {sorted(preset.stems)})")
    out = {}
    names: Any = list(stems)
    if progress:
        from tqdm import tqdm

        names = tqdm(names, desc="chains", unit="stem")
    for name in names:
        x = stems[name]
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[0] not in (1, 2):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"stem {name!r} must be (1 or 2, samples), got {shape}")
        params = preset.to_params([name], sample_rate)
        with torch.no_grad():
            out[name] = Manipulator(params)(x.float()[None])[0].cpu()
    return out
