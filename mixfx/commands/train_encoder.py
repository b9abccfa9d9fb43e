"""``mixfx train-encoder``: contrastive training of the audio-effects encoder.

The loop, the step and the checkpoints are :mod:`fxencoder.training`; this command parses the
options, opens the data (training split, and a held-out probe from the validation split), logs
to TensorBoard (``OUT/tb``: losses, learning rate, similarities, per-effect scores and
probabilities, throughput, the probe's style retrieval, example audio and the probe's
embeddings in the projector) and writes ``OUT/last.pt`` every ``--checkpoint-every`` steps.
Under ``torchrun`` every process trains on its own draws (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mixfx.commands.common import number_in_range, require
from mixfx.commands.training import check_run_folder, run_training

__all__ = ["DESCRIPTION", "HELP", "NAME", "configure", "run"]

NAME = "train-encoder"
HELP = "train the audio-effects encoder (contrastive; --prob-schedule, --no-fxnorm, --resume)"
DESCRIPTION = (
    "Train the audio-effects encoder on a dataset folder (the corpus, MUSDB18-HQ, a pack). "
    "Default: FX-normalized contents (the paper's Φnorm); --no-fxnorm is Φ∅, --prob-schedule "
    "Φp.s.; --aux-weight adds the auxiliary parameter-regression head."
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``train-encoder`` to ``parser``."""
    p = parser
    p.add_argument("--data", metavar="DIR", type=Path, required=True, help="dataset folder")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="run folder")
    p.add_argument("--config", metavar="FILE", type=Path, help="a TrainConfig JSON/YAML file")
    p.add_argument("--preset", default=None, help="model preset: small (default), paper, tiny")
    p.add_argument("--steps", type=number_in_range(int, 1, 10**9, "steps"), default=None)
    p.add_argument("--contents", type=number_in_range(int, 2, 1024, "contents"), default=None)
    p.add_argument("--draws", type=number_in_range(int, 1, 4096, "draws"), default=None)
    p.add_argument("--lr", type=number_in_range(float, 1e-8, 1.0, "learning rate"), default=None)
    p.add_argument(
        "--temperature", type=number_in_range(float, 1e-3, 10.0, "temperature"), default=None
    )
    p.add_argument(
        "--aux-weight", type=number_in_range(float, 0.0, 1e3, "aux weight"), default=None,
        help="weight of the auxiliary parameter loss (0: no auxiliary head)",
    )  # fmt: skip
    p.add_argument("--no-fxnorm", action="store_true", help="Φ∅: contents not FX-normalized")
    p.add_argument("--prob-schedule", action="store_true", help="Φp.s.: schedule probabilities")
    p.add_argument(
        "--premix", type=number_in_range(float, 0.0, 1.0, "premix probability"), default=None,
        help="probability that a content first gets a pre-mix of its own (robustness to the "
        "stems' own mix; default 0)",
    )  # fmt: skip
    p.add_argument(
        "--mild", type=number_in_range(float, 0.0, 1.0, "mild probability"), default=None,
        help="probability that a step draws mild styles (fxencoder.training.MILD_CHAIN) instead "
        "of the reference chain's (default 0)",
    )  # fmt: skip
    p.add_argument(
        "--dasp", type=number_in_range(float, 0.0, 1.0, "dasp probability"), default=None,
        help="probability that a step draws its chains from the second effects design "
        "(fxdata.dasp_chain: dasp-pytorch's processors; default 0)",
    )  # fmt: skip
    p.add_argument(
        "--init-from", default=None, metavar="NAME_OR_PATH",
        help="start from this encoder's weights (a shipped name or a file; a fine-tune)",
    )  # fmt: skip
    p.add_argument("--seed", type=number_in_range(int, 0, 2**31 - 1, "seed"), default=None)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--checkpoint-every", type=number_in_range(int, 1, 10**9, "steps"), default=500)
    p.add_argument("--log-every", type=number_in_range(int, 1, 10**9, "steps"), default=10)
    p.add_argument(
        "--eval-every", type=number_in_range(int, 0, 10**9, "steps"), default=250,
        help="steps between probe evaluations (0: never)",
    )  # fmt: skip
    p.add_argument("--audio-every", type=number_in_range(int, 0, 10**9, "steps"), default=1000)
    p.add_argument("--probe-split", default="valid", help="held-out split of the probe")
    p.add_argument("--probe-songs", type=number_in_range(int, 2, 1000, "songs"), default=6)
    p.add_argument("--probe-styles", type=number_in_range(int, 2, 1000, "styles"), default=16)
    p.add_argument("--cache-dir", type=Path, default=None, help="segment cache folder")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def _train_config(args: argparse.Namespace) -> Any:
    from fxencoder.training import TrainConfig

    base = TrainConfig.from_file(args.config).to_dict() if args.config else {}
    given = {
        "model": args.preset, "steps": args.steps, "contents": args.contents,
        "draws": args.draws, "lr": args.lr, "temperature": args.temperature,
        "aux_weight": args.aux_weight, "seed": args.seed, "premix": args.premix,
        "mild": args.mild, "dasp": args.dasp, "init_from": args.init_from,
    }  # fmt: skip
    base.update({k: v for k, v in given.items() if v is not None})
    if args.no_fxnorm:
        base["fxnorm"] = False
    if args.prob_schedule:
        base["prob_schedule"] = True
    return TrainConfig.from_dict(base)


