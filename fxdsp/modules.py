"""``nn.Module`` effects: thin wrappers over :mod:`fxdsp.functional`, specs from the registry.

Each effect is one :class:`~fxdsp.registry.EffectFamily`: it stores the family's continuous
arguments (physical units, the functional argument names) as learnable ``nn.Parameter``s,
validated against the family's :class:`~fxdsp.params.ParamSpec` ranges on construction. A call
may override any of them per item, or take a controller's normalised ``[0, 1]`` output::

    comp = Compressor(threshold_db=-24.0, ratio=4.0)
    y = comp(x)                                   # the stored values
    y = comp(x, threshold_db=torch.tensor([-30.0, -10.0]))   # per-item override
    y = comp.forward_normalized(x, u)             # u: (batch, len(comp.specs())) in [0, 1]

The EQ's arguments are banded: ``gain_db``, ``freq_hz`` and ``q`` hold one value per band
(``(bands,)`` stored, ``(batch, bands)`` per call). Frequency ranges are capped below the
Nyquist frequency of the module's sample rate (at ``0.45 · sample_rate``), so every value a
controller can ask for is valid at that rate.

Effects compose like the thing they are: ``torch.nn.Sequential(ParametricEQ(), Compressor())``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from fxdsp._checks import ParamLike, check_sample_rate
from fxdsp.params import ParamSpec, denormalize
from fxdsp.registry import EQ_BAND_TYPES, EffectFamily, family

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

#: Highest frequency a module's spec allows, as a fraction of its sample rate (below Nyquist).
MAX_FREQ_FRACTION = 0.45


def _rate_specs(specs: Sequence[ParamSpec], sample_rate: float) -> tuple[ParamSpec, ...]:
    """Cap every Hz spec at ``MAX_FREQ_FRACTION · sample_rate``."""
    cap = MAX_FREQ_FRACTION * sample_rate
    out = []
    for s in specs:
        if s.unit == "Hz" and s.maximum > cap:
            if s.minimum >= cap:
                raise ValueError(
                    f"sample_rate={sample_rate:g} Hz is too low for {s.description} "
                    f"(its range starts at {s.minimum:g} Hz; the Nyquist frequency is "
                    f"{sample_rate / 2:g} Hz)"
                )
            s = replace(s, maximum=cap, default=min(s.default, cap))
        out.append(s)
    return tuple(out)


class Effect(nn.Module):
    """Base class: one registry family, its stored values and per-call overrides.

    Subclasses set ``FAMILY`` (a key of :data:`fxdsp.registry.FAMILIES`) and may take
    discrete arguments of their own (pan law, reverb seed, polarity).
    """

    FAMILY: ClassVar[str] = ""

    def __init__(self, sample_rate: float = 44100.0, **values: Any) -> None:
        super().__init__()
        self.sample_rate = check_sample_rate(sample_rate)
        self._specs = _rate_specs(self.family().specs, self.sample_rate)
        names = self.family().param_names
        unknown = set(values) - set(names)
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no parameter(s) {sorted(unknown)}; it has {names}"
            )
        for name in names:
            specs = self._name_specs(name)
            if name in values and values[name] is not None:
                value = self._as_values(name, values[name])
            else:
                value = torch.tensor([s.default for s in specs], dtype=torch.float32)
            for s, v in zip(specs, value.tolist(), strict=True):
                self._check(s, v)
            stored = value if self._banded(name) else value[0]
            self.register_parameter(name, nn.Parameter(stored.clone()))

    @classmethod
    def family(cls) -> EffectFamily:
        """The registry family this module wraps."""
        return family(cls.FAMILY)

    def specs(self) -> tuple[ParamSpec, ...]:
        """The continuous parameters, in the order of the normalised vector."""
        return self._specs

    def spec(self, key: str) -> ParamSpec:
        """The spec named ``key`` (``"q[2]"`` for band 2 of a banded parameter)."""
        for s in self._specs:
            if s.key == key:
                return s
        raise ValueError(f"{type(self).__name__} has no parameter {key!r}")

    def _name_specs(self, name: str) -> tuple[ParamSpec, ...]:
        return tuple(s for s in self._specs if s.name == name)

    def _banded(self, name: str) -> bool:
        return self._name_specs(name)[0].band is not None

    def _check(self, spec: ParamSpec, value: float) -> None:
        if spec.unit == "Hz" and value >= self.sample_rate / 2:
            raise ValueError(
                f"{spec.key}={value:g} Hz is not below the Nyquist frequency "
                f"{self.sample_rate / 2:g} Hz"
            )
        spec.validate(value)

    def _as_values(self, name: str, value: Any) -> Tensor:
        """A constructor value as a float tensor of one value per spec of ``name``."""
        n = len(self._name_specs(name))
        if isinstance(value, Tensor):
            t = value.detach().to(torch.float32).flatten()
        else:
            try:
                t = torch.tensor(value, dtype=torch.float32).flatten()
            except (TypeError, ValueError) as err:
                raise ValueError(f"{name} must be a number or {n} numbers, got {value!r}") from err
        if t.numel() != n:
            raise ValueError(f"{name} needs {n} value(s), got {t.numel()}")
        return t

    def resolve(self, x: Tensor, overrides: dict[str, Any]) -> dict[str, ParamLike]:
        """Stored values replaced by validated per-call ``overrides``, ready for the function.

        Stored 0-d parameters follow the audio's dtype and device (their graph is kept); a
        banded parameter becomes ``(batch, bands)``.
        """
        names = self.family().param_names
        unknown = set(overrides) - set(names)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {sorted(unknown)}")
        out: dict[str, ParamLike] = {}
        for name in names:
            specs = self._name_specs(name)
            if name in overrides and overrides[name] is not None:
                value = overrides[name]
                if not isinstance(value, (Tensor, int, float)):
                    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
            else:
                value = getattr(self, name)
            if self._banded(name):
                v = value if isinstance(value, Tensor) else torch.as_tensor(value)
                v = v.to(device=x.device, dtype=x.dtype)
                if v.ndim not in (1, 2) or v.shape[-1] != len(specs):
                    raise ValueError(
                        f"{name} must be ({len(specs)},) or (batch, {len(specs)}), got shape "
                        f"{tuple(v.shape)}"
                    )
                for s in specs:
                    self._validate_tensor(s, v[..., s.band])
                out[name] = v.expand(x.shape[0], -1) if v.ndim == 1 else v
            else:
                if isinstance(value, Tensor):
                    self._validate_tensor(specs[0], value)
                    if value.ndim == 0:
                        value = value.to(device=x.device, dtype=x.dtype)
                else:
                    self._check(specs[0], float(value))
                out[name] = value
        return out

    def _validate_tensor(self, spec: ParamSpec, value: Tensor) -> None:
        spec.validate(value)
        if spec.unit == "Hz" and value.device.type == "cpu" and value.numel():
            top = float(value.detach().max())
            if top >= self.sample_rate / 2:
                self._check(spec, top)

    def denormalize(self, u: Tensor) -> dict[str, Tensor]:
        """``(batch, n_specs)`` in ``[0, 1]`` → ``{name: value}`` (banded: ``(batch, bands)``)."""
        by_key = denormalize(self._specs, u)
        out: dict[str, Tensor] = {}
        for name in self.family().param_names:
            cols = [by_key[s.key] for s in self._name_specs(name)]
            out[name] = torch.stack(cols, dim=-1) if self._banded(name) else cols[0]
        return out

    def forward_normalized(self, x: Tensor, u: Tensor) -> Tensor:
        """Apply the effect with parameters given as a controller's ``[0, 1]`` output."""
        return self(x, **self.denormalize(u.to(x.dtype)))

    def _call(self, x: Tensor, values: dict[str, ParamLike], **extra: Any) -> Tensor:
        fam = self.family()
        if fam.takes_sample_rate:
            return fam.function(x, self.sample_rate, **values, **extra)
        return fam.function(x, **values, **extra)

    def forward(self, x: Tensor, **params: Any) -> Tensor:
        return self._call(x, self.resolve(x, params))

    def extra_repr(self) -> str:
        parts = []
        for name in self.family().param_names:
            v = getattr(self, name).detach()
            unit = self._name_specs(name)[0].unit
            text = ", ".join(f"{float(e):g}" for e in v.flatten())
            text = f"[{text}]" if v.ndim else text
            parts.append(f"{name}={text}{(' ' + unit) if unit else ''}")
        return f"sample_rate={self.sample_rate:g}, " + ", ".join(parts)


