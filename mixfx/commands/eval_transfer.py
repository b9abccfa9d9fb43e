"""``mixfx eval-transfer``: style transfer on held-out songs against the naive baselines.

The measures are :mod:`cloner.evaluation` (definitions there); this command parses the options,
loads the cloners (each with the encoder it was trained with, or ``--encoder``), the songs and
optionally a Demucs separator, runs the evaluation with a progress bar and writes
``OUT/results.json`` (everything, per item too), ``OUT/results.md`` (the tables, the paper's
Table 2 beside them), ``OUT/spectra.png`` (third-octave spectra of input, reference, each
method's output and the target for a few items) and those items as WAV files under
``OUT/examples/``.

With ``--separator-weights`` the evaluation is also run on the *mixture path*: each item's
input stems are summed to a mix, separated by Demucs, and every method converts the separated
stems (``results.md``'s second part; the targets stay the true stems through the chains).

With ``--params PATH`` (a parameter-controller checkpoint, :mod:`cloner.parametric`) the table
gains the parametric rows: the controller's prediction alone, prediction + ``--params-refine``
steps of refinement, and refinement from the neutral chain; ``results.md`` ends with the
parameter recovery on the drawn styles (:mod:`cloner.parametric_eval`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mixfx.commands.common import (
    CLIError,
    check_device,
    json_default,
    labelled,
    number_in_range,
    require,
)

__all__ = ["DESCRIPTION", "HELP", "NAME", "configure", "run"]

NAME = "eval-transfer"
HELP = "evaluate style transfer on held-out songs: MSS loss, embedding distances, features"
DESCRIPTION = (
    "Evaluate style-transfer methods on held-out songs with drawn target styles (reference: "
    "another song's stems through the style's chains; target: the input through them): "
    "multi-scale spectral loss on L/R and M/S, embedding distances, audio-feature errors, per "
    "stem and for the mix, for input unchanged, the naive match EQ and each --cloner, with "
    "song-bootstrap 95 %% intervals. Writes OUT/results.json, OUT/results.md, OUT/spectra.png "
    "and example WAVs."
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``eval-transfer`` to ``parser``."""
    p = parser
    p.add_argument(
        "--cloner", metavar="[LABEL=]NAME_OR_PATH", action="append", default=[],
        help="a cloner checkpoint or shipped name, optionally labelled (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--encoder", metavar="NAME_OR_PATH", default=None,
        help="the encoder of the cloners and of the embedding distances (default: the one the "
        "first cloner was trained with; 'default' is the shipped one)",
    )  # fmt: skip
    p.add_argument("--data", metavar="DIR", type=Path, required=True, help="dataset folder")
    p.add_argument("--split", default="test", help="split of held-out songs (default: test)")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="output folder")
    p.add_argument(
        "--songs", type=number_in_range(int, 2, 100000, "songs"), default=None,
        help="at most this many songs (default: all)",
    )  # fmt: skip
    p.add_argument(
        "--styles", type=number_in_range(int, 1, 1000, "styles"), default=4,
        help="target styles per song (default 4)",
    )  # fmt: skip
    p.add_argument(
        "--seconds", type=number_in_range(float, 0.5, 60.0, "segment length in seconds"),
        default=6.0, help="segment length (default 6)",
    )  # fmt: skip
    p.add_argument("--seed", type=number_in_range(int, 0, 2**31 - 1, "seed"), default=0)
    p.add_argument(
        "--bootstrap", type=number_in_range(int, 10, 100000, "bootstrap replicates"),
        default=1000, help="song-bootstrap replicates (default 1000)",
    )  # fmt: skip
    p.add_argument(
        "--chain", metavar="FILE", default=None,
        help="a chain config (JSON/YAML, fxdsp.ChainConfig) for the styles (default: the "
        "reference chain)",
    )  # fmt: skip
    p.add_argument("--no-match-eq", action="store_true", help="leave out the match-EQ baseline")
    p.add_argument(
        "--params", metavar="[LABEL=]PATH", action="append", default=[],
        help="a parameter-controller checkpoint (parametric transfer), optionally labelled "
        "(repeatable): rows for its prediction and prediction + refinement, one row of "
        "refinement from the neutral chain, and a parameter-recovery table",
    )  # fmt: skip
    p.add_argument(
        "--params-refine", type=number_in_range(int, 0, 10000, "refinement steps"), default=20,
        help="refinement steps of the parametric rows (default 20; 0: the prediction alone)",
    )  # fmt: skip
    p.add_argument(
        "--params-lr", type=number_in_range(float, 1e-6, 1.0, "refinement learning rate"),
        default=0.05, help="the refinement's learning rate (default 0.05)",
    )  # fmt: skip
    p.add_argument(
        "--separator-weights", metavar="PATH", default=None,
        help="a local Demucs checkpoint: also evaluate the mixture path through separation",
    )  # fmt: skip
    p.add_argument("--separator", default="htdemucs", help="the Demucs model name (default)")
    p.add_argument(
        "--examples", type=number_in_range(int, 0, 100, "examples"), default=3,
        help="items plotted and written as WAV files (default 3)",
    )  # fmt: skip
    p.add_argument(
        "--style-library", choices=("fxdsp", "pedalboard"), default="fxdsp",
        help="who makes the target styles: fxdsp's reference chain (default) or pedalboard's "
        "effects (fxencoder.pedalboard_styles: a check on effects no model trained on; no "
        "parameter-recovery table, needs pedalboard)",
    )  # fmt: skip
    p.add_argument("--cache-dir", metavar="DIR", default=None, help="fxdata's decode cache")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Evaluate; returns the exit code."""
    tqdm = require("tqdm", "train", "mixfx eval-transfer").tqdm
    require("matplotlib", "plot", "mixfx eval-transfer")
    sf = require("soundfile", "io", "mixfx eval-transfer")

    import fxencoder
    from cloner import evaluation as ev
    from cloner.api import load_encoder_for, load_with_info
    from fxdsp.io import atomic_write, atomic_write_text
    from fxencoder.evaluation import load_segments

    check_device(args.device)
    if args.chain and args.style_library == "pedalboard":
        raise CLIError(
            "--chain sets fxdsp's chain for the styles, and --style-library pedalboard draws "
            "them from pedalboard's effects instead: give one of the two"
        )
    specs = labelled(args.cloner, "--cloner")
    labels = [label for label, _ in specs]
    loaded = {label: load_with_info(path, device=args.device) for label, path in specs}
    models = {label: model for label, (model, _) in loaded.items()}
    infos = {label: info for label, (_, info) in loaded.items()}
    controllers, controller_encoders = _load_controllers(args)
    if specs:
        encoder = load_encoder_for(infos[labels[0]], args.encoder, device=args.device)
    elif controllers:
        encoder = next(iter(controller_encoders.values()))
    elif args.encoder:
        encoder = fxencoder.load(args.encoder, device=args.device)
    else:
        encoder = None
    rates = {m.config.sample_rate for m in [*models.values(), *controllers.values()]}
    if len(rates) > 1:
        raise CLIError(f"--cloner: the cloners run at different rates {sorted(rates)}")
    sample_rate = rates.pop() if rates else 44100
    methods: dict[str, ev.Method] = {}
    if not args.no_match_eq:
        methods[ev.MATCH_EQ] = ev.match_eq_method
    for label, model in models.items():
        enc = load_encoder_for(infos[label], args.encoder, device=args.device)
        methods[f"cloner {label}"] = ev.cloner_method(model, enc)
    recorded: dict[str, dict[str, list[Any]]] = {}
    for label, controller in controllers.items():
        enc = controller_encoders[label]
        rows = [(f"params {label}", 0)]
        if args.params_refine > 0:
            rows.append((f"params {label} + refine {args.params_refine}", args.params_refine))
        for name, steps in rows:
            recorded[name] = {}
            methods[name] = ev.params_method(controller, enc, refine=steps, lr=args.params_lr,
                                             record=recorded[name])  # fmt: skip
    if controllers and args.params_refine > 0:
        name = f"refine from neutral {args.params_refine}"
        recorded[name] = {}
        methods[name] = ev.params_method(
            None, next(iter(controller_encoders.values())), refine=args.params_refine,
            lr=args.params_lr, refine_from="neutral", record=recorded[name],
        )  # fmt: skip

    segments = load_segments(
        args.data, args.split, seconds=args.seconds, songs=args.songs, sample_rate=sample_rate,
        seed=args.seed, cache_dir=args.cache_dir, fxnorm=True,
    )  # fmt: skip
    import fxdsp

    chain = fxdsp.ChainConfig.from_file(args.chain) if args.chain else fxdsp.ChainConfig()
    chain = chain.replace(sample_rate=float(sample_rate))
    if args.style_library == "pedalboard":
        require("pedalboard", "bench", "mixfx eval-transfer --style-library pedalboard")
        items = ev.make_pedalboard_items(segments, args.styles, seed=args.seed)
    else:
        items = ev.make_items(
            segments, args.styles, seed=args.seed, config=chain, device=args.device
        )
    runs = [("stems", items)]
    if args.separator_weights:
        from cloner.separation import load_separator

        separator = load_separator(args.separator_weights, name=args.separator)
        runs.append(("separated", ev.separate_items(items, separator, device=args.device)))
    total = len(runs) * (len(methods) + 1) * 4
    bar = tqdm(total=total, desc="eval-transfer", unit="stem", disable=args.no_progress)

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"format": "mixfx.eval-transfer/1"}
    setup = {
        "data": str(args.data), "split": args.split, "songs": len(segments.songs),
        "song_names": list(segments.songs), "styles": args.styles, "items": len(items),
        "seconds": segments.seconds, "sample_rate": segments.sample_rate, "seed": args.seed,
        "bootstrap": args.bootstrap, "encoder": args.encoder or (
            infos[labels[0]].get("encoder") if labels else None),
        "cloners": dict(specs), "separator_weights": args.separator_weights,
        "style_library": args.style_library,
    }  # fmt: skip
    results["setup"] = setup
    markdown = []
    try:
        for name, its in runs:
            res = ev.evaluate(
                its, methods, encoder=encoder, n_boot=args.bootstrap, seed=args.seed,
                progress=step, keep_outputs=args.examples,
            )  # fmt: skip
            outputs = res.pop("outputs", {})
            results[name] = res
            md = ev.results_markdown(res, setup if name == "stems" else None)
            if name == "separated":
                md = md.replace(
                    "# Style-transfer evaluation",
                    "# Through separation: the input mix separated by Demucs, then converted",
                )
            markdown.append(md)
            if name == "stems" and args.examples:
                _examples(its, outputs, out, sf, atomic_write)
    finally:
        bar.close()
    if recorded and args.style_library == "fxdsp":
        from cloner.parametric_eval import param_recovery, recovery_markdown, style_chains

        chains = style_chains(items, args.seed, chain)
        first = {name: {stem: calls[0] for stem, calls in per.items()} for name, per in
                 recorded.items()}  # fmt: skip
        results["param_recovery"] = param_recovery(first, chains, items.sample_rate, chain)
        markdown.append(recovery_markdown(results["param_recovery"]))
    atomic_write_text(out / "results.json", json.dumps(results, indent=1, default=json_default))
    atomic_write_text(out / "results.md", "\n".join(markdown))
    stems = results["stems"]["methods"]
    summary = ", ".join(f"{name} {m['mix']['mss_lr']['mean']:.3f}" for name, m in stems.items())
    print(f"mixfx eval-transfer: {len(items)} items; mix L_MSS L&R: {summary}")
    print(f"mixfx eval-transfer: wrote {out / 'results.json'}, results.md, spectra.png")
    return 0


def _load_controllers(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--params``: ``({label: controller}, {label: its encoder})``."""
    from cloner import parametric as pm

    specs = labelled(args.params, "--params")
    controllers, encoders = {}, {}
    for label, path in specs:
        controllers[label], info = pm.load_controller_with_info(path, device=args.device)
        encoders[label] = pm.load_encoder_for_controller(info, args.encoder, device=args.device)
    return controllers, encoders


