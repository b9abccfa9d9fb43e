"""What the encoder, cloner and controller trainers share: the rate schedule, processes, state.

:class:`TrainerBase` holds the parts of a trainer that do not depend on its model: the learning
rate schedule (:func:`lr_schedule`), this process's rank in a ``torchrun`` group, and atomic
checkpoints that carry every rank's random state so that a resumed run continues bit for bit.
A subclass sets ``config`` (with ``lr``, ``warmup_steps``, ``steps`` and the optional
``schedule_steps`` and ``cooldown_from``), ``model``, ``optimizer``, ``gen``, ``step_count``,
``device``, ``rank`` and ``world``, and writes :meth:`~TrainerBase.state_dict` and
:meth:`~TrainerBase.load_state_dict` (the latter calls :meth:`~TrainerBase._restore`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from fxdsp.config import check_number
from fxdsp.io import atomic_write

#: seed offset between the ranks of a torchrun group (each draws its own batches)
RANK_SEED_STRIDE = 1_000_003

__all__ = [
    "RANK_SEED_STRIDE",
    "TrainerBase", "check_schedule", "distributed", "lr_schedule", "setup_distributed",
]  # fmt: skip


def lr_schedule(
    step: int,
    *,
    lr: float,
    warmup_steps: int,
    steps: int,
    schedule_steps: int | None = None,
    cooldown_from: int | None = None,
) -> float:
    """The learning rate at ``step`` (0-based, before the step is taken).

    A linear warm-up over ``warmup_steps``, then a cosine decay to ``0.1 × lr`` at
    ``schedule_steps`` (default ``steps``). With ``cooldown_from``, the rate falls linearly from
    the cosine's value at that step to zero at ``steps``: a long run resumed with fewer ``steps``,
    its ``schedule_steps`` and ``cooldown_from`` = the step reached ends early without a jump.
    """
    if cooldown_from is not None and step > cooldown_from:
        start = lr_schedule(cooldown_from, lr=lr, warmup_steps=warmup_steps, steps=steps,
                            schedule_steps=schedule_steps)  # fmt: skip
        return start * max(0.0, (steps - step) / (steps - cooldown_from))
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    horizon = schedule_steps if schedule_steps is not None else steps
    progress = min(1.0, (step - warmup_steps) / max(1, horizon - warmup_steps))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def check_init_from(config: Any, what: str) -> None:
    """Validate a frozen config's ``init_from`` (None, or a non-empty name or path, stored as a
    string); ``what`` names the model in the message ("an encoder", "a cloner")."""
    value = config.init_from
    if value is None:
        return
    if not isinstance(value, (str, Path)) or not str(value):
        raise ValueError(f"init_from must be {what} name or checkpoint path, got {value!r}")
    object.__setattr__(config, "init_from", str(value))


def check_schedule(config: Any) -> None:
    """Validate a config's ``warmup_steps``, ``schedule_steps`` and ``cooldown_from``."""
    check_number("warmup_steps", config.warmup_steps, low=0, integer=True)
    if config.schedule_steps is not None:
        check_number("schedule_steps", config.schedule_steps, low=1, integer=True)
    if config.cooldown_from is not None:
        check_number("cooldown_from", config.cooldown_from, low=0, high=config.steps - 1,
                     integer=True)  # fmt: skip


def distributed() -> tuple[int, int]:
    """``(rank, world_size)`` of this process (``(0, 1)`` outside a process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def setup_distributed(device: str) -> tuple[int, int, str]:
    """Initialise ``torch.distributed`` under ``torchrun`` (gloo on CPU, nccl on CUDA).

    Returns:
        ``(rank, world_size, device)``; ``(0, 1, device)`` when not launched by torchrun.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    rank = int(os.environ["RANK"])
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
        backend = "nccl"
    else:
        backend = "gloo"
    torch.distributed.init_process_group(backend)
    return rank, world, device


class TrainerBase:
    """The schedule, checkpoint writing and resuming of a trainer (see the module's text)."""

    config: Any
    model_config: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    gen: torch.Generator
    step_count: int
    device: torch.device
    rank: int
    world: int
    #: what a checkpoint of this trainer is called in error messages
    checkpoint_kind: str = "training checkpoint"

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (:func:`lr_schedule` of the config)."""
        c = self.config
        return lr_schedule(
            step, lr=c.lr, warmup_steps=c.warmup_steps, steps=c.steps,
            schedule_steps=c.schedule_steps, cooldown_from=c.cooldown_from,
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:  # pragma: no cover - each trainer writes its own
        raise NotImplementedError

    def _common_state(self, checkpoint_format: str) -> dict[str, Any]:
        """The checkpoint entries every trainer writes (a trainer's :meth:`state_dict` adds its
        own): format, model and training configs, weights, optimizer, step, random state."""
        return {
            "format": checkpoint_format,
            "config": asdict(self.model_config),
            "train_config": self.config.to_dict(),
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step_count,
            "rng": self.gen.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _restore(self, state: Mapping[str, Any]) -> None:
        """Load the model, the optimizer, the step and the random state of a checkpoint."""
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_count = int(state["step"])
        self.gen.set_state(state["rng"])

    def save(self, path: str | Path) -> None:
        """Write a checkpoint atomically (rank 0 writes every rank's random state)."""
        state = self.state_dict()
        if self.world > 1:
            rngs: list[Any] = [None] * self.world
            torch.distributed.all_gather_object(rngs, self.gen.get_state())
            state["rng_ranks"] = rngs
            if self.rank != 0:
                return
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint written by :meth:`save`."""
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:
            raise ValueError(f"cannot read checkpoint {path}: {err}") from None
        if not isinstance(state, Mapping):
            raise ValueError(f"{path} is not a {self.checkpoint_kind}")
        if "rng_ranks" in state:
            ranks = state["rng_ranks"]
            if len(ranks) != self.world:
                raise ValueError(
                    f"checkpoint {path} was written by {len(ranks)} processes, this run has "
                    f"{self.world}"
                )
            state = {**state, "rng": ranks[self.rank]}
        self.load_state_dict(state)
