"""Training of the style-transfer network Ψ: the step, the loop, checkpoints, resume.

Each step (:meth:`ClonerTrainer.step`), as the reference trains its MixFXcloner:

1. **Triplets.** :func:`fxdata.triplets.draw_triplets` draws ``batch_size`` triplets on the
   device: ``A1``, a segment of one stem of track A (FX-normalized: whole tracks when the
   dataset was opened with the normalizer, :func:`open_training_data`, then every segment at its
   stem's average loudness, :func:`level_segments`); ``B1``, a segment of the same stem type
   from another track, normalized alike; one random effect chain per item
   (:func:`fxdsp.sample_params`) applied to both: ``A2`` (the ground truth) and ``B2`` (the
   reference). The segments' positions are random (the dataset's jittered grid); ``A1`` and
   ``A2`` are *not* cropped after the chain, which would cut reverb tails and compressor
   states off from the input that caused them.
2. **Condition.** The reference is cropped to one random length in ``[ref_crop_min, 1] ×`` the
   segment at a random offset per item (the encoder's training views; the model learns to
   take references of any length), and embedded by the frozen encoder Φ (eval mode, no
   gradients): ``cond = Φ(crop(B2))``.
3. **Loss.** ``L = w_lr · L_MSS(L/R) + w_ms · L_MSS(M/S) [+ w_emb · (1 − cos(Φ(y), Φ(A2)))]``
   for ``y = Ψ(A1, cond)`` (:mod:`cloner.loss`). The same terms for ``y = A1`` ("input
   unchanged", no model) are logged beside them at every log step: ``loss/relative`` below 1
   means the model does better than doing nothing; the paper's Ψ reaches about 0.8 on
   MUSDB18.
   With a level head (:class:`cloner.ClonerConfig` ``level_head``) the spectral terms take the
   network's output at the target's RMS and ``level_weight · |g − 20·log10(rms(A2)/rms(A1))|``
   trains the head; ``loss/relative`` is then the real output's (the head's level) and
   ``loss/relative_at_target_level`` the one the spectral terms saw.

Every random choice comes from one CPU ``torch.Generator`` per process, saved in checkpoints
with the model, the optimizer and the step (the learning-rate schedule is a function of the
step), so a resumed run continues bit for bit. Several processes (``torchrun``) train with
DistributedDataParallel (gloo on CPU, nccl on GPU), each drawing its own triplets. Checkpoints
name the encoder that made the conditions (its source and a digest of its weights); resuming
with another encoder is refused.
"""

from __future__ import annotations

import hashlib
import io
import time
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

import fxdsp
from cloner.api import encoder_record
from cloner.config import ClonerConfig
from cloner.loss import DEFAULT_FFT_SIZES, MultiScaleSpectralLoss, embedding_loss
from cloner.model import RMS_FLOOR, MixFXCloner, soft_limit
from fxdsp.config import ConfigBase, check_number
from fxencoder.trainer_base import (
    RANK_SEED_STRIDE,
    TrainerBase,
    check_init_from,
    check_schedule,
    distributed,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "ClonerTrainConfig",
    "ClonerTrainer",
    "level_segments",
    "open_training_data",
    "train",
    "weights_digest",
]

CHECKPOINT_FORMAT = "mixfx.cloner.train/1"


