"""Evaluation of audio-effects encoders: the paper's four conditions (Koo et al., Table 1).

``mixfx eval-encoder`` (:mod:`mixfx.commands.eval_encoder`) is this module plus file output.
Everything here is a pure function of its inputs (seeded), so each step is testable.

**Contents.** :func:`load_segments` takes one aligned segment per held-out song: the four stems
(``STEMS``) at the same offset, each at least ``silence_db`` dBFS (a song without such a
segment is skipped), chosen with a seeded generator among the segment grid of the dataset
(``fxdata``, stem mode, hop = half a segment, no jitter).

**Styles.** A *style* is one drawn chain per stem type: ``fxdsp.sample_params(n,
stems=<stem>, generator=<seeded>)`` drawn separately for drums, bass, other and vocals, so
style ``s`` of the drums is one chain and style ``s`` of the bass another, both fixed across
songs. Two chain *settings*:

* **full chain**: every effect on (all probabilities 1.0, reverb included for every stem), so
  every parameter of the :class:`fxdsp.ParamSpace` (24 columns) is a defined factor; the
  orders of EQ/compressor and pan/imager, the pan law and the polarity flip are drawn as usual
  (they are not factors);
* **single effect** ``e``: only ``e`` on; the factors are ``e``'s ParamSpace columns
  (EQ 13, compressor 4, pan 1, imager 1, reverb 4, gain 1).

Factors are the drawn values in the chain config's normalized ``[0, 1]`` space
(:meth:`fxdsp.FxParams.normalized`, log scale for frequencies, Qs, ratio, times, RT60),
restricted to ``e`` in single-effect conditions.

**Items and scopes.**

* *single stem*: an item is ``(song, stem, style)``: that stem's segment through that stem's
  chain of the style, embedded alone. All four stem types are pooled; the factors of an item
  are those of its own chain (K = 24 full, K = |e| single).
* *multitrack*: an item is ``(song, style)``: the four stems of the song's segment (same
  offset), each through its stem's chain of the style; its embedding is the **concatenation**
  of the four stems' embeddings in ``STEMS`` order (for every embedding, the baselines
  included), and its factors are the four chains' factors concatenated (K = 4 × 24 full,
  4 × |e| single).

**Two item sets per setting.** Disentanglement needs factors that vary independently from
item to item, while retrieval needs the same style on several songs; one set cannot serve
both (with ``S`` shared styles every factor is a function of the style index, so all factors
carry the same information and DCIMIG's gap is 0 even for a perfect code). So:

* the *styles* set: ``styles`` shared styles × every song (× every stem): **top-1 style
  retrieval across songs** (:func:`fxencoder.metrics.retrieval_correct`; nearest neighbour by
  cosine among the items of *other* songs, and of the same stem type in the single-stem
  scope; chance ``1/styles``), with a 95 % song-bootstrap interval
  (:func:`bootstrap_accuracy`);
* the *draws* set: ``draws`` independent draws per song (a fresh chain per (song, stem,
  draw)): **DCIMIG** (:func:`fxencoder.metrics.dcimig`, ``n_bins`` quantile bins) and **DCI
  random-forest explicitness** (:func:`fxencoder.metrics.dci`, held-out R², train/test split
  by song: a quarter of the songs, at least one, are test songs).

**Conditions** (:data:`CONDITIONS`): ``multitrack_full``, ``stem_full``,
``multitrack_single``, ``stem_single``. A single-effect condition's figures are the means over
the six effects (each effect also reported); its retrieval interval resamples songs jointly
for the six effects.

**Embeddings** are :class:`Embedder` s: an encoder (:class:`EncoderEmbedder`, ``embed()``),
the two baselines of :mod:`fxencoder.features` (:class:`ContentEmbedder`,
:class:`EffectFeaturesEmbedder`, standardised with statistics fitted on the whole item set),
the :class:`OracleEmbedder` (the item's factors themselves: the ceiling the finite sample
allows), or any ``fn(audio, sample_rate, meta) -> (n, E)`` (:func:`as_embedder`; the
``embed_fn`` hook).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import fxdsp
from fxdsp.registry import EFFECTS, STEMS
from fxdsp.space import ParamSpace
from fxencoder import features
from fxencoder.metrics import dci, dcimig, retrieval_correct

__all__ = [
    "BASELINES",
    "CONDITIONS",
    "CONDITION_DEFINITIONS",
    "ORACLE",
    "PAPER_TABLE1",
    "SETTINGS",
    "ContentEmbedder",
    "EffectFeaturesEmbedder",
    "Embedder",
    "EncoderEmbedder",
    "EvalSegments",
    "ItemSet",
    "OracleEmbedder",
    "aligned_offsets",
    "as_embedder",
    "bootstrap_accuracy",
    "bootstrap_difference",
    "chain_config",
    "default_embedders",
    "draw_chains",
    "evaluate",
    "evaluate_setting",
    "load_segments",
    "multitrack_view",
    "oracle_codes",
    "render_items",
    "results_markdown",
]

#: The paper's four conditions, in Table 1's column order.
CONDITIONS: tuple[str, ...] = ("multitrack_full", "stem_full", "multitrack_single", "stem_single")
#: Chain settings: the full chain, then one per effect.
SETTINGS: tuple[str, ...] = ("full", *EFFECTS)
#: Names of the baseline embeddings.
BASELINES: tuple[str, ...] = ("content_embedding", "effect_features")
#: Name of the oracle embedding (the factors themselves).
ORACLE = "oracle"
_SCOPES = ("multitrack", "stem")

#: The paper's Table 1 (MUSDB18 test set): DCIMIG / DCI RF explicitness per condition.
PAPER_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "MEE": {"multitrack_full": (0.129, 0.816), "stem_full": (0.131, 0.802),
            "multitrack_single": (0.074, 0.727), "stem_single": (0.064, 0.655)},
    "Φ∅": {"multitrack_full": (0.398, 0.928), "stem_full": (0.371, 0.910),
           "multitrack_single": (0.209, 0.830), "stem_single": (0.124, 0.772)},
    "Φnorm": {"multitrack_full": (0.473, 0.937), "stem_full": (0.430, 0.932),
              "multitrack_single": (0.248, 0.836), "stem_single": (0.146, 0.786)},
    "Φp.s.": {"multitrack_full": (0.674, 0.963), "stem_full": (0.515, 0.928),
              "multitrack_single": (0.349, 0.881), "stem_single": (0.183, 0.795)},
}  # fmt: skip

#: One-paragraph definitions of the conditions (written into results.json).
CONDITION_DEFINITIONS: dict[str, str] = {
    "multitrack_full": (
        "Item = (song, style): the song's four stems at one offset, each through its stem "
        "type's full chain of the style (every effect on); embedding = the four stems' "
        "embeddings concatenated (drums, bass, other, vocals); factors = the four chains' "
        "normalized parameters concatenated (4 x 24)."
    ),
    "stem_full": (
        "Item = (song, stem, style): one stem's segment through its stem type's full chain of "
        "the style (every effect on), embedded alone; factors = that chain's 24 normalized "
        "parameters; the four stem types pooled; retrieval within a stem type."
    ),
    "multitrack_single": (
        "As multitrack_full with only one effect on per chain; factors = that effect's "
        "parameters of the four chains; figures averaged over the six effects."
    ),
    "stem_single": (
        "As stem_full with only one effect on; factors = that effect's parameters; figures "
        "averaged over the six effects."
    ),
}


# ------------------------------------------------------------------------------------------------
# Contents
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalSegments:
    """One aligned segment per song.

    Attributes:
        audio: ``(songs, 4, 2, L)`` float32 on the CPU, stems in ``STEMS`` order.
        songs: the songs' names.
        sample_rate: Hz.
        offsets: the segment's offset in samples, per song.
    """

    audio: Tensor
    songs: tuple[str, ...]
    sample_rate: int
    offsets: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        a = self.audio
        if not isinstance(a, Tensor) or a.ndim != 4 or a.shape[1:3] != (len(STEMS), 2):
            shape = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
            raise ValueError(f"segments must be (songs, {len(STEMS)}, 2, samples), got {shape}")
        if a.shape[0] < 2:
            raise ValueError(
                f"the evaluation needs at least 2 songs (retrieval and the split are across "
                f"songs), got {a.shape[0]}"
            )
        if len(self.songs) != a.shape[0]:
            raise ValueError(f"{len(self.songs)} song names for {a.shape[0]} songs")

    @property
    def seconds(self) -> float:
        """Segment length in seconds."""
        return self.audio.shape[-1] / self.sample_rate


def aligned_offsets(index: np.ndarray, n_stems: int) -> dict[int, list[int]]:
    """Per track, the sorted offsets that every one of its ``n_stems`` stems has a segment at.

    ``index`` is a stem-mode dataset's ``(track, stem, offset)`` rows (segments of loud audio
    only); tracks without such an offset are left out.
    """
    aligned: dict[int, list[int]] = {}
    for t in np.unique(index[:, 0]):
        rows = index[index[:, 0] == t]
        offsets = None
        for s in range(n_stems):
            here = set(rows[rows[:, 1] == s, 2].tolist())
            offsets = here if offsets is None else offsets & here
        if offsets:
            aligned[int(t)] = sorted(offsets)
    return aligned


def load_segments(
    path: str | Path,
    split: str = "test",
    *,
    seconds: float = 3.0,
    songs: int | None = None,
    sample_rate: int = 44100,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    fxnorm: bool = False,
    silence_db: float = -50.0,
) -> EvalSegments:
    """One aligned four-stem segment per song of a dataset split.

    The dataset is opened in stem mode (every stem's segment index holds only segments of at
    least ``silence_db`` dBFS); an offset present for all four stems of a song is an aligned,
    loud segment. Songs without one are skipped; ``songs`` of the rest are kept (a seeded
    choice, then sorted by name), each with one of its aligned offsets (seeded choice).

    Args:
        path: a dataset folder (or a segment pack) that ``fxdata.open_dataset`` reads.
        split: ``test`` (held-out songs), ``valid``, ``train`` or ``all``.
        seconds: segment length.
        songs: at most this many songs (None: all).
        sample_rate: Hz the audio is served at.
        seed: seed of the choices.
        cache_dir: fxdata's decode cache (default ``$MIXFX_CACHE`` or ``~/.cache/mixfx``).
        fxnorm: FX-normalize the stems with the shipped corpus statistics first (as the
            training data of ``mixfx train-encoder``; a pack is served as packed).
        silence_db: the loudness gate of every stem of a segment.

    Raises:
        ValueError: fewer than 2 songs with an aligned loud segment, or what fxdata refuses.
    """
    import fxdata
    from fxdata.tracks import detect_layout

    options: dict[str, Any] = {"sample_rate": int(sample_rate)}
    if detect_layout(path) != "pack":
        options.update(cache_dir=cache_dir, jitter=False, silence_db=silence_db, mode="stem")
        if fxnorm:
            options.update(fxdata.corpus_fxnorm())
    ds = fxdata.open_dataset(path, split, STEMS, segment_seconds=seconds, **options)
    index = np.asarray(ds.index)
    if index.ndim != 2 or len(index) == 0:
        raise ValueError(f"no loud segments in the {split} split of {path}")
    stem_names = [str(s) for s in ds.stems]
    if stem_names != list(STEMS):
        raise ValueError(f"the dataset's stems are {stem_names}, expected {list(STEMS)}")
    rng = np.random.default_rng([seed, 0])
    aligned = aligned_offsets(index, len(STEMS))
    names_all = [ds.tracks[t].name for t in range(len(ds.tracks))]
    if len(aligned) < 2:
        raise ValueError(
            f"the {split} split of {path} has {len(aligned)} song(s) with a segment of "
            f"{seconds:g} s where all four stems are above {silence_db:g} dBFS; the evaluation "
            "needs at least 2"
        )
    tracks = sorted(aligned)
    if songs is not None and songs < len(tracks):
        tracks = sorted(rng.choice(tracks, size=songs, replace=False).tolist())
    row_of = {(int(t), int(s), int(o)): i for i, (t, s, o) in enumerate(index)}
    audio, offsets_out = [], []
    for t in tracks:
        offset = int(aligned[t][int(rng.integers(len(aligned[t])))])
        audio.append(torch.stack([ds[row_of[(t, s, offset)]]["audio"] for s in range(len(STEMS))]))
        offsets_out.append(offset)
    return EvalSegments(
        torch.stack(audio).float(), tuple(names_all[t] for t in tracks), int(ds.sample_rate),
        tuple(offsets_out),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Chains and factors
# ------------------------------------------------------------------------------------------------
def chain_config(sample_rate: float) -> fxdsp.ChainConfig:
    """The reference chain at ``sample_rate``."""
    return fxdsp.ChainConfig().replace(sample_rate=float(sample_rate))


def _probabilities(setting: str) -> dict[str, float]:
    if setting == "full":
        return dict.fromkeys(EFFECTS, 1.0)
    if setting not in EFFECTS:
        raise ValueError(f"unknown setting {setting!r}; expected one of {SETTINGS}")
    return {e: float(e == setting) for e in EFFECTS}


def factor_space(setting: str, config: fxdsp.ChainConfig) -> ParamSpace:
    """The factors' columns of a setting: the whole ParamSpace, or one effect's."""
    _probabilities(setting)  # validates
    return ParamSpace(config) if setting == "full" else ParamSpace(config, effects=(setting,))


def draw_chains(
    setting: str, stem: str, n: int, generator: torch.Generator, config: fxdsp.ChainConfig
) -> fxdsp.FxParams:
    """``n`` chains of one stem type for a setting (``"full"``: every effect on; an effect
    name: only it on), from ``generator``."""
    return fxdsp.sample_params(
        n, stems=stem, probabilities=_probabilities(setting), generator=generator, config=config
    )


# ------------------------------------------------------------------------------------------------
# Embedders
# ------------------------------------------------------------------------------------------------
class Embedder:
    """An embedding of rendered items, called chunk by chunk, then finalized on the whole set.

    ``__call__(audio, sample_rate, meta)`` gets ``audio`` ``(n, 2, L)`` float32 on the
    rendering device and ``meta`` (NumPy arrays of the chunk's items: ``song``, ``stem``,
    ``style``, ``factors``); it returns ``(n, E)``. ``finalize`` maps the ``(N, E)`` stack of
    all chunks to the final embeddings (identity here; the baselines standardise there).
    """

    def __call__(self, audio: Tensor, sample_rate: int, meta: Mapping[str, np.ndarray]) -> Any:
        raise NotImplementedError

    def finalize(self, embeddings: np.ndarray) -> np.ndarray:
        """The final ``(N, E)`` embeddings of the whole set."""
        return embeddings


class _FunctionEmbedder(Embedder):
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, audio: Tensor, sample_rate: int, meta: Mapping[str, np.ndarray]) -> Any:
        return self.fn(audio, sample_rate, meta)


def as_embedder(obj: Embedder | Callable[..., Any]) -> Embedder:
    """An :class:`Embedder`, or a plain ``fn(audio, sample_rate, meta) -> (n, E)`` wrapped."""
    if isinstance(obj, Embedder):
        return obj
    if callable(obj):
        return _FunctionEmbedder(obj)
    raise ValueError(f"an embedder must be an Embedder or a callable, got {type(obj).__name__}")


class EncoderEmbedder(Embedder):
    """An :class:`~fxencoder.FXEncoder`'s ``embed(audio, sample_rate)`` (it resamples and
    averages over its own segment length)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, audio: Tensor, sample_rate: int, meta: Mapping[str, np.ndarray]) -> Any:
        device = next(self.model.parameters()).device
        return self.model.embed(audio.to(device), sample_rate)


