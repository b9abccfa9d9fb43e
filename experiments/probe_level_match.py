"""Would matching each stem's loudness to the reference's help the transfer?

    python -m experiments.probe_level_match valid pedalboard|fxdsp [CLONER]

On a split of ``data/corpus`` (the items of ``mixfx eval-transfer``: 6-s segments, 4 styles per
song, seed 0) with a cloner (CLONER, a checkpoint or shipped name; default
:data:`FIRST_DEFAULT`, the model the README's figures are about): mix and stem MSS L/R of
input unchanged, the input loudness-matched to the reference stem by stem (BS.1770, at most
±24 dB), the cloner, and the cloner's output loudness-matched, the input and the cloner's
output at the target's loudness (oracle bounds of a level fix) and the cloner's output raised
by 2 and 4 dB, each with its song-bootstrap interval against input unchanged, and the mix and
stem loudness errors. Figures quoted in the README's independent checks.
"""

from __future__ import annotations

import sys

import torch

import cloner
import fxdsp
from cloner import evaluation as ev
from cloner.api import load_encoder_for, read_info
from fxdsp.functional.loudness import loudness
from fxencoder.evaluation import load_segments


def match_loudness(y: torch.Tensor, r: torch.Tensor, fs: int, limit: float = 24.0) -> torch.Tensor:
    """``y`` scaled per item to ``r``'s integrated loudness (silent items left as they are)."""
    d = loudness(r.double(), fs) - loudness(y.double(), fs)
    d = torch.where(torch.isfinite(d), d, torch.zeros_like(d)).clamp(-limit, limit)
    return y * (10 ** (d / 20)).float()[:, None, None]


#: The first shipped cloner (1400 steps on the reference chain), whose gap on pedalboard's
#: styles these probes studied; the shipped ``"default"`` is now its fine-tune on a second
#: effects design (``checkpoints/cloner-dasp/``).
FIRST_DEFAULT = "checkpoints/cloner-default/last.pt"


def probe_args(argv: list[str], doc: str | None) -> tuple[str, str, str]:
    """``(split, library, cloner)`` from a probe's arguments ``SPLIT pedalboard|fxdsp
    [CLONER]`` (else its usage)."""
    if len(argv) not in (2, 3) or argv[1] not in ("pedalboard", "fxdsp"):
        raise SystemExit(doc)
    return argv[0], argv[1], argv[2] if len(argv) == 3 else FIRST_DEFAULT


def probed_cloner(name_or_path: str = FIRST_DEFAULT) -> ev.Method:
    """A cloner as an evaluation method, conditioned by its own encoder."""
    return ev.cloner_method(
        cloner.load(name_or_path), load_encoder_for(read_info(name_or_path), None)
    )


def probe_items(split: str, lib: str) -> ev.TransferItems:
    """The items of ``mixfx eval-transfer --split SPLIT --style-library LIB`` on
    ``data/corpus`` (6-s FX-normalized segments, 4 styles per song, seed 0)."""
    seg = load_segments("data/corpus", split, seconds=6.0, sample_rate=44100, seed=0,
                        fxnorm=True)  # fmt: skip
    if lib == "pedalboard":
        return ev.make_pedalboard_items(seg, 4, seed=0)
    chain = fxdsp.ChainConfig().replace(sample_rate=44100.0)
    return ev.make_items(seg, 4, seed=0, config=chain, device="cpu")


def _cell(stats: dict) -> str:
    change = stats.get("change")
    if change is None:
        return f"{stats['mean']:.3f}"
    return (f"{stats['mean']:.3f} ({100 * change:+.1f} % [{100 * stats['change_low']:+.1f}, "
            f"{100 * stats['change_high']:+.1f}])")  # fmt: skip


def main(argv: list[str]) -> None:
    split, lib, path = probe_args(argv, __doc__)
    items = probe_items(split, lib)
    run = probed_cloner(path)
    cache: dict[str, torch.Tensor] = {}

    def cloned(x: torch.Tensor, r: torch.Tensor, stem: str, fs: int) -> torch.Tensor:
        if stem not in cache:
            cache[stem] = run(x, r, stem, fs)
        return cache[stem]

    def target(stem: str) -> torch.Tensor:
        return items.targets[:, ev.STEMS.index(stem)]

    methods = {
        "input loudness-matched": lambda x, r, s, fs: match_loudness(x, r, fs),
        "cloner": cloned,
        "cloner loudness-matched": lambda x, r, s, fs: match_loudness(cloned(x, r, s, fs), r, fs),
        # Bounds, not methods: the level taken from the target itself.
        "input at the target's loudness (oracle)": lambda x, r, s, fs: match_loudness(
            x, target(s), fs
        ),
        "cloner at the target's loudness (oracle)": lambda x, r, s, fs: match_loudness(
            cloned(x, r, s, fs), target(s), fs
        ),
    }
    for db in (2.0, 4.0):
        methods[f"cloner {db:+.0f} dB"] = lambda x, r, s, fs, g=10 ** (db / 20): (
            cloned(x, r, s, fs) * g
        )
    res = ev.evaluate(items, methods, encoder=None, n_boot=1000, seed=0)
    for name, m in res["methods"].items():
        print(f"{split} {lib} {name}: mix {_cell(m['mix']['mss_lr'])}; stems "
              f"{_cell(m['stem_mean']['mss_lr'])}; loudness error mix "
              f"{m['mix']['loudness_lu']['mean']:.2f} LU, stems "
              f"{m['stem_mean']['loudness_lu']['mean']:.2f} LU")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