class TripletRunConfig(ConfigBase):
    """The checks and derived configs that :class:`ClonerTrainConfig` and
    :class:`cloner.parametric_training.ParamTrainConfig` share (the fields are theirs: the
    model preset and overrides, ``encoder``, the step, schedule and loss-weight fields,
    ``fft_sizes``, ``ref_crop_min``, ``fxnorm``, ``segment_seconds`` and ``chain``).

    A subclass names its loss weights (at least one must be positive) in ``_loss_weights``
    and its model config class in ``_model_class``.
    """

    _loss_weights: ClassVar[tuple[str, ...]]
    _model_class: ClassVar[type]

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            check_number(name, getattr(self, name), low=1, integer=True)
        for name in ("seed", "audio_every"):
            check_number(name, getattr(self, name), low=0, integer=True)
        check_schedule(self)
        for name in ("lr", "grad_clip"):
            check_number(name, getattr(self, name), low=0.0, low_open=True)
        for name in ("weight_decay", *self._loss_weights):
            check_number(name, getattr(self, name), low=0.0)
        if sum(getattr(self, name) for name in self._loss_weights) <= 0:
            raise ValueError("every loss weight is 0: nothing to train on")
        check_number("ref_crop_min", self.ref_crop_min, low=0.0, low_open=True, high=1.0)
        if not isinstance(self.fxnorm, bool):
            raise ValueError(f"fxnorm must be true or false, got {self.fxnorm!r}")
        if not isinstance(self.encoder, (str, Path)) or not str(self.encoder):
            raise ValueError(f"encoder must be a checkpoint path or a name, got {self.encoder!r}")
        object.__setattr__(self, "encoder", str(self.encoder))
        sizes = self.fft_sizes
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__") or not sizes:
            raise ValueError(f"fft_sizes must be a list of FFT sizes, got {sizes!r}")
        object.__setattr__(self, "fft_sizes", tuple(sizes))
        if not isinstance(self.model_overrides, Mapping) or not isinstance(self.chain, Mapping):
            raise ValueError("model_overrides and chain must be mappings")
        model = self.model_config()  # validates the preset, the overrides and segment_seconds
        MultiScaleSpectralLoss(self.fft_sizes, lr_weight=1.0)  # validates the sizes
        if max(self.fft_sizes) // 2 + 1 > model.segment_samples:
            raise ValueError(
                f"segments of {model.segment_samples} samples are too short for an FFT of "
                f"{max(self.fft_sizes)}"
            )
        self.chain_config()

    def model_config(self) -> Any:
        """The model's config: the preset, the overrides and the segment length."""
        changes = dict(self.model_overrides)
        if self.segment_seconds is not None:
            changes["segment_seconds"] = self.segment_seconds
        return self._model_class.preset(self.model, **changes)

    def chain_config(self) -> fxdsp.ChainConfig:
        """The chain config (the reference's unless ``chain`` says otherwise) at the model's
        rate."""
        cfg = fxdsp.ChainConfig.from_dict(dict(self.chain)) if self.chain else fxdsp.ChainConfig()
        return cfg.replace(sample_rate=float(self.model_config().sample_rate))


