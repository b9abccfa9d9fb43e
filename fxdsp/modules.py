"""``nn.Module`` effects: thin wrappers over :mod:`fxdsp.functional` with parameter specs.

Each effect stores its parameters (physical units) as learnable ``nn.Parameter``s, validated
against its :class:`~fxdsp.params.ParamSpec` list on construction. A call may override any of
them per item, or take a controller's normalised ``[0, 1]`` output::

    comp = Compressor(threshold_db=-24.0, ratio=4.0)
    y = comp(x)                                   # the stored values
    y = comp(x, threshold_db=torch.tensor([-30.0, -10.0]))   # per-item override
    y = comp.forward_normalized(x, u)             # u: (batch, len(comp.specs())) in [0, 1]

Effects compose like the thing they are: ``torch.nn.Sequential(EQ(), Compressor(), Reverb())``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from fxdsp import functional as F
from fxdsp._checks import ParamLike, check_sample_rate
from fxdsp.params import ParamSpec, denormalize

__all__ = [
    "Compressor",
    "Effect",
    "Gain",
    "LoudnessNormalize",
    "Panner",
    "ParametricEQ",
    "Reverb",
    "StereoImager",
]


class Effect(nn.Module):
    """Base class: a list of scalar :class:`ParamSpec`s, stored values and per-call overrides."""

    SPECS: ClassVar[tuple[ParamSpec, ...]] = ()

    def __init__(self, sample_rate: float = 44100.0, **values: float) -> None:
        super().__init__()
        self.sample_rate = check_sample_rate(sample_rate)
        names = {s.name for s in self.specs()}
        unknown = set(values) - names
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no parameter(s) {sorted(unknown)}; "
                f"it has {sorted(names)}"
            )
        for spec in self.SPECS:
            value = values.get(spec.name, spec.default)
            spec.validate(value)
            self.register_parameter(spec.name, nn.Parameter(torch.tensor(float(value))))

    @classmethod
    def specs(cls) -> tuple[ParamSpec, ...]:
        """The effect's parameters, in the order of the normalised vector."""
        return cls.SPECS

    def resolve(self, overrides: dict[str, ParamLike]) -> dict[str, ParamLike]:
        """Stored values, replaced by validated per-call ``overrides``."""
        spec_by_name = {s.name: s for s in self.specs()}
        unknown = set(overrides) - set(spec_by_name)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {sorted(unknown)}")
        out: dict[str, ParamLike] = {}
        for name, spec in spec_by_name.items():
            if name in overrides:
                spec.validate(overrides[name])
                out[name] = overrides[name]
            else:
                out[name] = self._stored(name)
        return out

    def _stored(self, name: str) -> ParamLike:
        value = getattr(self, name)
        self.spec(name).validate(value)
        return value

    def spec(self, name: str) -> ParamSpec:
        for s in self.specs():
            if s.name == name:
                return s
        raise KeyError(name)

    def denormalize(self, u: Tensor) -> dict[str, Tensor]:
        """``(batch, n_params)`` in ``[0, 1]`` → ``{name: (batch,) physical value}``."""
        return denormalize(self.specs(), u)

    def forward_normalized(self, x: Tensor, u: Tensor) -> Tensor:
        """Apply the effect with parameters given as a controller's ``[0, 1]`` output."""
        return self(x, **self.denormalize(u.to(x.dtype)))

    def extra_repr(self) -> str:
        parts = []
        for s in self.SPECS:
            v = getattr(self, s.name).detach()
            parts.append(f"{s.name}={float(v):g}{(' ' + s.unit) if s.unit else ''}")
        return f"sample_rate={self.sample_rate:g}, " + ", ".join(parts)

    def _param(self, value: ParamLike, x: Tensor) -> ParamLike:
        """Stored 0-d parameters follow the audio's dtype (their graph is kept)."""
        if isinstance(value, Tensor) and value.ndim == 0:
            return value.to(device=x.device, dtype=x.dtype)
        return value


class Gain(Effect):
    """Gain in dB with optional polarity inversion (:func:`fxdsp.functional.gain`)."""

    SPECS = (ParamSpec("gain_db", -24.0, 24.0, 0.0, "dB", "lin", "gain"),)

    def __init__(
        self, gain_db: float = 0.0, invert_polarity: bool = False, sample_rate: float = 44100.0
    ) -> None:
        super().__init__(sample_rate, gain_db=gain_db)
        self.invert_polarity = invert_polarity

    def forward(
        self, x: Tensor, invert_polarity: bool | Tensor | None = None, **params: ParamLike
    ) -> Tensor:
        p = self.resolve(params)
        inv = self.invert_polarity if invert_polarity is None else invert_polarity
        return F.gain(x, self._param(p["gain_db"], x), invert_polarity=inv)


