"""Training triplets for the encoder and the cloner, drawn on the device inside a training step.

For each item of a batch:

- ``A1``: a segment of one stem of track A (FX-normalized when a normalizer is given);
- ``A2``: ``A1`` through a randomly drawn effect chain (the cloner's ground truth);
- ``B2``: a segment of the *same stem type* from *another* track B, normalized like ``A1``
  (kept as ``B1``), through the *same* chain (the cloner's reference; ``A2`` and ``B2`` are a
  positive pair for the encoder: same effects, different content).

Randomness is explicit and single-sourced: one CPU ``torch.Generator`` draws the segments (stem
type uniform among those with at least two tracks, then a segment of that stem uniform over the
dataset's index, then B's segment uniform over the segments of that stem in other tracks, with
no retries) and then the chain (:func:`fxdsp.sample_params`), so a seed gives the same triplets
on every device. Segments are read on the CPU (memory-mapped, a copy each) and everything after
runs batched on ``device``.

Example::

    gen = torch.Generator().manual_seed(0)
    data = fxdata.open_dataset("data/corpus", segment_seconds=5.0)
    normalizer = fxdsp.FxNormalizer(fxdsp.FxNormStats.corpus_default()).to("cuda")
    for step in range(steps):
        batch = draw_triplets(data, 32, generator=gen, device="cuda", normalizer=normalizer)
        loss = model(batch.a2, batch.b2, ...)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

import fxdsp
from fxdsp.config import check_number
from fxdsp.registry import STEMS

__all__ = ["DESIGNS", "SegmentSource", "Triplets", "draw_triplets"]

#: The effect designs a triplet's chain can come from (:func:`draw_triplets`' ``design``).
DESIGNS: tuple[str, ...] = ("fxdsp", "dasp", "house")


class SegmentSource(Protocol):
    """What :func:`draw_triplets` needs of a dataset (SegmentDataset and PackedSegments have it).

    ``index``: int64 ``(N, 3)`` rows ``(track, stem, offset)``; ``stems``: stem names indexed by
    the rows' stem column; ``source.tracks[t].name``: track names; ``ds[i]``: a dict with
    ``audio`` (float32 ``(2, L)``), ``track``, ``stem`` and ``offset``.
    """

    index: np.ndarray
    stems: Sequence[str]

    def __getitem__(self, index: int) -> dict[str, Any]: ...


@dataclass
class Triplets:
    """A batch of triplets; the audio tensors are ``(n, 2, L)`` on the requested device.

    Attributes:
        a1: A's segment (normalized when a normalizer was given): the input.
        a2: ``Manipulator(params)(a1)``: the ground truth.
        b1: B's segment, normalized like ``a1``.
        b2: ``Manipulator(params)(b1)``: the reference.
        params: the chain drawn for each item (:class:`fxdsp.FxParams`, or
            a :class:`fxdata.drawn_chain.DrawnChain` for the ``"dasp"`` and ``"house"``
            designs; on the device).
        stems: the stem name of each item (A and B share it).
        track_a, track_b: track names of A and B (always different).
        offset_a, offset_b: segment offsets in samples into those tracks.
    """

    a1: Tensor
    a2: Tensor
    b1: Tensor
    b2: Tensor
    params: Any
    stems: list[str]
    track_a: list[str]
    track_b: list[str]
    offset_a: list[int]
    offset_b: list[int]

    def __len__(self) -> int:
        return len(self.stems)

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per item: stem, A and B (track, offset) and the chain."""
        return [
            {
                "stem": self.stems[i],
                "A": {"track": self.track_a[i], "offset": self.offset_a[i]},
                "B": {"track": self.track_b[i], "offset": self.offset_b[i]},
                "chain": self.params.describe(i),
            }
            for i in range(len(self))
        ]