@dataclass(frozen=True)
class ClonerTrainConfig(TripletRunConfig):
    """Everything a cloner training run needs besides the data.

    Attributes:
        model: a :class:`~cloner.ClonerConfig` preset (``"small"``, ``"paper"``, ``"tiny"``).
        model_overrides: fields of :class:`~cloner.ClonerConfig` changed from the preset.
        encoder: the conditioning encoder: a checkpoint path or a shipped name (``"default"``),
            loaded with :func:`fxencoder.load`; its embedding size must be the model's
            ``cond_dim`` and its rate the model's.
        steps: optimizer steps in all.
        batch_size: triplets per step (per process).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up; then a cosine decay to ``0.1 × lr`` at ``schedule_steps``.
        schedule_steps: the cosine's horizon (default ``steps``).
        cooldown_from: from this step on, a linear decay to zero at ``steps``
            (:func:`fxencoder.trainer_base.lr_schedule`).
        segment_seconds: length of the training segments (None: the preset's); stored in the
            model config.
        fxnorm: FX-normalize the segments (whole tracks when cached, then each segment to its
            stem's average loudness); False trains on the data as it is.
        mss_lr_weight: weight of the left/right multi-scale spectral loss.
        mss_ms_weight: weight of the mid/side multi-scale spectral loss.
        fft_sizes: the FFT sizes of the spectral losses.
        level_weight: with a level head (``model_overrides={"level_head": true}``): weight of
            its error in dB, ``|g − 20·log10(rms(A2) / rms(A1))|``; the spectral terms then
            see the TCN path's output at the target's RMS (:mod:`cloner.model`).
        embedding_weight: weight of ``1 − cos(Φ(y), Φ(A2))`` through the frozen encoder (0:
            off, the reference's setting).
        ref_crop_min: shortest reference crop as a fraction of the segment (1: no crop).
        chain: a :class:`fxdsp.ChainConfig` as a dict (default: the reference chain).
        dasp_fraction: the probability that a step's chains come from the second effects
            design, :mod:`fxdata.dasp_chain` (dasp-pytorch's EQ and compressor, a
            noise-shaped reverb; levels not matched), instead of fxdsp's ``chain`` (0: never,
            the reference's setting; drawn once per step from the run's generator).
        house_fraction: the probability that a step's chains come from the third design,
            :mod:`fxdata.house_chain` (a look-ahead RMS compressor, a free-form zero-phase
            EQ, a width with mono bass, a feedback-delay-network reverb; written here), from
            the same per-step draw (``dasp_fraction + house_fraction`` <= 1).
        keep_min: sparser chains, whatever the design: each effect a chain turned on stays on
            with probability ``q ~ U(keep_min, 1)`` per item
            (:func:`fxdata.triplets.draw_triplets`), so that references with one or two
            effects, for which the network should leave the rest alone, occur often (1: every
            drawn effect kept, the reference's setting).
        grad_clip: gradient-norm clip.
        seed: the seed of every random choice (and of the initial weights).
        checkpoint_every: steps between checkpoints (one is written at the end too).
        log_every: steps between scalar logs.
        audio_every: steps between audio examples in TensorBoard (0: never).
        init_from: start from these weights instead of random ones (a fine-tune: the optimizer,
            the schedule and the step start afresh): a shipped cloner name or a cloner
            checkpoint file (:func:`cloner.load`) whose model config is this run's.
    """

    model: str = "small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    encoder: str = "default"
    steps: int = 20000
    batch_size: int = 12
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 200
    schedule_steps: int | None = None
    cooldown_from: int | None = None
    segment_seconds: float | None = None
    fxnorm: bool = True
    mss_lr_weight: float = 1.0
    mss_ms_weight: float = 1.0
    fft_sizes: tuple[int, ...] = DEFAULT_FFT_SIZES
    embedding_weight: float = 0.0
    ref_crop_min: float = 0.5
    chain: dict[str, Any] = field(default_factory=dict)
    grad_clip: float = 5.0
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    audio_every: int = 1000
    init_from: str | None = None
    level_weight: float = 0.1
    dasp_fraction: float = 0.0
    house_fraction: float = 0.0
    keep_min: float = 1.0

    _loss_weights: ClassVar[tuple[str, ...]] = (
        "mss_lr_weight",
        "mss_ms_weight",
        "embedding_weight",
    )
    _model_class: ClassVar[type] = ClonerConfig

    def __post_init__(self) -> None:
        super().__post_init__()
        # Not among the loss weights: it weighs a term only a level-head model has.
        check_number("level_weight", self.level_weight, low=0.0)
        check_number("dasp_fraction", self.dasp_fraction, low=0.0, high=1.0)
        check_number("house_fraction", self.house_fraction, low=0.0, high=1.0)
        check_number("keep_min", self.keep_min, low=0.0, high=1.0)
        if self.dasp_fraction + self.house_fraction > 1.0:
            raise ValueError(
                f"dasp_fraction + house_fraction must be at most 1, got {self.dasp_fraction} + "
                f"{self.house_fraction}"
            )
        check_init_from(self, "a cloner")

    def model_config(self) -> ClonerConfig:
        """The cloner's config: the preset, the overrides and the segment length."""
        return super().model_config()


