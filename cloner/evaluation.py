"""Evaluation of style transfer on held-out songs (Koo et al., Table 2, and more).

``mixfx eval-transfer`` (:mod:`mixfx.commands.eval_transfer`) is this module plus file output.
Everything here is a pure function of its inputs (seeded), so each step is testable.

**Items.** From one aligned, FX-normalized four-stem segment per held-out song
(:func:`fxencoder.evaluation.load_segments` with ``fxnorm=True``, the cloner's training
distribution), ``styles`` target styles are drawn: a style is one chain per stem type
(:func:`fxdsp.sample_params` with the reference probabilities, a seeded generator). An item is
``(song i, style s)`` with a reference song ``j ≠ i`` (a seeded choice per item):

* input ``x = A1``: song ``i``'s four stems, unprocessed (normalized);
* reference ``r = B2``: song ``j``'s four stems, each through its stem's chain of style ``s``;
* target ``t = A2``: song ``i``'s four stems through the same chains (the ground truth).

A *method* maps ``(x, r)`` stem by stem to an output ``y`` (:data:`Method`):
``input unchanged`` (``y = x``), ``match EQ`` (:func:`cloner.baselines.match_eq`), a cloner
(:func:`cloner_method`), and any other callable.

**Measures** (:func:`item_measures`), per item, for each stem and for the *mix* (the sum of the
four stems of ``y`` against the sum of ``t``):

* ``mss_lr``, ``mss_ms``: the multi-scale spectral loss to the target on L/R and on M/S
  (:func:`cloner.loss.mss_loss`, the reference definition);
* ``emb_ref``, ``emb_gt``: the encoder's cosine distance ``1 − cos(Φ(y), Φ(·))`` to the
  reference and to the target (stems only; the mix is not an encoder input);
* audio-feature errors ``|f(y) − f(t)|``: integrated loudness (LU), spectral centroid
  (octaves), crest factor (dB), stereo width (side-energy fraction), L/R balance (dB) and the
  mean absolute Bark-band level difference (dB) (:mod:`fxdsp.analysis`).

**Spread.** Every table cell is a mean over items with a 95 % percentile interval from a
song bootstrap (songs resampled with replacement, all of a song's items together); the change
against ``input unchanged`` is paired (the same resample for both methods).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

import fxdsp
from fxdsp import analysis
from fxdsp.functional.loudness import loudness
from fxdsp.registry import STEMS

__all__ = [
    "FEATURES",
    "INPUT",
    "MATCH_EQ",
    "MEASURES",
    "PAPER_TABLE2",
    "Method",
    "TransferItems",
    "bootstrap_mean",
    "cloner_method",
    "cosine_distance",
    "evaluate",
    "feature_errors",
    "identity_method",
    "item_measures",
    "make_items",
    "match_eq_method",
    "params_method",
    "results_markdown",
    "separate_items",
]

#: ``fn(inputs (n, 2, L), references (n, 2, L'), stem name, sample_rate) -> (n, 2, L)``.
Method = Callable[[Tensor, Tensor, str, int], Tensor]

INPUT = "input unchanged"
MATCH_EQ = "match EQ"

#: Audio-feature errors, in the order of the tables.
FEATURES = ("loudness_lu", "centroid_oct", "crest_db", "width", "balance_db", "bark_db")
#: Every measure (per stem); the mix has all but the embedding distances.
MEASURES = ("mss_lr", "mss_ms", "emb_ref", "emb_gt", *FEATURES)

#: Koo et al. (ICASSP 2023) Table 2, MUSDB18 test set: (multitrack, single stem) per measure.
PAPER_TABLE2: dict[str, dict[str, tuple[float, float]]] = {
    "input (no processing)": {
        "mss_lr": (1.222, 0.679), "mss_ms": (1.620, 0.897),
        "emb_ref": (0.405, 0.222), "emb_gt": (0.359, 0.203),
    },
    "Ψ with Φ∅": {
        "mss_lr": (1.114, 0.610), "mss_ms": (1.431, 0.770),
        "emb_ref": (0.306, 0.168), "emb_gt": (0.254, 0.141),
    },
    "Ψ with Φnorm": {
        "mss_lr": (0.980, 0.542), "mss_ms": (1.309, 0.718),
        "emb_ref": (0.294, 0.163), "emb_gt": (0.237, 0.135),
    },
    "Ψ with Φp.s.": {
        "mss_lr": (0.982, 0.543), "mss_ms": (1.274, 0.688),
        "emb_ref": (0.251, 0.136), "emb_gt": (0.180, 0.107),
    },
}  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Items
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransferItems:
    """Inputs, references and targets of the evaluation, ``(items, 4, 2, L)`` each (stems in
    ``STEMS`` order, float32, CPU), with each item's song, reference song and style."""

    inputs: Tensor
    references: Tensor
    targets: Tensor
    song: np.ndarray
    ref_song: np.ndarray
    style: np.ndarray
    songs: tuple[str, ...]
    sample_rate: int

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def _item_grid(segments: Any, styles: int, seed: int) -> tuple[np.ndarray, ...]:
    """``(song, style, ref_song)`` of every item, song-major: each song with each style, its
    reference another song drawn with ``numpy.random.default_rng([seed, 1])``."""
    if isinstance(styles, bool) or not isinstance(styles, int) or styles < 1:
        raise ValueError(f"styles must be a positive integer, got {styles!r}")
    n_songs = int(segments.audio.shape[0])
    if n_songs < 2:
        raise ValueError(f"the evaluation needs at least 2 songs, got {n_songs}")
    rng = np.random.default_rng([int(seed), 1])
    song = np.repeat(np.arange(n_songs), styles)
    style = np.tile(np.arange(styles), n_songs)
    ref_song = (song + 1 + rng.integers(0, n_songs - 1, size=len(song))) % n_songs
    return song, style, ref_song


