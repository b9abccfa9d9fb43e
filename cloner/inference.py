"""Style transfer of whole songs: windows with context, cross-fades, references, interpolation.

``transfer(cloner, encoder, audio, sample_rate, reference, reference_rate)`` converts audio of
any length, rate and channel count (mono or stereo) to the mixing style of a reference:

1. The condition is the encoder's embedding of the reference, averaged over its segments
   (:meth:`fxencoder.FXEncoder.embed`), or a blend ``w · Φ(A) + (1 − w) · Φ(B)`` of two
   references, or, for interpolation, one blend per segment of the input (``segments = N``:
   segment ``i`` of ``N`` equal parts is conditioned on ``w_i · Φ(A) + (1 − w_i) · Φ(B)`` with
   ``w_i = 1 − i / (N − 1)``, the paper's scheme; each segment's condition is constant, and the
   change from one to the next is a cross-fade).
2. The input is resampled to the network's rate (:func:`fxdata.audio.resample`) and mono is
   duplicated to stereo.
3. The network runs window by window (:func:`iter_convert`). The input is cut at *boundaries*
   ``b_0 = 0 < b_1 < … < b_K = n`` into cores of at most ``window`` samples (segment boundaries
   are always among them). Window ``k`` produces the output on ``[b_k − h, b_{k+1} + h)`` from
   the input on ``[b_k − h − C, b_{k+1} + h + C)`` (clipped to the audio; the start moved back to
   a multiple of the network's stride so that its filterbank frames fall where they fall on the
   whole signal). The context ``C`` (:func:`context_samples`) is at least half the receptive
   field, so every output sample kept has seen all the input it depends on wherever that input
   exists, and the result equals running the network on the whole signal at once (up to float
   rounding). Around each boundary, the two windows' outputs are cross-faded over ``2h``
   samples: ``y = y_prev + f · (y_next − y_prev)`` (``torch.lerp``) with ``f`` rising from 0 to 1
   linearly or as a raised cosine ``sin²(π t / 2)``. The weights ``1 − f`` and ``f`` sum to one
   exactly (amplitude-complementary: the two signals are the same signal, so an equal-*power*
   fade, whose weights sum to more than one, would bump the level), and where both windows
   agree, the lerp returns that value bit for bit.
4. Each finished stretch of output is written into a preallocated buffer on the CPU, so the
   network's memory (activations on its device) does not grow with the input: one window is
   alive at a time, and only the ``2h`` samples of a pending cross-fade are carried over.
5. The output is resampled back to the input's rate and trimmed to the input's length.

The output is always **stereo** (the network's), float32, on the CPU, at the input's rate and
length: a mono input comes back as two channels (identical only if the network keeps them so).

Multitrack: :func:`transfer_stems` converts each stem (drums, bass, other, vocals) with the
reference's matching stem as its reference, in one batch, and sums the converted stems into the
mix. A stem that is digital silence stays silent (the network's biases would otherwise add a
faint signal to a track that has none).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cloner.config import ClonerConfig
from cloner.model import MixFXCloner

__all__ = [
    "StemTransfer",
    "Window",
    "blend",
    "context_samples",
    "convert",
    "fx_normalize_stems",
    "interpolation_conds",
    "iter_convert",
    "plan_windows",
    "reference_embedding",
    "transfer",
    "transfer_stems",
]

#: Default cross-fade between windows and between interpolation segments, in seconds.
DEFAULT_CROSSFADE_SECONDS = 0.5
#: A window's core is at least this long by default (seconds), and at least 4 receptive fields.
MIN_WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class Window:
    """One network call: input ``[in_start, in_end)`` → output ``[out_start, out_end)``.

    Attributes:
        in_start: first input sample fed to the network (a multiple of the stride, or 0).
        in_end: end of the input fed (exclusive).
        out_start: first output sample this window contributes.
        out_end: end of its contribution (exclusive).
        fade_in: samples at the start of the contribution cross-faded with the previous window.
        fade_out: samples at its end cross-faded with the next window.
        segment: index of the condition (interpolation segment) it uses.
    """

    in_start: int
    in_end: int
    out_start: int
    out_end: int
    fade_in: int
    fade_out: int
    segment: int


def context_samples(config: ClonerConfig) -> int:
    """Input samples needed on each side of an output sample for it to see its whole receptive
    field, rounded up to a multiple of the stride.

    A frame-rate TCN (``stride > 1``) reaches ``H = (kernel − 1) / 2 · Σ dilations`` frames on
    each side; an output sample comes from the two frames around it, each made from two strides
    of input: ``(H + 2) · stride`` samples. At the waveform rate it is ``H`` samples.
    """
    reach = (config.kernel - 1) // 2 * sum(config.dilations)
    s = config.stride
    return reach if s == 1 else (reach + 2) * s


def plan_windows(
    samples: int,
    config: ClonerConfig,
    *,
    window: int | None = None,
    crossfade: int | None = None,
    segments: int = 1,
) -> list[Window]:
    """The windows that cover ``samples`` samples at the network's rate (see the module doc).

    Args:
        samples: length of the input at ``config.sample_rate``.
        config: the network's config (stride, receptive field, rate).
        window: longest core in samples (default: the larger of four receptive fields and
            :data:`MIN_WINDOW_SECONDS`).
        crossfade: length ``2h`` of each cross-fade in samples (default
            :data:`DEFAULT_CROSSFADE_SECONDS`); shortened to half the shortest core if needed;
            0 for hard cuts (still seamless, the context does that).
        segments: equal parts of the input with a condition each (interpolation).

    Returns:
        The windows in order; their contributions tile ``[0, samples)`` with overlaps of
        ``2h`` at internal boundaries.

    Raises:
        ValueError: non-positive sizes, or fewer samples than segments.
    """
    if samples < 1:
        raise ValueError(f"audio has no samples (got {samples})")
    if window is None:
        window = max(4 * config.receptive_field, round(MIN_WINDOW_SECONDS * config.sample_rate))
    if crossfade is None:
        crossfade = round(DEFAULT_CROSSFADE_SECONDS * config.sample_rate)
    if window < 1:
        raise ValueError(f"window must be at least 1 sample, got {window}")
    if crossfade < 0:
        raise ValueError(f"crossfade must be >= 0 samples, got {crossfade}")
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")
    if samples < segments:
        raise ValueError(
            f"the audio ({samples} samples at {config.sample_rate} Hz) is shorter than "
            f"{segments} segments"
        )
    cuts = [0]
    owner = []  # the segment of each core
    for i in range(segments):
        lo, hi = round(i * samples / segments), round((i + 1) * samples / segments)
        parts = max(1, math.ceil((hi - lo) / window))
        for j in range(1, parts + 1):
            cuts.append(lo + round(j * (hi - lo) / parts))
            owner.append(i)
    shortest = min(b - a for a, b in itertools.pairwise(cuts))
    h = min(crossfade // 2, shortest // 2)
    c = context_samples(config)
    s = config.stride
    last = len(cuts) - 2
    out = []
    for k in range(len(cuts) - 1):
        o0 = cuts[k] - h if k > 0 else 0
        o1 = cuts[k + 1] + h if k < last else samples
        i0 = max(0, (o0 - c) // s * s)
        i1 = min(samples, o1 + c)
        out.append(
            Window(i0, i1, o0, o1, 2 * h if k > 0 else 0, 2 * h if k < last else 0, owner[k])
        )
    return out


def _fade(length: int, shape: str) -> Tensor:
    """Weights ``f`` of the incoming window over a cross-fade (0 → 1, sample centres)."""
    t = (torch.arange(length, dtype=torch.float64) + 0.5) / max(length, 1)
    if shape == "linear":
        f = t
    elif shape == "cosine":
        f = torch.sin(0.5 * math.pi * t).square()
    else:
        raise ValueError(f"crossfade shape must be 'linear' or 'cosine', got {shape!r}")
    return f.to(torch.float32)


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is optional (tqdm comes with the data/train extras)
        return None
    return tqdm(total=total, desc=desc, unit="window")


def _check_cond(cond: Tensor, batch: int, config: ClonerConfig) -> Tensor:
    """``cond`` as ``(batch, segments, cond_dim)`` float32 (a batch of 1 is broadcast)."""
    if not isinstance(cond, Tensor) or cond.ndim not in (2, 3):
        shape = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
        raise ValueError(
            f"cond must be (batch, cond_dim) or (batch, segments, cond_dim), got {shape}"
        )
    if cond.ndim == 2:
        cond = cond[:, None]
    if cond.shape[-1] != config.cond_dim:
        raise ValueError(
            f"cond has {cond.shape[-1]} dimensions but the cloner is conditioned on "
            f"{config.cond_dim} (the encoder it was trained with)"
        )
    if cond.shape[0] not in (1, batch):
        raise ValueError(f"cond has {cond.shape[0]} items, the audio {batch}")
    if not bool(torch.isfinite(cond).all()):
        raise ValueError("cond contains NaN or Inf")
    return cond.detach().float().expand(batch, -1, -1)


@torch.no_grad()
def iter_convert(
    cloner: MixFXCloner,
    x: Tensor,
    cond: Tensor,
    *,
    window: int | None = None,
    crossfade: int | None = None,
    shape: str = "cosine",
    progress: bool = False,
) -> Iterator[tuple[int, Tensor]]:
    """Run the network over ``x`` window by window, yielding finished output as it is made.

    The streaming core of :func:`convert` (which see): no resampling here, the audio is at the
    network's rate. One window is in the network at a time; between windows only the pending
    cross-fade (``2h`` samples) is kept.

    Args:
        cloner: the network (run in eval mode; restored afterwards).
        x: ``(batch, 1 or 2, samples)`` at ``cloner.config.sample_rate``, on any device.
        cond: ``(batch, cond_dim)``, or ``(batch, segments, cond_dim)`` for one condition per
            equal part of the input (a batch of 1 is broadcast).
        window: longest core in samples (see :func:`plan_windows`).
        crossfade: cross-fade length in samples (see :func:`plan_windows`).
        shape: ``"cosine"`` (raised cosine) or ``"linear"``.
        progress: show a tqdm bar over the windows.

    Yields:
        ``(start, chunk)``: ``chunk`` ``(batch, 2, m)`` float32 on the CPU is the output on
        ``[start, start + m)``; the chunks are contiguous and cover the input.
    """
    cfg = cloner.config
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[1] not in (1, 2):
        shape_ = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"audio must be (batch, 1 or 2, samples), got {shape_}")
    if x.shape[1] == 1:
        x = x.expand(-1, 2, -1)
    conds = _check_cond(cond, x.shape[0], cfg)
    plan = plan_windows(
        x.shape[-1], cfg, window=window, crossfade=crossfade, segments=conds.shape[1]
    )
    fade = _fade(max(w.fade_in for w in plan), shape) if len(plan) > 1 else None
    device = next(cloner.parameters()).device
    conds = conds.to(device)
    was_training = cloner.training
    cloner.eval()
    bar = _progress(len(plan), "transfer", progress)
    pending: Tensor | None = None
    try:
        for w in plan:
            piece = x[..., w.in_start : w.in_end].to(device=device, dtype=torch.float32)
            y = cloner(piece, conds[:, w.segment])
            y = y[..., w.out_start - w.in_start : w.out_end - w.in_start].float().cpu()
            if y.shape[-1] != w.out_end - w.out_start:  # a plan that does not cover its output
                raise RuntimeError(f"window {w} returned {y.shape[-1]} samples")
            if pending is not None and w.fade_in:
                y[..., : w.fade_in] = torch.lerp(pending, y[..., : w.fade_in], fade)
            keep = y.shape[-1] - w.fade_out
            pending = y[..., keep:].clone() if w.fade_out else None
            if bar is not None:
                bar.update(1)
            yield w.out_start, y[..., :keep]
    finally:
        if bar is not None:
            bar.close()
        cloner.train(was_training)


def convert(
    cloner: MixFXCloner,
    audio: Tensor,
    sample_rate: float,
    cond: Tensor,
    *,
    window: int | None = None,
    crossfade: int | None = None,
    shape: str = "cosine",
    progress: bool = False,
) -> Tensor:
    """Convert audio of any length and rate with a given condition (see the module doc).

    Args:
        cloner: the network.
        audio: ``(batch, 1 or 2, samples)`` or ``(channels, samples)``, floating point.
        sample_rate: its rate in Hz.
        cond: ``(batch, cond_dim)`` or ``(batch, segments, cond_dim)`` (see
            :func:`iter_convert`; :func:`interpolation_conds` makes the latter).
        window: longest core in samples at the network's rate (see :func:`plan_windows`).
        crossfade: cross-fade length in samples at the network's rate.
        shape: cross-fade shape, ``"cosine"`` or ``"linear"``.
        progress: show a tqdm bar over the windows.

    Returns:
        ``(batch, 2, samples)`` float32 on the CPU: the input's rate and length, always stereo.
        A ``(channels, samples)`` input gives ``(2, samples)``.

    Raises:
        ValueError: malformed audio or condition, a bad rate, non-finite samples, or audio
            shorter than the interpolation's segments.
    """
    from fxencoder.audio import prepare_audio

    single = isinstance(audio, Tensor) and audio.ndim == 2
    rate = cloner.config.sample_rate
    x = prepare_audio(audio, sample_rate, rate, torch.device("cpu"))
    n_in = audio.shape[-1]
    out = torch.empty(x.shape[0], 2, x.shape[-1])
    for start, chunk in iter_convert(
        cloner, x, cond, window=window, crossfade=crossfade, shape=shape, progress=progress
    ):
        out[..., start : start + chunk.shape[-1]] = chunk
    if float(sample_rate) != float(rate):
        from fxdata.audio import resample

        b = out.shape[0]
        back = resample(out.reshape(b * 2, -1).numpy(), rate, int(sample_rate))
        out = torch.from_numpy(np.ascontiguousarray(back[:, :n_in])).reshape(b, 2, -1)
        if out.shape[-1] < n_in:  # resampling rounds the length up; never short, but be sure
            out = torch.nn.functional.pad(out, (0, n_in - out.shape[-1]))
    return out[0] if single else out


def reference_embedding(encoder: Any, reference: Tensor, reference_rate: float) -> Tensor:
    """The condition for a reference: ``encoder.embed`` averaged over its segments.

    Args:
        encoder: an :class:`fxencoder.FXEncoder`.
        reference: ``(batch, 1 or 2, samples)`` or ``(channels, samples)``.
        reference_rate: its rate in Hz.

    Returns:
        ``(batch, embed_dim)`` float32 on the CPU.
    """
    return encoder.embed(reference, reference_rate).float().cpu()


def blend(a: Tensor, b: Tensor, weight: float) -> Tensor:
    """``weight · a + (1 − weight) · b``: a fixed mix of two references' embeddings.

    Raises:
        ValueError: ``weight`` outside [0, 1] or embeddings of different shapes.
    """
    if not (isinstance(weight, (int, float)) and 0.0 <= weight <= 1.0):
        raise ValueError(f"weight must be in [0, 1], got {weight!r}")
    if a.shape != b.shape:
        raise ValueError(f"embeddings of different shapes: {tuple(a.shape)} and {tuple(b.shape)}")
    return weight * a + (1.0 - weight) * b


def interpolation_conds(a: Tensor, b: Tensor, segments: int) -> Tensor:
    """One condition per segment, from ``a`` to ``b``: ``w_i · a + (1 − w_i) · b``,
    ``w_i = 1 − i / (segments − 1)`` (the paper's interpolation).

    Args:
        a: ``(batch, dim)`` embedding of reference A (the start).
        b: ``(batch, dim)`` embedding of reference B (the end).
        segments: number of segments, at least 2.

    Returns:
        ``(batch, segments, dim)``.
    """
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 2:
        raise ValueError(f"interpolation needs segments >= 2, got {segments!r}")
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"embeddings must both be (batch, dim), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    w = 1.0 - torch.arange(segments, dtype=a.dtype) / (segments - 1)
    return w[None, :, None] * a[:, None] + (1.0 - w[None, :, None]) * b[:, None]


def _condition(
    encoder: Any,
    reference: Tensor,
    reference_rate: float,
    reference_b: Tensor | None,
    reference_b_rate: float | None,
    weight: float | None,
    segments: int | None,
) -> Tensor:
    a = reference_embedding(encoder, reference, reference_rate)
    if reference_b is None:
        if weight is not None or segments is not None:
            raise ValueError("weight and segments need a second reference (reference_b)")
        return a
    b = reference_embedding(
        encoder, reference_b, reference_rate if reference_b_rate is None else reference_b_rate
    )
    if a.shape[0] != b.shape[0]:
        if a.shape[0] == 1:
            a = a.expand_as(b)
        elif b.shape[0] == 1:
            b = b.expand_as(a)
    if (weight is None) == (segments is None):
        raise ValueError("a second reference needs exactly one of weight (blend) or segments")
    if weight is not None:
        return blend(a, b, weight)
    return interpolation_conds(a, b, int(segments))  # type: ignore[arg-type]


def transfer(
    cloner: MixFXCloner,
    encoder: Any,
    audio: Tensor,
    sample_rate: float,
    reference: Tensor,
    reference_rate: float,
    *,
    reference_b: Tensor | None = None,
    reference_b_rate: float | None = None,
    weight: float | None = None,
    segments: int | None = None,
    window: int | None = None,
    crossfade: int | None = None,
    shape: str = "cosine",
    progress: bool = False,
) -> Tensor:
    """Convert audio (one stem, or a batch of stems) to the mixing style of a reference.

    Args:
        cloner: the style-transfer network.
        encoder: the :class:`fxencoder.FXEncoder` it was trained with.
        audio: ``(batch, 1 or 2, samples)`` or ``(channels, samples)``, any length.
        sample_rate: its rate in Hz (any; resampled to the network's and back).
        reference: ``(batch or 1, 1 or 2, samples)`` or ``(channels, samples)``: item ``i``
            is the reference of audio item ``i`` (one reference serves the whole batch).
        reference_rate: its rate in Hz.
        reference_b: a second reference, for a blend (``weight``) or an interpolation
            (``segments``).
        reference_b_rate: its rate (default ``reference_rate``).
        weight: blend ``weight · Φ(A) + (1 − weight) · Φ(B)`` over the whole input.
        segments: interpolate from A to B over this many equal segments of the input.
        window: longest window core in samples at the network's rate (default: see
            :func:`plan_windows`).
        crossfade: cross-fade length in samples at the network's rate (default 0.5 s).
        shape: cross-fade shape, ``"cosine"`` or ``"linear"``.
        progress: show a tqdm bar over the windows.

    Returns:
        ``(batch, 2, samples)`` (or ``(2, samples)`` for a 2-D input) float32 on the CPU at the
        input's rate and length; always stereo.

    Raises:
        ValueError: malformed audio or references, an encoder whose embedding size is not the
            cloner's ``cond_dim``, inconsistent blend/interpolation options.
    """
    cond = _condition(
        encoder, reference, reference_rate, reference_b, reference_b_rate, weight, segments
    )
    return convert(
        cloner, audio, sample_rate, cond, window=window, crossfade=crossfade, shape=shape,
        progress=progress,
    )  # fmt: skip


@dataclass(frozen=True)
class StemTransfer:
    """The result of :func:`transfer_stems`.

    Attributes:
        stems: converted stems by name, ``(2, samples)`` float32 each.
        mix: their sum, ``(2, samples)``.
        sample_rate: the rate of both, the input's.
    """

    stems: dict[str, Tensor]
    mix: Tensor
    sample_rate: float


def _as_item(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"stem {name!r} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2 or x.shape[0] not in (1, 2):
        raise ValueError(f"stem {name!r} must be (1 or 2, samples), got {tuple(x.shape)}")
    return x.expand(2, -1) if x.shape[0] == 1 else x


def transfer_stems(
    cloner: MixFXCloner,
    encoder: Any,
    stems: Mapping[str, Tensor],
    sample_rate: float,
    reference: Mapping[str, Tensor],
    reference_rate: float,
    *,
    reference_b: Mapping[str, Tensor] | None = None,
    reference_b_rate: float | None = None,
    weight: float | None = None,
    segments: int | None = None,
    window: int | None = None,
    crossfade: int | None = None,
    shape: str = "cosine",
    progress: bool = False,
) -> StemTransfer:
    """Multitrack transfer: each stem with the reference's matching stem, then the mix.

    Args:
        cloner: the style-transfer network.
        encoder: the encoder it was trained with.
        stems: ``{name: (1 or 2, samples)}`` at ``sample_rate`` (e.g. drums, bass, other,
            vocals); shorter stems are zero-padded to the longest.
        sample_rate: their rate in Hz.
        reference: ``{name: (1 or 2, samples)}`` with every name of ``stems``.
        reference_rate: its rate in Hz.
        reference_b: a second set of reference stems (blend or interpolation, as in
            :func:`transfer`).
        reference_b_rate: its rate (default ``reference_rate``).
        weight: see :func:`transfer`.
        segments: see :func:`transfer`.
        window: see :func:`transfer`.
        crossfade: see :func:`transfer`.
        shape: see :func:`transfer`.
        progress: show a tqdm bar over the windows.

    Returns:
        A :class:`StemTransfer`: the converted stems (a silent input stem stays silent) and
        their sum.

    Raises:
        ValueError: no stems, a reference without one of the stems, malformed audio.
    """
    if not stems:
        raise ValueError("no stems to convert")
    names = list(stems)
    for refs, what in ((reference, "reference"), (reference_b, "second reference")):
        if refs is None:
            continue
        missing = [n for n in names if n not in refs]
        if missing:
            raise ValueError(f"the {what} has no stem(s) {missing} (it has {sorted(refs)})")
    items = {n: _as_item(stems[n], n) for n in names}
    length = max(x.shape[-1] for x in items.values())
    batch = torch.stack(
        [torch.nn.functional.pad(x.float(), (0, length - x.shape[-1])) for x in items.values()]
    )
    conds = []
    for n in names:
        second = None if reference_b is None else _as_item(reference_b[n], n)
        ref = _as_item(reference[n], n)
        conds.append(
            _condition(encoder, ref, reference_rate, second, reference_b_rate, weight, segments)
        )
    cond = torch.cat(conds)
    live = [i for i in range(len(names)) if bool(batch[i].ne(0).any())]
    out = torch.zeros(len(names), 2, length)
    if live:
        out[live] = convert(
            cloner, batch[live], sample_rate, cond[live], window=window, crossfade=crossfade,
            shape=shape, progress=progress,
        )  # fmt: skip
    converted = {n: out[i] for i, n in enumerate(names)}
    return StemTransfer(converted, out.sum(dim=0), sample_rate)


def fx_normalize_stems(stems: Mapping[str, Tensor], sample_rate: float) -> dict[str, Tensor]:
    """Each stem FX-normalized as the shipped models' training inputs were
    (``fxdsp.FxNormalizer(fxdsp.FxNormStats.corpus_default())``: loudness, EQ, dynamics and
    stereo image to the stem's corpus average), whole, at the statistics' rate (resampled there
    and back when ``sample_rate`` differs).

    Args:
        stems: ``{name: (channels, samples)}`` with names of :data:`fxdsp.STEMS`, mono or
            stereo, at least 400 ms.
        sample_rate: their rate in Hz.

    Returns:
        ``{name: (2, samples)}`` float32 on the CPU, at ``sample_rate`` and each stem's length;
        a silent stem stays silent.

    Raises:
        ValueError: a stem name the statistics do not cover, malformed audio.
    """
    import fxdsp
    from fxdata.audio import resample

    stats = fxdsp.FxNormStats.corpus_default()
    normalizer = fxdsp.FxNormalizer(stats)
    rate, work = round(float(sample_rate)), round(float(stats.sample_rate))
    out = {}
    for name, x in stems.items():
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[0] not in (1, 2):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"stem {name!r} must be (1 or 2, samples), got {shape}")
        y = x.detach().float().cpu().expand(2, -1)
        if rate != work:
            y = torch.from_numpy(resample(y.numpy(), rate, work).astype(np.float32))
        with torch.no_grad():
            y = normalizer(y[None], [name])[0]
        if rate != work:
            y = torch.from_numpy(resample(y.numpy(), work, rate).astype(np.float32))
        n = x.shape[-1]
        out[name] = torch.nn.functional.pad(y[:, :n], (0, max(0, n - y.shape[-1])))
    return out