class Gain(Effect):
    """Gain in dB with optional polarity inversion (:func:`fxdsp.functional.gain`)."""

    FAMILY = "gain"

    def __init__(
        self, gain_db: float = 0.0, invert_polarity: bool = False, sample_rate: float = 44100.0
    ) -> None:
        super().__init__(sample_rate, gain_db=gain_db)
        self.invert_polarity = invert_polarity

    def forward(
        self, x: Tensor, invert_polarity: bool | Tensor | None = None, **params: Any
    ) -> Tensor:
        inv = self.invert_polarity if invert_polarity is None else invert_polarity
        return self._call(x, self.resolve(x, params), invert_polarity=inv)


class Compressor(Effect):
    """Stereo-linked feed-forward compressor (:func:`fxdsp.functional.compressor`)."""

    FAMILY = "compressor"

    def __init__(self, sample_rate: float = 44100.0, **values: float) -> None:
        super().__init__(sample_rate, **values)


class Panner(Effect):
    """Panning with a pan law (:func:`fxdsp.functional.pan`); mono in, stereo out."""

    FAMILY = "pan"

    def __init__(
        self, pan: float = 0.0, law: str = "constant_power", sample_rate: float = 44100.0
    ) -> None:
        from fxdsp.functional import PAN_LAWS

        super().__init__(sample_rate, pan=pan)
        if law not in PAN_LAWS:
            raise ValueError(f"unknown pan law {law!r}; expected one of {PAN_LAWS}")
        self.law = law

    def forward(self, x: Tensor, law: str | Tensor | None = None, **params: Any) -> Tensor:
        return self._call(x, self.resolve(x, params), law=self.law if law is None else law)


