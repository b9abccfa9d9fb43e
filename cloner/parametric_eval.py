"""Parameter recovery of the parametric transfer on the evaluation's drawn styles.

The transfer evaluation (:mod:`cloner.evaluation`) draws one chain per stem and style; the
parametric methods predict a chain for each item. Here both are compared parameter by
parameter, in the parameter's unit (dB, Hz, ms, s, or none), over the items whose drawn chain
has that effect on (the value of an effect that is off means nothing), beside two naive
baselines that look at no audio: the **midpoint** of each drawn range (the drawn values are
uniform in their range, so this constant minimises the expected absolute error) and the
**neutral** chain (:func:`cloner.parametric.neutral_normalized`, "do nothing"). The 24 columns
of the controller's space are the parameters the reference chain draws (the ones it holds
constant, the shelves' Q, the knee and the make-up gain, are not columns).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

import fxdsp
from cloner.parametric import controller_chain, neutral_normalized
from fxdsp.registry import EFFECTS, STEMS

__all__ = ["param_recovery", "recovery_markdown", "style_chains"]


def style_chains(items: Any, seed: int, config: fxdsp.ChainConfig | None = None) -> dict[str, Any]:
    """The chains :func:`cloner.evaluation.make_items` drew, one per item and stem:
    ``{stem: FxParams of len(items)}`` (the same generator, the same order of draws).

    Args:
        items: the :class:`cloner.evaluation.TransferItems`.
        seed: the ``seed`` given to ``make_items``.
        config: the chain config given to it (default: the reference chain at the items' rate).
    """
    fs = int(items.sample_rate)
    cfg = config if config is not None else fxdsp.ChainConfig().replace(sample_rate=float(fs))
    styles = int(np.max(items.style)) + 1
    gen = torch.Generator().manual_seed(int(seed))
    drawn = [fxdsp.sample_params(styles, stems=s, generator=gen, config=cfg) for s in STEMS]
    index = torch.from_numpy(np.asarray(items.style, dtype=np.int64))
    return {s: drawn[k][index] for k, s in enumerate(STEMS)}


def _columns(
    sample_rate: float, ref: fxdsp.ChainConfig
) -> list[tuple[str, str, Any, str, int | None]]:
    """``(column name, qualified key, spec, effect, band)`` of the controller's space columns
    that the chain ``ref`` draws (not constant)."""
    space = fxdsp.ParamSpace(controller_chain(sample_rate))
    out = []
    for name, (key, spec) in zip(space.names, space.columns, strict=True):
        low, high = ref.band_ranges(key)[spec.band or 0]
        if high > low:
            out.append((name, key, spec, key.partition(".")[0], spec.band))
    return out


def param_recovery(
    predicted: Mapping[str, Mapping[str, Tensor]],
    chains: Mapping[str, Any],
    sample_rate: float,
    config: fxdsp.ChainConfig | None = None,
) -> dict[str, Any]:
    """Mean absolute error per parameter, in its unit, of each method's chains against the
    drawn ones, with the midpoint and neutral baselines.

    Args:
        predicted: ``{method: {stem: (items, 24) normalized parameters}}`` (the controller's
            space, e.g. recorded by :func:`cloner.evaluation.params_method`).
        chains: :func:`style_chains`' output.
        sample_rate: the items' rate.
        config: the chain config the styles were drawn from (default: the reference chain):
            its ranges give the midpoint baseline.

    Returns:
        ``{"columns": [{"name", "unit", "scale", "n", "<method>": mae, ...}], "methods":
        [names]}``; ``n`` counts the (item, stem) pairs with the effect on.
    """
    space = fxdsp.ParamSpace(controller_chain(sample_rate))
    ref = config if config is not None else fxdsp.ChainConfig()
    n_items = len(next(iter(chains.values())))
    methods: dict[str, dict[str, Tensor]] = {k: dict(v) for k, v in predicted.items()}
    neutral = neutral_normalized(space, n_items)
    methods["neutral (baseline)"] = {s: neutral for s in STEMS}
    columns = []
    for name, key, spec, effect, band in _columns(sample_rate, ref):
        j = space.names.index(name)
        low, high = ref.band_ranges(key)[band or 0]
        truth, on, values = [], [], {m: [] for m in methods}
        for stem in STEMS:
            p = chains[stem]
            t = p.values[key].double()
            truth.append(t[:, band] if band is not None else t)
            on.append(p.active[:, EFFECTS.index(effect)])
            for m, per_stem in methods.items():
                if stem not in per_stem:
                    continue
                u = per_stem[stem].double()
                values[m].append(spec.to_physical(u[:, j]))
        t = torch.cat(truth)
        mask = torch.cat(on)
        row: dict[str, Any] = {"name": name, "unit": spec.unit, "scale": spec.scale,
                               "n": int(mask.sum())}  # fmt: skip
        for m, parts in values.items():
            if len(parts) != len(STEMS):
                continue
            err = (torch.cat(parts) - t).abs()[mask]
            row[m] = float(err.mean()) if err.numel() else float("nan")
        mid = (t - 0.5 * (low + high)).abs()[mask]
        row["midpoint (baseline)"] = float(mid.mean()) if mid.numel() else float("nan")
        columns.append(row)
    names = [*predicted, "midpoint (baseline)", "neutral (baseline)"]
    return {"columns": columns, "methods": names}


def recovery_markdown(recovery: Mapping[str, Any]) -> str:
    """A Markdown table of :func:`param_recovery`: one row per parameter."""
    methods = list(recovery["methods"])
    out = [
        "## Parameter recovery (mean absolute error in the parameter's unit, effects on only)",
        "",
        "| parameter | unit | n | " + " | ".join(methods) + " |",
        "|" + "---|" * (len(methods) + 3),
    ]
    for row in recovery["columns"]:
        cells = [f"{row[m]:.3g}" if m in row else "—" for m in methods]
        out.append(
            f"| {row['name']} | {row['unit'] or '—'} | {row['n']} | " + " | ".join(cells) + " |"
        )
    out += [
        "",
        "Baselines look at no audio: the midpoint of each drawn range, and the neutral chain. "
        "The controller's pan law, order and polarity are fixed, so pan positions drawn with "
        "another law are not exactly recoverable.",
    ]
    return "\n".join(out) + "\n"
