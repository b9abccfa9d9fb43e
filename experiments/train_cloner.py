"""Train the style-transfer network: ``mixfx train-cloner`` (:mod:`mixfx.commands.train_cloner`).

    python -m experiments.train_cloner --data data/corpus --out runs/cloner/small \
        --encoder checkpoints/fxencoder-ps-aux/last.pt --preset small
    python -m experiments.train_cloner --data data/corpus --out runs/... --resume  # OUT/last.pt
    python -m experiments.train_cloner ... --embedding-weight 0.1   # + the embedding loss
    torchrun --nproc_per_node=2 -m experiments.train_cloner ...     # several processes (DDP)

The encoder's embedding size must be the preset's ``cond_dim`` (256 for ``small``; override
with a ``--config`` file's ``model_overrides``). TensorBoard logs go to ``OUT/tb``.
"""

from __future__ import annotations

import sys

from mixfx.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-cloner", *sys.argv[1:]]))