class ContentEmbedder(Embedder):
    """:func:`fxencoder.features.content_embedding`, standardised on the whole item set."""

    def __call__(self, audio: Tensor, sample_rate: int, meta: Mapping[str, np.ndarray]) -> Any:
        return features.content_features(audio, sample_rate)

    def finalize(self, embeddings: np.ndarray) -> np.ndarray:
        return features.standardize(torch.from_numpy(embeddings)).numpy()


class EffectFeaturesEmbedder(Embedder):
    """:func:`fxencoder.features.effect_features`, standardised on the whole item set."""

    def __init__(self) -> None:
        self.sample_rate: int | None = None

    def __call__(self, audio: Tensor, sample_rate: int, meta: Mapping[str, np.ndarray]) -> Any:
        self.sample_rate = sample_rate
        return features.effect_features_raw(audio, sample_rate)

    def finalize(self, embeddings: np.ndarray) -> np.ndarray:
        groups = features.effect_feature_groups(self.sample_rate or 44100)
        return features.standardize(torch.from_numpy(embeddings), None, groups).numpy()


def oracle_codes(factors: np.ndarray) -> np.ndarray:
    """Factors ``u`` in ``[0, 1]`` as points on a quarter circle: ``[cos(πu/2), sin(πu/2)]``
    per factor, ``(N, K)`` → ``(N, 2K)``.

    Each column is a strictly monotone function of one factor (so DCIMIG and DCI see the
    factors themselves), and the cosine similarity of two items is the mean of
    ``cos(π(u_k − u'_k)/2)`` over factors, 1 only for equal factors, so retrieval ranks by
    factor distance even with one factor (raw one-column factors all have cosine 1).
    """
    theta = 0.5 * np.pi * np.asarray(factors, dtype=np.float64)
    return np.concatenate([np.cos(theta), np.sin(theta)], axis=1)


