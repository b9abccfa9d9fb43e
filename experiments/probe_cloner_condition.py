"""Is the reference's embedding what holds the cloner back? A cloner (CLONER; default the first
shipped one, :data:`~experiments.probe_level_match.FIRST_DEFAULT`) conditioned on
the reference (as always) and on the target itself (an oracle: the embedding of the very
audio it should produce, content and all).

    python -m experiments.probe_cloner_condition valid pedalboard|fxdsp [CLONER]

On a split of ``data/corpus`` (the items of ``mixfx eval-transfer``: 6-s segments, 4 styles
per song, seed 0): mix and stem MSS L/R of each, with and without the output set to the target's
loudness, with the song-bootstrap interval of the change against input unchanged. If the oracle
condition gains little, the encoder's view of the style is not the limit: the network is.
"""

from __future__ import annotations

import sys

import torch

from cloner import evaluation as ev
from experiments.probe_level_match import (
    _cell,
    match_loudness,
    probe_args,
    probe_items,
    probed_cloner,
)


def main(argv: list[str]) -> None:
    split, lib, path = probe_args(argv, __doc__)
    run = probed_cloner(path)
    items = probe_items(split, lib)

    def target(stem: str) -> torch.Tensor:
        return items.targets[:, ev.STEMS.index(stem)]

    def oracle(x: torch.Tensor, r: torch.Tensor, stem: str, fs: int) -> torch.Tensor:
        return run(x, target(stem), stem, fs)

    methods = {
        "cloner": run,
        "cloner at the target's loudness": lambda x, r, s, fs: match_loudness(
            run(x, r, s, fs), target(s), fs
        ),
        "cloner on the target's embedding (oracle)": oracle,
        "cloner on the target's embedding, at its loudness (oracle)": lambda x, r, s, fs: (
            match_loudness(oracle(x, r, s, fs), target(s), fs)
        ),
    }
    res = ev.evaluate(items, methods, encoder=None, n_boot=1000, seed=0)
    for name, m in res["methods"].items():
        print(f"{split} {lib} {name}: mix {_cell(m['mix']['mss_lr'])}; stems "
              f"{_cell(m['stem_mean']['mss_lr'])}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