class Compressor(Effect):
    """Stereo-linked feed-forward compressor (:func:`fxdsp.functional.compressor`)."""

    SPECS = (
        ParamSpec("threshold_db", -80.0, 0.0, -20.0, "dB", "lin", "threshold"),
        ParamSpec("ratio", 1.0, 40.0, 4.0, "", "log", "ratio"),
        ParamSpec("attack_ms", 0.1, 100.0, 10.0, "ms", "log", "attack time constant"),
        ParamSpec("release_ms", 10.0, 2000.0, 150.0, "ms", "log", "release time constant"),
        ParamSpec("knee_db", 0.0, 24.0, 0.0, "dB", "lin", "knee width"),
        ParamSpec("makeup_db", -12.0, 24.0, 0.0, "dB", "lin", "make-up gain"),
    )

    def __init__(self, sample_rate: float = 44100.0, **values: float) -> None:
        super().__init__(sample_rate, **values)

    def forward(self, x: Tensor, **params: ParamLike) -> Tensor:
        p = {k: self._param(v, x) for k, v in self.resolve(params).items()}
        return F.compressor(x, self.sample_rate, **p)


class Panner(Effect):
    """Panning with a pan law (:func:`fxdsp.functional.pan`); mono in, stereo out."""

    SPECS = (ParamSpec("pan", -1.0, 1.0, 0.0, "", "lin", "position (−1 left, +1 right)"),)

    def __init__(
        self, pan: float = 0.0, law: str = "constant_power", sample_rate: float = 44100.0
    ) -> None:
        super().__init__(sample_rate, pan=pan)
        if law not in F.PAN_LAWS:
            raise ValueError(f"unknown pan law {law!r}; expected one of {F.PAN_LAWS}")
        self.law = law

    def forward(self, x: Tensor, law: str | Tensor | None = None, **params: ParamLike) -> Tensor:
        p = self.resolve(params)
        return F.pan(x, self._param(p["pan"], x), law=self.law if law is None else law)


class StereoImager(Effect):
    """Mid/side stereo width with energy kept (:func:`fxdsp.functional.stereo_imager`)."""

    SPECS = (ParamSpec("width", 0.0, 2.0, 1.0, "", "lin", "0 mono, 1 unchanged, 2 all-side"),)

    def __init__(self, width: float = 1.0, sample_rate: float = 44100.0) -> None:
        super().__init__(sample_rate, width=width)

    def forward(self, x: Tensor, **params: ParamLike) -> Tensor:
        return F.stereo_imager(x, self._param(self.resolve(params)["width"], x))


class Reverb(Effect):
    """Parametric stereo convolution reverb (:func:`fxdsp.functional.reverb`)."""

    SPECS = (
        ParamSpec("rt60_s", 0.1, 8.0, 1.0, "s", "log", "reverberation time"),
        ParamSpec("predelay_ms", 0.0, 200.0, 10.0, "ms", "lin", "pre-delay"),
        ParamSpec("damping", 0.0, 1.0, 0.3, "", "lin", "high-frequency damping"),
        ParamSpec("mix", 0.0, 1.0, 0.25, "", "lin", "wet fraction"),
    )

    def __init__(self, sample_rate: float = 44100.0, seed: int = 0, **values: float) -> None:
        super().__init__(sample_rate, **values)
        self.seed = seed

    def forward(self, x: Tensor, seed: int | Tensor | None = None, **params: ParamLike) -> Tensor:
        p = {k: self._param(v, x) for k, v in self.resolve(params).items()}
        return F.reverb(x, self.sample_rate, seed=self.seed if seed is None else seed, **p)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", seed={self.seed}"


class LoudnessNormalize(Effect):
    """Integrated-loudness normalisation (:func:`fxdsp.functional.normalize_loudness`)."""

    SPECS = (ParamSpec("target_lufs", -70.0, 0.0, -14.0, "LUFS", "lin", "target loudness"),)

    def __init__(self, target_lufs: float = -14.0, sample_rate: float = 44100.0) -> None:
        super().__init__(sample_rate, target_lufs=target_lufs)

    def forward(self, x: Tensor, **params: ParamLike) -> Tensor:
        target = self._param(self.resolve(params)["target_lufs"], x)
        return F.normalize_loudness(x, self.sample_rate, target)


