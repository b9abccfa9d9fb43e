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
from pathlib import Path
from typing import Any

from mixfx.commands.common import number_in_range, require
from mixfx.commands.training import check_run_folder, run_training, saved_train_config

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
    p.add_argument(
        "--init-from", metavar="NAME_OR_PATH", default=None,
        help="fine-tune: start from these cloner weights (a shipped name or a checkpoint of the "
        "same model config) with a fresh optimizer and schedule",
    )  # fmt: skip
    steps = number_in_range(int, 1, 10**9, "steps")
    p.add_argument("--checkpoint-every", type=steps, default=None, help="default 500")
    p.add_argument("--log-every", type=steps, default=None, help="default 10")
    p.add_argument(
        "--audio-every", type=number_in_range(int, 0, 10**9, "steps"), default=None,
        help="steps between audio examples (0: never; default 1000)",
    )  # fmt: skip
    p.add_argument("--cache-dir", type=Path, default=None, help="segment cache folder")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def _train_config(args: argparse.Namespace, last: Path) -> Any:
    from cloner.training import ClonerTrainConfig

    if args.config:
        base = ClonerTrainConfig.from_file(args.config).to_dict()
    elif args.resume:
        base = saved_train_config(last, "cloner")
    else:
        base = {}
    given = {
        "model": args.preset, "encoder": args.encoder, "steps": args.steps,
        "batch_size": args.batch_size, "lr": args.lr, "segment_seconds": args.segment_seconds,
        "embedding_weight": args.embedding_weight, "seed": args.seed,
        "checkpoint_every": args.checkpoint_every, "log_every": args.log_every,
        "audio_every": args.audio_every, "init_from": args.init_from,
    }  # fmt: skip
    base.update({k: v for k, v in given.items() if v is not None})
    if args.init_from is not None and Path(args.init_from).is_file():
        base["init_from"] = str(Path(args.init_from).resolve())
    if args.encoder is not None and Path(args.encoder).is_file():
        base["encoder"] = str(Path(args.encoder).resolve())  # --resume from anywhere
    if args.no_fxnorm:
        base["fxnorm"] = False
    return ClonerTrainConfig.from_dict(base)


def run(args: argparse.Namespace) -> int:
    """Train; returns the exit code."""
    require("tqdm", "train", "mixfx train-cloner")
    from cloner.training import ClonerTrainer, open_training_data, train

    last = check_run_folder(args)
    config = _train_config(args, last)

    def build(device: str) -> ClonerTrainer:
        data = open_training_data(args.data, config, "train", args.cache_dir)
        return ClonerTrainer(config, data, device=device)

    return run_training(args, NAME, config, build, train)