def open_training_data(
    path: str | Path,
    config: ClonerTrainConfig,
    split: str = "train",
    cache_dir: str | Path | None = None,
) -> Any:
    """The segment dataset a run trains on: segments of the model's length at its rate,
    whole tracks FX-normalized with the shipped corpus statistics unless ``config.fxnorm`` is
    False (cached once per setting, shared with the encoder's training cache).

    A segment pack (``mixfx corpus pack``) is served as it is (packs hold what they were packed
    with).
    """
    import fxdata
    from fxdata.tracks import detect_layout

    model = config.model_config()
    options: dict[str, Any] = {"sample_rate": model.sample_rate}
    if detect_layout(path) != "pack":
        options["cache_dir"] = cache_dir
        if config.fxnorm:
            options.update(fxdata.corpus_fxnorm())
    return fxdata.open_dataset(path, split, segment_seconds=model.segment_seconds, **options)


def level_segments(audio: Tensor, stems: Sequence[str], sample_rate: float) -> Tensor:
    """Each segment at its own stem's average loudness (the shipped FX-normalization targets;
    stems they do not name take "other"'s). Silent segments stay silent.

    Args:
        audio: ``(batch, 2, samples)``, at least 400 ms.
        stems: one stem name per item.
        sample_rate: in Hz.
    """
    stats = fxdsp.FxNormStats.corpus_default()
    targets = [stats.stems[s if s in stats.stems else "other"].loudness_lufs for s in stems]
    target = torch.tensor(targets, dtype=audio.dtype, device=audio.device)
    return fxdsp.functional.normalize_loudness(audio, sample_rate, target)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's state (names, dtypes, shapes and values), independent of where the
    weights came from."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        t = value.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return digest.hexdigest()


def _crop(y: Tensor, gen: torch.Generator, crop_min: float) -> Tensor:
    """One random length in ``[crop_min, 1] ×`` the length, a random offset per item."""
    n = y.shape[-1]
    if crop_min >= 1.0:
        return y
    length = max(2, round(n * (crop_min + (1 - crop_min) * float(torch.rand((), generator=gen)))))
    offsets = torch.randint(0, n - length + 1, (y.shape[0],), generator=gen)
    idx = (offsets[:, None] + torch.arange(length)[None, :]).to(y.device)
    return y.gather(2, idx[:, None, :].expand(-1, y.shape[1], -1))


