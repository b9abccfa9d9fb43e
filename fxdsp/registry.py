"""The one vocabulary of fxdsp: stems, effects, and the registry of effect families.

Every other part (the ``nn.Module`` effects, :class:`~fxdsp.chain_config.ChainConfig`,
:class:`~fxdsp.manipulator.FxParams`, the :class:`~fxdsp.manipulator.Manipulator`, the
:class:`~fxdsp.space.ParamSpace` a controller predicts, the data tools and the tests) takes its
names from here. A parameter has one name from end to end: the argument name of its
:mod:`fxdsp.functional` function (``threshold_db``, ``mix``, ``freq_hz``), qualified by its
family where a flat namespace holds several families (``"compressor.threshold_db"``,
``"reverb.mix"``, ``"eq.freq_hz"``). EQ band parameters are ``(batch, bands)``, one value per
band of :data:`EQ_BANDS`.

Each :class:`EffectFamily` holds its function and the :class:`~fxdsp.params.ParamSpec` of every
continuous argument: the range an ``nn.Module`` accepts and a controller is mapped onto, and the
outer bound of any :class:`~fxdsp.chain_config.ChainConfig` range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from fxdsp import functional as F
from fxdsp.functional.filters import DEFAULT_BAND_TYPES
from fxdsp.params import ParamSpec

__all__ = [
    "EFFECTS",
    "EQ_BANDS",
    "EQ_BAND_TYPES",
    "FAMILIES",
    "STEMS",
    "EffectFamily",
    "family",
    "qualified_names",
]

#: Stem names; an integer stem index points into this tuple.
STEMS: tuple[str, ...] = ("drums", "bass", "other", "vocals")

#: Effect names of the random chain, in chain order (also the column order of
#: ``FxParams.active``).
EFFECTS: tuple[str, ...] = ("eq", "compressor", "pan", "imager", "reverb", "gain")

#: The five bands of the parametric EQ, by name, and their filter kinds.
EQ_BANDS: tuple[str, ...] = ("low_shelf", "peak1", "peak2", "peak3", "high_shelf")
EQ_BAND_TYPES: tuple[str, ...] = tuple(DEFAULT_BAND_TYPES)
if len(EQ_BAND_TYPES) != len(EQ_BANDS):  # pragma: no cover - a guard on the two tables
    raise RuntimeError("EQ_BANDS and DEFAULT_BAND_TYPES disagree")


@dataclass(frozen=True)
class EffectFamily:
    """One effect: its function, its continuous parameters, its discrete arguments.

    Attributes:
        name: the effect's name (a key of ``probabilities`` for the chain's effects).
        function: the :mod:`fxdsp.functional` function; called as
            ``function(x, sample_rate, **values)`` when ``takes_sample_rate``, else
            ``function(x, **values)``.
        specs: one :class:`ParamSpec` per continuous argument (per argument and band for a
            banded family, in band-major order: band 0's parameters first).
        discrete: names of the non-continuous arguments the chain draws (pan law, reverb seed,
            polarity), with their dtype's kind: ``"int"`` or ``"bool"``.
        takes_sample_rate: whether ``function`` takes the sample rate second.
        bands: band names of a banded family (the EQ), empty otherwise.
    """

    name: str
    function: Callable[..., Tensor]
    specs: tuple[ParamSpec, ...]
    discrete: tuple[tuple[str, str], ...] = ()
    takes_sample_rate: bool = False
    bands: tuple[str, ...] = ()

    @property
    def param_names(self) -> tuple[str, ...]:
        """The continuous argument names, each once, in spec order."""
        return tuple(dict.fromkeys(s.name for s in self.specs))

    def spec(self, name: str, band: int | None = None) -> ParamSpec:
        """The spec of argument ``name`` (of band ``band`` for a banded family)."""
        for s in self.specs:
            if s.name == name and s.band == band:
                return s
        where = f" band {band}" if band is not None else ""
        raise ValueError(f"effect {self.name!r} has no parameter {name!r}{where}")

    def band_specs(self, name: str) -> tuple[ParamSpec, ...]:
        """The per-band specs of a banded argument (or the one spec of a scalar argument)."""
        found = tuple(s for s in self.specs if s.name == name)
        if not found:
            raise ValueError(
                f"effect {self.name!r} has no parameter {name!r}; it has {self.param_names}"
            )
        return found

    def qualified(self, name: str) -> str:
        """``"<family>.<name>"``, the parameter's key in flat namespaces."""
        return f"{self.name}.{name}"


def _eq_specs() -> tuple[ParamSpec, ...]:
    # band: f_min, f_max, f_default, q_min, q_max (ranges contain the reference's draws)
    table = {
        "low_shelf": (20.0, 500.0, 100.0, 0.1, 2.0),
        "peak1": (50.0, 2000.0, 500.0, 0.1, 10.0),
        "peak2": (200.0, 8000.0, 2000.0, 0.1, 10.0),
        "peak3": (1000.0, 16000.0, 5000.0, 0.1, 10.0),
        "high_shelf": (1000.0, 16000.0, 8000.0, 0.1, 2.0),
    }
    specs: list[ParamSpec] = []
    for b, band in enumerate(EQ_BANDS):
        f_lo, f_hi, f_def, q_lo, q_hi = table[band]
        specs += [
            ParamSpec("gain_db", -24.0, 24.0, 0.0, "dB", "lin", f"{band} gain", band=b),
            ParamSpec("freq_hz", f_lo, f_hi, f_def, "Hz", "log", f"{band} frequency", band=b),
            ParamSpec("q", q_lo, q_hi, 0.707, "", "log", f"{band} Q", band=b),
        ]
    return tuple(specs)


#: Every effect family, by name: the chain's six (``EFFECTS``) and the loudness normalizer.
FAMILIES: dict[str, EffectFamily] = {
    "eq": EffectFamily("eq", F.parametric_eq, _eq_specs(), takes_sample_rate=True, bands=EQ_BANDS),
    "compressor": EffectFamily(
        "compressor",
        F.compressor,
        (
            ParamSpec("threshold_db", -80.0, 0.0, -20.0, "dB", "lin", "threshold"),
            ParamSpec("ratio", 1.0, 40.0, 4.0, "", "log", "ratio"),
            ParamSpec("attack_ms", 0.1, 100.0, 10.0, "ms", "log", "attack time constant"),
            ParamSpec("release_ms", 10.0, 2000.0, 150.0, "ms", "log", "release time constant"),
            ParamSpec("knee_db", 0.0, 24.0, 0.0, "dB", "lin", "knee width"),
            ParamSpec("makeup_db", -12.0, 24.0, 0.0, "dB", "lin", "make-up gain"),
        ),
        takes_sample_rate=True,
    ),
    "pan": EffectFamily(
        "pan",
        F.pan,
        (ParamSpec("pan", -1.0, 1.0, 0.0, "", "lin", "position (−1 left, +1 right)"),),
        discrete=(("law", "int"),),
    ),
    "imager": EffectFamily(
        "imager",
        F.stereo_imager,
        (ParamSpec("width", 0.0, 2.0, 1.0, "", "lin", "0 mono, 1 unchanged, 2 all side"),),
    ),
    "reverb": EffectFamily(
        "reverb",
        F.reverb,
        (
            ParamSpec("rt60_s", 0.1, 8.0, 1.0, "s", "log", "reverberation time (lowest band)"),
            ParamSpec("predelay_ms", 0.0, 200.0, 10.0, "ms", "lin", "pre-delay"),
            ParamSpec("damping", 0.0, 1.0, 0.3, "", "lin", "high-frequency damping"),
            ParamSpec("mix", 0.0, 1.0, 0.25, "", "lin", "wet fraction"),
        ),
        discrete=(("seed", "int"),),
        takes_sample_rate=True,
    ),
    "gain": EffectFamily(
        "gain",
        F.gain,
        (ParamSpec("gain_db", -24.0, 24.0, 0.0, "dB", "lin", "gain"),),
        discrete=(("invert_polarity", "bool"),),
    ),
    "loudness": EffectFamily(
        "loudness",
        F.normalize_loudness,
        (ParamSpec("target_lufs", -70.0, 0.0, -14.0, "LUFS", "lin", "target loudness"),),
        takes_sample_rate=True,
    ),
}


def family(name: str) -> EffectFamily:
    """The family called ``name``, or a ``ValueError`` listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown effect {name!r}; expected one of {list(FAMILIES)}") from None


def qualified_names(effects: tuple[str, ...] = EFFECTS) -> tuple[str, ...]:
    """``"<family>.<param>"`` of every continuous parameter of ``effects``, in chain order."""
    return tuple(FAMILIES[e].qualified(n) for e in effects for n in FAMILIES[e].param_names)