def make_items(
    segments: Any,
    styles: int,
    *,
    seed: int = 0,
    config: fxdsp.ChainConfig | None = None,
    device: str | torch.device = "cpu",
    batch: int = 16,
) -> TransferItems:
    """Draw the evaluation's items from one segment per song.

    Args:
        segments: an :class:`fxencoder.evaluation.EvalSegments` (``audio`` ``(songs, 4, 2,
            L)``, at least 2 songs).
        styles: target styles (each one chain per stem type, shared by every song).
        seed: seed of the chains (``torch.Generator().manual_seed(seed)``, stem by stem) and
            of the reference songs (``numpy.random.default_rng([seed, 1])``).
        config: the chain config (default: the reference chain at the segments' rate).
        device: where the chains are rendered.
        batch: items per rendering chunk.
    """
    song, style, ref_song = _item_grid(segments, styles, seed)
    audio, fs = segments.audio, int(segments.sample_rate)
    cfg = config if config is not None else fxdsp.ChainConfig().replace(sample_rate=float(fs))
    gen = torch.Generator().manual_seed(int(seed))
    chains = [fxdsp.sample_params(styles, stems=stem, generator=gen, config=cfg) for stem in STEMS]
    refs = torch.empty((len(song), *audio.shape[1:]))
    targets = torch.empty((len(song), *audio.shape[1:]))
    for k in range(len(STEMS)):
        for start in range(0, len(song), batch):
            sl = slice(start, start + batch)
            p = chains[k][torch.from_numpy(style[sl])].to(device)
            manip = fxdsp.Manipulator(p)
            with torch.no_grad():
                refs[sl, k] = manip(audio[torch.from_numpy(ref_song[sl]), k].to(device)).cpu()
                targets[sl, k] = manip(audio[torch.from_numpy(song[sl]), k].to(device)).cpu()
    inputs = audio[torch.from_numpy(song)].clone()
    return TransferItems(inputs, refs, targets, song, ref_song, style, tuple(segments.songs), fs)


