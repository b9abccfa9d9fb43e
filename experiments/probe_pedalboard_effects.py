"""Which of pedalboard's effects does a cloner render worst?

    python -m experiments.probe_pedalboard_effects SPLIT [CLONER ...] [--groups eq,reverb]
                                                   [--no-shipped]

The items of ``mixfx eval-transfer --split SPLIT --style-library pedalboard`` (6-s segments of
``data/corpus``, 4 styles per song, seed 0), but with one group of the style's effects left on
and the others at their neutral values: ``eq`` (the three filters), ``compressor``,
``stereo`` (width and balance), ``reverb``, ``gain``, and ``all`` (the full style, as in the
evaluation). For each group: mix MSS L/R of input unchanged and of each cloner (the shipped
one, then every CLONER checkpoint or name given), with the song-bootstrap interval of the change
against input unchanged, and the mix loudness error; then, per method, each stem's MSS L/R and
the mix's audio-feature errors (what moved: level, brightness, crest factor, width, balance,
Bark spectrum). ``--groups`` runs only these groups,
``--no-shipped`` leaves the shipped cloner out.
"""

from __future__ import annotations

import argparse
import sys

from cloner import evaluation as ev
from experiments.probe_level_match import _cell, probed_cloner
from fxdsp.registry import STEMS
from fxencoder.evaluation import load_segments

#: The mix's audio-feature errors printed per method (``mixfx eval-transfer``'s columns).
FEATURES = ("loudness_lu", "centroid_oct", "crest_db", "width", "balance_db", "bark_db")

#: Each group's controls and the values that switch it off (pedalboard's identities).
NEUTRAL: dict[str, dict[str, float]] = {
    "eq": {"low_shelf_db": 0.0, "peak_db": 0.0, "high_shelf_db": 0.0},
    "compressor": {"ratio": 1.0},
    "stereo": {"width": 1.0, "balance": 0.0},
    "reverb": {"wet_level": 0.0},
    "gain": {"gain_db": 0.0},
}


def items_with_only(segments: object, group: str, styles: int = 4) -> ev.TransferItems:
    """The pedalboard items with only ``group`` on (``"all"``: the full styles)."""
    off = {k: v for g, values in NEUTRAL.items() if g != group for k, v in values.items()}
    return ev.make_pedalboard_items(segments, styles, seed=0, fixed=off if group != "all" else None)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("split")
    parser.add_argument("cloners", nargs="*")
    parser.add_argument("--groups", default=",".join(("all", *NEUTRAL)))
    parser.add_argument("--no-shipped", action="store_true")
    args = parser.parse_args(argv)
    groups = args.groups.split(",")
    unknown = sorted(set(groups) - {"all", *NEUTRAL})
    if unknown:
        raise SystemExit(f"unknown groups {unknown}; the groups are all, {', '.join(NEUTRAL)}")
    methods = {} if args.no_shipped else {"cloner (shipped)": probed_cloner("default")}
    for path in args.cloners:
        methods[f"cloner {path}"] = probed_cloner(path)
    if not methods:
        raise SystemExit("nothing to probe: give a CLONER or leave out --no-shipped")
    segments = load_segments("data/corpus", args.split, seconds=6.0, sample_rate=44100, seed=0,
                             fxnorm=True)  # fmt: skip
    for group in groups:
        items = items_with_only(segments, group)
        res = ev.evaluate(items, methods, encoder=None, n_boot=1000, seed=0)
        for name, m in res["methods"].items():
            print(f"{args.split} only {group}: {name}: mix {_cell(m['mix']['mss_lr'])}; "
                  f"loudness error mix {m['mix']['loudness_lu']['mean']:.2f} LU",
                  flush=True)  # fmt: skip
            stems = ", ".join(f"{s} {m[s]['mss_lr']['mean']:.3f}" for s in STEMS)
            feats = ", ".join(f"{k} {m['mix'][k]['mean']:.3g}" for k in FEATURES)
            print(f"    stems MSS L/R: {stems}; mix feature errors: {feats}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