def _examples(items: Any, outputs: dict[str, Any], out: Path, sf: Any, atomic_write: Any) -> None:
    """``spectra.png`` and ``examples/<item>/<name>.wav`` (mixes) for the first items."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from fxdsp.analysis import band_spectrum

    fs = items.sample_rate
    n = min(len(items), *(len(v) for v in outputs.values())) if outputs else 0
    if n == 0:
        return
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.6), squeeze=False)
    for i in range(n):
        curves = {
            "input": items.inputs[i].sum(0),
            "reference": items.references[i].sum(0),
            **{name: y[i].sum(0) for name, y in outputs.items() if name != "input unchanged"},
            "target": items.targets[i].sum(0),
        }
        folder = out / "examples" / f"item{i}"
        folder.mkdir(parents=True, exist_ok=True)
        ax = axes[0, i]
        for name, audio in curves.items():
            spec = band_spectrum(audio[None].double(), fs, "third_octave", mode="mean")
            ax.semilogx(
                spec.centre_hz.numpy(), spec.levels_db[0, 0].numpy(), label=name,
                lw=2.2 if name in ("target", "reference") else 1.3,
                ls="--" if name == "reference" else "-",
            )  # fmt: skip
            wav = folder / (name.replace(" ", "_") + ".wav")
            data = np.clip(audio.T.numpy(), -1.0, 1.0)
            atomic_write(wav, lambda tmp, d=data: sf.write(tmp, d, fs, format="WAV"))
        ax.set_title(f"item {i}: song {items.songs[items.song[i]]}, style {items.style[i]}")
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("third-octave level (dB)")
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    atomic_write(out / "spectra.png", lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