def make_pedalboard_items(
    segments: Any, styles: int, *, seed: int = 0, fixed: Mapping[str, float] | None = None
) -> TransferItems:
    """:func:`make_items` with styles made by another effects library: each style is one
    drawn pedalboard chain per stem type (:func:`fxencoder.pedalboard_styles.draw_styles`,
    ``seed``), the reference songs drawn as :func:`make_items` draws them. A check that a
    transfer method learned mixing, not fxdsp's chain (needs pedalboard). ``fixed``: controls
    set to these values in every style (e.g. neutral values that switch effects off)."""
    from fxencoder import pedalboard_styles as ps

    unknown = sorted(set(fixed or {}) - set(ps.RANGES))
    if unknown:
        raise ValueError(f"fixed names controls a pedalboard style does not have: {unknown}")
    song, style, ref_song = _item_grid(segments, styles, seed)
    audio, fs = segments.audio, int(segments.sample_rate)
    drawn = ps.draw_styles(styles, seed)
    refs = torch.empty((len(song), *audio.shape[1:]))
    targets = torch.empty((len(song), *audio.shape[1:]))
    source = audio.numpy()
    for i in range(len(song)):
        for k, stem in enumerate(STEMS):
            values = {**drawn[int(style[i])][stem], **(fixed or {})}
            refs[i, k] = torch.from_numpy(ps.render(source[ref_song[i], k], fs, values))
            targets[i, k] = torch.from_numpy(ps.render(source[song[i], k], fs, values))
    if not (torch.isfinite(refs).all() and torch.isfinite(targets).all()):
        raise ValueError("pedalboard returned non-finite audio (is the input finite?)")
    inputs = audio[torch.from_numpy(song)].clone()
    return TransferItems(inputs, refs, targets, song, ref_song, style, tuple(segments.songs), fs)


def separate_items(
    items: TransferItems, separator: Any, *, device: str | torch.device = "cpu"
) -> TransferItems:
    """The mixture path: each item's input stems summed to a mix and separated by
    ``separator`` (a Demucs model, :func:`cloner.separation.separate`); references and targets
    stay as they are (the targets are the true stems through the chains)."""
    from cloner.separation import separate

    with torch.no_grad():
        parts = separate(separator, items.inputs.sum(1), items.sample_rate, device=device)
    stems = torch.stack([parts[s] for s in STEMS], 1).to(items.inputs.dtype)
    return replace(items, inputs=stems)


# ------------------------------------------------------------------------------------------------
# Methods
# ------------------------------------------------------------------------------------------------
def identity_method(x: Tensor, r: Tensor, stem: str, sample_rate: int) -> Tensor:
    """``input unchanged``."""
    return x


def match_eq_method(x: Tensor, r: Tensor, stem: str, sample_rate: int) -> Tensor:
    """The naive match EQ (:func:`cloner.baselines.match_eq`: average spectrum and loudness)."""
    from cloner.baselines import match_eq

    return match_eq(x, r, sample_rate)


def cloner_method(cloner: Any, encoder: Any, *, batch: int = 8) -> Method:
    """A method that runs ``cloner`` on each input, conditioned on ``encoder.embed(reference)``.

    Both in eval mode, no gradients; inputs are at most a few seconds here, so the cloner runs
    on each whole segment (long audio goes through :mod:`cloner.inference`).
    """

    def run(x: Tensor, r: Tensor, stem: str, sample_rate: int) -> Tensor:
        if int(sample_rate) != int(cloner.config.sample_rate):
            raise ValueError(
                f"the items are at {sample_rate} Hz but the cloner runs at "
                f"{cloner.config.sample_rate} Hz"
            )
        device = next(cloner.parameters()).device
        was = cloner.training
        cloner.eval()
        try:
            outs = []
            with torch.no_grad():
                for i in range(0, x.shape[0], batch):
                    cond = encoder.embed(r[i : i + batch], sample_rate).to(device)
                    outs.append(cloner(x[i : i + batch].to(device), cond).cpu())
            return torch.cat(outs)
        finally:
            cloner.train(was)

    return run


