"""Training of the parameter controller (:class:`cloner.parametric.ParamController`).

The cloner's recipe (:mod:`cloner.training`) with a chain in place of the network. Each step
(:meth:`ParamTrainer.step`):

1. **Triplets.** :func:`fxdata.triplets.draw_triplets`: ``A1`` (an FX-normalized stem segment),
   ``A2`` (``A1`` through a random chain: the target) and ``B2`` (another track's stem of the
   same type through the same chain: the reference), levelled per stem
   (:func:`cloner.training.level_segments`) and drawn on the device from one CPU generator.
2. **Inputs.** The reference is cropped to a random length in ``[ref_crop_min, 1] ×`` the
   segment; the frozen encoder embeds ``A1`` and the crop; with ``use_features`` their raw
   effect features (:func:`cloner.parametric.audio_features`) are computed too (no gradients).
3. **Prediction and rendering.** ``u = controller(Φ(A1), Φ(B2), stem, f(A1), f(B2))`` and
   ``y = render(u, A1)``: fxdsp's chain, differentiable, so every loss reaches the controller
   through the effects.
4. **Loss.** ``L = w_lr · L_MSS(L/R) + w_ms · L_MSS(M/S) + w_emb · (1 − cos(Φ(y), Φ(A2)))
   + w_feat · feature_distance(f(y), f(A2)) + w_par · mean(mask · |u − u*|)`` where ``u*`` is
   the drawn chain in the controller's space and ``mask`` drops the parameters of effects that
   are off (:func:`cloner.parametric.target_normalized`). Every term is logged (also the
   parameter error when its weight is 0), with the same audio terms for ``y = A1`` ("input
   unchanged", which is also the neutral chain's output) beside them.

Every random choice comes from one CPU generator per process, saved in the checkpoints with the
model, the optimizer and the step, so a resumed run continues bit for bit; several processes
(``torchrun``) train with DistributedDataParallel. The loop and the TensorBoard logging are
:func:`cloner.training.train`'s.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from cloner.loss import DEFAULT_FFT_SIZES, MultiScaleSpectralLoss, embedding_loss
from cloner.parametric import (
    TRAIN_FORMAT,
    ParamController,
    ParamControllerConfig,
    audio_features,
    feature_distance,
    render,
    target_normalized,
)
from cloner.training import ConditionedTrainer, TripletRunConfig, _crop

__all__ = ["TRAIN_FORMAT", "ParamTrainConfig", "ParamTrainer"]


@dataclass(frozen=True)
class ParamTrainConfig(TripletRunConfig):
    """Everything a controller training run needs besides the data.

    Attributes:
        model: a :class:`~cloner.parametric.ParamControllerConfig` preset (``"small"``,
            ``"tiny"``).
        model_overrides: fields of the controller config changed from the preset.
        encoder: the frozen encoder (a checkpoint path or a shipped name); its embedding size
            must be the controller's ``embed_dim`` and its rate the controller's.
        steps: optimizer steps in all.
        batch_size: triplets per step (per process).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up; then a cosine decay to ``0.1 × lr`` at ``schedule_steps``.
        schedule_steps: the cosine's horizon (default ``steps``).
        cooldown_from: from this step on, a linear decay to zero at ``steps``
            (:func:`fxencoder.trainer_base.lr_schedule`).
        segment_seconds: training segment length (None: the preset's).
        fxnorm: FX-normalize the segments (as the cloner's training does).
        mss_lr_weight: weight of the left/right multi-scale spectral loss.
        mss_ms_weight: weight of the mid/side multi-scale spectral loss.
        fft_sizes: FFT sizes of the spectral losses.
        embedding_weight: weight of ``1 − cos(Φ(y), Φ(A2))``.
        feature_weight: weight of the audio-feature distance to ``A2``.
        param_weight: weight of the masked L1 distance to the drawn normalized parameters.
        ref_crop_min: shortest reference crop as a fraction of the segment (1: no crop).
        chain: the triplets' :class:`fxdsp.ChainConfig` as a dict (default: the reference).
        grad_clip: gradient-norm clip.
        seed: the seed of every random choice and of the initial weights.
        checkpoint_every: steps between checkpoints.
        log_every: steps between scalar logs.
        audio_every: steps between audio examples (0: never).
    """

    model: str = "small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    encoder: str = "default"
    steps: int = 3000
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    schedule_steps: int | None = None
    cooldown_from: int | None = None
    segment_seconds: float | None = None
    fxnorm: bool = True
    mss_lr_weight: float = 1.0
    mss_ms_weight: float = 1.0
    fft_sizes: tuple[int, ...] = DEFAULT_FFT_SIZES
    embedding_weight: float = 0.0
    feature_weight: float = 0.0
    param_weight: float = 0.0
    ref_crop_min: float = 0.5
    chain: dict[str, Any] = field(default_factory=dict)
    grad_clip: float = 5.0
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 10
    audio_every: int = 500

    _loss_weights: ClassVar[tuple[str, ...]] = (
        "mss_lr_weight", "mss_ms_weight", "embedding_weight", "feature_weight", "param_weight",
    )  # fmt: skip
    _model_class: ClassVar[type] = ParamControllerConfig

    def model_config(self) -> ParamControllerConfig:
        """The controller's config: the preset, the overrides and the segment length."""
        return super().model_config()


class ParamTrainer(ConditionedTrainer):
    """The controller, the frozen encoder, the optimizer, the random state and the step.

    Args:
        config: the run's :class:`ParamTrainConfig`.
        dataset: a segment dataset in stem mode (:func:`cloner.training.open_training_data`
            takes this config too).
        device: where the models and the effects run.
        encoder: the frozen encoder (default ``fxencoder.load(config.encoder)``).

    Raises:
        ValueError: an encoder whose embedding size or rate is not the controller's, a dataset
            at another rate.
    """

    checkpoint_kind = "controller training checkpoint"
    checkpoint_format = TRAIN_FORMAT
    model_name = "controller"
    dim_field = "embed_dim"

    def __init__(
        self,
        config: ParamTrainConfig,
        dataset: Any,
        device: str | torch.device = "cpu",
        encoder: torch.nn.Module | None = None,
    ) -> None:
        self._setup(config, dataset, device, encoder, ParamController)
        self.criterion = MultiScaleSpectralLoss(config.fft_sizes)
        #: Whether any audio term trains (else only the parameter loss: no rendering needed).
        self.audio_loss = (
            config.mss_lr_weight + config.mss_ms_weight + config.embedding_weight
            + config.feature_weight > 0
        )  # fmt: skip

    @torch.no_grad()
    def make_batch(self) -> dict[str, Any]:
        """Draw triplets, embed input and reference, measure their features, map the drawn
        chains into the controller's space."""
        from fxdata.triplets import draw_triplets

        c = self.config
        trip = draw_triplets(
            self.dataset, c.batch_size, generator=self.gen, device=self.device,
            normalizer=self._normalizer if c.fxnorm else None, config=self.chain,
        )  # fmt: skip
        reference = _crop(trip.b2, self.gen, c.ref_crop_min)
        rate = self.model_config.sample_rate
        u_star, mask = target_normalized(trip.params, self.model.space)
        batch: dict[str, Any] = {
            "input": trip.a1, "target": trip.a2, "reference": reference,
            "stems": list(trip.stems), "emb_input": self.encoder(trip.a1),
            "emb_reference": self.encoder(reference), "target_params": u_star.to(self.device),
            "param_mask": mask.to(self.device), "triplets": trip,
        }  # fmt: skip
        if self.model_config.use_features:
            batch["feat_input"] = audio_features(trip.a1, rate)
            batch["feat_reference"] = audio_features(reference, rate)
        if c.feature_weight > 0:
            batch["target_features"] = audio_features(trip.a2, rate)
        if c.embedding_weight > 0:
            batch["target_embedding"] = self.encoder(trip.a2)
        return batch

    def predict(self, batch: Mapping[str, Any]) -> Tensor:
        """The controller's ``(batch, 24)`` output for a batch."""
        feats = {k: batch[k] for k in ("feat_input", "feat_reference") if k in batch}
        return self.module(batch["emb_input"], batch["emb_reference"], batch["stems"], **feats)

    def losses(
        self, y: Tensor, batch: Mapping[str, Any], u: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The loss terms of an output ``y`` (and parameters ``u``) and their weighted
        ``total``; a term whose weight is 0 is computed without gradients (for the logs)."""
        c = self.config
        rate = self.model_config.sample_rate
        target = batch["target"]
        terms = self.criterion.terms(y, target)
        out = {"mss_lr": terms["lr"], "mss_ms": terms["ms"]}
        total = c.mss_lr_weight * terms["lr"] + c.mss_ms_weight * terms["ms"]
        if c.embedding_weight > 0:
            ref = batch.get("target_embedding")
            out["embedding"] = embedding_loss(self.encoder, y, ref if ref is not None else target)
            total = total + c.embedding_weight * out["embedding"]
        if c.feature_weight > 0:
            ref = batch.get("target_features")
            if ref is None:
                ref = audio_features(target, rate)
            out["features"] = feature_distance(audio_features(y, rate), ref, rate).mean()
            total = total + c.feature_weight * out["features"]
        if u is not None:
            params = self.param_terms(u, batch)
            out["params"] = params["params"]
            total = total + params["total"]
        out["total"] = total
        return out

    def param_terms(self, u: Tensor, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """``{"params": mean(mask · |u − u*|) over the unmasked entries, "total": its weighted
        value}``."""
        mask = batch["param_mask"]
        err = (mask * (u - batch["target_params"]).abs()).sum() / mask.sum().clamp_min(1.0)
        return {"params": err, "total": self.config.param_weight * err}

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
            measure_input: also compute the audio loss terms of the input unchanged.
            keep_examples: keep the first items of the batch and the output in
                :attr:`examples`.
        """
        start = time.perf_counter()
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if batch is None:
            batch = self.make_batch()
        made = time.perf_counter()
        self.model.train()
        u = self.predict(batch)
        rate = self.model_config.sample_rate
        if self.audio_loss:
            y = render(u, batch["input"], rate, stems=batch["stems"])
            terms = self.losses(y, batch, u)
        else:  # the parameter loss alone: render (without gradients) only to log or listen
            terms = self.param_terms(u, batch)
            y = None
            if measure_input or keep_examples:
                with torch.no_grad():
                    y = render(u.detach(), batch["input"], rate, stems=batch["stems"])
                    audio = self.losses(y, batch)
                terms = {**{k: v for k, v in audio.items() if k != "total"}, **terms}
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
            if logs["input_unchanged/total"] > 0:  # 0 when only the parameter loss trains
                logs["loss/relative"] = logs["loss/total"] / logs["input_unchanged/total"]
        if keep_examples and y is not None:
            self._keep_examples(batch, y)
        done = time.perf_counter()
        logs.update(self._timings(batch, lr, grad_norm, (start, made, trained, done)))
        return logs