class StereoImager(Effect):
    """Mid/side stereo width with energy kept (:func:`fxdsp.functional.stereo_imager`)."""

    FAMILY = "imager"

    def __init__(self, width: float = 1.0, sample_rate: float = 44100.0) -> None:
        super().__init__(sample_rate, width=width)


class Reverb(Effect):
    """Parametric stereo convolution reverb (:func:`fxdsp.functional.reverb`)."""

    FAMILY = "reverb"

    def __init__(self, sample_rate: float = 44100.0, seed: int = 0, **values: float) -> None:
        super().__init__(sample_rate, **values)
        self.seed = seed

    def forward(self, x: Tensor, seed: int | Tensor | None = None, **params: Any) -> Tensor:
        return self._call(x, self.resolve(x, params), seed=self.seed if seed is None else seed)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", seed={self.seed}"


class LoudnessNormalize(Effect):
    """Integrated-loudness normalisation (:func:`fxdsp.functional.normalize_loudness`)."""

    FAMILY = "loudness"

    def __init__(self, target_lufs: float = -14.0, sample_rate: float = 44100.0) -> None:
        super().__init__(sample_rate, target_lufs=target_lufs)


class ParametricEQ(Effect):
    """The exact five-band parametric EQ (:func:`fxdsp.functional.parametric_eq`).

    Bands (:data:`fxdsp.registry.EQ_BANDS`): low shelf, three peaks, high shelf. The parameters
    are the function's: ``gain_db``, ``freq_hz`` and ``q``, five values each (one per band);
    a call overrides them with ``(batch, 5)`` tensors (or ``(5,)`` values for every item).
    """

    FAMILY = "eq"
    BAND_TYPES: ClassVar[tuple[str, ...]] = EQ_BAND_TYPES

    def __init__(
        self,
        gain_db: Sequence[float] | Tensor | None = None,
        freq_hz: Sequence[float] | Tensor | None = None,
        q: Sequence[float] | Tensor | None = None,
        sample_rate: float = 44100.0,
    ) -> None:
        super().__init__(sample_rate, gain_db=gain_db, freq_hz=freq_hz, q=q)

    def forward(self, x: Tensor, **params: Any) -> Tensor:
        return self._call(x, self.resolve(x, params), band_types=self.BAND_TYPES)