def params_method(
    controller: Any,
    encoder: Any,
    *,
    refine: int = 0,
    lr: float = 0.05,
    refine_from: str = "prediction",
    batch: int = 8,
    record: dict[str, list[Tensor]] | None = None,
) -> Method:
    """Parametric transfer (:mod:`cloner.parametric`): one fxdsp chain per item, predicted by
    ``controller`` from ``encoder``'s embeddings (and features) of input and reference, then
    optionally ``refine`` gradient steps towards the reference (on the whole segment), from the
    prediction or, with ``refine_from="neutral"``, from the neutral chain (``controller`` may
    then be None). The chain is rendered on the whole segment.

    Args:
        controller: a :class:`cloner.parametric.ParamController` (or None from neutral).
        encoder: its encoder (the items' rate must be the encoder's when refining).
        refine: refinement steps (0: the prediction alone).
        lr: the refinement's learning rate.
        refine_from: ``"prediction"`` or ``"neutral"``.
        batch: items per call.
        record: when given, the normalized parameters of each call are appended to
            ``record[stem]`` (for the parameter-recovery table).
    """
    from cloner import parametric as pm

    if refine_from not in ("prediction", "neutral"):
        raise ValueError(f"refine_from must be 'prediction' or 'neutral', got {refine_from!r}")
    if refine_from == "neutral" and refine < 1:
        raise ValueError("refining from the neutral chain needs refine >= 1 steps")
    if refine_from == "prediction" and controller is None:
        raise ValueError("the prediction needs a controller")

    def run(x: Tensor, r: Tensor, stem: str, sample_rate: int) -> Tensor:
        outs, params = [], []
        for i in range(0, x.shape[0], batch):
            xi, ri = x[i : i + batch], r[i : i + batch]
            stems = [stem] * xi.shape[0]
            if refine_from == "neutral":
                u = pm.neutral_normalized(batch=len(xi))
            else:
                u = pm.predict(controller, encoder, xi, sample_rate, ri, sample_rate, stems)
            if refine > 0:
                device = next(encoder.parameters()).device
                with torch.no_grad():
                    e_ref = encoder.embed(ri, sample_rate)
                    f_ref = pm.audio_features(ri.float(), sample_rate)
                u = pm.refine(u, xi.to(device), sample_rate, encoder, e_ref, f_ref.to(device),
                              steps=refine, lr=lr, stems=stems).params  # fmt: skip
            with torch.no_grad():
                outs.append(pm.render(u, xi, sample_rate, stems=stems).cpu())
            params.append(u.cpu())
        if record is not None:
            record.setdefault(stem, []).append(torch.cat(params))
        return torch.cat(outs)

    return run


# ------------------------------------------------------------------------------------------------
# Measures
# ------------------------------------------------------------------------------------------------
def _centroid_oct(x: Tensor, fs: int) -> Tensor:
    return torch.log2(analysis.spectral_centroid(x, fs).double().clamp(min=1.0))


def _loudness(x: Tensor, fs: int) -> Tensor:
    if x.shape[-1] >= math.ceil(0.4 * fs):
        lufs = loudness(x.double(), fs)
    else:
        lufs = 10.0 * torch.log10(x.double().square().mean(dim=(1, 2)))
    return lufs.clamp(min=-120.0)  # digital silence reads −120, not −inf