class ConditionedTrainer(TrainerBase):
    """What the cloner's and the controller's trainers share: the frozen encoder and its record,
    the model, DDP and optimizer set-up, the triplets' leveller, checkpoint state, and the
    examples and timings a step reports.

    A subclass sets :attr:`checkpoint_format`, :attr:`model_name` (for messages) and
    :attr:`dim_field` (the model config's field that must equal the encoder's ``embed_dim``),
    calls :meth:`_setup` from its ``__init__``, and builds :attr:`criterion` and the rest.
    """

    checkpoint_format: str
    model_name: str
    dim_field: str

    def _setup(
        self,
        config: Any,
        dataset: Any,
        device: str | torch.device,
        encoder: torch.nn.Module | None,
        build: Callable[[Any], torch.nn.Module],
    ) -> None:
        import fxencoder

        self.config = config
        self.device = torch.device(device)
        self.rank, self.world = distributed()
        self.model_config = config.model_config()
        self.chain = config.chain_config()
        given = encoder is not None
        if encoder is None:
            encoder = fxencoder.load(config.encoder, self.device)
        self.encoder = encoder.to(self.device).eval().requires_grad_(False)
        cfg = getattr(self.encoder, "config", None)
        dim = getattr(cfg, "embed_dim", None)
        want = getattr(self.model_config, self.dim_field)
        if dim is not None and dim != want:
            raise ValueError(
                f"the encoder's embeddings have {dim} dimensions but the {self.model_name}'s "
                f"{self.dim_field} is {want}: use an encoder of that size, or set "
                f"model_overrides={{'{self.dim_field}': {dim}}}"
            )
        rate = getattr(cfg, "sample_rate", None)
        if rate is not None and int(rate) != self.model_config.sample_rate:
            raise ValueError(
                f"the encoder runs at {rate} Hz but the {self.model_name} at "
                f"{self.model_config.sample_rate} Hz"
            )
        record = (
            {"source": config.encoder, "sha256": None, "embed_dim": dim}
            if given
            else encoder_record(config.encoder, dim)
        )
        #: The encoder as checkpoints record it: :func:`cloner.api.encoder_record`'s source,
        #: file SHA-256 and size (what inference loads back), plus the digest of its weights
        #: (what resuming checks) and its config.
        self.encoder_info = {
            **record,
            "digest": weights_digest(self.encoder),
            "config": asdict(cfg) if cfg is not None else None,
        }
        data_rate = getattr(dataset, "sample_rate", self.model_config.sample_rate)
        if int(data_rate) != self.model_config.sample_rate:
            raise ValueError(
                f"the dataset is at {data_rate} Hz but the {self.model_name} runs at "
                f"{self.model_config.sample_rate} Hz"
            )
        torch.manual_seed(config.seed)  # the initial weights: the same on every rank
        self.model = build(self.model_config).to(self.device)
        self.module: torch.nn.Module = self.model
        if self.world > 1:
            self.module = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.gen = torch.Generator().manual_seed(config.seed + RANK_SEED_STRIDE * self.rank)
        self.dataset = dataset
        self.step_count = 0
        #: The first items of the last step's batch (input, reference, output, target), kept
        #: when :meth:`step` is asked to (for audio logs).
        self.examples: dict[str, Tensor] | None = None

    def _normalizer(self, audio: Tensor, stems: list[str]) -> Tensor:
        return level_segments(audio, stems, self.model_config.sample_rate)

    def _keep_examples(self, batch: Mapping[str, Any], y: Tensor) -> None:
        k = min(2, y.shape[0])
        self.examples = {
            "input": batch["input"][:k].detach().cpu().clone(),
            "reference": batch["reference"][:k].detach().cpu().clone(),
            "output": y[:k].detach().cpu().clone(),
            "target": batch["target"][:k].detach().cpu().clone(),
        }

    def _timings(
        self, batch: Mapping[str, Any], lr: float, grad_norm: Tensor, times: Sequence[float]
    ) -> dict[str, float]:
        """The rate, gradient norm, times and throughput of a step (``times``: its start, the
        batch made, the model trained, done)."""
        start, made, trained, done = times
        n, samples = batch["input"].shape[0], batch["input"].shape[-1]
        seconds = n * samples / self.model_config.sample_rate
        return {
            "lr": lr, "grad_norm": float(grad_norm), "time/batch_s": made - start,
            "time/train_s": trained - made, "time/step_s": done - start,
            "throughput/items_per_s": n / (done - start),
            "throughput/audio_x_realtime": seconds / (done - start),
        }  # fmt: skip

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-exact resume needs (this process's random state)."""
        return {**self._common_state(self.checkpoint_format), "encoder": dict(self.encoder_info)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the model config and the encoder must match)."""
        if state.get("format") != self.checkpoint_format:
            raise ValueError(f"not a {self.checkpoint_kind} (format {state.get('format')!r})")
        if type(self.model_config).from_dict(state["config"]) != self.model_config:
            raise ValueError(f"the checkpoint's {self.model_name} config differs from this run's")
        saved = state.get("encoder") or {}
        if saved.get("digest") != self.encoder_info["digest"]:
            raise ValueError(
                f"the checkpoint was trained with another encoder ({saved.get('source')!r}, "
                f"weights {str(saved.get('digest'))[:12]}…) than this run's "
                f"({self.encoder_info['source']!r}, {self.encoder_info['digest'][:12]}…)"
            )
        self._restore(state)


class ClonerTrainer(ConditionedTrainer):
    """The cloner, the frozen encoder, the optimizer, the random state and the training step.

    Args:
        config: the run's :class:`ClonerTrainConfig`.
        dataset: a segment dataset in stem mode (:func:`open_training_data`; what
            :func:`fxdata.triplets.draw_triplets` takes).
        device: where the models and the effects run.
        encoder: the conditioning encoder (default: ``fxencoder.load(config.encoder)``); it is
            moved to ``device``, put in eval mode and frozen. Checkpoints name
            ``config.encoder`` as the source either way (with no file digest when an encoder is
            given here).

    Raises:
        ValueError: an encoder whose embedding size is not the model's ``cond_dim`` or whose
            sample rate is not the model's, or a dataset at another rate.
    """

    checkpoint_kind = "cloner training checkpoint"
    checkpoint_format = CHECKPOINT_FORMAT
    model_name = "cloner"
    dim_field = "cond_dim"

    def __init__(
        self,
        config: ClonerTrainConfig,
        dataset: Any,
        device: str | torch.device = "cpu",
        encoder: torch.nn.Module | None = None,
    ) -> None:
        self._setup(config, dataset, device, encoder, MixFXCloner)
        if config.init_from is not None:
            self._init_weights(config.init_from)
        if config.dasp_fraction > 0:
            from fxdata.dasp_chain import require_dasp

            require_dasp()  # at the start, not at the first dasp step
        self.criterion = MultiScaleSpectralLoss(
            config.fft_sizes, lr_weight=config.mss_lr_weight, ms_weight=config.mss_ms_weight
        ) if config.mss_lr_weight + config.mss_ms_weight > 0 else None  # fmt: skip

    def _init_weights(self, source: str) -> None:
        """Copy the weights of the cloner ``source`` (``init_from``) into the model."""
        from cloner.api import load

        try:
            start = load(source)
        except ValueError as err:
            raise ValueError(f"init_from: {err}") from None
        want = self.model_config
        # A cloner without a level head may start one that has it (the head starts neutral).
        adds_head = want.level_head and not start.config.level_head
        if start.config.replace(
            level_head=want.level_head, level_limit_db=want.level_limit_db
        ) != want or (start.config.level_head and not want.level_head):
            raise ValueError(
                f"init_from: {source} is a cloner of another config than this run's "
                f"({start.config} vs {want})"
            )
        with torch.no_grad():
            missing, unexpected = self.model.load_state_dict(
                start.state_dict(), strict=not adds_head
            )
        if unexpected or any(not k.startswith("level.") for k in missing):
            raise ValueError(
                f"init_from: {source} does not fit this run's cloner ({missing=}, {unexpected=})"
            )

    @torch.no_grad()
    def make_batch(self) -> dict[str, Any]:
        """Draw triplets and embed the references (no trained model involved)."""
        from fxdata.triplets import draw_triplets

        c = self.config
        design = "fxdsp"
        if c.dasp_fraction + c.house_fraction > 0:  # one draw per step picks the design
            u = float(torch.rand((), generator=self.gen))
            if u < c.dasp_fraction:
                design = "dasp"
            elif u < c.dasp_fraction + c.house_fraction:
                design = "house"
        trip = draw_triplets(
            self.dataset, c.batch_size, generator=self.gen, device=self.device,
            normalizer=self._normalizer if c.fxnorm else None, config=self.chain, design=design,
            keep_min=c.keep_min,
        )  # fmt: skip
        reference = _crop(trip.b2, self.gen, c.ref_crop_min)
        cond = self.encoder(reference)
        return {
            "input": trip.a1, "target": trip.a2, "reference": reference, "cond": cond,
            "triplets": trip, "design": design,
        }  # fmt: skip

    def losses(self, y: Tensor, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """The loss terms of an output ``y`` against the batch's target, and their weighted
        ``total`` (differentiable in ``y``)."""
        c = self.config
        target = batch["target"]
        out: dict[str, Tensor] = {}
        total = y.new_zeros(())
        if self.criterion is not None:
            terms = self.criterion.terms(y, target)
            out["mss_lr"], out["mss_ms"] = terms["lr"], terms["ms"]
            total = total + self.criterion.combine(terms)
        if c.embedding_weight > 0:
            if "target_embedding" not in batch:
                with torch.no_grad():
                    batch = {**batch, "target_embedding": self.encoder(target)}  # type: ignore[dict-item]
            out["embedding"] = embedding_loss(self.encoder, y, batch["target_embedding"])
            total = total + c.embedding_weight * out["embedding"]
        out["total"] = total
        return out

    def _level_head_forward(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """A level-head cloner's training forward: the TCN path's output at the target's RMS
        (what the spectral terms see), the real output (the head's level), and the head's mean
        absolute error in dB against ``20·log10(rms(target) / rms(input))`` (each bounded by
        the head's limit; the wanted level is data, no gradient)."""
        x, target = batch["input"], batch["target"]
        u, g = self.module(x, batch["cond"], parts=True)
        level_t = fxdsp.functional.rms(target)
        scale = level_t / fxdsp.functional.rms(u).clamp_min(RMS_FLOOR)
        y = soft_limit(u * scale[:, None, None], self.model_config.output_limit)
        with torch.no_grad():
            bound = self.model_config.level_limit_db
            level_x = fxdsp.functional.rms(x)
            want = 20 * torch.log10(level_t.clamp_min(RMS_FLOOR) / level_x.clamp_min(RMS_FLOOR))
            want = want.clamp(-bound, bound)
            output = self.model.at_level(x, u.detach(), g.detach())
        return y, output, (g - want).abs().mean()

    def step(
        self,
        batch: Mapping[str, Any] | None = None,
        *,
        measure_input: bool = True,
        keep_examples: bool = False,
    ) -> dict[str, float]:
        """One optimization step on a fresh batch (or on ``batch``); returns the figures to log.

        Args:
            batch: a :meth:`make_batch` output to train on instead of drawing one.
            measure_input: also compute the loss terms of the input unchanged
                (``input_unchanged/*`` and ``loss/relative``; no effect on the training).
            keep_examples: keep the first items of the batch and the output in
                :attr:`examples`.
        """
        start = time.perf_counter()
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if batch is None:
            batch = self.make_batch()
        if self.config.embedding_weight > 0:
            with torch.no_grad():
                batch = {**batch, "target_embedding": self.encoder(batch["target"])}
        made = time.perf_counter()
        self.model.train()
        output = None
        if self.model_config.level_head:
            y, output, level_error = self._level_head_forward(batch)
            terms = self.losses(y, batch)
            spectral = terms["total"].detach()
            terms["level_db"] = level_error
            terms["total"] = terms["total"] + self.config.level_weight * level_error
        else:
            y = self.module(batch["input"], batch["cond"])
            terms = self.losses(y, batch)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.step_count += 1
        trained = time.perf_counter()
        logs = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
        if measure_input:
            with torch.no_grad():
                unchanged = self.losses(batch["input"], batch)
            logs.update({f"input_unchanged/{k}": float(v) for k, v in unchanged.items()})
            if output is None:
                logs["loss/relative"] = logs["loss/total"] / max(
                    logs["input_unchanged/total"], 1e-12
                )
            else:
                # The spectral terms of the real output (the head's level) and of the TCN path
                # at the target's level, each against the input unchanged.
                with torch.no_grad():
                    real = self.losses(output.detach(), batch)
                base = max(logs["input_unchanged/total"], 1e-12)
                logs.update({f"output/{k}": float(v) for k, v in real.items()})
                logs["loss/relative"] = logs["output/total"] / base
                logs["loss/relative_at_target_level"] = float(spectral) / base
        if self.config.dasp_fraction > 0:  # which design made the step's chains
            logs["batch/dasp"] = float(batch.get("design") == "dasp")
        if self.config.house_fraction > 0:
            logs["batch/house"] = float(batch.get("design") == "house")
        if self.config.keep_min < 1.0:  # how sparse the step's chains were: effects on per item
            active = batch["triplets"].params.active
            logs["batch/effects_on"] = float(active.sum(dim=1).double().mean())
        if keep_examples:
            self._keep_examples(batch, y if output is None else output.detach())
        done = time.perf_counter()
        logs.update(self._timings(batch, lr, grad_norm, (start, made, trained, done)))
        return logs


def _wav_bytes(audio: Tensor, sample_rate: int) -> bytes:
    """16-bit PCM WAV of ``(channels, samples)`` audio clipped to ±1."""
    x = audio.detach().float().clamp(-1, 1).cpu().numpy()
    pcm = np.round(x.T * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(x.shape[0])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def log_audio(writer: Any, tag: str, audio: Tensor, step: int, sample_rate: int) -> None:
    """Stereo audio ``(2, samples)`` to TensorBoard (a stereo WAV summary where the writer is a
    ``torch.utils.tensorboard.SummaryWriter``; otherwise its mid through ``add_audio``)."""
    file_writer = getattr(writer, "_get_file_writer", None)
    if file_writer is not None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        data = _wav_bytes(audio, sample_rate)
        summary = Summary(value=[Summary.Value(tag=tag, audio=Summary.Audio(
            sample_rate=float(sample_rate), num_channels=int(audio.shape[0]),
            length_frames=int(audio.shape[-1]), encoded_audio_string=data,
            content_type="audio/wav"))])  # fmt: skip
        file_writer().add_summary(summary, step)
    elif hasattr(writer, "add_audio"):
        mid = audio.mean(0).clamp(-1, 1).cpu()
        writer.add_audio(tag, mid, step, sample_rate=sample_rate)


def train(
    trainer: ClonerTrainer,
    out_dir: str | Path,
    *,
    checkpoint_every: int | None = None,
    log_every: int | None = None,
    audio_every: int | None = None,
    writer: Any = None,
    progress: bool = True,
    callbacks: tuple[Callable[[ClonerTrainer, dict[str, float]], None], ...] = (),
) -> Path:
    """Run ``trainer`` to ``config.steps``, logging and writing ``last.pt`` checkpoints.

    Args:
        trainer: the trainer (resumed or fresh).
        out_dir: where ``last.pt`` goes.
        checkpoint_every: steps between checkpoints (default: the config's; one is written at
            the end too).
        log_every: steps between scalar logs to ``writer`` (default: the config's).
        audio_every: steps between audio examples (input, reference, output, target of the
            step's first items; default: the config's; 0: never).
        writer: a TensorBoard ``SummaryWriter`` (or anything with ``add_scalar``), or None.
        progress: show a tqdm bar (rank 0 only).
        callbacks: called after every step with the trainer and the step's figures.

    Returns:
        The path of the last checkpoint.
    """
    c = trainer.config
    checkpoint_every = checkpoint_every or c.checkpoint_every
    log_every = log_every or c.log_every
    audio_every = c.audio_every if audio_every is None else audio_every
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "last.pt"
    total = c.steps
    logging = writer is not None and trainer.rank == 0
    rate = trainer.model_config.sample_rate
    bar = None
    if progress and trainer.rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=trainer.step_count, desc=trainer.model_name, unit="step")
    while trainer.step_count < total:
        upcoming = trainer.step_count + 1
        want_audio = logging and audio_every > 0 and upcoming % audio_every == 0
        want_logs = upcoming % log_every == 0 or upcoming == total
        logs = trainer.step(measure_input=want_logs, keep_examples=want_audio)
        step = trainer.step_count
        if logging and step % log_every == 0:
            for key, value in logs.items():
                writer.add_scalar(key, value, step)
        if want_audio and trainer.examples is not None:
            for name, audio in trainer.examples.items():
                for k in range(audio.shape[0]):
                    log_audio(writer, f"{name}/{k}", audio[k], step, rate)
        for callback in callbacks:
            callback(trainer, logs)
        if bar is not None:
            bar.update(1)
            if "loss/relative" in logs:
                bar.set_postfix(
                    loss=f"{logs['loss/total']:.3f}", rel=f"{logs['loss/relative']:.3f}"
                )
        if step % checkpoint_every == 0 or step == total:
            trainer.save(path)
    if bar is not None:
        bar.close()
    return path