class OracleEmbedder(Embedder):
    """The item's factors themselves (:func:`oracle_codes`): what a perfect code scores with
    this sample, the ceiling of every figure."""

    def __call__(self, audio: Tensor, sample_rate: int, meta: Mapping[str, np.ndarray]) -> Any:
        return oracle_codes(meta["factors"])


def default_embedders(
    encoders: Mapping[str, Any] | None = None, oracle: bool = True
) -> dict[str, Embedder]:
    """Encoders (label → model), then the two baselines, then the oracle."""
    out: dict[str, Embedder] = {k: EncoderEmbedder(m) for k, m in (encoders or {}).items()}
    clash = sorted(set(out) & {*BASELINES, ORACLE})
    if clash:
        raise ValueError(f"encoder label(s) {clash} are reserved for the baselines")
    out["content_embedding"] = ContentEmbedder()
    out["effect_features"] = EffectFeaturesEmbedder()
    if oracle:
        out[ORACLE] = OracleEmbedder()
    return out


def _numpy(x: Any, n: int, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"embedder {name!r} returned shape {arr.shape}, expected ({n}, E)")
    if not np.isfinite(arr).all():
        raise ValueError(f"embedder {name!r} returned NaN or inf values")
    return arr


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------
@dataclass
class ItemSet:
    """Rendered, embedded items of one setting (audio not kept).

    Attributes:
        setting: ``"full"`` or an effect name.
        kind: ``"styles"`` (shared styles across songs) or ``"draws"`` (independent draws).
        scope: ``"stem"`` (one item per (song, stem, style)) or ``"multitrack"``.
        song, stem, style: ``(N,)`` int64: song index, stem index into ``STEMS`` (-1 for a
            multitrack item), style (or draw) index.
        factors: ``(N, K)`` float64, normalized parameters.
        factor_names: ``K`` names (``"drums:eq.gain_db[0]"`` in the multitrack scope).
        embeddings: name → ``(N, E)`` float64.
    """

    setting: str
    kind: str
    scope: str
    song: np.ndarray
    stem: np.ndarray
    style: np.ndarray
    factors: np.ndarray
    factor_names: tuple[str, ...]
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.song)