def _check_source(dataset: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    index = getattr(dataset, "index", None)
    stems = getattr(dataset, "stems", None)
    if not isinstance(index, np.ndarray) or index.ndim != 2 or index.shape[1] != 3 or not stems:
        raise ValueError(
            "dataset must be a SegmentDataset or PackedSegments (an index of (track, stem, "
            f"offset) rows and stem names), got {type(dataset).__name__}"
        )
    if len(index) and int(index[:, 1].min()) < 0:
        raise ValueError("triplets need one stem per segment: open the dataset with mode='stem'")
    return index, tuple(stems)


def _eligible_rows(
    index: np.ndarray, names: tuple[str, ...], wanted: Sequence[str] | None
) -> list[tuple[int, np.ndarray]]:
    """``[(stem, rows sorted by track)]`` for every usable stem: in fxdsp's STEMS (the chain
    needs the stem type), asked for, and present in at least two tracks."""
    if wanted is not None:
        unknown = [s for s in wanted if s not in names]
        if unknown:
            raise ValueError(f"stems {unknown} are not in this dataset (it has {list(names)})")
    out = []
    for s, name in enumerate(names):
        if name not in STEMS or (wanted is not None and name not in wanted):
            continue
        rows = np.flatnonzero(index[:, 1] == s)
        rows = rows[np.argsort(index[rows, 0], kind="stable")]
        if len(np.unique(index[rows, 0])) >= 2:
            out.append((s, rows))
    if not out:
        asked = list(names) if wanted is None else list(wanted)
        raise ValueError(
            f"no stem among {asked} has non-silent segments in two different tracks: a triplet "
            "needs B from another track than A"
        )
    return out


def _randint(high: Tensor, generator: torch.Generator) -> Tensor:
    """One uniform integer in ``[0, high_i)`` per item (float64 draw: exact for high < 2**52)."""
    u = torch.rand(high.shape, generator=generator, dtype=torch.float64)
    return torch.minimum((u * high).long(), high - 1)


def _thin(params: Any, keep_min: float, generator: torch.Generator) -> Any:
    """The drawn chains with each effect that is on kept with probability ``q``,
    ``q ~ U(keep_min, 1)`` per item (an :class:`fxdsp.FxParams` or a
    :class:`~fxdata.drawn_chain.DrawnChain`, whose ``active`` columns are its effects)."""
    n, effects = params.active.shape
    q = keep_min + (1.0 - keep_min) * torch.rand(n, 1, generator=generator, dtype=torch.float64)
    keep = torch.rand(n, effects, generator=generator, dtype=torch.float64) < q
    active = params.active & keep.to(params.active.device)
    if isinstance(params, fxdsp.FxParams):
        return replace(params, active=active)
    params.on = dict(zip(params.EFFECTS, active.unbind(1), strict=True))
    return params


def _design_functions(design: str) -> tuple[Callable[..., Any], Callable[..., Tensor]]:
    """The draw and the apply function of a design other than fxdsp's (imported on use)."""
    if design == "dasp":
        from fxdata.dasp_chain import apply_dasp_chain, sample_dasp_params

        return sample_dasp_params, apply_dasp_chain
    from fxdata.house_chain import apply_house_chain, sample_house_params

    return sample_house_params, apply_house_chain


@torch.no_grad()
def draw_triplets(
    dataset: SegmentSource,
    n: int,
    *,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    normalizer: Callable[[Tensor, list[str]], Tensor] | None = None,
    config: Any = None,
    probabilities: Mapping[str, Any] | None = None,
    stems: Sequence[str] | None = None,
    design: str = "fxdsp",
    keep_min: float = 1.0,
) -> Triplets:
    """Draw ``n`` triplets ``(A1, A2, B2)`` from a segment dataset (see the module docstring).

    Args:
        dataset: a :class:`~fxdata.datasets.SegmentDataset` (stem mode) or
            :class:`~fxdata.pack.PackedSegments` (what ``fxdata.open_dataset(path,
            segment_seconds=...)`` returns).
        n: batch size, >= 1.
        generator: a CPU ``torch.Generator``: the only source of randomness (segments, then the
            chain); advance it across steps for fresh batches, reseed it to repeat one.
        device: where the audio is processed and returned.
        normalizer: ``normalizer(audio (n, 2, L) on device, stem names) -> audio``, e.g. an
            :class:`fxdsp.FxNormalizer` on ``device``; applied to A's and B's segments.
        config: a :class:`fxdsp.ChainConfig` for :func:`fxdsp.sample_params` (default: the
            reference chain).
        probabilities: effect probabilities for :func:`fxdsp.sample_params` (e.g. a
            :class:`fxdsp.ProbabilityScheduler`'s).
        stems: restrict to these stem types (default: every stem of the dataset that fxdsp's
            chain knows and that has segments in at least two tracks).
        design: whose effects make the chain: ``"fxdsp"`` (:func:`fxdsp.sample_params` and the
            :class:`fxdsp.Manipulator`, with ``config`` and ``probabilities``), ``"dasp"``
            (:mod:`fxdata.dasp_chain`) or ``"house"`` (:mod:`fxdata.house_chain`): other
            designs with ranges of their own and no level match, drawn at ``config``'s
            sample rate, else the dataset's; ``probabilities`` must then be None; ``params``
            is their :class:`~fxdata.drawn_chain.DrawnChain`.
        keep_min: sparser chains: each effect the design turned on stays on with probability
            ``q``, drawn per item uniformly from ``[keep_min, 1]`` (after the chain's own draw,
            from the same generator), so that styles of one or two effects occur often; 1 (the
            default) keeps every effect and draws nothing, so the random stream is unchanged.

    Returns:
        The :class:`Triplets`.

    Raises:
        ValueError: ``n`` < 1, a generator that is not a CPU ``torch.Generator``, a dataset
            that is not in stem mode, no stem with segments in two tracks, or a normalizer that
            changes the shape, an unknown ``design``, or ``probabilities`` with a design other
            than fxdsp's, or ``keep_min`` outside [0, 1].
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    n = int(n)
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {list(DESIGNS)}, got {design!r}")
    check_number("keep_min", keep_min, low=0.0, high=1.0)
    if design != "fxdsp" and probabilities is not None:
        raise ValueError(f"effect probabilities are fxdsp's: the {design} design draws its own")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got {generator!r}")
    device = torch.device(device)
    index, names = _check_source(dataset)
    groups = _eligible_rows(index, names, stems)

    # 1. Segments: stem type, A's row, B's row in another track (rows of a stem sorted by track,
    #    so A's track is one contiguous block that B's draw skips).
    g = _randint(torch.full((n,), len(groups)), generator).tolist()
    a_pick = _randint(torch.tensor([len(groups[k][1]) for k in g]), generator).tolist()
    a_rows, lo, hi, sizes = [], [], [], []
    for k, j in zip(g, a_pick, strict=True):
        rows = groups[k][1]
        tracks = index[rows, 0]
        t = tracks[j]
        first, last = np.searchsorted(tracks, t, "left"), np.searchsorted(tracks, t, "right")
        a_rows.append(int(rows[j]))
        lo.append(int(first))
        hi.append(int(last))
        sizes.append(len(rows) - int(last - first))
    b_pick = _randint(torch.tensor(sizes), generator).tolist()
    b_rows = []
    for k, j, first, last in zip(g, b_pick, lo, hi, strict=True):
        b_rows.append(int(groups[k][1][j if j < first else j + (last - first)]))

    a_items = [dataset[r] for r in a_rows]
    b_items = [dataset[r] for r in b_rows]
    stem_names = [names[int(item["stem"])] for item in a_items]
    track_names = [t.name for t in dataset.source.tracks]  # type: ignore[attr-defined]
    a1 = torch.stack([item["audio"] for item in a_items]).to(device)
    b1 = torch.stack([item["audio"] for item in b_items]).to(device)
    if normalizer is not None:
        a_norm, b_norm = normalizer(a1, stem_names), normalizer(b1, stem_names)
        if a_norm.shape != a1.shape or b_norm.shape != b1.shape:
            raise ValueError(
                f"the normalizer changed the shape {tuple(a1.shape)} to {tuple(a_norm.shape)}"
            )
        a1, b1 = a_norm, b_norm

    # 2. The chain: one draw for both contents.
    params: Any
    if design != "fxdsp":
        sample, apply = _design_functions(design)
        rate = float(config.sample_rate if config is not None
                     else getattr(dataset, "sample_rate", 44100.0))  # fmt: skip
        params = sample(n, generator=generator, sample_rate=rate, device=device)
        if keep_min < 1.0:
            params = _thin(params, keep_min, generator)
        a2, b2 = apply(a1, params), apply(b1, params)
    else:
        params = fxdsp.sample_params(
            n,
            stems=stem_names,
            generator=generator,
            device=device,
            config=config,
            probabilities=probabilities,
        )
        if keep_min < 1.0:
            params = _thin(params, keep_min, generator)
        level_match = config.level_match if config is not None else True
        chain = fxdsp.Manipulator(params, level_match=level_match)
        a2, b2 = chain(a1), chain(b1)
    return Triplets(
        a1=a1,
        a2=a2,
        b1=b1,
        b2=b2,
        params=params,
        stems=stem_names,
        track_a=[track_names[int(item["track"])] for item in a_items],
        track_b=[track_names[int(item["track"])] for item in b_items],
        offset_a=[int(item["offset"]) for item in a_items],
        offset_b=[int(item["offset"]) for item in b_items],
    )
