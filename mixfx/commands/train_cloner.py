"""``mixfx train-cloner``: training of the style-transfer network Ψ on encoder-conditioned
triplets.

The loop, the step and the checkpoints are :mod:`cloner.training`; this command parses the
options, opens the data (the training split, FX-normalized unless ``--no-fxnorm``), loads the
frozen encoder (``--encoder PATH`` or a shipped name), logs to TensorBoard (``OUT/tb``: the
loss terms beside the same terms for the input left unchanged, the learning rate, throughput,
stereo audio examples of input, reference, output and target) and writes ``OUT/last.pt`` every
``--checkpoint-every`` steps. ``--resume`` continues ``OUT/last.pt`` with its saved settings
(options given again override them, e.g. ``--steps``). Under ``torchrun`` every process trains
on its own draws (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mixfx.commands.common import CLIError, number_in_range, require

__all__ = ["DESCRIPTION", "HELP", "NAME", "configure", "run"]

NAME = "train-cloner"
HELP = "train the style-transfer network on encoder-conditioned triplets (--encoder, --resume)"
DESCRIPTION = (
    "Train the style-transfer network (MixFXcloner) on a dataset folder (the corpus, "
    "MUSDB18-HQ, a pack): input = an FX-normalized stem segment, target = the same segment "
    "through a random effect chain, condition = the frozen encoder's embedding of another "
    "track's stem through that chain. Loss: multi-scale spectral on L/R and M/S "
    "(+ --embedding-weight)."
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``train-cloner`` to ``parser``."""
    p = parser
    p.add_argument("--data", metavar="DIR", type=Path, required=True, help="dataset folder")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="run folder")
    p.add_argument("--config", metavar="FILE", type=Path, help="a ClonerTrainConfig JSON/YAML")
    p.add_argument(
        "--encoder", metavar="PATH", default=None,
        help="the conditioning encoder: a checkpoint file or a shipped name (default: default)",
    )  # fmt: skip
    p.add_argument("--preset", default=None, help="model preset: small (default), paper, tiny")
    p.add_argument("--steps", type=number_in_range(int, 1, 10**9, "steps"), default=None)
    p.add_argument("--batch-size", type=number_in_range(int, 1, 4096, "batch size"), default=None)
    p.add_argument("--lr", type=number_in_range(float, 1e-8, 1.0, "learning rate"), default=None)
    p.add_argument(
        "--segment-seconds", type=number_in_range(float, 0.1, 60.0, "segment seconds"),
        default=None, help="training segment length (default: the preset's)",
    )  # fmt: skip
    p.add_argument(
        "--embedding-weight", type=number_in_range(float, 0.0, 1e3, "embedding weight"),
        default=None, help="weight of 1 - cos(encoder(output), encoder(target)) (default 0)",
    )  # fmt: skip
    p.add_argument("--no-fxnorm", action="store_true", help="train on the data as it is")
    p.add_argument("--seed", type=number_in_range(int, 0, 2**31 - 1, "seed"), default=None)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    steps = number_in_range(int, 1, 10**9, "steps")
    p.add_argument("--checkpoint-every", type=steps, default=None, help="default 500")
    p.add_argument("--log-every", type=steps, default=None, help="default 10")
    p.add_argument(
        "--audio-every", type=number_in_range(int, 0, 10**9, "steps"), default=None,
        help="steps between audio examples (0: never; default 1000)",
    )  # fmt: skip
    p.add_argument("--cache-dir", type=Path, default=None, help="segment cache folder")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def _saved_config(path: Path) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CLIError(f"cannot read checkpoint {path}: {err}") from None
    saved = obj.get("train_config") if isinstance(obj, dict) else None
    if not isinstance(saved, dict):
        raise CLIError(f"{path} is not a cloner training checkpoint")
    return dict(saved)


def _train_config(args: argparse.Namespace, last: Path) -> Any:
    from cloner.training import ClonerTrainConfig

    if args.config:
        base = ClonerTrainConfig.from_file(args.config).to_dict()
    elif args.resume:
        base = _saved_config(last)
    else:
        base = {}
    given = {
        "model": args.preset, "encoder": args.encoder, "steps": args.steps,
        "batch_size": args.batch_size, "lr": args.lr, "segment_seconds": args.segment_seconds,
        "embedding_weight": args.embedding_weight, "seed": args.seed,
        "checkpoint_every": args.checkpoint_every, "log_every": args.log_every,
        "audio_every": args.audio_every,
    }  # fmt: skip
    base.update({k: v for k, v in given.items() if v is not None})
    if args.encoder is not None and Path(args.encoder).is_file():
        base["encoder"] = str(Path(args.encoder).resolve())  # --resume from anywhere
    if args.no_fxnorm:
        base["fxnorm"] = False
    return ClonerTrainConfig.from_dict(base)


def run(args: argparse.Namespace) -> int:
    """Train; returns the exit code."""
    require("tqdm", "train", "mixfx train-cloner")
    import torch

    from cloner.training import ClonerTrainer, open_training_data, train
    from fxdsp.io import atomic_write_text
    from fxencoder.trainer_base import setup_distributed

    out: Path = args.out
    last = out / "last.pt"
    if args.resume and not last.exists():
        raise CLIError(f"--resume: no checkpoint {last}")
    if not args.resume and last.exists():
        raise CLIError(f"{last} exists: pass --resume to continue it, or choose another --out")
    if not Path(args.data).exists():
        raise CLIError(f"--data: no such folder {args.data}")
    config = _train_config(args, last)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {args.device}: CUDA is not available on this machine")
    rank, world, device = setup_distributed(args.device)
    try:
        data = open_training_data(args.data, config, "train", args.cache_dir)
        trainer = ClonerTrainer(config, data, device=device)
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
        try:
            path = train(trainer, out, writer=writer, progress=not args.no_progress)
        finally:
            if writer is not None:
                writer.close()
        if rank == 0:
            print(f"mixfx train-cloner: {trainer.step_count} steps, checkpoint {path}")
        if world > 1:
            # Every rank waits until rank 0 has written its checkpoint: gloo aborts a process
            # that tears down its group while a peer is still connected (seen under load).
            torch.distributed.barrier()
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0
