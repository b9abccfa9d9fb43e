"""Ranges and probabilities of the random effect chain (:mod:`fxdsp.manipulator`).

A :class:`ChainConfig` holds everything :func:`fxdsp.manipulator.sample_params` draws from:
per-effect application probabilities, the per-stem reverb probability, the probability of a
polarity flip, and a ``[low, high]`` range per continuous parameter (each drawn uniformly; a
range with ``low == high`` is a constant). The defaults are the reference FXmanipulator
(``REFERENCE.md``, "FXmanipulator, as the reference draws it"), one preset among others; a
config is plain data and round-trips through JSON and YAML::

    cfg = ChainConfig.reference()
    cfg.to_json("chain.json")
    cfg = ChainConfig.from_json("chain.json")      # or from_yaml (needs PyYAML)
    cfg = cfg.replace(probabilities={"pan": 1.0}, ranges={"imager_width": (0.5, 1.5)})

Choices where the reference is not reproducible (documented, see ``REFERENCE.md``): the
reference convolved an impulse-response set that is not distributed; here the reverb is
:func:`fxdsp.functional.reverb` (parametric, band-wise decaying noise) with ``rt60_s`` U(0.3, 3)
s, ``predelay_ms`` U(0, 40) ms and ``damping`` U(0, 1), used as a parallel send with dry weight
U(0, 0.5) (``mix = 1 − dry``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fxdsp.io import atomic_write_text
from fxdsp.registry import EFFECTS, STEMS

__all__ = [
    "EFFECTS",
    "PARAM_LIMITS",
    "REFERENCE_PROBABILITIES",
    "REFERENCE_RANGES",
    "REFERENCE_REVERB_PROBABILITIES",
    "STEMS",
    "ChainConfig",
]


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

#: Reference ranges, ``name: (low, high)``, each drawn uniformly (units in the name).
REFERENCE_RANGES: dict[str, tuple[float, float]] = {
    "eq_gain_db": (-15.0, 15.0),
    "eq_low_shelf_freq_hz": (30.0, 200.0),
    "eq_peak1_freq_hz": (200.0, 1000.0),
    "eq_peak2_freq_hz": (1000.0, 3000.0),
    "eq_peak3_freq_hz": (3000.0, 8000.0),
    "eq_high_shelf_freq_hz": (5000.0, 10000.0),
    "eq_shelf_q": (0.707, 0.707),
    "eq_peak_q": (0.1, 2.0),
    "compressor_threshold_db": (-80.0, -5.0),
    "compressor_ratio": (4.0, 40.0),
    "compressor_attack_ms": (1.0, 20.0),
    "compressor_release_ms": (50.0, 500.0),
    "compressor_knee_db": (0.0, 0.0),
    "pan_position": (-1.0, 1.0),
    "imager_width": (0.0, 2.0),
    "reverb_rt60_s": (0.3, 3.0),
    "reverb_predelay_ms": (0.0, 40.0),
    "reverb_damping": (0.0, 1.0),
    "reverb_dry": (0.0, 0.5),
    "gain_db": (-6.0, 9.0),
}

#: What each range may span (what the functional effects accept); ``None`` is unbounded.
PARAM_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "eq_gain_db": (-40.0, 40.0),
    "eq_low_shelf_freq_hz": (1.0, None),
    "eq_peak1_freq_hz": (1.0, None),
    "eq_peak2_freq_hz": (1.0, None),
    "eq_peak3_freq_hz": (1.0, None),
    "eq_high_shelf_freq_hz": (1.0, None),
    "eq_shelf_q": (0.01, 20.0),
    "eq_peak_q": (0.01, 20.0),
    "compressor_threshold_db": (-120.0, 0.0),
    "compressor_ratio": (1.0, 1000.0),
    "compressor_attack_ms": (0.01, 1000.0),
    "compressor_release_ms": (0.01, 5000.0),
    "compressor_knee_db": (0.0, 48.0),
    "pan_position": (-1.0, 1.0),
    "imager_width": (0.0, 2.0),
    "reverb_rt60_s": (0.01, 10.0),
    "reverb_predelay_ms": (0.0, 500.0),
    "reverb_damping": (0.0, 1.0),
    "reverb_dry": (0.0, 1.0),
    "gain_db": (-60.0, 60.0),
}


def _check_probability(name: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise ValueError(f"probability of {name!r} must be a number, got {type(p).__name__}")
    p = float(p)
    if not (0.0 <= p <= 1.0):  # also catches NaN
        raise ValueError(f"probability of {name!r} must be in [0, 1], got {p}")
    return p


@dataclass(frozen=True)
class ChainConfig:
    """Probabilities and ranges of the random effect chain.

    Attributes:
        probabilities: application probability per effect for ``eq``, ``compressor``, ``pan``,
            ``imager`` and ``gain`` (the reverb's is per stem).
        reverb_probabilities: the reverb's application probability per stem (keys: ``STEMS``).
        invert_polarity_probability: probability that an item whose gain is on also has its
            polarity inverted (the reference's polarity flip is part of its gain stage).
        ranges: ``name: (low, high)`` for every key of ``REFERENCE_RANGES``; values are drawn
            uniformly in ``[low, high)``; ``low == high`` is a constant. Units are in the names.
        sample_rate: in Hz, the rate the EQ frequencies, compressor times and reverb refer to.
        reverb_tail_rt60: the reverb's impulse response is ``ceil((max predelay + reverb_tail_rt60
            · max rt60) · sample_rate)`` samples long for every item (from the ranges' maxima, so
            an item's result never depends on the rest of its batch). The default 1.0 cuts the
            slowest tail where it has decayed by 60 dB (the definition of RT60; the tail is
            shorter than the 1.5 · rt60 = 90 dB of :func:`fxdsp.functional.reverb`'s own default,
            which costs about a third more time per chain; set 1.5 to match it).
        default_stem: the stem assumed when ``sample_params`` gets ``stems=None``.
    """

    probabilities: dict[str, float] = field(default_factory=lambda: dict(REFERENCE_PROBABILITIES))
    reverb_probabilities: dict[str, float] = field(
        default_factory=lambda: dict(REFERENCE_REVERB_PROBABILITIES)
    )
    invert_polarity_probability: float = 0.5
    ranges: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(REFERENCE_RANGES))
    sample_rate: float = 44100.0
    reverb_tail_rt60: float = 1.0
    default_stem: str = "other"

    def __post_init__(self) -> None:
        probs = dict(self.probabilities)
        expected = {e for e in EFFECTS if e != "reverb"}
        unknown = set(probs) - expected
        if unknown:
            raise ValueError(
                f"unknown effect(s) {sorted(unknown)} in probabilities; expected {sorted(expected)}"
                " (the reverb's probability is per stem: reverb_probabilities)"
            )
        missing = expected - set(probs)
        if missing:
            raise ValueError(f"probabilities is missing {sorted(missing)}")
        probs = {k: _check_probability(k, probs[k]) for k in EFFECTS if k in probs}
        rev = dict(self.reverb_probabilities)
        if set(rev) != set(STEMS):
            raise ValueError(
                f"reverb_probabilities must have exactly the stems {list(STEMS)}, got {sorted(rev)}"
            )
        rev = {s: _check_probability(f"reverb[{s}]", rev[s]) for s in STEMS}
        inv = _check_probability("invert_polarity", self.invert_polarity_probability)
        ranges: dict[str, tuple[float, float]] = {}
        given = dict(self.ranges)
        unknown = set(given) - set(REFERENCE_RANGES)
        if unknown:
            raise ValueError(
                f"unknown range name(s) {sorted(unknown)}; expected {sorted(REFERENCE_RANGES)}"
            )
        missing = set(REFERENCE_RANGES) - set(given)
        if missing:
            raise ValueError(f"ranges is missing {sorted(missing)}")
        for name in REFERENCE_RANGES:
            value = given[name]
            if isinstance(value, (str, bytes)) or len(value) != 2:
                raise ValueError(f"range {name!r} must be a (low, high) pair, got {value!r}")
            low, high = float(value[0]), float(value[1])
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(f"range {name!r} must have finite low <= high, got {value!r}")
            lim_lo, lim_hi = PARAM_LIMITS[name]
            if (lim_lo is not None and low < lim_lo) or (lim_hi is not None and high > lim_hi):
                raise ValueError(
                    f"range {name!r}=({low:g}, {high:g}) leaves the valid interval "
                    f"[{lim_lo}, {lim_hi}]"
                )
            ranges[name] = (low, high)
        sr = self.sample_rate
        if isinstance(sr, bool) or not isinstance(sr, (int, float)) or not sr > 0:
            raise ValueError(f"sample_rate must be a positive number, got {sr!r}")
        nyquist = float(sr) / 2
        for name in REFERENCE_RANGES:
            if name.endswith("_freq_hz") and ranges[name][1] >= nyquist:
                raise ValueError(
                    f"range {name!r} reaches {ranges[name][1]:g} Hz, not below the Nyquist "
                    f"frequency {nyquist:g} Hz of sample_rate={sr:g}"
                )
        if ranges["reverb_rt60_s"][0] <= 0:
            raise ValueError("range 'reverb_rt60_s' must be > 0")
        tail = self.reverb_tail_rt60
        if isinstance(tail, bool) or not isinstance(tail, (int, float)) or not tail > 0:
            raise ValueError(f"reverb_tail_rt60 must be a positive number, got {tail!r}")
        if self.default_stem not in STEMS:
            raise ValueError(f"default_stem must be one of {STEMS}, got {self.default_stem!r}")
        object.__setattr__(self, "probabilities", probs)
        object.__setattr__(self, "reverb_probabilities", rev)
        object.__setattr__(self, "invert_polarity_probability", inv)
        object.__setattr__(self, "ranges", ranges)
        object.__setattr__(self, "sample_rate", float(sr))
        object.__setattr__(self, "reverb_tail_rt60", float(tail))

    @classmethod
    def reference(cls) -> ChainConfig:
        """The reference FXmanipulator's preset (the defaults)."""
        return cls()

    @property
    def ir_length(self) -> int:
        """Reverb impulse-response length in samples, the same for every item."""
        pre_ms = self.ranges["reverb_predelay_ms"][1]
        rt60 = self.ranges["reverb_rt60_s"][1]
        return max(
            2, math.ceil((pre_ms / 1000.0 + self.reverb_tail_rt60 * rt60) * self.sample_rate)
        )

    def replace(
        self,
        *,
        probabilities: Mapping[str, float | Mapping[str, float]] | None = None,
        ranges: Mapping[str, tuple[float, float]] | None = None,
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
                    f"unknown range name {name!r}; expected one of {sorted(REFERENCE_RANGES)}"
                )
            data["ranges"][name] = value
        unknown = set(other) - {"sample_rate", "reverb_tail_rt60", "default_stem"}
        if unknown:
            raise ValueError(f"unknown ChainConfig field(s) {sorted(unknown)}")
        data.update(other)
        return ChainConfig.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (ranges as ``[low, high]`` lists)."""
        data = asdict(self)
        data["probabilities"] = dict(self.probabilities)
        data["reverb_probabilities"] = dict(self.reverb_probabilities)
        data["ranges"] = {k: [lo, hi] for k, (lo, hi) in self.ranges.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChainConfig:
        """Build from :meth:`to_dict` output; missing keys take the reference defaults.

        Missing entries inside ``probabilities``, ``reverb_probabilities`` and ``ranges`` also
        take the reference values, so a file may list only what it changes.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a chain config must be a mapping, got {type(data).__name__}")
        known = {"probabilities", "reverb_probabilities", "invert_polarity_probability"}
        known |= {"ranges", "sample_rate", "reverb_tail_rt60", "default_stem"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ChainConfig field(s) {sorted(unknown)}")
        kwargs: dict[str, Any] = dict(data)
        kwargs["probabilities"] = {**REFERENCE_PROBABILITIES, **data.get("probabilities", {})}
        kwargs["reverb_probabilities"] = {
            **REFERENCE_REVERB_PROBABILITIES,
            **data.get("reverb_probabilities", {}),
        }
        ranges = {**REFERENCE_RANGES, **data.get("ranges", {})}
        kwargs["ranges"] = {k: tuple(v) for k, v in ranges.items()}
        return cls(**kwargs)

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialize to JSON text; also write it to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> ChainConfig:
        """Load from a JSON file path, or from JSON text (a string starting with ``{``)."""
        text = source if isinstance(source, str) and source.lstrip().startswith("{") else None
        if text is None:
            text = Path(source).read_text()
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_yaml(cls, source: str | Path) -> ChainConfig:
        """Load from a YAML file path or YAML text (needs PyYAML: ``pip install pyyaml``)."""
        try:
            import yaml
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("ChainConfig.from_yaml needs PyYAML (pip install pyyaml)") from err
        path = Path(source) if not (isinstance(source, str) and "\n" in source) else None
        text = path.read_text() if path is not None and path.exists() else str(source)
        data = yaml.safe_load(text)
        if path is not None and not path.exists() and not isinstance(data, Mapping):
            raise FileNotFoundError(f"no such YAML file: {source}")
        return cls.from_dict(data)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Serialize to YAML text (needs PyYAML); also write it to ``path`` if given."""
        try:
            import yaml
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("ChainConfig.to_yaml needs PyYAML (pip install pyyaml)") from err
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            atomic_write_text(path, text)
        return text
