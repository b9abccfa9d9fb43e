"""Style retrieval with styles made by another effects library (Spotify's ``pedalboard``).

The encoder learns from fxdsp's chains, and :mod:`fxencoder.evaluation` draws its styles from
the same chains. A user's reference was mixed with other tools, so this check draws its styles
from ``pedalboard``'s effects with ranges of its own and asks the same question: top-1 style
retrieval across songs (within a stem type, and for the multitrack), with song-bootstrap 95 %
intervals and the paired difference to the hand-made effect features.

A style (:func:`draw_styles`) is, per stem type, one drawn value of every control of this
chain, in this order (every effect on, the "full chain" setting):

1. EQ: ``LowShelfFilter`` (60–250 Hz, ±12 dB), ``PeakFilter`` (300–4000 Hz, ±12 dB, Q
   0.5–2), ``HighShelfFilter`` (3–10 kHz, ±12 dB);
2. ``Compressor`` (threshold −40 to −10 dBFS, ratio 2–12, attack 1–30 ms, release 50–400 ms);
3. stereo width (mid/side, side × 0–2) and a constant-power balance (−0.8 to 0.8), written
   here in NumPy since pedalboard has neither;
4. ``Reverb`` (room size 0.1–0.9, damping 0–1, wet level 0.05–0.4, the dry signal at unity:
   ``dry_level`` 0.5, since pedalboard's (JUCE's) reverb doubles it);
5. ``Gain`` (−6 to +9 dB).

Frequencies, Q, ratio and times are drawn log-uniformly, everything else uniformly, from
``numpy.random.default_rng(seed)``. pedalboard is an optional dependency (the ``bench`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from fxdsp.registry import STEMS
from fxencoder.evaluation import (
    BASELINES,
    ORACLE,
    EvalSegments,
    ItemSet,
    _numpy,
    as_embedder,
    bootstrap_accuracy,
    bootstrap_difference,
    multitrack_view,
)
from fxencoder.metrics import retrieval_correct

__all__ = ["RANGES", "draw_styles", "pedalboard_retrieval", "render"]

#: Each control's ``(low, high, log)``: drawn log-uniformly when ``log`` is true.
RANGES: dict[str, tuple[float, float, bool]] = {
    "low_shelf_hz": (60.0, 250.0, True),
    "low_shelf_db": (-12.0, 12.0, False),
    "peak_hz": (300.0, 4000.0, True),
    "peak_db": (-12.0, 12.0, False),
    "peak_q": (0.5, 2.0, True),
    "high_shelf_hz": (3000.0, 10000.0, True),
    "high_shelf_db": (-12.0, 12.0, False),
    "threshold_db": (-40.0, -10.0, False),
    "ratio": (2.0, 12.0, True),
    "attack_ms": (1.0, 30.0, True),
    "release_ms": (50.0, 400.0, True),
    "width": (0.0, 2.0, False),
    "balance": (-0.8, 0.8, False),
    "room_size": (0.1, 0.9, False),
    "damping": (0.0, 1.0, False),
    "wet_level": (0.05, 0.4, False),
    "gain_db": (-6.0, 9.0, False),
}


def _pedalboard() -> Any:
    try:
        import pedalboard
    except ImportError:
        raise ImportError(
            "styles made by pedalboard need the 'pedalboard' package: pip install "
            "'mixfx[bench]' (or pip install pedalboard)"
        ) from None
    return pedalboard


def draw_styles(n: int, seed: int = 0) -> list[dict[str, dict[str, float]]]:
    """``n`` styles, each a dict ``stem → {control: value}`` (one draw per stem type)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of styles must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    styles = []
    for _ in range(n):
        style = {}
        for stem in STEMS:
            values = {}
            for name, (low, high, log) in RANGES.items():
                if log:
                    values[name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
                else:
                    values[name] = float(rng.uniform(low, high))
            style[stem] = values
        styles.append(style)
    return styles


def render(audio: np.ndarray, sample_rate: float, values: Mapping[str, float]) -> np.ndarray:
    """One stereo signal ``(2, L)`` through one stem's chain of a style (see the module)."""
    pb = _pedalboard()
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != 2:
        raise ValueError(f"audio must be (2, samples), got {x.shape}")
    v = dict(values)
    missing = sorted(set(RANGES) - set(v))
    if missing:
        raise ValueError(f"a pedalboard style needs every control; missing {missing}")
    eq_dyn = pb.Pedalboard([
        pb.LowShelfFilter(cutoff_frequency_hz=v["low_shelf_hz"], gain_db=v["low_shelf_db"]),
        pb.PeakFilter(cutoff_frequency_hz=v["peak_hz"], gain_db=v["peak_db"], q=v["peak_q"]),
        pb.HighShelfFilter(cutoff_frequency_hz=v["high_shelf_hz"], gain_db=v["high_shelf_db"]),
        pb.Compressor(threshold_db=v["threshold_db"], ratio=v["ratio"],
                      attack_ms=v["attack_ms"], release_ms=v["release_ms"]),
    ])  # fmt: skip
    y = eq_dyn(x, float(sample_rate))
    mid, side = (y[0] + y[1]) / 2, (y[0] - y[1]) / 2 * v["width"]
    theta = (v["balance"] + 1.0) * math.pi / 4  # constant power, unity at the centre
    y = np.stack([(mid + side) * math.cos(theta), (mid - side) * math.sin(theta)]) * math.sqrt(2)
    tail = pb.Pedalboard([
        pb.Reverb(room_size=v["room_size"], damping=v["damping"], wet_level=v["wet_level"],
                  dry_level=0.5),
        pb.Gain(gain_db=v["gain_db"]),
    ])  # fmt: skip
    out = tail(y.astype(np.float32), float(sample_rate))
    return np.ascontiguousarray(out[:, : x.shape[1]], dtype=np.float32)


def render_styles(
    segments: EvalSegments,
    embedders: Mapping[str, Any],
    styles: int = 8,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch: int = 32,
    progress: Callable[[int], None] | None = None,
) -> ItemSet:
    """Every (song, stem, style) through the style's pedalboard chain, embedded (an
    :class:`~fxencoder.evaluation.ItemSet` of scope ``"stem"``, without factors: the factor
    oracle, an embedder named ``"oracle"``, is left out, pedalboard's controls are not fxdsp's
    factors)."""
    embs = {name: as_embedder(e) for name, e in embedders.items() if name != ORACLE}
    drawn = draw_styles(styles, seed)
    n_songs, n_stems = segments.audio.shape[:2]
    song, stem, style = (a.reshape(-1) for a in np.meshgrid(
        np.arange(n_songs), np.arange(n_stems), np.arange(styles), indexing="ij"))  # fmt: skip
    audio = segments.audio.numpy()
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in embs}
    for start in range(0, len(song), batch):
        sl = slice(start, start + batch)
        y = np.stack([
            render(audio[a, b], segments.sample_rate, drawn[c][STEMS[b]])
            for a, b, c in zip(song[sl], stem[sl], style[sl], strict=True)
        ])  # fmt: skip
        if not np.isfinite(y).all():
            raise ValueError("pedalboard returned non-finite audio (is the input finite?)")
        y_t = torch.from_numpy(y).to(device)
        meta = {"song": song[sl], "stem": stem[sl], "style": style[sl],
                "factors": np.zeros((len(y), 0))}  # fmt: skip
        for name, emb in embs.items():
            chunks[name].append(_numpy(emb(y_t, segments.sample_rate, meta), len(y), name))
        if progress is not None:
            progress(len(y))
    embeddings = {
        name: _numpy(emb.finalize(np.concatenate(chunks[name])), len(song), name)
        for name, emb in embs.items()
    }
    return ItemSet("full", "styles", "stem", song, stem, style, np.zeros((len(song), 0)), (),
                   embeddings)  # fmt: skip


