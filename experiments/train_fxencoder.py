"""Train the audio-effects encoder: ``mixfx train-encoder`` (:mod:`mixfx.commands.train_encoder`).

    python -m experiments.train_fxencoder --data data/corpus --out runs/fxencoder/norm
    python -m experiments.train_fxencoder --data data/corpus --out runs/... --prob-schedule
    python -m experiments.train_fxencoder --data data/corpus --out runs/... --no-fxnorm
    python -m experiments.train_fxencoder ... --resume            # continue from OUT/last.pt
    torchrun --nproc_per_node=2 -m experiments.train_fxencoder ...  # several processes (DDP)

TensorBoard logs go to ``OUT/tb``.
"""

from __future__ import annotations

import sys

from mixfx.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-encoder", *sys.argv[1:]]))
