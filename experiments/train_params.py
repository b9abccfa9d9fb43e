"""Train the parameter controller: ``mixfx train-params`` (:mod:`mixfx.commands.train_params`).

    python -m experiments.train_params --data data/corpus --out runs/params/small \
        --encoder checkpoints/fxencoder-ps-aux/encoder-step5000.pt --preset small
    python -m experiments.train_params --data data/corpus --out runs/... --resume  # OUT/last.pt
    python -m experiments.train_params ... --param-weight 1 --feature-weight 0.1   # more terms
    torchrun --nproc_per_node=2 -m experiments.train_params ...                    # DDP

The encoder's embedding size must be the preset's ``embed_dim`` (256 for ``small``; override
with a ``--config`` file's ``model_overrides``). TensorBoard logs go to ``OUT/tb``.
"""

from __future__ import annotations

import sys

from mixfx.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-params", *sys.argv[1:]]))