def run(args: argparse.Namespace) -> int:
    """Train; returns the exit code."""
    require("tqdm", "train", "mixfx train-encoder")
    from fxencoder.training import EncoderTrainer, open_training_data, train

    config = _train_config(args)
    check_run_folder(args)

    def build(device: str) -> EncoderTrainer:
        data = open_training_data(args.data, config, "train", args.cache_dir)
        return EncoderTrainer(config, data, device=device)

    def callbacks(trainer: EncoderTrainer, writer: Any, device: str) -> list[Any]:
        hooks = []
        if args.eval_every:
            from fxencoder.probe import ProbeSuite

            held = open_training_data(args.data, config, args.probe_split, args.cache_dir)
            probe = ProbeSuite(
                held, styles=args.probe_styles, songs=args.probe_songs, config=trainer.chain,
                device=device,
            )  # fmt: skip
            hooks.append(
                _probe_callback(probe, writer, args.eval_every, args.out, trainer.step_count)
            )
        if writer is not None and args.audio_every:
            hooks.append(_audio_callback(writer, args.audio_every, config.model_config()))
        return hooks

    return run_training(
        args, NAME, config, build, train, callbacks=callbacks,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every,
    )  # fmt: skip


def _probe_callback(probe: Any, writer: Any, every: int, out: Path, start: int = 0) -> Any:
    """Probe every ``every`` steps into ``out/probe.json``; a resumed run (``start`` > 0)
    keeps the entries of the steps it already made (up to ``start``) and extends them."""
    from fxdsp.io import atomic_write_text

    history: list[dict[str, float]] = []
    path = out / "probe.json"
    if start and path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = []
        if isinstance(old, list):
            history = [h for h in old if isinstance(h, dict) and h.get("step", start + 1) <= start]

    def callback(trainer: Any, logs: dict[str, float]) -> None:
        step = trainer.step_count
        if step % every and step != trainer.config.steps:
            return
        scores = probe.retrieval(trainer.model)
        history.append({"step": step, **scores})
        atomic_write_text(path, json.dumps(history, indent=1))
        if writer is not None:
            for name, value in scores.items():
                writer.add_scalar(f"valid_retrieval/{name}", value, step)
            if step == trainer.config.steps or step % (every * 4) == 0:
                full = probe.probes["full"]
                emb = full.embeddings(trainer.model)
                meta = [
                    [full.stems[i], str(int(full.style_ids[i])), str(int(full.song_ids[i]))]
                    for i in range(len(full))
                ]
                writer.add_embedding(
                    emb, metadata=meta, metadata_header=["stem", "style", "song"],
                    global_step=step, tag="probe",
                )  # fmt: skip

    return callback


def _audio_callback(writer: Any, every: int, model_config: Any) -> Any:
    def callback(trainer: Any, logs: dict[str, float]) -> None:
        if trainer.step_count % every:
            return
        batch = trainer.make_batch()
        views = batch["views"]
        for k in range(min(3, views.shape[0])):
            writer.add_audio(
                f"views/{k}", views[k].mean(0).clamp(-1, 1).cpu(), trainer.step_count,
                sample_rate=model_config.sample_rate,
            )  # fmt: skip

    return callback
