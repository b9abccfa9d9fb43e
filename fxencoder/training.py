"""Contrastive training of the audio-effects encoder: the step, the loop, checkpoints, resume.

Each step (:meth:`EncoderTrainer.step`):

1. **Contents.** A stem type (uniform among the stems that ``contents`` different tracks have),
   then ``contents`` different tracks of it and a random segment of each (FX-normalized when the
   dataset was built with the normalizer; see :func:`open_training_data`).
2. **Draws.** ``draws`` effect chains of that stem (:func:`fxdsp.sample_params`; the
   probabilities of the config, or of the :class:`fxdsp.ProbabilityScheduler` with
   ``prob_schedule``), each applied to every content on the device by the
   :class:`fxdsp.Manipulator`: ``contents × draws`` items. Items with the same draw are
   positives, every other item is a negative, and the same content under another draw is a
   strong negative.
3. **Views.** Every item is cropped to one random length in ``[crop_min, 1] ×`` the segment, at
   its own random offset (the reference's random-length views).
4. **Loss.** Multi-positive NT-Xent (:func:`fxencoder.loss.nt_xent`) on the projection head's
   vectors, plus ``aux_weight ×`` the auxiliary head's parameter regression and on/off
   classification (:func:`fxencoder.loss.aux_param_loss`) when the model has the head.

Every random choice comes from one CPU ``torch.Generator`` per process, saved in checkpoints
with the model, the optimizer, the learning-rate schedule and the probability scheduler, so a
resumed run continues bit for bit. Several processes (``torchrun``) train with
DistributedDataParallel (gloo on CPU, nccl on GPU), each drawing its own batch.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import fxdsp
from fxdata.dasp_chain import apply_dasp_chain, require_dasp, sample_dasp_params
from fxdsp.config import ConfigBase, check_number
from fxdsp.registry import EFFECTS, STEMS
from fxdsp.space import ParamSpace
from fxencoder.config import FXEncoderConfig
from fxencoder.loss import aux_param_loss, nt_xent, similarity_stats
from fxencoder.model import FXEncoder
from fxencoder.trainer_base import (
    RANK_SEED_STRIDE,
    TrainerBase,
    check_init_from,
    check_schedule,
    distributed,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "MILD_CHAIN",
    "EncoderTrainer",
    "TrainConfig",
    "effect_scores",
    "open_training_data",
    "train",
]

CHECKPOINT_FORMAT = "mixfx.fxencoder.train/1"

#: The default pre-mix (:attr:`TrainConfig.premix`): the reference chain's effects and
#: probabilities at the strength a stem has in a finished mix (EQ ±6 dB, ratios 1.5–4 above
#: -30 dBFS, pan ±0.5, width 0.6–1.4, wet 5–30 % of 0.3–1.5 s, gain ±6 dB), not the reference
#: ranges that a style is drawn from (EQ ±15 dB, ratios 4–40 above -80 dBFS, width 0–2, ...).
#: Everything else is the reference's: EQ frequencies and Qs, compressor times, reverb
#: predelay and damping, and the polarity flip of an item whose gain is on (probability 0.5;
#: alone it is inaudible, and an encoder should not hear it). A config with ``premix`` > 0
#: stores this dict (resolved in ``__post_init__``), so a later edit here cannot change a
#: recorded run.
PREMIX_CHAIN: dict[str, Any] = {
    "ranges": {
        "eq.gain_db": [-6.0, 6.0],
        "compressor.threshold_db": [-30.0, -5.0],
        "compressor.ratio": [1.5, 4.0],
        "pan.pan": [-0.5, 0.5],
        "imager.width": [0.6, 1.4],
        "reverb.rt60_s": [0.3, 1.5],
        "reverb.mix": [0.05, 0.3],
        "gain.gain_db": [-6.0, 6.0],
    },
}


#: The default mild styles (:attr:`TrainConfig.mild`): the reference chain's effects and
#: probabilities with the ranges most finished mixes stay inside (EQ ±12 dB, ratios 1.5–10
#: above -40 dBFS, width 0.5–1.5, wet 5–50 % of 0.3–2 s, gain ±6 dB) where the reference
#: draws its styles from extremes (ratios 4–40 above -80 dBFS, wet 50–100 %, ...): an encoder
#: trained on the extremes alone has never had to tell two mild styles apart. Stored in the
#: config when used, as :data:`PREMIX_CHAIN` is.
MILD_CHAIN: dict[str, Any] = {
    "ranges": {
        "eq.gain_db": [-12.0, 12.0],
        "compressor.threshold_db": [-40.0, -5.0],
        "compressor.ratio": [1.5, 10.0],
        "imager.width": [0.5, 1.5],
        "reverb.rt60_s": [0.3, 2.0],
        "reverb.mix": [0.05, 0.5],
        "gain.gain_db": [-6.0, 6.0],
    },
}


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Everything a training run needs besides the data.

    Attributes:
        model: a preset name (``"small"``, ``"paper"``, ``"tiny"``).
        model_overrides: fields of :class:`FXEncoderConfig` changed from the preset.
        steps: optimizer steps in all.
        contents: contents (tracks) per draw; ``contents × draws`` items per step.
        draws: effect chains per step.
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up; then a cosine decay to ``0.1 × lr`` at ``schedule_steps``.
        schedule_steps: the cosine's horizon (default ``steps``).
        cooldown_from: from this step on, a linear decay to zero at ``steps``
            (:func:`fxencoder.trainer_base.lr_schedule`: a long run resumed with fewer ``steps``
            finishes early without a jump in the rate).
        temperature: NT-Xent temperature.
        aux_weight: weight of the auxiliary parameter loss (needs ``aux_params`` in the model;
            set automatically when > 0).
        crop_min: shortest view as a fraction of the segment.
        fxnorm: FX-normalize the contents (Φnorm: whole tracks when cached, then every content
            segment to its stem's average loudness, :func:`level_contents`); False is Φ∅.
        prob_schedule: schedule the effect probabilities (Φp.s.).
        premix: probability that a content first goes through a pre-mix of its own (a draw
            of ``premix_chain``, one per content, before the step's chains), so that the
            contents of a positive pair differ in their own mix as real stems do; 0 (the
            default) leaves the contents as they are and draws nothing extra.
        premix_chain: the pre-mix's :class:`fxdsp.ChainConfig` as a dict (default
            :data:`PREMIX_CHAIN`: the reference chain's effects at mixing-engineer strength).
        mild: probability that a step draws its chains from ``mild_chain`` instead of
            ``chain`` (one choice per step, so a step's negatives are all mild or all
            reference-strength styles); 0 (the default) draws nothing extra. The auxiliary
            head's targets stay normalized by ``chain``'s ranges (clamped to [0, 1]).
        mild_chain: the mild styles' :class:`fxdsp.ChainConfig` as a dict (default
            :data:`MILD_CHAIN`).
        dasp: probability that a step draws its chains from the second effects design,
            :mod:`fxdata.dasp_chain` (dasp-pytorch's EQ, compressor and widener, a noise-shaped
            reverb; one choice per step, after ``mild``'s); the auxiliary loss, whose targets
            are fxdsp's parameters, is left out of those steps. 0 (the default) draws nothing
            extra.
        probe_every: steps between per-effect scores (the scheduler's input; also logged).
        chain: a :class:`fxdsp.ChainConfig` as a dict (default: the reference chain).
        grad_clip: gradient-norm clip.
        seed: the seed of every random choice.
        init_from: start from these weights instead of random ones (a fine-tune: the optimizer,
            the schedule, the probability scheduler and the step start afresh): a shipped
            encoder name or an encoder file (:func:`fxencoder.load`) whose config is this
            run's model config.
    """

    model: str = "small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 10000
    contents: int = 3
    draws: int = 12
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    schedule_steps: int | None = None
    cooldown_from: int | None = None
    temperature: float = 0.1
    aux_weight: float = 0.0
    crop_min: float = 0.5
    fxnorm: bool = True
    prob_schedule: bool = False
    premix: float = 0.0
    premix_chain: dict[str, Any] = field(default_factory=dict)
    mild: float = 0.0
    mild_chain: dict[str, Any] = field(default_factory=dict)
    dasp: float = 0.0
    probe_every: int = 100
    chain: dict[str, Any] = field(default_factory=dict)
    grad_clip: float = 5.0
    seed: int = 0
    init_from: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "contents", "draws", "probe_every"):
            check_number(name, getattr(self, name), low=1, integer=True)
        if self.contents < 2:
            raise ValueError(
                f"contents must be >= 2 (a positive needs two contents), got {self.contents}"
            )
        check_schedule(self)
        check_number("seed", self.seed, low=0, integer=True)
        for name in ("lr", "temperature", "grad_clip"):
            check_number(name, getattr(self, name), low=0.0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("aux_weight", self.aux_weight, low=0.0)
        check_number("crop_min", self.crop_min, low=0.0, low_open=True, high=1.0)
        check_number("premix", self.premix, low=0.0, high=1.0)
        check_number("mild", self.mild, low=0.0, high=1.0)
        check_number("dasp", self.dasp, low=0.0, high=1.0)
        check_init_from(self, "an encoder")
        for name in ("fxnorm", "prob_schedule"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("model_overrides", "chain", "premix_chain", "mild_chain"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"{name} must be a mapping, got {getattr(self, name)!r}")
        self.model_config()  # validates the preset and the overrides
        self.chain_config()
        for used, name, default in (("premix", "premix_chain", PREMIX_CHAIN),
                                    ("mild", "mild_chain", MILD_CHAIN)):  # fmt: skip
            if getattr(self, used) > 0 and not getattr(self, name):
                object.__setattr__(self, name, copy.deepcopy(default))
            self._optional_chain(name, default)  # validates the chain

    def model_config(self) -> FXEncoderConfig:
        """The encoder's config: the preset, the overrides, and the auxiliary head's size."""
        cfg = FXEncoderConfig.preset(self.model, **dict(self.model_overrides))
        if self.aux_weight > 0 and cfg.aux_params == 0:
            space = ParamSpace(self.chain_config())
            cfg = cfg.replace(aux_params=len(space) + len(EFFECTS))
        return cfg

    def chain_config(self) -> fxdsp.ChainConfig:
        """The chain config (the reference's unless ``chain`` says otherwise)."""
        cfg = fxdsp.ChainConfig.from_dict(dict(self.chain)) if self.chain else fxdsp.ChainConfig()
        return cfg.replace(sample_rate=self._sample_rate())

    def premix_chain_config(self) -> fxdsp.ChainConfig:
        """The pre-mix's chain config (:data:`PREMIX_CHAIN` unless ``premix_chain`` is set)."""
        return self._optional_chain("premix_chain", PREMIX_CHAIN)

    def mild_chain_config(self) -> fxdsp.ChainConfig:
        """The mild styles' chain config (:data:`MILD_CHAIN` unless ``mild_chain`` is set)."""
        return self._optional_chain("mild_chain", MILD_CHAIN)

    def _optional_chain(self, name: str, default: Mapping[str, Any]) -> fxdsp.ChainConfig:
        spec = dict(getattr(self, name)) or dict(default)
        return fxdsp.ChainConfig.from_dict(spec).replace(sample_rate=self._sample_rate())

    def _sample_rate(self) -> float:
        return float(FXEncoderConfig.preset(self.model, **dict(self.model_overrides)).sample_rate)


def open_training_data(
    path: str | Path,
    config: TrainConfig,
    split: str = "train",
    cache_dir: str | Path | None = None,
) -> Any:
    """The segment dataset a run trains on: segments of the model's length, FX-normalized with
    the shipped corpus statistics unless ``config.fxnorm`` is False (cached once per setting).

    A segment pack (``mixfx corpus pack``) is served as it is (packs hold what they were packed
    with).
    """
    import fxdata

    model = config.model_config()
    options: dict[str, Any] = {"sample_rate": model.sample_rate}
    from fxdata.tracks import detect_layout

    if detect_layout(path) != "pack":
        options["cache_dir"] = cache_dir
        if config.fxnorm:
            options.update(fxdata.corpus_fxnorm())
    return fxdata.open_dataset(path, split, segment_seconds=model.segment_seconds, **options)


def level_contents(contents: Tensor, stem: str, sample_rate: float) -> Tensor:
    """Each content segment at its stem's average loudness (the shipped FX-normalization
    statistics; stems outside ``STEMS`` use "other"'s). Track-level FX normalization leaves
    segments of one track several LU apart; levelled segments make the chain's gain the only
    level change, so it can be learned. Silent segments stay silent."""
    stats = _corpus_stats()
    target = stats.stems[stem if stem in stats.stems else "other"].loudness_lufs
    return fxdsp.functional.normalize_loudness(contents, sample_rate, target)


@functools.cache
def _corpus_stats() -> fxdsp.FxNormStats:
    return fxdsp.FxNormStats.corpus_default()


class _ContentSampler:
    """Draws ``k`` segments of one stem type from ``k`` different tracks, from a generator."""

    def __init__(self, dataset: Any, k: int) -> None:
        index = np.asarray(dataset.index)
        if index.ndim != 2 or len(index) == 0:
            raise ValueError("the dataset has no segments")
        self.dataset = dataset
        self.k = k
        self.groups: dict[int, list[np.ndarray]] = {}
        for s in np.unique(index[:, 1]):
            rows = np.nonzero(index[:, 1] == s)[0]
            tracks = index[rows, 0]
            per_track = [rows[tracks == t] for t in np.unique(tracks)]
            if len(per_track) >= k:
                self.groups[int(s)] = per_track
        if not self.groups:
            raise ValueError(
                f"no stem type has segments in {k} different tracks (contents={k}): use fewer "
                "contents or more tracks"
            )
        self.stems = sorted(self.groups)

    def draw(self, gen: torch.Generator) -> tuple[int, list[int], Tensor]:
        """``(stem index in the dataset, rows, audio (k, 2, L))``."""
        s = self.stems[int(torch.randint(len(self.stems), (1,), generator=gen))]
        tracks = self.groups[s]
        chosen = torch.randperm(len(tracks), generator=gen)[: self.k].tolist()
        rows = []
        for t in chosen:
            r = tracks[t]
            rows.append(int(r[int(torch.randint(len(r), (1,), generator=gen))]))
        audio = torch.stack([self.dataset[r]["audio"] for r in rows])
        return s, rows, audio


def _crop(y: Tensor, gen: torch.Generator, crop_min: float) -> Tensor:
    """One random length for the batch, a random offset per item."""
    n = y.shape[-1]
    length = max(2, round(n * (crop_min + (1 - crop_min) * float(torch.rand((), generator=gen)))))
    offsets = torch.randint(0, n - length + 1, (y.shape[0],), generator=gen)
    idx = (offsets[:, None] + torch.arange(length)[None, :]).to(y.device)
    return y.gather(2, idx[:, None, :].expand(-1, y.shape[1], -1))


def _with_effect_from(p: fxdsp.FxParams, q: fxdsp.FxParams, effect: str) -> fxdsp.FxParams:
    """``p`` with ``effect``'s values taken from ``q`` (both with the effect on)."""
    values = dict(p.values)
    for key in q.values:
        if key.startswith(f"{effect}."):
            values[key] = q.values[key]
    return fxdsp.FxParams(
        stem=p.stem, active=p.active, order1=p.order1, order2=p.order2, values=values,
        sample_rate=p.sample_rate, ir_length=p.ir_length,
    )  # fmt: skip


@torch.no_grad()
def effect_scores(
    model: FXEncoder,
    contents: Tensor,
    stem: str,
    config: fxdsp.ChainConfig,
    gen: torch.Generator,
    probabilities: Mapping[str, float] | None = None,
    draws: int = 6,
) -> dict[str, float]:
    """Per-effect score: how often the encoder tells a chain from the same chain with one
    effect changed.

    For each effect ``e``: ``draws`` chains ``p`` with ``e`` on, and ``r`` = ``p`` with ``e``'s
    parameters from another draw. With contents ``c1``, ``c2``: the score is the fraction of
    draws where ``sim(p(c1), p(c2)) > sim(p(c1), r(c1))``, i.e. the same effects on another
    content are nearer than another setting of ``e`` on the same content (0.5 is chance).
    The model is used in eval mode.

    Args:
        model: the encoder.
        contents: ``(2, 2, L)`` two contents of stem ``stem``.
        stem: the stem name.
        config: the chain config.
        gen: the generator.
        probabilities: the other effects' probabilities (default: the config's).
        draws: chains per effect.
    """
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    scores = {}
    try:
        for effect in EFFECTS:
            probs = dict(probabilities or {})
            probs[effect] = 1.0
            p = fxdsp.sample_params(draws, stems=stem, probabilities=probs, generator=gen,
                                    config=config)  # fmt: skip
            q = fxdsp.sample_params(draws, stems=stem, probabilities=probs, generator=gen,
                                    config=config)  # fmt: skip
            r = _with_effect_from(p, q, effect)
            c1 = contents[0:1].to(device).repeat(draws, 1, 1)
            c2 = contents[1:2].to(device).repeat(draws, 1, 1)
            z = model.project(model(torch.cat([
                fxdsp.Manipulator(p)(c1), fxdsp.Manipulator(p)(c2), fxdsp.Manipulator(r)(c1)
            ])))  # fmt: skip
            z = torch.nn.functional.normalize(z, dim=1)
            a, pos, neg = z[:draws], z[draws : 2 * draws], z[2 * draws :]
            scores[effect] = float(((a * pos).sum(1) > (a * neg).sum(1)).float().mean())
    finally:
        model.train(was)
    return scores


class EncoderTrainer(TrainerBase):
    """The model, its optimizer and schedule, the random state, and the training step.

    Args:
        config: the run's :class:`TrainConfig`.
        dataset: a segment dataset (``index`` rows ``(track, stem, offset)``, ``ds[i]["audio"]``
            ``(2, L)``; :func:`open_training_data`).
        device: where the model and the effects run.
    """

    checkpoint_kind = "encoder training checkpoint"

    def __init__(
        self, config: TrainConfig, dataset: Any, device: str | torch.device = "cpu"
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.rank, self.world = distributed()
        self.model_config = config.model_config()
        self.chain = config.chain_config()
        self.premix_chain = config.premix_chain_config() if config.premix > 0 else None
        self.mild_chain = config.mild_chain_config() if config.mild > 0 else None
        if config.dasp > 0:
            require_dasp()  # at the start, not at the first dasp step
        self.space = ParamSpace(self.chain)
        self.param_effect = torch.tensor(
            [EFFECTS.index(name.split(".")[0]) for name in self.space.names], dtype=torch.int64
        )
        torch.manual_seed(config.seed)  # the initial weights: the same on every rank
        self.model = FXEncoder(self.model_config).to(self.device)
        if config.init_from is not None:
            self._init_weights(config.init_from)
        self.module: torch.nn.Module = self.model
        if self.world > 1:
            self.module = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.gen = torch.Generator().manual_seed(config.seed + RANK_SEED_STRIDE * self.rank)
        self.sampler = _ContentSampler(dataset, config.contents)
        self.dataset = dataset
        self.step_count = 0
        self.scheduler = fxdsp.ProbabilityScheduler() if config.prob_schedule else None

    # -- schedule -------------------------------------------------------------------------
    def probabilities(self) -> dict[str, float] | None:
        """The effect probabilities of the next draws (None: the chain config's)."""
        return dict(self.scheduler.probabilities) if self.scheduler is not None else None

    def _init_weights(self, source: str) -> None:
        """Copy the weights of the encoder ``source`` (``init_from``) into the model."""
        from fxencoder.api import load

        try:
            start = load(source)
        except (ValueError, FileNotFoundError) as err:
            raise ValueError(f"init_from: {err}") from None
        if start.config != self.model_config:
            raise ValueError(
                f"init_from: {source} is an encoder of another config than this run's "
                f"({start.config} vs {self.model_config})"
            )
        with torch.no_grad():
            self.model.load_state_dict(start.state_dict())

    # -- one step --------------------------------------------------------------------------
    def make_batch(self) -> dict[str, Any]:
        """Draw contents and chains and render the views (no model involved)."""
        c = self.config
        s, rows, contents = self.sampler.draw(self.gen)
        stem = str(self.dataset.stems[s])
        stem_name = stem if stem in STEMS else None
        chain, mild = self.chain, False
        if self.mild_chain is not None:  # one choice per step, drawn only when mild > 0
            mild = float(torch.rand((), generator=self.gen)) < c.mild
            chain = self.mild_chain if mild else self.chain
        params = fxdsp.sample_params(
            c.draws, stems=stem_name, probabilities=self.probabilities(), generator=self.gen,
            config=chain,
        )  # fmt: skip
        dasp = c.dasp > 0 and float(torch.rand((), generator=self.gen)) < c.dasp
        drawn = (
            sample_dasp_params(c.draws, generator=self.gen, sample_rate=self.dataset.sample_rate)
            if dasp
            else None
        )
        contents = contents.to(self.device)
        if c.fxnorm:
            contents = level_contents(contents, stem, self.dataset.sample_rate)
        if self.premix_chain is not None:
            contents = self.premix(contents, stem_name)
        x = contents.repeat_interleave(c.draws, dim=0)  # item k: content k // D
        p = None if dasp else fxdsp.FxParams.cat([params] * c.contents).to(self.device)
        labels = torch.arange(c.draws).repeat(c.contents).to(self.device)
        content_ids = torch.arange(c.contents).repeat_interleave(c.draws).to(self.device)
        with torch.no_grad():
            if p is None:
                y = apply_dasp_chain(x, drawn.repeat(c.contents))
            else:
                y = fxdsp.Manipulator(p)(x)
        views = _crop(y, self.gen, c.crop_min)
        return {
            "views": views, "labels": labels, "content_ids": content_ids,
            "params": p, "stem": stem, "rows": rows, "contents": contents,
            "mild": mild, "dasp": dasp,
        }  # fmt: skip

    def premix(self, contents: Tensor, stem: str | None) -> Tensor:
        """Each content through its own pre-mix draw with probability ``config.premix``
        (the others as they are); the draws come from the trainer's generator."""
        k = contents.shape[0]
        pre = fxdsp.sample_params(k, stems=stem, generator=self.gen, config=self.premix_chain)
        chosen = torch.rand(k, generator=self.gen) < self.config.premix
        with torch.no_grad():
            mixed = fxdsp.Manipulator(pre.to(self.device))(contents)
        return torch.where(chosen.to(self.device)[:, None, None], mixed, contents)

    def loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        """The loss of a batch and its logged figures."""
        c = self.config
        emb = self.module(batch["views"])
        z = self.model.project(emb)
        contrastive = nt_xent(z, batch["labels"], c.temperature)
        total = contrastive
        logs = {"loss/contrastive": float(contrastive.detach())}
        if c.aux_weight > 0 and batch["params"] is not None:
            p: fxdsp.FxParams = batch["params"]
            targets = self.space.to_normalized(p.values).clamp(0, 1)
            aux = aux_param_loss(
                self.model.predict_params(emb), targets, p.active, self.param_effect.to(emb.device)
            )
            total = total + c.aux_weight * aux
            logs["loss/aux"] = float(aux.detach())
        elif c.aux_weight > 0 and self.world > 1:
            # A dasp step has no fxdsp targets; DistributedDataParallel still expects every
            # parameter to get a gradient (ranks draw their designs apart).
            total = total + 0.0 * self.model.predict_params(emb).sum()
        logs["loss/total"] = float(total.detach())
        stats = similarity_stats(z.detach(), batch["labels"], batch["content_ids"])
        logs.update({f"batch/{k}": v for k, v in stats.items()})
        if self.mild_chain is not None:
            logs["batch/mild"] = float(batch["mild"])
        if c.dasp > 0:
            logs["batch/dasp"] = float(batch["dasp"])
        return total, logs

    def step(self) -> dict[str, float]:
        """One optimization step; returns the figures to log."""
        start = time.perf_counter()
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self.make_batch()
        made = time.perf_counter()
        self.model.train()
        total, logs = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.step_count += 1
        if self.step_count % self.config.probe_every == 0:
            stem = batch["stem"] if batch["stem"] in STEMS else "other"
            scores = effect_scores(
                self.model, batch["contents"][:2], stem, self.chain, self.gen, self.probabilities()
            )
            if self.scheduler is not None:
                self.scheduler.update(scores)
            logs.update({f"effect_score/{k}": v for k, v in scores.items()})
        done = time.perf_counter()
        n = batch["views"].shape[0]
        logs.update({
            "lr": lr, "grad_norm": float(grad_norm), "time/batch_s": made - start,
            "time/step_s": done - start, "throughput/items_per_s": n / (done - start),
        })  # fmt: skip
        return logs

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-exact resume needs (this process's random state)."""
        return {
            **self._common_state(CHECKPOINT_FORMAT),
            "prob_scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the model config must match)."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not an encoder training checkpoint (format {state.get('format')!r})")
        if FXEncoderConfig.from_dict(state["config"]) != self.model_config:
            raise ValueError("the checkpoint's model config differs from this run's")
        self._restore(state)
        if self.scheduler is not None and state.get("prob_scheduler") is not None:
            self.scheduler.load_state_dict(state["prob_scheduler"])


def train(
    trainer: EncoderTrainer,
    out_dir: str | Path,
    *,
    checkpoint_every: int = 500,
    log_every: int = 10,
    writer: Any = None,
    progress: bool = True,
    callbacks: tuple[Callable[[EncoderTrainer, dict[str, float]], None], ...] = (),
) -> Path:
    """Run ``trainer`` to ``config.steps``, logging and writing ``last.pt`` checkpoints.

    Args:
        trainer: the trainer (resumed or fresh).
        out_dir: where ``last.pt`` goes.
        checkpoint_every: steps between checkpoints (one is written at the end too).
        log_every: steps between scalar logs to ``writer``.
        writer: a TensorBoard ``SummaryWriter`` (or anything with ``add_scalar``), or None.
        progress: show a tqdm bar (rank 0 only).
        callbacks: called after every step with the trainer and the step's figures.

    Returns:
        The path of the last checkpoint.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "last.pt"
    total = trainer.config.steps
    bar = None
    if progress and trainer.rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=trainer.step_count, desc="fxencoder", unit="step")
    while trainer.step_count < total:
        logs = trainer.step()
        step = trainer.step_count
        if writer is not None and trainer.rank == 0 and step % log_every == 0:
            for key, value in logs.items():
                writer.add_scalar(key, value, step)
            if trainer.scheduler is not None:
                trainer.scheduler.log_to(writer, step)
        for callback in callbacks:
            callback(trainer, logs)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{logs['loss/total']:.3f}", top1=f"{logs['batch/top1']:.2f}")
        if step % checkpoint_every == 0 or step == total:
            trainer.save(path)
    if bar is not None:
        bar.close()
    return path