# Band layout of the reference's 5-band EQ, with ranges that contain the reference's draws.
_EQ_BANDS: tuple[tuple[str, str, float, float, float, float, float, float], ...] = (
    # name, kind, f_min, f_max, f_default, q_min, q_max, q_default
    ("low_shelf", "low_shelf", 20.0, 500.0, 100.0, 0.1, 2.0, 0.707),
    ("peak1", "peak", 50.0, 2000.0, 500.0, 0.1, 10.0, 0.707),
    ("peak2", "peak", 200.0, 8000.0, 2000.0, 0.1, 10.0, 0.707),
    ("peak3", "peak", 1000.0, 16000.0, 5000.0, 0.1, 10.0, 0.707),
    ("high_shelf", "high_shelf", 1000.0, 16000.0, 8000.0, 0.1, 2.0, 0.707),
)


def _eq_specs() -> tuple[ParamSpec, ...]:
    specs = []
    for name, _, f_lo, f_hi, f_def, q_lo, q_hi, q_def in _EQ_BANDS:
        specs += [
            ParamSpec(f"{name}_gain_db", -24.0, 24.0, 0.0, "dB", "lin", f"{name} gain"),
            ParamSpec(f"{name}_freq_hz", f_lo, f_hi, f_def, "Hz", "log", f"{name} frequency"),
            ParamSpec(f"{name}_q", q_lo, q_hi, q_def, "", "log", f"{name} Q"),
        ]
    return tuple(specs)


class ParametricEQ(Effect):
    """The exact five-band parametric EQ (:func:`fxdsp.functional.parametric_eq`).

    Bands: low shelf, three peaks, high shelf. Parameters are named ``<band>_gain_db``,
    ``<band>_freq_hz`` and ``<band>_q``; the constructor also takes whole vectors
    ``gain_db``, ``freq_hz`` and ``q`` (5 values each) and so does ``forward`` (as ``(batch, 5)``
    tensors).
    """

    SPECS = _eq_specs()
    BAND_TYPES = tuple(kind for _, kind, *_ in _EQ_BANDS)
    BAND_NAMES = tuple(name for name, *_ in _EQ_BANDS)

    def __init__(
        self,
        gain_db: Sequence[float] | None = None,
        freq_hz: Sequence[float] | None = None,
        q: Sequence[float] | None = None,
        sample_rate: float = 44100.0,
        **values: float,
    ) -> None:
        values = dict(values)
        for key, vector in (("gain_db", gain_db), ("freq_hz", freq_hz), ("q", q)):
            if vector is None:
                continue
            if len(vector) != len(self.BAND_NAMES):
                raise ValueError(f"{key} needs {len(self.BAND_NAMES)} values, got {len(vector)}")
            for band, v in zip(self.BAND_NAMES, vector, strict=True):
                values[f"{band}_{key}"] = float(v)
        super().__init__(sample_rate, **values)
        nyquist = self.sample_rate / 2
        for s in self.SPECS:
            value = float(getattr(self, s.name).detach())
            if s.unit == "Hz" and value >= nyquist:
                raise ValueError(
                    f"{s.name}={value:g} Hz is not below the Nyquist frequency {nyquist:g} Hz"
                )

    def forward(
        self,
        x: Tensor,
        gain_db: Tensor | None = None,
        freq_hz: Tensor | None = None,
        q: Tensor | None = None,
        **params: ParamLike,
    ) -> Tensor:
        p = self.resolve(params)
        batch = x.shape[0]

        def vector(key: str, given: Tensor | None) -> Tensor:
            if given is not None:
                for band, spec_name in enumerate(f"{b}_{key}" for b in self.BAND_NAMES):
                    self.spec(spec_name).validate(given[..., band])
                return given
            cols = []
            for band in self.BAND_NAMES:
                v: Any = p[f"{band}_{key}"]
                t = v if isinstance(v, Tensor) else torch.tensor(float(v))
                t = t.to(device=x.device, dtype=x.dtype)
                cols.append(t.expand(batch) if t.ndim == 0 else t)
            return torch.stack(cols, dim=-1)

        return F.parametric_eq(
            x,
            self.sample_rate,
            vector("gain_db", gain_db),
            vector("freq_hz", freq_hz),
            vector("q", q),
            band_types=self.BAND_TYPES,
        )
