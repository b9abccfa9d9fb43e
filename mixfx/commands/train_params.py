"""``mixfx train-params``: training of the parameter controller (parametric style transfer).

The loop, the step and the checkpoints are :mod:`cloner.parametric_training` (the loop itself
:func:`cloner.training.train`); this command parses the options, opens the data (the training
split, FX-normalized unless ``--no-fxnorm``), loads the frozen encoder, logs to TensorBoard
(``OUT/tb``: every loss term beside the input-unchanged terms, the parameter error, the learning
rate, throughput, stereo audio examples) and writes ``OUT/last.pt`` every ``--checkpoint-every``
steps. ``--resume`` continues ``OUT/last.pt`` with its saved settings (options given again
override them). Under ``torchrun`` every process trains on its own draws (DDP).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mixfx.commands.common import number_in_range, require
from mixfx.commands.training import check_run_folder, run_training, saved_train_config

__all__ = ["DESCRIPTION", "HELP", "NAME", "configure", "run"]

NAME = "train-params"
HELP = "train the parameter controller: one fxdsp chain per stem from encoder embeddings"
DESCRIPTION = (
    "Train the parameter controller on a dataset folder: from the frozen encoder's embeddings "
    "of an FX-normalized stem segment and of another track's stem through a random chain (and "
    "their audio features), predict the normalized parameters of one fxdsp chain, rendered on "
    "the segment and compared with the segment through the random chain. Loss: multi-scale "
    "spectral on L/R and M/S (+ --embedding-weight, --feature-weight, --param-weight)."
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``train-params`` to ``parser``."""
    p = parser
    p.add_argument("--data", metavar="DIR", type=Path, required=True, help="dataset folder")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="run folder")
    p.add_argument("--config", metavar="FILE", type=Path, help="a ParamTrainConfig JSON/YAML")
    p.add_argument(
        "--encoder", metavar="PATH", default=None,
        help="the frozen encoder: a checkpoint file or a shipped name (default: default)",
    )  # fmt: skip
    p.add_argument("--preset", default=None, help="controller preset: small (default), tiny")
    p.add_argument("--steps", type=number_in_range(int, 1, 10**9, "steps"), default=None)
    p.add_argument("--batch-size", type=number_in_range(int, 1, 4096, "batch size"), default=None)
    p.add_argument("--lr", type=number_in_range(float, 1e-8, 1.0, "learning rate"), default=None)
    p.add_argument(
        "--segment-seconds", type=number_in_range(float, 0.1, 60.0, "segment seconds"),
        default=None, help="training segment length (default: the preset's)",
    )  # fmt: skip
    weight = number_in_range(float, 0.0, 1e3, "loss weight")
    for flag, text in (
        ("--mss-weight", "each multi-scale spectral term, L/R and M/S (default 1)"),
        ("--embedding-weight", "1 - cos(encoder(output), encoder(target)) (default 0)"),
        ("--feature-weight", "the audio-feature distance to the target (default 0)"),
        ("--param-weight", "the distance to the drawn parameters (default 0)"),
    ):
        p.add_argument(flag, type=weight, default=None, help=f"weight of {text}")
    p.add_argument("--no-fxnorm", action="store_true", help="train on the data as it is")
    p.add_argument("--seed", type=number_in_range(int, 0, 2**31 - 1, "seed"), default=None)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    steps = number_in_range(int, 1, 10**9, "steps")
    p.add_argument("--checkpoint-every", type=steps, default=None, help="default 250")
    p.add_argument("--log-every", type=steps, default=None, help="default 10")
    p.add_argument(
        "--audio-every", type=number_in_range(int, 0, 10**9, "steps"), default=None,
        help="steps between audio examples (0: never; default 500)",
    )  # fmt: skip
    p.add_argument("--cache-dir", type=Path, default=None, help="segment cache folder")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def _train_config(args: argparse.Namespace, last: Path) -> Any:
    from cloner.parametric_training import ParamTrainConfig

    if args.config:
        base = ParamTrainConfig.from_file(args.config).to_dict()
    elif args.resume:
        base = saved_train_config(last, "controller")
    else:
        base = {}
    given = {
        "model": args.preset, "encoder": args.encoder, "steps": args.steps,
        "batch_size": args.batch_size, "lr": args.lr, "segment_seconds": args.segment_seconds,
        "mss_lr_weight": args.mss_weight, "mss_ms_weight": args.mss_weight,
        "embedding_weight": args.embedding_weight, "feature_weight": args.feature_weight,
        "param_weight": args.param_weight, "seed": args.seed,
        "checkpoint_every": args.checkpoint_every, "log_every": args.log_every,
        "audio_every": args.audio_every,
    }  # fmt: skip
    base.update({k: v for k, v in given.items() if v is not None})
    if args.encoder is not None and Path(args.encoder).is_file():
        base["encoder"] = str(Path(args.encoder).resolve())
    if args.no_fxnorm:
        base["fxnorm"] = False
    return ParamTrainConfig.from_dict(base)


def run(args: argparse.Namespace) -> int:
    """Train; returns the exit code."""
    require("tqdm", "train", "mixfx train-params")
    from cloner.parametric_training import ParamTrainer
    from cloner.training import open_training_data, train

    last = check_run_folder(args)
    config = _train_config(args, last)

    def build(device: str) -> ParamTrainer:
        data = open_training_data(args.data, config, "train", args.cache_dir)  # type: ignore[arg-type]
        return ParamTrainer(config, data, device=device)

    return run_training(args, NAME, config, build, train)  # type: ignore[arg-type]
