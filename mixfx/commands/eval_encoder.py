"""``mixfx eval-encoder``: the paper's four conditions on held-out songs, encoders and baselines.

The measures are :mod:`fxencoder.evaluation` (definitions there); this command parses the
options, loads the encoders and the songs, runs the evaluation with a progress bar and writes
``OUT/results.json`` (everything), ``OUT/results.md`` (the table, the paper's Table 1 beside it)
and one t-SNE plot per condition, ``OUT/tsne_<condition>.png`` (the first encoder's embeddings
of the shared-style items, or the effect features' when no encoder is given; colour = style,
marker = stem type; the single-effect conditions have one panel per effect). With
``--style-library pedalboard`` (or ``both``) the styles are also (or only) made by pedalboard's
effects (:mod:`fxencoder.pedalboard_styles`): full-chain retrieval in both scopes, a section of
``results.md`` and ``"pedalboard_styles"`` in ``results.json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mixfx.commands.common import (
    check_device,
    json_default,
    labelled,
    number_in_range,
    parse_labelled,
    require,
)

__all__ = ["DESCRIPTION", "HELP", "NAME", "configure", "parse_encoder", "run"]

NAME = "eval-encoder"
HELP = "evaluate audio-effects encoders: DCIMIG, DCI explicitness, style retrieval, t-SNE"
DESCRIPTION = (
    "Evaluate encoders on held-out songs in the paper's four conditions (multitrack / single "
    "stem x full chain / single effect): DCIMIG and DCI random-forest explicitness with the "
    "drawn effect parameters as factors, top-1 style retrieval across songs with a "
    "song-bootstrap 95 % interval, for each --encoder, the content and effect-feature "
    "baselines and the factor oracle. Writes OUT/results.json, OUT/results.md and t-SNE plots. "
    "--style-library pedalboard (or both) draws the styles from pedalboard's effects instead "
    "(or as well): full-chain retrieval on effects the encoder never trained on."
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``eval-encoder`` to ``parser``."""
    p = parser
    p.add_argument(
        "--encoder", metavar="[LABEL=]NAME_OR_PATH", action="append", default=[],
        help="an encoder checkpoint or shipped name, optionally labelled (repeatable)",
    )  # fmt: skip
    p.add_argument("--data", metavar="DIR", type=Path, required=True, help="dataset folder")
    p.add_argument("--split", default="test", help="split of held-out songs (default: test)")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="output folder")
    p.add_argument(
        "--songs", type=number_in_range(int, 2, 100000, "songs"), default=None,
        help="at most this many songs (default: all)",
    )  # fmt: skip
    p.add_argument(
        "--styles", type=number_in_range(int, 2, 1000, "styles"), default=8,
        help="shared styles per stem type for retrieval (default 8; chance 1/styles)",
    )  # fmt: skip
    p.add_argument(
        "--draws", type=number_in_range(int, 1, 10000, "draws"), default=16,
        help="independent draws per song for DCIMIG and DCI (default 16)",
    )  # fmt: skip
    p.add_argument(
        "--seconds", type=number_in_range(float, 0.05, 60.0, "segment length in seconds"),
        default=None, help="segment length (default: the first encoder's segment_seconds)",
    )  # fmt: skip
    p.add_argument("--seed", type=number_in_range(int, 0, 2**31 - 1, "seed"), default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument(
        "--bootstrap", type=number_in_range(int, 1, 10**6, "bootstrap replicates"), default=1000
    )
    p.add_argument("--bins", type=number_in_range(int, 2, 1000, "bins"), default=10,
                   help="DCIMIG quantile bins (default 10)")  # fmt: skip
    p.add_argument("--trees", type=number_in_range(int, 1, 10000, "trees"), default=100,
                   help="trees per DCI random forest (default 100)")  # fmt: skip
    p.add_argument("--jobs", type=number_in_range(int, -1, 1024, "jobs"), default=1,
                   help="processes of the random forests (-1: all cores; default 1)")  # fmt: skip
    p.add_argument("--batch", type=number_in_range(int, 1, 100000, "batch"), default=32)
    p.add_argument("--chain", metavar="FILE", type=Path, default=None,
                   help="a ChainConfig JSON/YAML file (default: the reference chain)")  # fmt: skip
    p.add_argument("--fxnorm", action="store_true",
                   help="FX-normalize the stems first (the shipped corpus statistics)")  # fmt: skip
    p.add_argument(
        "--style-library", choices=("fxdsp", "pedalboard", "both"), default="fxdsp",
        help="who makes the styles: fxdsp's chains (the paper's four conditions, default), "
        "pedalboard's effects (full-chain retrieval only: a check on effects the encoder never "
        "trained on; needs pedalboard), or both",
    )  # fmt: skip
    p.add_argument("--cache-dir", type=Path, default=None, help="decode cache folder")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def parse_encoder(text: str) -> tuple[str, str]:
    """``"label=path"`` → ``(label, path)`` (:func:`mixfx.commands.common.parse_labelled`)."""
    return parse_labelled(text, "--encoder")


def run(args: argparse.Namespace) -> int:
    """Evaluate; returns the exit code."""
    tqdm = require("tqdm", "train", "mixfx eval-encoder").tqdm
    require("sklearn", "train", "mixfx eval-encoder")
    require("matplotlib", "plot", "mixfx eval-encoder")

    import fxdsp
    import fxencoder
    from fxdsp.io import atomic_write_text
    from fxencoder import evaluation as ev

    check_device(args.device)
    if args.style_library != "fxdsp":  # before hours of fxdsp conditions, not after
        require("pedalboard", "bench", "mixfx eval-encoder --style-library pedalboard")
    specs = labelled(args.encoder, "--encoder")
    labels = [label for label, _ in specs]
    encoders = {label: fxencoder.load(path, device=args.device) for label, path in specs}
    first = next(iter(encoders.values()), None)
    sample_rate = first.config.sample_rate if first is not None else 44100
    seconds = args.seconds or (first.config.segment_seconds if first is not None else 3.0)
    chain = fxdsp.ChainConfig.from_file(args.chain) if args.chain else fxdsp.ChainConfig()
    chain = chain.replace(sample_rate=float(sample_rate))
    embedders = ev.default_embedders(encoders)

    segments = ev.load_segments(
        args.data, args.split, seconds=seconds, songs=args.songs, sample_rate=sample_rate,
        seed=args.seed, cache_dir=args.cache_dir, fxnorm=args.fxnorm,
    )  # fmt: skip
    results: dict[str, Any] = {"conditions": {}, "embeddings": list(embedders)}
    sets: dict[str, Any] = {}
    if args.style_library in ("fxdsp", "both"):
        bar = tqdm(total=2 * len(ev.SETTINGS), desc="eval-encoder", unit="condition",
                   disable=args.no_progress)  # fmt: skip

        def step(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(1)

        try:
            results, sets = ev.evaluate(
                segments, embedders, styles=args.styles, draws=args.draws, seed=args.seed,
                config=chain, device=args.device, n_bins=args.bins, trees=args.trees,
                jobs=args.jobs, bootstrap=args.bootstrap, batch=args.batch, on_step=step,
            )  # fmt: skip
        finally:
            bar.close()
    foreign = None
    if args.style_library in ("pedalboard", "both"):
        from fxencoder import pedalboard_styles

        n_items = len(segments.songs) * len(ev.STEMS) * args.styles
        with tqdm(total=n_items, desc="pedalboard styles", unit="item",
                  disable=args.no_progress) as pbar:  # fmt: skip
            foreign = pedalboard_styles.pedalboard_retrieval(
                segments, embedders, args.styles, seed=args.seed, bootstrap=args.bootstrap,
                device=args.device, batch=args.batch, progress=pbar.update,
            )  # fmt: skip
    plotted = labels[0] if labels else "effect_features"
    results = {
        "format": "mixfx.eval-encoder/1",
        "setup": {
            "data": str(args.data),
            "split": args.split,
            "songs": list(segments.songs),
            "offsets": list(segments.offsets),
            "seconds": segments.seconds,
            "sample_rate": segments.sample_rate,
            "styles": args.styles,
            "draws": args.draws,
            "seed": args.seed,
            "n_bins": args.bins,
            "trees": args.trees,
            "bootstrap": args.bootstrap,
            "fxnorm": args.fxnorm,
            "device": args.device,
            "chain": chain.to_dict(),
            "tsne_embedding": plotted,
            "encoders": {
                label: {
                    "source": path,
                    "config": asdict(encoders[label].config),
                    "parameters": encoders[label].num_parameters(),
                }
                for label, path in specs
            },
        },
        "definitions": ev.CONDITION_DEFINITIONS,
        **results,
        "pedalboard_styles": foreign,
        "paper_table1": {
            k: {c: list(v) for c, v in row.items()} for k, row in ev.PAPER_TABLE1.items()
        },
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1, default=json_default))
    markdown = ev.results_markdown(results) if results["conditions"] else "# Encoder evaluation\n"
    if foreign is not None:
        markdown += "\n" + pedalboard_styles.results_markdown(foreign)
    atomic_write_text(out / "results.md", markdown)
    pngs = []
    for condition in results["conditions"]:
        scope, _, setting = condition.partition("_")
        names = ["full"] if setting == "full" else list(ev.EFFECTS)
        panels = [(n, sets[f"{scope}_{n}"]["styles"]) for n in names]
        path = out / f"tsne_{condition}.png"
        _tsne_png(panels, plotted, f"{condition}: t-SNE of {plotted}", path, args.seed)
        pngs.append(path.name)
    table = results["conditions"]
    summary = ", ".join(f"{c} {table[c]['embeddings'][plotted]['retrieval']:.2f}" for c in table)
    if foreign is not None:
        summary += (", " if summary else "") + ", ".join(
            f"pedalboard {c} {r[plotted]['retrieval']:.2f}"
            for c, r in foreign["conditions"].items()
        )  # fmt: skip
    print(f"mixfx eval-encoder: {len(segments.songs)} songs; retrieval of {plotted}: {summary}")
    print(f"mixfx eval-encoder: wrote {out / 'results.json'}, {', '.join(['results.md', *pngs])}")
    return 0


def _tsne_png(panels: list[tuple[str, Any]], name: str, title: str, path: Path, seed: int) -> None:
    """A t-SNE scatter per panel: colour = style, marker = stem type (multitrack: one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D
    from sklearn.manifold import TSNE

    from fxdsp.io import atomic_write
    from fxdsp.registry import STEMS

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
    markers = ("o", "s", "^", "D")
    n_styles = max(int(items.style.max()) + 1 for _, items in panels)
    cmap = plt.get_cmap("tab10" if n_styles <= 10 else "tab20")
    n_colours = 10 if n_styles <= 10 else 20
    for ax, (label, items) in zip(axes.flat, panels, strict=False):
        emb = items.embeddings[name]
        n = len(emb)
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
        method = "exact" if n <= 1000 else "barnes_hut"  # exact is much faster on small sets
        tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, method=method)
        xy = tsne.fit_transform(emb)
        for s in np.unique(items.stem):
            sel = items.stem == s
            ax.scatter(
                xy[sel, 0], xy[sel, 1], c=[cmap(int(k) % n_colours) for k in items.style[sel]],
                marker=markers[int(s) % 4] if s >= 0 else "o", s=18, linewidths=0,
            )  # fmt: skip
        ax.set_title(label)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    stems_seen = sorted({int(s) for _, items in panels for s in np.unique(items.stem)})
    if stems_seen != [-1]:
        handles = [Line2D([], [], marker=markers[s], linestyle="", color="0.3", label=STEMS[s])
                   for s in stems_seen]  # fmt: skip
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title + " (colour: style)")
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
