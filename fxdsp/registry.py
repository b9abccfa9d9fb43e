"""The one vocabulary of fxdsp: stem names, effect names, and the registry of effect families.

Every other module (the ``nn.Module`` effects, :class:`~fxdsp.chain_config.ChainConfig`,
:class:`~fxdsp.manipulator.FxParams`, the :class:`~fxdsp.manipulator.Manipulator`, the data
tools and the tests) takes these names from here.
"""

from __future__ import annotations

__all__ = ["EFFECTS", "STEMS"]

#: Stem names; an integer stem index points into this tuple.
STEMS: tuple[str, ...] = ("drums", "bass", "other", "vocals")

#: Effect names of the random chain, in chain order (also the column order of
#: ``FxParams.active``).
EFFECTS: tuple[str, ...] = ("eq", "compressor", "pan", "imager", "reverb", "gain")
