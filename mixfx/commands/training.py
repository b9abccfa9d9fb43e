"""What the three training commands share: run-folder checks, saved settings, the run itself.

``train-encoder``, ``train-cloner`` and ``train-params`` each parse their own options and build
their own trainer; :func:`run_training` does the rest the same way for all three: it refuses a
run folder that would be overwritten or a ``--resume`` without a checkpoint, joins a
``torchrun`` group, writes ``OUT/train_config.json`` and TensorBoard logs (``OUT/tb``) on rank
0, trains to the config's step count and tears the group down cleanly.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mixfx.commands.common import CLIError, check_device

__all__ = ["check_run_folder", "run_training", "saved_train_config"]


def check_run_folder(args: argparse.Namespace) -> Path:
    """``OUT/last.pt``, after checking ``--resume`` against it, ``--data`` and ``--device``."""

    last = Path(args.out) / "last.pt"
    if args.resume and not last.exists():
        raise CLIError(f"--resume: no checkpoint {last}")
    if not args.resume and last.exists():
        raise CLIError(f"{last} exists: pass --resume to continue it, or choose another --out")
    if not Path(args.data).exists():
        raise CLIError(f"--data: no such folder {args.data}")
    check_device(args.device)
    return last


def saved_train_config(path: Path, kind: str) -> dict[str, Any]:
    """The training settings saved in checkpoint ``path`` (a ``kind`` training checkpoint)."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CLIError(f"cannot read checkpoint {path}: {err}") from None
    saved = obj.get("train_config") if isinstance(obj, dict) else None
    if not isinstance(saved, dict):
        raise CLIError(f"{path} is not a {kind} training checkpoint")
    return dict(saved)


def run_training(
    args: argparse.Namespace,
    name: str,
    config: Any,
    build: Callable[[str], Any],
    train: Callable[..., Path],
    *,
    callbacks: Callable[[Any, Any, str], Sequence[Callable[..., None]]] | None = None,
    **train_options: Any,
) -> int:
    """Train ``build(device)``'s trainer with ``train`` and return the exit code.

    Args:
        args: the parsed options (``out``, ``device``, ``resume``, ``no_progress``).
        name: the command, for the closing line.
        config: the run's training config (written to ``OUT/train_config.json``).
        build: makes the trainer (data opened) on a device.
        train: the training loop (``train(trainer, out, writer=..., progress=..., ...)``).
        callbacks: on rank 0, ``callbacks(trainer, writer, device)`` gives the loop's
            per-step callbacks (probes, audio).
        train_options: passed on to ``train``.
    """
    import torch

    from fxdsp.io import atomic_write_text
    from fxencoder.trainer_base import setup_distributed

    out = Path(args.out)
    last = out / "last.pt"
    rank, world, device = setup_distributed(args.device)
    try:
        trainer = build(device)
        if args.resume:
            trainer.resume(last)
        writer = None
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "train_config.json", json.dumps(config.to_dict(), indent=2))
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                SummaryWriter = None
            if SummaryWriter is not None:
                writer = SummaryWriter(str(out / "tb"))
        hooks = tuple(callbacks(trainer, writer, device)) if callbacks and rank == 0 else ()
        try:
            path = train(
                trainer, out, writer=writer, progress=not args.no_progress, callbacks=hooks,
                **train_options,
            )  # fmt: skip
        finally:
            if writer is not None:
                writer.close()
        if rank == 0:
            print(f"mixfx {name}: {trainer.step_count} steps, checkpoint {path}")
        if world > 1:
            # Every rank waits until rank 0 has written its checkpoint: gloo aborts a process
            # that tears down its group while a peer is still connected (seen under load).
            torch.distributed.barrier()
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0