def pedalboard_retrieval(
    segments: EvalSegments,
    embedders: Mapping[str, Any],
    styles: int = 8,
    *,
    seed: int = 0,
    bootstrap: int = 1000,
    device: str | torch.device = "cpu",
    batch: int = 32,
    versus: str = "effect_features",
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Top-1 style retrieval across songs with pedalboard styles, both scopes.

    Args:
        segments: the held-out songs' aligned segments.
        embedders: name → embedder (as :func:`fxencoder.evaluation.render_items`; the factor
            oracle is left out).
        styles: styles per stem type (chance ``1/styles``).
        seed: the styles' seed and the bootstrap's.
        bootstrap: song-bootstrap replicates (95 % intervals).
        device: where the embedders run.
        batch: items per chunk.
        versus: the embedding every other (learned) one is compared with, paired by song.
        progress: called with the number of items rendered after each chunk.

    Returns:
        ``{"styles", "songs", "chance", "conditions": {"stem_full" | "multitrack_full":
        {name: {"retrieval", "retrieval_low", "retrieval_high"[, "vs_<versus>": {"difference",
        "low", "high"}]}}}, "style_values": the drawn styles}``.
    """
    if styles < 2:
        raise ValueError(f"styles must be at least 2 (retrieval needs a choice), got {styles}")
    items = render_styles(
        segments, embedders, styles, seed=seed, device=device, batch=batch, progress=progress
    )
    conditions: dict[str, Any] = {}
    for scope, view in (("stem", items), ("multitrack", multitrack_view(items))):
        group = view.stem if scope == "stem" else None
        hits = {
            name: retrieval_correct(e, view.style, view.song, group)
            for name, e in view.embeddings.items()
        }
        entry: dict[str, Any] = {}
        for name, h in hits.items():
            acc, lo, hi = bootstrap_accuracy([h], [view.song], bootstrap, seed)
            entry[name] = {"retrieval": acc, "retrieval_low": lo, "retrieval_high": hi}
            if versus in hits and name != versus and name not in (*BASELINES, ORACLE):
                d, dlo, dhi = bootstrap_difference([h], [hits[versus]], [view.song], bootstrap,
                                                   seed)  # fmt: skip
                entry[name][f"vs_{versus}"] = {"difference": d, "low": dlo, "high": dhi}
        conditions[f"{scope}_full"] = entry
    return {
        "styles": styles,
        "songs": list(segments.songs),
        "chance": 1.0 / styles,
        "conditions": conditions,
        "style_values": draw_styles(styles, seed),
    }


def results_markdown(results: Mapping[str, Any]) -> str:
    """The section of ``results.md`` for :func:`pedalboard_retrieval`'s output."""
    lines = [
        "## Styles made by pedalboard (another effects library)",
        "",
        f"{results['styles']} styles per stem type drawn from pedalboard's EQ, compressor, "
        "reverb and gain with NumPy width and balance (`fxencoder.pedalboard_styles`), on "
        f"{len(results['songs'])} songs; top-1 retrieval across songs (chance "
        f"{results['chance']:.3f}), [95 % song-bootstrap interval], and the paired difference "
        "to the effect features.",
        "",
        "| embedding | stem full | multitrack full |",
        "|---|---|---|",
    ]
    conds = results["conditions"]
    for name in conds["stem_full"]:
        cells = []
        for cond in ("stem_full", "multitrack_full"):
            r = conds[cond][name]
            cell = f"{r['retrieval']:.3f} [{r['retrieval_low']:.2f}, {r['retrieval_high']:.2f}]"
            vs = next((v for k, v in r.items() if k.startswith("vs_")), None)
            if vs is not None:
                cell += f" ({vs['difference']:+.2f} [{vs['low']:+.2f}, {vs['high']:+.2f}])"
            cells.append(cell)
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"
