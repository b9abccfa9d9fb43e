"""The one normalized ``[0, 1]`` parameter space of a chain: what a controller predicts.

A :class:`ParamSpace` is derived from the registry's specs and a
:class:`~fxdsp.chain_config.ChainConfig`'s ranges: one column per continuous chain parameter
(per band of a banded one) whose config range is not a constant, in registry order, each mapped
onto its config range with its spec's scale (``lin``, or ``log`` for frequencies, Qs, ratios,
times and RT60). Constant ranges (the reference's shelf Q, knee and make-up gain) are not
columns: they take their constant value. With the reference config the space has 24 columns::

    space = ParamSpace.from_config(ChainConfig.reference())
    space.names[:3]            # ('eq.gain_db[0]', 'eq.gain_db[1]', 'eq.gain_db[2]')
    values = space.to_physical(u)      # u: (batch, 24) → {"eq.gain_db": (batch, 5), ...}
    u = space.to_normalized(values)    # the inverse
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from fxdsp.chain_config import ChainConfig
from fxdsp.params import ParamSpec
from fxdsp.registry import EFFECTS, EQ_BANDS, FAMILIES

__all__ = ["ParamSpace"]


@dataclass(frozen=True)
class _Param:
    key: str  # qualified name, e.g. "eq.freq_hz"
    specs: tuple[ParamSpec, ...]  # one per band (one for a scalar), restricted to the config
    constants: tuple[float | None, ...]  # the value of a constant band, None for a column


class ParamSpace:
    """Columns of the normalized space of one chain config.

    Args:
        config: the chain's ranges (default: the reference preset).
        effects: which effects' parameters to include (default: the whole chain).
    """

    def __init__(
        self, config: ChainConfig | None = None, effects: tuple[str, ...] = EFFECTS
    ) -> None:
        self.config = config if config is not None else ChainConfig()
        params: list[_Param] = []
        for effect in effects:
            fam = FAMILIES[effect]
            for name in fam.param_names:
                key = fam.qualified(name)
                specs, constants = [], []
                for spec, (lo, hi) in zip(
                    fam.band_specs(name), self.config.band_ranges(key), strict=True
                ):
                    if hi > lo:
                        specs.append(spec.restricted(lo, hi))
                        constants.append(None)
                    else:
                        specs.append(spec)
                        constants.append(lo)
                params.append(_Param(key, tuple(specs), tuple(constants)))
        self._params = tuple(params)
        self.columns: tuple[tuple[str, ParamSpec], ...] = tuple(
            (p.key, s)
            for p in self._params
            for s, c in zip(p.specs, p.constants, strict=True)
            if c is None
        )

    @classmethod
    def from_config(cls, config: ChainConfig | None = None) -> ParamSpace:
        """The space of a chain config (the whole chain)."""
        return cls(config)

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names: ``"compressor.ratio"``, ``"eq.freq_hz[1]"``, ..."""
        return tuple(
            key if spec.band is None else f"{key}[{spec.band}]" for key, spec in self.columns
        )

    def describe(self) -> str:
        """A table of the columns: name, range, unit, scale."""
        lines = []
        for j, (key, s) in enumerate(self.columns):
            band = f" ({EQ_BANDS[s.band]})" if s.band is not None else ""
            lines.append(f"{j:2d} {key}{band}: {s.range_str} {s.scale}")
        return "\n".join(lines)

    def to_physical(self, u: Tensor) -> dict[str, Tensor]:
        """``(batch, len(self))`` in [0, 1] (clamped) → ``{key: (batch,) or (batch, bands)}``.

        Every parameter of the included effects is returned, constants included.
        Differentiable with respect to ``u``.

        Raises:
            ValueError: ``u`` is not a ``(batch, len(self))`` floating-point tensor.
        """
        n = len(self.columns)
        if not isinstance(u, Tensor) or u.ndim != 2 or u.shape[1] != n:
            shape = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
            raise ValueError(f"normalized parameters must be (batch, {n}), got {shape}")
        if not u.is_floating_point():
            raise ValueError(f"normalized parameters must be floating point, got {u.dtype}")
        out: dict[str, Tensor] = {}
        j = 0
        for p in self._params:
            cols = []
            for spec, const in zip(p.specs, p.constants, strict=True):
                if const is None:
                    cols.append(spec.to_physical(u[:, j]))
                    j += 1
                else:
                    cols.append(torch.full_like(u[:, 0], const))
            banded = p.specs[0].band is not None
            out[p.key] = torch.stack(cols, dim=1) if banded else cols[0]
        return out

    def to_normalized(self, values: Mapping[str, Tensor]) -> Tensor:
        """Inverse of :meth:`to_physical`: ``{key: tensor}`` → ``(batch, len(self))``.

        Values outside a column's range map outside [0, 1] (no clamping).
        """
        cols = []
        for p in self._params:
            if p.key not in values:
                raise ValueError(f"missing parameter {p.key!r}")
            t = values[p.key]
            for spec, const in zip(p.specs, p.constants, strict=True):
                if const is None:
                    cols.append(spec.to_normalized(t[:, spec.band] if spec.band is not None else t))
        return torch.stack(cols, dim=1)