def _seed_for(seed: int, setting: str, kind: str) -> int:
    return int(seed) * 1000 + 2 * SETTINGS.index(setting) + (kind == "draws") + 1


def render_items(
    segments: EvalSegments,
    embedders: Mapping[str, Embedder | Callable[..., Any]],
    setting: str,
    kind: str,
    count: int,
    *,
    seed: int = 0,
    config: fxdsp.ChainConfig | None = None,
    device: str | torch.device = "cpu",
    batch: int = 32,
) -> ItemSet:
    """Render one setting's single-stem items through their chains and embed them.

    ``kind="styles"``: ``count`` chains per stem type, shared by every song (item ``(song,
    stem, s)`` is that stem's segment through chain ``s`` of that stem). ``kind="draws"``:
    ``count`` fresh chains per (song, stem). Items are ordered song, stem, style. Draws come
    from ``torch.Generator().manual_seed(1000·seed + 2·setting index + (kind == draws) + 1)``,
    stem by stem.

    Args:
        segments: the songs' aligned segments.
        embedders: name → :class:`Embedder` (or ``fn(audio, sample_rate, meta)``).
        setting: ``"full"`` or an effect name.
        kind: ``"styles"`` or ``"draws"``.
        count: styles (or draws per song).
        seed: the evaluation's seed.
        config: the chain config (default: the reference at the segments' rate).
        device: where the audio is rendered and embedded.
        batch: items per rendering chunk.

    Returns:
        The :class:`ItemSet` (scope ``"stem"``).
    """
    if kind not in ("styles", "draws"):
        raise ValueError(f"kind must be 'styles' or 'draws', got {kind!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    cfg = config if config is not None else chain_config(segments.sample_rate)
    space = factor_space(setting, cfg)
    embs = {name: as_embedder(e) for name, e in embedders.items()}
    n_songs, n_stems = segments.audio.shape[:2]
    gen = torch.Generator().manual_seed(_seed_for(seed, setting, kind))
    per_stem = count if kind == "styles" else n_songs * count
    tables = [draw_chains(setting, stem, per_stem, gen, cfg) for stem in STEMS]
    table = fxdsp.FxParams.cat(tables)
    factor_table = space.to_normalized(table.values).double().numpy()
    song, stem, style = (a.reshape(-1) for a in np.meshgrid(
        np.arange(n_songs), np.arange(n_stems), np.arange(count), indexing="ij"))  # fmt: skip
    if kind == "styles":
        rows = stem * per_stem + style
    else:
        rows = stem * per_stem + song * count + style
    factors = factor_table[rows]
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in embs}
    for start in range(0, len(rows), batch):
        sl = slice(start, start + batch)
        idx = torch.from_numpy(rows[sl])
        x = segments.audio[torch.from_numpy(song[sl]), torch.from_numpy(stem[sl])].to(device)
        with torch.no_grad():
            y = fxdsp.Manipulator(table[idx].to(device))(x)
        meta = {"song": song[sl], "stem": stem[sl], "style": style[sl], "factors": factors[sl]}
        for name, emb in embs.items():
            chunks[name].append(_numpy(emb(y, segments.sample_rate, meta), len(idx), name))
    embeddings = {}
    for name, emb in embs.items():
        stacked = np.concatenate(chunks[name])
        embeddings[name] = _numpy(emb.finalize(stacked), len(rows), name)
    return ItemSet(setting, kind, "stem", song, stem, style, factors, space.names, embeddings)


