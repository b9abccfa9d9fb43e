"""Declarative parameter specifications and the normalised ↔ physical mapping.

Every effect module lists its continuous parameters as :class:`ParamSpec` entries: name,
range, default, unit and scale. A controller network that outputs values in ``[0, 1]`` drives
an effect through :meth:`ParamSpec.to_physical`; values given in physical units are checked
against the range by :meth:`ParamSpec.validate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = ["ParamSpec", "denormalize", "normalize"]

Scale = Literal["lin", "log"]


@dataclass(frozen=True)
class ParamSpec:
    """One continuous effect parameter.

    Attributes:
        name: argument name in the functional API (e.g. ``"threshold_db"``).
        minimum: smallest valid value, in ``unit``.
        maximum: largest valid value, in ``unit``.
        default: value used when none is given.
        unit: physical unit (``"dB"``, ``"Hz"``, ``"ms"``, ``"s"``, ``""``).
        scale: ``"lin"`` maps ``u ∈ [0, 1]`` to ``min + u (max − min)``; ``"log"`` to
            ``min · (max/min)^u`` (requires ``min > 0``).
        description: one line for tables and ``describe()`` output.
        band: the band index of a banded parameter (the EQ's ``(batch, bands)`` arguments),
            None for a scalar one.
    """

    name: str
    minimum: float
    maximum: float
    default: float
    unit: str = ""
    scale: Scale = "lin"
    description: str = ""
    band: int | None = None

    def __post_init__(self) -> None:
        if not self.minimum < self.maximum:
            raise ValueError(
                f"{self.name}: minimum {self.minimum} must be < maximum {self.maximum}"
            )
        if not self.minimum <= self.default <= self.maximum:
            raise ValueError(
                f"{self.name}: default {self.default} outside [{self.minimum}, {self.maximum}]"
            )
        if self.scale not in ("lin", "log"):
            raise ValueError(f"{self.name}: scale must be 'lin' or 'log', got {self.scale!r}")
        if self.scale == "log" and self.minimum <= 0:
            raise ValueError(f"{self.name}: a log scale needs minimum > 0, got {self.minimum}")

    @property
    def key(self) -> str:
        """``name`` for a scalar parameter, ``name[band]`` for a banded one."""
        return self.name if self.band is None else f"{self.name}[{self.band}]"

    def restricted(self, low: float, high: float) -> ParamSpec:
        """The same parameter over ``[low, high]`` (inside this spec's range), same scale.

        Raises:
            ValueError: the range is not inside this spec's or is empty (``low >= high``).
        """
        if not (self.minimum <= low < high <= self.maximum):
            raise ValueError(
                f"{self.key}: range ({low:g}, {high:g}) is not a non-empty interval inside "
                f"{self.range_str}"
            )
        default = min(max(self.default, low), high)
        return ParamSpec(
            self.name, low, high, default, self.unit, self.scale, self.description, self.band
        )

    @property
    def range_str(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"[{self.minimum:g}, {self.maximum:g}]{unit}"

    def to_physical(self, u: Tensor) -> Tensor:
        """Map normalised values ``u ∈ [0, 1]`` to physical units (values are clamped to [0, 1])."""
        u = u.clamp(0.0, 1.0)
        if self.scale == "log":
            value = self.minimum * torch.exp(u * math.log(self.maximum / self.minimum))
        else:
            value = self.minimum + u * (self.maximum - self.minimum)
        # Rounding (e.g. exp in float32 at u = 1) must not step outside the range.
        return value.clamp(self.minimum, self.maximum)

    def to_normalized(self, value: Tensor | float) -> Tensor:
        """Inverse of :meth:`to_physical` (no clamping: out-of-range values map outside [0, 1])."""
        v = value if isinstance(value, Tensor) else torch.tensor(float(value))
        if self.scale == "log":
            return torch.log(v / self.minimum) / math.log(self.maximum / self.minimum)
        return (v - self.minimum) / (self.maximum - self.minimum)

    def validate(self, value: Tensor | float | Sequence[float]) -> None:
        """Raise ``ValueError`` naming the parameter, the value and the range if out of range.

        Tensors on an accelerator are not checked (that would force a device synchronisation).
        """
        if isinstance(value, Tensor):
            if value.device.type != "cpu" or value.numel() == 0:
                return
            flat = value.detach().flatten()
            bad = flat[~((flat >= self.minimum) & (flat <= self.maximum))]
            if bad.numel():
                raise ValueError(
                    f"{self.key}={float(bad[0]):g} is outside its range {self.range_str}"
                )
            return
        values = [float(v) for v in value] if isinstance(value, Sequence) else [float(value)]
        for v in values:
            if not (self.minimum <= v <= self.maximum):  # also catches NaN
                raise ValueError(f"{self.key}={v:g} is outside its range {self.range_str}")


def denormalize(specs: Sequence[ParamSpec], u: Tensor) -> dict[str, Tensor]:
    """Map a ``(batch, len(specs))`` tensor in ``[0, 1]`` to ``{key: (batch,) physical}``."""
    if u.ndim != 2 or u.shape[1] != len(specs):
        raise ValueError(
            f"normalized parameters must be (batch, {len(specs)}) for "
            f"{[s.key for s in specs]}, got shape {tuple(u.shape)}"
        )
    return {s.key: s.to_physical(u[:, i]) for i, s in enumerate(specs)}


def normalize(specs: Sequence[ParamSpec], values: dict[str, Tensor]) -> Tensor:
    """Inverse of :func:`denormalize`: ``{key: (batch,)}`` → ``(batch, len(specs))``."""
    missing = [s.key for s in specs if s.key not in values]
    if missing:
        raise ValueError(f"missing parameters {missing}")
    return torch.stack([s.to_normalized(values[s.key]) for s in specs], dim=-1)
