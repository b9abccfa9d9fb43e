"""What the training designs other than fxdsp's share: a drawn chain per item and its draw.

A design (:mod:`fxdata.dasp_chain`, :mod:`fxdata.house_chain`) is a fixed order of effects,
each on with some probability, and a table of controls ``name → (effect, low, high, log)``
drawn uniformly, or log-uniformly where ``log`` is true. Its draw is a :class:`DrawnChain`
subclass that names the design and its tables; the reverb's impulse responses are drawn with
the chain (``ir``) so that two contents get the same reverb.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

__all__ = [
    "DrawnChain",
    "check_chain_input",
    "check_draw_arguments",
    "draw_controls",
    "where_on",
]


@dataclass
class DrawnChain:
    """One drawn chain per item of a design (see the module); subclasses set the class
    attributes.

    Attributes:
        values: control name → ``(n,)`` float32 tensor in the units of the design's ranges.
        on: effect name → ``(n,)`` bool tensor.
        ir: the reverb's impulse responses, ``(n, 2, L)`` (unit energy per channel).
        sample_rate: the rate the chain was drawn for (Hz).
    """

    DESIGN: ClassVar[str] = ""
    EFFECTS: ClassVar[tuple[str, ...]] = ()
    RANGES: ClassVar[Mapping[str, tuple[str, float, float, bool]]] = {}

    values: dict[str, Tensor]
    on: dict[str, Tensor]
    ir: Tensor
    sample_rate: float

    def __len__(self) -> int:
        return int(self.ir.shape[0])

    @property
    def active(self) -> Tensor:
        """``(n, len(EFFECTS))`` bool, which effects are on, columns in ``EFFECTS`` order (as
        :attr:`fxdsp.FxParams.active`)."""
        return torch.stack([self.on[e] for e in self.EFFECTS], dim=1)

    def repeat(self, k: int) -> DrawnChain:
        """The ``n`` chains tiled ``k`` times: item ``j`` of the result is item ``j % n``."""
        return type(self)(
            values={name: v.repeat(k) for name, v in self.values.items()},
            on={name: v.repeat(k) for name, v in self.on.items()},
            ir=self.ir.repeat(k, 1, 1),
            sample_rate=self.sample_rate,
        )

    def to(self, device: torch.device | str) -> DrawnChain:
        """The same chains with their tensors on ``device``."""
        return type(self)(
            values={name: v.to(device) for name, v in self.values.items()},
            on={name: v.to(device) for name, v in self.on.items()},
            ir=self.ir.to(device),
            sample_rate=self.sample_rate,
        )

    def chain(self, i: int) -> list[str]:
        """The effects that are on for item ``i``, in processing order."""
        i = self._index(i)
        return [e for e in self.EFFECTS if bool(self.on[e][i])]

    def controls(self, i: int) -> dict[str, dict[str, float]]:
        """Item ``i``'s chain as ``{effect: {control: value}}``, effects that are on only."""
        i = self._index(i)
        out: dict[str, dict[str, float]] = {}
        for effect in self.chain(i):
            out[effect] = {
                name: float(self.values[name][i])
                for name, (owner, *_rest) in self.RANGES.items()
                if owner == effect
            }
        return out

    def describe(self, i: int | None = None) -> str:
        """Readable text of item ``i`` (every item if None), like :meth:`fxdsp.FxParams.describe`:
        the effects that are on, in order, with their controls."""
        if i is None:
            return "\n".join(self.describe(k) for k in range(len(self)))
        i = self._index(i)
        lines = [f"item {i} ({self.DESIGN} design):"]
        for effect, values in self.controls(i).items():
            text = ", ".join(f"{name} {value:.3g}" for name, value in values.items())
            lines.append(f"  {effect}: {text}")
        if len(lines) == 1:
            lines.append("  (every effect off)")
        return "\n".join(lines)

    def _index(self, i: int) -> int:
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, int):
            raise ValueError(f"an item index must be an integer, got {i!r}")
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a batch of {n}")
        return i % n


def check_draw_arguments(
    n: object, generator: object, sample_rate: object, probability: object
) -> None:
    """The checks every design's draw makes, with errors that name the argument."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got {generator!r}")
    if not (isinstance(sample_rate, int | float) and math.isfinite(sample_rate)
            and sample_rate >= 8000):  # fmt: skip
        raise ValueError(f"sample_rate must be a rate of at least 8000 Hz, got {sample_rate!r}")
    if not (isinstance(probability, int | float) and 0.0 <= probability <= 1.0):
        raise ValueError(f"probability must be in [0, 1], got {probability!r}")


def check_chain_input(x: object, params: DrawnChain) -> None:
    """Audio for a design's chains: a ``(batch, 2, samples)`` tensor, one item per chain."""
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[1] != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"audio must be a (batch, 2, samples) tensor, got {shape}")
    if x.shape[0] != len(params):
        raise ValueError(f"{x.shape[0]} items of audio for {len(params)} drawn chains")


def draw_controls(
    ranges: Mapping[str, tuple[str, float, float, bool]],
    n: int,
    generator: torch.Generator,
    sample_rate: float,
) -> dict[str, Tensor]:
    """One ``(n,)`` float32 draw per control, in the table's order (frequencies, names ending
    in ``_hz``, clipped at 0.45 × ``sample_rate``)."""
    values: dict[str, Tensor] = {}
    for name, (_effect, low, high, log) in ranges.items():
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        if log:
            v = torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            v = low + u * (high - low)
        if name.endswith("_hz"):
            v = v.clamp(max=0.45 * float(sample_rate))
        values[name] = v.float()
    return values


def where_on(on: Tensor, processed: Tensor, x: Tensor) -> Tensor:
    """``processed`` for the items whose effect is on, ``x`` for the others."""
    return torch.where(on[:, None, None], processed, x)
