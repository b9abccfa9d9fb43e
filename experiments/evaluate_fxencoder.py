"""Evaluate audio-effects encoders: ``mixfx eval-encoder`` (:mod:`mixfx.commands.eval_encoder`).

    python -m experiments.evaluate_fxencoder --data data/corpus --out out/eval \
        --encoder norm=runs/fxencoder/norm/last.pt --encoder ps=runs/fxencoder/ps/last.pt

Measures: :mod:`fxencoder.evaluation`. Writes ``OUT/results.json``, ``OUT/results.md`` and
``OUT/tsne_<condition>.png``.
"""

from __future__ import annotations

import sys

from mixfx.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval-encoder", *sys.argv[1:]]))
