"""``mixfx demo``: the style-transfer demo (:mod:`mixfx.demo`) with its options.

Converts the bundled multitrack example to the mixing style of the bundled reference with the
shipped models, and writes the mixes (input, reference, target, output), the parametric preset,
``comparison.png`` and ``summary.json`` into ``--out`` (default ``out/demo``). Needs the ``io``
(soundfile) and ``plot`` (matplotlib) extras; ``mixfx effects-demo`` is the effects-only demo.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mixfx.commands.common import CLIError, check_device, require

__all__ = ["DEFAULT_OUT", "DESCRIPTION", "HELP", "NAME", "configure", "run"]

NAME = "demo"
HELP = "convert a bundled multitrack to the mixing style of a bundled reference"
DESCRIPTION = (
    "Convert the bundled example (six seconds of four held-out stems) to the mixing style of "
    "the bundled reference with the shipped models, measure how close each output gets to the "
    "target (the input through the reference's own chains), and write input.wav, "
    "reference.wav, target.wav, output.wav, preset.json, comparison.png and summary.json."
)
DEFAULT_OUT = "out/demo"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser``."""
    p = parser
    p.add_argument(
        "--out", metavar="DIR", type=Path, default=Path(DEFAULT_OUT),
        help=f"output folder (default: {DEFAULT_OUT})",
    )  # fmt: skip
    p.add_argument(
        "--method", action="append", choices=("params", "cloner"), default=None,
        help="a method to run (repeatable; default: both, the parametric one first)",
    )  # fmt: skip
    p.add_argument(
        "--controller", metavar="PATH|NAME", default="default",
        help="parameter controller checkpoint or shipped name (default: default)",
    )  # fmt: skip
    p.add_argument(
        "--cloner", metavar="PATH|NAME", default="default",
        help="cloner checkpoint or shipped name (default: default)",
    )  # fmt: skip
    p.add_argument(
        "--data", metavar="DIR", type=Path, default=None,
        help="an example folder laid out like mixfx/demo_data (default: the bundled one)",
    )  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its report."""
    require("soundfile", "io", "mixfx demo")
    require("matplotlib", "plot", "mixfx demo")

    from mixfx.demo import DATA_DIR, METHODS, format_report, run_demo

    device = check_device(args.device)
    try:
        summary = run_demo(
            args.out, methods=args.method or METHODS, controller=args.controller,
            cloner=args.cloner, data=args.data or DATA_DIR, device=device,
            progress=not args.no_progress,
        )  # fmt: skip
    except ValueError as err:
        raise CLIError(str(err)) from None
    print(format_report(summary))
    return 0