def multitrack_view(items: ItemSet) -> ItemSet:
    """The multitrack items of a single-stem set: per (song, style), the four stems'
    embeddings and factors concatenated in ``STEMS`` order."""
    if items.scope != "stem":
        raise ValueError("multitrack_view needs a single-stem item set")
    n_songs = int(items.song.max()) + 1
    n_stems = int(items.stem.max()) + 1
    count = int(items.style.max()) + 1
    if len(items) != n_songs * n_stems * count:
        raise ValueError("the item set is not a complete song × stem × style grid")

    def join(a: np.ndarray) -> np.ndarray:  # (songs·stems·count, E) → (songs·count, stems·E)
        g = a.reshape(n_songs, n_stems, count, -1).transpose(0, 2, 1, 3)
        return g.reshape(n_songs * count, -1)

    song = np.repeat(np.arange(n_songs), count)
    style = np.tile(np.arange(count), n_songs)
    names = tuple(f"{STEMS[s]}:{n}" for s in range(n_stems) for n in items.factor_names)
    return ItemSet(
        items.setting, items.kind, "multitrack", song, np.full(len(song), -1), style,
        join(items.factors), names, {k: join(v) for k, v in items.embeddings.items()},
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Scores
# ------------------------------------------------------------------------------------------------
def _song_bootstrap(
    hits: Sequence[np.ndarray], songs: Sequence[np.ndarray], n_boot: int, seed: int
) -> tuple[float, np.ndarray]:
    """The point estimate and the ``(n_boot,)`` replicates of :func:`bootstrap_accuracy`."""
    if len(hits) == 0 or len(hits) != len(songs):
        raise ValueError("hits and songs must be non-empty sequences of the same length")
    labels = np.unique(np.concatenate([np.asarray(s).reshape(-1) for s in songs]))
    correct, count = [], []
    for h, s in zip(hits, songs, strict=True):
        h = np.asarray(h, dtype=np.float64)
        valid = ~np.isnan(h)
        if not valid.any():
            raise ValueError("a set has no query with a candidate")
        k = np.searchsorted(labels, np.asarray(s).reshape(-1)[valid])
        correct.append(np.bincount(k, weights=h[valid], minlength=len(labels)))
        count.append(np.bincount(k, minlength=len(labels)).astype(np.float64))
    c, n = np.stack(correct), np.stack(count)  # (sets, songs)
    point = float(np.mean(c.sum(1) / n.sum(1)))
    has = n.sum(0) > 0
    c, n = c[:, has], n[:, has]
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(has.sum(), np.full(has.sum(), 1.0 / has.sum()), size=n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (draws @ c.T) / (draws @ n.T)  # (n_boot, sets); NaN if a set drew no query
    return point, np.nanmean(reps, axis=1)


def bootstrap_accuracy(
    hits: Sequence[np.ndarray],
    songs: Sequence[np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """The mean over sets of top-1 accuracy, with a song-bootstrap interval shared by the sets.

    Each replicate draws the songs once (with replacement) and computes every set's accuracy
    over the queries of the drawn songs (with multiplicity), then their mean: for one set it is
    :func:`fxencoder.metrics.retrieval_bootstrap`'s replicate; for the six single-effect sets,
    the same songs are drawn for all six.

    Args:
        hits: per set, ``(N_i,)`` per-query outcomes (1, 0, NaN: no candidate) of
            :func:`fxencoder.metrics.retrieval_correct`.
        songs: per set, ``(N_i,)`` song labels of the queries (the same song labels in all sets).
        n_boot: replicates.
        seed: seed of ``numpy.random.default_rng``.
        level: coverage of the percentile interval.

    Returns:
        ``(accuracy, low, high)``.
    """
    point, reps = _song_bootstrap(hits, songs, n_boot, seed)
    alpha = (1.0 - level) / 2.0
    low, high = np.nanquantile(reps, [alpha, 1.0 - alpha])
    return point, float(low), float(high)


def bootstrap_difference(
    hits_a: Sequence[np.ndarray],
    hits_b: Sequence[np.ndarray],
    songs: Sequence[np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Accuracy of ``a`` minus accuracy of ``b`` on the same queries, with a paired interval.

    Both are scored on the same replicates (the same songs drawn), so what the two embeddings
    share (an easy or a hard song) cancels: the interval is the one of the difference, narrower
    than the two separate intervals suggest. Arguments as :func:`bootstrap_accuracy`; ``songs``
    are the queries' songs in both.

    Returns:
        ``(difference, low, high)``.
    """
    point_a, reps_a = _song_bootstrap(hits_a, songs, n_boot, seed)
    point_b, reps_b = _song_bootstrap(hits_b, songs, n_boot, seed)
    alpha = (1.0 - level) / 2.0
    low, high = np.nanquantile(reps_a - reps_b, [alpha, 1.0 - alpha])
    return point_a - point_b, float(low), float(high)


def _scores(
    draws: ItemSet,
    styles: ItemSet,
    name: str,
    *,
    n_bins: int,
    trees: int,
    jobs: int,
    seed: int,
) -> dict[str, Any]:
    codes = draws.embeddings[name]
    d = dci(
        codes, draws.factors, groups=draws.song, n_estimators=trees, seed=seed,
        forest_kwargs={"n_jobs": jobs},
    )  # fmt: skip
    group = styles.stem if styles.scope == "stem" else None
    hits = retrieval_correct(styles.embeddings[name], styles.style, styles.song, group)
    return {
        "dcimig": dcimig(codes, draws.factors, n_bins=n_bins),
        "explicitness": d["explicitness"],
        "disentanglement": d["disentanglement"],
        "completeness": d["completeness"],
        "explicitness_per_factor": dict(
            zip(draws.factor_names, d["explicitness_per_factor"].tolist(), strict=True)
        ),
        "retrieval": float(np.nanmean(hits)),
        "_hits": hits,
        "_songs": styles.song,
    }


@dataclass
class SettingResult:
    """One setting's scores and item sets.

    Attributes:
        setting: ``"full"`` or an effect.
        scores: ``{scope: {embedding: {metric: value}}}`` (``"_hits"``/``"_songs"`` hold the
            per-query retrieval outcomes for the bootstrap).
        sets: ``{(scope, kind): ItemSet}``.
    """

    setting: str
    scores: dict[str, dict[str, dict[str, Any]]]
    sets: dict[tuple[str, str], ItemSet]


def evaluate_setting(
    segments: EvalSegments,
    embedders: Mapping[str, Embedder | Callable[..., Any]],
    setting: str,
    *,
    styles: int = 8,
    draws: int = 16,
    seed: int = 0,
    config: fxdsp.ChainConfig | None = None,
    device: str | torch.device = "cpu",
    n_bins: int = 10,
    trees: int = 100,
    jobs: int = 1,
    batch: int = 32,
    scopes: Iterable[str] = _SCOPES,
    on_scope: Callable[[str], None] | None = None,
) -> SettingResult:
    """Both scopes of one chain setting: render, embed, score every embedding.

    Args:
        segments: the songs.
        embedders: name → embedder (see :func:`render_items`).
        setting: ``"full"`` or an effect name.
        styles: shared styles per stem type (retrieval; chance ``1/styles``).
        draws: independent draws per (song, stem) (DCIMIG, DCI).
        seed: the evaluation's seed (draws, DCI split and forests).
        config: the chain config (default: the reference).
        device: rendering and embedding device.
        n_bins: DCIMIG's quantile bins.
        trees: trees per DCI random forest.
        jobs: the forests' ``n_jobs``.
        batch: items per rendering chunk.
        scopes: ``"multitrack"`` and/or ``"stem"``.
        on_scope: called with ``"<scope>_<setting>"`` after each scope is scored.

    Returns:
        A :class:`SettingResult`.
    """
    if styles < 2:
        raise ValueError(f"styles must be at least 2 (retrieval needs a choice), got {styles}")
    scopes = tuple(scopes)
    if not scopes or set(scopes) - set(_SCOPES):
        raise ValueError(f"scopes must be among {_SCOPES}, got {scopes}")
    common = {"seed": seed, "config": config, "device": device, "batch": batch}
    stem_sets = {
        "styles": render_items(segments, embedders, setting, "styles", styles, **common),
        "draws": render_items(segments, embedders, setting, "draws", draws, **common),
    }
    sets: dict[tuple[str, str], ItemSet] = {}
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    for scope in scopes:
        for kind, items in stem_sets.items():
            sets[(scope, kind)] = items if scope == "stem" else multitrack_view(items)
        scores[scope] = {
            name: _scores(sets[(scope, "draws")], sets[(scope, "styles")], name, n_bins=n_bins,
                          trees=trees, jobs=jobs, seed=seed)
            for name in stem_sets["styles"].embeddings
        }  # fmt: skip
        if on_scope is not None:
            on_scope(f"{scope}_{setting}")
    return SettingResult(setting, scores, sets)


_MEAN_KEYS = ("dcimig", "explicitness", "disentanglement", "completeness")


def _public(s: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if not k.startswith("_")}


def evaluate(
    segments: EvalSegments,
    embedders: Mapping[str, Embedder | Callable[..., Any]],
    *,
    styles: int = 8,
    draws: int = 16,
    seed: int = 0,
    config: fxdsp.ChainConfig | None = None,
    device: str | torch.device = "cpu",
    n_bins: int = 10,
    trees: int = 100,
    jobs: int = 1,
    bootstrap: int = 1000,
    batch: int = 32,
    settings: Sequence[str] = SETTINGS,
    on_step: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[tuple[str, str], ItemSet]]]:
    """The four conditions for every embedding.

    Args:
        segments, embedders, styles, draws, seed, config, device, n_bins, trees, jobs, batch:
            see :func:`evaluate_setting`.
        bootstrap: song-bootstrap replicates of the retrieval intervals (95 %).
        settings: the chain settings to run (default all; a full-chain or single-effect
            condition is reported when its settings ran: ``"full"``, or every effect).
        on_step: called with ``"<scope>_<setting>"`` after each of the (settings × 2) steps.

    Returns:
        ``(results, sets)``: ``results["conditions"][condition]`` holds ``"embeddings"``
        (name → ``dcimig``, ``explicitness``, ``disentanglement``, ``completeness``,
        ``retrieval``, ``retrieval_low``, ``retrieval_high``, and for the single-effect
        conditions ``"per_effect"``), ``"items"``, ``"factors"`` and ``"chance"``; ``sets``
        maps ``"<scope>_<setting>"`` to that step's item sets (by kind) for plots.
    """
    n_multi = len(segments.songs) * draws
    if n_multi < 2 * n_bins**2:
        warnings.warn(
            f"DCIMIG on {n_multi} multitrack items (songs x draws) with {n_bins} bins: the "
            f"plug-in mutual information is biased by about (bins - 1)^2 / (2 N) = "
            f"{(n_bins - 1) ** 2 / (2 * n_multi):.2f} nats; use more draws or fewer bins (the "
            "oracle row shows the ceiling this sample allows)",
            stacklevel=2,
        )
    per_setting: dict[str, SettingResult] = {}
    for setting in settings:
        per_setting[setting] = evaluate_setting(
            segments, embedders, setting, styles=styles, draws=draws, seed=seed,
            config=config, device=device, n_bins=n_bins, trees=trees, jobs=jobs, batch=batch,
            on_scope=on_step,
        )  # fmt: skip
    names = list(embedders)
    conditions: dict[str, Any] = {}
    for scope in _SCOPES:
        if "full" in per_setting:
            res = per_setting["full"]
            entry: dict[str, Any] = {}
            for name in names:
                s = res.scores[scope][name]
                acc, lo, hi = bootstrap_accuracy([s["_hits"]], [s["_songs"]], bootstrap, seed)
                entry[name] = {
                    **{k: s[k] for k in _MEAN_KEYS}, "retrieval": acc, "retrieval_low": lo,
                    "retrieval_high": hi, "explicitness_per_factor": s["explicitness_per_factor"],
                }  # fmt: skip
                if name not in (*BASELINES, ORACLE) and _VERSUS in names:
                    entry[name]["vs_" + _VERSUS] = _versus(
                        [s], [res.scores[scope][_VERSUS]], bootstrap, seed
                    )
            conditions[f"{scope}_full"] = _condition_info(res.sets, scope, styles, entry)
        if all(e in per_setting for e in EFFECTS):
            entry = {}
            for name in names:
                per = {e: per_setting[e].scores[scope][name] for e in EFFECTS}
                acc, lo, hi = bootstrap_accuracy(
                    [p["_hits"] for p in per.values()], [p["_songs"] for p in per.values()],
                    bootstrap, seed,
                )  # fmt: skip
                per_effect = {}
                for e, p in per.items():
                    a, l_, h_ = bootstrap_accuracy([p["_hits"]], [p["_songs"]], bootstrap, seed)
                    per_effect[e] = {
                        **_public(p),
                        "retrieval": a,
                        "retrieval_low": l_,
                        "retrieval_high": h_,
                    }
                entry[name] = {
                    **{k: float(np.mean([p[k] for p in per.values()])) for k in _MEAN_KEYS},
                    "retrieval": acc, "retrieval_low": lo, "retrieval_high": hi,
                    "per_effect": per_effect,
                }  # fmt: skip
                if name not in (*BASELINES, ORACLE) and _VERSUS in names:
                    entry[name]["vs_" + _VERSUS] = _versus(
                        list(per.values()),
                        [per_setting[e].scores[scope][_VERSUS] for e in EFFECTS],
                        bootstrap, seed,
                    )  # fmt: skip
            sets = per_setting[EFFECTS[0]].sets
            conditions[f"{scope}_single"] = _condition_info(sets, scope, styles, entry)
    ordered = {c: conditions[c] for c in CONDITIONS if c in conditions}
    plot_sets = {
        f"{scope}_{setting}": {kind: r.sets[(scope, kind)] for kind in ("styles", "draws")}
        for setting, r in per_setting.items()
        for scope in _SCOPES
    }
    return {"conditions": ordered, "embeddings": names}, plot_sets


_VERSUS = "effect_features"  # the baseline a learned encoder must beat


def _versus(
    mine: Sequence[Mapping[str, Any]], theirs: Sequence[Mapping[str, Any]], n_boot: int, seed: int
) -> dict[str, float]:
    diff, lo, hi = bootstrap_difference(
        [m["_hits"] for m in mine], [t["_hits"] for t in theirs], [m["_songs"] for m in mine],
        n_boot, seed,
    )  # fmt: skip
    return {"difference": diff, "low": lo, "high": hi}


def _condition_info(
    sets: Mapping[tuple[str, str], ItemSet], scope: str, styles: int, entry: dict[str, Any]
) -> dict[str, Any]:
    return {
        "items": {"styles": len(sets[(scope, "styles")]), "draws": len(sets[(scope, "draws")])},
        "factors": len(sets[(scope, "draws")].factor_names),
        "chance": 1.0 / styles,
        "embeddings": entry,
    }


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
_HEAD = {
    "multitrack_full": "MT full", "stem_full": "stem full",
    "multitrack_single": "MT single", "stem_single": "stem single",
}  # fmt: skip


def results_markdown(results: Mapping[str, Any]) -> str:
    """The Markdown report: one table (rows: embeddings, then the paper's Table 1 rows).

    Columns: per condition ``DCIMIG / explicitness``, then per condition top-1 retrieval with
    its 95 % song-bootstrap interval. The paper's rows (MUSDB18, their chain and data) have no
    retrieval figures. A per-effect table of the single-effect conditions follows.
    """
    conds = [c for c in CONDITIONS if c in results["conditions"]]
    cells = results["conditions"]
    head = ["embedding"] + [f"{_HEAD[c]} DCIMIG / expl." for c in conds]
    head += [f"{_HEAD[c]} retrieval [95 % CI]" for c in conds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in results["embeddings"]:
        row = [f"{name}" + (" (ceiling: the factors)" if name == ORACLE else "")]
        for c in conds:
            e = cells[c]["embeddings"][name]
            row.append(f"{e['dcimig']:.3f} / {e['explicitness']:.3f}")
        for c in conds:
            e = cells[c]["embeddings"][name]
            row.append(
                f"{e['retrieval']:.3f} [{e['retrieval_low']:.2f}, {e['retrieval_high']:.2f}]"
            )
        lines.append("| " + " | ".join(row) + " |")
    for name, paper in PAPER_TABLE1.items():
        row = [f"paper: {name} (MUSDB18)"]
        row += [f"{paper[c][0]:.3f} / {paper[c][1]:.3f}" for c in conds]
        row += ["—"] * len(conds)
        lines.append("| " + " | ".join(row) + " |")
    setup = results.get("setup", {})
    out = ["# Encoder evaluation", ""]
    if setup:
        out += [
            f"Data: `{setup.get('data')}` split `{setup.get('split')}`, "
            f"{len(setup.get('songs', []))} songs, {setup.get('seconds'):g} s segments at "
            f"{setup.get('sample_rate')} Hz; {setup.get('styles')} shared styles per stem type "
            f"(retrieval chance {1 / setup.get('styles', 1):.3f}), {setup.get('draws')} "
            f"independent draws per song (DCIMIG with {setup.get('n_bins')} quantile bins, DCI "
            f"with {setup.get('trees')} trees, split by song); seed {setup.get('seed')}, "
            f"{setup.get('bootstrap')} bootstrap replicates.",
            "",
        ]
    out += lines
    out += [
        "",
        "Rows named `paper:` are Koo et al. (ICASSP 2023) Table 1, measured on MUSDB18 with "
        "their chain and encoders, not by this command; they are context, not a like-for-like "
        "comparison. Multitrack embeddings are the four stems' embeddings concatenated. "
        "`oracle` embeds each item by its own factors: the best this sample size allows.",
    ]
    key = "vs_" + _VERSUS
    versus = [n for n in results["embeddings"] if key in cells[conds[0]]["embeddings"][n]]
    if versus:
        out += [
            "",
            "## Retrieval minus the hand-made effect features (paired song bootstrap, 95 %)",
            "",
            "Both embeddings are scored on the same bootstrap draws of songs, so an interval "
            "that excludes 0 is a difference the songs cannot explain.",
            "",
            "| embedding | " + " | ".join(_HEAD[c] for c in conds) + " |",
            "|" + "---|" * (len(conds) + 1),
        ]
        for name in versus:
            row = []
            for c in conds:
                v = cells[c]["embeddings"][name].get(key)
                row.append(
                    "—" if v is None
                    else f"{v['difference']:+.3f} [{v['low']:+.2f}, {v['high']:+.2f}]"
                )  # fmt: skip
            out.append(f"| {name} | " + " | ".join(row) + " |")
    singles = [c for c in ("multitrack_single", "stem_single") if c in cells]
    for c in singles:
        out += ["", f"## {_HEAD[c]}: per effect (DCIMIG / explicitness / retrieval)", ""]
        out.append("| embedding | " + " | ".join(EFFECTS) + " |")
        out.append("|" + "---|" * (len(EFFECTS) + 1))
        for name in results["embeddings"]:
            per = cells[c]["embeddings"][name]["per_effect"]
            row = [f"{per[e]['dcimig']:.2f} / {per[e]['explicitness']:.2f} / "
                   f"{per[e]['retrieval']:.2f}" for e in EFFECTS]  # fmt: skip
            out.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"