def feature_errors(y: Tensor, t: Tensor, sample_rate: int) -> dict[str, Tensor]:
    """``|f(y) − f(t)|`` per item for each of :data:`FEATURES` (float64, ``(n,)`` each)."""
    fs = int(sample_rate)
    y, t = y.double(), t.double()
    by = analysis.band_spectrum(y, fs, bands="bark", mode="mean").levels_db[:, 0]
    bt = analysis.band_spectrum(t, fs, bands="bark", mode="mean").levels_db[:, 0]
    return {
        "loudness_lu": (_loudness(y, fs) - _loudness(t, fs)).abs(),
        "centroid_oct": (_centroid_oct(y, fs) - _centroid_oct(t, fs)).abs(),
        "crest_db": (
            analysis.crest_factor_db(y).clamp(min=0, max=100)
            - analysis.crest_factor_db(t).clamp(min=0, max=100)
        )
        .abs()
        .double(),
        "width": (analysis.stereo_width(y) - analysis.stereo_width(t)).abs().double(),
        "balance_db": (
            analysis.lr_balance_db(y).clamp(-60, 60) - analysis.lr_balance_db(t).clamp(-60, 60)
        )
        .abs()
        .double(),
        "bark_db": (by.clamp(min=-120) - bt.clamp(min=-120)).abs().mean(-1).double(),
    }


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """``1 − cos(a, b)`` along the last dimension, in float64."""
    return 1.0 - torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1, eps=1e-12)


def item_measures(
    y: Tensor,
    r: Tensor,
    t: Tensor,
    sample_rate: int,
    encoder: Any = None,
) -> dict[str, Tensor]:
    """Every measure of one stem's outputs ``y`` against targets ``t`` (and references ``r``
    for ``emb_ref``), per item: ``{measure: (n,)}`` float64. Without an encoder the embedding
    distances are NaN."""
    from cloner.loss import mss_loss

    out: dict[str, Tensor] = {}
    for ch in ("lr", "ms"):
        with torch.no_grad():
            out[f"mss_{ch}"] = mss_loss(y, t, channels=ch, reduction="none").double()
    if encoder is not None:
        ey, er, et = (encoder.embed(a, sample_rate).cpu() for a in (y, r, t))
        out["emb_ref"] = cosine_distance(ey, er)
        out["emb_gt"] = cosine_distance(ey, et)
    else:
        out["emb_ref"] = out["emb_gt"] = torch.full((len(y),), float("nan"), dtype=torch.float64)
    out.update(feature_errors(y, t, sample_rate))
    return out


