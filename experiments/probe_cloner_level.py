"""Does a cloner follow the reference's level? Signed loudness changes per stem and item.

    python -m experiments.probe_cloner_level pedalboard|fxdsp [LABEL=CHECKPOINT ...]

On the validation split of ``data/corpus`` (the items of ``mixfx eval-transfer``, 6-s segments,
4 styles per song, seed 0), for each cloner (default: the first shipped cloner's training checkpoint
and the full-chain fine-tune, ``runs/cloner-fullchain/last.pt``): how far the targets'
loudness moves from the inputs' (sd), how well the references' loudness predicts it
(correlation), and how the outputs follow (slope and offset of output − input on target −
input, mean output − target). Results in ``checkpoints/cloner-fullchain/README.md``.
"""

from __future__ import annotations

import sys

import numpy as np

import cloner
from cloner import evaluation as ev
from cloner.api import load_encoder_for, read_info
from experiments.probe_level_match import probe_items
from fxdsp.functional.loudness import loudness
from fxdsp.registry import STEMS

DEFAULT = {"first default": "checkpoints/cloner-default/last.pt",
           "fine-tune": "runs/cloner-fullchain/last.pt"}  # fmt: skip


def _lufs(x) -> np.ndarray:
    return loudness(x.double(), 44100).numpy()


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("pedalboard", "fxdsp"):
        raise SystemExit(__doc__)
    lib = argv[0]
    models = dict(a.split("=", 1) for a in argv[1:]) or DEFAULT
    items = probe_items("valid", lib)
    for name, path in models.items():
        run = ev.cloner_method(cloner.load(path), load_encoder_for(read_info(path), None))
        dt, do, dr = [], [], []
        for k, stem in enumerate(STEMS):
            x, r, t = items.inputs[:, k], items.references[:, k], items.targets[:, k]
            lx, lt, ly, lr = (_lufs(a) for a in (x, t, run(x, r, stem, 44100), r))
            ok = np.isfinite(lx) & np.isfinite(lt) & np.isfinite(ly) & np.isfinite(lr)
            dt += list((lt - lx)[ok])
            do += list((ly - lx)[ok])
            dr += list((lr - lx)[ok])
        dt, do, dr = (np.array(v) for v in (dt, do, dr))
        slope, offset = np.polyfit(dt, do, 1)
        print(
            f"{lib} {name}: target-input sd {dt.std():.2f} LU; corr(reference, target) "
            f"{np.corrcoef(dt, dr)[0, 1]:.2f}; output follows: slope {slope:.2f}, offset "
            f"{offset:+.2f} LU, corr {np.corrcoef(dt, do)[0, 1]:.2f}; mean output-target "
            f"{(do - dt).mean():+.2f} LU; mean |output-target| {np.abs(do - dt).mean():.2f}, "
            f"|input-target| {np.abs(dt).mean():.2f}, |reference-target| "
            f"{np.abs(dr - dt).mean():.2f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
