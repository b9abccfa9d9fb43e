"""Ranges and probabilities of the random effect chain (:mod:`fxdsp.manipulator`).

A :class:`ChainConfig` holds everything :func:`fxdsp.manipulator.sample_params` draws from:
per-effect application probabilities, the per-stem reverb probability, the probability of a
polarity flip, and a ``(low, high)`` range per continuous parameter (each drawn uniformly; a
range with ``low == high`` is a constant). Ranges are keyed by the parameter's one name,
``"<effect>.<argument>"`` (:mod:`fxdsp.registry`): ``"compressor.threshold_db"``,
``"reverb.mix"``. A banded EQ argument (``"eq.gain_db"``, ``"eq.freq_hz"``, ``"eq.q"``) takes
one pair for every band or a list of one pair per band. Every range must lie inside its
parameter's spec range (the one table of valid ranges, in the registry).

The defaults are the reference FXmanipulator (``REFERENCE.md``), one preset among others; a
config is plain data and round-trips through JSON and YAML::

    cfg = ChainConfig.reference()
    cfg.to_json("chain.json")
    cfg = ChainConfig.from_json("chain.json")      # or from_yaml (needs PyYAML)
    cfg = cfg.replace(probabilities={"pan": 1.0}, ranges={"imager.width": (0.5, 1.5)})

Choices where the reference is not reproducible (documented, see ``REFERENCE.md``): the
reference convolved an impulse-response set that is not distributed; here the reverb is
:func:`fxdsp.functional.reverb` (parametric, band-wise decaying noise) with ``rt60_s`` U(0.3, 3)
s, ``predelay_ms`` U(0, 40) ms and ``damping`` U(0, 1), used as a parallel send whose wet
fraction ``mix`` is U(0.5, 1) (the reference's dry weight U(0, 0.5) is ``1 − mix``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fxdsp.config import ConfigBase, check_number
from fxdsp.registry import EFFECTS, EQ_BANDS, FAMILIES, STEMS, qualified_names

__all__ = [
    "EFFECTS",
    "MAX_REVERB_TAIL_RT60",
    "REFERENCE_PROBABILITIES",
    "REFERENCE_RANGES",
    "REFERENCE_REVERB_PROBABILITIES",
    "STEMS",
    "ChainConfig",
    "Range",
]

#: A scalar parameter's ``(low, high)``, or a banded one's tuple of one pair per band.
Range = tuple[float, float] | tuple[tuple[float, float], ...]

#: Reference application probabilities (the reverb's is per stem, below).
REFERENCE_PROBABILITIES: dict[str, float] = {
    "eq": 0.9,
    "compressor": 0.9,
    "pan": 0.3,
    "imager": 0.8,
    "gain": 0.5,
}
#: Reference reverb probability per stem.
REFERENCE_REVERB_PROBABILITIES: dict[str, float] = {
    "drums": 0.5,
    "bass": 0.01,
    "other": 0.7,
    "vocals": 0.9,
}

#: Reference ranges by qualified name, each drawn uniformly (units: the registry's specs).
REFERENCE_RANGES: dict[str, Range] = {
    "eq.gain_db": (-15.0, 15.0),
    "eq.freq_hz": (
        (30.0, 200.0),
        (200.0, 1000.0),
        (1000.0, 3000.0),
        (3000.0, 8000.0),
        (5000.0, 10000.0),
    ),
    "eq.q": ((0.707, 0.707), (0.1, 2.0), (0.1, 2.0), (0.1, 2.0), (0.707, 0.707)),
    "compressor.threshold_db": (-80.0, -5.0),
    "compressor.ratio": (4.0, 40.0),
    "compressor.attack_ms": (1.0, 20.0),
    "compressor.release_ms": (50.0, 500.0),
    "compressor.knee_db": (0.0, 0.0),
    "compressor.makeup_db": (0.0, 0.0),
    "pan.pan": (-1.0, 1.0),
    "imager.width": (0.0, 2.0),
    "reverb.rt60_s": (0.3, 3.0),
    "reverb.predelay_ms": (0.0, 40.0),
    "reverb.damping": (0.0, 1.0),
    "reverb.mix": (0.5, 1.0),
    "gain.gain_db": (-6.0, 9.0),
}
if tuple(REFERENCE_RANGES) != qualified_names():  # pragma: no cover - a guard on the tables
    raise RuntimeError("REFERENCE_RANGES must list every chain parameter in registry order")

#: Largest ``reverb_tail_rt60``: the impulse response is at most this many RT60s long.
MAX_REVERB_TAIL_RT60 = 3.0


def _check_probability(name: str, p: Any) -> float:
    return check_number(f"probability of {name!r}", p, low=0.0, high=1.0)


def _spec_family(key: str) -> tuple[str, str]:
    effect, _, name = key.partition(".")
    return effect, name


def _pair(key: str, value: Any) -> tuple[float, float]:
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
        raise ValueError(f"range {key!r} must be a (low, high) pair, got {value!r}")
    if len(value) != 2:
        raise ValueError(f"range {key!r} must be a (low, high) pair, got {value!r}")
    low = check_number(f"range {key!r} low", value[0])
    high = check_number(f"range {key!r} high", value[1])
    if low > high:
        raise ValueError(f"range {key!r} must have low <= high, got {value!r}")
    return low, high


def _check_range(key: str, value: Any, sample_rate: float) -> Range:
    """Validate one range against its specs (and the Nyquist frequency for Hz)."""
    effect, name = _spec_family(key)
    specs = FAMILIES[effect].band_specs(name)
    banded = specs[0].band is not None
    if banded:
        nested = (
            not isinstance(value, (str, bytes, Mapping))
            and hasattr(value, "__len__")
            and len(value) > 0
            and all(hasattr(v, "__len__") and not isinstance(v, str) for v in value)
        )
        if nested:
            if len(value) != len(specs):
                raise ValueError(
                    f"range {key!r} needs one (low, high) pair per band {EQ_BANDS} or one pair "
                    f"for all, got {len(value)} pairs"
                )
            pairs = [_pair(f"{key}[{b}]", v) for b, v in enumerate(value)]
        else:
            pairs = [_pair(key, value)] * len(specs)
    else:
        pairs = [_pair(key, value)]
    for spec, (low, high) in zip(specs, pairs, strict=True):
        where = key if spec.band is None else f"{key}[{EQ_BANDS[spec.band]}]"
        if low < spec.minimum or high > spec.maximum:
            raise ValueError(
                f"range {where}=({low:g}, {high:g}) leaves the parameter's range {spec.range_str}"
            )
        if spec.unit == "Hz" and high >= sample_rate / 2:
            raise ValueError(
                f"range {where} reaches {high:g} Hz, not below the Nyquist frequency "
                f"{sample_rate / 2:g} Hz of sample_rate={sample_rate:g}"
            )
    return tuple(pairs) if banded else pairs[0]


@dataclass(frozen=True)
class ChainConfig(ConfigBase):
    """Probabilities and ranges of the random effect chain.

    Attributes:
        probabilities: application probability per effect for ``eq``, ``compressor``, ``pan``,
            ``imager`` and ``gain`` (the reverb's is per stem).
        reverb_probabilities: the reverb's application probability per stem (keys: ``STEMS``).
        invert_polarity_probability: probability that an item whose gain is on also has its
            polarity inverted (the reference's polarity flip is part of its gain stage).
        ranges: ``"<effect>.<argument>": (low, high)`` for every chain parameter (see
            ``REFERENCE_RANGES``; a banded EQ argument has one pair per band); values are drawn
            uniformly in ``[low, high)``; ``low == high`` is a constant. Each range lies inside
            the registry spec's range.
        sample_rate: in Hz, the rate the EQ frequencies, compressor times and reverb refer to.
        reverb_tail_rt60: the reverb's impulse response is ``ceil((max predelay +
            reverb_tail_rt60 · max rt60) · sample_rate)`` samples long for every item (from the
            ranges' maxima, so an item's result never depends on the rest of its batch); in
            ``(0, MAX_REVERB_TAIL_RT60]``. The default 1.0 cuts the slowest tail where it has
            decayed by 60 dB (the definition of RT60; :func:`fxdsp.functional.reverb`'s own
            default of 1.5 · rt60 = 90 dB costs about a third more time per chain).
        default_stem: the stem assumed when ``sample_params`` gets ``stems=None``.
        level_match: every processor but the gain is followed by an RMS match to the chain
            input's level (the reference's, default); False lets each processor change the
            level as it does alone (a compressor without makeup turns down, a boost turns up,
            a reverb send adds), as real mixing chains do. Read by the callers that build the
            :class:`~fxdsp.Manipulator` from a config (``Manipulator(params, level_match=...)``).
    """

    probabilities: dict[str, float] = field(default_factory=lambda: dict(REFERENCE_PROBABILITIES))
    reverb_probabilities: dict[str, float] = field(
        default_factory=lambda: dict(REFERENCE_REVERB_PROBABILITIES)
    )
    invert_polarity_probability: float = 0.5
    ranges: dict[str, Range] = field(default_factory=lambda: dict(REFERENCE_RANGES))
    sample_rate: float = 44100.0
    reverb_tail_rt60: float = 1.0
    default_stem: str = "other"
    level_match: bool = True

    def __post_init__(self) -> None:
        for name in ("probabilities", "reverb_probabilities", "ranges"):
            if not isinstance(getattr(self, name), Mapping):
                value = getattr(self, name)
                raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
        probs = dict(self.probabilities)
        expected = {e for e in EFFECTS if e != "reverb"}
        unknown = set(probs) - expected
        if unknown:
            raise ValueError(
                f"unknown effect(s) {sorted(map(str, unknown))} in probabilities; expected "
                f"{sorted(expected)} (the reverb's probability is per stem: reverb_probabilities)"
            )
        missing = expected - set(probs)
        if missing:
            raise ValueError(f"probabilities is missing {sorted(missing)}")
        probs = {k: _check_probability(k, probs[k]) for k in EFFECTS if k in probs}
        rev = dict(self.reverb_probabilities)
        if set(rev) != set(STEMS):
            raise ValueError(
                f"reverb_probabilities must have exactly the stems {list(STEMS)}, got "
                f"{sorted(map(str, rev))}"
            )
        rev = {s: _check_probability(f"reverb[{s}]", rev[s]) for s in STEMS}
        inv = _check_probability("invert_polarity", self.invert_polarity_probability)
        sr = check_number("sample_rate", self.sample_rate, low=0.0, low_open=True, high=1e6)
        given = dict(self.ranges)
        unknown = set(given) - set(REFERENCE_RANGES)
        if unknown:
            raise ValueError(
                f"unknown range name(s) {sorted(map(str, unknown))}; expected some of "
                f"{list(REFERENCE_RANGES)}"
            )
        missing = set(REFERENCE_RANGES) - set(given)
        if missing:
            raise ValueError(f"ranges is missing {sorted(missing)}")
        ranges = {k: _check_range(k, given[k], sr) for k in REFERENCE_RANGES}
        tail = check_number(
            "reverb_tail_rt60",
            self.reverb_tail_rt60,
            low=0.0,
            low_open=True,
            high=MAX_REVERB_TAIL_RT60,
        )
        if self.default_stem not in STEMS:
            raise ValueError(f"default_stem must be one of {STEMS}, got {self.default_stem!r}")
        if not isinstance(self.level_match, bool):
            raise ValueError(f"level_match must be true or false, got {self.level_match!r}")
        object.__setattr__(self, "probabilities", probs)
        object.__setattr__(self, "reverb_probabilities", rev)
        object.__setattr__(self, "invert_polarity_probability", inv)
        object.__setattr__(self, "ranges", ranges)
        object.__setattr__(self, "sample_rate", sr)
        object.__setattr__(self, "reverb_tail_rt60", tail)

    @classmethod
    def reference(cls) -> ChainConfig:
        """The reference FXmanipulator's preset (the defaults)."""
        return cls()

    def band_ranges(self, key: str) -> tuple[tuple[float, float], ...]:
        """One ``(low, high)`` per spec of ``key`` (one per band of a banded argument)."""
        if key not in self.ranges:
            raise ValueError(f"unknown range name {key!r}; expected one of {list(self.ranges)}")
        value = self.ranges[key]
        return value if isinstance(value[0], tuple) else (value,)  # type: ignore[return-value]

    @property
    def ir_length(self) -> int:
        """Reverb impulse-response length in samples, the same for every item."""
        pre_ms = self.ranges["reverb.predelay_ms"][1]
        rt60 = self.ranges["reverb.rt60_s"][1]
        seconds = float(pre_ms) / 1000.0 + self.reverb_tail_rt60 * float(rt60)  # type: ignore[arg-type]
        return max(2, math.ceil(seconds * self.sample_rate))

    def replace(
        self,
        *,
        probabilities: Mapping[str, float | Mapping[str, float]] | None = None,
        ranges: Mapping[str, Any] | None = None,
        **other: Any,
    ) -> ChainConfig:
        """A copy with some probabilities, ranges or other fields replaced.

        Args:
            probabilities: by effect name (``EFFECTS``); ``"reverb"`` takes one number (every
                stem) or a ``{stem: p}`` mapping; ``"invert_polarity"`` is also accepted.
            ranges: ``{name: (low, high)}`` replacing those ranges.
            **other: other fields (``sample_rate``, ``reverb_tail_rt60``, ``default_stem``).

        Raises:
            ValueError: an unknown effect, stem, range or field name, or a bad value.
        """
        data = self.to_dict()
        if probabilities is not None and not isinstance(probabilities, Mapping):
            raise ValueError(f"probabilities must be a mapping, got {probabilities!r}")
        if ranges is not None and not isinstance(ranges, Mapping):
            raise ValueError(f"ranges must be a mapping, got {ranges!r}")
        for name, value in (probabilities or {}).items():
            if name == "reverb":
                if isinstance(value, Mapping):
                    unknown = set(value) - set(STEMS)
                    if unknown:
                        raise ValueError(f"unknown stem(s) {sorted(unknown)}; expected {STEMS}")
                    data["reverb_probabilities"].update({s: value[s] for s in value})
                else:
                    data["reverb_probabilities"] = dict.fromkeys(STEMS, value)
            elif name == "invert_polarity":
                data["invert_polarity_probability"] = value
            elif name in EFFECTS:
                data["probabilities"][name] = value
            else:
                raise ValueError(
                    f"unknown effect {name!r} in probabilities; expected one of "
                    f"{[*EFFECTS, 'invert_polarity']}"
                )
        for name, value in (ranges or {}).items():
            if name not in REFERENCE_RANGES:
                raise ValueError(
                    f"unknown range name {name!r}; expected one of {list(REFERENCE_RANGES)}"
                )
            data["ranges"][name] = value
        unknown = set(other) - {"sample_rate", "reverb_tail_rt60", "default_stem", "level_match"}
        if unknown:
            raise ValueError(f"unknown ChainConfig field(s) {sorted(unknown)}")
        data.update(other)
        return ChainConfig.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (ranges as ``[low, high]`` lists, per band where they differ)."""
        ranges: dict[str, Any] = {}
        for key in self.ranges:
            pairs = [list(p) for p in self.band_ranges(key)]
            ranges[key] = pairs[0] if all(p == pairs[0] for p in pairs) else pairs
        return {
            "probabilities": dict(self.probabilities),
            "reverb_probabilities": dict(self.reverb_probabilities),
            "invert_polarity_probability": self.invert_polarity_probability,
            "ranges": ranges,
            "sample_rate": self.sample_rate,
            "reverb_tail_rt60": self.reverb_tail_rt60,
            "default_stem": self.default_stem,
            # Written only when off, so that every reference-semantics config keeps its JSON.
            **({} if self.level_match else {"level_match": False}),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ChainConfig:
        """Build from :meth:`to_dict` output; missing keys take the reference defaults.

        Missing entries inside ``probabilities``, ``reverb_probabilities`` and ``ranges`` also
        take the reference values, so a file may list only what it changes.

        Raises:
            ValueError: not a mapping, an unknown field or name, or a bad value.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a chain config must be a mapping, got {type(data).__name__}")
        kwargs: dict[str, Any] = dict(data)
        for name, base in (
            ("probabilities", REFERENCE_PROBABILITIES),
            ("reverb_probabilities", REFERENCE_REVERB_PROBABILITIES),
            ("ranges", REFERENCE_RANGES),
        ):
            if name in data:
                if not isinstance(data[name], Mapping):
                    raise ValueError(
                        f"{name} must be a mapping, got {type(data[name]).__name__}: {data[name]!r}"
                    )
                kwargs[name] = {**base, **data[name]}
        return super().from_dict(kwargs)