def bootstrap_mean(
    values: np.ndarray,
    songs: np.ndarray,
    *,
    baseline: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Mean of per-item ``values`` with a song-bootstrap interval; with ``baseline`` (the same
    items' values for ``input unchanged``) also the paired relative change ``mean(values) /
    mean(baseline) − 1`` and its interval.

    Returns:
        ``{"mean", "low", "high"}`` (and ``"change", "change_low", "change_high"``).
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    s = np.asarray(songs).reshape(-1)
    if v.shape != s.shape or v.size == 0:
        raise ValueError("values and songs must be non-empty and of one length")
    labels, k = np.unique(s, return_inverse=True)
    sums = np.bincount(k, weights=v, minlength=len(labels))
    counts = np.bincount(k, minlength=len(labels)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(labels), np.full(len(labels), 1.0 / len(labels)), size=n_boot)
    alpha = (1.0 - level) / 2.0
    reps = (draws @ sums) / (draws @ counts)
    out = {"mean": float(v.mean())}
    out["low"], out["high"] = (float(q) for q in np.quantile(reps, [alpha, 1 - alpha]))
    if baseline is not None:
        b = np.asarray(baseline, dtype=np.float64).reshape(-1)
        if b.shape != v.shape:
            raise ValueError("baseline must have one value per item")
        bsums = np.bincount(k, weights=b, minlength=len(labels))
        with np.errstate(divide="ignore", invalid="ignore"):
            change = (draws @ sums) / (draws @ bsums) - 1.0
        out["change"] = float(v.sum() / b.sum() - 1.0)
        out["change_low"], out["change_high"] = (
            float(q) for q in np.nanquantile(change, [alpha, 1 - alpha])
        )
    return out


# ------------------------------------------------------------------------------------------------
# The evaluation
# ------------------------------------------------------------------------------------------------
def evaluate(
    items: TransferItems,
    methods: Mapping[str, Method],
    *,
    encoder: Any = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    keep_outputs: int = 0,
) -> dict[str, Any]:
    """Run every method on every item and measure it.

    Args:
        items: from :func:`make_items`.
        methods: name → :data:`Method`; :data:`INPUT` is added first when missing (the
            relative changes are against it).
        encoder: the encoder of the embedding distances (None: those are NaN).
        n_boot: bootstrap replicates.
        seed: bootstrap seed.
        progress: called with ``"method/stem"`` after each.
        keep_outputs: keep the outputs of the first ``keep_outputs`` items (for plots and
            listening) under ``"outputs"``.

    Returns:
        ``{"methods": {name: {"stems": {stem: {measure: stats}}, "mix": {...}, "stem_mean":
        {...}}}, "per_item": {name: {scope: {measure: list}}}, "outputs": {...}}`` where
        ``stats`` is :func:`bootstrap_mean`'s dict; ``stem_mean`` averages the four stems' item
        values (the paper's "single stem" column), ``mix`` is the sum of the stems (its
        "multitrack" column, here on the summed audio).
    """
    all_methods: dict[str, Method] = {INPUT: identity_method}
    all_methods.update(methods)
    fs = items.sample_rate
    per_item: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    outputs: dict[str, Tensor] = {}
    for name, method in all_methods.items():
        scopes: dict[str, dict[str, np.ndarray]] = {}
        ys = []
        for k, stem in enumerate(STEMS):
            x, r, t = items.inputs[:, k], items.references[:, k], items.targets[:, k]
            y = method(x, r, stem, fs)
            if not isinstance(y, Tensor) or y.shape != x.shape:
                got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                raise ValueError(f"method {name!r} returned {got} for inputs {tuple(x.shape)}")
            if not bool(torch.isfinite(y).all()):
                raise ValueError(f"method {name!r} returned non-finite audio for the {stem}")
            y = y.detach().float().cpu()
            ys.append(y)
            scopes[stem] = {m: v.numpy() for m, v in item_measures(y, r, t, fs, encoder).items()}
            if progress is not None:
                progress(f"{name}/{stem}")
        mix_y = torch.stack(ys, 1).sum(1)
        mix = item_measures(mix_y, items.references.sum(1), items.targets.sum(1), fs, None)
        scopes["mix"] = {m: v.numpy() for m, v in mix.items() if not m.startswith("emb")}
        scopes["stem_mean"] = {m: np.mean([scopes[s][m] for s in STEMS], axis=0) for m in MEASURES}
        per_item[name] = scopes
        if keep_outputs:
            outputs[name] = torch.stack(ys, 1)[:keep_outputs]
    results: dict[str, Any] = {"methods": {}, "per_item": {}}
    base = per_item[INPUT]
    for name, scopes in per_item.items():
        res: dict[str, Any] = {}
        for scope, measures in scopes.items():
            res[scope] = {}
            for m, v in measures.items():
                if np.isnan(v).all():
                    continue
                res[scope][m] = bootstrap_mean(
                    v, items.song, baseline=None if name == INPUT else base[scope][m],
                    n_boot=n_boot, seed=seed,
                )  # fmt: skip
        results["methods"][name] = res
        results["per_item"][name] = {
            s: {m: v.tolist() for m, v in ms.items()} for s, ms in scopes.items()
        }
    if keep_outputs:
        results["outputs"] = outputs
    return results


_LABELS = {
    "mss_lr": "L_MSS L&R", "mss_ms": "L_MSS M&S", "emb_ref": "ΔΦ y–ref", "emb_gt": "ΔΦ y–gt",
    "loudness_lu": "loudness (LU)", "centroid_oct": "centroid (oct)", "crest_db": "crest (dB)",
    "width": "width", "balance_db": "L/R balance (dB)", "bark_db": "Bark spectrum (dB)",
}  # fmt: skip


def _encoder_name(record: Any) -> str:
    """A readable name of an encoder record (its source and the start of its SHA-256)."""
    if isinstance(record, Mapping):
        sha = str(record.get("sha256") or "")[:12]
        return f"{record.get('source')}" + (f" (sha256 {sha}…)" if sha else "")
    return str(record)


def _cell(stats: Mapping[str, float] | None, change: bool) -> str:
    if stats is None:
        return "—"
    text = f"{stats['mean']:.3f} [{stats['low']:.3f}, {stats['high']:.3f}]"
    if change and "change" in stats:
        text += f" ({100 * stats['change']:+.1f} % [{100 * stats['change_low']:+.1f}, "
        text += f"{100 * stats['change_high']:+.1f}])"
    return text


def results_markdown(results: Mapping[str, Any], setup: Mapping[str, Any] | None = None) -> str:
    """The Markdown report: the paper's four measures for the mix and the stem mean (ours,
    then the paper's Table 2), the audio-feature errors, and one table per stem."""
    methods = results["methods"]
    out = ["# Style-transfer evaluation", ""]
    if setup:
        out += [
            f"Data: `{setup.get('data')}` split `{setup.get('split')}`, "
            f"{setup.get('songs')} songs × {setup.get('styles')} styles = {setup.get('items')} "
            f"items of {setup.get('seconds'):g} s at {setup.get('sample_rate')} Hz (inputs "
            f"FX-normalized; reference: another song's stems through the style's chains; "
            f"target: the input through them; styles made by "
            f"{setup.get('style_library', 'fxdsp')}); encoder "
            f"`{_encoder_name(setup.get('encoder'))}`; seed {setup.get('seed')}, "
            f"{setup.get('bootstrap')} song-bootstrap replicates.",
            "",
        ]
    out += [
        "Each cell: mean [95 % song-bootstrap interval] (change against input unchanged, "
        "paired interval). Lower is better everywhere.",
        "",
    ]
    for scope, title in (("mix", "Mix (sum of the four stems)"), ("stem_mean", "Single stems")):
        out += [f"## {title}", ""]
        cols = ["mss_lr", "mss_ms"] + (["emb_ref", "emb_gt"] if scope == "stem_mean" else [])
        out.append("| method | " + " | ".join(_LABELS[c] for c in cols) + " |")
        out.append("|" + "---|" * (len(cols) + 1))
        for name, res in methods.items():
            row = [_cell(res[scope].get(c), True) for c in cols]
            out.append(f"| {name} | " + " | ".join(row) + " |")
        j = 0 if scope == "mix" else 1
        for name, paper in PAPER_TABLE2.items():
            row = [f"{paper[c][j]:.3f}" for c in cols]
            out.append(f"| paper: {name} (MUSDB18) | " + " | ".join(row) + " |")
        out += ["", f"Audio-feature errors ({title.lower()}):", ""]
        out.append("| method | " + " | ".join(_LABELS[c] for c in FEATURES) + " |")
        out.append("|" + "---|" * (len(FEATURES) + 1))
        for name, res in methods.items():
            row = [f"{res[scope][c]['mean']:.3f}" for c in FEATURES]
            out.append(f"| {name} | " + " | ".join(row) + " |")
        out.append("")
    out += ["## Per stem (L_MSS L&R / M&S, ΔΦ y–gt)", ""]
    out.append("| method | " + " | ".join(STEMS) + " |")
    out.append("|" + "---|" * (len(STEMS) + 1))
    for name, res in methods.items():
        row = []
        for s in STEMS:
            m = res[s]
            gt = f" / {m['emb_gt']['mean']:.3f}" if "emb_gt" in m else ""
            row.append(f"{m['mss_lr']['mean']:.3f} / {m['mss_ms']['mean']:.3f}{gt}")
        out.append(f"| {name} | " + " | ".join(row) + " |")
    out += [
        "",
        "Rows named `paper:` are Koo et al. (ICASSP 2023) Table 2 on MUSDB18 with their chain, "
        "data and embedding distance; context, not a like-for-like comparison (their "
        "multitrack column measures the mix, as ours does; the embedding distance here is "
        "1 − cosine of this project's encoder).",
    ]
    return "\n".join(out) + "\n"
