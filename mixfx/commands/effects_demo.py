"""``mixfx effects-demo``: the effects demo (:mod:`mixfx.effects_demo`) with its options.

Needs the ``io`` (soundfile) and ``plot`` (matplotlib) extras; it writes ``dry.wav``,
``wet.wav``, ``spectra.png`` and ``summary.json`` into ``--out`` (default
``out/effects-demo``). ``mixfx demo`` is the style-transfer demo (:mod:`mixfx.demo`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mixfx.commands.common import (
    check_device,
    number_in_range,
    require,
)

__all__ = ["DEFAULT_OUT", "DESCRIPTION", "HELP", "NAME", "configure", "run"]

NAME = "effects-demo"
HELP = "process a synthesized music example with an effect chain and plot before/after"
DESCRIPTION = (
    "Synthesize a short stereo music example, run it through EQ, compressor, stereo imager, "
    "reverb and loudness normalization, and write dry.wav, wet.wav, spectra.png and "
    "summary.json."
)
DEFAULT_OUT = "out/effects-demo"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser``."""
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path(DEFAULT_OUT),
        help=(
            f"folder for dry.wav, wet.wav, spectra.png and summary.json (default: {DEFAULT_OUT})"
        ),
    )
    parser.add_argument(
        "--seconds",
        metavar="S",
        type=number_in_range(float, 1.0, 600.0, "duration in seconds"),
        default=6.0,
        help="length of the synthesized example in seconds, 1 to 600 (default: 6)",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=number_in_range(int, 0, 2**31 - 1, "seed"),
        default=0,
        help="seed of the synthesis and of the reverb's noise (default: 0)",
    )
    parser.add_argument(
        "--sample-rate",
        metavar="HZ",
        type=number_in_range(int, 22050, 192000, "sample rate in Hz"),
        default=44100,
        help="sample rate in Hz, 22050 to 192000 (default: 44100)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device the effects run on, e.g. cpu or cuda (default: cpu)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="do not show a progress bar over the stages"
    )


def run(args: argparse.Namespace) -> int:
    """Run the effects demo and print its report."""
    require("soundfile", "io", "mixfx effects-demo")
    require("matplotlib", "plot", "mixfx effects-demo")

    from mixfx.effects_demo import format_report, run_demo

    device = check_device(args.device)
    summary = run_demo(
        args.out,
        seconds=args.seconds,
        seed=args.seed,
        sample_rate=args.sample_rate,
        device=device,
        progress=not args.no_progress,
    )
    print(format_report(summary))
    return 0
